"""
C{/servers}: the Go Sidecar's text page of the catalog and the cluster's
members (see L{sidecar.web.goformat.serversPage}).
"""

from __future__ import annotations

from twisted.internet.interfaces import IReactorTime
from twisted.web.http import NOT_ALLOWED
from twisted.web.resource import Resource
from twisted.web.server import Request

from sidecar.catalog import ServicesState
from sidecar.interfaces import IMembership

from .api import notFound
from .goformat import NANOSECONDS, serversPage


class ServersPage(Resource):
    """
    C{GET /servers}, as Go writes it: C{text/html}, refreshing itself.
    Other methods get Go's bodiless 405.
    """

    isLeaf = True

    def __init__(
        self, state: ServicesState, membership: IMembership, clock: IReactorTime
    ) -> None:
        super().__init__()
        self._state = state
        self._membership = membership
        self._clock = clock

    def render(self, request: Request) -> bytes:  # type: ignore[override]
        if request.postpath:
            return notFound(request)
        if request.method not in (b"GET", b"HEAD"):
            request.setResponseCode(NOT_ALLOWED)
            request.setHeader(b"Allow", b"GET, HEAD")
            return b""
        request.setHeader(b"Content-Type", b"text/html")
        now = round(self._clock.seconds() * NANOSECONDS)
        return serversPage(self._state.snapshot(), self._membership.memberNames(), now)
