"""
The catalog on the gossip layer: records in and out as the Go Sidecar's
JSON, bad input counted and dropped, a gone member's services tombstoned;
and the timing arithmetic the cluster runs on.
"""

from __future__ import annotations

import json
from dataclasses import replace

from twisted.internet.task import Clock
from twisted.logger import Logger, LogLevel
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from sidecar.catalog import (
    Limits,
    Refused,
    Service,
    ServicesState,
    Status,
    encodeService,
)
from sidecar.catalog.codec import decodeStateServices, dumps
from sidecar.catalog.documents import stateDocument
from sidecar.catalog.timestamps import LATEST
from sidecar.gossip.admission import (
    FOREIGN_SENDER,
    FUTURE_STAMP,
    GONE_HOST,
    NOT_A_RECORD,
    UNKNOWN_HOST,
    catalogAdmission,
)
from sidecar.gossip.delegate import CatalogDelegate
from sidecar.gossip.interfaces import IGossipDelegate
from sidecar.gossip.members import Member, Members
from sidecar.gossip.messages import Alive, Dead, NodeState
from sidecar.gossip.peers import nodeMeta
from sidecar.gossip.profiles import LAN, LOCAL, PROFILES, WAN, scaledPushPullInterval
from sidecar.gossip.streams import MAX_STREAM_BYTES

from .doubles import RecordingBroadcaster

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


PEER = ("127.0.1.2", 7946)
THIRD = ("127.0.1.3", 7946)
STRANGER = ("127.0.1.99", 40000)
SECOND = 1_000_000_000


