"""
The SWIM member rules on a Clock: join, suspicion with Lifeguard
confirmations, death, refutation, leave, and cluster names.
"""

from __future__ import annotations

from dataclasses import replace

from twisted.internet.task import Clock
from twisted.logger import Logger
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from sidecar.gossip.interfaces import IMemberObserver
from sidecar.gossip.members import INCARNATION_JUMP, Member, Members
from sidecar.gossip.messages import (
    Alive,
    Dead,
    MessageType,
    NodeState,
    Suspect,
    decodeBody,
)
from sidecar.gossip.service import describeMember
from sidecar.ratelimit import RateLimitedLog

LOCAL = Member("me", b"\x7f\x00\x01\x01", 7946)


@implementer(IMemberObserver)
class Seen:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, NodeState]] = []

    def memberJoined(self, member: Member) -> None:
        self.events.append(("joined", member.name, member.state))

    def memberUpdated(self, member: Member) -> None:
        self.events.append(("updated", member.name, member.state))

    def memberGone(self, member: Member) -> None:
        self.events.append(("gone", member.name, member.state))


def alive(node: str, incarnation: int = 1, cluster: str = "default", **kw) -> Alive:  # type: ignore[no-untyped-def]
    return Alive(
        incarnation=incarnation,
        node=node,
        addr=kw.get("addr", b"\x7f\x00\x01\x02"),
        port=7946,
        meta=kw.get("meta", b""),
        clusterName=cluster,
    )


class MembersTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.sent: list[tuple[str, bytes]] = []
        self.seen = Seen()
        self.members = Members(
            LOCAL,
            self.clock,
            lambda subject, message: self.sent.append((subject, message)),
            observer=self.seen,
        )
        self.addCleanup(self.members.stop)

    def state(self, name: str) -> NodeState:
        member = self.members.get(name)
        assert member is not None
        return member.state


class JoinTests(MembersTestCase):
    def test_observerProvidesTheInterface(self) -> None:
        verifyObject(IMemberObserver, self.seen)

    def test_aliveOfANewNodeJoinsAndIsPassedOn(self) -> None:
        message = alive("peer")
        self.members.aliveReceived(message)
        self.assertEqual(self.state("peer"), NodeState.ALIVE)
        self.assertEqual(self.seen.events, [("joined", "peer", NodeState.ALIVE)])
        self.assertEqual(self.sent, [("peer", message.encode())])
        self.assertEqual([m.name for m in self.members.alive()], ["me", "peer"])

    def test_oldOrEqualIncarnationIsIgnored(self) -> None:
        self.members.aliveReceived(alive("peer", 3))
        self.sent.clear()
        self.members.aliveReceived(alive("peer", 3, meta=b"new"))
        self.members.aliveReceived(alive("peer", 2))
        self.assertEqual(self.sent, [])

    def test_anAliveUpTo64IncarnationsAheadIsBelieved(self) -> None:
        # The bound in figures, not through the constant: 64 ahead is
        # believed, 65 is not.
        self.members.aliveReceived(alive("peer", 1))
        self.members.aliveReceived(alive("peer", 65, meta=b"a"))
        self.assertEqual(self.members.get("peer").incarnation, 65)  # type: ignore[union-attr]
        self.members.aliveReceived(alive("peer", 130, meta=b"b"))
        self.assertEqual(self.members.get("peer").incarnation, 65)  # type: ignore[union-attr]
        self.assertEqual(self.members.refused, 1)

    def test_reapingForgetsEveryGoneMemberButThisNode(self) -> None:
        # Names before and after ours ("me"), all gone, this node too.
        for name, addr in (
            ("a-peer", b"\x7f\x00\x01\x03"),
            ("z-peer", b"\x7f\x00\x01\x04"),
        ):
            self.members.aliveReceived(alive(name, addr=addr))
            self.members.deadReceived(
                Dead(incarnation=1, node=name, source=name, clusterName="default")
            )
        self.members.leave()
        self.clock.advance(10)
        self.assertEqual(
            sorted(self.members.reap(self.clock.seconds())), ["a-peer", "z-peer"]
        )
        self.assertEqual([m.name for m in self.members.all()], ["me"])

    def test_newerIncarnationWithNewMetaIsAnUpdate(self) -> None:
        self.members.aliveReceived(alive("peer", 1))
        self.members.aliveReceived(alive("peer", 2, meta=b"role=web"))
        self.assertEqual(self.seen.events[-1], ("updated", "peer", NodeState.ALIVE))

    def test_otherClusterIsRefused(self) -> None:
        self.members.aliveReceived(alive("stranger", cluster="other"))
        self.members.aliveReceived(alive("serf-agent", cluster=""))
        self.assertIsNone(self.members.get("stranger"))
        self.assertIsNone(self.members.get("serf-agent"))
        self.assertEqual(self.members.refused, 2)

    def test_anotherClustersFloodIsLoggedOncePerPeriod(self) -> None:
        events: list[dict[str, object]] = []
        self.members.log = Logger(observer=events.append)
        self.members._otherClusters = RateLimitedLog(self.members.log, self.clock)
        for n in range(100):
            self.members.aliveReceived(alive(f"stranger-{n}", cluster="other"))
        self.assertEqual(len(events), 1)
        self.assertEqual(self.members.refused, 100)

    def test_unnamedPeersAreAcceptedWhenAllowed(self) -> None:
        members = Members(LOCAL, self.clock, lambda s, m: None, acceptUnnamedPeers=True)
        members.aliveReceived(alive("serf-agent", cluster=""))
        self.assertIsNotNone(members.get("serf-agent"))
        members.aliveReceived(alive("stranger", cluster="other"))
        self.assertIsNone(members.get("stranger"))


