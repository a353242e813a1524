"""
This node's own records in the catalog: the node is their authority, so a
peer's stale word about them is refuted, not believed.
"""

from __future__ import annotations

from dataclasses import FrozenInstanceError

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from sidecar.catalog import Port, Service, ServicesState, Status
from sidecar.catalog.local import LocalService

from .doubles import RecordingBroadcaster

SECOND = 1_000_000_000


class RefutationTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1_700_000_000)
        self.state = ServicesState("me", self.clock)
        self.sent = RecordingBroadcaster()
        self.state.addBroadcaster(self.sent)
        self.mine = self.state.announceLocal(
            Service("aaaaaaaaaaaa", "web", hostname="me", ports=(Port("tcp", 80),))
        )
        self.sent.batches.clear()

    def test_newerStaleTombstoneOfALiveLocalServiceIsRefuted(self) -> None:
        ghost = self.mine.tombstone(self.mine.updated + 5 * SECOND)
        self.assertFalse(self.state.merge(ghost))
        current = self.state.get("me", "aaaaaaaaaaaa")
        assert current is not None
        self.assertEqual(current.status, Status.ALIVE)
        self.assertGreater(current.updated, ghost.updated)
        self.assertEqual(self.sent.records, [current])

    def test_olderRecordOfALocalServiceIsIgnored(self) -> None:
        old = self.mine.tombstone(self.mine.updated - SECOND)
        self.assertFalse(self.state.merge(old))
        self.assertEqual(self.state.get("me", "aaaaaaaaaaaa"), self.mine)
        self.assertEqual(self.sent.records, [])

    def test_newerEchoWithTheSameContentIsAcceptedQuietly(self) -> None:
        echo = self.mine.withStatus(Status.ALIVE, self.mine.updated + 50)
        self.assertTrue(self.state.merge(echo))
        self.assertEqual(self.state.get("me", "aaaaaaaaaaaa"), echo)
        self.assertEqual(self.sent.records, [])

    def test_recordOfAWithdrawnLocalServiceIsMergedNormally(self) -> None:
        tombstone = self.state.withdrawLocal("aaaaaaaaaaaa")
        assert tombstone is not None
        revived = self.mine.withStatus(Status.ALIVE, tombstone.updated + SECOND)
        self.assertTrue(self.state.merge(revived))
        self.assertEqual(self.state.get("me", "aaaaaaaaaaaa"), revived)

    def test_unknownRecordUnderOurNameExpiresLikeARemoteOne(self) -> None:
        now = self.state.now()
        stranger = Service("bbbbbbbbbbbb", "old", hostname="me", updated=now)
        self.assertTrue(self.state.merge(stranger))
        self.clock.advance(80)
        expired = self.state.get("me", "bbbbbbbbbbbb")
        assert expired is not None
        self.assertEqual(expired.status, Status.TOMBSTONE)
        self.assertEqual(expired.updated, now + SECOND)
        self.state.stop()


class ExpireServerTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1_700_000_000)
        self.peerClock = Clock()
        self.peerClock.advance(1_700_000_000)
        self.state = ServicesState("me", self.clock)
        self.peer = ServicesState("peer", self.peerClock)
        self.sent = RecordingBroadcaster()
        self.state.addBroadcaster(self.sent)
        self.addCleanup(self.state.stop)
        self.addCleanup(self.peer.stop)

    def test_deadHostsLiveServicesAreTombstonedAndSent(self) -> None:
        web = self.peer.announceLocal(Service("aaaaaaaaaaaa", "web", hostname="peer"))
        old = web.tombstone(web.updated - 1)
        self.state.merge(web)
        self.state.merge(
            Service(
                "bbbbbbbbbbbb",
                "db",
                hostname="peer",
                updated=old.updated,
                status=Status.TOMBSTONE,
            )
        )
        self.sent.batches.clear()
        self.clock.advance(2)
        tombstones = self.state.expireServer("peer")
        self.assertEqual([t.id for t in tombstones], ["aaaaaaaaaaaa"])
        self.assertEqual(tombstones[0].status, Status.TOMBSTONE)
        self.assertEqual(tombstones[0].updated, self.state.now())
        self.assertEqual(self.sent.batches, [tombstones])

    def test_aRecordStampedAheadIsTombstonedJustAfterItsStamp(self) -> None:
        # The host's clock ran ahead of ours: the tombstone must still be
        # later than the record it replaces.
        ahead = Service(
            "aaaaaaaaaaaa", "web", hostname="peer", updated=self.state.now() + 10**9
        )
        self.state.merge(ahead)
        [tombstone] = self.state.expireServer("peer")
        self.assertEqual(tombstone.updated, ahead.updated + 1)

    def test_hostThatWasAliveAfterAllRefutesAndItsServicesReturn(self) -> None:
        web = self.peer.announceLocal(Service("aaaaaaaaaaaa", "web", hostname="peer"))
        self.state.merge(web)
        self.clock.advance(2)
        [tombstone] = self.state.expireServer("peer")
        returned = RecordingBroadcaster()
        self.peer.addBroadcaster(returned)
        self.peer.merge(tombstone)  # the tombstone reaches the live host
        [refutation] = returned.records
        self.assertTrue(self.state.merge(refutation))
        self.assertEqual(self.state.get("peer", "aaaaaaaaaaaa").status, Status.ALIVE)  # type: ignore[union-attr]

    def test_ourOwnServicesAndUnknownHostsAreLeftAlone(self) -> None:
        self.state.announceLocal(Service("cccccccccccc", "me-svc", hostname="me"))
        self.assertEqual(self.state.expireServer("me"), [])
        self.assertEqual(self.state.expireServer("nobody"), [])


class LocalServiceTests(SynchronousTestCase):
    def test_aDiscoverersReportIsAValue(self) -> None:
        # Discoverers and the health monitor share reports: none changes
        # one in place.
        found = LocalService(Service("a1", "web", hostname="me"))
        self.assertRaises(FrozenInstanceError, setattr, found, "listenPort", 1)
