"""
memberlist's TCP streams over Twisted: L{StreamServerFactory} answers
push-pulls, fallback pings and large user messages on the gossip port, and
L{StreamDialer} sends one stream message to a peer and reads its reply.

One message per connection, as memberlist does: the dialer writes its
message, the listener answers (or not) and closes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.endpoints import HostnameEndpoint
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IReactorTime
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from twisted.protocols.policies import TimeoutMixin
from twisted.python.failure import Failure
from zope.interface import implementer

from sidecar.ratelimit import RateLimitedLog

from .interfaces import IStreamDialer
from .messages import WireError
from .security import Keyring
from .streams import StreamMessage, frameStream, parseStream

Address = tuple[str, int]
StreamHandler = Callable[[StreamMessage, Address], bytes | None]


class StreamError(Exception):
    """
    A stream exchange with a peer failed: it closed early or answered with
    something that is not a valid reply.
    """


class _Reader:
    """
    Collects a stream's bytes until L{parseStream} finds a whole message.
    """

    def __init__(self, keyring: Keyring | None) -> None:
        self._keyring = keyring
        self._buffer = bytearray()

    def feed(self, data: bytes) -> StreamMessage | None:
        """
        @raise WireError: when the bytes so far cannot start a valid message.
        """
        self._buffer += data
        return parseStream(bytes(self._buffer), self._keyring)


class StreamServerProtocol(Protocol, TimeoutMixin):
    """
    One inbound stream: read a message, hand it to the factory's handler,
    write the handler's reply if any, close.
    """

    factory: StreamServerFactory
    transport: Any

    def connectionMade(self) -> None:
        self._reader = _Reader(self.factory.keyring)
        self._done = False
        self.factory.connections.add(self)
        self.setTimeout(self.factory.timeout)

    def dataReceived(self, data: bytes) -> None:
        if self._done:
            return
        self.resetTimeout()
        peer = self.transport.getPeer()
        source = (peer.host, peer.port)
        try:
            message = self._reader.feed(data)
        except WireError as e:
            self._done = True
            self.factory.badStream(source, e)
            self.transport.abortConnection()
            return
        if message is None:
            return
        self._done = True
        self.setTimeout(None)
        reply = self.factory.handle(message, source)
        if reply is not None:
            frame = frameStream(reply, self.factory.keyring, compress=False)
            self.transport.write(frame)
        self.transport.loseConnection()

    def timeoutConnection(self) -> None:
        self.transport.abortConnection()

    def connectionLost(self, reason: Failure | None = None) -> None:
        self.setTimeout(None)
        self.factory.connections.discard(self)


class StreamServerFactory(Factory):
    """
    Accepts memberlist streams.

    @ivar received: streams handled; C{dropped}, streams refused as
        malformed, oversized or wrongly keyed.
    """

    protocol = StreamServerProtocol  # type: ignore[assignment]
    log = Logger()

    def __init__(
        self,
        handler: StreamHandler,
        clock: IReactorTime,
        keyring: Keyring | None = None,
        timeout: float = 10.0,
    ) -> None:
        self._handler = handler
        self.keyring = keyring
        self.timeout = timeout
        self.received = 0
        self.dropped = 0
        self.connections: set[StreamServerProtocol] = set()
        self._badStreams = RateLimitedLog(self.log, clock)

    def abortAll(self) -> None:
        """
        Drop every stream still open: the node is stopping.
        """
        for connection in list(self.connections):
            connection.transport.abortConnection()

    def handle(self, message: StreamMessage, source: Address) -> bytes | None:
        self.received += 1
        try:
            return self._handler(message, source)
        except Exception:
            self.log.failure(
                "handling a stream from {host}:{port}", host=source[0], port=source[1]
            )
            return None

    def badStream(self, source: Address, problem: WireError) -> None:
        self.dropped += 1
        self._badStreams.warn(
            "dropped a bad stream from {host}:{port}: {problem}",
            host=source[0],
            port=source[1],
            problem=str(problem),
        )


class _StreamClientProtocol(Protocol):
    transport: Any

    def __init__(self, frame: bytes, keyring: Keyring | None, expectReply: bool):
        self._frame = frame
        self._reader = _Reader(keyring)
        self._expectReply = expectReply
        self.done: Deferred[StreamMessage | None] = Deferred(self._cancel)

    def connectionMade(self) -> None:
        self.transport.write(self._frame)
        if not self._expectReply:
            self.transport.loseConnection()

    def dataReceived(self, data: bytes) -> None:
        if self.done.called:
            return
        try:
            message = self._reader.feed(data)
        except WireError as e:
            self.done.errback(StreamError(f"bad reply: {e}"))
            self.transport.abortConnection()
            return
        if message is not None:
            self.done.callback(message)
            self.transport.loseConnection()

    def connectionLost(self, reason: Failure | None = None) -> None:
        reason = reason or Failure(ConnectionDone())
        if self.done.called:
            return
        if not self._expectReply and reason.check(ConnectionDone):
            self.done.callback(None)
        else:
            self.done.errback(
                StreamError(f"closed before a reply: {reason.getErrorMessage()}")
            )

    def _cancel(self, d: Deferred[Any]) -> None:
        if self.transport is not None:
            self.transport.abortConnection()


@implementer(IStreamDialer)
class StreamDialer:
    """
    Sends one stream message per connection, over TCP, from C{bindHost}
    when given: peers admit catalog records only from members' addresses,
    so a node bound to one address must also connect from it.
    """

    def __init__(
        self,
        reactor: Any,
        keyring: Keyring | None = None,
        timeout: float = 10.0,
        bindHost: str | None = None,
    ) -> None:
        self._reactor = reactor
        self._keyring = keyring
        self._timeout = timeout
        self._bindAddress = None if bindHost is None else (bindHost, 0)

    def request(
        self, address: Address, body: bytes, expectReply: bool = True
    ) -> Deferred[StreamMessage | None]:
        """
        Connect to C{address}, send C{body} (framed, sealed when there is a
        keyring), and fire with the peer's reply (or L{None} when no reply
        is expected), all within the timeout.
        """
        frame = frameStream(body, self._keyring, compress=False)
        factory = Factory.forProtocol(
            lambda: _StreamClientProtocol(frame, self._keyring, expectReply)
        )
        # Every push-pull and TCP ping would log two lines otherwise.
        factory.noisy = False
        endpoint = HostnameEndpoint(
            self._reactor,
            address[0],
            address[1],
            timeout=self._timeout,
            bindAddress=self._bindAddress,
        )
        d: Deferred[Any] = endpoint.connect(factory)
        d.addCallback(lambda protocol: protocol.done)
        d.addTimeout(self._timeout, self._reactor)
        return d