class SuspicionTests(MembersTestCase):
    def setUp(self) -> None:
        super().setUp()
        for name in ("peer", "b", "c"):
            self.members.aliveReceived(alive(name))

    def test_unrefutedSuspicionBecomesDeathAfterTheMaximumTimeout(self) -> None:
        self.members.suspect("peer")
        self.assertEqual(self.state("peer"), NodeState.SUSPECT)
        # 4 members: least 4 s, most 6 x 4 = 24 s, and no confirmation.
        self.clock.advance(23.9)
        self.assertEqual(self.state("peer"), NodeState.SUSPECT)
        self.clock.advance(0.1)
        self.assertEqual(self.state("peer"), NodeState.DEAD)
        self.assertEqual(self.seen.events[-1], ("gone", "peer", NodeState.DEAD))

    def test_inALargerClusterTheSuspicionStillWaitsForConfirmations(self) -> None:
        for name in ("d", "e"):
            self.members.aliveReceived(alive(name))
        self.members.suspect("peer")
        # 6 members: more than enough to confirm, and none did: 24 s.
        self.clock.advance(23.9)
        self.assertEqual(self.state("peer"), NodeState.SUSPECT)
        self.clock.advance(0.1)
        self.assertEqual(self.state("peer"), NodeState.DEAD)

    def test_independentConfirmationsShortenTheSuspicion(self) -> None:
        self.members.suspect("peer")
        self.clock.advance(1)
        for confirmer in ("b", "c"):
            self.members.suspectReceived(
                Suspect(
                    incarnation=1, node="peer", source=confirmer, clusterName="default"
                )
            )
        self.clock.advance(2.9)
        self.assertEqual(self.state("peer"), NodeState.SUSPECT)
        self.clock.advance(0.1)  # the least timeout, 4 s from the start
        self.assertEqual(self.state("peer"), NodeState.DEAD)

    def test_ourOwnFailedProbeConfirmsAnotherNodesSuspicion(self) -> None:
        self.members.suspectReceived(Suspect(1, "peer", "b", "default"))
        self.members.suspect("peer")  # our probe failed too
        self.members.suspectReceived(Suspect(1, "peer", "c", "default"))
        # Two confirmations (ours and c's): the least timeout, 4 s.
        self.clock.advance(3.9)
        self.assertEqual(self.state("peer"), NodeState.SUSPECT)
        self.clock.advance(0.1)
        self.assertEqual(self.state("peer"), NodeState.DEAD)

    def test_theAccuserRepeatingItselfIsNoConfirmation(self) -> None:
        self.members.suspect("peer")
        for _ in range(3):
            self.members.suspect("peer")
            self.members.suspectReceived(Suspect(1, "peer", "peer", "default"))
        self.clock.advance(23.9)
        self.assertEqual(self.state("peer"), NodeState.SUSPECT)

    def test_tooFewMembersToConfirmMeansTheShortestTimeout(self) -> None:
        # 3 members: only one other could confirm, fewer than the two
        # hoped for, so none are waited for (as memberlist does).
        self.members.deadReceived(Dead(1, "c", "c", "default"))
        self.members.suspect("peer")
        self.clock.advance(3.9)
        self.assertEqual(self.state("peer"), NodeState.SUSPECT)
        self.clock.advance(0.1)
        self.assertEqual(self.state("peer"), NodeState.DEAD)

    def test_aliveWithAHigherIncarnationClearsTheSuspicion(self) -> None:
        self.members.suspect("peer")
        self.members.aliveReceived(alive("peer", 2))
        self.clock.advance(60)
        self.assertEqual(self.state("peer"), NodeState.ALIVE)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_deadNodeRejoinsWithAHigherIncarnation(self) -> None:
        self.members.suspect("peer")
        self.clock.advance(60)
        self.members.aliveReceived(alive("peer", 2))
        self.assertEqual(self.state("peer"), NodeState.ALIVE)
        self.assertEqual(
            [e[0] for e in self.seen.events if e[1] == "peer"],
            ["joined", "gone", "joined"],
        )

    def test_deadFromTheNodeItselfMeansLeft(self) -> None:
        self.members.deadReceived(Dead(1, "peer", "peer", "default"))
        self.assertEqual(self.state("peer"), NodeState.LEFT)
        self.assertEqual(self.seen.events[-1], ("gone", "peer", NodeState.LEFT))

    def test_staleDeadIsIgnored(self) -> None:
        self.members.aliveReceived(alive("peer", 5))
        self.members.deadReceived(Dead(4, "peer", "b", "default"))
        self.assertEqual(self.state("peer"), NodeState.ALIVE)


