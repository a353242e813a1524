"""
Health benchmark: one node checks many local HTTP services every interval.

    PYTHONPATH=. .venv/bin/python bench/health.py [SERVICES] [--interval 1s]
        [--seconds 30] [--warmup 10] [--concurrency 100] [--base-port 30000]

A real C{haproxy} process serves SERVICES ports on 127.0.0.1 (from
C{--base-port}), each answering every request with 200.  A whole node
(L{sidecar.makeService}: gossip, the monitor, the announcer, the API) runs
in this process with a static file of SERVICES services that name no check,
so each gets the Go Sidecar's default, an HTTP GET of C{/version} on its
port.  Once every service is Alive and C{--warmup} seconds have passed, the
benchmark watches for C{--seconds}:

- the node's CPU (this process: user + system) as a share of one core,
  and haproxy's;
- check latency p50/p99/max: from a check's start (once it has a
  concurrency slot) to its result;
- checks per second and failed checks;
- missed intervals: the times the gap between the starts of two
  consecutive checks of one service exceeded 1.5 intervals, so that a
  whole interval went by unchecked; and the p99 and max of the gaps.

Nothing is asserted: the figures are for reading.  haproxy is stopped when
the benchmark ends, on an error and on Ctrl-C.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import shutil
import statistics
import tempfile
from pathlib import Path

from cluster import Children, cpuSeconds, log, printRows, rssMiB, sleep
from twisted.internet import defer, reactor, task
from zope.interface import implementer

from sidecar import makeService
from sidecar.catalog import Status
from sidecar.config import loadConfig, parseDuration
from sidecar.interfaces import ICheckObserver
from sidecar.service import SidecarNode

HOST = "127.0.0.1"
# A gap this many intervals long between two checks of one service means
# an interval went by without a check.
MISSED = 1.5


@implementer(ICheckObserver)
class CheckLog:
    """
    Every check that ends, while recording.
    """

    def __init__(self) -> None:
        self.recording = False
        self.durations: list[float] = []
        self.failures = 0
        self.starts: dict[str, list[float]] = {}

    def checkEnded(
        self, serviceID: str, started: float, duration: float, healthy: bool
    ) -> None:
        if not self.recording:
            return
        self.durations.append(duration)
        self.failures += not healthy
        self.starts.setdefault(serviceID, []).append(started)


def haproxyConfig(services: int, basePort: int) -> str:
    binds = "\n".join(f"    bind {HOST}:{basePort + n}" for n in range(services))
    return f"""global
    maxconn 5000
    nbthread 1

defaults
    mode http
    timeout connect 5s
    timeout client 10s
    timeout server 10s

frontend services
{binds}
    http-request return status 200 content-type text/plain string ok
