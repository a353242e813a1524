"""
SWIM probing over an in-memory network on one Clock: acks, indirect probes
around a broken link, TCP fallback, nacks, suspicion, round-robin order.
"""

from __future__ import annotations

import random

from twisted.internet.defer import succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from sidecar.gossip.members import Member, Members
from sidecar.gossip.messages import (
    Ack,
    Alive,
    IndirectPing,
    Nack,
    NodeState,
    Ping,
    Suspect,
)
from sidecar.gossip.packets import decodePacket
from sidecar.gossip.prober import Address, Prober

VSN = bytes([1, 5, 4, 0, 0, 0])  # protocol 4: nacks understood


class Network:
    """
    Delivers packets between in-memory nodes on the shared clock, with a
    set of broken links (pairs of names, either direction).
    """

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.nodes: dict[Address, Node] = {}
        self.broken: set[frozenset[str]] = set()

    def deliver(self, sender: str, address: Address, data: bytes) -> None:
        node = self.nodes.get(address)
        if node is None or frozenset((sender, node.name)) in self.broken:
            return
        source = next(a for a, n in self.nodes.items() if n.name == sender)
        # A small latency keeps replies ordered after their requests.
        self.clock.callLater(0.001, node.receive, data, source)


class Node:
    def __init__(self, network: Network, name: str, index: int) -> None:
        self.name = name
        self.network = network
        self.address = (f"127.0.1.{index}", 7946)
        self.member = Member(name, bytes([127, 0, 1, index]), 7946, vsn=VSN)
        self.members = Members(self.member, network.clock, lambda s, m: None)
        self.prober = Prober(
            self.members,
            network.clock,
            lambda address, data: network.deliver(name, address, data),
            random.Random(index),
        )
        network.nodes[self.address] = self

    def receive(self, data: bytes, source: Address) -> None:
        for message in decodePacket(data):
            if isinstance(message, Ping):
                self.prober.pingReceived(message, source)
            elif isinstance(message, IndirectPing):
                self.prober.indirectPingReceived(message, source)
            elif isinstance(message, Ack):
                self.prober.ackReceived(message)
            elif isinstance(message, Nack):
                self.prober.nackReceived(message)


class ProberTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.network = Network(self.clock)
        self.nodes = [Node(self.network, name, i + 1) for i, name in enumerate("abcd")]
        for node in self.nodes:
            for other in self.nodes:
                if other is not node:
                    m = other.member
                    node.members.aliveReceived(
                        Alive(
                            m.incarnation,
                            m.name,
                            m.addr,
                            m.port,
                            vsn=VSN,
                            clusterName="default",
                        )
                    )
        self.a = self.nodes[0]

    def tearDown(self) -> None:
        for node in self.nodes:
            node.prober.stop()
            node.members.stop()

    def elapse(self, seconds: float) -> None:
        """
        Let time pass in steps small enough for packets to flow.
        """
        self.clock.pump([0.01] * round(seconds / 0.01))

    def probe(self, target: str) -> None:
        """
        Probe members from a until it probes C{target}, then let the
        interval run out.
        """
        for _ in range(len(self.nodes)):
            probed = self.a.prober.probeNext()
            self.elapse(1.0)
            if probed == target:
                return
        self.fail(f"{target} was never probed")

    def test_roundRobinProbesEveryOtherMemberOncePerRound(self) -> None:
        probed = []
        for _ in range(6):
            probed.append(self.a.prober.probeNext())
            self.elapse(1.0)
        self.assertEqual(sorted(probed[:3]), ["b", "c", "d"])
        self.assertEqual(sorted(probed[3:]), ["b", "c", "d"])
        self.assertEqual(self.a.prober.failures, 0)

    def test_healthyMemberIsNotSuspected(self) -> None:
        self.probe("b")
        self.assertEqual(self.a.members.get("b").state, NodeState.ALIVE)  # type: ignore[union-attr]
        self.assertEqual(self.a.members.awareness.score, 0)

    def test_brokenDirectLinkIsBridgedByIndirectProbes(self) -> None:
        self.network.broken.add(frozenset("ab"))
        self.probe("b")
        self.assertEqual(self.a.members.get("b").state, NodeState.ALIVE)  # type: ignore[union-attr]

    def test_silentMemberIsSuspectedAndHelpersSendNacks(self) -> None:
        for other in "acd":
            self.network.broken.add(frozenset(("b", other)))
        self.probe("b")
        self.assertEqual(self.a.members.get("b").state, NodeState.SUSPECT)  # type: ignore[union-attr]
        self.assertEqual(self.a.prober.failures, 1)
        # The helpers said they could not reach b either: no blame on us.
        self.assertEqual(self.a.members.awareness.score, 0)

    def test_missingNacksRaiseOurOwnAwareness(self) -> None:
        # a can reach no one: no acks and none of the promised nacks.
        for other in "bcd":
            self.network.broken.add(frozenset(("a", other)))
        self.probe("b")
        self.assertEqual(self.a.members.awareness.score, 2)
        self.assertEqual(self.a.prober.interval(), 3.0)

    def test_tcpFallbackSavesAMemberBehindABrokenUDPPath(self) -> None:
        for other in "acd":
            self.network.broken.add(frozenset(("b", other)))
        pinged = []

        def streamPing(member: Member):  # type: ignore[no-untyped-def]
            pinged.append(member.name)
            return succeed(True)

        self.a.prober._streamPing = streamPing
        self.probe("b")
        self.assertEqual(pinged, ["b"])
        self.assertEqual(self.a.members.get("b").state, NodeState.ALIVE)  # type: ignore[union-attr]

    def test_aSuspectIsToldOfItsSuspicionWhenProbed(self) -> None:
        sent: list[tuple[Address, bytes]] = []
        prober = Prober(
            self.a.members,
            self.clock,
            lambda address, data: sent.append((address, data)),
            random.Random(0),
        )
        self.a.members.suspect("b")
        for _ in range(3):
            prober.probeNext()
        toB = [
            decodePacket(d)[0]
            for address, d in sent
            if address == self.nodes[1].address
        ]
        self.assertEqual([type(m).__name__ for m in toB], ["Ping", "Suspect"])
        self.assertEqual(toB[1], Suspect(0, "b", "a", "default"))
        prober.stop()

    def test_pingMeantForAnotherNodeIsNotAnswered(self) -> None:
        sent = []
        prober = Prober(
            self.a.members, self.clock, lambda a, d: sent.append(d), random.Random(0)
        )
        prober.pingReceived(Ping(seqNo=1, node="someone-else"), ("127.0.0.9", 1))
        self.assertEqual(sent, [])
        prober.pingReceived(Ping(seqNo=2, node="a"), ("127.0.0.9", 1))
        self.assertEqual(decodePacket(sent[0]), [Ack(2, b"")])
