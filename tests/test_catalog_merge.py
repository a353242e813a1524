"""
The catalog's merge rule, observers, lifespans and tombstone re-sends, on a
Clock.
"""

from __future__ import annotations

from dataclasses import replace

from twisted.internet.task import Clock
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from sidecar.catalog import (
    ChangeEvent,
    ICatalogObserver,
    Lifespans,
    Limits,
    Port,
    Refused,
    Service,
    ServicesState,
    Status,
    TombstoneResend,
    encodeService,
)
from sidecar.catalog.documents import stateDocument
from sidecar.catalog.interfaces import ICatalog
from sidecar.catalog.state import footprint
from sidecar.catalog.timestamps import LATEST

from .doubles import RecordingBroadcaster, RecordingObserver

SECOND = 1_000_000_000


class CatalogTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1_700_000_000)
        self.state = ServicesState("me", self.clock)
        self.events = RecordingObserver()
        self.sent = RecordingBroadcaster()
        self.state.addObserver(self.events)
        self.state.addBroadcaster(self.sent)
        self.addCleanup(self.state.stop)
        self.now = self.state.now()

    def remote(self, status: Status = Status.ALIVE, ago: int = 0, **kw) -> Service:  # type: ignore[no-untyped-def]
        return Service(
            "aaaaaaaaaaaa",
            "web",
            hostname="peer",
            updated=self.now - ago * SECOND,
            status=status,
            **kw,
        )

    def current(self) -> Service | None:
        return self.state.get("peer", "aaaaaaaaaaaa")


