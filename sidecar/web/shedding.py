"""
L{ConnectionCap}: the API's guard against more clients than the reactor
can serve without delaying gossip.  The node's reactor is shared: a
flood of HTTP connections must be turned away cheaply, at the listening
side, before their requests are parsed or answered.
"""

from __future__ import annotations

from twisted.internet.interfaces import (
    IAddress,
    IDelayedCall,
    INegotiated,
    IReactorTime,
)
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.protocols.policies import WrappingFactory
from twisted.python.failure import Failure
from twisted.web.server import Site

from sidecar.ratelimit import RateLimitedLog

# What a client over the cap is told to wait before it tries again.
RETRY_AFTER = 1
# How long a refused client may keep its connection open reading the
# refusal before it is cut.
LINGER = 5.0


def busyResponse(body: bytes) -> bytes:
    """
    The whole HTTP response a client over the cap gets.
    """
    return (
        b"HTTP/1.1 503 Service Unavailable\r\n"
        b"Retry-After: %d\r\n"
        b"Content-Type: application/json\r\n"
        b"Content-Length: %d\r\n"
        b"Connection: close\r\n"
        b"\r\n" % (RETRY_AFTER, len(body))
    ) + body


class _Refusal(Protocol):
    """
    Answers 503 at once, without parsing the request, then half-closes:
    what the client sends is read and dropped (closing with it unread
    would reset the connection and lose the answer) until it hangs up or
    L{LINGER} runs out.
    """

    def __init__(self, response: bytes, clock: IReactorTime) -> None:
        self._response = response
        self._clock = clock
        self._timer: IDelayedCall | None = None

    def connectionMade(self) -> None:
        assert self.transport is not None
        self.transport.write(self._response)
        # Over TLS there is no half-close (the TCP connection's would cut
        # the handshake, and closing with the request unread would reset
        # it): the client closes on reading the answer's "Connection:
        # close", or the linger cuts it.
        if not INegotiated.providedBy(self.transport):
            self.transport.loseWriteConnection()  # type: ignore[attr-defined]
        self._timer = self._clock.callLater(LINGER, self._cut)

    def dataReceived(self, data: bytes) -> None:
        pass

    def _cut(self) -> None:
        self._timer = None
        self.transport.abortConnection()  # type: ignore[union-attr]

    def connectionLost(self, reason: Failure | None = None) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None


class ConnectionCap(WrappingFactory):
    """
    Serves C{site} on at most C{limit} connections at once (watch streams
    included); a connection beyond that is answered C{503 Service
    Unavailable} with C{Retry-After} and closed, and counted in C{shed}.

    @ivar shed: connections refused since the start.
    """

    # No "Starting factory <...object at 0x...>" lines in the log.
    noisy = False

    log = Logger()

    def __init__(
        self, site: Site, limit: int, clock: IReactorTime, refusal: bytes
    ) -> None:
        super().__init__(site)
        self.limit = limit
        self.shed = 0
        self._clock = clock
        self._response = busyResponse(refusal)
        self._warnings = RateLimitedLog(self.log, clock)

    @property
    def open(self) -> int:
        """
        Connections being served now.
        """
        return len(self.protocols)

    def buildProtocol(self, addr: IAddress | None) -> Protocol | None:  # type: ignore[override]
        if len(self.protocols) < self.limit:
            return super().buildProtocol(addr)  # type: ignore[no-any-return]
        self.shed += 1
        self._warnings.warn(
            "API at its limit of {limit} connections: refused one from {peer}",
            limit=self.limit,
            peer=addr,
        )
        return _Refusal(self._response, self._clock)
