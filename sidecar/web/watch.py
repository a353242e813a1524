"""
C{/api/watch}: a response that never ends by itself.  It carries the
catalog at once, and again after every change, as JSON documents one after
the other with no separator (the Go Sidecar's format; a client decodes
them as a stream).  A client that reads slowly is sent only the newest
catalog when it catches up, never a backlog.  Every watcher is sent the
same encoded bytes (from L{Bodies}), each version at most once, and
written in slices (L{SLICE}) as the connection takes them, so a watcher
that does not read holds one slice in its connection's buffer, not a copy
of the document; one that reads nothing for L{STALL} seconds is cut.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.interfaces import IDelayedCall, IPushProducer
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.server import Request
from zope.interface import implementer

from sidecar.catalog import ServicesState
from sidecar.catalog.interfaces import ICatalogObserver
from sidecar.ratelimit import RateLimitedLog

from .bodies import Bodies, Body
from .sending import SLICE

# With no change to send, a newline this often: the client knows the
# stream is alive (stream decoders skip whitespace between documents).
HEARTBEAT = 15.0
# A client that reads nothing of what it was sent for this long is cut.
STALL = 30.0


@implementer(ICatalogObserver, IPushProducer)
class Watcher:
    """
    One C{/api/watch} client.

    @param byService: the C{{name: [Service]}} map (the default), or the
        whole state document.
    """

    log = Logger()

    def __init__(
        self,
        request: Request,
        state: ServicesState,
        bodies: Bodies,
        byService: bool,
        reactor: Any,
        watchers: set[Watcher],
        warnings: RateLimitedLog | None = None,
    ) -> None:
        """
        @param warnings: where a watcher cut for not reading is logged.
        """
        self._request = request
        self._warnings = warnings or RateLimitedLog(self.log, reactor)
        self._stall: IDelayedCall | None = None
        self._watchers = watchers
        self._state = state
        self._bodies = bodies
        self._byService = byService
        self._reactor = reactor
        self._paused = False
        self._due = True
        self._timer: IDelayedCall | None = None
        self._heartbeat: IDelayedCall | None = None
        self._ended = False
        self._rendering = False
        self._sent: bytes | None = None
        # The document being written, and how much of it is written.
        self._pending = b""
        self._offset = 0

    def start(self) -> None:
        self._watchers.add(self)
        self._request.registerProducer(self, True)
        self._state.addObserver(self)
        self._request.notifyFinish().addBoth(self._clientGone)
        self._send()

    # -- ICatalogObserver ---------------------------------------------------

    def serviceChanged(self, event: object) -> None:
        self._due = True
        self._sendSoon()

    # -- IPushProducer: the client's TCP buffer is full, or has room --------

    def pauseProducing(self) -> None:
        self._paused = True
        if self._stall is None and not self._ended:
            self._stall = self._reactor.callLater(STALL, self._cut)

    def resumeProducing(self) -> None:
        self._paused = False
        if self._stall is not None and self._stall.active():
            self._stall.cancel()
        self._stall = None
        self._pump()

    def stopProducing(self) -> None:
        self._end()

    def finish(self) -> None:
        """
        End the stream, as when the node stops.
        """
        if not self._ended:
            self._end()
            self._request.finish()

    # -- internals ----------------------------------------------------------

    def _sendSoon(self) -> None:
        # Changes in one turn of the reactor make one document.
        if (
            self._due
            and self._timer is None
            and not (self._paused or self._ended or self._rendering or self._pending)
        ):
            self._timer = self._reactor.callLater(0, self._send)

    def _send(self) -> None:
        self._timer = None
        if (
            self._ended
            or self._paused
            or not self._due
            or self._rendering
            or self._pending
        ):
            return
        self._due = False
        self._rendering = True
        body = self._bodies.byService() if self._byService else self._bodies.state()
        body.addCallbacks(self._write, self._renderFailed)

    def _write(self, body: Body) -> None:
        self._rendering = False
        if self._ended:
            return
        if body.etag != self._sent:
            self._sent = body.etag
            self._pending, self._offset = body.data, 0
        self._pump()

    def _pump(self) -> None:
        """
        Write the rest of the document a slice at a time, for as long as
        the connection takes them (a write that fills its buffer pauses
        this producer); then the next document, if one is due.
        """
        while self._pending and not (self._paused or self._ended):
            end = self._offset + SLICE
            piece = self._pending[self._offset : end]
            self._offset = end
            if self._offset >= len(self._pending):
                self._pending, self._offset = b"", 0
                self._beatLater()
            self._request.write(piece)
        self._sendSoon()

    def _renderFailed(self, failure: Failure) -> None:
        # L{Bodies} has logged why; the next change tries again.
        self._rendering = False

    def _beatLater(self) -> None:
        if self._heartbeat is not None and self._heartbeat.active():
            self._heartbeat.cancel()
        self._heartbeat = self._reactor.callLater(HEARTBEAT, self._beat)

    def _beat(self) -> None:
        self._heartbeat = None
        if self._ended:
            return
        if not (self._paused or self._pending):
            self._request.write(b"\n")
        self._beatLater()

    def _cut(self) -> None:
        self._stall = None
        self._warnings.warn(
            "cut a /api/watch client that read nothing for {stall:g} s: {peer}",
            stall=STALL,
            peer=self._request.getClientAddress(),
        )
        channel = self._request.channel
        self._end()
        if channel is not None:
            channel.transport.abortConnection()  # type: ignore[union-attr]

    def _clientGone(self, result: object) -> None:
        self._end()

    def _end(self) -> None:
        if self._ended:
            return
        self._ended = True
        self._watchers.discard(self)
        self._state.removeObserver(self)
        for timer in (self._timer, self._heartbeat, self._stall):
            if timer is not None and timer.active():
                timer.cancel()
        self._timer = self._heartbeat = self._stall = None
        # A request whose connection is lost has let go of its channel,
        # and of its producer with it.
        if self._request.channel is not None:
            self._request.unregisterProducer()