class MergeTests(CatalogTestCase):
    def test_theCatalogProvidesItsInterface(self) -> None:
        # The catalog itself, not this module's recording doubles.
        verifyObject(ICatalog, self.state)

    def test_newRecordIsStoredObservedAndPassedOn(self) -> None:
        record = self.remote()
        self.assertTrue(self.state.merge(record))
        self.assertEqual(self.current(), record)
        [event] = self.events.events
        self.assertEqual(
            (event.service, event.previousStatus, event.time),
            (record, Status.UNKNOWN, record.updated),
        )
        self.assertEqual(self.sent.batches, [[record]])

    def test_newerWinsOlderAndEqualAreIgnored(self) -> None:
        self.state.merge(self.remote(ago=5))
        newer = self.remote(Status.UNHEALTHY, ago=2)
        self.assertTrue(self.state.merge(newer))
        self.assertFalse(self.state.merge(self.remote(ago=3)))
        self.assertFalse(self.state.merge(newer))
        self.assertEqual(self.current(), newer)
        self.assertEqual(
            [e.previousStatus for e in self.events.events],
            [Status.UNKNOWN, Status.ALIVE],
        )
        self.assertEqual(len(self.sent.batches), 2)

    def test_aRecordIsKeyedByItsHostAndID(self) -> None:
        self.assertEqual(self.remote().key, ("peer", "aaaaaaaaaaaa"))

    def test_everyRecordIsListedTombstonesIncluded(self) -> None:
        alive = self.remote()
        gone = Service("bbbbbbbbbbbb", "db", hostname="other", updated=self.now)
        self.state.merge(alive)
        self.state.merge(gone.tombstone(self.now))
        self.assertEqual(
            sorted((s.hostname, s.id, s.status) for s in self.state.services()),
            [
                ("other", "bbbbbbbbbbbb", Status.TOMBSTONE),
                ("peer", "aaaaaaaaaaaa", Status.ALIVE),
            ],
        )

    def test_aTieOfStampsGoesToTheSameRecordInEitherOrder(self) -> None:
        # The same Updated and status: the larger encoding wins, whichever
        # arrived first.
        one, two = self.remote(image="a"), self.remote(image="b")
        winner = max(one, two, key=encodeService)
        for first, second in ((one, two), (two, one)):
            state = ServicesState("me", self.clock)
            self.addCleanup(state.stop)
            state.merge(first)
            state.merge(second)
            self.assertEqual(state.get("peer", "aaaaaaaaaaaa"), winner)

    def test_refreshIsNotAChange(self) -> None:
        self.state.merge(self.remote(ago=5))
        self.assertTrue(self.state.merge(self.remote(ago=1)))
        self.assertEqual(len(self.events.events), 1)

    def test_anUpdatedTieGoesToTheHigherStatusInEitherOrder(self) -> None:
        one, two = self.remote(Status.ALIVE), self.remote(Status.UNHEALTHY)
        self.state.merge(one)
        self.state.merge(two)
        other = ServicesState("me", self.clock)
        other.merge(two)
        other.merge(one)
        self.assertEqual(self.current(), other.get("peer", "aaaaaaaaaaaa"))
        self.assertEqual(self.current(), two)

    def test_drainingIsStickyAgainstALaterAlive(self) -> None:
        self.state.merge(self.remote(Status.DRAINING, ago=5))
        self.state.merge(self.remote(Status.ALIVE, ago=1))
        current = self.current()
        assert current is not None
        self.assertEqual(current.status, Status.DRAINING)
        self.assertEqual(current.updated, self.now - SECOND)

    def test_anOriginThatPublishesItsDrainsIsTakenAtItsWord(self) -> None:
        # Our own nodes say so in their metadata: their ALIVE after a
        # DRAINING is an undrain.
        self.state.trustDrains("peer", True)
        self.state.merge(self.remote(Status.DRAINING, ago=5))
        self.state.merge(self.remote(Status.ALIVE, ago=1))
        current = self.current()
        assert current is not None
        self.assertEqual(current.status, Status.ALIVE)
        self.state.trustDrains("peer", False)
        self.state.merge(self.remote(Status.ALIVE, ago=0))
        current = self.current()
        assert current is not None
        self.assertEqual(current.status, Status.DRAINING)

    def test_drainingStopsBeingStickyAfterAnotherStatus(self) -> None:
        self.state.merge(self.remote(Status.DRAINING, ago=5))
        self.state.merge(self.remote(Status.UNHEALTHY, ago=3))
        self.state.merge(self.remote(Status.ALIVE, ago=1))
        current = self.current()
        assert current is not None
        self.assertEqual(current.status, Status.ALIVE)

    def test_aDrainTiedWithAnInterruptionIsTheLater(self) -> None:
        """
        A DRAINING and an UNHEALTHY record with the same stamp: the drain
        counts as the later, as the merge orders them (the higher status
        wins a tie), so a later ALIVE still reads DRAINING, in either order.
        """
        for first, second in (
            (Status.DRAINING, Status.UNHEALTHY),
            (Status.UNHEALTHY, Status.DRAINING),
        ):
            state = ServicesState("me", self.clock)
            self.addCleanup(state.stop)
            state.merge(self.remote(first, ago=5))
            state.merge(self.remote(second, ago=5))
            state.merge(self.remote(Status.ALIVE, ago=1))
            current = state.get("peer", "aaaaaaaaaaaa")
            assert current is not None
            self.assertEqual(current.status, Status.DRAINING, (first, second))

    def test_lateDrainingRecordMakesTheAliveWinnerDraining(self) -> None:
        self.state.merge(self.remote(Status.ALIVE, ago=1))
        self.assertTrue(self.state.merge(self.remote(Status.DRAINING, ago=5)))
        current = self.current()
        assert current is not None
        self.assertEqual(current.status, Status.DRAINING)
        self.assertEqual(self.events.events[-1].previousStatus, Status.ALIVE)

    def test_ghostOlderThanTombstoneLifespanIsDropped(self) -> None:
        ghost = self.remote(ago=3 * 3600 + 61)
        self.assertFalse(self.state.merge(ghost))
        self.assertIsNone(self.current())
        self.assertEqual(self.state.ghostsDropped, 1)
        self.assertTrue(self.state.merge(self.remote(ago=3 * 3600 + 59)))

    def test_ghostsAreJudgedOnTheOriginsClock(self) -> None:
        """
        A record four hours old by our clock is fresh from a member whose
        clock is four hours behind: it is kept, and a ghost of that member
        is still one.
        """
        offsets = {"peer": 4 * 3600 * SECOND}
        self.state.useClockOffsets(lambda host: offsets.get(host, 0))
        self.assertTrue(self.state.merge(self.remote(ago=4 * 3600)))
        ghost = Service("cccccccccccc", "web", hostname="peer")
        ghost = ghost.withStatus(Status.ALIVE, self.now - (7 * 3600 + 61) * SECOND)
        self.assertFalse(self.state.merge(ghost))
        self.assertEqual(self.state.ghostsDropped, 1)

    def test_aGoneHostsTombstonesAreStampedOnItsClock(self) -> None:
        """
        When a member four hours behind is declared gone, its services'
        tombstones bear its time, so its records win again as soon as it
        is back, not four hours later.
        """
        self.state.useClockOffsets(lambda host: 4 * 3600 * SECOND)
        self.state.merge(self.remote(ago=4 * 3600 + 5))
        [tombstone] = self.state.expireServer("peer")
        self.assertEqual(tombstone.updated, self.now - 4 * 3600 * SECOND)
        self.assertTrue(self.state.merge(self.remote(ago=4 * 3600 - 1)))
        self.assertEqual(self.current().status, Status.ALIVE)  # type: ignore[union-attr]

    def test_noOffsetMakesAStampUnwritable(self) -> None:
        self.state.merge(self.remote())
        self.state.useClockOffsets(lambda host: -(10**30))
        [tombstone] = self.state.expireServer("peer")
        self.assertEqual(tombstone.updated, LATEST)
        stateDocument(self.state)

    def test_refutationCannotOverflow(self) -> None:
        """
        Even a tombstone of our own service stamped at the last instant Go
        can write is answered with a record that can be written back.
        """
        mine = self.state.announceLocal(Service("bbbbbbbbbbbb", "db", hostname="me"))
        self.state.merge(mine.tombstone(LATEST))
        current = self.state.get("me", "bbbbbbbbbbbb")
        assert current is not None
        self.assertEqual(current.updated, LATEST)
        encodeService(current)
        stateDocument(self.state)
        self.state.announceLocal(mine)
        self.state.withdrawLocal("bbbbbbbbbbbb")
        stateDocument(self.state)

    def test_failingObserverIsLoggedAndOthersAreStillTold(self) -> None:
        @implementer(ICatalogObserver)
        class Broken:
            def serviceChanged(self, event: ChangeEvent) -> None:
                raise RuntimeError("observer bug")

        self.state.removeObserver(self.events)
        self.state.addObserver(Broken())
        self.state.addObserver(self.events)
        self.state.merge(self.remote())
        self.assertEqual(len(self.events.events), 1)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)


