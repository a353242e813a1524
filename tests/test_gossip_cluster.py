"""
Whole clusters on a simulated network driven by one Clock: join,
convergence of members and catalogs, failure detection, graceful leave, no
false deaths under packet loss, partition and heal, a frozen node that
comes back with a higher incarnation, a record too large for UDP, and
clusters that must not mix.
"""

from __future__ import annotations

from twisted.logger import Logger, LogLevel, formatEvent
from twisted.trial.unittest import SynchronousTestCase

from sidecar.catalog import Status
from sidecar.gossip.messages import NodeState

from .simnet import SimNetwork, SimNode

KEY_A = bytes(range(16))
KEY_B = bytes(range(1, 17))


class ClusterTestCase(SynchronousTestCase):
    def makeCluster(
        self, count: int, seed: int = 0, **settings: object
    ) -> list[SimNode]:
        self.network = SimNetwork(seed)
        nodes = self.network.build(count, **settings)
        for node in nodes:
            node.start()
            self.addCleanup(node.stop)
        return nodes

    def allSee(self, nodes: list[SimNode], state: NodeState, names: list[str]) -> bool:
        return all(node.view().get(name) is state for node in nodes for name in names)

    def converged(self, nodes: list[SimNode]) -> bool:
        names = [n.name for n in nodes]
        return self.allSee(nodes, NodeState.ALIVE, names)


class MembershipTests(ClusterTestCase):
    def test_nodesJoinThroughOneSeedAndConverge(self) -> None:
        nodes = self.makeCluster(12)
        took = self.network.runUntil(lambda: self.converged(nodes), limit=10)
        self.assertLess(took, 5)

    def test_aKilledNodeIsDeclaredDeadByEveryone(self) -> None:
        nodes = self.makeCluster(8)
        self.network.runUntil(lambda: self.converged(nodes), limit=10)
        victim, survivors = nodes[3], nodes[:3] + nodes[4:]
        self.network.freeze(victim)
        took = self.network.runUntil(
            lambda: self.allSee(survivors, NodeState.DEAD, [victim.name]), limit=60
        )
        # Suspicion lasts 4 x max(1, log10 8) x 1 s at least, 6 times that
        # at most; detection adds a probe round or two.
        self.assertGreater(took, 4)
        self.assertLess(took, 30)
        self.assertTrue(
            self.allSee(survivors, NodeState.ALIVE, [n.name for n in survivors])
        )

    def test_aNodeThatLeavesIsSeenAsLeftAtOnce(self) -> None:
        nodes = self.makeCluster(6)
        self.network.runUntil(lambda: self.converged(nodes), limit=10)
        leaver, others = nodes[2], nodes[:2] + nodes[3:]
        leaver.cluster.leave()
        leaver.stop()
        took = self.network.runUntil(
            lambda: self.allSee(others, NodeState.LEFT, [leaver.name]), limit=5
        )
        self.assertLess(took, 0.1)

    def assertNoFalseDeath(
        self, count: int, latency: float, loss: float, seed: int = 7
    ) -> None:
        self.network = SimNetwork(seed, latency=latency)
        nodes = self.network.build(count)
        for node in nodes:
            node.start()
            self.addCleanup(node.stop)
        self.network.runUntil(lambda: self.converged(nodes), limit=30)
        gone: list[str] = []
        for node in nodes:
            node.cluster._observer = _GoneRecorder(gone, node.cluster._observer)
        self.network.loss = loss
        self.network.run(120)
        self.assertEqual(gone, [])
        self.assertTrue(self.converged(nodes))

    def test_noFalseDeathUnderTenPercentLoss(self) -> None:
        self.assertNoFalseDeath(10, latency=0.002, loss=0.10)

    def test_noFalseDeathWhenEveryDirectAckIsLate(self) -> None:
        # 300 ms each way: every direct ack misses the 500 ms probe timeout.
        self.assertNoFalseDeath(8, latency=0.3, loss=0.0)

    def test_noFalseDeathOnASlowLossyNetwork(self) -> None:
        self.assertNoFalseDeath(8, latency=0.2, loss=0.10)

    def test_aPartitionHealsAndEveryoneIsAliveAgain(self) -> None:
        nodes = self.makeCluster(6)
        self.network.runUntil(lambda: self.converged(nodes), limit=10)
        left, right = nodes[:3], nodes[3:]
        self.network.partition(left, right)
        self.network.runUntil(
            lambda: (
                self.allSee(left, NodeState.DEAD, [n.name for n in right])
                and self.allSee(right, NodeState.DEAD, [n.name for n in left])
            ),
            limit=60,
        )
        # Long enough for both sides to forget each other entirely.
        self.network.run(60)
        self.network.heal()
        took = self.network.runUntil(lambda: self.converged(nodes), limit=90)
        self.assertLess(took, 61)

    def test_aFrozenNodeComesBackWithAHigherIncarnation(self) -> None:
        nodes = self.makeCluster(5)
        self.network.runUntil(lambda: self.converged(nodes), limit=10)
        sleeper, others = nodes[0], nodes[1:]
        before = sleeper.cluster.members.local.incarnation
        self.network.freeze(sleeper)
        self.network.runUntil(
            lambda: self.allSee(others, NodeState.DEAD, [sleeper.name]), limit=60
        )
        self.network.resume(sleeper)
        self.network.runUntil(lambda: self.converged(nodes), limit=60)
        after = sleeper.cluster.members.local.incarnation
        self.assertGreater(after, before)
        for node in others:
            self.assertEqual(node.member(sleeper.name).incarnation, after)  # type: ignore[union-attr]