"""


def staticFile(services: int, basePort: int) -> list[dict[str, object]]:
    return [
        {
            "Service": {
                "Name": f"bench-{n % 50}",
                "Ports": [{"Port": basePort + n, "ServicePort": 20000 + n % 50}],
            }
        }
        for n in range(services)
    ]


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(fraction * len(ordered)) - 1)]


async def waitUntilAllAlive(node: SidecarNode, services: int, limit: float) -> float:
    started = reactor.seconds()  # type: ignore[attr-defined]
    while True:
        alive = sum(s.status is Status.ALIVE for s in node.state.localServices())
        if alive == services:
            return reactor.seconds() - started  # type: ignore[attr-defined, no-any-return]
        if reactor.seconds() - started > limit:  # type: ignore[attr-defined]
            raise RuntimeError(
                f"only {alive} of {services} services Alive after {limit} s"
            )
        await sleep(0.1)


async def run(arguments: argparse.Namespace, workdir: Path) -> None:
    children = Children()
    try:
        (workdir / "haproxy.cfg").write_text(
            haproxyConfig(arguments.services, arguments.base_port)
        )
        haproxy = children.spawn(
            [shutil.which("haproxy") or "haproxy", "-db", "-f", "haproxy.cfg"],
            workdir / "haproxy.log",
            dict(os.environ),
            workdir,
        )
        (workdir / "static.json").write_text(
            json.dumps(staticFile(arguments.services, arguments.base_port))
        )
        (workdir / "node.toml").write_text(
            f'[node]\nname = "bench"\nbind = "{HOST}:0"\n'
            f'[api]\nlisten = "{HOST}:0"\n'
            f'[health]\ninterval = "{arguments.interval}"\n'
            f"concurrency = {arguments.concurrency}\n"
            '[log]\nlevel = "warn"\n'
        )
        await sleep(1.0)  # haproxy binds its ports
        if haproxy.poll() is not None:
            output = (workdir / "haproxy.log").read_text().strip()
            raise RuntimeError(f"haproxy exited: {output}")
        config = loadConfig(workdir / "node.toml")
        node = makeService(config, reactor)
        checks = CheckLog()
        node.health.addObserver(checks)
        node.startService()
        try:
            log(f"node started with {arguments.services} services")
            settled = await waitUntilAllAlive(node, arguments.services, limit=120)
            log(f"all Alive after {settled:.1f} s; warming up {arguments.warmup} s")
            await sleep(arguments.warmup)
            cpu = os.times()
            haproxyCPU = cpuSeconds(haproxy.pid)
            began = reactor.seconds()  # type: ignore[attr-defined]
            checks.recording = True
            await sleep(arguments.seconds)
            checks.recording = False
            wall = reactor.seconds() - began  # type: ignore[attr-defined]
            after = os.times()
            nodeCPU = (after.user - cpu.user) + (after.system - cpu.system)
            haproxyCPU = cpuSeconds(haproxy.pid) - haproxyCPU
            rss = rssMiB(os.getpid())
        finally:
            await node.stopService()
        report(
            arguments, config.health.interval, checks, wall, nodeCPU, haproxyCPU, rss
        )
    finally:
        children.killAll()


def report(
    arguments: argparse.Namespace,
    interval: float,
    checks: CheckLog,
    wall: float,
    nodeCPU: float,
    haproxyCPU: float,
    rss: float,
) -> None:
    gaps = [
        later - earlier
        for starts in checks.starts.values()
        for earlier, later in itertools.pairwise(starts)
    ]
    missed = sum(gap > MISSED * interval for gap in gaps)
    durations = checks.durations
    rows = [
        ("services", f"{arguments.services}"),
        ("interval", f"{interval:g} s"),
        ("concurrency", f"{arguments.concurrency}"),
        ("measured for", f"{wall:.1f} s"),
        ("checks per second", f"{len(durations) / wall:.0f}"),
        ("failed checks", f"{checks.failures}"),
        ("services checked", f"{len(checks.starts)}"),
        ("latency p50", f"{1000 * statistics.median(durations):.1f} ms"),
        ("latency p99", f"{1000 * percentile(durations, 0.99):.1f} ms"),
        ("latency max", f"{1000 * max(durations):.1f} ms"),
        ("gap between checks p50", f"{statistics.median(gaps):.3f} s"),
        ("gap between checks p99", f"{percentile(gaps, 0.99):.3f} s"),
        ("gap between checks max", f"{max(gaps):.3f} s"),
        (f"missed intervals (gap > {MISSED:g} intervals)", f"{missed} of {len(gaps)}"),
        ("node CPU", f"{100 * nodeCPU / wall:.1f} % of one core"),
        ("haproxy CPU", f"{100 * haproxyCPU / wall:.1f} % of one core"),
        ("node RSS at the end", f"{rss:.0f} MiB"),
    ]
    printRows(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("services", type=int, nargs="?", default=2000)
    parser.add_argument("--interval", default="1s")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--warmup", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--base-port", type=int, default=30000)
    arguments = parser.parse_args()
    parseDuration(arguments.interval)  # a bad duration fails here, not later
    if not (
        0 < arguments.services and arguments.base_port + arguments.services <= 65536
    ):
        parser.error("SERVICES must be at least 1 and fit above --base-port")
    task.react(lambda _: defer.ensureDeferred(inTemporaryDirectory(arguments)))


async def inTemporaryDirectory(arguments: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="sidecar-health-bench-") as directory:
        await run(arguments, Path(directory))


if __name__ == "__main__":
    main()
