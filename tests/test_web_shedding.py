"""
The API's connection cap, over real loopback sockets: a connection beyond
it is answered 503 with Retry-After and closed, without its request being
parsed; a freed slot serves again.
"""

from __future__ import annotations

import json

import treq
from twisted.internet import defer, reactor
from twisted.internet.address import IPv4Address
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.error import ConnectionDone
from twisted.internet.protocol import Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import capturedLogs, formatEvent
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.resource import Resource
from twisted.web.server import Site

from sidecar.catalog import ServicesState
from sidecar.web import shedding
from sidecar.web.server import APIService, makeSite
from sidecar.web.shedding import ConnectionCap

from .doubles import Members
from .processes import pollUntil
from .test_web_api import Health

TIMEOUT = 5.0


class Client(Protocol):
    """
    A raw connection: what it receives, and when it is closed.
    """

    def __init__(self, request: bytes = b"") -> None:
        self.request = request
        self.received = b""
        self.closed: defer.Deferred[bytes] = defer.Deferred()

    def connectionMade(self) -> None:
        if self.request:
            self.transport.write(self.request)  # type: ignore[union-attr]

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason: Failure | None = None) -> None:
        self.closed.callback(self.received)


class ConnectionCapTests(TestCase):
    def setUp(self) -> None:
        state = ServicesState("node-a", reactor)  # type: ignore[arg-type]
        self.addCleanup(state.stop)
        self.api = APIService(
            reactor,  # type: ignore[arg-type]
            makeSite(state, Members("node-a"), Health(), reactor=reactor),
            "127.0.0.1",
            0,
            maxConnections=2,
        )
        self.api.startService()
        self.addCleanup(self.api.stopService)
        self.port = self.api.port.getHost().port  # type: ignore[union-attr]

    async def connect(self, client: Client) -> Client:
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", self.port, timeout=5)
        await connectProtocol(endpoint, client).addTimeout(TIMEOUT, reactor)
        return client

    async def held(self) -> Client:
        client = await self.connect(Client())
        self.addCleanup(self.drop, client)
        return client

    async def drop(self, client: Client) -> None:
        if not client.closed.called:
            client.transport.loseConnection()  # type: ignore[union-attr]
            await client.closed

    async def test_overTheCapIs503WithRetryAfter(self) -> None:
        first = await self.held()
        await self.held()
        request = b"GET /api/state.json HTTP/1.1\r\nHost: x\r\n\r\n"
        with capturedLogs() as events:
            refused = await self.connect(Client(request))
            answer = await refused.closed.addTimeout(TIMEOUT, reactor)
        head, _, body = answer.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        self.assertEqual(lines[0], b"HTTP/1.1 503 Service Unavailable")
        self.assertIn(b"Retry-After: 1", lines)
        self.assertIn(b"Connection: close", lines)
        self.assertIn(b"Content-Length: %d" % len(body), lines)
        self.assertEqual(json.loads(body)["status"], "error")
        self.assertEqual(self.api.factory.shed, 1)
        self.assertIn(
            "API at its limit of 2 connections",
            " ".join(formatEvent(e) for e in events),
        )
        # A freed slot serves again.
        await self.drop(first)
        await pollUntil(
            lambda: defer.succeed(True if self.api.factory.open < 2 else None),
            timeout=TIMEOUT,
            every=0.01,
        )
        response = await treq.get(
            f"http://127.0.0.1:{self.port}/api/state.json",
            persistent=False,
            timeout=TIMEOUT,
        )
        self.assertEqual(response.code, 200)
        await response.content()


class HalfClosingTransport(StringTransport):
    writeClosed = False

    def loseWriteConnection(self) -> None:
        self.writeClosed = True


class RefusalTests(SynchronousTestCase):
    def test_aRefusedClientThatStaysIsCut(self) -> None:
        clock = Clock()
        cap = ConnectionCap(Site(Resource()), 0, clock, b"{}")
        refusal = cap.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
        transport = HalfClosingTransport()
        refusal.makeConnection(transport)  # type: ignore[union-attr]
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 503 "))
        self.assertTrue(transport.writeClosed)
        refusal.dataReceived(b"GET / HTTP/1.1\r\n\r\n")  # type: ignore[union-attr]
        clock.advance(shedding.LINGER - 0.1)
        self.assertFalse(transport.disconnecting)
        clock.advance(0.1)
        self.assertTrue(transport.disconnecting)
        self.assertEqual(cap.shed, 1)
        self.assertEqual(cap.open, 0)
        # The cut connection is then lost, its timer gone already.
        refusal.connectionLost(Failure(ConnectionDone()))  # type: ignore[union-attr]
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_aRefusedClientThatLeavesCancelsTheTimer(self) -> None:
        clock = Clock()
        cap = ConnectionCap(Site(Resource()), 0, clock, b"{}")
        refusal = cap.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
        refusal.makeConnection(HalfClosingTransport())  # type: ignore[union-attr]
        refusal.connectionLost(Failure(ConnectionDone()))  # type: ignore[union-attr]
        self.assertEqual(clock.getDelayedCalls(), [])
