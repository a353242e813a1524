"""
The health monitor on a Clock, with checkers the test controls: statuses
flow to the announcer's side as they change, timeouts, bounded
concurrency, jitter, the Go default check, bad checks, and clean stops.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import replace

from twisted.internet import defer, reactor
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.logger import capturedLogs, formatEvent
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface import implementer

from sidecar.announce import LocalAnnouncer
from sidecar.catalog import IBroadcaster, Port, Service, ServicesState, Status
from sidecar.catalog.local import CheckSpec, LocalService
from sidecar.health.checkers import CheckerRegistry, CheckFailed
from sidecar.health.commands import CommandPolicy
from sidecar.health.monitor import HealthMonitor, HealthSettings
from sidecar.interfaces import (
    IChecker,
    ICheckerFactory,
    ICheckObserver,
    IDiscoveryListener,
)

from .processes import pollUntil
from .switches import serveSwitch


@implementer(IDiscoveryListener)
class Downstream:
    def __init__(self) -> None:
        self.reports: list[tuple[str, list[tuple[str, Status]]]] = []

    def servicesDiscovered(self, source, services):  # type: ignore[no-untyped-def]
        self.reports.append(
            (source, [(local.service.id, local.service.status) for local in services])
        )

    def serviceChanged(self, source, service):  # type: ignore[no-untyped-def]
        self.reports.append((source, [(service.service.id, service.service.status)]))

    def last(self, serviceID: str) -> Status:
        for _, services in reversed(self.reports):
            for found, status in services:
                if found == serviceID:
                    return status
        raise KeyError(serviceID)


@implementer(IChecker)
class Scripted:
    """Answers as its factory's C{healthy[args]} says; C{None}: never."""

    def __init__(self, factory: ScriptedFactory, args: str) -> None:
        self.factory = factory
        self.args = args

    def check(self) -> Deferred[str]:
        self.factory.started.append(self.args)
        if self.args in self.factory.deferreds:
            return self.factory.deferreds[self.args]
        answer = self.factory.healthy.get(self.args, True)
        if answer is None:
            d: Deferred[str] = Deferred(
                lambda d: self.factory.cancelled.append(self.args)
            )
            return d
        if answer:
            return succeed("fine")
        return fail(CheckFailed(f"{self.args} is broken"))


@implementer(ICheckerFactory)
class ScriptedFactory:
    name = "Scripted"

    def __init__(self) -> None:
        self.healthy: dict[str, bool | None] = {}
        self.started: list[str] = []
        self.cancelled: list[str] = []
        self.deferreds: dict[str, Deferred[str]] = {}

    def checkerFor(self, args: str, reactor: object) -> IChecker:
        return Scripted(self, args)


def local(  # type: ignore[no-untyped-def]
    serviceID: str, check: str = "Scripted", ports=(), **timing: float
) -> LocalService:
    service = Service(
        id=serviceID,
        name="web",
        image="web:1",
        created=0,
        hostname="me",
        ports=tuple(ports),
        updated=0,
    )
    spec = CheckSpec(check, serviceID if check else "", **timing)
    return LocalService(service, spec)


@implementer(IBroadcaster)
class Broadcasts:
    """Notes each record a catalog sends to peers: its ID and status."""

    def __init__(self, sent: list[tuple[str, Status]]) -> None:
        self.sent = sent

    def broadcast(self, services: Sequence[Service]) -> None:
        self.sent.extend((s.id, s.status) for s in services)


class MonitorTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.scripted = ScriptedFactory()
        self.downstream = Downstream()
        self.settings = HealthSettings(interval=3.0, timeout=1.0, concurrency=3)
        self.monitor = self.startMonitor(self.scripted)

    def startMonitor(
        self, factory: ICheckerFactory, settings: HealthSettings | None = None
    ) -> HealthMonitor:
        """
        A running monitor with the checks of C{factory}, reporting to
        C{self.downstream}, seeded: the same jitter at every run.
        """
        monitor = HealthMonitor(
            self.downstream,
            self.clock,
            CheckerRegistry([factory]),
            "127.0.1.1",
            settings or self.settings,
            random.Random(1),
        )
        monitor.startService()
        self.addCleanup(monitor.stopService)
        return monitor

    def test_aNewServiceIsUnknownThenAliveAfterItsFirstCheck(self) -> None:
        self.monitor.servicesDiscovered("static", [local("a")])
        self.assertEqual(self.downstream.last("a"), Status.UNKNOWN)
        self.clock.advance(0)  # the first check runs at once
        self.assertEqual(self.downstream.last("a"), Status.ALIVE)
        self.assertEqual(self.monitor.report()["a"]["LastResult"], "fine")

    def test_failingAndRecoveringChangesArePassedOnAtOnce(self) -> None:
        self.monitor.servicesDiscovered("static", [local("a")])
        self.clock.advance(3)
        self.scripted.healthy["a"] = False
        self.clock.advance(3.5)
        self.assertEqual(self.downstream.last("a"), Status.UNHEALTHY)
        self.assertEqual(self.monitor.report()["a"]["LastError"], "a is broken")
        reports = len(self.downstream.reports)
        self.clock.advance(3.5)  # still failing: nothing new to say
        self.assertEqual(len(self.downstream.reports), reports)
        self.scripted.healthy["a"] = True
        self.clock.advance(3.5)
        self.assertEqual(self.downstream.last("a"), Status.ALIVE)

    def test_aCheckThatHangsEndsAtItsTimeout(self) -> None:
        self.scripted.healthy["a"] = None
        self.monitor.servicesDiscovered("static", [local("a")])
        self.clock.advance(3)
        self.assertEqual(self.scripted.started, ["a"])
        self.clock.advance(1)
        self.assertEqual(self.scripted.cancelled, ["a"])
        self.assertEqual(self.downstream.last("a"), Status.UNHEALTHY)
        self.assertEqual(self.monitor.report()["a"]["LastError"], "timed out after 1 s")

    def test_noMoreThanTheConcurrencyLimitRunAtOnce(self) -> None:
        ids = [f"s{n}" for n in range(10)]
        for serviceID in ids:
            self.scripted.healthy[serviceID] = None
        self.monitor.servicesDiscovered("static", [local(i) for i in ids])
        self.clock.advance(2.9)  # every first check is due, none timed out
        self.assertEqual(len(self.scripted.started), 3)

    def test_firstChecksRunAtOnceAndTheSecondsAreSpreadOut(self) -> None:
        ids = [f"s{n}" for n in range(30)]
        self.monitor.servicesDiscovered("static", [local(i) for i in ids])
        self.clock.advance(0)
        self.assertEqual(sorted(self.scripted.started), sorted(ids))
        self.scripted.started.clear()
        started = []
        for _ in range(50):
            self.clock.advance(0.1)
            started.append(len(set(self.scripted.started)))
        # The seconds land over 1.5-4.5 s (an interval of 3 s, +-50 %).
        self.assertEqual(started[13], 0)
        self.assertGreater(started[29], 5)  # at 3 s: some, not all
        self.assertLess(started[29], 25)
        self.assertEqual(started[-1], 30)

    def test_aNewServiceOnARunningNodeIsGossipedAliveAtOnce(self) -> None:
        state = ServicesState("me", self.clock)
        sent: list[tuple[str, Status]] = []
        state.addBroadcaster(Broadcasts(sent))
        announcer = LocalAnnouncer(state, self.clock)
        monitor = HealthMonitor(
            announcer,
            self.clock,
            CheckerRegistry([self.scripted]),
            "127.0.1.1",
            self.settings,
            random.Random(1),
        )
        monitor.startService()
        self.addCleanup(monitor.stopService)
        self.clock.advance(100)
        monitor.servicesDiscovered("static", [local("new")])
        self.assertEqual(sent, [("new", Status.UNKNOWN)])
        self.clock.advance(0)
        self.assertEqual(sent, [("new", Status.UNKNOWN), ("new", Status.ALIVE)])
        self.assertEqual(state.get("me", "new").status, Status.ALIVE)  # type: ignore[union-attr]

    def test_aServiceMaySetItsOwnIntervalAndTimeout(self) -> None:
        self.scripted.healthy["slow"] = None
        self.monitor.servicesDiscovered(
            "static",
            [local("a", interval=10.0), local("slow", interval=10.0, timeout=5.0)],
        )
        for _ in range(300):
            self.clock.advance(0.1)
        # 30 s at a 10 s interval: at 0 s, at 5-15 s, then 9-11 s apart.
        self.assertIn(self.scripted.started.count("a"), (3, 4))
        self.assertEqual(self.monitor.report()["slow"]["Timeout"], 5.0)
        self.assertEqual(
            self.monitor.report()["slow"]["LastError"], "timed out after 5 s"
        )

    def test_theTimeoutIsNeverLongerThanTheInterval(self) -> None:
        self.monitor.servicesDiscovered(
            "static", [local("a", interval=0.5, timeout=2.0)]
        )
        self.assertEqual(self.monitor.report()["a"]["Timeout"], 0.5)

    def test_waitingForATurnIsNotPartOfTheTimeout(self) -> None:
        monitor = self.startMonitor(
            self.scripted, HealthSettings(interval=3.0, timeout=1.0, concurrency=1)
        )
        self.scripted.healthy["hangs"] = None
        pending: Deferred[str] = Deferred()
        self.scripted.deferreds = {"late": pending}
        monitor.servicesDiscovered("static", [local("hangs"), local("late")])
        self.clock.advance(3)  # both first checks are due; one slot
        self.assertEqual(self.scripted.started, ["hangs"])
        self.clock.advance(1)  # the hanging one times out, the other starts
        self.assertEqual(self.scripted.started, ["hangs", "late"])
        self.clock.advance(0.9)
        pending.callback("fine")
        self.assertEqual(self.downstream.last("late"), Status.ALIVE)
        self.assertAlmostEqual(monitor.report()["late"]["LastDuration"], 0.9)

    def test_theReportSaysWhatAndWhen(self) -> None:
        self.clock.advance(1_700_000_000)
        self.monitor.servicesDiscovered("static", [local("a")])
        self.assertEqual(
            self.monitor.report()["a"],
            {
                "Name": "web",
                "Check": {"Type": "Scripted", "Args": "a"},
                "Interval": 3.0,
                "Timeout": 1.0,
                "Status": "Unknown",
                "Suppressed": False,
                "LastResult": "",
                "LastError": "",
                "LastChecked": None,
                "LastDuration": None,
            },
        )
        self.clock.advance(3)
        report = self.monitor.report()["a"]
        self.assertEqual(report["Status"], "Alive")
        self.assertEqual(report["LastResult"], "fine")
        self.assertRegex(report["LastChecked"], r"^2023-11-14T22:13:2\d(\.\d+)?Z$")
        self.assertEqual(report["LastDuration"], 0.0)

    def test_aFlappingServiceIsHeldUnhealthyNotAnnouncedAtEveryCheck(self) -> None:
        self.monitor.servicesDiscovered("static", [local("a")])
        self.clock.advance(3)
        changes = []
        for flip in range(20):
            self.scripted.healthy["a"] = flip % 2 == 1
            before = self.downstream.last("a")
            self.clock.advance(3.3)
            if self.downstream.last("a") is not before:
                changes.append(self.downstream.last("a"))
        # Three changes reach the suppression threshold; then it holds.
        self.assertEqual(changes, [Status.UNHEALTHY, Status.ALIVE, Status.UNHEALTHY])
        self.assertTrue(self.monitor.report()["a"]["Suppressed"])

    def test_theGoDefaultCheck(self) -> None:
        withPort = local("a", check="", ports=[Port("tcp", 8080, 10001, "")])
        onIP = local(
            "b", check="", ports=[Port("udp", 53), Port("tcp", 81, 0, "127.0.1.9")]
        )
        without = local("c", check="", ports=[Port("udp", 53)])
        self.assertEqual(
            self.monitor.effectiveCheck(withPort),
            CheckSpec("HttpGet", "http://127.0.1.1:8080/version"),
        )
        self.assertEqual(
            self.monitor.effectiveCheck(onIP),
            CheckSpec("HttpGet", "http://127.0.1.9:81/version"),
        )
        self.assertEqual(
            self.monitor.effectiveCheck(without), CheckSpec("AlwaysSuccessful", "")
        )

    def test_aCheckThatCannotRunMakesTheServiceUnhealthyAndSaysWhy(self) -> None:
        self.monitor.servicesDiscovered("static", [local("a", check="Ping")])
        self.assertEqual(self.downstream.last("a"), Status.UNHEALTHY)
        error = self.monitor.report()["a"]["LastError"]
        self.assertIn("bad check: unknown check type 'Ping'", error)
        self.clock.advance(10)
        self.assertEqual(self.scripted.started, [])

    def test_aServiceWhoseCheckChangesIsCheckedAnew(self) -> None:
        self.monitor.servicesDiscovered("static", [local("a"), local("b")])
        self.clock.advance(3)
        self.assertEqual(self.downstream.last("a"), Status.ALIVE)
        changed = replace(local("a"), check=CheckSpec("Scripted", "a2"))
        self.scripted.healthy["a2"] = False
        self.monitor.serviceChanged("static", changed)
        self.assertEqual(self.downstream.last("a"), Status.UNKNOWN)
        self.clock.advance(3)
        self.assertEqual(self.downstream.last("a"), Status.UNHEALTHY)
        self.assertEqual(self.monitor.report()["a"]["Check"]["Args"], "a2")
        self.assertEqual(self.downstream.last("b"), Status.ALIVE)

    def test_aPluginThatRaisesMakesItsServiceUnhealthyNotTheNodeFail(self) -> None:
        @implementer(ICheckerFactory)
        class Broken:
            name = "Broken"

            def checkerFor(self, args: str, reactor: object) -> IChecker:
                raise RuntimeError("plugin bug")

        monitor = self.startMonitor(Broken())
        monitor.servicesDiscovered("static", [local("a", check="Broken")])
        self.assertEqual(self.downstream.last("a"), Status.UNHEALTHY)
        self.assertEqual(
            monitor.report()["a"]["LastError"],
            "bad check: Broken failed: RuntimeError('plugin bug')",
        )

    def test_aCheckThatRaisesFailsWithItsError(self) -> None:
        @implementer(IChecker)
        class Raises:
            def check(self) -> Deferred[str]:
                raise ValueError("oops")

        @implementer(ICheckerFactory)
        class RaisesFactory:
            name = "Raises"

            def checkerFor(self, args: str, reactor: object) -> IChecker:
                return Raises()

        monitor = self.startMonitor(RaisesFactory())
        monitor.servicesDiscovered("static", [local("a", check="Raises")])
        self.clock.advance(3)
        self.assertEqual(self.downstream.last("a"), Status.UNHEALTHY)
        self.assertEqual(monitor.report()["a"]["LastError"], "check failed: oops")

    def test_anObserverThatRaisesDoesNotStopTheChecks(self) -> None:
        @implementer(ICheckObserver)
        class Raising:
            def checkEnded(self, *args: object) -> None:
                raise RuntimeError("observer bug")

        self.monitor.addObserver(Raising())
        self.monitor.servicesDiscovered("static", [local("a")])
        self.clock.advance(3)
        self.clock.advance(3.5)
        self.assertEqual(self.scripted.started, ["a", "a"])
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 2)

    def test_templatedArgumentsAreRenderedForTheServicesPorts(self) -> None:
        def templated(hostPort: int) -> LocalService:
            service = local("a", ports=[Port("tcp", hostPort, 9500, "")])
            return replace(
                service, check=CheckSpec("Scripted", "{{ host }}:{{ tcp 9500 }}")
            )

        self.monitor.servicesDiscovered("static", [templated(32768)])
        self.clock.advance(3)
        self.assertEqual(self.scripted.started, ["127.0.1.1:32768"])
        self.assertEqual(
            self.monitor.report()["a"]["Check"],
            {
                "Type": "Scripted",
                "Args": "{{ host }}:{{ tcp 9500 }}",
                "Rendered": "127.0.1.1:32768",
            },
        )
        self.monitor.servicesDiscovered("static", [templated(32999)])
        self.clock.advance(3)
        self.assertEqual(self.scripted.started[-1], "127.0.1.1:32999")

    def test_aTemplateThatDoesNotRenderMakesTheServiceUnhealthy(self) -> None:
        broken = replace(local("a"), check=CheckSpec("Scripted", "{{ tcp 9500 }}"))
        self.monitor.servicesDiscovered("static", [broken, local("b")])
        self.assertEqual(self.downstream.last("a"), Status.UNHEALTHY)
        self.assertEqual(
            self.monitor.report()["a"]["LastError"],
            "bad check: no tcp port with ServicePort 9500 in '{{ tcp 9500 }}'",
        )
        self.clock.advance(3)
        self.assertEqual(self.downstream.last("b"), Status.ALIVE)

    def test_aGoneServiceIsNoLongerChecked(self) -> None:
        self.monitor.servicesDiscovered("static", [local("a"), local("b")])
        self.monitor.servicesDiscovered("static", [local("b")])
        self.clock.advance(3)
        self.assertEqual(self.scripted.started, ["b"])
        self.assertEqual(list(self.monitor.report()), ["b"])

    def test_stoppingCancelsTimersAndRunningChecks(self) -> None:
        self.scripted.healthy["a"] = None
        self.monitor.servicesDiscovered("static", [local("a"), local("b")])
        self.clock.advance(3)
        self.monitor.stopService()
        self.assertEqual(self.scripted.cancelled, ["a"])
        self.assertEqual(self.clock.getDelayedCalls(), [])


