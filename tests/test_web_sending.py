"""
Large bodies go out in slices, each when the transport asks for more, so
that a connection holds one slice and not a copy of the whole document.
"""

from __future__ import annotations

from twisted.internet import reactor
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.client import Agent, readBody
from twisted.web.test.requesthelper import DummyRequest

from sidecar.catalog import ServicesState
from sidecar.catalog.codec import dumps
from sidecar.catalog.documents import servicesDocument
from sidecar.web.sending import SLICE, sendBody
from sidecar.web.server import APIService, makeSite

from .doubles import Members
from .test_web_api import Health, record

TIMEOUT = 10.0


class SliceTests(SynchronousTestCase):
    def test_aLargeBodyGoesInSlices(self) -> None:
        data = bytes(range(256)) * (SLICE // 256) * 3 + b"tail"
        request = DummyRequest([b""])
        sendBody(request, data)
        self.assertEqual([len(w) for w in request.written], [SLICE] * 3 + [4])
        self.assertEqual(b"".join(request.written), data)
        self.assertEqual(request.finished, 1)
        self.assertEqual(
            request.responseHeaders.getRawHeaders(b"content-length"),
            [b"%d" % len(data)],
        )

    def test_aSmallBodyGoesAtOnce(self) -> None:
        request = DummyRequest([b""])
        sendBody(request, b"{}")
        self.assertEqual((request.written, request.finished), ([b"{}"], 1))

    def test_aLostConnectionStopsTheSlices(self) -> None:
        request = DummyRequest([b""])
        request.registerProducer = lambda producer, streaming: setattr(  # type: ignore[method-assign]
            request, "producer", producer
        )
        sendBody(request, b"x" * (3 * SLICE))
        producer = request.producer
        producer.resumeProducing()
        producer.stopProducing()
        producer.resumeProducing()
        self.assertEqual(len(request.written), 1)
        self.assertEqual(request.finished, 0)


class LoopbackTests(TestCase):
    async def test_aLargeDocumentArrivesWhole(self) -> None:
        clock = Clock()
        clock.advance(1_700_000_000)
        state = ServicesState("node-a", clock)
        self.addCleanup(state.stop)
        for n in range(1500):
            state.merge(record(f"{n:012x}", f"svc-{n % 50}", "node-b", state.now()))
        members = Members("node-a", "node-b")
        api = APIService(
            reactor,  # type: ignore[arg-type]
            makeSite(state, members, Health(), reactor=reactor),
            "127.0.0.1",
            0,
        )
        api.startService()
        self.addCleanup(api.stopService)
        port = api.port.getHost().port  # type: ignore[union-attr]
        expected = dumps(servicesDocument(state, members.names), indent=2)
        self.assertGreater(len(expected), 4 * SLICE)
        agent = Agent(reactor)
        response = await agent.request(
            b"GET", b"http://127.0.0.1:%d/api/services.json" % port
        ).addTimeout(TIMEOUT, reactor)
        body = await readBody(response).addTimeout(TIMEOUT, reactor)
        self.assertEqual(response.code, 200)
        self.assertEqual(body, expected)
