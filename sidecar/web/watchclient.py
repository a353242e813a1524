"""
Following a Sidecar's C{/api/watch} from elsewhere: L{splitDocuments}
cuts the stream into JSON documents, and L{WatchClient} keeps a
connection open, reconnecting with backoff, and hands each document on.

Our nodes write a newline into a stream with nothing to say every
L{HEARTBEAT} seconds, so a client can tell a quiet stream from a dead one;
the Go Sidecar writes nothing at all between changes.  So the silence
limit applies only to a stream that has shown heartbeats, and every stream
relies on TCP keepalive (a host that is gone is noticed within
L{KEEPALIVE_IDLE} + L{KEEPALIVE_INTERVAL} * L{KEEPALIVE_PROBES} seconds).
"""

from __future__ import annotations

import codecs
import json
import socket
from collections.abc import Callable
from typing import Any

import treq
from twisted.application.service import Service
from twisted.internet.defer import CancelledError, Deferred, ensureDeferred
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.internet.interfaces import (
    IDelayedCall,
    IProtocol,
    IProtocolFactory,
    IStreamClientEndpoint,
)
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.client import URI, Agent, BrowserLikePolicyForHTTPS, ResponseDone
from twisted.web.iweb import IAgentEndpointFactory, IPolicyForHTTPS
from zope.interface import implementer

from ..backoff import Backoff
from .watch import HEARTBEAT

# Reconnecting: 1 s, doubling, at most 30 s.
FIRST_RETRY = 1.0
LAST_RETRY = 30.0
# A stream that has shown heartbeats (a newline every HEARTBEAT seconds at
# least) and is then silent this long is dead: it is dropped and followed
# again.
SILENCE = 3 * HEARTBEAT
# TCP keepalive on every stream: first probe after this many idle seconds,
# then one every KEEPALIVE_INTERVAL, the connection dropped after
# KEEPALIVE_PROBES unanswered.
KEEPALIVE_IDLE = 30
KEEPALIVE_INTERVAL = 10
KEEPALIVE_PROBES = 3
# A document larger than this is not a catalog; the stream is dropped.
MAX_DOCUMENT = 64 * 1024 * 1024


class StreamError(ValueError):
    """
    The stream is not a sequence of JSON documents.
    """


def splitDocuments(buffer: str) -> tuple[list[Any], str]:
    """
    The complete JSON documents at the start of C{buffer}, and what is left
    (the beginning of the next one).

    @raise StreamError: when the text cannot be a sequence of documents.
    """
    splitter = DocumentSplitter()
    documents = splitter.feed(buffer)
    return documents, splitter.pending


class DocumentSplitter:
    """
    Cuts a stream of JSON objects (or arrays), one after another, into
    documents, in one pass over the text however it is chunked.

    @ivar heartbeats: whether whitespace came between documents (the
        heartbeats of a server that sends them).
    """

    def __init__(self) -> None:
        self._current: list[str] = []
        self._depth = 0
        self._inString = False
        self._escaped = False
        self.heartbeats = False

    @property
    def pending(self) -> str:
        return "".join(self._current)

    def feed(self, text: str) -> list[Any]:
        """
        @return: the documents that C{text} completes.
        @raise StreamError: on text that is not JSON documents.
        """
        documents = []
        start = 0
        for position, character in enumerate(text):
            if self._depth == 0:
                if character.isspace():
                    self.heartbeats = True
                    start = position + 1
                    continue
                if character not in "{[":
                    raise StreamError(f"not JSON: {text[position : position + 20]!r}")
            if self._inString:
                if self._escaped:
                    self._escaped = False
                elif character == "\\":
                    self._escaped = True
                elif character == '"':
                    self._inString = False
            elif character == '"':
                self._inString = True
            elif character in "{[":
                self._depth += 1
            elif character in "}]":
                self._depth -= 1
                if self._depth == 0:
                    self._current.append(text[start : position + 1])
                    documents.append(self._complete())
                    start = position + 1
        if self._depth > 0:
            self._current.append(text[start:])
        if sum(len(part) for part in self._current) > MAX_DOCUMENT:
            raise StreamError(f"a document over {MAX_DOCUMENT} bytes")
        return documents

    def _complete(self) -> Any:
        text, self._current = "".join(self._current), []
        try:
            return json.loads(text)
        except json.JSONDecodeError as e:
            raise StreamError(f"not JSON at offset {e.pos}: {e.msg}") from None