class RealCheckTests(TestCase):
    async def test_aRealServiceTurningUnhealthyReachesTheCatalog(self) -> None:
        switch, portNumber = serveSwitch(self)
        state = ServicesState("me", reactor)  # type: ignore[arg-type]
        self.addCleanup(state.stop)
        announcer = LocalAnnouncer(state, reactor)  # type: ignore[arg-type]
        monitor = HealthMonitor(
            announcer,
            reactor,  # type: ignore[arg-type]
            CheckerRegistry(),
            "127.0.0.1",
            HealthSettings(interval=0.2, timeout=0.2),
        )
        monitor.startService()
        self.addCleanup(monitor.stopService)
        web = local("web000000001", check="")
        web = replace(
            web, service=replace(web.service, ports=(Port("tcp", portNumber),))
        )
        monitor.servicesDiscovered("static", [web])

        async def statusBecomes(status: Status) -> None:
            def seen() -> defer.Deferred[bool | None]:
                record = state.get("me", "web000000001")
                return defer.succeed(
                    True if record is not None and record.status is status else None
                )

            await pollUntil(seen, timeout=5, every=0.02)

        await statusBecomes(Status.ALIVE)
        switch.code = 503
        await statusBecomes(Status.UNHEALTHY)
        self.assertIn("HTTP 503", monitor.report()["web000000001"]["LastError"])
        switch.code = 200
        await statusBecomes(Status.ALIVE)


