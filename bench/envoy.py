# ruff: noqa: E402 (the path is set before the imports, see below)
"""
xDS benchmark: how soon a change in the catalog reaches connected xDS
clients, and how long a snapshot of a large catalog takes to build.

    PYTHONPATH=. .venv/bin/python bench/envoy.py [--changes 50]
        [--clients 1 50] [--services 1000]

The control plane runs in this process (L{makeEnvoy}: the follower and
the gRPC server on 127.0.0.1, any port), following a catalog the
benchmark changes; the clients are raw ADS streams (state of the world,
each subscribed to one service's endpoints and ACKing every response),
all on one asyncio loop in a thread of their own, which stamps each
response as it arrives.

1. Latency: for each number of clients, C{--changes} times an instance
   turns unhealthy or healthy again; the time from the change in the
   catalog until each client has the new endpoints (p50, p99 over every
   client and change).
2. Build: the proxy model and the snapshot of C{--services} services with
   two instances each (the median of five builds): from nothing (a node's
   first), and again after one instance changed (every later one; the
   other services' resources are reused).

Nothing is asserted: the figures are for reading.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import threading
import time

# This file is envoy.py, but "envoy" is Envoy's generated API: the
# benchmarks' directory goes last on the path, so that it is found.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE] + [_HERE]
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
from cluster import log, printRows, sleep
from envoy.service.discovery.v3.ads_pb2_grpc import AggregatedDiscoveryServiceStub
from envoy.service.discovery.v3.discovery_pb2 import DiscoveryRequest
from twisted.internet import defer, reactor, task

from sidecar.catalog import Port, Service, ServicesState, Status
from sidecar.config import loadConfig
from sidecar.proxy.model import buildModel
from sidecar.proxy.xds.build import makeEnvoy
from sidecar.proxy.xds.resources import EnvoySettings, SnapshotBuilder
from sidecar.proxy.xds.snapshot import ENDPOINT

SECOND = 1_000_000_000
SERVICE = "bench-web"
CLUSTER_NAME = f"{SERVICE}:10001"
# How long one change may take to reach every client.
CHANGE_TIMEOUT = 10.0


@dataclass
class Latency:
    clients: int
    changes: int
    p50: float  # milliseconds
    p99: float


class Clients:
    """
    C{count} ADS streams on one asyncio loop in a thread of its own; each
    response's arrival time (C{time.monotonic()}) and version are kept.
    (The same content has the same version: a change undone brings back
    an earlier version.)
    """

    def __init__(self, port: int, count: int) -> None:
        self.arrivals: list[list[tuple[float, str]]] = [[] for _ in range(count)]
        self._loop = asyncio.new_event_loop()
        self._stop = asyncio.Event()
        self._port = port
        self._count = count
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        self._loop.run_until_complete(self._main())
        self._loop.close()

    async def _main(self) -> None:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{self._port}") as channel:
            stub = AggregatedDiscoveryServiceStub(channel)
            calls = [stub.StreamAggregatedResources() for _ in range(self._count)]
            readers = [
                asyncio.ensure_future(self._follow(call, self.arrivals[n], n))
                for n, call in enumerate(calls)
            ]
            await self._stop.wait()
            for call in calls:
                call.cancel()
            await asyncio.gather(*readers, return_exceptions=True)

    async def _follow(
        self, call: Any, arrivals: list[tuple[float, str]], n: int
    ) -> None:
        request = DiscoveryRequest(type_url=ENDPOINT, resource_names=[CLUSTER_NAME])
        request.node.id = f"bench-client-{n}"
        await call.write(request)
        while True:
            response = await call.read()
            if response is grpc.aio.EOF:
                return
            arrivals.append((time.monotonic(), response.version_info))
            await call.write(
                DiscoveryRequest(
                    type_url=ENDPOINT,
                    resource_names=[CLUSTER_NAME],
                    version_info=response.version_info,
                    response_nonce=response.nonce,
                )
            )

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


def instance(serviceID: str, port: int, now: int, status: Status) -> Service:
    return Service(
        id=serviceID,
        name=SERVICE,
        image="bench:1",
        created=now - 60 * SECOND,
        hostname=f"host-{serviceID}",
        ports=(Port("tcp", port, 10001, "127.0.0.1"),),
        updated=now,
        proxyMode="http",
        status=status,
    )


async def latency(count: int, changes: int, workdir: Path) -> Latency:
    state = ServicesState("bench-host", reactor)
    config = workdir / f"node-{count}.toml"
    config.write_text(
        '[node]\nname = "bench-host"\n'
        '[envoy]\nenabled = true\nlisten = "127.0.0.1:0"\n'
        'bind_ip = "127.0.0.168"\n[haproxy]\nallow_loopback_targets = true\n'
    )
    plane = makeEnvoy(loadConfig(config, environ={}), state, None, reactor)
    plane.startService()
    try:
        port = await plane.server.whenListening()
        state.merge(instance("i1", 8001, state.now(), Status.ALIVE))
        state.merge(instance("i2", 8002, state.now(), Status.ALIVE))
        clients = Clients(port, count)
        try:
            await _everyoneHas(plane, clients, 0.0)
            samples = []
            for n in range(changes):
                status = Status.UNHEALTHY if n % 2 == 0 else Status.ALIVE
                started = time.monotonic()
                state.merge(instance("i2", 8002, state.now(), status))
                samples += [
                    (arrived - started) * 1000
                    for arrived in await _everyoneHas(plane, clients, started)
                ]
                await sleep(0.2)  # the changes are apart, not one burst
        finally:
            clients.stop()
    finally:
        await plane.stopService()
        state.stop()
    samples.sort()
    return Latency(
        count,
        changes,
        statistics.median(samples),
        samples[min(len(samples) - 1, int(len(samples) * 0.99))],
    )


async def _everyoneHas(plane: Any, clients: Clients, since: float) -> list[float]:
    """
    Wait until the current endpoints' version has reached every client
    since C{since}: when it reached each.
    """
    deadline = time.monotonic() + CHANGE_TIMEOUT
    while True:
        version = plane.server.snapshot.versions()["EDS"]
        arrived = [
            next((t for t, v in list(a) if t >= since and v == version), None)
            for a in clients.arrivals
        ]
        if plane.follower.upToDate and None not in arrived:
            return [t for t in arrived if t is not None]
        if time.monotonic() > deadline:
            raise TimeoutError(f"version {version} did not reach every client")
        await sleep(0.002)


def buildTime(services: int) -> tuple[float, float]:
    """
    The median times, in milliseconds, to build the model and snapshot of
    C{services} services with two instances each: from nothing, and again
    after one instance turned unhealthy.
    """
    now = 1_700_000_000 * SECOND
    records = [
        Service(
            id=f"s{n}-{i}",
            name=f"svc-{n}",
            image="bench:1",
            created=now,
            hostname=f"host-{i}",
            ports=(Port("tcp", 8000 + i, 10000 + n, f"127.0.1.{i + 1}"),),
            updated=now,
            proxyMode=("http", "tcp", "ws")[n % 3],
        )
        for n in range(services)
        for i in range(2)
    ]
    changed = [records[0].withStatus(Status.UNHEALTHY, now + 1), *records[1:]]
    settings = EnvoySettings("127.0.0.168")
    full, again = [], []
    for _ in range(5):
        builder = SnapshotBuilder(settings)
        started = time.perf_counter()
        builder.build(buildModel(records))
        full.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        builder.build(buildModel(changed))
        again.append((time.perf_counter() - started) * 1000)
    return statistics.median(full), statistics.median(again)


async def run(
    arguments: argparse.Namespace,
) -> tuple[list[Latency], tuple[float, float]]:
    results = []
    with tempfile.TemporaryDirectory(prefix="sidecar-envoy-bench-") as directory:
        for count in arguments.clients:
            log(f"{arguments.changes} changes, {count} clients")
            results.append(await latency(count, arguments.changes, Path(directory)))
    log(f"building a snapshot of {arguments.services} services")
    full, again = build = buildTime(arguments.services)
    rows = [
        (
            f"change to client, {r.clients} clients, p50 / p99",
            f"{r.p50:.1f} / {r.p99:.1f} ms",
        )
        for r in results
    ]
    rows.append((f"snapshot of {arguments.services} services", f"{full:.0f} ms"))
    rows.append(("the same after one change", f"{again:.0f} ms"))
    printRows(rows)
    return results, build


def parseArguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--changes", type=int, default=50)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 50])
    parser.add_argument("--services", type=int, default=1000)
    return parser.parse_args(argv)


def main() -> None:
    arguments = parseArguments()
    task.react(lambda _: defer.ensureDeferred(run(arguments)))


if __name__ == "__main__":
    main()
