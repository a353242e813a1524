"""
L{serveSwitch}: a real HTTP server whose answer a test turns from healthy
to unhealthy and back.
"""

from __future__ import annotations

from twisted.internet import reactor
from twisted.trial.unittest import TestCase
from twisted.web.resource import Resource
from twisted.web.server import Site


class Switch(Resource):
    """
    Answers every GET with C{code} and an empty body.
    """

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.code = 200
        self.requests = 0

    def render_GET(self, request):  # type: ignore[no-untyped-def]
        self.requests += 1
        request.setResponseCode(self.code)
        return b""


def serveSwitch(case: TestCase, host: str = "127.0.0.1") -> tuple[Switch, int]:
    """
    Listen on C{host} at a free port until C{case} cleans up.

    @return: the switch and its port.
    """
    switch = Switch()
    site = Site(switch)
    site.log = lambda request: None  # type: ignore[method-assign]
    port = reactor.listenTCP(0, site, interface=host)  # type: ignore[attr-defined]
    case.addCleanup(port.stopListening)
    return switch, port.getHost().port
