"""
The cluster's boundary on the simulated network: a sender that is no
member forges real memberlist packets (a maximal incarnation, a dead
verdict, a flood of members, odd names) at a running cluster.  Membership
and the catalog (what routing is built from) stay as they were, and the
member table stays bounded.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from sidecar.catalog import Status
from sidecar.gossip.cluster import (
    NEW_MEMBERS_BURST,
    NEW_MEMBERS_PER_SECOND,
    RELAYS_BURST,
)
from sidecar.gossip.messages import (
    Alive,
    Dead,
    IndirectPing,
    NodeState,
    PushNodeState,
    PushPullHeader,
    Suspect,
)
from sidecar.gossip.packets import makeCompound
from sidecar.gossip.prober import memberAddress
from sidecar.gossip.streams import PushPull, encodePushPull, parseStream

from .simnet import PORT, SimNetwork, SimNode

STRANGER = ("127.0.1.99", PORT)


class BoundaryTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.network = SimNetwork(seed=3)
        self.nodes = self.network.build(3)
        for node in self.nodes:
            node.start()
            self.addCleanup(node.stop)
        names = [n.name for n in self.nodes]
        self.network.runUntil(lambda: self.allAlive(names), limit=10)
        self.gone: list[str] = []
        for node in self.nodes:
            node.announce("web", f"web-{node.name}")
            observer = node.cluster._observer
            original = observer.memberGone

            def recordGone(member, original=original):  # type: ignore[no-untyped-def]
                self.gone.append(member.name)
                original(member)

            observer.memberGone = recordGone  # type: ignore[method-assign]
        self.network.run(1)

    def allAlive(self, names: list[str]) -> bool:
        return all(
            node.view().get(name) is NodeState.ALIVE
            for node in self.nodes
            for name in names
        )

    def forge(self, target: SimNode, *messages: bytes) -> None:
        """
        Deliver one packet from the stranger, as the network would.
        """
        packet = messages[0] if len(messages) == 1 else makeCompound(list(messages))
        target.protocol.datagramReceived(packet, STRANGER)

    def assertClusterUnchanged(self) -> None:
        names = sorted(n.name for n in self.nodes)
        for node in self.nodes:
            self.assertEqual(sorted(node.view()), names)
            self.assertTrue(self.allAlive(names))
            for other in self.nodes:
                record = node.state.get(other.name, f"web-{other.name}")
                assert record is not None
                self.assertIs(record.status, Status.ALIVE)
        self.assertEqual(self.gone, [])


class IncarnationAttackTests(BoundaryTestCase):
    def test_aSuspectAtTheLastIncarnationChangesNothing(self) -> None:
        victim = self.nodes[0]
        forged = Suspect(0xFFFFFFFF, victim.name, "mallory", "default").encode()
        for node in self.nodes:
            self.forge(node, forged)
        self.network.run(60)
        self.assertClusterUnchanged()
        for node in self.nodes:
            member = node.member(victim.name)
            assert member is not None
            self.assertLess(member.incarnation, 0xFFFFFFFF)

    def test_aDeadAtTheLastIncarnationChangesNothing(self) -> None:
        victim = self.nodes[1]
        forged = Dead(0xFFFFFFFF, victim.name, "mallory", "default").encode()
        for node in self.nodes:
            self.forge(node, forged)
        self.network.run(60)
        self.assertClusterUnchanged()

    def test_aForgedLeaveChangesNothing(self) -> None:
        victim = self.nodes[1]
        forged = Dead(1, victim.name, victim.name, "default").encode()
        for node in self.nodes:
            self.forge(node, forged)
        self.network.run(60)
        self.assertClusterUnchanged()

    def test_aForgedAliveCannotMoveAMemberToTheSender(self) -> None:
        victim = self.nodes[1]
        incarnation = victim.cluster.members.local.incarnation
        forged = Alive(
            incarnation + 1,
            victim.name,
            b"\x7f\x00\x01\x63",
            PORT,
            clusterName="default",
        ).encode()
        for node in self.nodes:
            if node is not victim:
                self.forge(node, forged)

        def victimsAddresses() -> set[tuple[str, int]]:
            return {
                memberAddress(node.member(victim.name))  # type: ignore[arg-type]
                for node in self.nodes
            }

        # Not even for a moment (until the victim would refute it).
        self.assertEqual(victimsAddresses(), {victim.address})
        self.network.run(30)
        self.assertClusterUnchanged()
        self.assertEqual(victimsAddresses(), {victim.address})

    def test_aRealLeaveIsStillSeenAtOnce(self) -> None:
        leaver, others = self.nodes[2], self.nodes[:2]
        leaver.cluster.leave()
        leaver.stop()
        self.network.run(0.1)
        for node in others:
            self.assertIs(node.view()[leaver.name], NodeState.LEFT)

    def test_repeatedRumoursRaiseTheIncarnationSlowly(self) -> None:
        victim = self.nodes[2]
        start = victim.cluster.members.local.incarnation
        for _ in range(100):
            incarnation = victim.cluster.members.local.incarnation
            self.forge(
                victim,
                Suspect(incarnation, victim.name, "mallory", "default").encode(),
            )
            self.network.run(0.1)
        # Ten seconds of rumours: one refutation per probe interval.
        self.assertLessEqual(victim.cluster.members.local.incarnation - start, 11)
        self.network.run(30)
        self.assertClusterUnchanged()


class ReflectionTests(BoundaryTestCase):
    def test_aStrangersIndirectPingsAreRelayedWithinItsBudget(self) -> None:
        target = self.nodes[0]
        sent = []
        original = target.protocol.send

        def recording(address, messages, crc=False):  # type: ignore[no-untyped-def]
            sent.append(address)
            original(address, messages, crc)

        target.protocol.send = recording  # type: ignore[method-assign]
        victim = ("127.0.1.77", PORT)
        request = IndirectPing(
            seqNo=1, target=b"\x7f\x00\x01\x4d", port=PORT, node="x"
        ).encode()
        for _ in range(100):
            self.forge(target, request)
        self.assertEqual(sent.count(victim), RELAYS_BURST)
        self.assertEqual(target.cluster.relaysRefused, 100 - RELAYS_BURST)
        # A member's requests are relayed, whatever the stranger did.
        target.protocol.datagramReceived(request, self.nodes[1].address)
        self.assertEqual(sent.count(victim), RELAYS_BURST + 1)


class MemberFloodTests(BoundaryTestCase):
    def fakeAlive(self, n: int, name: str | None = None) -> bytes:
        address = bytes([127, 0, 2 + n // 250, 1 + n % 250])
        name = f"fake-{n}" if name is None else name
        return Alive(1, name, address, PORT, clusterName="default").encode()

    def test_aFloodOfMembersFromOneAddressIsBoundedAndForgotten(self) -> None:
        target = self.nodes[0]
        for n in range(0, 5000, 20):
            self.forge(target, *(self.fakeAlive(n + i) for i in range(20)))
            if n % 1000 == 0:
                self.network.run(1)
        elapsed = 5  # five network.run(1) during the flood
        admitted = NEW_MEMBERS_BURST + elapsed * NEW_MEMBERS_PER_SECOND
        for node in self.nodes:
            fakes = [name for name in node.view() if name.startswith("fake-")]
            self.assertLessEqual(len(fakes), admitted)
        self.assertGreater(target.cluster.members.refused, 4000)
        # The fakes never answer: suspected, dead, then forgotten.
        self.network.run(300)
        for node in self.nodes:
            self.assertEqual(len(node.cluster.members), 3)
        self.assertEqual(
            sorted(node.name for node in self.nodes), sorted(self.nodes[0].view())
        )
        for node in self.nodes:
            for other in self.nodes:
                self.assertIs(node.view()[other.name], NodeState.ALIVE)

    def test_namesWithControlCharactersOrTooLongAreRefused(self) -> None:
        target = self.nodes[0]
        dropped = target.protocol.counters.dropped
        for name in ("evil\x1b[31m", "tab\there", "x" * 129, "é" * 65, ""):
            self.forge(target, self.fakeAlive(1, name=name))
        self.assertEqual(target.protocol.counters.dropped, dropped + 5)
        self.network.run(1)
        self.assertEqual(len(target.cluster.members), 3)

    def test_aMemberRelayingManyNewMembersIsNotLimited(self) -> None:
        # A member passing on news of many joins (its own address is the
        # source) is believed: they are real joins as far as it knows.
        relay, target = self.nodes[1], self.nodes[0]
        for n in range(0, 200, 20):
            packet = makeCompound([self.fakeAlive(n + i) for i in range(20)])
            target.protocol.datagramReceived(packet, relay.address)
        fakes = [name for name in target.view() if name.startswith("fake-")]
        self.assertEqual(len(fakes), 200)

    def pushPull(self, count: int) -> PushPull:
        states = tuple(
            PushNodeState(
                name=f"pushed-{n}",
                addr=bytes([127, 0, 3 + n // 250, 1 + n % 250]),
                port=PORT,
                incarnation=1,
            )
            for n in range(count)
        )
        header = PushPullHeader(nodes=count, userStateLen=0, clusterName="default")
        return PushPull(header, states, b"")

    def test_aStrangersPushPullAddsMembersWithinItsBudget(self) -> None:
        target = self.nodes[0]
        reply = target.cluster.streamReceived(
            self.pushPull(1000), ("127.0.1.99", 50000)
        )
        self.assertIsNotNone(reply)
        pushed = [name for name in target.view() if name.startswith("pushed-")]
        self.assertEqual(len(pushed), NEW_MEMBERS_BURST)

    def test_aPushPullsOddNamesAreLeftOutAndCounted(self) -> None:
        target, member = self.nodes[0], self.nodes[1]
        wire = encodePushPull(
            PushPullHeader(nodes=2, userStateLen=0, clusterName="default"),
            [
                PushNodeState(name="ok", addr=b"\x7f\x00\x03\x01", port=PORT),
                PushNodeState(name="bad\x00", addr=b"\x7f\x00\x03\x02", port=PORT),
            ],
            b"",
        )
        refused = target.cluster.members.refused
        message = parseStream(wire)
        assert message is not None
        target.cluster.streamReceived(message, (member.address[0], 50000))
        self.assertIn("ok", target.view())
        self.assertEqual(target.cluster.members.refused, refused + 1)

    def test_aMembersPushPullIsTakenWhole(self) -> None:
        target, member = self.nodes[0], self.nodes[1]
        target.cluster.streamReceived(self.pushPull(300), (member.address[0], 50000))
        pushed = [name for name in target.view() if name.startswith("pushed-")]
        self.assertEqual(len(pushed), 300)
