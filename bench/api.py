"""
API benchmark: requests per second and latency of C{/api/services.json}
on a node whose catalog holds SERVICES services, while it gossips.

    PYTHONPATH=. .venv/bin/python bench/api.py [SERVICES] [--seconds 10]
        [--clients 4]

Two nodes (C{twistd -n sidecar}) run on 127.0.1.1 and 127.0.1.2; the
first announces SERVICES static services (always-successful checks), the
second joins it, so the first gossips all along.  Once the second node has
the whole catalog, C{--clients} clients in this process request the first
node's C{/api/services.json} back to back (new connections) for
C{--seconds}.  Printed: requests per second, latency p50/p99/max, the
response size, and the node's CPU and RSS.  Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import treq
from cluster import TWISTD_SIDECAR, Children, cpuSeconds, log, printRows, rssMiB, sleep
from twisted.internet import defer, task

from sidecar.demo.processes import nodeEnvironment

HOSTS = ("127.0.1.1", "127.0.1.2")
GOSSIP_PORT = 7946
API_PORT = 7777


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def writeNode(directory: Path, index: int, services: int) -> None:
    directory.mkdir()
    targets = [
        {
            "Service": {
                "Name": f"svc-{n % 100}",
                "Image": f"registry.example/svc-{n % 100}:1.0",
                "Ports": [{"Port": 20000 + n, "ServicePort": 10000 + n % 100}],
            },
            "Check": {"Type": "AlwaysSuccessful"},
        }
        for n in range(services if index == 0 else 0)
    ]
    (directory / "static.json").write_text(json.dumps(targets))
    host = HOSTS[index]
    seeds = "" if index == 0 else f'seeds = ["{HOSTS[0]}:{GOSSIP_PORT}"]\n'
    (directory / "node.toml").write_text(
        f'[node]\nname = "api-{index}"\nbind = "{host}:{GOSSIP_PORT}"\n{seeds}'
        f'[api]\nlisten = "{host}:{API_PORT}"\n[log]\nlevel = "warn"\n'
    )


async def catalogSize(host: str) -> int:
    try:
        response = await treq.get(
            f"http://{host}:{API_PORT}/api/state.json", persistent=False, timeout=5
        )
        state = await response.json()
    except Exception:
        return -1
    return sum(len(s["Services"]) for s in state["Servers"].values())


async def run(arguments: argparse.Namespace, workdir: Path) -> None:
    children = Children()
    environ = nodeEnvironment()
    try:
        processes = []
        for index in range(2):
            directory = workdir / f"node-{index}"
            writeNode(directory, index, arguments.services)
            processes.append(
                children.spawn(
                    [*TWISTD_SIDECAR, "--config=node.toml"],
                    directory / "node.log",
                    environ,
                    directory,
                )
            )
            await sleep(1.0)
        deadline = time.monotonic() + 120
        while await catalogSize(HOSTS[1]) < arguments.services:
            if time.monotonic() > deadline:
                raise RuntimeError("the second node never had the whole catalog")
            await sleep(0.5)
        log(f"both nodes hold {arguments.services} services; measuring")
        node = processes[0]
        latencies: list[float] = []
        sizes: list[int] = []
        url = f"http://{HOSTS[0]}:{API_PORT}/api/services.json"
        end = time.monotonic() + arguments.seconds

        async def client() -> None:
            while time.monotonic() < end:
                started = time.perf_counter()
                response = await treq.get(url, persistent=False, timeout=10)
                body = await response.content()
                latencies.append(time.perf_counter() - started)
                sizes.append(len(body))

        cpu = cpuSeconds(node.pid)
        began = time.monotonic()
        await defer.DeferredList(
            [defer.ensureDeferred(client()) for _ in range(arguments.clients)]
        )
        wall = time.monotonic() - began
        cpu = cpuSeconds(node.pid) - cpu
        rows = [
            ("services", f"{arguments.services}"),
            ("clients", f"{arguments.clients}"),
            ("requests per second", f"{len(latencies) / wall:.0f}"),
            ("latency p50", f"{1000 * statistics.median(latencies):.1f} ms"),
            ("latency p99", f"{1000 * percentile(latencies, 0.99):.1f} ms"),
            ("latency max", f"{1000 * max(latencies):.1f} ms"),
            ("response size", f"{statistics.median(sizes) / 1024:.0f} KiB"),
            ("node CPU", f"{100 * cpu / wall:.0f} % of one core"),
            ("node RSS", f"{rssMiB(node.pid):.0f} MiB"),
        ]
        printRows(rows)
    finally:
        children.killAll()


async def inTemporaryDirectory(arguments: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="sidecar-api-bench-") as directory:
        await run(arguments, Path(directory))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("services", type=int, nargs="?", default=1000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=4)
    arguments = parser.parse_args()
    task.react(lambda _: defer.ensureDeferred(inTemporaryDirectory(arguments)))


if __name__ == "__main__":
    main()
