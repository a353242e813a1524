"""
memberlist's TCP streams over Twisted: L{StreamServerFactory} answers
push-pulls, fallback pings and large user messages on the gossip port, and
L{StreamDialer} sends one stream message to a peer and reads its reply.

One message per connection, as memberlist does: the dialer writes its
message, the listener answers (or not) and closes.

The listener is on the cluster's boundary, so it is bounded: at most
L{MAX_INBOUND_STREAMS} streams at once (memberlist's cap on push-pulls)
and L{MAX_STREAMS_PER_SOURCE} from one address; one deadline for the whole
exchange, which bytes trickling in do not push back; and at most
L{MAX_PENDING_BYTES} of unfinished streams held in memory, reserved as
soon as a sealed stream announces its length, so that nothing is buffered
before authentication that the budget has no room for.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.endpoints import HostnameEndpoint
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from twisted.protocols.policies import TimeoutMixin
from twisted.python.failure import Failure
from zope.interface import implementer

from sidecar.ratelimit import RateLimitedLog

from .interfaces import IStreamDialer
from .messages import WireError
from .security import Keyring
from .streams import MAX_STREAM_BYTES, StreamMessage, StreamReader, frameStream

Address = tuple[str, int]
StreamHandler = Callable[[StreamMessage, Address], bytes | None]


class StreamError(Exception):
    """
    A stream exchange with a peer failed: it closed early or answered with
    something that is not a valid reply.
    """


class StreamServerProtocol(Protocol, TimeoutMixin):
    """
    One inbound stream: read a message, hand it to the factory's handler,
    write the handler's reply if any, close.
    """

    factory: StreamServerFactory
    transport: Any

    def connectionMade(self) -> None:
        self._reader = StreamReader(self.factory.keyring)
        self._done = False
        self.reserved = 0
        self.factory.connections.add(self)
        # One deadline for the whole exchange: never reset by a byte.
        self.setTimeout(self.factory.timeout)

    def callLater(self, period: float, func: Callable[[], object]) -> IDelayedCall:
        """
        The deadline's timer runs on the factory's clock.
        """
        return self.factory.clock.callLater(period, func)

    @property
    def source(self) -> Address:
        peer = self.transport.getPeer()
        return (peer.host, peer.port)

    def dataReceived(self, data: bytes) -> None:
        if self._done:
            return
        try:
            message = self._reader.feed(data)
            if message is None:
                self.factory.reserve(self, self._reader.announced)
        except WireError as e:
            self._finish()
            self.factory.badStream(self.source, e)
            self.transport.abortConnection()
            return
        if message is None:
            return
        self._finish()
        source = self.source
        reply = self.factory.handle(message, source)
        if reply is not None:
            frame = frameStream(reply, self.factory.keyring, compress=False)
            self.transport.write(frame)
        self.transport.loseConnection()

    def _finish(self) -> None:
        self._done = True
        self.setTimeout(None)
        self.factory.release(self)

    def timeoutConnection(self) -> None:
        self.factory.timedOut(self.source)
        self.transport.abortConnection()

    def connectionLost(self, reason: Failure | None = None) -> None:
        self.setTimeout(None)
        self._reader.close()
        self.factory.release(self)
        self.factory.connections.discard(self)


MAX_INBOUND_STREAMS = 128
MAX_STREAMS_PER_SOURCE = 8
# Unfinished inbound streams held at once: room for one whole push of the
# largest size, and a few small ones beside it.
MAX_PENDING_BYTES = MAX_STREAM_BYTES + 2 * 1024 * 1024


class StreamServerFactory(Factory):
    """
    Accepts memberlist streams, within the bounds the module describes.

    @ivar received: streams handled; C{dropped}, streams refused as
        malformed, oversized, wrongly keyed, over a bound or too slow.
    @ivar pending: bytes reserved by unfinished streams.
    """

    # No "Starting factory <...object at 0x...>" lines in the log.
    noisy = False

    protocol = StreamServerProtocol  # type: ignore[assignment]
    log = Logger()

    def __init__(
        self,
        handler: StreamHandler,
        clock: IReactorTime,
        keyring: Keyring | None = None,
        timeout: float = 10.0,
        maxStreams: int = MAX_INBOUND_STREAMS,
        maxPerSource: int = MAX_STREAMS_PER_SOURCE,
        maxPendingBytes: int = MAX_PENDING_BYTES,
    ) -> None:
        self._handler = handler
        self.clock = clock
        self.keyring = keyring
        self.timeout = timeout
        self._maxStreams = maxStreams
        self._maxPerSource = maxPerSource
        self._maxPending = maxPendingBytes
        self.received = 0
        self.dropped = 0
        self.pending = 0
        self.connections: set[StreamServerProtocol] = set()
        self._badStreams = RateLimitedLog(self.log, clock)
        self._refusedStreams = RateLimitedLog(self.log, clock)
        self._handlerBugs = RateLimitedLog(self.log, clock)

    def buildProtocol(self, addr: Any) -> Protocol | None:
        """
        A protocol for a new connection, or L{None} (the port then closes
        it at once) when the listener or this source is at its bound.
        """
        host = getattr(addr, "host", "")
        fromSource = sum(1 for c in self.connections if c.source[0] == host)
        if len(self.connections) >= self._maxStreams:
            self._refuse(host, f"{self._maxStreams} streams are open")
        elif fromSource >= self._maxPerSource:
            self._refuse(host, f"{fromSource} streams from it are open")
        else:
            return super().buildProtocol(addr)  # type: ignore[return-value]
        return None

    def _refuse(self, host: str, why: str) -> None:
        self.dropped += 1
        self._refusedStreams.warn(
            "refused a stream from {host}: {why}", host=host, why=why
        )

    def reserve(self, connection: StreamServerProtocol, size: int) -> None:
        """
        Hold C{size} bytes of the pending budget for C{connection}'s
        unfinished stream (what it announced, or has sent so far).

        @raise WireError: when the budget has no room for it.
        """
        more = size - connection.reserved
        if more <= 0:
            return
        if self.pending + more > self._maxPending:
            raise WireError(
                f"no room for {size} more bytes: {self.pending} are pending"
            )
        self.pending += more
        connection.reserved = size

    def release(self, connection: StreamServerProtocol) -> None:
        self.pending -= connection.reserved
        connection.reserved = 0

    def timedOut(self, source: Address) -> None:
        self.badStream(source, WireError("not finished before the deadline"))

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
            # A bug, but one a flood of streams must not turn into a flood
            # of tracebacks.
            self._handlerBugs.failure(
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
        self._reader = StreamReader(keyring)
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
