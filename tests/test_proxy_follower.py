"""
L{ProxyFollower} on a Clock with a writer the test controls: changes are
coalesced to one update per interval and the last is never lost; a failed
update is tried again; backends whose hosts go out of sight keep their
servers, and the API says so.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.logger import capturedLogs, formatEvent
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from sidecar.catalog import Port, Service, ServicesState, Status
from sidecar.interfaces import IProxyWriter
from sidecar.problems import Problems
from sidecar.proxy.follower import RETRY_AFTER, ProxyFollower
from sidecar.proxy.haproxy import ProxyError
from sidecar.proxy.model import Admission, ProxyModel

from .doubles import Members

SECOND = 1_000_000_000


@implementer(IProxyWriter)
class Writer:
    def __init__(self) -> None:
        self.applied: list[ProxyModel] = []
        self.failWith: str | None = None
        self.hold: Deferred[None] | None = None
        self.exited: Any = None
        # What apply says it did.
        self.how = "runtime"

    async def apply(self, model: ProxyModel) -> str:
        if self.hold is not None:
            await self.hold
        if self.failWith is not None:
            raise ProxyError(self.failWith)
        self.applied.append(model)
        return self.how

    def status(self) -> dict[str, Any]:
        return {"LastError": self.failWith}

    async def stop(self) -> None:
        pass


class FollowerTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1_700_000_000)
        self.state = ServicesState("host-a", self.clock)
        self.addCleanup(self.state.stop)
        self.writer = Writer()
        self.members = Members("host-a", "host-b")
        self.problems = Problems(self.clock)
        self.follower = ProxyFollower(
            self.state,
            self.members,
            self.writer,
            self.clock,
            minInterval=1.0,
            problems=self.problems,
        )
        self.follower.startService()
        self.addCleanup(self.follower.stopService)

    def instance(self, serviceID: str, status: Status = Status.ALIVE) -> Service:
        return Service(
            id=serviceID,
            name="web",
            image="img",
            hostname="host-b",
            ports=(Port("tcp", 8080, 10001, "127.0.1.2"),),
            updated=round(self.clock.seconds() * SECOND),
            status=status,
        )

    def servers(self, model: ProxyModel) -> list[str]:
        return [s.name for f in model.frontends for s in f.servers]

    def test_aBurstIsOneUpdateAndTheLastChangeIsNotLost(self) -> None:
        self.clock.advance(0)
        self.assertEqual(len(self.writer.applied), 1)  # the start
        for n in range(10):
            self.state.merge(self.instance(f"i{n}"))
            self.clock.advance(0.05)
        self.assertEqual(len(self.writer.applied), 1)  # within the interval
        self.clock.advance(1)
        self.assertEqual(len(self.writer.applied), 2)
        self.assertEqual(len(self.servers(self.writer.applied[-1])), 10)
        self.assertTrue(self.follower.upToDate)

    def test_aChangeDuringAnUpdateIsAppliedAfterIt(self) -> None:
        self.clock.advance(0)
        self.writer.hold = Deferred()
        self.state.merge(self.instance("i1"))
        self.clock.advance(1)
        self.state.merge(self.instance("i2"))  # while i1's update waits
        hold, self.writer.hold = self.writer.hold, None
        hold.callback(None)
        self.clock.advance(1)
        self.assertEqual(
            self.servers(self.writer.applied[-1]), ["host-b-i1", "host-b-i2"]
        )

    def test_updatesAreCountedAndUpToDateOnlyWhenNoneWaitsOrRuns(self) -> None:
        self.assertFalse(self.follower.upToDate)  # nothing applied yet
        self.clock.advance(0)
        self.assertEqual(self.follower.status()["Updates"], 1)
        self.assertTrue(self.follower.upToDate)
        self.writer.hold = Deferred()
        self.state.merge(self.instance("i1"))
        self.assertFalse(self.follower.upToDate)  # an update is due
        self.clock.advance(1)
        self.assertFalse(self.follower.upToDate)  # one is under way
        hold, self.writer.hold = self.writer.hold, None
        hold.callback(None)
        self.assertTrue(self.follower.upToDate)
        self.assertEqual(self.follower.status()["Updates"], 2)

    def test_aChangeAfterALongQuietIsAppliedNow(self) -> None:
        self.clock.advance(0)
        self.clock.advance(100)
        self.state.merge(self.instance("i1"))
        # Due now, not in the past (which a reactor refuses).
        self.assertEqual(
            [c for c in self.clock.getDelayedCalls() if c.getTime() < 1_700_000_100],
            [],
        )
        self.clock.advance(0)
        self.assertEqual(self.servers(self.writer.applied[-1]), ["host-b-i1"])

    def test_theAgeOfContendersIsJudgedByThisNodesClock(self) -> None:
        # Both started within the last hour of the clock (2023-11-14): both
        # plausible, so the older, though last by name, keeps the port.
        now = self.clock.seconds()
        for name, age in (("zzz", 3600), ("aaa", 60)):
            self.state.merge(
                replace(
                    self.instance(name),
                    name=name,
                    created=round((now - age) * SECOND),
                )
            )
        self.clock.advance(0)
        self.assertEqual(
            self.follower.status()["Conflicts"],
            ["ServicePort 10001: aaa is refused, zzz (older) keeps it"],
        )

    def test_aContenderCreatedADayAheadStillCounts(self) -> None:
        # To the nanosecond of this node's clock.
        now = round(self.clock.seconds()) * SECOND
        for name, created in (("zzz", now + 86_400 * SECOND), ("aaa", 0)):
            self.state.merge(replace(self.instance(name), name=name, created=created))
        self.clock.advance(0)
        self.assertEqual(
            self.follower.status()["Conflicts"],
            ["ServicePort 10001: aaa is refused, zzz (older) keeps it"],
        )

    def test_aContenderCreatedTooFarAheadCountsForNothing(self) -> None:
        # More than a day ahead of the clock, like a Created of 0: neither
        # counts, and the name decides.
        now = self.clock.seconds()
        for name, created in (("zzz", round((now + 86_401) * SECOND)), ("aaa", 0)):
            self.state.merge(replace(self.instance(name), name=name, created=created))
        self.clock.advance(0)
        self.assertEqual(
            self.follower.status()["Conflicts"],
            ["ServicePort 10001: zzz is refused, aaa (first by name) keeps it"],
        )

    def test_aFailedUpdateIsLoggedOnceAndTriedAgain(self) -> None:
        self.clock.advance(0)
        self.writer.failWith = "haproxy refused the new configuration"
        with capturedLogs() as events:
            self.state.merge(self.instance("i1"))
            self.clock.advance(1)
            first = [e for e in events if e["log_level"].name == "error"]
            self.clock.advance(RETRY_AFTER)
        errors = [formatEvent(e) for e in events if e["log_level"].name == "error"]
        self.assertEqual(
            errors,
            ["the proxy was not updated: haproxy refused the new configuration"],
        )
        self.assertEqual(len(first), 1)  # at the first failure
        self.assertFalse(self.follower.upToDate)
        self.writer.failWith = None
        # Tried again 10 s after the last try, not before.
        self.clock.advance(RETRY_AFTER - 0.1)
        self.assertEqual(len(self.writer.applied), 1)
        self.clock.advance(0.1)
        self.assertEqual(self.servers(self.writer.applied[-1]), ["host-b-i1"])
        self.assertEqual(RETRY_AFTER, 10.0)

    def test_backendsOfHostsOutOfSightKeepTheirServers(self) -> None:
        self.state.merge(self.instance("i1"))
        self.clock.advance(0)
        # This node loses the cluster: host-b is expired here.
        self.members.names = ["host-a"]
        with capturedLogs() as events:
            self.state.expireServer("host-b")
            self.clock.advance(1)
        self.assertEqual(self.servers(self.writer.applied[-1]), ["host-b-i1"])
        status = self.follower.status()
        self.assertEqual(status["KeptBackends"], ["web-10001"])
        warnings = [formatEvent(e) for e in events if e["log_level"].name == "warn"]
        self.assertIn(
            "backend web-10001 keeps its last servers: their hosts are out of sight",
            warnings,
        )

    def test_refusedRecordsAreShownAndLoggedOnceAndTheRestFlows(self) -> None:
        bad = Service(
            id="bad",
            name="web",
            image="img",
            hostname="host-b",
            ports=(Port("tcp", 8080, 10001, "no-such-host"),),
            updated=round(self.clock.seconds() * SECOND),
        )
        with capturedLogs() as events:
            self.state.merge(bad)
            self.state.merge(self.instance("i1"))
            self.clock.advance(0)
            self.state.merge(self.instance("i2"))
            self.clock.advance(1)
        self.assertEqual(
            self.servers(self.writer.applied[-1]), ["host-b-i1", "host-b-i2"]
        )
        refusal = "host-b/bad: not an IP address: 'no-such-host'"
        self.assertEqual(self.follower.status()["Refused"], [refusal])
        warnings = [formatEvent(e) for e in events if e["log_level"].name == "warn"]
        self.assertEqual(warnings, [f"ignoring {refusal}"])
        # And among the node's problems.
        self.assertEqual(
            [p.message for p in self.problems.current()], [f"ignoring {refusal}"]
        )

    def test_nothingIsAppliedUntilTheCatalogIsReady(self) -> None:
        ready: Deferred[object] = Deferred()
        writer = Writer()
        follower = ProxyFollower(
            self.state, self.members, writer, self.clock, ready=ready
        )
        follower.startService()
        self.addCleanup(follower.stopService)
        self.state.merge(self.instance("i1"))
        self.clock.advance(5)
        self.assertEqual(writer.applied, [])
        ready.callback(None)
        self.clock.advance(0)
        self.assertEqual(self.servers(writer.applied[-1]), ["host-b-i1"])

    def test_anUpdateIsLoggedWithWhatItChanged(self) -> None:
        with capturedLogs() as events:
            self.clock.advance(0)
            self.state.merge(self.instance("i1"))
            self.clock.advance(1)
        updates = [
            formatEvent(e)
            for e in events
            if str(e.get("log_format", "")).startswith("proxy updated")
        ]
        self.assertEqual(len(updates), 2)
        self.assertEqual(updates[-1], "proxy updated by runtime: web:10001 added")
        # An update that changed nothing is not worth a line.
        self.writer.how = "unchanged"
        with capturedLogs() as events:
            self.follower.refresh()
            self.clock.advance(1)
        self.assertEqual(len(self.writer.applied), 3)
        self.assertEqual(
            [e for e in events if "proxy updated" in str(e.get("log_format"))], []
        )

    def test_onlyServicePortsHAProxyDoesNotServeYetAreProbed(self) -> None:
        probed: list[int] = []

        def bindable(port: int) -> str | None:
            probed.append(port)
            return "in use" if port == 10003 else None

        state = ServicesState("host-a", self.clock)
        self.addCleanup(state.stop)
        follower = ProxyFollower(
            state,
            self.members,
            self.writer,
            self.clock,
            minInterval=1.0,
            admission=Admission(loopbackTargets=True, bindable=bindable),
        )
        follower.startService()
        self.addCleanup(follower.stopService)
        state.merge(self.instance("i1"))
        self.clock.advance(0)
        self.assertEqual(probed, [10001])
        state.merge(
            replace(self.instance("i2"), ports=(Port("tcp", 1, 10003, "127.0.1.2"),))
        )
        self.clock.advance(1)
        self.assertEqual(probed, [10001, 10003])
        self.assertEqual(
            follower.status()["Refused"],
            ["ServicePort 10003: web: ServicePort 10003 cannot be bound: in use"],
        )
        state.merge(self.instance("i3"))
        self.clock.advance(1)
        self.assertEqual(probed, [10001, 10003, 10003])  # 10001 is served
