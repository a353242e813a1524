"""
L{Admission} on its own, on a L{Clock}, judging by a real member table:
who may send a record, whose records it takes, for how long a gone
member's tombstones pass, how far ahead a stamp may be, and what each
refusal says.
"""

from __future__ import annotations

import ipaddress
from dataclasses import replace
from typing import Any

from twisted.internet.task import Clock
from twisted.logger import capturedLogs, formatEvent
from twisted.trial.unittest import SynchronousTestCase

from sidecar.catalog import Port, Service, ServicesState, Status
from sidecar.catalog.state import Lifespans
from sidecar.gossip.admission import (
    FOREIGN_SENDER,
    FUTURE_STAMP,
    GONE_HOST,
    UNKNOWN_HOST,
    Admission,
    catalogAdmission,
)
from sidecar.gossip.members import Member, Members
from sidecar.gossip.messages import Alive, Dead
from sidecar.gossip.skew import NANOSECONDS, ClockSkews

LIFESPAN = 100.0
SKEW = 30.0
B = ("127.0.0.2", 7946)


def packed(host: str) -> bytes:
    return ipaddress.ip_address(host).packed


class AdmissionTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1_000)
        self.admission = Admission(self.clock, SKEW, LIFESPAN, ClockSkews(self.clock))
        self.members = Members(
            Member("a", packed("127.0.0.1"), 7946),
            self.clock,
            lambda *args: None,
            observer=self.admission,
        )
        self.admission.watch(self.members)

    def join(self, name: str, host: str) -> None:
        self.members.aliveReceived(
            Alive(1, name, packed(host), 7946, clusterName="default")
        )

    def leave(self, name: str) -> None:
        self.members.deadReceived(Dead(1, name, name, clusterName="default"))

    def record(
        self, host: str, status: Status = Status.ALIVE, ahead: float = 0.0
    ) -> Service:
        return Service(
            id="s1",
            name="web",
            image="img",
            hostname=host,
            ports=(Port("tcp", 8000, 10001, "127.0.0.2"),),
            updated=round((self.clock.seconds() + ahead) * NANOSECONDS),
            status=status,
        )

    def judged(self, record: Service, source: Any = B) -> tuple[bool, str]:
        """
        Whether C{record} is admitted, and what was logged.
        """
        fromMember = self.admission.sentByMember(source)
        with capturedLogs() as events:
            admitted = self.admission.admit(record, source, fromMember)
        return admitted, " ".join(formatEvent(e) for e in events)

    def test_senders(self) -> None:
        self.assertTrue(self.admission.sentByMember(("127.0.0.1", 1)))
        self.assertFalse(self.admission.sentByMember(B))
        self.join("b", "127.0.0.2")
        # Any port: a stream's source port is not the gossip port.
        self.assertTrue(self.admission.sentByMember(("127.0.0.2", 40000)))
        self.assertTrue(self.admission.sentByMember(("::ffff:127.0.0.2", 1)))
        self.assertFalse(self.admission.sentByMember(("not an address", 1)))
        # Below and above every member's address.
        self.assertFalse(self.admission.sentByMember(("127.0.0.0", 1)))
        self.assertFalse(self.admission.sentByMember(("127.0.0.3", 1)))

    def test_beforeItWatchesAMemberTableNoSenderIsAMember(self) -> None:
        admission = Admission(self.clock, SKEW, LIFESPAN, ClockSkews(self.clock))
        self.assertFalse(admission.sentByMember(("127.0.0.1", 7946)))
        self.assertFalse(admission.sentByMember(("not an address", 7946)))

    def test_aLiveMembersRecordsFromAnyMember(self) -> None:
        self.join("b", "127.0.0.2")
        self.assertEqual(self.judged(self.record("b")), (True, ""))
        self.assertEqual(self.judged(self.record("b"), ("127.0.0.1", 1)), (True, ""))
        self.assertEqual(self.admission.refused, {})

    def test_aStranger(self) -> None:
        self.join("b", "127.0.0.2")
        admitted, said = self.judged(self.record("b"), ("127.0.0.9", 5))
        self.assertFalse(admitted)
        self.assertIn(
            "refused a catalog record from 127.0.0.9:5 (foreign sender): "
            "record 's1' of 'b' from an address that is no member's",
            said,
        )
        self.assertEqual(self.admission.refused, {FOREIGN_SENDER: 1})

    def test_aHostThatIsNoMember(self) -> None:
        self.join("b", "127.0.0.2")
        admitted, said = self.judged(self.record("c"))
        self.assertFalse(admitted)
        self.assertIn("(unknown host): record 's1' of 'c', which is no member", said)
        self.assertEqual(self.admission.refused, {UNKNOWN_HOST: 1})

    def test_aStampTooFarAhead(self) -> None:
        self.join("b", "127.0.0.2")
        self.assertTrue(self.judged(self.record("b", ahead=SKEW))[0])
        admitted, said = self.judged(self.record("b", ahead=SKEW + 1.5))
        self.assertFalse(admitted)
        self.assertIn(
            "(future stamp): record 's1' of 'b' stamped 31.500 s ahead of our clock",
            said,
        )
        self.assertEqual(self.admission.refused, {FUTURE_STAMP: 1})

    def test_aGoneMembersTombstonesPassForTheTombstoneLifespan(self) -> None:
        self.join("b", "127.0.0.2")
        self.join("c", "127.0.0.3")
        self.leave("b")
        self.clock.advance(LIFESPAN / 2)
        self.leave("c")
        # Its live records do not pass; its tombstones do.
        admitted, said = self.judged(self.record("b"), ("127.0.0.1", 1))
        self.assertFalse(admitted)
        self.assertIn(
            "(gone host): live record 's1' of 'b', which is gone from the cluster",
            said,
        )
        self.assertEqual(self.admission.refused, {GONE_HOST: 1})
        tombstone = self.record("b", Status.TOMBSTONE)
        self.assertTrue(self.judged(tombstone, ("127.0.0.1", 1))[0])
        self.members.reap(self.clock.seconds() + 1)  # the table forgets them
        self.assertTrue(self.judged(tombstone, ("127.0.0.1", 1))[0])
        self.assertFalse(self.judged(self.record("b"), ("127.0.0.1", 1))[0])
        self.assertEqual(self.admission.refused, {GONE_HOST: 2})
        self.clock.advance(LIFESPAN / 2 + 1)
        # b's time is over, c's is not.
        self.assertFalse(self.judged(tombstone, ("127.0.0.1", 1))[0])
        self.assertEqual(self.admission.refused[UNKNOWN_HOST], 1)
        self.assertTrue(
            self.judged(self.record("c", Status.TOMBSTONE), ("127.0.0.1", 1))[0]
        )

    def test_aTombstonePassesUntilTheLifespanHasPassedExactly(self) -> None:
        self.join("b", "127.0.0.2")
        self.leave("b")
        self.members.reap(self.clock.seconds() + 1)
        self.clock.advance(LIFESPAN)
        tombstone = self.record("b", Status.TOMBSTONE)
        self.assertTrue(self.judged(tombstone, ("127.0.0.1", 1))[0])
        self.clock.advance(0.001)
        self.assertFalse(self.judged(tombstone, ("127.0.0.1", 1))[0])
        # Long after: b left at 1000 s, it is now 2050 s.
        self.clock.advance(2050 - self.clock.seconds())
        self.assertFalse(self.judged(tombstone, ("127.0.0.1", 1))[0])

    def test_goneMembersAreForgottenOnceTheLifespanHasPassed(self) -> None:
        # What is remembered of gone members stays bounded: each departure
        # forgets those gone longer than the lifespan ago (and only them).
        for name, host in (("b", "127.0.0.2"), ("c", "127.0.0.3"), ("d", "127.0.0.4")):
            self.join(name, host)
        self.leave("b")
        self.clock.advance(LIFESPAN)
        self.leave("c")
        self.assertEqual(sorted(self.admission._gone), ["b", "c"])
        self.clock.advance(self.clock.seconds())  # long after
        self.leave("d")
        self.assertEqual(sorted(self.admission._gone), ["d"])

    def test_aMemberBackIsNoLongerGone(self) -> None:
        self.join("b", "127.0.0.2")
        self.leave("b")
        self.members.aliveReceived(
            Alive(2, "b", packed("127.0.0.2"), 7946, clusterName="default")
        )
        self.assertTrue(self.judged(self.record("b"))[0])

    def test_onlyARecordFromItsOwnHostTellsItsClock(self) -> None:
        self.join("b", "127.0.0.2")
        self.join("c", "127.0.0.3")
        self.judged(self.record("b", ahead=-10), ("127.0.0.3", 1))  # relayed
        self.judged(self.record("a", ahead=-10), ("127.0.0.1", 1))  # ours
        self.judged(self.record("b", ahead=SKEW + 1))  # refused
        self.assertIsNone(self.admission.skews.skew("b"))
        self.assertIsNone(self.admission.skews.skew("a"))
        self.judged(self.record("b", ahead=-10))
        self.assertAlmostEqual(self.admission.skews.skew("b"), -10, places=3)
        self.leave("b")
        self.assertIsNone(self.admission.skews.skew("b"))
        # Whatever its name's order against ours ("Z" < "a").
        self.join("Z", "127.0.0.5")
        self.judged(self.record("Z", ahead=-20), ("127.0.0.5", 1))
        self.assertAlmostEqual(self.admission.skews.skew("Z"), -20, places=3)

    def test_aPushPullTellsNoClock(self) -> None:
        """
        A member's push-pull may hold old records under its name (of the Go
        Sidecar it replaced on its host, not refreshed since, or its own,
        refreshed hourly): they tell their age, not its clock, and are no
        skew to warn about.
        """
        self.join("b", "127.0.0.2")
        self.join("c", "127.0.0.3")
        old = replace(self.record("b", ahead=-60), id="old")
        refused = replace(self.record("b", ahead=SKEW + 1), id="future")
        records = [
            old,
            refused,
            self.record("b", ahead=-0.5),
            replace(self.record("c", ahead=-40), id="relayed"),
        ]
        with capturedLogs() as events:
            admitted = self.admission.admitAll(records, B, True)
        self.assertEqual(admitted, [old, records[2], records[3]])
        self.assertIsNone(self.admission.skews.skew("b"))
        self.assertIsNone(self.admission.skews.skew("c"))
        self.assertEqual(
            [e["log_format"] for e in events if "skew" in e],
            [],
            "no clock skew was warned about",
        )
        self.assertEqual(self.admission.refused, {FUTURE_STAMP: 1})

    def test_refusalsAreLoggedOnceAMinutePerKind(self) -> None:
        self.join("b", "127.0.0.2")
        logged = [self.judged(self.record("c"))[1] for _ in range(3)]
        self.assertEqual([bool(said) for said in logged], [True, False, False])
        self.assertTrue(self.judged(self.record("b"), ("127.0.0.9", 1))[1])
        self.clock.advance(61)
        self.assertTrue(self.judged(self.record("c"))[1])
        self.assertEqual(self.admission.refused, {UNKNOWN_HOST: 4, FOREIGN_SENDER: 1})


