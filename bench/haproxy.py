"""
HAProxy benchmark: how soon a change in the catalog is what HAProxy does,
by the runtime API and by a reload; how long rendering a large
configuration takes; and whether any request fails while changes happen.

    PYTHONPATH=. .venv/bin/python bench/haproxy.py [--changes 100]
        [--render-services 1000]

A real C{haproxy} (master-worker, as a node runs it) with its frontends on
127.0.0.168, driven by L{ProxyFollower} and L{HAProxyWriter} in this
process from a catalog the benchmark changes; two backends are small
Twisted web servers on 127.0.0.1, and two clients send requests through
the frontend the whole time.

1. Latency: 10 times each, an instance turns unhealthy and healthy again
   (runtime API), and another service's frontend comes and goes (reload);
   the time from the change in the catalog until HAProxy has applied it
   (the runtime commands answered, or the new worker answers).
2. Render: the model and configuration for SERVICES services with 2
   ServicePorts each, and C{haproxy -c} on it.
3. Failures: C{--changes} changes, alternating the two kinds, at 0.3 s
   spacing (so some are coalesced), and the requests that failed meanwhile.

Nothing is asserted: the figures are for reading.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import treq
from cluster import log, printRows, sleep
from twisted.internet import defer, reactor, task
from twisted.web.resource import Resource
from twisted.web.server import Site
from zope.interface import implementer

from sidecar.catalog import Port, Service, ServicesState, Status
from sidecar.interfaces import IMembership
from sidecar.proxy.follower import ProxyFollower
from sidecar.proxy.haproxy import HAProxySettings, HAProxyWriter
from sidecar.proxy.model import buildModel
from sidecar.proxy.template import ProxyTemplate, TemplateSettings

BIND_IP = "127.0.0.168"
SECOND = 1_000_000_000
SERVICE_PORT = 10001
OTHER_PORT = 10002


class Named(Resource):
    isLeaf = True

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name.encode()

    def render_GET(self, request: Any) -> bytes:
        return self.name


@implementer(IMembership)
class Members:
    clusterName = "bench"
    seeded = False

    def memberNames(self) -> list[str]:
        return ["host-a", "host-b"]

    def members(self) -> list[dict[str, object]]:
        return []

    def goPeers(self) -> dict[str, Any]:
        return {"Members": [], "RelayLimit": 1395, "Withheld": []}


class Bench:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.state = ServicesState("host-a", reactor)  # type: ignore[arg-type]
        self.ports: dict[str, int] = {}
        self.writer = HAProxyWriter(
            reactor,
            HAProxySettings(
                configFile=str(directory / "haproxy.cfg"),
                binary=shutil.which("haproxy") or "haproxy",
                pidFile=str(directory / "haproxy.pid"),
            ),
            ProxyTemplate.default(),
            TemplateSettings(BIND_IP, str(directory / "admin.sock"), maxconn=1024),
        )
        self.follower = ProxyFollower(self.state, Members(), self.writer, reactor)
        self.requests = 0
        self.failures: list[str] = []
        self.sending = False

    def backend(self, name: str) -> None:
        site = Site(Named(name))
        site.log = lambda request: None  # type: ignore[method-assign]
        port = reactor.listenTCP(0, site, interface="127.0.0.1")  # type: ignore[attr-defined]
        self.ports[name] = port.getHost().port

    def record(
        self, name: str, status: Status = Status.ALIVE, servicePort: int = SERVICE_PORT
    ) -> Service:
        return Service(
            id=name,
            name="web" if servicePort == SERVICE_PORT else "other",
            image="img",
            hostname="host-b",
            ports=(Port("tcp", self.ports[name], servicePort, "127.0.0.1"),),
            created=SECOND,
            updated=round(time.time() * SECOND),
            status=status,
        )

    async def applied(self) -> float:
        """
        Wait until HAProxy does what the catalog says; return when.
        """
        while not self.follower.upToDate:
            await sleep(0.001)
        return time.monotonic()

    async def change(self, record: Service) -> tuple[float, str]:
        reloads = self.writer.reloads
        started = time.monotonic()
        self.state.merge(record)
        done = await self.applied()
        how = "reload" if self.writer.reloads > reloads else "runtime"
        return done - started, how

    async def client(self) -> None:
        url = f"http://{BIND_IP}:{SERVICE_PORT}/"
        while self.sending:
            self.requests += 1
            try:
                response = await treq.get(url, persistent=False, timeout=5)
                await response.content()
                if response.code != 200:
                    self.failures.append(f"HTTP {response.code}")
            except Exception as e:
                self.failures.append(repr(e))

    def toggles(self, n: int) -> Service:
        """
        The n-th change: even ones flip b's health, odd ones flip the other
        service's frontend.
        """
        up = (n // 2) % 2 == 1
        if n % 2 == 0:
            return self.record("b", Status.ALIVE if up else Status.UNHEALTHY)
        other = self.record(
            "c", Status.ALIVE if not up else Status.TOMBSTONE, OTHER_PORT
        )
        return replace(other, id="other")


def renderFigures(services: int, directory: Path) -> list[tuple[str, str]]:
    records = [
        Service(
            id=f"{n:012x}",
            name=f"svc-{n}",
            image="img",
            hostname=f"host-{n % 40}",
            ports=(
                Port("tcp", 30000 + n % 20000, 10000 + 2 * n, f"127.0.1.{n % 200 + 1}"),
                Port("tcp", 31000 + n % 20000, 10001 + 2 * n, f"127.0.1.{n % 200 + 1}"),
            ),
            created=SECOND,
        )
        for n in range(services)
    ]
    template = ProxyTemplate.default()
    settings = TemplateSettings(BIND_IP, str(directory / "render.sock"), maxconn=1024)
    started = time.perf_counter()
    model = buildModel(records)
    modelled = time.perf_counter()
    text = template.render(model, settings)
    rendered = time.perf_counter()
    path = directory / "render.cfg"
    path.write_text(text)
    checked = subprocess.run(
        [shutil.which("haproxy") or "haproxy", "-c", "-f", str(path)],
        capture_output=True,
    )
    validated = time.perf_counter()
    return [
        (f"render: {services} services x 2 ports", f"{len(model.frontends)} frontends"),
        ("  build the model", f"{1000 * (modelled - started):.0f} ms"),
        ("  render the template", f"{1000 * (rendered - modelled):.0f} ms"),
        (
            "  haproxy -c",
            f"{1000 * (validated - rendered):.0f} ms (exit {checked.returncode})",
        ),
    ]


async def run(arguments: argparse.Namespace, directory: Path) -> None:
    bench = Bench(directory)
    for name in ("a", "b", "c"):
        bench.backend(name)
    bench.follower.startService()
    try:
        bench.state.merge(bench.record("a"))
        bench.state.merge(bench.record("b"))
        await bench.applied()
        await sleep(1.2)
        latencies: dict[str, list[float]] = {"runtime": [], "reload": []}
        for n in range(40):
            took, how = await bench.change(bench.toggles(n))
            latencies[how].append(took)
            await sleep(1.1)  # past min_reload_interval: no coalescing
        log("latencies measured; now changes under load")
        bench.sending = True
        clients = [defer.ensureDeferred(bench.client()) for _ in range(2)]
        reloadsBefore = bench.writer.reloads
        runtimeBefore = bench.writer.runtimeChanges
        for n in range(arguments.changes):
            bench.state.merge(bench.toggles(n))
            await sleep(0.3)
        await bench.applied()
        await sleep(0.5)
        bench.sending = False
        await defer.DeferredList(clients)
        rows = []
        for how, values in latencies.items():
            rows.append(
                (
                    f"change -> applied, {how} ({len(values)})",
                    f"median {1000 * statistics.median(values):.1f} ms,"
                    f" max {1000 * max(values):.1f} ms",
                )
            )
        rows += renderFigures(arguments.render_services, directory)
        rows += [
            (f"{arguments.changes} changes under load", ""),
            ("  reloads", f"{bench.writer.reloads - reloadsBefore}"),
            ("  runtime updates", f"{bench.writer.runtimeChanges - runtimeBefore}"),
            ("  requests", f"{bench.requests}"),
            ("  failed requests", f"{len(bench.failures)}"),
        ]
        printRows(rows)
        for failure in sorted(set(bench.failures))[:5]:
            print(f"  failure: {failure}")
    finally:
        await bench.follower.stopService()
        bench.state.stop()


async def inTemporaryDirectory(arguments: argparse.Namespace) -> None:
    directory = Path(tempfile.mkdtemp(prefix="sidecar-haproxy-bench-"))
    try:
        await run(arguments, directory)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--changes", type=int, default=100)
    parser.add_argument("--render-services", type=int, default=1000)
    arguments = parser.parse_args()
    if shutil.which("haproxy") is None:
        parser.error("haproxy is not installed (Debian package haproxy)")
    task.react(lambda _: defer.ensureDeferred(inTemporaryDirectory(arguments)))


if __name__ == "__main__":
    main()