class WatchClient(Service):
    """
    Follows C{url} (a Sidecar's C{/api/watch?by_service=false}) while
    running and calls C{received} with each document.

    @ivar connected: whether a stream is open now.
    @ivar lastError: the latest problem, as one line, or L{None}.
    """

    log = Logger()

    def __init__(
        self,
        reactor: Any,
        url: str,
        received: Callable[[Any], None],
        tls: IPolicyForHTTPS | None = None,
    ) -> None:
        """
        @param tls: how an https Sidecar is verified (one that trusts the
            CA of its certificate, say); by default against the system's
            roots.
        """
        self._reactor = reactor
        self._tls = BrowserLikePolicyForHTTPS() if tls is None else tls
        self.url = url
        self._received = received
        self.connected = False
        self.lastError: str | None = None
        self._retry = Backoff(FIRST_RETRY, LAST_RETRY)
        self._timer: IDelayedCall | None = None
        self._following: Deferred[None] | None = None
        self._stream: _Stream | None = None

    def startService(self) -> None:
        super().startService()
        self._connect()

    def stopService(self) -> None:
        super().stopService()
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        if self._stream is not None:
            self._stream.stop()
        if self._following is not None:
            self._following.cancel()

    def _connect(self) -> None:
        self._timer = None
        self._following = ensureDeferred(self._follow())
        self._following.addBoth(self._ended)

    async def _follow(self) -> None:
        agent = Agent.usingEndpointFactory(
            self._reactor, _KeepAliveEndpoints(self._reactor, self._tls)
        )
        response = await treq.get(
            self.url, unbuffered=True, persistent=False, agent=agent
        )
        if response.code != 200:
            raise StreamError(f"HTTP {response.code}")
        self.connected = True
        self.lastError = None
        self._retry.succeeded()
        self.log.info("following {url}", url=self.url)
        stream = self._stream = _Stream(self._reactor, self._received)
        response.deliverBody(stream)
        try:
            await stream.finished
        finally:
            self._stream = None

    def _ended(self, result: object) -> None:
        self._following = None
        self.connected = False
        if not self.running:
            return
        if isinstance(result, Failure):
            if result.check(CancelledError):
                return
            why = result.getErrorMessage()
        else:
            why = "the stream ended"
        problem = f"{self.url}: {why}"
        if problem != self.lastError:
            self.log.warn(
                "{problem}; reconnecting, keeping what was last received",
                problem=problem,
            )
        self.lastError = problem
        self._timer = self._reactor.callLater(self._retry.failed(), self._connect)


@implementer(IAgentEndpointFactory)
class _KeepAliveEndpoints:
    """
    Connections for an L{Agent} with TCP keepalive on.
    """

    def __init__(self, reactor: Any, tls: IPolicyForHTTPS) -> None:
        self._reactor = reactor
        self._tls = tls

    def endpointForURI(self, uri: URI) -> IStreamClientEndpoint:
        if uri.scheme not in (b"http", b"https"):
            raise StreamError(f"only http(s):// can be followed, not {uri.scheme!r}")
        host = uri.host.decode("ascii")
        # Keepalive on the TCP connection itself, under any TLS.
        endpoint: IStreamClientEndpoint = _KeepAliveEndpoint(
            HostnameEndpoint(self._reactor, host, uri.port)
        )
        if uri.scheme == b"https":
            creator = self._tls.creatorForNetloc(uri.host, uri.port)
            endpoint = wrapClientTLS(creator, endpoint)
        return endpoint


@implementer(IStreamClientEndpoint)
class _KeepAliveEndpoint:
    def __init__(self, inner: IStreamClientEndpoint) -> None:
        self._inner = inner

    def connect(self, factory: IProtocolFactory) -> Deferred[IProtocol]:
        d: Deferred[IProtocol] = self._inner.connect(factory)
        return d.addCallback(_keepAlive)


def _keepAlive(protocol: IProtocol) -> IProtocol:
    transport: Any = protocol.transport  # type: ignore[attr-defined]
    transport.setTcpKeepAlive(1)
    handle = transport.getHandle()
    handle.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, KEEPALIVE_IDLE)
    handle.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, KEEPALIVE_INTERVAL)
    handle.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, KEEPALIVE_PROBES)
    return protocol


class _Stream(Protocol):
    """
    A response body of JSON documents: each complete one is handed on.
    Once the body has carried a heartbeat (whitespace between documents),
    it is dropped when silent for L{SILENCE} seconds: the server writes at
    least a newline every L{HEARTBEAT} seconds, so it is gone.  A body with
    no heartbeats (the Go Sidecar's) may be quiet for as long as nothing
    changes.
    """

    def __init__(self, reactor: Any, received: Callable[[Any], None]) -> None:
        self._reactor = reactor
        self._received = received
        # Bytes may end inside a character, and text inside a document.
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._splitter = DocumentSplitter()
        self._silence: IDelayedCall | None = None
        self._silenced = False
        self.finished: Deferred[None] = Deferred()

    def dataReceived(self, data: bytes) -> None:
        try:
            documents = self._splitter.feed(self._decoder.decode(data))
        except StreamError as e:
            self._abort(e)
            return
        if self._silence is not None:
            self._silence.reset(SILENCE)
        elif self._splitter.heartbeats:
            self._silence = self._reactor.callLater(SILENCE, self._silent)
        for document in documents:
            self._received(document)

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        if self._silence is not None and self._silence.active():
            self._silence.cancel()
        if self.finished.called:
            return
        if self._silenced:
            self.finished.errback(StreamError(f"nothing for {SILENCE:g} s"))
        elif reason is None or reason.check(ResponseDone):
            self.finished.callback(None)
        else:
            self.finished.errback(reason)

    def stop(self) -> None:
        # The body's transport is a producer: stopping it drops the
        # connection.
        if self.transport is not None:
            self.transport.stopProducing()  # type: ignore[attr-defined]

    def _silent(self) -> None:
        self._silenced = True
        self.stop()

    def _abort(self, error: StreamError) -> None:
        if not self.finished.called:
            self.finished.errback(error)
        self.stop()