class RefutationTests(MembersTestCase):
    def test_suspicionOfOurselvesIsRefutedWithAHigherIncarnation(self) -> None:
        self.members.suspectReceived(Suspect(0, "me", "peer", "default"))
        self.assertEqual(self.members.local.incarnation, 1)
        self.assertEqual(self.members.local.state, NodeState.ALIVE)
        self.assertEqual(self.sent, [("me", self.members.localAlive().encode())])
        self.assertEqual(self.members.awareness.score, 1)

    def test_deathOfOurselvesIsRefutedUnlessWeAreLeaving(self) -> None:
        self.members.deadReceived(Dead(3, "me", "peer", "default"))
        self.assertEqual(self.members.local.incarnation, 4)
        dead = self.members.leave()
        self.assertEqual((dead.node, dead.source), ("me", "me"))
        self.members.deadReceived(Dead(4, "me", "peer", "default"))
        self.assertEqual(self.members.local.incarnation, 4)

    def test_aliveAboutUsWithOtherAddressIsRefuted(self) -> None:
        self.members.aliveReceived(alive("me", 0, addr=b"\x7f\x00\x09\x09"))
        self.assertEqual(self.members.local.incarnation, 1)
        self.assertEqual(self.members.local.addr, LOCAL.addr)


def received(message: bytes) -> Alive:
    """
    A broadcast as a peer decodes it off the wire (which refuses an
    incarnation beyond 32 bits).
    """
    body = decodeBody(MessageType(message[0]), message[1:])
    assert isinstance(body, Alive)
    return body


