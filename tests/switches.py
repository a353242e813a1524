"""
Real HTTP servers for tests: L{serve} any resource, and L{serveSwitch}, a
server whose answer a test turns from healthy to unhealthy and back.
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


def serve(
    case: TestCase, resource: Resource, host: str = "127.0.0.1", port: int = 0
) -> int:
    """
    Serve C{resource} on C{host} at C{port} (a free one by default),
    without access log lines, until C{case} cleans up.

    @return: the port.
    """
    site = Site(resource)
    site.log = lambda request: None  # type: ignore[method-assign]
    listening = reactor.listenTCP(port, site, interface=host)  # type: ignore[attr-defined]
    case.addCleanup(listening.stopListening)
    return listening.getHost().port  # type: ignore[no-any-return]


def serveSwitch(case: TestCase, host: str = "127.0.0.1") -> tuple[Switch, int]:
    """
    A L{Switch} on C{host} at a free port until C{case} cleans up.

    @return: the switch and its port.
    """
    switch = Switch()
    return switch, serve(case, switch, host)
