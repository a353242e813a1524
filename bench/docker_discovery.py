"""
Docker discovery benchmark: a burst of labelled containers, and how soon a
node has them all in its catalog.

    PYTHONPATH=. .venv/bin/python bench/docker_discovery.py [CONTAINERS]
        [--starters 8]

A podman Docker-API engine (as the tests run it, see
C{tests/dockerengine.py}) and one node (C{twistd -n sidecar}, Docker
discovery only, JSON log) run on this machine.  Once the node follows the
engine's events, CONTAINERS (default 200) containers with the seed's labels
are started at once from C{--starters} threads.  From the node's log (each
"announcing service" event's C{log_time}) and the engine's answers:

- the time from the start of the burst until the last container is in the
  catalog, and until the engine had started the last one;
- per container, the time from its start returning to its announcement
  (p50, p99, max);
- the node's CPU during the burst (user + system of its process, from the
  burst's start until the last announcement), in seconds and as a share of
  one core, and its RSS at the end.

Nothing is asserted: the figures are for reading.  The engine, its
containers and the node are stopped when the benchmark ends, on an error
and on Ctrl-C.  Only 127.0.0.1 is used.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from cluster import TWISTD_SIDECAR, Children, cpuSeconds, log, printRows, rssMiB, sleep
from twisted.internet import defer, task
from twisted.internet.threads import deferToThread

from sidecar.demo.processes import nodeEnvironment
from tests.dockerengine import PodmanEngine, dockerEngineSkipReason

LABELS = {
    "HealthCheck": "HttpGet",
    "ServicePort_80": "9500",
    "HealthCheckArgs": "http://{{ host }}:{{ tcp 9500 }}/",
}


def announcements(logPath: Path) -> dict[str, float]:
    """
    The first "announcing service" time of each service ID in the node's
    JSON log.
    """
    first: dict[str, float] = {}
    for line in logPath.read_text().splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("log_format", "").startswith("announcing service"):
            first.setdefault(event["id"], event["log_time"])
    return first


def followsEvents(logPath: Path) -> bool:
    return "following the container events" in logPath.read_text()


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


async def waitFor(condition: Any, what: str, limit: float) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not happen within {limit} s")
        await sleep(0.05)


async def run(arguments: argparse.Namespace, workdir: Path) -> None:
    engine = PodmanEngine()
    children = Children()
    try:
        await engine.start()
        await engine.ensureImage()
        nodeLog = workdir / "node.log"
        (workdir / "node.toml").write_text(
            '[node]\nname = "bench"\nbind = "127.0.0.1:0"\n'
            '[api]\nlisten = "127.0.0.1:0"\n'
            f'[discovery]\nbackends = ["docker"]\ndocker_url = "{engine.url}"\n'
            '[log]\nformat = "json"\n'
        )
        environ = nodeEnvironment()
        node = children.spawn(
            [*TWISTD_SIDECAR, f"--config={workdir / 'node.toml'}"],
            nodeLog,
            environ,
            workdir,
        )
        await waitFor(lambda: followsEvents(nodeLog), "the node following events", 30)
        log(f"node {node.pid} follows the engine; starting {arguments.containers}")
        started: dict[str, float] = {}
        cpuBefore = cpuSeconds(node.pid)
        burstStart = time.time()

        def startOne(n: int) -> None:
            client = engine.newClient()
            try:
                container = client.containers.run(
                    "localhost/sidecar-test:latest",
                    ["httpd", "-f", "-p", "80", "-h", "/www"],
                    detach=True,
                    init=True,
                    labels={**LABELS, "ServiceName": f"burst-{n % 10}"},
                    ports={"80/tcp": None},
                    network_mode="slirp4netns",
                )
                started[container.id[:12]] = time.time()
            finally:
                client.close()

        def burst() -> None:
            with ThreadPoolExecutor(arguments.starters) as pool:
                list(pool.map(startOne, range(arguments.containers)))

        await deferToThread(burst)
        engineDone = time.time()
        log(f"engine started them all in {engineDone - burstStart:.1f} s")
        await waitFor(
            lambda: set(started) <= set(announcements(nodeLog)),
            "every container in the catalog",
            120,
        )
        seen = announcements(nodeLog)
        cpu = cpuSeconds(node.pid) - cpuBefore
        lastSeen = max(seen[containerID] for containerID in started)
        rss = rssMiB(node.pid)
        lags = [seen[c] - t for c, t in started.items()]
        span = lastSeen - burstStart
        rows = [
            ("containers", f"{arguments.containers}"),
            ("starting threads", f"{arguments.starters}"),
            ("engine: last container started", f"{engineDone - burstStart:.2f} s"),
            ("node: last container in the catalog", f"{span:.2f} s"),
            (
                "start returned -> announced, p50",
                f"{1000 * statistics.median(lags):.0f} ms",
            ),
            (
                "start returned -> announced, p99",
                f"{1000 * percentile(lags, 0.99):.0f} ms",
            ),
            ("start returned -> announced, max", f"{1000 * max(lags):.0f} ms"),
            (
                "node CPU during the burst",
                f"{cpu:.2f} s ({100 * cpu / span:.0f} % of one core)",
            ),
            ("node RSS at the end", f"{rss:.0f} MiB"),
        ]
        printRows(rows)
    finally:
        children.killAll()
        log("removing the containers and the engine")
        await engine.cleanup(timeout=120)


async def inTemporaryDirectory(arguments: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="sidecar-docker-bench-") as directory:
        await run(arguments, Path(directory))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("containers", type=int, nargs="?", default=200)
    parser.add_argument("--starters", type=int, default=8)
    arguments = parser.parse_args()
    reason = dockerEngineSkipReason()
    if reason is not None:
        parser.error(reason)
    task.react(lambda _: defer.ensureDeferred(inTemporaryDirectory(arguments)))


if __name__ == "__main__":
    main()
