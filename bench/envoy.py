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
all on one asyncio loop in a child process, which stamps each response
as it arrives.

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
from twisted.internet.protocol import ProcessProtocol

from sidecar.catalog import Port, Service, ServicesState, Status
from sidecar.config import loadConfig
from sidecar.proxy.model import buildModel
from sidecar.proxy.xds.build import makeEnvoy
from sidecar.proxy.xds.resources import EnvoySettings, SnapshotBuilder
from sidecar.proxy.xds.snapshot import ENDPOINT

SECOND = 1_000_000_000
SERVICE = "bench-web"
CLUSTER_NAME = f"{SERVICE}:10001"
# How long one change may take to reach every client, and the clients'
# process to start and have the first endpoints.
CHANGE_TIMEOUT = 10.0
START_TIMEOUT = 60.0


@dataclass
class Latency:
    clients: int
    changes: int
    p50: float  # milliseconds
    p99: float


async def follow(port: int, count: int, arrived: Any, stop: asyncio.Event) -> None:
    """
    Open C{count} ADS streams to C{127.0.0.1:port}, each subscribed to the
    benchmark's endpoints and acknowledging every response, and call
    C{arrived(n, version)} as each response arrives, until C{stop} is set.
    """
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = AggregatedDiscoveryServiceStub(channel)
        calls = [stub.StreamAggregatedResources() for _ in range(count)]
        readers = [
            asyncio.ensure_future(_follow(call, n, arrived))
            for n, call in enumerate(calls)
        ]
        await stop.wait()
        for call in calls:
            call.cancel()
        await asyncio.gather(*readers, return_exceptions=True)


async def _follow(call: Any, n: int, arrived: Any) -> None:
    request = DiscoveryRequest(type_url=ENDPOINT, resource_names=[CLUSTER_NAME])
    request.node.id = f"bench-client-{n}"
    await call.write(request)
    while True:
        response = await call.read()
        if response is grpc.aio.EOF:
            return
        arrived(n, response.version_info)
        await call.write(
            DiscoveryRequest(
                type_url=ENDPOINT,
                resource_names=[CLUSTER_NAME],
                version_info=response.version_info,
                response_nonce=response.nonce,
            )
        )


def clientProcess(port: int, count: int) -> None:
    """
    The child's side: the clients, each arrival as a line C{<n> <version>
    <time.monotonic()>} on standard output, until standard input ends.
    """

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_reader(sys.stdin.fileno(), lambda: sys.stdin.read() or stop.set())

        def arrived(n: int, version: str) -> None:
            print(n, version, time.monotonic(), flush=True)

        await follow(port, count, arrived, stop)

    asyncio.run(main())


class Clients(ProcessProtocol):
    """
    C{count} ADS clients in a child process of their own (so that they
    share no interpreter lock with the control plane): each response's
    arrival time (C{time.monotonic()}, the same clock in both processes)
    and version, per client.  (The same content has the same version: a
    change undone brings back an earlier version.)
    """

    def __init__(self, port: int, count: int) -> None:
        self.arrivals: list[list[tuple[float, str]]] = [[] for _ in range(count)]
        self.ended: defer.Deferred[None] = defer.Deferred()
        self._buffer = b""
        self._process = reactor.spawnProcess(  # type: ignore[attr-defined]
            self,
            sys.executable,
            [sys.executable, __file__, "--client-process", str(port), str(count)],
            env=os.environ.copy(),
        )

    def outReceived(self, data: bytes) -> None:
        self._buffer += data
        while b"\n" in self._buffer:
            line, self._buffer = self._buffer.split(b"\n", 1)
            n, version, at = line.decode().split()
            self.arrivals[int(n)].append((float(at), version))

    def errReceived(self, data: bytes) -> None:
        sys.stderr.write(data.decode(errors="replace"))

    def processEnded(self, reason: Any) -> None:
        self.ended.callback(None)

    def stop(self) -> defer.Deferred[None]:
        self._process.closeStdin()
        return self.ended


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
            await _everyoneHas(plane, clients, 0.0, START_TIMEOUT)
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
            await clients.stop()
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


async def _everyoneHas(
    plane: Any, clients: Clients, since: float, timeout: float = CHANGE_TIMEOUT
) -> list[float]:
    """
    Wait until the current endpoints' version has reached every client
    since C{since}: when it reached each.
    """
    deadline = time.monotonic() + timeout
    while True:
        version = plane.server.snapshot.versions()["EDS"]
        arrived = [_firstSince(a, since, version) for a in clients.arrivals]
        if plane.follower.upToDate and None not in arrived:
            return [t for t in arrived if t is not None]
        if time.monotonic() > deadline:
            raise TimeoutError(f"version {version} did not reach every client")
        await sleep(0.005)


def _firstSince(
    arrivals: list[tuple[float, str]], since: float, version: str
) -> float | None:
    """
    When C{version} first arrived at or after C{since}, looking back from
    the newest arrival only as far as C{since} (the wait must not slow
    down what it measures).
    """
    first = None
    for at, arrived in reversed(arrivals):
        if at < since:
            break
        if arrived == version:
            first = at
    return first


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
    if sys.argv[1:2] == ["--client-process"]:
        clientProcess(int(sys.argv[2]), int(sys.argv[3]))
        return
    arguments = parseArguments()
    task.react(lambda _: defer.ensureDeferred(run(arguments)))


if __name__ == "__main__":
    main()
