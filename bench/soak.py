"""
Soak benchmark: a node's memory under endless churn (#23).

    PYTHONPATH=. .venv/bin/python bench/soak.py [--minutes 60] [--nodes 5]
        [--interval 2] [--report-every 60] [--settle 10]

N nodes (C{twistd -n sidecar}, profile C{lan}) on 127.0.8.1..N, each with
20 to 25 static services.  Every C{--interval} seconds node 1's static file
is rewritten (services added and removed, checks flipping between passing
and failing) and the node is sent C{SIGHUP}.  Every C{--report-every}
seconds the resident memory (RSS) and open file descriptors of each node
are printed; at the end, the changes made, the suspicions, failures and
tracebacks in the nodes' logs, and each node's RSS growth from minute
C{--settle} to the end: flat memory is the target.  Nothing is asserted;
the figures are for docs/performance.md.  Every process started is
stopped at the end, on an error and on Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import treq
from cluster import TWISTD_SIDECAR, Children, log, printRows, rssMiB, sleep
from twisted.internet import defer, task

from sidecar.demo.processes import freePort, nodeEnvironment

NET = "127.0.8"
SERVICES = 25
# Each node keeps at least this many of its services listed.
FEWEST = 20
SUSPICION = re.compile(r"no ack from \S+: suspecting it")
FAILURE = re.compile(r"member \S+ failed$", re.MULTILINE)
TRACEBACK = "Traceback (most recent call last)"


def host(k: int) -> str:
    return f"{NET}.{k}"


def openFiles(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@dataclass
class Node:
    """
    One node: its directory, ports and process, and what its static file
    lists now (service number to whether its check passes).
    """

    k: int
    directory: Path
    gossip: int
    api: int
    listed: dict[int, bool] = field(default_factory=dict)
    process: Any = None

    @property
    def name(self) -> str:
        return f"soak-{self.k}"

    @property
    def log(self) -> Path:
        return self.directory / "node.log"

    def writeStatic(self) -> None:
        targets = []
        for n, passing in sorted(self.listed.items()):
            entry: dict[str, Any] = {
                "Service": {
                    "Name": f"soak-{n}",
                    "Image": f"soak/{n}:1",
                    "Ports": [{"Type": "tcp", "Port": 20000 + n}],
                }
            }
            # Failing: the default check, an HTTP GET of a port where
            # nothing listens (on this node's loopback address).
            if passing:
                entry["Check"] = {"Type": "AlwaysSuccessful"}
            targets.append(entry)
        path = self.directory / "static.json"
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(targets))
        os.replace(temporary, path)


def writeNode(node: Node, seed: Node, rng: random.Random) -> None:
    node.directory.mkdir()
    seeds = "" if node is seed else f'seeds = ["{host(seed.k)}:{seed.gossip}"]\n'
    (node.directory / "node.toml").write_text(
        f'[node]\nname = "{node.name}"\nbind = "{host(node.k)}:{node.gossip}"\n'
        f'{seeds}profile = "lan"\n\n'
        f'[api]\nlisten = "{host(node.k)}:{node.api}"\n\n'
        '[discovery]\nstatic_file = "static.json"\n\n'
        '[log]\nlevel = "info"\n'
    )
    node.listed = {n: True for n in rng.sample(range(SERVICES), FEWEST + node.k % 6)}
    node.writeStatic()


def churn(node: Node, rng: random.Random) -> None:
    """
    One change of C{node}'s file: a service comes or goes, and two checks
    flip.
    """
    absent = [n for n in range(SERVICES) if n not in node.listed]
    if absent and (len(node.listed) <= FEWEST or rng.random() < 0.5):
        node.listed[rng.choice(absent)] = rng.random() < 0.5
    else:
        del node.listed[rng.choice(sorted(node.listed))]
    for n in rng.sample(sorted(node.listed), 2):
        node.listed[n] = not node.listed[n]
    node.writeStatic()


async def aliveMembers(node: Node) -> list[str]:
    url = f"http://{host(node.k)}:{node.api}/api/members.json"
    try:
        response = await treq.get(url, persistent=False, timeout=5)
        members = json.loads(await response.text())["Members"]
    except Exception:
        return []
    return [m["Name"] for m in members if m["State"] == "alive"]


async def waitForCluster(nodes: Sequence[Node]) -> None:
    names = sorted(node.name for node in nodes)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        views = [sorted(await aliveMembers(node)) for node in nodes]
        if all(view == names for view in views):
            return
        await sleep(0.5)
    raise RuntimeError(f"the {len(nodes)} nodes never formed a cluster")


def logCounts(nodes: Sequence[Node]) -> tuple[int, int, int]:
    """
    Suspicions, failures and tracebacks in all the nodes' logs.
    """
    texts = [node.log.read_text(errors="replace") for node in nodes]
    return (
        sum(len(SUSPICION.findall(text)) for text in texts),
        sum(len(FAILURE.findall(text)) for text in texts),
        sum(text.count(TRACEBACK) for text in texts),
    )


def report(minute: float, nodes: Sequence[Node]) -> list[float]:
    """
    Print one line of RSS and open files per node; return the RSS.
    """
    rss = [rssMiB(node.process.pid) for node in nodes]
    fds = [openFiles(node.process.pid) for node in nodes]
    print(
        f"minute {minute:5.1f}  RSS MiB "
        + " ".join(f"{r:6.1f}" for r in rss)
        + "  fds "
        + " ".join(f"{f:3d}" for f in fds),
        flush=True,
    )
    return rss


async def run(arguments: argparse.Namespace, workdir: Path) -> None:
    children = Children()
    environ = nodeEnvironment()
    rng = random.Random(23)
    nodes = [
        Node(
            k,
            workdir / f"node-{k}",
            freePort(host(k)),
            freePort(host(k), udp=False),
        )
        for k in range(1, arguments.nodes + 1)
    ]
    try:
        for node in nodes:
            writeNode(node, nodes[0], rng)
            node.process = children.spawn(
                [*TWISTD_SIDECAR, "--config=node.toml"],
                node.log,
                environ,
                node.directory,
            )
        await waitForCluster(nodes)
        log(
            f"{len(nodes)} nodes joined; churn on {nodes[0].name} every "
            f"{arguments.interval:g} s for {arguments.minutes:g} min"
        )
        target = nodes[0]
        started = time.monotonic()
        end = started + 60 * arguments.minutes
        nextReport = started
        changes = 0
        # The first report at or after --settle, as (minute, RSS per node);
        # a shorter run measures from its first report.
        settled: tuple[float, list[float]] | None = None
        first: tuple[float, list[float]] | None = None
        last: list[float] = []
        while True:
            now = time.monotonic()
            if now >= nextReport or now >= end:
                minute = (now - started) / 60
                last = report(minute, nodes)
                first = first or (minute, last)
                if settled is None and minute >= arguments.settle:
                    settled = (minute, last)
                nextReport += arguments.report_every
            if now >= end:
                break
            churn(target, rng)
            target.process.send_signal(signal.SIGHUP)
            changes += 1
            await sleep(min(arguments.interval, max(0.0, end - time.monotonic())))
        assert first is not None
        since, baseline = settled or first
        growth = [after - before for before, after in zip(baseline, last, strict=True)]
        suspicions, failures, tracebacks = logCounts(nodes)
        alive = await aliveMembers(target)
        printRows(
            [
                ("changes", f"{changes}"),
                (
                    "RSS growth per node",
                    " ".join(f"{g:+.1f}" for g in growth)
                    + f" MiB, minute {since:.1f} to the end",
                ),
                ("largest RSS growth", f"{max(growth):+.1f} MiB"),
                ("RSS at the end", " ".join(f"{r:.1f}" for r in last) + " MiB"),
                ("suspicions", f"{suspicions}"),
                ("failures", f"{failures}"),
                ("tracebacks", f"{tracebacks}"),
                ("members alive at the end", f"{len(alive)} of {len(nodes)}"),
            ]
        )
    finally:
        children.killAll()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--nodes", type=int, default=5)
    parser.add_argument(
        "--interval", type=float, default=2.0, help="seconds between changes"
    )
    parser.add_argument(
        "--report-every", type=float, default=60.0, help="seconds between reports"
    )
    parser.add_argument(
        "--settle",
        type=float,
        default=10.0,
        help="the minute from which RSS growth is measured",
    )
    arguments = parser.parse_args(argv)
    if not 1 <= arguments.nodes <= 254:
        parser.error(f"--nodes must be from 1 to 254, not {arguments.nodes}")

    async def inTemporaryDirectory() -> None:
        with tempfile.TemporaryDirectory(prefix="sidecar-soak-") as directory:
            await run(arguments, Path(directory))

    task.react(lambda _: defer.ensureDeferred(inTemporaryDirectory()))


if __name__ == "__main__":
    main()