class _GoneRecorder:
    def __init__(self, gone: list[str], inner: object) -> None:
        self._gone = gone
        self._inner = inner

    def memberJoined(self, member: object) -> None:
        self._inner.memberJoined(member)  # type: ignore[attr-defined]

    def memberUpdated(self, member: object) -> None:
        self._inner.memberUpdated(member)  # type: ignore[attr-defined]

    def memberGone(self, member: object) -> None:
        self._gone.append(member.name)  # type: ignore[attr-defined]
        self._inner.memberGone(member)  # type: ignore[attr-defined]


class CatalogTests(ClusterTestCase):
    def everyoneHas(
        self, nodes: list[SimNode], hostname: str, serviceID: str, status: Status
    ) -> bool:
        for node in nodes:
            record = node.state.get(hostname, serviceID)
            if record is None or record.status is not status:
                return False
        return True

    def test_eachNodesServicesReachEveryNode(self) -> None:
        nodes = self.makeCluster(10)
        self.network.runUntil(lambda: self.converged(nodes), limit=10)
        for node in nodes:
            node.announce("web", f"id-{node.name}")
        took = self.network.runUntil(
            lambda: all(
                self.everyoneHas(nodes, node.name, f"id-{node.name}", Status.ALIVE)
                for node in nodes
            ),
            limit=10,
        )
        # Sent at once and passed on at once: network time, not gossip ticks.
        self.assertLess(took, 0.2)

    def test_aNewNodeGetsTheWholeCatalogWhenItJoins(self) -> None:
        nodes = self.makeCluster(4)
        self.network.runUntil(lambda: self.converged(nodes), limit=10)
        for node in nodes:
            node.announce("db", f"db-{node.name}")
        self.network.run(1)
        [late] = self.network.build(1)
        self.addCleanup(late.stop)
        self.network.loss = 1.0  # UDP is gone: only the join's push-pull works
        late.start()
        self.network.run(0.1)
        for node in nodes:
            self.assertIsNotNone(late.state.get(node.name, f"db-{node.name}"))

    def test_aDeadNodesServicesAreTombstonedAndReturnWhenItRejoins(self) -> None:
        nodes = self.makeCluster(5)
        self.network.runUntil(lambda: self.converged(nodes), limit=10)
        sleeper, others = nodes[1], nodes[:1] + nodes[2:]
        sleeper.announce("api", "api-1")
        self.network.runUntil(
            lambda: self.everyoneHas(others, sleeper.name, "api-1", Status.ALIVE),
            limit=5,
        )
        self.network.freeze(sleeper)
        self.network.runUntil(
            lambda: self.everyoneHas(others, sleeper.name, "api-1", Status.TOMBSTONE),
            limit=60,
        )
        self.network.resume(sleeper)
        self.network.runUntil(
            lambda: self.everyoneHas(nodes, sleeper.name, "api-1", Status.ALIVE),
            limit=60,
        )

    def test_aRecordTooLargeForAPacketArrivesOverTCP(self) -> None:
        nodes = self.makeCluster(6)
        self.network.runUntil(lambda: self.converged(nodes), limit=10)
        big = nodes[0].announce("big", "big-1", image="x" * 10_000)
        self.network.runUntil(
            lambda: self.everyoneHas(nodes, nodes[0].name, "big-1", Status.ALIVE),
            limit=5,
        )
        for node in nodes:
            self.assertEqual(node.state.get(nodes[0].name, "big-1"), big)


