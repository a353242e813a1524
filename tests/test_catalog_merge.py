"""
The catalog's merge rule, observers, lifespans and tombstone re-sends, on a
Clock.
"""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from sidecar.catalog import (
    ChangeEvent,
    IBroadcaster,
    ICatalogObserver,
    Service,
    ServicesState,
    Status,
)

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
    def test_interfacesAreProvided(self) -> None:
        verifyObject(ICatalogObserver, self.events)
        verifyObject(IBroadcaster, self.sent)

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

    def test_refreshIsNotAChange(self) -> None:
        self.state.merge(self.remote(ago=5))
        self.assertTrue(self.state.merge(self.remote(ago=1)))
        self.assertEqual(len(self.events.events), 1)

    def test_tieGoesToTheSameRecordInEitherOrder(self) -> None:
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

    def test_refreshPostponesExpiry(self) -> None:
        self.state.merge(self.remote())
        self.clock.advance(60)
        self.state.merge(self.remote(ago=-60))
        self.clock.advance(60)
        self.assertEqual(self.current().status, Status.ALIVE)  # type: ignore[union-attr]

    def test_localServicesNeverExpire(self) -> None:
        mine = self.state.announceLocal(Service("bbbbbbbbbbbb", "db", hostname="me"))
        self.clock.advance(4 * 3600)
        self.assertEqual(self.state.localServices(), [mine])

    def test_stopCancelsEveryTimer(self) -> None:
        self.state.merge(self.remote())
        self.state.announceLocal(Service("bbbbbbbbbbbb", "db", hostname="me"))
        self.state.withdrawLocal("bbbbbbbbbbbb")
        self.assertNotEqual(self.clock.getDelayedCalls(), [])
        self.state.stop()
        self.assertEqual(self.clock.getDelayedCalls(), [])


class LocalTests(CatalogTestCase):
    def test_announceStampsNowAndAlwaysWins(self) -> None:
        first = self.state.announceLocal(Service("bbbbbbbbbbbb", "db", hostname="me"))
        self.assertEqual(first.updated, self.now)
        second = self.state.announceLocal(Service("bbbbbbbbbbbb", "db", hostname="me"))
        self.assertEqual(second.updated, self.now + 1)
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
