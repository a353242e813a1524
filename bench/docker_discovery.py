"""
Docker discovery benchmark: a burst of labelled containers, and how soon a
node has them all in its catalog, on Docker's engine and podman's side by
side.

    PYTHONPATH=. .venv/bin/python bench/docker_discovery.py [CONTAINERS]
        [--starters 8] [--engines docker,podman]

For each engine in turn (as the tests run them, see
C{tests/dockerengine.py}: Docker's C{dockerd} in a network namespace of its
own, podman's C{podman system service}), the engine and one node
(C{twistd -n sidecar}, Docker discovery only, JSON log, in the engine's
network) run on this machine.  Once the node follows the engine's events,
CONTAINERS (default 200) containers with the seed's labels are started at
once from C{--starters} threads, as C{docker run -d} does.  From the
node's log (each "announcing service" event's C{time}) and the
engine's answers:

- the time from the start of the burst until the last container is in the
  catalog, and until the engine had started the last one;
- per container, the time from its start returning to its announcement
  (p50, p99, max);
- the node's CPU during the burst (user + system of its process, from the
  burst's start until the last announcement), in seconds and as a share of
  one core, and its RSS at the end.

Each figure is printed once, with the engines' values side by side
(C{docker / podman}).  Nothing is asserted: the figures are for reading.
The engines, their containers and the nodes are stopped when the
benchmark ends, on an error and on Ctrl-C.  Only 127.0.0.1 is used.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

from cluster import TWISTD_SIDECAR, Children, cpuSeconds, log, printRows, rssMiB, sleep
from twisted.internet import defer, task
from twisted.internet.threads import deferToThread

from sidecar.demo.processes import nodeEnvironment
from tests.dockerengine import (
    ENGINES,
    IMAGE,
    PUBLISHED,
    DockerEngine,
    dockerEngineSkipReason,
)

LABELS = {
    "HealthCheck": "HttpGet",
    "ServicePort_80": "10001",
    "HealthCheckArgs": "http://{{ host }}:{{ tcp 10001 }}/",
}


def announcements(logPath: Path) -> dict[str, float]:
    """
    The first "announcing service" time of each service ID in the node's
    JSON log (its C{time}, to the millisecond).
    """
    first: dict[str, float] = {}
    for line in logPath.read_text().splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if str(event.get("message", "")).startswith("announcing service"):
            when = datetime.fromisoformat(event["time"]).timestamp()
            first.setdefault(event["id"], when)
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


async def measure(
    kind: str, arguments: argparse.Namespace, workdir: Path
) -> list[tuple[str, str]]:
    """
    The burst on an engine of kind C{kind}: its figures, as rows.
    """
    engine: DockerEngine = ENGINES[kind]()
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
        node = children.spawn(
            engine.inNetwork([*TWISTD_SIDECAR, f"--config={workdir / 'node.toml'}"]),
            nodeLog,
            nodeEnvironment(),
            workdir,
        )
        await waitFor(lambda: followsEvents(nodeLog), "the node following events", 30)
        count = arguments.containers
        log(f"{kind}: node {node.pid} follows the engine; starting {count}")
        started: dict[str, float] = {}
        cpuBefore = cpuSeconds(node.pid)
        burstStart = time.time()

        def startOne(n: int) -> None:
            client = engine.newClient()
            try:
                container = client.containers.run(
                    IMAGE,
                    ["httpd", "-f", "-p", "80", "-h", "/www"],
                    detach=True,
                    init=True,
                    labels={**LABELS, "ServiceName": f"burst-{n % 10}"},
                    ports=PUBLISHED,
                    network_mode=engine.network,
                )
                started[container.id[:12]] = time.time()
            finally:
                client.close()

        def burst() -> None:
            with ThreadPoolExecutor(arguments.starters) as pool:
                list(pool.map(startOne, range(arguments.containers)))

        await deferToThread(burst)
        engineDone = time.time()
        log(f"{kind}: the engine started them all in {engineDone - burstStart:.1f} s")
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
        return [
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
    finally:
        children.killAll()
        log(f"{kind}: removing the containers and the engine")
        await engine.cleanup(timeout=120)


def sideBySide(
    kinds: list[str], figures: list[list[tuple[str, str]]]
) -> list[tuple[str, str]]:
    """
    One row per figure, with each engine's value in C{kinds}' order.
    """
    rows = [("engine", " / ".join(kinds))]
    for index, (name, _) in enumerate(figures[0]):
        rows.append((name, " / ".join(each[index][1] for each in figures)))
    return rows


async def run(arguments: argparse.Namespace) -> None:
    figures = []
    for kind in arguments.engines:
        with tempfile.TemporaryDirectory(prefix="sidecar-docker-bench-") as workdir:
            figures.append(await measure(kind, arguments, Path(workdir)))
    printRows(sideBySide(arguments.engines, figures))


def engineKinds(text: str) -> list[str]:
    kinds = [kind.strip() for kind in text.split(",") if kind.strip()]
    unknown = [kind for kind in kinds if kind not in ENGINES]
    if unknown or not kinds:
        raise argparse.ArgumentTypeError(
            f"expected engines among {', '.join(ENGINES)}, got {text!r}"
        )
    return kinds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("containers", type=int, nargs="?", default=200)
    parser.add_argument("--starters", type=int, default=8)
    parser.add_argument(
        "--engines",
        type=engineKinds,
        default=["docker", "podman"],
        help="the engines to measure, in order (default: docker,podman)",
    )
    arguments = parser.parse_args()
    for kind in arguments.engines:
        reason = dockerEngineSkipReason(kind)
        if reason is not None:
            parser.error(reason)
    task.react(lambda _: defer.ensureDeferred(run(arguments)))


if __name__ == "__main__":
    main()