class SeparationTests(ClusterTestCase):
    def test_aNodeOfAnotherClusterIsRefused(self) -> None:
        nodes = self.makeCluster(3)
        [stranger] = self.network.build(1, clusterName="other")
        self.addCleanup(stranger.stop)
        self.network.runUntil(lambda: self.converged(nodes), limit=10)
        joined = stranger.start()
        self.network.run(5)
        self.assertEqual(self.successResultOf(joined), 0)
        self.assertEqual(list(stranger.view()), [stranger.name])
        for node in nodes:
            self.assertNotIn(stranger.name, node.view())
        self.assertGreater(nodes[0].cluster.members.refused, 0)

    def test_nodesWithDifferentKeysDoNotTalk(self) -> None:
        self.network = SimNetwork()
        keyed = self.network.build(3, keys=(KEY_A,))
        [other] = self.network.build(1, keys=(KEY_B,))
        joins = []
        for node in [*keyed, other]:
            joins.append(node.start())
            self.addCleanup(node.stop)
        self.network.run(5)
        self.assertTrue(self.converged(keyed))
        self.assertEqual(self.successResultOf(joins[-1]), 0)
        self.assertEqual(list(other.view()), [other.name])
        for node in keyed:
            self.assertNotIn(other.name, node.view())

    def test_aSecondKeyLetsKeysRotateWithoutAPartition(self) -> None:
        # Mid-rotation: every node holds both keys, half already send with
        # the new one.
        self.network = SimNetwork()
        nodes = self.network.build(2, keys=(KEY_A, KEY_B))
        nodes += self.network.build(2, keys=(KEY_B, KEY_A))
        for node in nodes:
            node.start()
            self.addCleanup(node.stop)
        self.network.runUntil(lambda: self.converged(nodes), limit=10)
        dropped = [node.protocol.counters.dropped for node in nodes]
        self.assertEqual(dropped, [0, 0, 0, 0])


class AnnouncementTests(ClusterTestCase):
    def test_aStartingNodeGossipsItsOwnAlive(self) -> None:
        nodes = self.makeCluster(3)
        self.network.runUntil(lambda: self.converged(nodes), limit=10)
        [late] = self.network.build(1)
        self.addCleanup(late.stop)
        late.start()
        # Its own alive is queued for gossip from the start, not only the
        # seed's copy of it.
        queued = late.cluster.queue.take(2, 1400, 4)
        self.assertIn(late.cluster.members.localAlive().encode(), queued)


class JoinLogTests(ClusterTestCase):
    """
    What a node says while it cannot reach its seeds: one warning, not a
    line at every retry, and a line when it joins at last.
    """

    def test_aLoneNodeWarnsOnceThenSaysWhenItJoins(self) -> None:
        self.network = SimNetwork(0)
        seed, lone = self.network.build(2)
        seed.start()
        self.addCleanup(seed.stop)
        self.network.freeze(seed)
        events: list[dict[str, object]] = []
        lone.cluster.log = Logger(observer=events.append)
        lone.start()
        self.addCleanup(lone.stop)
        self.network.run(120)  # several retries: 1 s, doubling to 30 s

        def said(level: LogLevel) -> list[str]:
            return [formatEvent(e) for e in events if e["log_level"] is level]

        warnings = said(LogLevel.warn)
        self.assertEqual(
            warnings,
            ["no seed answered (1 tried): this node is alone, and keeps trying"],
        )
        self.assertEqual(len([m for m in said(LogLevel.info) if "could not" in m]), 1)
        self.assertGreater(
            len([m for m in said(LogLevel.debug) if "could not" in m]), 2
        )
        self.assertEqual([m for m in said(LogLevel.info) if "joined through" in m], [])

        self.network.resume(seed)
        self.network.runUntil(lambda: self.converged([seed, lone]), limit=60)
        self.assertEqual(
            [m for m in said(LogLevel.info) if "joined through" in m],
            ["joined through 1 of 1 seed(s); 2 member(s) alive"],
        )
        self.assertEqual(len(said(LogLevel.warn)), 1)

    def test_aSilentMemberIsSuspectedInTheLogOnce(self) -> None:
        nodes = self.makeCluster(3)
        self.network.runUntil(lambda: self.converged(nodes), limit=30)
        events: dict[str, list[dict[str, object]]] = {"node-1": [], "node-2": []}
        for node in nodes[:2]:
            node.cluster.prober.log = Logger(observer=events[node.name].append)
        self.network.freeze(nodes[2])
        self.network.runUntil(
            lambda: all(n.view().get("node-3") is NodeState.DEAD for n in nodes[:2]),
            limit=60,
        )
        self.network.run(10)

        def told(name: str) -> list[str]:
            return [
                formatEvent(e)
                for e in events[name]
                if e["log_level"] is LogLevel.info and "node-3" in formatEvent(e)
            ]

        # Each node tells of its own suspicion at most once, and at least
        # one of them raised it; the probes that failed later are debug.
        self.assertLessEqual(len(told("node-1")), 1)
        self.assertLessEqual(len(told("node-2")), 1)
        self.assertIn(
            "no ack from node-3: suspecting it", told("node-1") + told("node-2")
        )
        failed = [
            e for log in events.values() for e in log if "again" in formatEvent(e)
        ]
        self.assertTrue(failed)
