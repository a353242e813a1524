"""
Memory that stays flat under endless churn (#23): a node runs through a
simulated week on a L{Clock} (services coming and going, checks flapping,
peers joining, leaving and failing) and every per-record and per-peer
structure it keeps stays within its bound once the lifespans have passed.

The week is simulated hour by hour: a few busy seconds in fine steps,
then the rest of the hour in one jump (the network has no latency, so packets
sent in a step arrive in it and a jump suspects no one).  The structures
are internals, read here on purpose: their sizes are what the issue is
about, and no API shows them.
"""

from __future__ import annotations

import random
import tracemalloc
from dataclasses import dataclass

from twisted.trial.unittest import SynchronousTestCase

from sidecar.catalog import Service, Status
from sidecar.catalog.state import DEADLINES_FLOOR, ServicesState
from sidecar.catalog.timestamps import NANOSECONDS, STAMP_CACHE, formatTimestamp
from sidecar.gossip import cluster as clustermodule
from sidecar.gossip.members import Member
from sidecar.gossip.messages import NodeState
from sidecar.metrics import _instances

from .simnet import SimNetwork, SimNode

HOUR = 3600.0
BUSY = 4.0
STEP = 0.2
POOL = 25
# Changes of the node's services in each busy step.
CHANGES = 6
# The longest lifespan the catalog and the gossip layer keep anything for:
# reconnection to a failed member (24 h); tombstones live 3 h.
LONGEST = 24 * HOUR
TOMBSTONE = 3 * HOUR
# How many hours a tombstone can stay in the catalog: its lifespan runs
# from when it last arrived, and a peer that joined later and still holds
# it gives it back by push-pull until it is older than the lifespan plus
# the ghost margin (a minute): twice the lifespan, and that minute.
TOMBSTONE_HOURS = 7


def entries(state: ServicesState) -> int:
    return sum(len(server.entries) for server in state.servers())


@dataclass
class Peak:
    """
    The largest size each structure reached, once lifespans had passed.
    """

    queue: int = 0
    deadlines: int = 0
    entries: int = 0
    failed: int = 0
    gone: int = 0
    members: int = 0
    series: int = 0


class Week:
    """
    One node, C{node-1}, under churn for C{hours}, with C{peers} peers at
    a time: every hour one leaves (gracefully or by failing) and a new one
    joins.
    """

    def __init__(self, case: SynchronousTestCase, hours: int, peers: int = 2) -> None:
        self.case = case
        self.hours = hours
        self.rng = random.Random(23)
        self.network = SimNetwork(seed=23, latency=0.0)
        [self.node] = self.network.build(1)
        self.node.start()
        case.addCleanup(self.node.stop)
        self.peers: list[SimNode] = []
        for _ in range(peers):
            self.addPeer()
        self.live: dict[str, Service] = {}
        self.fresh: list[str] = []
        self.departures = 0

    # -- churn ----------------------------------------------------------------

    def addPeer(self) -> None:
        [peer] = self.network.build(1)
        peer.start()
        self.case.addCleanup(peer.stop)
        self.peers.append(peer)

    def peerChurn(self, hour: int) -> None:
        """
        The oldest peer goes, leaving on even hours and failing on odd
        ones; a new peer (new name, new address) joins.
        """
        peer = self.peers.pop(0)
        if hour % 2 == 0:
            peer.cluster.leave()
        # Its process ends: nothing in or out, no timer left.
        self.network.freeze(peer)
        peer.stop()
        self.departures += 1
        self.addPeer()

    def serve(self, serviceID: str, name: str, status: Status) -> None:
        self.live[serviceID] = self.node.state.announceLocal(
            Service(
                id=serviceID,
                name=name,
                image="img:1",
                hostname=self.node.name,
                status=status,
            )
        )

    def withdraw(self, serviceID: str) -> None:
        self.node.state.withdrawLocal(serviceID)
        del self.live[serviceID]

    def change(self) -> None:
        """
        One change of the node's services: one of the pool comes, goes, or
        its check flips.
        """
        serviceID = f"svc-{self.rng.randrange(POOL)}"
        if serviceID not in self.live:
            self.serve(serviceID, f"web-{serviceID[-1]}", Status.ALIVE)
        elif self.rng.random() < 0.4:
            self.withdraw(serviceID)
        else:
            flipped = (
                Status.UNHEALTHY
                if self.live[serviceID].status is Status.ALIVE
                else Status.ALIVE
            )
            self.serve(serviceID, self.live[serviceID].name, flipped)

    def containerChurn(self, hour: int) -> None:
        """
        Last hour's containers go; three new ones, with new IDs and new
        service names, come.
        """
        for serviceID in self.fresh:
            self.withdraw(serviceID)
        self.fresh = [f"batch-{hour}-{n}" for n in range(3)]
        for serviceID in self.fresh:
            self.serve(serviceID, f"batch-{hour}", Status.ALIVE)

    def peersAnnounce(self, tick: int) -> None:
        for peer in self.peers:
            peer.announce("db", f"db-{peer.name}")
            if tick % 20 == 0:
                peer.announce("cache", f"cache-{peer.name}-{tick}")

    # -- running --------------------------------------------------------------

    def run(self, check: object) -> None:
        """
        The week, calling C{check(hour)} at every busy step and at the end
        of each hour.
        """
        for hour in range(self.hours):
            self.peerChurn(hour)
            self.containerChurn(hour)
            for tick in range(round(BUSY / STEP)):
                for _ in range(CHANGES):
                    self.change()
                if tick % 10 == 0:
                    self.peersAnnounce(tick)
                self.network.run(STEP, step=STEP)
                check(hour)  # type: ignore[operator]
            self.network.clock.advance(HOUR - BUSY)
            check(hour)  # type: ignore[operator]

    def quiet(self, seconds: float) -> None:
        """
        No churn for C{seconds}: the lifespans run out.
        """
        for _ in range(round(seconds / 60)):
            self.network.clock.advance(60)


