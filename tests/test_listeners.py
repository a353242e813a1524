"""
Change listeners over real HTTP: the Go Sidecar's event body; a listener
that is slow, then down, then back receives every event in order; managed
listeners come and go with the local services that ask for them.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet import defer, reactor
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site

from sidecar.catalog import Port, Service, ServicesState, Status
from sidecar.listeners import Delivery, Listeners

from .processes import pollUntil

SECOND = 1_000_000_000
FAST = Delivery(timeout=1.0, firstRetry=0.05, lastRetry=0.2)


class Receiver(Resource):
    """
    Keeps every event POSTed to it; answers after C{delay} seconds.
    """

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.events: list[dict[str, Any]] = []
        self.delay = 0.0

    def render_POST(self, request):  # type: ignore[no-untyped-def]
        body = json.loads(request.content.read())

        def answer() -> None:
            self.events.append(body)
            request.finish()

        reactor.callLater(self.delay, answer)  # type: ignore[attr-defined]
        return NOT_DONE_YET


class ListenerTests(TestCase):
    def setUp(self) -> None:
        self.state = ServicesState("host-a", reactor)  # type: ignore[arg-type]
        self.addCleanup(self.state.stop)
        self.receiver = Receiver()
        self.site = Site(self.receiver)
        self.site.log = lambda request: None  # type: ignore[method-assign]
        self.port = reactor.listenTCP(0, self.site, interface="127.0.0.1")  # type: ignore[attr-defined]
        self.portNumber = self.port.getHost().port
        self.addCleanup(lambda: self.port.stopListening())

    def change(self, n: int, status: Status = Status.ALIVE) -> None:
        self.state.merge(
            Service(
                id=f"s{n:02d}",
                name="web",
                image="img",
                hostname="host-b",
                ports=(Port("tcp", 8000 + n, 10001, "127.0.1.2"),),
                updated=round(reactor.seconds() * SECOND),  # type: ignore[attr-defined]
                status=status,
            )
        )

    async def received(self, count: int, timeout: float = 15) -> None:
        await pollUntil(
            lambda: defer.succeed(True if len(self.receiver.events) >= count else None),
            timeout=timeout,
            every=0.02,
        )

    def start(self, urls: tuple[str, ...], wanted: Any = dict) -> Listeners:
        listeners = Listeners(self.state, urls, wanted, reactor, FAST)
        listeners.startService()
        self.addCleanup(listeners.stopService)
        return listeners

    async def test_theGoEventBody(self) -> None:
        self.start((f"http://127.0.0.1:{self.portNumber}/sidecar/update",))
        self.change(1)
        await self.received(1)
        [event] = self.receiver.events
        self.assertEqual(list(event), ["State", "ChangeEvent"])
        self.assertEqual(
            list(event["ChangeEvent"]), ["Service", "PreviousStatus", "Time"]
        )
        self.assertEqual(event["ChangeEvent"]["Service"]["ID"], "s01")
        self.assertEqual(event["ChangeEvent"]["PreviousStatus"], int(Status.UNKNOWN))
        self.assertEqual(list(event["State"]["Servers"]), ["host-b"])

    async def test_slowThenDownThenBackGetsEveryEventInOrder(self) -> None:
        listeners = self.start((f"http://127.0.0.1:{self.portNumber}/",))
        self.receiver.delay = 0.2  # slow
        for n in range(5):
            self.change(n)
        await self.received(2)
        await self.port.stopListening()  # down
        for n in range(5, 10):
            self.change(n)
        await deferLater(reactor, 0.5)
        [status] = listeners.status()
        self.assertGreater(status["Failures"], 0)
        self.assertIsNotNone(status["LastError"])
        self.receiver.delay = 0.0
        self.port = reactor.listenTCP(self.portNumber, self.site, interface="127.0.0.1")  # type: ignore[attr-defined]
        await self.received(10)  # back
        ids = [e["ChangeEvent"]["Service"]["ID"] for e in self.receiver.events]
        self.assertEqual(ids, [f"s{n:02d}" for n in range(10)])
        await pollUntil(
            lambda: defer.succeed(
                True if listeners.status()[0]["Waiting"] == 0 else None
            )
        )
        self.assertIsNone(listeners.status()[0]["LastError"])

    async def test_managedListenersComeAndGoWithTheirServices(self) -> None:
        wanted: dict[str, str] = {}
        listeners = self.start((), lambda: dict(wanted))
        wanted["Service(web-x1)"] = f"http://127.0.0.1:{self.portNumber}/sidecar/update"
        self.state.announceLocal(
            Service(id="x1", name="web", image="img", hostname="host-a")
        )
        self.assertEqual([s["Name"] for s in listeners.status()], ["Service(web-x1)"])
        self.assertTrue(listeners.status()[0]["Managed"])
        await self.received(1)
        wanted.clear()
        self.state.withdrawLocal("x1")
        self.assertEqual(listeners.status(), [])
