"""
Simulated-cluster benchmark: N nodes in one process, on virtual time.

    PYTHONPATH=. .venv/bin/python bench/simulate.py 100 300 [--seed 1]
        [--loss 0 0.1] [--changes 5] [--idle 25] [--churn 25] [--rate 5]

Each node is the real gossip code (L{Cluster}: memberlist's SWIM state
machine, the catalog, its delegate and broadcasts, the announcer that
refreshes the node's own records) speaking real packet bytes over
L{tests.simnet}: only the network (2 ms latency, seeded random loss) and
time are simulated.  Profile C{lan} (the product's default), 10 services
per host fed straight to each node's announcer: no health checks, no HTTP.

For each N, the nodes start (joining through node 1) and the cluster forms;
then, for each loss level in turn, on the same cluster:

1. idle: bytes sent per node per second (UDP and TCP) over C{--idle} s;
2. C{--changes} changes, one after another: a random node drains or
   undrains one of its services; the time until 99 % and 99.9 % of the
   other nodes have it (median and max over the changes);
3. churn: C{--rate} such changes a second, cluster-wide, over C{--churn}
   s: bytes per node per second;
4. failure: one random node stops dead (no packets in or out); the time
   until the first other node declares it dead, until 99.9 % do, and
   until all do;
5. over steps 1-4: false suspicions (refutations by live nodes: each is a
   rumour of a live node's death that reached it) and false failures
   (live nodes declared dead, counted once per declaring node).

Serf's published convergence targets are printed beside the figures;
nothing is asserted.  The wall time each N took is printed too.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from twisted.logger import (
    FilteringLogObserver,
    LogLevel,
    LogLevelFilterPredicate,
    globalLogBeginner,
    textFileLogObserver,
)
from zope.interface import implementer

from sidecar.announce import REFRESH_INTERVAL, LocalAnnouncer
from sidecar.catalog import ICatalogObserver, Port, Service, Status
from sidecar.catalog.local import LocalService
from sidecar.catalog.state import ChangeEvent
from sidecar.gossip.interfaces import IMemberObserver
from sidecar.gossip.members import Member
from sidecar.gossip.messages import NodeState
from sidecar.gossip.profiles import LAN, detectionBound
from tests.eventclock import EventClock
from tests.simnet import SimNetwork, SimNode, simAddress

SERVICES_PER_HOST = 10
# Serf's convergence model (LAN, 1000 nodes): 99.9 % of nodes reached.
SERF_TARGET = {0.0: 1.84, 0.1: 2.05}
SERF_TARGET_NODES = 1000
# How long a change or a failure may take to reach every node before the
# benchmark gives up on it (virtual seconds).
CHANGE_LIMIT = 30.0
FAILURE_LIMIT = 120.0
FORMING_LIMIT = 300.0
POLL = 0.05


# -- what the nodes see ----------------------------------------------------------


class Ledger:
    """
    What every node saw, when: the watched change's arrivals, and members
    declared dead.
    """

    def __init__(self, clock: EventClock) -> None:
        self._clock = clock
        self._watched: tuple[tuple[str, str], int] | None = None
        self.arrivals: dict[str, float] = {}
        # Dead member -> declaring node -> when.
        self.deaths: dict[str, dict[str, float]] = {}
        self.frozen: set[str] = set()
        self.falseFailures = 0

    def watch(self, record: Service) -> None:
        """
        Time the arrivals of C{record} (or anything newer of its instance)
        at every other node, from now.
        """
        self._watched = (record.key, record.updated)
        self.arrivals = {record.hostname: self._clock.seconds()}

    def changed(self, node: str, event: ChangeEvent) -> None:
        watched = self._watched
        service = event.service
        if (
            watched is not None
            and service.key == watched[0]
            and service.updated >= watched[1]
            and node not in self.arrivals
        ):
            self.arrivals[node] = self._clock.seconds()

    def gone(self, node: str, member: Member) -> None:
        if member.state is not NodeState.DEAD:
            return
        self.deaths.setdefault(member.name, {})[node] = self._clock.seconds()
        if member.name not in self.frozen:
            self.falseFailures += 1


@implementer(IMemberObserver, ICatalogObserver)
class Witness:
    """
    One node's view, reported to the L{Ledger}.
    """

    def __init__(self, node: str, ledger: Ledger) -> None:
        self._node = node
        self._ledger = ledger

    def memberJoined(self, member: Member) -> None:
        pass

    def memberUpdated(self, member: Member) -> None:
        pass

    def memberGone(self, member: Member) -> None:
        self._ledger.gone(self._node, member)

    def serviceChanged(self, event: ChangeEvent) -> None:
        self._ledger.changed(self._node, event)


# -- the cluster -------------------------------------------------------------------


def hostServices(node: SimNode) -> list[LocalService]:
    """
    A host's static services, as a discoverer would report them.
    """
    host = node.address[0]
    return [
        LocalService(
            Service(
                id=f"{node.name}-{k:02d}",
                name=f"service-{k}",
                image=f"registry.example/service-{k}:1.0.{k}",
                created=1_700_000_000_000_000_000,
                hostname=node.name,
                ports=(Port("tcp", 31000 + k, 10000 + k, host),),
                proxyMode="http",
            )
        )
        for k in range(SERVICES_PER_HOST)
    ]


@dataclass(frozen=True)
class Traffic:
    """
    Bytes sent per node per second, by UDP (packets) and TCP (streams).
    """

    udp: float
    tcp: float

    def __str__(self) -> str:
        return f"{self.udp + self.tcp:.0f} (UDP {self.udp:.0f}, TCP {self.tcp:.0f})"


@dataclass
class Simulation:
    """
    A cluster of C{size} nodes on a simulated network.
    """

    size: int
    seed: int
    refresh: float = REFRESH_INTERVAL
    network: SimNetwork = field(init=False)
    clock: EventClock = field(init=False)
    ledger: Ledger = field(init=False)
    nodes: list[SimNode] = field(init=False)
    announcers: dict[str, LocalAnnouncer] = field(init=False)
    rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self.clock = EventClock()
        self.network = SimNetwork(seed=self.seed, clock=self.clock)
        self.ledger = Ledger(self.clock)
        self.rng = random.Random(self.seed)
        self.nodes = []
        self.announcers = {}
        seeds = [simAddress(1)]
        for index in range(1, self.size + 1):
            witness = Witness(f"node-{index}", self.ledger)
            node = SimNode(self.network, index, seeds, observers=[witness])
            node.state.addObserver(witness)
            self.nodes.append(node)

    def live(self) -> list[SimNode]:
        return [node for node in self.nodes if not node.frozen]

    def run(self, seconds: float) -> None:
        self.clock.advance(seconds)

    def runUntil(self, done: Callable[[], bool], limit: float) -> bool:
        """
        Run until C{done()} holds (checked every 50 ms), or C{limit} s.
        """
        end = self.clock.seconds() + limit
        while not done():
            if self.clock.seconds() >= end:
                return False
            self.run(POLL)
        return True

    def form(self) -> float:
        """
        Start every node (spread over up to 2 s) and run until each lists
        every member alive.  The announcers start one refresh interval
        earlier, each at a random phase, so that refreshes run at their
        steady rate from the start, as on hosts started at different times.

        @return: the virtual seconds it took.
        """
        for node in self.nodes:
            announcer = LocalAnnouncer(
                node.state,
                self.clock,
                self.refresh,
                # As makeService wires it: refresh often only while some
                # peer would otherwise expire the records.
                expected=lambda node=node: bool(node.cluster.refreshedPeers()),
            )
            self.announcers[node.name] = announcer
            announcer.servicesDiscovered("static", hostServices(node))
            phase = self.rng.uniform(0, min(self.refresh, 25.0))
            self.clock.callLater(phase, announcer.startService)
        # Before the clusters start, a refresh only reaches the queue.
        self.run(min(self.refresh, 25.0))
        spread = min(2.0, 0.01 * self.size)
        for node in self.nodes:
            self.clock.callLater(self.rng.uniform(0, spread), node.start)
        start = self.clock.seconds()
        formed = self.runUntil(
            lambda: all(
                len(node.cluster.members.alive()) == self.size for node in self.nodes
            ),
            FORMING_LIMIT,
        )
        if not formed:
            raise RuntimeError(
                f"{self.size} nodes did not form within {FORMING_LIMIT} s"
            )
        return self.clock.seconds() - start

    def held(self) -> float:
        """
        The share of the live hosts' live records that the live node
        holding fewest of them holds.
        """
        live = self.live()
        hosts = {node.name for node in live}
        wanted = len(hosts) * SERVICES_PER_HOST
        return (
            min(
                sum(
                    1
                    for record in node.state.services()
                    if record.hostname in hosts and not record.isTombstone
                )
                for node in live
            )
            / wanted
        )

    # -- measurements ------------------------------------------------------------

    def bytesSent(self) -> tuple[int, int]:
        """
        UDP and TCP bytes the live nodes have sent so far.
        """
        live = self.live()
        return (
            sum(node.protocol.counters.bytesOut for node in live),
            sum(self.network.streamBytes[node.address] for node in live),
        )

    def perNodePerSecond(self, seconds: float) -> Traffic:
        """
        Run C{seconds}; bytes sent per live node per second meanwhile.
        """
        udp, tcp = self.bytesSent()
        self.run(seconds)
        udpAfter, tcpAfter = self.bytesSent()
        share = len(self.live()) * seconds
        return Traffic((udpAfter - udp) / share, (tcpAfter - tcp) / share)

    def change(self) -> Service:
        """
        Drain one service of a random live node, or undrain it if drained.
        """
        node = self.rng.choice(self.live())
        announcer = self.announcers[node.name]
        serviceID = f"{node.name}-{self.rng.randrange(SERVICES_PER_HOST):02d}"
        current = node.state.get(node.name, serviceID)
        if current is not None and current.status is Status.DRAINING:
            announcer.undrain(serviceID)
        else:
            announcer.drain(serviceID)
        record = node.state.get(node.name, serviceID)
        assert record is not None
        return record

    def spread(self) -> tuple[float | None, float | None]:
        """
        One change: the seconds until 99 % and 99.9 % of the other live
        nodes have it (L{None} if not within the limit).
        """
        self.ledger.watch(self.change())
        start = self.clock.seconds()
        others = len(self.live()) - 1
        self.runUntil(lambda: len(self.ledger.arrivals) - 1 >= others, CHANGE_LIMIT)
        times = sorted(t - start for t in self.ledger.arrivals.values())[1:]
        return quantile(times, others, 0.99), quantile(times, others, 0.999)

    def churn(self, seconds: float, rate: float) -> Traffic:
        """
        C{rate} changes a second for C{seconds}: bytes per node per second.
        """
        calls = [
            self.clock.callLater(n / rate, self.change)
            for n in range(int(seconds * rate))
        ]
        perNode = self.perNodePerSecond(seconds)
        for call in calls:
            if call.active():
                call.cancel()
        return perNode

    def fail(self) -> tuple[float | None, float | None, float | None]:
        """
        Stop a random live node other than the seed dead: the seconds
        until the first, 99.9 % and all of the others declare it dead.
        """
        victim = self.rng.choice(self.live()[1:])
        self.ledger.frozen.add(victim.name)
        self.announcers[victim.name].stopService()
        self.network.freeze(victim)
        victim.state.stop()
        start = self.clock.seconds()
        others = len(self.live())
        verdicts = self.ledger.deaths.setdefault(victim.name, {})
        self.runUntil(lambda: len(verdicts) >= others, FAILURE_LIMIT)
        times = sorted(t - start for t in verdicts.values())
        return (
            times[0] if times else None,
            quantile(times, others, 0.999),
            quantile(times, others, 1.0),
        )

    def refutations(self) -> int:
        """
        Refutations by live nodes so far: each raised its incarnation once
        for each (batch of) rumours of its death.
        """
        return sum(node.cluster.members.local.incarnation - 1 for node in self.live())


def quantile(times: Sequence[float], population: int, share: float) -> float | None:
    """
    The time by which C{share} of C{population} had it, given the sorted
    C{times} of those that did; L{None} if too few did.
    """
    needed = max(1, math.ceil(share * population - 1e-9))
    return times[needed - 1] if len(times) >= needed else None


# -- one run -----------------------------------------------------------------------


@dataclass
class Figures:
    """
    What one cluster size showed at one loss level.
    """

    nodes: int
    loss: float
    reach99: list[float | None]
    reach999: list[float | None]
    idleBytes: Traffic
    held: float
    churnBytes: Traffic
    detectFirst: float | None
    detect999: float | None
    detectAll: float | None
    falseSuspicions: int
    falseFailures: int


@dataclass
class Run:
    """
    One cluster size: its figures per loss level, and what it cost.
    """

    nodes: int
    formed: float
    heldFormed: float
    wall: float
    cpu: float
    figures: list[Figures]


def measure(sim: Simulation, loss: float, arguments: argparse.Namespace) -> Figures:
    """
    Steps 1-5 at one loss level, on a formed cluster.
    """
    sim.network.loss = loss
    refutedBefore = sim.refutations()
    falseBefore = sim.ledger.falseFailures
    idle = sim.perNodePerSecond(arguments.idle)
    held = sim.held()
    spreads = [sim.spread() for _ in range(arguments.changes)]
    churn = sim.churn(arguments.churn, arguments.rate)
    first, most, all_ = sim.fail()
    return Figures(
        nodes=sim.size,
        loss=loss,
        reach99=[s[0] for s in spreads],
        reach999=[s[1] for s in spreads],
        idleBytes=idle,
        held=held,
        churnBytes=churn,
        detectFirst=first,
        detect999=most,
        detectAll=all_,
        falseSuspicions=sim.refutations() - refutedBefore,
        falseFailures=sim.ledger.falseFailures - falseBefore,
    )


def simulate(size: int, arguments: argparse.Namespace) -> Run:
    """
    Form a cluster of C{size} and measure it at each loss level.
    """
    wallStart, cpuStart = time.perf_counter(), time.process_time()
    sim = Simulation(size, arguments.seed, arguments.refresh)
    formed = sim.form()
    heldFormed = sim.held()
    sim.run(arguments.settle)
    figures = []
    for loss in arguments.loss:
        figures.append(measure(sim, loss, arguments))
        sim.run(arguments.settle)
    return Run(
        size,
        formed,
        heldFormed,
        time.perf_counter() - wallStart,
        time.process_time() - cpuStart,
        figures,
    )


# -- the report --------------------------------------------------------------------


def seconds(value: float | None) -> str:
    return "none within the limit" if value is None else f"{value:.3f} s"


def spreadOf(values: Sequence[float | None]) -> str:
    """
    Median and max of some changes' times; a change that never got there
    counts as the slowest.
    """
    if not values:
        return "no changes"
    known = [v for v in values if v is not None]
    missed = len(values) - len(known)
    if not known:
        return f"none of {len(values)} within {CHANGE_LIMIT:.0f} s"
    ordered = sorted(known) + [math.inf] * missed
    median = statistics.median_low(ordered)
    text = f"{seconds(median if median != math.inf else None)} / "
    text += f"{seconds(max(known))}" if not missed else f"{missed} missed"
    return text


def target(loss: float) -> str:
    goal = SERF_TARGET.get(loss)
    if goal is None:
        return ""
    return f"  (serf: <= {goal:.2f} s at N={SERF_TARGET_NODES})"


def rows(run: Run, arguments: argparse.Namespace) -> list[tuple[str, str]]:
    """
    One cluster size's figures, as (name, value) lines.
    """
    bound = detectionBound(LAN, run.nodes)
    lines = [
        (
            f"N={run.nodes}",
            f"members all alive everywhere after {run.formed:.1f} s; "
            f"records held then (worst node) {run.heldFormed:.1%}; "
            f"wall {run.wall:.0f} s, CPU {run.cpu:.0f} s",
        ),
    ]
    for f in run.figures:
        at = f"  loss {f.loss:.0%}:"
        lines += [
            (at, ""),
            ("    change to 99 % (median / max)", spreadOf(f.reach99)),
            (
                "    change to 99.9 % (median / max)",
                spreadOf(f.reach999) + target(f.loss),
            ),
            ("    bytes/node/s idle", str(f.idleBytes)),
            ("    records held after idle (worst node)", f"{f.held:.1%}"),
            (
                f"    bytes/node/s churn ({arguments.rate:g} changes/s)",
                str(f.churnBytes),
            ),
            (
                "    failure detected: first / 99.9 % / all",
                f"{seconds(f.detectFirst)} / {seconds(f.detect999)} / "
                f"{seconds(f.detectAll)}  (bound without loss: {bound:.1f} s)",
            ),
            ("    false suspicions (refutations)", str(f.falseSuspicions)),
            ("    false failures (verdicts)", str(f.falseFailures)),
        ]
    return lines


def printRows(lines: Sequence[tuple[str, str]]) -> None:
    width = max(len(name) for name, _ in lines)
    for name, value in lines:
        print(f"{name:<{width}}  {value}".rstrip(), flush=True)


def parseArguments(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sizes", nargs="*", type=int, default=[100, 300, 1000])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--loss", nargs="+", type=float, default=[0.0, 0.1])
    parser.add_argument("--changes", type=int, default=5)
    parser.add_argument("--idle", type=float, default=25.0)
    parser.add_argument("--churn", type=float, default=25.0)
    parser.add_argument("--rate", type=float, default=5.0)
    parser.add_argument(
        "--refresh",
        type=float,
        default=REFRESH_INTERVAL,
        help="seconds between a node's refreshes of its own records while "
        "a peer expires records (the product's, by default)",
    )
    parser.add_argument(
        "--settle", type=float, default=10.0, help="virtual seconds between steps"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str]) -> None:
    arguments = parseArguments(argv)
    # The nodes' warnings (and worse) on standard error; info lines would
    # be millions.
    globalLogBeginner.beginLoggingTo(
        [
            FilteringLogObserver(
                textFileLogObserver(sys.stderr),
                [LogLevelFilterPredicate(LogLevel.warn)],
            )
        ],
        redirectStandardIO=False,
    )
    print(
        f"simulated cluster: profile lan, {SERVICES_PER_HOST} services per host, "
        f"latency 2 ms, seed {arguments.seed}; idle {arguments.idle:g} s, "
        f"{arguments.changes} changes, churn {arguments.churn:g} s at "
        f"{arguments.rate:g} changes/s (virtual time)",
        flush=True,
    )
    for size in arguments.sizes:
        printRows(rows(simulate(size, arguments), arguments))


if __name__ == "__main__":
    main(sys.argv[1:])
