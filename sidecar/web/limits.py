"""
Bounds on what one request may make the API hold: its headers and its
body.  Nothing the API answers takes a body worth keeping (a drain takes
none), so a body is kept in memory, never spooled to disk, and one
longer than L{MAX_BODY} is refused C{413} before it is read, with the
connection closed.
"""

from __future__ import annotations

import io

from twisted.web.http import HTTPChannel
from twisted.web.server import Request

from .api import errorBody

# The most of a request body the API reads.
MAX_BODY = 64 * 1024
# The most bytes of request line and headers, and the most header lines;
# past either, the request is refused 400 and the connection closed.
MAX_HEADER_BYTES = 16 * 1024
MAX_HEADERS = 100


def _tooLarge() -> bytes:
    body = errorBody(f"request body over {MAX_BODY} bytes refused")
    return (
        b"HTTP/1.1 413 Request Entity Too Large\r\n"
        b"Content-Type: application/json\r\n"
        b"Content-Length: %d\r\n"
        b"Connection: close\r\n"
        b"\r\n" % len(body)
    ) + body


TOO_LARGE = _tooLarge()


class APIChannel(HTTPChannel):
    """
    An HTTP connection whose request heads are bounded by
    L{MAX_HEADER_BYTES} and L{MAX_HEADERS}.
    """

    maxHeaders = MAX_HEADERS
    totalHeadersSize = MAX_HEADER_BYTES


class BoundedRequest(Request):
    """
    A request whose body is kept in memory up to L{MAX_BODY} bytes; a
    longer one, by its C{Content-Length} or as its chunks arrive, is
    answered C{413} and its connection closed, and the request is never
    rendered.
    """

    refused = False

    def gotLength(self, length: int | None) -> None:
        self.content = self._body = io.BytesIO()
        self._received = 0
        if length is not None and length > MAX_BODY:
            self._refuse()

    def handleContentChunk(self, data: bytes) -> None:
        if self.refused:
            return
        self._received += len(data)
        if self._received > MAX_BODY:
            self._refuse()
            return
        self._body.write(data)

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        if not self.refused:
            super().requestReceived(command, path, version)

    def _refuse(self) -> None:
        self.refused = True
        self.content = self._body = io.BytesIO()
        site = getattr(self.channel, "site", None)
        refusals = getattr(site, "refusals", None)
        if refusals is not None:
            refusals.warn(
                "refused a request body over {limit} bytes from {peer}",
                limit=MAX_BODY,
                peer=self.getClientAddress(),
            )
        self.channel.transport.write(TOO_LARGE)  # type: ignore[union-attr]
        self.channel.loseConnection()  # type: ignore[union-attr]