class CatalogDelegateTests(SynchronousTestCase):
    """
    What reaches the catalog: records about members, from members'
    addresses, stamped no further ahead than the allowed skew.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(NOW)
        self.state = ServicesState("me", self.clock)
        self.members = Members(
            Member("me", b"\x7f\x00\x01\x01", 7946), self.clock, lambda *a: None
        )
        for name, (host, port) in (("peer", PEER), ("third", THIRD)):
            self.members.aliveReceived(
                Alive(
                    1,
                    name,
                    bytes(map(int, host.split("."))),
                    port,
                    clusterName="default",
                )
            )
        self.logged: list[dict[str, object]] = []
        self.admission = catalogAdmission(self.state, self.clock, 30.0)
        self.admission.log = Logger(observer=self.logged.append)
        self.admission.watch(self.members)
        self.delegate = CatalogDelegate(self.state, self.admission)
        self.addCleanup(self.state.stop)

    def refusals(self) -> dict[str, int]:
        return dict(self.admission.refused)

    def test_theFirstPeerHearsWhatThisNodeAnnouncedAlone(self) -> None:
        """
        A node alone gossips to no one (its queue is dropped): when its
        first peer joins, its own live records are handed to the
        broadcasters again, as they were; later peers get them by gossip
        already under way, until the node is alone once more.
        """
        sent = RecordingBroadcaster()
        self.state.addBroadcaster(sent)
        mine = self.state.announceLocal(record("me", "mine"))
        sent.batches.clear()
        peer, third = self.members.get("peer"), self.members.get("third")
        assert peer is not None and third is not None
        self.delegate.memberJoined(peer)
        self.assertEqual(sent.batches, [[mine]])
        self.delegate.memberJoined(third)
        self.delegate.memberGone(peer)
        self.assertEqual(sent.batches, [[mine]])
        self.delegate.memberGone(third)
        self.delegate.memberJoined(peer)
        self.assertEqual(sent.batches, [[mine], [mine]])

    def join(self, name: str, host: str) -> Member:
        self.members.aliveReceived(
            Alive(
                1, name, bytes(map(int, host.split("."))), 7946, clusterName="default"
            )
        )
        member = self.members.get(name)
        assert member is not None
        return member

    def test_aRecordThatOutranItsHostsJoinIsMergedWhenItJoins(self) -> None:
        """
        A member relays a record of a host this node has not heard join
        yet: refused (and counted) now, held back, and merged when the host
        joins within half a minute; after that it is forgotten.
        """
        early = record("fourth", "early")
        self.delegate.messageReceived(encodeService(early), PEER)
        self.assertIsNone(self.state.get("fourth", "early"))
        self.assertEqual(self.refusals(), {UNKNOWN_HOST: 1})
        self.delegate.memberJoined(self.join("fourth", "127.0.1.4"))
        self.assertEqual(self.state.get("fourth", "early"), early)
        late = record("fifth", "late")
        self.delegate.messageReceived(encodeService(late), PEER)
        self.clock.advance(31)
        self.delegate.memberJoined(self.join("fifth", "127.0.1.5"))
        self.assertIsNone(self.state.get("fifth", "late"))

    def test_aGossipedRecordIsMerged(self) -> None:
        self.delegate.messageReceived(encodeService(record()), PEER)
        self.assertEqual(self.state.get("peer", "abc"), record())
        self.assertEqual(self.refusals(), {})

    def test_aPeersStateIsMergedWithRelayedRecordsAndOursIsTheGoDocument(
        self,
    ) -> None:
        other = ServicesState("peer", self.clock)
        self.addCleanup(other.stop)
        other.merge(record("peer", "one"))
        other.merge(record("third", "two"))
        self.delegate.mergeRemoteState(dumps(stateDocument(other)), True, PEER, False)
        self.assertEqual({s.id for s in self.state.services()}, {"one", "two"})
        self.assertEqual(self.delegate.localState(), dumps(stateDocument(self.state)))

    def test_badMessagesAreCountedAndDroppedNamingTheSender(self) -> None:
        bad = [
            b"\x01\x02serf's own msgpack",
            b"{not json",
            b"[" * 5000,
            b'{"ID": 7}',
            b"\xff\xfe",
            b'{"ID":"x","Hostname":"peer","Created":"0001-01-01T00:00:00+01:00"}',
            b'{"ID":"x","Hostname":"peer","Updated":"9999-12-31T23:59:59.9-01:00"}',
        ]
        for payload in bad:
            self.delegate.messageReceived(payload, PEER)
        self.delegate.mergeRemoteState(b'{"Servers": []}', False, PEER, False)
        self.assertEqual(self.refusals(), {NOT_A_RECORD: len(bad) + 1})
        self.assertEqual(list(self.state.services()), [])
        [line] = self.logged  # once a minute
        self.assertEqual((line["host"], line["kind"]), (PEER[0], NOT_A_RECORD))
        self.assertEqual(line["log_level"], LogLevel.warn)
        self.assertNotIn("log_failure", line)
        # Still works afterwards.
        self.delegate.messageReceived(encodeService(record()), PEER)
        self.assertIsNotNone(self.state.get("peer", "abc"))

    def test_aPhantomHostsRecordIsRefused(self) -> None:
        """
        A record of a host that is no member is refused, from a member's
        address or not, however it is stamped.
        """
        for updated in (NOW, NOW - 10):
            self.delegate.messageReceived(
                encodeService(record("ghost", updated=updated)), PEER
            )
        self.assertEqual(self.refusals(), {UNKNOWN_HOST: 2})
        self.assertEqual(list(self.state.services()), [])
        [line] = self.logged
        self.assertIn("'ghost'", str(line["problem"]))

    def test_recordsFromAnAddressThatIsNoMembersAreRefused(self) -> None:
        other = ServicesState("peer", self.clock)
        self.addCleanup(other.stop)
        other.merge(record("peer", "one"))
        self.delegate.messageReceived(encodeService(record()), STRANGER)
        self.delegate.mergeRemoteState(
            dumps(stateDocument(other)), True, STRANGER, False
        )
        self.assertEqual(self.refusals(), {FOREIGN_SENDER: 2})
        self.assertEqual(list(self.state.services()), [])
        # The same member's address in IPv4-mapped IPv6 form is the member.
        self.delegate.messageReceived(encodeService(record()), ("::ffff:127.0.1.2", 1))
        self.assertIsNotNone(self.state.get("peer", "abc"))

    def test_theAnswerOfAPeerWeDialledCountsAsAMembers(self) -> None:
        """
        A seed given by name (or behind another address than it
        advertises) answers our push-pull: its records of members are
        admitted, a phantom host's still are not.
        """
        other = ServicesState("peer", self.clock)
        self.addCleanup(other.stop)
        other.merge(record("peer", "one"))
        other.merge(record("ghost", "two"))
        state = dumps(stateDocument(other))
        self.delegate.mergeRemoteState(state, True, ("seed.example", 7946), True)
        self.assertEqual({s.id for s in self.state.services()}, {"one"})
        self.assertEqual(self.refusals(), {UNKNOWN_HOST: 1})

    def test_aFarFutureTombstoneIsRefused(self) -> None:
        """
        A tombstone stamped in year 9999 would beat every later record of a
        live service for ever: it is refused; so is anything stamped
        further ahead than the allowed skew.  Within it, it is accepted.
        """
        self.delegate.messageReceived(encodeService(record()), PEER)
        forged = record().tombstone(LATEST)
        self.delegate.messageReceived(encodeService(forged), PEER)
        ahead = record().tombstone(round((NOW + 30.001) * SECOND))
        self.delegate.messageReceived(encodeService(ahead), THIRD)
        self.assertEqual(self.refusals(), {FUTURE_STAMP: 2})
        self.assertEqual(self.state.get("peer", "abc"), record())
        # Refused, it says nothing of the peer's clock.
        self.assertEqual(self.admission.skews.skew("peer"), 0.0)
        near = record().tombstone(round((NOW + 30) * SECOND))
        self.delegate.messageReceived(encodeService(near), THIRD)
        self.assertEqual(self.state.get("peer", "abc"), near)

    def test_ourOwnServiceCannotBeTombstonedByOthers(self) -> None:
        mine = self.state.announceLocal(record("me", "mine"))
        forged = mine.tombstone(round((NOW + 29) * SECOND))
        self.delegate.messageReceived(encodeService(forged), PEER)
        current = self.state.get("me", "mine")
        assert current is not None
        self.assertEqual(current.status, Status.ALIVE)
        self.assertEqual(current.updated, forged.updated + 1)
        self.delegate.localState()  # still writable

    def test_aGoneMembersLiveRecordsAreRefusedItsTombstonesAdmitted(self) -> None:
        self.delegate.messageReceived(encodeService(record(updated=NOW - 1)), PEER)
        peer = self.members.get("peer")
        assert peer is not None
        self.members.deadReceived(Dead(1, "peer", "me", "default"))
        self.delegate.memberGone(peer)
        stored = self.state.get("peer", "abc")
        assert stored is not None
        self.assertEqual(stored.status, Status.TOMBSTONE)
        late = record("peer", "late")
        self.delegate.messageReceived(encodeService(late), THIRD)
        self.assertIsNone(self.state.get("peer", "late"))
        self.assertEqual(self.refusals(), {GONE_HOST: 1})
        # Its tombstones still travel, after the member table forgot it,
        # for as long as the catalog keeps tombstones.
        self.members.reap(self.clock.seconds() + 1)
        self.assertIsNone(self.members.get("peer"))
        self.delegate.messageReceived(
            encodeService(late.tombstone(late.updated)), THIRD
        )
        self.assertEqual(self.state.get("peer", "late"), late.tombstone(late.updated))
        self.clock.advance(3 * 3600 + 1)
        stamp = round(self.clock.seconds() * SECOND)
        other = record("peer", "other", updated=stamp / SECOND).tombstone(stamp)
        self.delegate.messageReceived(encodeService(other), THIRD)
        self.assertIsNone(self.state.get("peer", "other"))
        self.assertEqual(self.refusals(), {GONE_HOST: 1, UNKNOWN_HOST: 1})

    def test_aMemberThatFollowsMembershipKeepsItsRecordsUntilItIsGone(self) -> None:
        peer = self.members.get("peer")
        assert peer is not None
        self.delegate.memberJoined(replace(peer, meta=nodeMeta("default")))
        self.delegate.messageReceived(encodeService(record(updated=NOW - 1)), PEER)
        self.clock.advance(3600)  # no refresh: still alive
        self.assertEqual(self.state.get("peer", "abc"), record(updated=NOW - 1))
        self.members.deadReceived(Dead(1, "peer", "me", "default"))
        self.delegate.memberGone(peer)
        stored = self.state.get("peer", "abc")
        assert stored is not None
        self.assertEqual(stored.status, Status.TOMBSTONE)

    def test_anOlderNodeOfOursOrAGoSidecarsRecordsExpireUnrefreshed(self) -> None:
        older = b'{"ClusterName":"default","State":"Running","Drains":"published"}'
        for meta in (older, b'{"ClusterName":"default","State":"Running"}'):
            peer = self.members.get("peer")
            assert peer is not None
            self.delegate.memberUpdated(replace(peer, meta=meta))
            self.delegate.messageReceived(
                encodeService(record(updated=self.clock.seconds())), PEER
            )
            self.clock.advance(80)
            stored = self.state.get("peer", "abc")
            assert stored is not None
            self.assertEqual(stored.status, Status.TOMBSTONE, meta)

    def test_providesTheGossipDelegateInterface(self) -> None:
        verifyObject(IGossipDelegate, self.delegate)

    def test_aDigestIsAnsweredWithTheHostsThatDiffer(self) -> None:
        self.delegate.messageReceived(encodeService(record()), PEER)
        self.delegate.messageReceived(encodeService(record("third", "t")), THIRD)
        digest = self.delegate.localDigest()
        self.assertEqual(sorted(json.loads(digest)["Digest"]), ["peer", "third"])
        self.assertEqual(
            decodeStateServices(self.delegate.localState(remote=digest)), []
        )
        changed = record(updated=NOW + 1)
        self.delegate.messageReceived(encodeService(changed), PEER)
        self.assertEqual(
            decodeStateServices(self.delegate.localState(remote=digest)), [changed]
        )
        # A host the digest does not name is sent whole.
        self.assertEqual(
            decodeStateServices(self.delegate.localState(remote=b'{"Digest":{}}')),
            [changed, record("third", "t")],
        )

    def test_aDigestPushedMergesNothingAndABadOneIsRefused(self) -> None:
        self.delegate.mergeRemoteState(self.delegate.localDigest(), False, PEER, False)
        self.assertEqual(self.refusals(), {})
        self.delegate.mergeRemoteState(b'{"Digest":5}', False, PEER, False)
        self.assertEqual(self.refusals(), {NOT_A_RECORD: 1})
        self.assertIn("digest", str(self.logged[-1]))

    def test_refusalsAreLoggedOnceAMinutePerKind(self) -> None:
        for _ in range(100):
            self.delegate.messageReceived(encodeService(record("ghost")), PEER)
            self.delegate.messageReceived(encodeService(record()), STRANGER)
        self.assertEqual(self.refusals(), {UNKNOWN_HOST: 100, FOREIGN_SENDER: 100})
        self.assertEqual(len(self.logged), 2)
        self.clock.advance(59)
        self.delegate.messageReceived(encodeService(record("ghost")), PEER)
        self.assertEqual(len(self.logged), 2)
        self.clock.advance(1)
        self.delegate.messageReceived(encodeService(record("ghost")), PEER)
        self.assertEqual(len(self.logged), 3)
        self.assertEqual(self.logged[-1]["suppressed"], 100)

    def test_anOversizedRecordIsRefusedAndTheStateStillFitsAPushPull(self) -> None:
        """
        Two 6 MB records would grow the catalog past the 10 MiB a push-pull
        carries, and no node could join any more.
        """
        huge = replace(record(), image="x" * 6_000_000)
        other = ServicesState("peer", self.clock, limits=Limits(10**8, 10**8, 10**8))
        self.addCleanup(other.stop)
        other.merge(huge)
        other.merge(replace(huge, id="def"))
        self.delegate.mergeRemoteState(dumps(stateDocument(other)), False, PEER, False)
        self.delegate.messageReceived(encodeService(huge), PEER)
        self.assertEqual(self.refusals(), {Refused.RECORD_TOO_LARGE: 3})
        self.assertEqual(list(self.state.services()), [])
        self.assertLess(len(self.delegate.localState()), MAX_STREAM_BYTES)
        self.assertEqual(self.state.refused, {Refused.RECORD_TOO_LARGE: 3})

    def test_aMembersClockIsMeasuredFromItsOwnRecords(self) -> None:
        self.delegate.messageReceived(encodeService(record(updated=NOW - 120.5)), PEER)
        self.delegate.messageReceived(encodeService(record(updated=NOW - 120)), PEER)
        # Relayed by another member, a record says nothing of clocks.
        self.delegate.messageReceived(
            encodeService(record("third", updated=NOW - 3600)), PEER
        )
        # Nor do our own records, even from our own address.
        self.delegate.messageReceived(
            encodeService(record("me", updated=NOW - 60)), ("127.0.1.1", 7946)
        )
        self.assertEqual(self.admission.skews.skew("peer"), -120.0)
        self.assertIsNone(self.admission.skews.skew("third"))
        self.assertIsNone(self.admission.skews.skew("me"))

    def test_aPushPullSaysNothingOfClocks(self) -> None:
        """
        A push-pull's copies of a member's records are as old as the
        records: an hour-old stamp, unrefreshed, is no clock an hour behind.
        """
        self.clock.advance(3600)
        state = ServicesState("peer", self.clock)
        self.addCleanup(state.stop)
        state.merge(record(updated=NOW))
        self.delegate.mergeRemoteState(dumps(stateDocument(state)), False, PEER, True)
        self.assertEqual(self.state.get("peer", "abc"), record(updated=NOW))
        self.assertIsNone(self.admission.skews.skew("peer"))


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
