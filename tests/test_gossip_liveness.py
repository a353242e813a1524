"""
Records that follow membership, end to end on the simulated network: a
node of ours keeps another's records, never refreshed, while it is a
member, and tombstones them once it is dead.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from sidecar.catalog import Status

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
