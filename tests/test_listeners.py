"""
Change listeners over real HTTP: the Go Sidecar's event body; a listener
that is slow, then down, then back receives every event in order; one
that stalls after its headers, or streams an endless body, fails visibly
and is delivered to again once it recovers, at no cost in memory; one far
behind has its backlog bounded and coalesced; managed listeners come and
go with the local services that ask for them.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from twisted.internet import defer, reactor
from twisted.internet.task import deferLater
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import capturedLogs, formatEvent
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site

from sidecar.catalog import Port, Service, ServicesState, Status
from sidecar.catalog.state import ChangeEvent
from sidecar.listeners import Delivery, Listeners, UrlListener
from sidecar.problems import LISTENER, Problems

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


class Misbehaving(Resource):
    """
    Takes every event; while C{stall}, answers 200 with its headers and
    then nothing more; while C{stream}, a body that never ends (as fast as
    the client reads it); while C{hangUp}, closes the connection without
    an answer.  Counts the body bytes it wrote.
    """

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.events: list[dict[str, Any]] = []
        self.stall = False
        self.stream = False
        self.hangUp = False
        self.written = 0
        self.open: list[Any] = []

    def render_POST(self, request):  # type: ignore[no-untyped-def]
        body = json.loads(request.content.read())
        if self.hangUp:
            request.transport.abortConnection()
            return NOT_DONE_YET
        if self.stall:
            request.write(b"")  # the headers, then silence
            self.open.append(request)
            return NOT_DONE_YET
        if self.stream:
            request.registerProducer(_Endless(self, request), True)
            return NOT_DONE_YET
        self.events.append(body)
        return b""


class _Endless:
    """
    A push producer of an endless body, writing while the client reads.
    """

    def __init__(self, resource: Misbehaving, request: Any) -> None:
        self._resource = resource
        self._request = request
        self._paused = False
        self._stopped = False
        request.notifyFinish().addErrback(lambda _: self.stopProducing())
        reactor.callLater(0, self._write)  # type: ignore[attr-defined]

    def _write(self) -> None:
        while not self._paused and not self._stopped:
            self._request.write(b"x" * 65536)
            self._resource.written += 65536
        if not self._stopped:
            reactor.callLater(0.001, self._write)  # type: ignore[attr-defined]

    def pauseProducing(self) -> None:
        self._paused = True

    def resumeProducing(self) -> None:
        self._paused = False

    def stopProducing(self) -> None:
        self._stopped = True


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

    def change(
        self, n: int, status: Status = Status.ALIVE, updated: int | None = None
    ) -> None:
        if updated is None:
            updated = round(reactor.seconds() * SECOND)  # type: ignore[attr-defined]
        self.state.merge(
            Service(
                id=f"s{n:02d}",
                name="web",
                image="img",
                hostname="host-b",
                ports=(Port("tcp", 8000 + n, 10001, "127.0.1.2"),),
                updated=updated,
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
        self.problems = Problems(reactor)  # type: ignore[arg-type]
        listeners = Listeners(
            self.state, urls, wanted, reactor, FAST, problems=self.problems
        )
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

    def serveMisbehaving(self) -> tuple[Misbehaving, str]:
        resource = Misbehaving()
        site = Site(resource)
        site.log = lambda request: None  # type: ignore[method-assign]
        port = reactor.listenTCP(0, site, interface="127.0.0.1")  # type: ignore[attr-defined]
        self.addCleanup(port.stopListening)
        return resource, f"http://127.0.0.1:{port.getHost().port}/"

    async def test_aListenerThatStallsAfterItsHeadersFailsThenRecovers(
        self,
    ) -> None:
        resource, url = self.serveMisbehaving()
        resource.stall = True
        with capturedLogs() as events:
            listeners = self.start((url,))
            self.change(1)
            await pollUntil(
                lambda: defer.succeed(
                    True if listeners.status()[0]["Failures"] else None
                ),
                timeout=10,
            )
            [status] = listeners.status()
            self.assertEqual(
                status["LastError"], f"{url}: no complete answer within 1 s"
            )
            self.assertEqual(status["Delivered"], 0)
            self.assertEqual(
                [(p.kind, p.subject, p.message) for p in self.problems.current()],
                [(LISTENER, f"UrlListener({url})", status["LastError"])],
            )
            resource.stall = False  # it recovers
            self.change(2)
            await pollUntil(
                lambda: defer.succeed(True if len(resource.events) == 2 else None),
                timeout=10,
            )
        ids = [e["ChangeEvent"]["Service"]["ID"] for e in resource.events]
        self.assertEqual(ids, ["s01", "s02"])
        await pollUntil(
            lambda: defer.succeed(
                True if listeners.status()[0]["Delivered"] == 2 else None
            )
        )
        self.assertIsNone(listeners.status()[0]["LastError"])
        self.assertEqual(self.problems.current(), [])
        logged = [formatEvent(e) for e in events]
        self.assertIn(
            f"listener UrlListener({url}): {url}: no complete answer within 1 s;"
            " retrying",
            logged,
        )
        self.assertIn(
            f"listener UrlListener({url}): {url} accepts events again", logged
        )
        for request in resource.open:
            self.assertTrue(request._disconnected)  # the stalled ones were closed

    async def test_aFailureSaysWhatHappenedNotAFailureRepr(self) -> None:
        resource, url = self.serveMisbehaving()
        resource.hangUp = True
        listeners = self.start((url,))
        self.change(1)
        await pollUntil(
            lambda: defer.succeed(True if listeners.status()[0]["Failures"] else None),
            timeout=10,
        )
        problem = listeners.status()[0]["LastError"]
        self.assertTrue(problem.startswith(f"{url}: "), problem)
        self.assertIn("lost", problem)
        self.assertNotIn("Failure", problem)

    async def test_anEndlessBodyIsCutShortAndCostsNoMemory(self) -> None:
        resource, url = self.serveMisbehaving()
        resource.stream = True
        listeners = Listeners(
            self.state, (url,), dict, reactor, replace(FAST, timeout=10.0)
        )
        listeners.startService()
        self.addCleanup(listeners.stopService)
        self.change(1)
        await pollUntil(
            lambda: defer.succeed(True if listeners.status()[0]["Failures"] else None),
            timeout=10,
        )
        self.assertEqual(
            listeners.status()[0]["LastError"],
            f"{url}: an answer body longer than 65536 bytes",
        )
        # The connection was closed: the endpoint could write little more
        # than the limit and what the sockets' buffers hold.
        written = resource.written
        await deferLater(reactor, 0.3)
        self.assertLess(resource.written, 16 * 1024 * 1024)
        resource.stream = False  # it recovers
        await pollUntil(
            lambda: defer.succeed(True if resource.events else None), timeout=10
        )
        self.assertGreater(written, 65536)
        self.assertIsNone(listeners.status()[0]["LastError"])

    async def test_aListenerFarBehindHasItsBacklogCoalesced(self) -> None:
        await self.port.stopListening()  # down
        url = f"http://127.0.0.1:{self.portNumber}/"
        listeners = Listeners(
            self.state, (url,), dict, reactor, replace(FAST, queueLimit=4)
        )
        listeners.startService()
        self.addCleanup(listeners.stopService)
        # Each change newer than the last, whatever the clock's resolution.
        at = round(reactor.seconds() * SECOND)  # type: ignore[attr-defined]
        for n in range(3):
            self.change(n, Status.ALIVE, at)
        for step in range(1, 11):
            for n in range(3):
                status = Status.UNHEALTHY if step % 2 else Status.ALIVE
                self.change(n, status, at + step)
        self.change(3, Status.UNHEALTHY, at)
        [status] = listeners.status()
        self.assertLessEqual(status["Waiting"], 4)
        self.assertGreater(status["Coalesced"], 0)
        self.port = reactor.listenTCP(self.portNumber, self.site, interface="127.0.0.1")  # type: ignore[attr-defined]
        await pollUntil(
            lambda: defer.succeed(
                True if listeners.status()[0]["Waiting"] == 0 else None
            ),
            timeout=10,
        )
        events = self.receiver.events
        self.assertLessEqual(len(events), 4)
        # The newest state of every service arrives.
        last = events[-1]["State"]["Servers"]["host-b"]["Services"]
        self.assertEqual(
            {sid: s["Status"] for sid, s in last.items()},
            {
                "s00": int(Status.ALIVE),
                "s01": int(Status.ALIVE),
                "s02": int(Status.ALIVE),
                "s03": int(Status.UNHEALTHY),
            },
        )

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


def event(serviceID: str, status: Status, previous: Status) -> ChangeEvent:
    return ChangeEvent(
        Service(
            id=serviceID,
            name="web",
            image="img",
            hostname="host-b",
            ports=(Port("tcp", 8000, 10001, "127.0.1.2"),),
            updated=SECOND,
            status=status,
        ),
        previous,
        SECOND,
    )


class QueueBoundTests(SynchronousTestCase):
    """
    The queue of a listener whose first event is still being sent (its
    connection never completes, on a memory reactor): past the bound a
    service's waiting event gives way to its newer one, keeping the status
    it changed from, or else the oldest waiting event is dropped; the event
    being sent is never touched.
    """

    def listener(self, limit: int) -> UrlListener:
        self.reactor = MemoryReactorClock()
        listener = UrlListener(
            "http://127.0.0.1:9/",
            "UrlListener(http://127.0.0.1:9/)",
            lambda event: b"{}",
            self.reactor,
            replace(FAST, queueLimit=limit),
            Problems(self.reactor),
        )
        self.addCleanup(listener.stop)
        return listener

    def queued(self, listener: UrlListener) -> list[tuple[str, Status, Status]]:
        return [
            (e.service.id, e.service.status, e.previousStatus) for e in listener._queue
        ]

    def test_theOldestWaitingEventIsDroppedPastTheBound(self) -> None:
        listener = self.listener(3)
        for name in ("s1", "s2", "s3"):
            listener.enqueue(event(name, Status.ALIVE, Status.UNKNOWN))
        self.assertEqual(len(self.reactor.tcpClients), 1)  # s1 is being sent
        with capturedLogs() as logged:
            listener.enqueue(event("s4", Status.ALIVE, Status.UNKNOWN))
        self.assertEqual([e.service.id for e in listener._queue], ["s1", "s3", "s4"])
        self.assertEqual((listener.dropped, listener.coalesced), (1, 0))
        self.assertEqual(listener.waiting, 3)
        self.assertIn(
            "1 event(s) dropped, http://127.0.0.1:9/ is too far behind",
            " ".join(formatEvent(e) for e in logged),
        )
        # The event being sent is not waiting: a newer event of its
        # service does not replace it.
        listener.enqueue(event("s1", Status.UNHEALTHY, Status.ALIVE))
        self.assertEqual([e.service.id for e in listener._queue], ["s1", "s4", "s1"])
        self.assertEqual(listener.dropped, 2)

    def test_aWaitingEventGivesWayToItsServicesNewerOne(self) -> None:
        listener = self.listener(3)
        listener.enqueue(event("s1", Status.ALIVE, Status.UNKNOWN))
        listener.enqueue(event("s2", Status.ALIVE, Status.UNKNOWN))
        listener.enqueue(event("s3", Status.ALIVE, Status.UNKNOWN))
        listener.enqueue(event("s2", Status.UNHEALTHY, Status.ALIVE))
        self.assertEqual(
            self.queued(listener),
            [
                ("s1", Status.ALIVE, Status.UNKNOWN),
                ("s3", Status.ALIVE, Status.UNKNOWN),
                # Newest status, and the one it changed from before both.
                ("s2", Status.UNHEALTHY, Status.UNKNOWN),
            ],
        )
        self.assertEqual((listener.dropped, listener.coalesced), (0, 1))

    def test_withOnlyTheEventBeingSentNothingIsDropped(self) -> None:
        listener = self.listener(1)
        listener.enqueue(event("s1", Status.ALIVE, Status.UNKNOWN))
        listener.enqueue(event("s2", Status.ALIVE, Status.UNKNOWN))
        self.assertEqual([e.service.id for e in listener._queue], ["s1", "s2"])
        self.assertEqual((listener.dropped, listener.coalesced), (0, 0))
        # Now s2 waits, and gives way to s3.
        listener.enqueue(event("s3", Status.ALIVE, Status.UNKNOWN))
        self.assertEqual([e.service.id for e in listener._queue], ["s1", "s3"])
        self.assertEqual(listener.dropped, 1)

    def test_aQueueNotYetSendingDropsItsOldest(self) -> None:
        listener = self.listener(2)
        listener._stopped = True  # nothing is sent: every event waits
        for name in ("s1", "s2", "s3"):
            listener.enqueue(event(name, Status.ALIVE, Status.UNKNOWN))
        self.assertEqual([e.service.id for e in listener._queue], ["s2", "s3"])
        self.assertEqual(self.reactor.tcpClients, [])
