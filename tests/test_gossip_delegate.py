"""
The catalog on the gossip layer: records in and out as the Go Sidecar's
JSON, bad input counted and dropped, a gone member's services tombstoned;
and the timing arithmetic the cluster runs on.
"""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from sidecar.catalog import Service, ServicesState, Status, encodeService
from sidecar.catalog.codec import dumps
from sidecar.catalog.documents import stateDocument
from sidecar.gossip.delegate import CatalogDelegate
from sidecar.gossip.members import Member, Members
from sidecar.gossip.messages import Alive, Dead, NodeState
from sidecar.gossip.profiles import LAN, LOCAL, PROFILES, WAN, scaledPushPullInterval

NOW = 1_700_000_000.0


def record(
    hostname: str = "peer", serviceID: str = "abc", updated: float = NOW
) -> Service:
    return Service(
        id=serviceID,
        name="web",
        image="web:1",
        created=0,
        hostname=hostname,
        ports=(),
        updated=round(updated * 1e9),
    )


class CatalogDelegateTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(NOW)
        self.state = ServicesState("me", self.clock)
        self.delegate = CatalogDelegate(self.state, self.clock)
        self.addCleanup(self.state.stop)

    def test_aGossipedRecordIsMerged(self) -> None:
        self.delegate.messageReceived(encodeService(record()))
        self.assertEqual(self.state.get("peer", "abc"), record())

    def test_aPeersStateIsMergedAndOursIsTheGoDocument(self) -> None:
        other = ServicesState("peer", self.clock)
        self.addCleanup(other.stop)
        other.merge(record("peer", "one"))
        other.merge(record("third", "two"))
        self.delegate.mergeRemoteState(dumps(stateDocument(other)), join=True)
        self.assertEqual({s.id for s in self.state.services()}, {"one", "two"})
        self.assertEqual(self.delegate.localState(), dumps(stateDocument(self.state)))

    def test_badMessagesAreCountedAndDropped(self) -> None:
        bad = [
            b"\x01\x02serf's own msgpack",
            b"{not json",
            b"[" * 5000,
            b'{"ID": 7}',
            b"\xff\xfe",
        ]
        for payload in bad:
            self.delegate.messageReceived(payload)
        self.delegate.mergeRemoteState(b'{"Servers": []}', join=False)
        self.assertEqual(self.delegate.rejected, len(bad) + 1)
        self.assertEqual(list(self.state.services()), [])
        # Still works afterwards.
        self.delegate.messageReceived(encodeService(record()))
        self.assertIsNotNone(self.state.get("peer", "abc"))

    def test_aGoneMembersServicesAreTombstoned(self) -> None:
        self.delegate.messageReceived(encodeService(record(updated=NOW - 1)))
        self.delegate.memberGone(Member("peer", b"\x7f\x00\x00\x01", 7946))
        stored = self.state.get("peer", "abc")
        assert stored is not None
        self.assertEqual(stored.status, Status.TOMBSTONE)


class TimingTests(SynchronousTestCase):
    def test_profilesAreMemberlists(self) -> None:
        self.assertEqual(PROFILES, {"lan": LAN, "local": LOCAL, "wan": WAN})
        self.assertEqual((LAN.probeInterval, LAN.probeTimeout), (1.0, 0.5))
        self.assertEqual((LOCAL.probeTimeout, LOCAL.gossipInterval), (0.2, 0.1))
        self.assertEqual((WAN.probeInterval, WAN.gossipNodes), (5.0, 4))

    def test_pushPullSlowsDownBeyond32Members(self) -> None:
        self.assertEqual(scaledPushPullInterval(30, 1), 30)
        self.assertEqual(scaledPushPullInterval(30, 32), 30)
        self.assertEqual(scaledPushPullInterval(30, 33), 60)
        self.assertEqual(scaledPushPullInterval(30, 64), 60)
        self.assertEqual(scaledPushPullInterval(30, 65), 90)

    def test_goneMembersAreReapedAfterAWhile(self) -> None:
        clock = Clock()
        members = Members(Member("me", b"\x7f\x00\x00\x01", 1), clock, lambda *a: None)
        for name in ("a", "b"):
            members.aliveReceived(
                Alive(1, name, b"\x7f\x00\x00\x02", 2, clusterName="default")
            )
        members.deadReceived(Dead(1, "a", "me", "default"))
        clock.advance(31)
        self.assertEqual(members.reap(clock.seconds() - 30), ["a"])
        self.assertEqual([m.name for m in members.all()], ["b", "me"])
        self.assertEqual(members.get("b").state, NodeState.ALIVE)  # type: ignore[union-attr]