class WeekOfChurnTests(SynchronousTestCase):
    """
    A week of churn on a Clock: every structure stays within its bound.
    """

    def test_everyStructureStaysWithinItsBound(self) -> None:
        week = Week(self, hours=7 * 24)
        node = week.node
        queue = node.cluster.queue
        # A small depth, so that the bursts (a whole batch of containers,
        # a joining peer's catalog) reach it.
        queue.maxDepth = 8
        peak = Peak()
        enqueue = queue.queue

        def queued(subject: object, message: bytes) -> None:
            enqueue(subject, message)
            peak.queue = max(peak.queue, len(queue))

        queue.queue = queued  # type: ignore[method-assign, assignment]
        state = node.state
        settled = LONGEST + HOUR

        def check(hour: int) -> None:
            now = week.network.clock.seconds()
            peak.entries = max(peak.entries, entries(state))
            self.assertLessEqual(
                len(state._deadlines), 2 * max(DEADLINES_FLOOR, peak.entries)
            )
            # Withdrawals of the last ten seconds, at most: the changes of
            # a busy step, and a batch of three.
            self.assertLessEqual(len(state._resends), CHANGES * 10 / STEP + 3)
            if now < settled:
                return
            peak.deadlines = max(peak.deadlines, len(state._deadlines))
            peak.failed = max(peak.failed, len(node.cluster._failed))
            peak.gone = max(peak.gone, len(node.admission._gone))
            peak.members = max(peak.members, len(node.cluster.members.all()))
            family = _instances(state.services())
            peak.series = max(peak.series, len(family.samples))

        week.run(check)

        # The queue met its depth in bursts, and kept to it.
        self.assertEqual(peak.queue, queue.maxDepth)
        self.assertGreater(queue.pruned, 0)
        # Bounded by the scenario, not by the week: failed members for
        # 24 h (one departure in two fails: 12, and the one being
        # detected), gone members for a tombstone's lifespan.
        self.assertLessEqual(peak.failed, 13)
        self.assertLessEqual(peak.gone, 4)
        # Itself, two live peers, the one just gone and the one joining.
        self.assertLessEqual(peak.members, 5)
        # The catalog: the pool, the containers of the last TOMBSTONE_HOURS
        # (all but the newest are tombstones), the records of the peers of
        # those hours (two each; a peer stays two hours).
        self.assertLessEqual(
            peak.entries, POOL + 3 * (TOMBSTONE_HOURS + 1) + 2 * (TOMBSTONE_HOURS + 2)
        )
        # Twice what the catalog held at most (many more changes than that
        # happen in a tombstone's lifespan).
        self.assertLessEqual(peak.deadlines, 2 * max(DEADLINES_FLOOR, peak.entries))
        # Metric series: one per status for each name in the catalog: the
        # pool's ten names, the batches of those hours, the peers' two.
        self.assertLessEqual(peak.series, len(Status) * (10 + TOMBSTONE_HOURS + 1 + 2))

        # Then nothing for longer than every lifespan: only what is alive
        # now remains, this node's services and its live peers' (they
        # refute the expiry of their own), no tombstone.
        week.quiet(LONGEST + HOUR)
        alive = [*week.live.values()]
        for peer in week.peers:
            alive += peer.state.localServices()
        self.assertEqual(
            sorted(s.id for s in state.services()), sorted(s.id for s in alive)
        )
        self.assertEqual(state._resends, {})
        self.assertLessEqual(len(state._deadlines), 2 * DEADLINES_FLOOR)
        self.assertEqual(node.cluster._failed, {})
        # Metric series only for the services still there: the week's
        # batches and the departed peers' services are gone from them.
        names = {s.name for s in alive}
        series = _instances(state.services()).samples
        self.assertEqual({sample.labels["service"] for sample in series}, names)
        self.assertLessEqual(len(node.admission.skews._windows), len(week.peers))


