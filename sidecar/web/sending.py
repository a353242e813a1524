"""
L{sendBody}: a whole response body, written so that many clients of a
large document cost neither a copy of it each nor a long turn of the
event loop.

A body written in one piece is joined with the headers into a new string
by the transport: 64 clients of a 4 MiB document held 64 copies of it.
A large body is instead handed over in slices, each when the transport
has sent the last, so a connection holds one slice at a time and the
connections take turns.
"""

from __future__ import annotations

from twisted.internet.interfaces import IPullProducer
from twisted.web.server import Request
from zope.interface import implementer

# Bodies up to this size go in one write; larger ones in slices of it (the
# most a TCP transport sends in one call).
SLICE = 128 * 1024


def sendBody(request: Request, data: bytes) -> None:
    """
    Answer C{request} with C{data} (and its C{Content-Length}), then
    finish it.
    """
    request.setHeader(b"Content-Length", b"%d" % len(data))
    if len(data) <= SLICE or request.method == b"HEAD":
        request.write(data)
        request.finish()
        return
    _SliceProducer(request, data).start()


@implementer(IPullProducer)
class _SliceProducer:
    """
    Writes one slice each time the transport asks for more.
    """

    def __init__(self, request: Request, data: bytes) -> None:
        self._request = request
        self._data = data
        self._offset = 0
        self._stopped = False

    def start(self) -> None:
        self._request.registerProducer(self, False)

    def resumeProducing(self) -> None:
        if self._stopped:
            return
        end = self._offset + SLICE
        self._request.write(self._data[self._offset : end])
        self._offset = end
        if self._offset >= len(self._data):
            self._stopped = True
            self._request.unregisterProducer()
            self._request.finish()

    def stopProducing(self) -> None:
        # The connection is gone.
        self._stopped = True