class IncarnationGuardTests(MembersTestCase):
    """
    No rumour can make this node claim an incarnation its peers refuse,
    or raise another member's incarnation beyond its reach, and one packet
    cannot expel a live member.
    """

    def setUp(self) -> None:
        super().setUp()
        # This node at incarnation 1, as nodes start.
        self.members = Members(
            replace(LOCAL, incarnation=1),
            self.clock,
            lambda subject, message: self.sent.append((subject, message)),
            observer=self.seen,
        )
        self.addCleanup(self.members.stop)
        # A peer that knows us (at incarnation 1) and hears what we say.
        self.peer = Members(
            Member("peer", b"\x7f\x00\x01\x02", 7946, incarnation=1),
            self.clock,
            lambda subject, message: None,
        )
        self.addCleanup(self.peer.stop)
        self.peer.aliveReceived(self.members.localAlive())
        self.members.aliveReceived(self.peer.localAlive())
        self.sent.clear()

    def test_aSuspectAtTheLastIncarnationIsRefutedAtOneThePeersAccept(self) -> None:
        forged = Suspect(0xFFFFFFFF, "me", "mallory", "default")
        self.peer.suspectReceived(forged)
        self.members.suspectReceived(forged)
        peerView = self.peer.get("me")
        assert peerView is not None
        self.assertEqual((peerView.state, peerView.incarnation), (NodeState.SUSPECT, 1))
        self.assertEqual(self.members.local.incarnation, 1 + INCARNATION_JUMP)
        [(subject, refutation)] = self.sent
        self.peer.aliveReceived(received(refutation))
        peerView = self.peer.get("me")
        assert peerView is not None
        self.assertEqual(peerView.state, NodeState.ALIVE)
        self.clock.advance(60)
        self.assertEqual(self.peer.get("me").state, NodeState.ALIVE)  # type: ignore[union-attr]

    def test_aDeadAtTheLastIncarnationCannotExpelALiveMember(self) -> None:
        forged = Dead(0xFFFFFFFF, "me", "mallory", "default")
        self.peer.deadReceived(forged)
        peerView = self.peer.get("me")
        assert peerView is not None
        self.assertEqual((peerView.state, peerView.incarnation), (NodeState.SUSPECT, 1))
        self.members.deadReceived(forged)
        [(subject, refutation)] = self.sent
        self.peer.aliveReceived(received(refutation))
        self.clock.advance(60)
        self.assertEqual(self.peer.get("me").state, NodeState.ALIVE)  # type: ignore[union-attr]

    def test_aThirdPartysDeadOnlyConfirmsASuspicion(self) -> None:
        self.members.suspect("peer")
        self.members.deadReceived(Dead(1, "peer", "mallory", "default"))
        self.assertEqual(self.state("peer"), NodeState.SUSPECT)
        # One confirmation: shorter than the 24 s of none, but still time
        # to refute.
        self.members.aliveReceived(alive("peer", 2, addr=b"\x7f\x00\x01\x02"))
        self.assertEqual(self.state("peer"), NodeState.ALIVE)

    def test_aThirdPartysDeadOnlyStartsASuspicion(self) -> None:
        self.members.deadReceived(Dead(1, "peer", "mallory", "default"))
        self.assertEqual(self.state("peer"), NodeState.SUSPECT)
        self.assertNotIn(("gone", "peer", NodeState.DEAD), self.seen.events)
        # Unrefuted, it ends as any suspicion does.
        self.clock.advance(60)
        self.assertEqual(self.state("peer"), NodeState.DEAD)

    def test_aLeaveNobodyVouchesForOnlyStartsASuspicion(self) -> None:
        self.members.deadReceived(Dead(1, "peer", "peer", "default"), vouched=False)
        self.assertEqual(self.state("peer"), NodeState.SUSPECT)
        self.assertEqual(self.seen.events[-1][0], "joined")
        # Unrefuted, the member left (it was no failure).
        self.clock.advance(60)
        self.assertEqual(self.state("peer"), NodeState.LEFT)
        self.assertEqual(self.seen.events[-1], ("gone", "peer", NodeState.LEFT))

    def test_aVouchedLeaveIsTakenAtOnce(self) -> None:
        self.members.deadReceived(Dead(1, "peer", "peer", "default"), vouched=True)
        self.assertEqual(self.state("peer"), NodeState.LEFT)

    def test_refutationsComeAtMostOncePerProbeInterval(self) -> None:
        for _ in range(50):
            self.members.suspectReceived(
                Suspect(self.members.local.incarnation, "me", "mallory", "default")
            )
            self.clock.advance(0.01)
        self.assertEqual(self.members.local.incarnation, 2)
        self.clock.advance(1)
        # The rumours heard meanwhile are answered together, once.
        self.assertEqual(self.members.local.incarnation, 3)
        self.assertEqual(len(self.sent), 2)

    def test_aRestartedNodeCatchesUpInBoundedSteps(self) -> None:
        # A peer remembers us at 200, from before a restart.
        steps = []
        for _ in range(5):
            self.members.aliveReceived(
                Alive(200, "me", b"\x7f\x00\x09\x09", 7946, clusterName="default")
            )
            steps.append(self.members.local.incarnation)
            self.clock.advance(1)
        jump = INCARNATION_JUMP
        self.assertEqual(steps, [1 + jump, 1 + 2 * jump, 1 + 3 * jump, 201, 201])

    def test_aLiveMemberCannotBeMovedElsewhere(self) -> None:
        self.members.aliveReceived(alive("peer", 2, addr=b"\x7f\x00\x09\x09"))
        member = self.members.get("peer")
        assert member is not None
        self.assertEqual((member.incarnation, member.addr), (1, b"\x7f\x00\x01\x02"))
        self.assertEqual(self.members.atAddress(("127.0.1.2", 7946)), member)
        self.assertIsNone(self.members.atAddress(("127.0.9.9", 7946)))

    def test_aGoneMemberMayComeBackElsewhere(self) -> None:
        self.members.deadReceived(Dead(1, "peer", "peer", "default"))
        self.members.aliveReceived(alive("peer", 1, addr=b"\x7f\x00\x09\x09"))
        member = self.members.get("peer")
        assert member is not None
        self.assertEqual(
            (member.state, member.addr), (NodeState.ALIVE, b"\x7f\x00\x09\x09")
        )

    def test_anAliveFarAheadOfWhatWeKnowIsNotBelieved(self) -> None:
        self.members.aliveReceived(
            alive("peer", 1 + INCARNATION_JUMP + 1, addr=b"\x7f\x00\x09\x09")
        )
        member = self.members.get("peer")
        assert member is not None
        self.assertEqual((member.incarnation, member.addr), (1, b"\x7f\x00\x01\x02"))
        self.members.aliveReceived(alive("peer", 1 + INCARNATION_JUMP, meta=b"new"))
        self.assertEqual(self.members.get("peer").meta, b"new")  # type: ignore[union-attr]