class LoneNodeTests(SynchronousTestCase):
    """
    A node with no peers can never send what it queues: it keeps nothing
    but its own alive, however much its catalog changes.
    """

    def test_aLoneNodeHoldsNoBroadcasts(self) -> None:
        network = SimNetwork(seed=1, latency=0.0)
        [node] = network.build(1)
        node.start()
        self.addCleanup(node.stop)
        largest = 0
        for n in range(2000):
            node.announce("web", f"container-{n}")
            if n % 3 == 0:
                node.state.withdrawLocal(f"container-{n}")
            network.clock.advance(1)
            largest = max(largest, len(node.cluster.queue))
        self.assertEqual(largest, 1)
        own = node.cluster.members.localAlive().encode()
        self.assertEqual(node.cluster.queue.take(0, 1400, 3), [own])
        network.clock.advance(11)
        self.assertEqual(node.state._resends, {})


class CatalogTimerTests(SynchronousTestCase):
    """
    The catalog's timers: superseded deadlines and finished resends are
    let go.
    """

    def test_supersededDeadlinesAreCompacted(self) -> None:
        network = SimNetwork(seed=2, latency=0.0)
        [node] = network.build(1)
        state = node.state
        # Each withdrawal sets a tombstone's deadline three hours out, each
        # return makes it stale: without compaction, one per change.
        for _ in range(5000):
            node.announce("web", "flapper")
            state.withdrawLocal("flapper")
            network.clock.advance(0.001)
        self.assertLessEqual(len(state._deadlines), 2 * DEADLINES_FLOOR)
        # The live one still fires: the tombstone is forgotten on time.
        network.clock.advance(TOMBSTONE + 1)
        self.assertIsNone(state.get(node.name, "flapper"))
        self.assertEqual(state._deadlines, [])

    def test_resendsAreForgottenOnceSent(self) -> None:
        network = SimNetwork(seed=3, latency=0.0)
        [node] = network.build(1)
        for n in range(50):
            node.announce("web", f"once-{n}")
            node.state.withdrawLocal(f"once-{n}")
        self.assertEqual(len(node.state._resends), 50)
        network.clock.advance(11)
        self.assertEqual(node.state._resends, {})


class FailedMembersTests(SynchronousTestCase):
    """
    Failed members are remembered for reconnection, but never more than
    the member table holds.
    """

    def test_theEarliestFailedAreForgottenPastTheBound(self) -> None:
        self.patch(clustermodule, "MAX_MEMBERS", 3)
        network = SimNetwork(seed=4, latency=0.0)
        [node] = network.build(1)
        local = node.cluster.members.local
        for n in range(5):
            network.clock.advance(1)
            node.cluster.memberGone(
                Member(
                    name=f"gone-{n}",
                    incarnation=1,
                    addr=local.addr,
                    port=8000 + n,
                    meta=local.meta,
                    vsn=local.vsn,
                    state=NodeState.DEAD,
                )
            )
        self.assertEqual(sorted(node.cluster._failed), ["gone-2", "gone-3", "gone-4"])


class StampCacheTests(SynchronousTestCase):
    """
    Formatted stamps are cached, but every change brings new ones: the
    cache stays within its size.
    """

    def test_endlessNewStampsStayWithinTheCache(self) -> None:
        start = 1_765_000_000 * NANOSECONDS
        formatTimestamp.cache_clear()
        tracemalloc.start()
        self.addCleanup(tracemalloc.stop)
        before = tracemalloc.get_traced_memory()[0]
        for n in range(20 * STAMP_CACHE):
            formatTimestamp(start + n * 1_234_567)
        held = tracemalloc.get_traced_memory()[0] - before
        self.assertEqual(formatTimestamp.cache_info().currsize, STAMP_CACHE)
        # A full cache takes under a megabyte (2 MiB with slack for other
        # Pythons), not the 13 MiB that 65,536 stamps took.
        self.assertLess(held, 2 * 1024 * 1024)
        # Still right for a stamp evicted and formatted again.
        self.assertEqual(formatTimestamp(start), "2025-12-06T05:46:40Z")
