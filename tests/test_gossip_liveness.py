"""
Records that follow membership, end to end on the simulated network: a
node of ours keeps another's records, never refreshed, while it is a
member, and tombstones them once it is dead.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from sidecar.catalog import Status
from sidecar.gossip.streams import PushPull

from .simnet import SimNetwork


class MembershipLivenessTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.network = SimNetwork(seed=5)
        self.nodes = self.network.build(3)
        for node in self.nodes:
            node.start()
            self.addCleanup(node.stop)
        self.network.runUntil(
            lambda: all(len(n.cluster.members.alive()) == 3 for n in self.nodes), 30
        )

    def test_recordsLiveUnrefreshedWhileTheirNodeIsAMember(self) -> None:
        origin, peer, _ = self.nodes
        record = origin.announce("web", "svc-1")
        self.network.runUntil(lambda: peer.state.get(origin.name, record.id), 5)
        # Far past the 80 s a record not refreshed lives by lifespan.
        self.network.run(300, step=0.1)
        self.assertEqual(peer.state.get(origin.name, record.id), record)
        self.network.freeze(origin)  # it dies
        self.network.runUntil(
            lambda: (
                peer.state.get(origin.name, record.id).status  # type: ignore[union-attr]
                is Status.TOMBSTONE
            ),
            60,
        )


class DigestPushPullTests(SynchronousTestCase):
    """
    Push-pull between our own nodes: a digest, answered with what differs.
    """

    def setUp(self) -> None:
        self.network = SimNetwork(seed=7)
        self.nodes = self.network.build(5)
        for node in self.nodes:
            node.start()
            self.addCleanup(node.stop)
        self.network.runUntil(
            lambda: all(len(n.cluster.members.alive()) == 5 for n in self.nodes), 30
        )

    def test_anUnchangedCatalogCostsBytesByHostsNotRecords(self) -> None:
        for node in self.nodes:
            for n in range(40):
                node.announce("web", f"{node.name}-svc-{n}", image="x" * 100)
        # Gossip drops some of so many at once; push-pulls bring the rest.
        self.network.runUntil(
            lambda: all(len(list(n.state.services())) == 200 for n in self.nodes),
            300,
        )
        whole = len(self.nodes[0].delegate.localState())
        self.assertGreater(whole, 5 * 40 * 100)
        sent: list[int] = []
        for node in self.nodes:
            self.patch(node.cluster, "streamReceived", _measured(node, sent))
        self.network.run(200, step=0.1)
        self.assertGreater(len(sent), 10)  # push-pulls happened, both ways
        self.assertLess(max(sent), whole / 10)

    def test_aRecordGossipMissedIsRepairedByPushPull(self) -> None:
        origin, _, _, _, late = self.nodes
        self.network.freeze(late)
        record = origin.announce("web", "svc-missed")
        self.network.run(2, step=0.05)  # gossip is done with it
        self.network.resume(late)
        self.assertIsNone(late.state.get(origin.name, record.id))
        self.network.runUntil(
            lambda: late.state.get(origin.name, record.id) == record, 300
        )


def _measured(node, sent):  # type: ignore[no-untyped-def]
    """
    C{node}'s C{streamReceived}, noting the size of each push-pull that
    reaches it and of its answer.
    """
    receive = node.cluster.streamReceived

    def measured(message, source):  # type: ignore[no-untyped-def]
        reply = receive(message, source)
        if isinstance(message, PushPull):
            sent.append(len(message.userState))
            sent.append(len(reply))
        return reply

    return measured