class LimitTests(CatalogTestCase):
    """
    The catalog stays within its L{Limits}, so that it fits a push-pull.
    """

    def setUp(self) -> None:
        super().setUp()
        self.size = footprint(self.remote())
        self.state = ServicesState(
            "me",
            self.clock,
            limits=Limits(
                record=self.size + 10, host=3 * self.size, total=4 * self.size
            ),
        )
        self.addCleanup(self.state.stop)

    def instance(self, number: int, host: str = "peer", **kw) -> Service:  # type: ignore[no-untyped-def]
        return Service(f"{number:012d}", "web", hostname=host, updated=self.now, **kw)

    def test_theDefaultsAreThoseDocumented(self) -> None:
        # docs/catalog.md: 16 KiB a record, 1 MiB a host, 8 MiB in all.
        self.assertEqual(Limits(), Limits(16 * 1024, 1024 * 1024, 8 * 1024 * 1024))

    def test_aRecordCountsWithItsStampsAtTheirWidest(self) -> None:
        record = self.instance(1)
        self.assertGreater(footprint(record), len(encodeService(record)))
        self.assertEqual(
            footprint(record.withStatus(Status.ALIVE, LATEST)),
            len(encodeService(record.withStatus(Status.ALIVE, LATEST)))
            + len("9999-12-31T23:59:59.999999999Z")
            - len("0001-01-01T00:00:00Z"),
        )
        self.assertEqual(
            footprint(record), footprint(record.withStatus(Status.ALIVE, 7))
        )

    def test_aRecordLargerThanTheCapIsRefused(self) -> None:
        large = self.instance(1, image="x" * 11)
        error = self.assertRaises(Refused, self.state.merge, large)
        self.assertEqual(error.kind, Refused.RECORD_TOO_LARGE)
        self.assertIn("'peer'", str(error))
        self.assertEqual(list(self.state.services()), [])
        self.assertEqual(self.state.refused, {Refused.RECORD_TOO_LARGE: 1})
        self.assertEqual(self.state.size, 0)

    def test_aRecordWhoseTextAloneIsTooLargeIsRefusedUnencoded(self) -> None:
        huge = self.instance(1, image="x" * 6_000_000)
        error = self.assertRaises(Refused, self.state.merge, huge)
        self.assertEqual(error.kind, Refused.RECORD_TOO_LARGE)
        self.assertIn(f"over {self.size + 10} bytes", str(error))

    def test_aRecordWithinTheCapIsKeptHoweverItsTextAddsUp(self) -> None:
        # Long strings whose lengths multiplied, not added, pass the cap.
        record = self.instance(1, image="i" * 60)
        state = ServicesState("me", self.clock, limits=Limits(record=footprint(record)))
        self.addCleanup(state.stop)
        self.assertTrue(state.merge(record))

    def test_aRecordWhoseTextAloneIsOverTheCapByOneIsRefusedUnencoded(self) -> None:
        record = replace(
            self.instance(1, image="i", proxyMode="http"),
            ports=(Port("tcp", 80, 0, "127.0.1.2"),),
        )
        text = sum(
            map(len, [record.id, "web", "i", "peer", "http", "tcp", "127.0.1.2"])
        )
        state = ServicesState("me", self.clock, limits=Limits(record=text - 1))
        self.addCleanup(state.stop)
        error = self.assertRaises(Refused, state.merge, record)
        self.assertEqual(str(error).rpartition(": ")[2], f"over {text - 1} bytes")

    def test_aHostGetsItsShareAndTheCatalogItsTotal(self) -> None:
        for number in range(3):
            self.state.merge(self.instance(number))
        error = self.assertRaises(Refused, self.state.merge, self.instance(3))
        self.assertEqual(error.kind, Refused.HOST_FULL)
        self.assertIn(
            f"the host would take {4 * self.size} bytes > {3 * self.size}", str(error)
        )
        self.state.merge(self.instance(4, "tres"))
        error = self.assertRaises(Refused, self.state.merge, self.instance(5, "four"))
        self.assertEqual(error.kind, Refused.CATALOG_FULL)
        self.assertIn(
            f"the catalog would take {5 * self.size} bytes > {4 * self.size}",
            str(error),
        )
        self.assertEqual(self.state.size, 4 * self.size)
        # Updates of what is held still pass: a refresh grows nothing.
        later = self.instance(0).withStatus(Status.DRAINING, self.now + 1)
        self.assertTrue(self.state.merge(later))
        self.assertEqual(
            self.state.refused, {Refused.HOST_FULL: 1, Refused.CATALOG_FULL: 1}
        )
        # mergeAll skips the refused and counts them.
        self.assertEqual(
            self.state.mergeAll([self.instance(6), self.instance(7, "x")]), 0
        )
        self.assertEqual(sum(self.state.refused.values()), 4)

    def test_aRecordThatGrowsCountsAtItsNewSize(self) -> None:
        for number in range(3):
            self.state.merge(self.instance(number))
        self.state.merge(self.instance(4, "tres"))
        # One byte more (an image of one letter): over the total by one.
        grown = self.instance(4, "tres", image="x")
        self.assertEqual(footprint(grown), self.size + 1)
        error = self.assertRaises(Refused, self.state.merge, grown)
        self.assertEqual(error.kind, Refused.CATALOG_FULL)
        # Within the host's share and the total, it counts as it now is.
        state = ServicesState("me", self.clock)
        self.addCleanup(state.stop)
        state.merge(self.instance(1))
        bigger = self.instance(1, image="x" * 100)
        bigger = replace(bigger, updated=bigger.updated + 1)
        state.merge(bigger)
        self.assertEqual(state.size, footprint(bigger))

    def test_aRecordThatGrowsPastItsHostsShareIsRefused(self) -> None:
        for number in range(3):
            self.state.merge(self.instance(number))
        grown = replace(self.instance(2, image="x"), updated=self.now + 1)
        error = self.assertRaises(Refused, self.state.merge, grown)
        self.assertEqual(error.kind, Refused.HOST_FULL)

    def test_aHostsShareIsTheSumOfItsRecords(self) -> None:
        # Room for one and a half: the second record does not fit.
        state = ServicesState("me", self.clock, limits=Limits(host=self.size * 3 // 2))
        self.addCleanup(state.stop)
        state.merge(self.instance(0))
        error = self.assertRaises(Refused, state.merge, self.instance(1))
        self.assertEqual(error.kind, Refused.HOST_FULL)

    def test_forgottenRecordsFreeTheirRoom(self) -> None:
        for number in range(3):
            self.state.merge(self.instance(number).tombstone(self.now))
        self.clock.advance(3 * 3600)
        self.assertEqual(self.state.size, 0)
        self.assertTrue(self.state.merge(self.instance(3)))


class LifespanTests(CatalogTestCase):
    def test_remoteAliveExpiresAt80sToATombstoneOneSecondLater(self) -> None:
        record = self.remote()
        self.state.merge(record)
        self.clock.advance(79.999)
        self.assertEqual(self.current(), record)
        self.clock.advance(0.001)
        self.assertEqual(self.current(), record.tombstone(record.updated + SECOND))
        self.assertEqual(self.events.events[-1].previousStatus, Status.ALIVE)
        self.assertEqual(self.sent.batches[-1], [self.current()])

    def test_drainingLivesTenMinutes(self) -> None:
        self.state.merge(self.remote(Status.DRAINING))
        self.clock.advance(599)
        self.assertEqual(self.current().status, Status.DRAINING)  # type: ignore[union-attr]
        self.clock.advance(1)
        self.assertEqual(self.current().status, Status.TOMBSTONE)  # type: ignore[union-attr]

    def test_tombstonesAreForgottenAfterThreeHoursWithTheirServer(self) -> None:
        self.state.merge(self.remote(Status.TOMBSTONE))
        self.clock.advance(3 * 3600 - 1)
        self.assertIsNotNone(self.current())
        self.clock.advance(1)
        self.assertIsNone(self.current())
        self.assertEqual([s.name for s in self.state.servers()], [])

    def test_lifespansRunFromArrivalWhateverTheOriginsClock(self) -> None:
        """
        A member two minutes behind sends records that look two minutes
        old: they live 80 s from their arrival, not from their stamp, and
        expire to a tombstone one second after their own stamp.
        """
        record = self.remote(ago=120)
        self.state.merge(record)
        self.clock.advance(79)
        self.assertEqual(self.current(), record)
        self.state.merge(self.remote(ago=120 - 79))
        self.clock.advance(79)
        self.assertEqual(self.current().status, Status.ALIVE)  # type: ignore[union-attr]
        self.clock.advance(1)
        self.assertEqual(
            self.current(), self.remote(Status.TOMBSTONE, ago=120 - 79 - 1)
        )
        self.assertEqual(len(self.events.events), 2)

    def test_aRecordForgottenBeforeAnEarlierDeadlineOfItsOwnIsNoError(self) -> None:
        # Tombstones shorter-lived than live records: a record tombstoned
        # soon after it arrived is forgotten before its first deadline.
        state = ServicesState(
            "me",
            self.clock,
            lifespans=Lifespans(alive=100 * SECOND, tombstone=10 * SECOND),
        )
        self.addCleanup(state.stop)
        first = self.remote()
        second = replace(first, id="bbbbbbbbbbbb")
        state.merge(first)
        state.merge(second)
        self.clock.advance(1)
        state.merge(first.tombstone(self.now + SECOND))
        self.clock.advance(10)
        self.assertIsNone(state.get("peer", "aaaaaaaaaaaa"))
        self.clock.advance(89)  # the first record's first deadline passes
        self.assertEqual(
            state.get("peer", "bbbbbbbbbbbb"), second.tombstone(second.updated + SECOND)
        )

    def test_refreshPostponesExpiry(self) -> None:
        self.state.merge(self.remote())
        self.clock.advance(60)
        self.state.merge(self.remote(ago=-60))
        self.clock.advance(60)
        self.assertEqual(self.current().status, Status.ALIVE)  # type: ignore[union-attr]

    def test_anotherHostsRecordExpiresThoughItsIDIsOneOfOurs(self) -> None:
        # A host named before this one ("me"), with the ID of a local
        # service of ours.
        self.state.announceLocal(Service("bbbbbbbbbbbb", "db", hostname="me"))
        self.state.merge(
            Service("bbbbbbbbbbbb", "db", hostname="aaa", updated=self.now)
        )
        self.clock.advance(80)
        self.assertEqual(self.state.get("aaa", "bbbbbbbbbbbb").status, Status.TOMBSTONE)  # type: ignore[union-attr]

    def test_aLaterDeadlineDoesNotPutOffAnEarlierOne(self) -> None:
        self.state.merge(self.remote())
        self.clock.advance(10)
        self.state.merge(
            Service(
                "bbbbbbbbbbbb",
                "db",
                hostname="peer",
                updated=self.now,
                status=Status.DRAINING,
            )
        )
        self.clock.advance(70)
        self.assertEqual(self.current().status, Status.TOMBSTONE)  # type: ignore[union-attr]

    def test_aStaleDeadlineDoesNotHoldUpOthersDueWithIt(self) -> None:
        # a's first deadline (80 s) is stale once a refresh moves it, and
        # comes first among those due at 80 s: b's still expires then.
        b = Service("bbbbbbbbbbbb", "db", hostname="peer", updated=self.now)
        self.state.merge(self.remote())
        self.state.merge(b)
        self.clock.advance(10)
        self.state.merge(self.remote(ago=-10))
        self.clock.advance(70)
        self.assertEqual(self.state.get("peer", b.id).status, Status.TOMBSTONE)  # type: ignore[union-attr]
        self.assertEqual(self.current().status, Status.ALIVE)  # type: ignore[union-attr]

    def test_localServicesNeverExpire(self) -> None:
        mine = self.state.announceLocal(Service("bbbbbbbbbbbb", "db", hostname="me"))
        self.clock.advance(4 * 3600)
        self.assertEqual(self.state.localServices(), [mine])

    def test_aFollowedOriginsRecordsLiveWhileItIsAMember(self) -> None:
        self.state.merge(self.remote())
        self.state.followMembership("peer", True)
        drained = Service(
            "bbbbbbbbbbbb",
            "db",
            hostname="peer",
            updated=self.now,
            status=Status.DRAINING,
        )
        self.state.merge(drained)
        relayed = len(self.sent.batches)
        self.clock.advance(4 * 3600)
        self.assertEqual(self.current(), self.remote())
        self.assertEqual(
            self.state.get("peer", "bbbbbbbbbbbb").status,  # type: ignore[union-attr]
            Status.DRAINING,
        )
        self.assertEqual(len(self.sent.batches), relayed)  # none expired

    def test_aFollowedOriginsOldRecordIsNoGhost(self) -> None:
        """
        A service unchanged for four hours on a member that follows
        membership reaches a node that joins now: it is taken, not dropped
        as a ghost (an origin that does not follow would have refreshed it).
        """
        old = self.remote(ago=4 * 3600)
        self.state.merge(old)
        self.assertIsNone(self.current())
        self.state.followMembership("peer", True)
        self.state.merge(old)
        self.assertEqual(self.current(), old)

    def test_aHostThatStopsFollowingGetsAFullLifespanFromThen(self) -> None:
        record = self.remote()
        self.state.followMembership("peer", True)
        self.state.merge(record)
        self.clock.advance(3600)
        self.state.followMembership("peer", False)
        self.clock.advance(79)
        self.assertEqual(self.current(), record)
        self.clock.advance(1)
        self.assertEqual(self.current(), record.tombstone(record.updated + SECOND))

    def test_tombstonesOfAFollowedHostAreStillForgotten(self) -> None:
        self.state.followMembership("peer", True)
        self.state.merge(self.remote(Status.TOMBSTONE))
        self.clock.advance(3 * 3600)
        self.assertIsNone(self.current())

    def test_thisNodesOwnNameIsNeverFollowed(self) -> None:
        """
        A record of this node that it does not announce (from before a
        restart, say) expires as any other would: this node tombstones it.
        """
        stale = Service("cccccccccccc", "old", hostname="me", updated=self.now)
        self.state.merge(stale)
        self.state.followMembership("me", True)
        self.clock.advance(80)
        self.assertEqual(
            self.state.get("me", "cccccccccccc"), stale.tombstone(self.now + SECOND)
        )

    def test_stopCancelsEveryTimer(self) -> None:
        self.state.merge(self.remote())
        self.state.announceLocal(Service("bbbbbbbbbbbb", "db", hostname="me"))
        self.state.withdrawLocal("bbbbbbbbbbbb")
        self.assertNotEqual(self.clock.getDelayedCalls(), [])
        self.state.stop()
        self.assertEqual(self.clock.getDelayedCalls(), [])


class LocalTests(CatalogTestCase):
    def test_announceStampsNowAndAReannounceReplacesIt(self) -> None:
        first = self.state.announceLocal(Service("bbbbbbbbbbbb", "db", hostname="me"))
        self.assertEqual(first.updated, self.now)
        second = self.state.announceLocal(Service("bbbbbbbbbbbb", "db", hostname="me"))
        self.assertEqual(second.updated, self.now + 1)
        self.assertEqual(self.state.localServices(), [second])

    def test_anAnnounceAfterTheClockWentBackIsStampedAfterTheLast(self) -> None:
        first = self.state.announceLocal(Service("bbbbbbbbbbbb", "db", hostname="me"))
        self.clock.rightNow -= 5  # the system clock stepped back
        second = self.state.announceLocal(Service("bbbbbbbbbbbb", "db", hostname="me"))
        self.assertEqual(second.updated, first.updated + 1)
        self.assertEqual(self.state.localServices(), [second])

    def test_announceRefusesAnotherHostsService(self) -> None:
        self.assertRaises(
            ValueError, self.state.announceLocal, Service("x", "db", hostname="peer")
        )

    def test_withdrawSendsTheTombstoneTwiceThenEverySecondForTenSeconds(self) -> None:
        self.state.announceLocal(Service("bbbbbbbbbbbb", "db", hostname="me"))
        self.sent.batches.clear()
        tombstone = self.state.withdrawLocal("bbbbbbbbbbbb")
        assert tombstone is not None
        self.assertEqual(tombstone.status, Status.TOMBSTONE)
        self.assertEqual(self.sent.batches, [[tombstone, tombstone]])
        self.clock.pump([1] * 12)
        self.assertEqual(self.sent.batches[1:], [[tombstone]] * 10)
        self.assertEqual(self.state.localServices(), [])

    def test_resendsAreTheNearestWholeNumberOfIntervalsInTheDuration(self) -> None:
        # 1.4 s at 0.5 s intervals: 2.8, so three re-sends.
        state = ServicesState(
            "me", self.clock, tombstoneResend=TombstoneResend(1, 0.5, 1.4)
        )
        self.addCleanup(state.stop)
        sent = RecordingBroadcaster()
        state.addBroadcaster(sent)
        state.announceLocal(Service("bbbbbbbbbbbb", "db", hostname="me"))
        sent.batches.clear()
        tombstone = state.withdrawLocal("bbbbbbbbbbbb")
        counts = [len(sent.batches)]
        for _ in range(5):
            self.clock.advance(0.5)
            counts.append(len(sent.batches))
        # One at once, then one every 0.5 s: at 0.5, 1 and 1.5 s.
        self.assertEqual(counts, [1, 2, 3, 4, 4, 4])
        self.assertEqual(sent.batches, [[tombstone]] * 4)

    def test_reannouncingCancelsTheRemainingResends(self) -> None:
        service = Service("bbbbbbbbbbbb", "db", hostname="me")
        self.state.announceLocal(service)
        self.state.withdrawLocal("bbbbbbbbbbbb")
        self.clock.advance(3)
        back = self.state.announceLocal(service)
        self.sent.batches.clear()
        self.clock.pump([1] * 12)
        self.assertEqual(self.sent.batches, [])
        self.assertEqual(self.state.localServices(), [back])

    def test_withdrawOfAnUnknownServiceDoesNothing(self) -> None:
        self.assertIsNone(self.state.withdrawLocal("nope"))
        self.assertEqual(self.sent.batches, [])


class LoggingTests(CatalogTestCase):
    def test_expiryIsLoggedWithStructuredFields(self) -> None:
        logged: list[dict] = []  # type: ignore[type-arg]
        globalLogPublisher.addObserver(logged.append)
        self.addCleanup(globalLogPublisher.removeObserver, logged.append)
        self.state.merge(self.remote())
        self.clock.advance(80)
        [event] = [e for e in logged if e.get("log_format", "").endswith("expired")]
        self.assertEqual((event["name"], event["hostname"]), ("web", "peer"))