class BoundedTableTests(MembersTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.members = Members(
            LOCAL,
            self.clock,
            lambda subject, message: None,
            observer=self.seen,
            maxMembers=4,
        )
        self.addCleanup(self.members.stop)
        for n in range(3):
            self.members.aliveReceived(alive(f"p{n}", addr=bytes([127, 0, 2, n])))

    def test_aFullTableRefusesNewNames(self) -> None:
        self.members.aliveReceived(alive("p9", addr=b"\x7f\x00\x02\x09"))
        self.assertIsNone(self.members.get("p9"))
        self.assertEqual((len(self.members), self.members.full), (4, 1))
        # Known members still change.
        self.members.aliveReceived(
            alive("p1", 2, meta=b"new", addr=b"\x7f\x00\x02\x01")
        )
        self.assertEqual(self.members.get("p1").meta, b"new")  # type: ignore[union-attr]

    def test_aNewNameTakesThePlaceOfTheMemberGoneLongest(self) -> None:
        self.members.deadReceived(Dead(1, "p2", "p2", "default"))
        self.clock.advance(1)
        self.members.deadReceived(Dead(1, "p0", "p0", "default"))
        self.members.aliveReceived(alive("p9", addr=b"\x7f\x00\x02\x09"))
        self.assertIsNotNone(self.members.get("p9"))
        self.assertIsNone(self.members.get("p2"))
        self.assertIsNone(self.members.atAddress(("127.0.2.2", 7946)))
        self.assertEqual(len(self.members), 4)

    def test_membersAreFoundByAddress(self) -> None:
        found = self.members.atAddress(("127.0.2.1", 7946))
        self.assertEqual(found.name if found else None, "p1")
        # Gone, then back elsewhere.
        self.members.deadReceived(Dead(1, "p1", "p1", "default"))
        self.members.aliveReceived(alive("p1", 2, addr=b"\x7f\x00\x02\x07"))
        self.assertIsNone(self.members.atAddress(("127.0.2.1", 7946)))
        self.assertEqual(self.members.atAddress(("127.0.2.7", 7946)).name, "p1")  # type: ignore[union-attr]
        self.assertIsNone(self.members.atAddress(("127.0.2.1", 1)))

    def test_aMembersHostIsKnownWhateverThePort(self) -> None:
        self.assertTrue(self.members.isMemberHost("127.0.2.1"))
        self.assertFalse(self.members.isMemberHost("127.0.2.9"))

    def test_aMembersHostIsKnownHoweverASocketWritesIt(self) -> None:
        """
        A dual-stack socket reports an IPv4 peer as IPv4-mapped IPv6.
        """
        self.assertTrue(self.members.isMemberHost("::ffff:127.0.2.1"))
        self.assertFalse(self.members.isMemberHost("::ffff:127.0.2.9"))
        self.assertFalse(self.members.isMemberHost("not an address"))

    def test_aHostIsForgottenWithItsLastMemberThere(self) -> None:
        """
        A member that moves leaves no host behind, and a member forgotten
        to make room takes its host with it.
        """
        self.members.deadReceived(Dead(1, "p1", "p1", "default"))
        self.members.aliveReceived(alive("p1", 2, addr=b"\x7f\x00\x02\x07"))
        self.assertFalse(self.members.isMemberHost("127.0.2.1"))
        self.assertTrue(self.members.isMemberHost("127.0.2.7"))
        self.members.deadReceived(Dead(1, "p2", "p2", "default"))
        self.members.aliveReceived(alive("p9", addr=b"\x7f\x00\x02\x09"))
        self.assertFalse(self.members.isMemberHost("127.0.2.2"))
        self.assertTrue(self.members.isMemberHost("127.0.2.9"))


class SinceTests(SynchronousTestCase):
    """
    Each member's C{stateChange}: when it entered the state it is in, by
    this node's clock; C{/api/members.json} shows it as C{Since}.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1000)
        self.members = Members(LOCAL, self.clock, lambda subject, message: None)
        self.addCleanup(self.members.stop)

    def since(self, name: str) -> tuple[NodeState, float]:
        member = self.members.get(name)
        assert member is not None
        return member.state, member.stateChange

    def test_thisNodeIsAliveSinceItStarted(self) -> None:
        self.clock.advance(50)
        self.assertEqual(self.since("me"), (NodeState.ALIVE, 1000))
        # A refutation raises its incarnation, not its state.
        self.members.suspectReceived(Suspect(1, "me", "peer", "default"))
        self.assertEqual(self.members.local.incarnation, 2)
        self.assertEqual(self.since("me"), (NodeState.ALIVE, 1000))
        self.clock.advance(10)
        self.members.leave()
        self.assertEqual(self.since("me"), (NodeState.LEFT, 1060))

    def test_eachStateStartsWhenEntered(self) -> None:
        self.members.aliveReceived(alive("peer"))
        self.assertEqual(self.since("peer"), (NodeState.ALIVE, 1000))
        self.clock.advance(10)
        # News that leaves it alive: a new incarnation, new metadata.
        self.members.aliveReceived(alive("peer", 2, meta=b"new"))
        self.assertEqual(self.since("peer"), (NodeState.ALIVE, 1000))
        self.clock.advance(10)
        self.members.suspect("peer")
        self.assertEqual(self.since("peer"), (NodeState.SUSPECT, 1020))
        self.clock.advance(1)
        # Another accusation confirms the suspicion; it started earlier.
        self.members.suspectReceived(Suspect(2, "peer", "b", "default"))
        self.assertEqual(self.since("peer"), (NodeState.SUSPECT, 1020))
        # Refuted: alive again, from now.
        self.clock.advance(2)
        self.members.aliveReceived(alive("peer", 3))
        self.assertEqual(self.since("peer"), (NodeState.ALIVE, 1023))
        self.clock.advance(5)
        self.members.suspect("peer")
        # Unrefuted, it ends after 4 s (two members): dead from then.
        self.clock.advance(4)
        self.assertEqual(self.since("peer"), (NodeState.DEAD, 1032))
        self.clock.advance(5)
        self.members.aliveReceived(alive("peer", 4))
        self.assertEqual(self.since("peer"), (NodeState.ALIVE, 1037))

    def test_aLeaveStartsLeft(self) -> None:
        self.members.aliveReceived(alive("peer"))
        self.clock.advance(7)
        self.members.deadReceived(Dead(1, "peer", "peer", "default"))
        self.assertEqual(self.since("peer"), (NodeState.LEFT, 1007))

    def test_sinceIsShownToTheMillisecondInUTC(self) -> None:
        member = replace(LOCAL, stateChange=1764990000.1239)
        self.assertEqual(describeMember(member)["Since"], "2025-12-06T03:00:00.123Z")