class CommandsFromLabelsTests(SynchronousTestCase):
    """
    The monitor asks its L{CommandPolicy} before it builds a check: a
    refused one never runs, and its service is unhealthy and says why.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.external = ScriptedFactory()
        self.external.name = "External"  # stands for the real one
        self.downstream = Downstream()

    def monitor(self, policy: CommandPolicy | None = None) -> HealthMonitor:
        monitor = HealthMonitor(
            self.downstream,
            self.clock,
            CheckerRegistry([self.external]),
            "127.0.1.1",
            HealthSettings(interval=3.0, timeout=1.0),
            random.Random(1),
            commands=policy,
        )
        monitor.startService()
        self.addCleanup(monitor.stopService)
        return monitor

    def test_aLabelsCommandIsRefusedShownAndLoggedAndNeverRun(self) -> None:
        monitor = self.monitor()
        touch = replace(local("a"), check=CheckSpec("External", "touch /tmp/owned"))
        with capturedLogs() as events:
            monitor.servicesDiscovered("docker", [touch])
            self.clock.advance(10)
        self.assertEqual(self.external.started, [])
        self.assertEqual(self.downstream.last("a"), Status.UNHEALTHY)
        refusal = (
            "refused: External checks from container labels are off"
            " (health.external_from_labels)"
        )
        self.assertEqual(monitor.report()["a"]["LastError"], refusal)
        warnings = [formatEvent(e) for e in events if e["log_level"].name == "warn"]
        self.assertEqual(warnings, [f"service web a: {refusal}"])

    def test_theStaticFilesCommandRuns(self) -> None:
        monitor = self.monitor()
        touch = replace(local("a"), check=CheckSpec("External", "touch /tmp/ok"))
        monitor.servicesDiscovered("static", [touch])
        self.clock.advance(3)
        self.assertEqual(self.external.started, ["touch /tmp/ok"])
        self.assertEqual(self.downstream.last("a"), Status.ALIVE)

    def test_anAllowedCommandFromALabelRuns(self) -> None:
        monitor = self.monitor(CommandPolicy(fromLabels=True, allowed=("/bin/true",)))
        allowed = replace(local("a"), check=CheckSpec("External", "/bin/true"))
        refused = replace(local("b"), check=CheckSpec("External", "/bin/false"))
        monitor.servicesDiscovered("docker", [allowed, refused])
        self.clock.advance(3)
        self.assertEqual(self.external.started, ["/bin/true"])
        self.assertEqual(self.downstream.last("a"), Status.ALIVE)
        self.assertEqual(
            monitor.report()["b"]["LastError"],
            "refused: /bin/false from a label is not in health.external_commands",
        )
