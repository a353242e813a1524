"""
API benchmark: C{wrk} against a node's C{/api/services.json} and
C{/api/state.json} while the node gossips with a peer.

    PYTHONPATH=. .venv/bin/python bench/api.py [SERVICES ...]
        [--connections 4 64] [--paths services.json state.json]
        [--seconds 10]

For each SERVICES (default 1000 and 10000): two nodes (C{twistd -n
sidecar}) run on 127.0.1.1 and 127.0.1.2; the first announces SERVICES
static services (always-successful checks), the second joins it.  Once the
second node has the whole catalog, Debian's C{wrk} loads the first node's
API, one path and one connection count at a time, for C{--seconds}.
Printed for each: requests per second, latency p50/p99, errors (socket
errors and non-2xx answers), the loaded node's CPU and RSS, and what the
peer saw meanwhile: how often it suspected the loaded node, and whether it
declared it failed.  Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import treq
from cluster import TWISTD_SIDECAR, Children, cpuSeconds, log, rssMiB, sleep
from twisted.internet import defer, task
from twisted.internet.utils import getProcessOutputAndValue

from sidecar.demo.processes import nodeEnvironment

HOSTS = ("127.0.1.1", "127.0.1.2")
GOSSIP_PORT = 7946
API_PORT = 7777
NAMES = ("api-0", "api-1")
# How long to wait for the peer to hold the whole catalog.
CONVERGENCE = 300.0


@dataclass(frozen=True)
class Load:
    """
    What C{wrk} reported for one run.
    """

    requests: int
    perSecond: float
    p50: float
    p99: float
    errors: int


@dataclass(frozen=True)
class Run:
    """
    One path at one connection count: C{wrk}'s figures, the node's costs,
    and the peer's view of the loaded node.
    """

    services: int
    path: str
    connections: int
    load: Load
    cpu: float
    rss: float
    suspicions: int
    failures: int


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
        f'[node]\nname = "{NAMES[index]}"\nbind = "{host}:{GOSSIP_PORT}"\n{seeds}'
        f'[api]\nlisten = "{host}:{API_PORT}"\n[log]\nlevel = "info"\n'
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


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _milliseconds(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+|nan)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return float(number) * _UNITS[unit]


def parseWrk(output: str) -> Load:
    """
    The figures of C{wrk --latency}'s report (a latency of C{nan} when
    no request completed).
    """
    latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)\s*$", output, re.MULTILINE))
    if len(latency) < 2:
        log(f"wrk reported no latency distribution:\n{output}")
    errors = sum(
        int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", output)
    )
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return Load(
        requests=int(re.search(r"(\d+) requests in", output).group(1)),  # type: ignore[union-attr]
        perSecond=float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),  # type: ignore[union-attr]
        p50=_milliseconds(latency.get("50", "nanms")),
        p99=_milliseconds(latency.get("99", "nanms")),
        errors=errors + (int(non2xx.group(1)) if non2xx else 0),
    )


def peerSaw(logFile: Path) -> tuple[int, int]:
    """
    How often the peer's log says it suspected the loaded node, and
    declared it failed.
    """
    text = logFile.read_text(errors="replace")
    return (
        text.count(f"no ack from {NAMES[0]}: suspecting it"),
        text.count(f"member {NAMES[0]} failed"),
    )


async def wrk(url: str, connections: int, seconds: float) -> Load:
    threads = min(2, connections)
    output, errors, code = await getProcessOutputAndValue(
        "wrk",
        [
            f"-t{threads}",
            f"-c{connections}",
            f"-d{seconds:g}s",
            "--timeout",
            "5s",
            "--latency",
            url,
        ],
    )
    if code != 0:
        raise RuntimeError(f"wrk failed ({code}): {errors.decode(errors='replace')}")
    return parseWrk(output.decode())


async def measureSize(
    arguments: argparse.Namespace, services: int, workdir: Path
) -> list[Run]:
    children = Children()
    environ = nodeEnvironment()
    runs = []
    try:
        processes = []
        for index in range(2):
            directory = workdir / f"node-{services}-{index}"
            writeNode(directory, index, services)
            processes.append(
                children.spawn(
                    [*TWISTD_SIDECAR, "--config=node.toml"],
                    directory / "node.log",
                    environ,
                    directory,
                )
            )
            await sleep(1.0)
        peerLog = workdir / f"node-{services}-1" / "node.log"
        deadline = time.monotonic() + CONVERGENCE
        while await catalogSize(HOSTS[1]) < services:
            if time.monotonic() > deadline:
                raise RuntimeError("the second node never had the whole catalog")
            await sleep(0.5)
        log(f"both nodes hold {services} services; measuring")
        node = processes[0]
        for path in arguments.paths:
            for connections in arguments.connections:
                url = f"http://{HOSTS[0]}:{API_PORT}/api/{path}"
                suspected, failed = peerSaw(peerLog)
                cpu = cpuSeconds(node.pid)
                began = time.monotonic()
                load = await wrk(url, connections, arguments.seconds)
                wall = time.monotonic() - began
                cpu = cpuSeconds(node.pid) - cpu
                suspectedAfter, failedAfter = peerSaw(peerLog)
                runs.append(
                    Run(
                        services=services,
                        path=path,
                        connections=connections,
                        load=load,
                        cpu=cpu / wall,
                        rss=rssMiB(node.pid),
                        suspicions=suspectedAfter - suspected,
                        failures=failedAfter - failed,
                    )
                )
                log(f"{path} with {connections} connections: done")
    finally:
        children.killAll()
    return runs


def table(runs: list[Run]) -> str:
    """
    The figures as a Markdown table (docs/performance.md has one).
    """
    lines = [
        "| services | path | connections | requests/s | p50 | p99 | errors "
        "| node CPU | node RSS | peer's suspicions | peer's failures |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in runs:
        lines.append(
            f"| {run.services} | `/api/{run.path}` | {run.connections} "
            f"| {run.load.perSecond:.0f} | {run.load.p50:.1f} ms "
            f"| {run.load.p99:.1f} ms | {run.load.errors} "
            f"| {100 * run.cpu:.0f} % | {run.rss:.0f} MiB "
            f"| {run.suspicions} | {run.failures} |"
        )
    return "\n".join(lines)


async def run(arguments: argparse.Namespace) -> list[Run]:
    if shutil.which("wrk") is None:
        raise RuntimeError("wrk is not installed (Debian: apt-get install wrk)")
    runs = []
    with tempfile.TemporaryDirectory(prefix="sidecar-api-bench-") as directory:
        for services in arguments.services:
            runs.extend(await measureSize(arguments, services, Path(directory)))
    print(table(runs))
    return runs


def parseArguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("services", type=int, nargs="*", default=[1000, 10000])
    parser.add_argument("--connections", type=int, nargs="+", default=[4, 64])
    parser.add_argument("--paths", nargs="+", default=["services.json", "state.json"])
    parser.add_argument("--seconds", type=float, default=10.0)
    return parser.parse_args(argv)


def main() -> None:
    arguments = parseArguments()
    task.react(lambda _: defer.ensureDeferred(run(arguments)))


if __name__ == "__main__":
    main()