class CatalogAdmissionTests(SynchronousTestCase):
    def test_goneMembersTombstonesPassForAsLongAsTheCatalogKeepsTombstones(
        self,
    ) -> None:
        clock = Clock()
        clock.advance(1_000)
        state = ServicesState(
            "a", clock, lifespans=Lifespans(tombstone=round(LIFESPAN * NANOSECONDS))
        )
        self.addCleanup(state.stop)
        admission = catalogAdmission(state, clock, SKEW)
        members = Members(
            Member("a", packed("127.0.0.1"), 7946),
            clock,
            lambda *args: None,
            observer=admission,
        )
        admission.watch(members)
        members.aliveReceived(
            Alive(1, "b", packed("127.0.0.2"), 7946, clusterName="default")
        )
        members.deadReceived(Dead(1, "b", "b", clusterName="default"))
        clock.advance(LIFESPAN - 1)
        tombstone = Service(
            id="s1",
            name="web",
            image="img",
            hostname="b",
            ports=(),
            updated=round(clock.seconds() * NANOSECONDS),
            status=Status.TOMBSTONE,
        )
        members.reap(clock.seconds() + 1)  # the table forgets b
        self.assertTrue(admission.admit(tombstone, B, True))
        clock.advance(2)
        self.assertFalse(admission.admit(tombstone, B, True))
