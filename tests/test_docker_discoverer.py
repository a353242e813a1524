"""
L{DockerDiscoverer}'s rules on a Clock, with a fake engine and a thread
pool the test runs by hand: reads that overlap events, an engine that goes
away and comes back, problems logged once, and clean stops.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from docker.errors import NotFound
from twisted.internet.task import Clock
from twisted.logger import capturedLogs, formatEvent
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from sidecar.catalog.local import LocalService
from sidecar.discovery.docker import (
    FIRST_RETRY,
    HEALTH_RECORDED,
    ContainerHealthChecker,
    DockerDiscoverer,
)
from sidecar.health.checkers import CheckFailed
from sidecar.interfaces import IDiscoveryListener
from sidecar.problems import DOCKER, Problems

A = "a" * 64
B = "b" * 64


def entry(containerID: str, **labels: str) -> dict[str, Any]:
    return {
        "Id": containerID,
        "Names": [f"/{containerID[:4]}"],
        "Image": "web:1",
        "Created": 1_700_000_000,
        "Ports": [{"PrivatePort": 80, "PublicPort": 32768, "Type": "tcp"}],
        "Labels": {"ServiceName": "web", **labels},
    }


class Unreachable(Exception):
    pass


class FakeEngine:
    """
    The containers a fake engine runs, and the client docker-py would be.
    """

    def __init__(self) -> None:
        self.running: dict[str, dict[str, Any]] = {}
        self.health: dict[str, str] = {}
        self.gone: set[str] = set()
        self.up = True
        self.streams: list[FakeStream] = []

    def containers(self, all: bool = False, filters: Any = None) -> list[Any]:
        if not self.up:
            raise Unreachable("connection refused")
        wanted = (filters or {}).get("id")
        return [e for i, e in self.running.items() if wanted in (None, i)]

    def inspect_container(self, containerID: str) -> dict[str, Any]:
        if containerID in self.gone:
            raise NotFound(f"no such container {containerID}")
        status = self.health.get(containerID)
        return {"State": {"Health": {"Status": status}} if status else {}}

    def events(self, decode: bool, filters: Any) -> FakeStream:
        if not self.up:
            raise Unreachable("connection refused")
        stream = FakeStream()
        self.streams.append(stream)
        return stream


class FakeStream:
    def __init__(self) -> None:
        self.closed = False

    def __iter__(self) -> Iterator[Any]:
        return iter(())  # the test delivers events itself

    def close(self) -> None:
        self.closed = True


class ManualPool:
    """
    A thread pool whose work runs when the test says: C{execute} runs the
    function (what the thread does), C{deliver} gives its result back.
    """

    def __init__(self) -> None:
        self.queued: list[tuple[Callable[..., None], Callable[..., Any], Any]] = []
        self.done: list[tuple[Callable[..., None], bool, Any]] = []

    def callInThreadWithCallback(
        self, onResult: Callable[..., None], f: Callable[..., Any], *a: Any, **kw: Any
    ) -> None:
        self.queued.append((onResult, f, (a, kw)))

    def execute(self) -> None:
        onResult, f, (a, kw) = self.queued.pop(0)
        try:
            self.done.append((onResult, True, f(*a, **kw)))
        except Exception as e:
            from twisted.python.failure import Failure

            self.done.append((onResult, False, Failure(e)))

    def deliver(self) -> None:
        onResult, ok, result = self.done.pop(0)
        onResult(ok, result)

    def runAll(self) -> None:
        while self.queued or self.done:
            while self.queued:
                self.execute()
            while self.done:
                self.deliver()


class FakeReactor(Clock):
    def __init__(self) -> None:
        super().__init__()
        self.pool = ManualPool()

    def getThreadPool(self) -> ManualPool:
        return self.pool

    def callFromThread(self, f: Callable[..., Any], *a: Any, **kw: Any) -> None:
        f(*a, **kw)


@implementer(IDiscoveryListener)
class Reports:
    def __init__(self) -> None:
        self.reports: list[list[str]] = []

    def servicesDiscovered(self, source: str, services: Any) -> None:
        self.reports.append([local.service.id for local in services])

    def serviceChanged(self, source: str, service: LocalService) -> None:
        raise AssertionError("docker discovery reports whole sets")


class DiscovererTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.engine = FakeEngine()
        self.reactor = FakeReactor()
        self.reports = Reports()
        self.problems = Problems(self.reactor)
        self.discoverer = DockerDiscoverer(
            lambda: self.engine,
            "host-a",
            "127.0.1.1",
            self.reports,
            self.reactor,
            resyncInterval=5.0,
            where="the fake engine",
            problems=self.problems,
        )

    def start(self) -> None:
        self.discoverer.startService()
        self.reactor.pool.runAll()

    def ids(self) -> list[str]:
        return [local.service.id for local in self.discoverer.services()]

    def event(self, action: str, containerID: str) -> None:
        self.discoverer._event({"Action": action, "id": containerID})

    def test_startReadsTheListAndFollowsEvents(self) -> None:
        self.engine.running[A] = entry(A)
        self.start()
        self.assertEqual(self.ids(), ["aaaaaaaaaaaa"])
        self.assertEqual(self.reports.reports, [["aaaaaaaaaaaa"]])
        self.assertEqual(len(self.engine.streams), 1)

    def test_aStartEventReadsThatContainer(self) -> None:
        self.start()
        self.engine.running[B] = entry(B)
        self.event("start", B)
        self.reactor.pool.runAll()
        self.assertEqual(self.ids(), ["bbbbbbbbbbbb"])

    def test_aStopEventRemovesAtOnce(self) -> None:
        self.engine.running[A] = entry(A)
        self.start()
        self.event("die", A)
        self.assertEqual(self.ids(), [])
        self.assertEqual(self.reactor.pool.queued, [])

    def test_aReadThatStartedBeforeAStopDoesNotBringItBack(self) -> None:
        self.engine.running[A] = entry(A)
        self.start()
        self.discoverer.reload()
        self.reactor.pool.execute()  # the list is read with A in it...
        del self.engine.running[A]
        self.event("die", A)  # ...then A dies and says so...
        self.reactor.pool.deliver()  # ...before the read comes back.
        self.assertEqual(self.ids(), [])

    def test_aReadThatStartedBeforeAStartKeepsIt(self) -> None:
        self.start()
        self.discoverer.reload()
        self.reactor.pool.execute()  # read without B
        self.engine.running[B] = entry(B)
        self.event("start", B)
        self.reactor.pool.execute()  # B's own read
        self.reactor.pool.deliver()  # the stale full read
        self.reactor.pool.deliver()  # B's read
        self.assertEqual(self.ids(), ["bbbbbbbbbbbb"])

    def test_oneReadAtATimeAndAnotherAfterIfAsked(self) -> None:
        self.start()
        first = self.discoverer.reload()
        second = self.discoverer.reload()
        self.assertEqual(len(self.reactor.pool.queued), 1)
        self.reactor.pool.execute()
        self.engine.running[A] = entry(A)  # after the first read
        self.reactor.pool.deliver()
        self.assertNoResult(first)  # both wait for the read that follows
        self.reactor.pool.runAll()
        self.successResultOf(first)
        self.successResultOf(second)
        self.assertEqual(self.ids(), ["aaaaaaaaaaaa"])

    def test_aReadForAnOlderEventDoesNotUndoANewerOne(self) -> None:
        self.start()
        self.engine.running[B] = entry(B)
        self.event("start", B)
        self.reactor.pool.execute()  # B's read sees it running...
        del self.engine.running[B]
        self.event("die", B)  # ...then it dies...
        self.reactor.pool.deliver()  # ...before that read comes back.
        self.assertEqual(self.ids(), [])

    def test_aContainerGoneBeforeItsInspectionIsSkipped(self) -> None:
        self.engine.running[A] = entry(A, HealthCheck="Docker")
        self.engine.running[B] = entry(B, HealthCheck="Docker")
        self.engine.gone = {B}
        self.start()
        self.assertEqual(self.ids(), ["aaaaaaaaaaaa", "bbbbbbbbbbbb"])
        self.assertIsNone(self.discoverer.lastError)

    def test_theListIsReadAgainEveryResyncInterval(self) -> None:
        self.start()
        self.engine.running[A] = entry(A)  # no event came for it
        self.reactor.advance(5)
        self.reactor.pool.runAll()
        self.assertEqual(self.ids(), ["aaaaaaaaaaaa"])

    def test_anUnreachableEngineKeepsTheServicesLogsOnceAndRetries(self) -> None:
        self.engine.running[A] = entry(A)
        self.start()
        self.engine.up = False
        with capturedLogs() as events:
            for _ in range(4):
                self.reactor.advance(30)
                self.reactor.pool.runAll()
        errors = [formatEvent(e) for e in events if e["log_level"].name == "error"]
        self.assertEqual(len(errors), 1)
        self.assertIn("cannot read containers from the fake engine", errors[0])
        self.assertIn("keeping the 1 service(s) last seen", errors[0])
        self.assertEqual(self.ids(), ["aaaaaaaaaaaa"])
        self.assertIn("connection refused", self.discoverer.lastError or "")
        self.assertEqual(
            [(p.kind, p.subject, p.message) for p in self.problems.current()],
            [(DOCKER, "the fake engine", self.discoverer.lastError)],
        )
        self.engine.up = True
        self.reactor.advance(30)
        self.reactor.pool.runAll()
        self.assertIsNone(self.discoverer.lastError)
        self.assertEqual(self.problems.current(), [])

    def test_retriesBackOff(self) -> None:
        self.engine.up = False
        self.start()
        delays = []
        for _ in range(7):
            [timer] = [
                c for c in self.reactor.getDelayedCalls() if "_resync" in repr(c)
            ]
            delays.append(round(timer.getTime() - self.reactor.seconds()))
            self.reactor.advance(timer.getTime() - self.reactor.seconds())
            self.reactor.pool.runAll()
        self.assertEqual(delays[0], FIRST_RETRY)
        self.assertEqual(delays[-1], 30)
        self.assertEqual(delays, sorted(delays))

    def test_aLabelProblemIsLoggedOncePerContainer(self) -> None:
        self.engine.running[A] = entry(A, ProxyMode="https")
        with capturedLogs() as events:
            self.start()
            for _ in range(3):
                self.reactor.advance(5)
                self.reactor.pool.runAll()
        warnings = [formatEvent(e) for e in events if e["log_level"].name == "warn"]
        self.assertEqual(len(warnings), 1)
        self.assertIn("label ProxyMode='https'", warnings[0])
        self.assertIn("label ProxyMode='https'", self.discoverer.lastError or "")

    def test_aMalformedEventIsIgnored(self) -> None:
        self.start()
        for event in (None, [], {"Action": "start"}, {"Action": 5, "id": A}, {"id": A}):
            self.discoverer._event(event)
        self.assertEqual(self.reactor.pool.queued, [])

    def test_stopCancelsTimersAndClosesTheStream(self) -> None:
        self.start()
        stream = self.engine.streams[-1]
        # The fake stream ended at once, so the discoverer subscribes again
        # after a pause; a live stream is closed by the stop.
        self.discoverer._stream = stream
        d = self.discoverer.stopService()
        self.reactor.pool.runAll()
        self.successResultOf(d)
        self.assertTrue(stream.closed)
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_theDockerCheckReadsTheContainersHealth(self) -> None:
        self.engine.running[A] = entry(A, HealthCheck="Docker")
        self.engine.health[A] = "starting"
        self.start()
        checker = ContainerHealthChecker(self.discoverer, "aaaaaaaaaaaa")
        failure = self.failureResultOf(checker.check(), CheckFailed)
        self.assertEqual(
            failure.getErrorMessage(), "the container's HEALTHCHECK says starting"
        )
        self.engine.health[A] = "healthy"
        self.event("health_status", A)
        self.reactor.pool.runAll()
        self.assertEqual(
            self.successResultOf(checker.check()),
            "the container's HEALTHCHECK says healthy",
        )

    def test_podmansBareHealthEventIsReadAgainOnceRecorded(self) -> None:
        """
        podman sends C{health_status} before it records the result: a read
        at once still sees the old status, and the one C{HEALTH_RECORDED}
        later sees the new.
        """
        self.engine.running[A] = entry(A, HealthCheck="Docker")
        self.engine.health[A] = "starting"
        self.start()
        self.event("health_status", A)
        self.reactor.pool.runAll()
        self.assertEqual(self.discoverer.containerHealth(A), "starting")
        self.engine.health[A] = "healthy"
        self.reactor.advance(HEALTH_RECORDED)
        self.assertEqual(len(self.reactor.pool.queued), 1)
        self.reactor.pool.runAll()
        self.assertEqual(self.discoverer.containerHealth(A), "healthy")

    def test_dockersHealthEventIsReadOnce(self) -> None:
        """
        Docker sends C{health_status: healthy} once the result is recorded:
        one read, and no second one.
        """
        self.engine.running[A] = entry(A, HealthCheck="Docker")
        self.engine.health[A] = "healthy"
        self.start()
        self.event("health_status: healthy", A)
        self.assertEqual(len(self.reactor.pool.queued), 1)
        self.reactor.pool.runAll()
        self.assertEqual(self.discoverer.containerHealth(A), "healthy")
        self.reactor.advance(HEALTH_RECORDED)
        self.assertEqual(self.reactor.pool.queued, [])

    def test_stopCancelsTheSecondHealthRead(self) -> None:
        self.engine.running[A] = entry(A, HealthCheck="Docker")
        self.start()
        self.event("health_status", A)
        d = self.discoverer.stopService()
        self.reactor.pool.runAll()
        self.successResultOf(d)
        self.assertEqual(self.reactor.getDelayedCalls(), [])
