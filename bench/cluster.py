"""
Cluster benchmark: N sidecar nodes against N serf agents, on loopback, in
one run.

    PYTHONPATH=. .venv/bin/python bench/cluster.py [N] [--profile lan]
        [--idle SECONDS] [--repeats R] [--kills K] [--keep]

As root, in a network namespace of its own, its addresses, ports and
iptables chain are its alone (other runs, other tests):

    unshare -n sh -c 'ip link set lo up; PYTHONPATH=. \\
        .venv/bin/python bench/cluster.py 10'

Our nodes bind 127.0.1.K (gossip :7946, API :7777), serf's agents 127.0.2.K
(gossip :7946, RPC :7373); nothing leaves 127.0.0.0/8.  The two systems run
one after the other, each alone on the machine, through the same phases:

1. join: node 1 (the seed) starts; once it answers, nodes 2..N start
   together, each joining through node 1; the time from the last spawn
   until every node lists all N members alive.
2. propagation, R times each, two measures (our API polled, serf's event
   handler's timestamps), medians and maxima:
   - gossip: a change to a record that waits on nothing, the drain of one
     node's service through its API, until every node lists it DRAINING;
     serf, C{serf event};
   - discovery: a new entry (checked C{AlwaysSuccessful}) in one node's
     static file and SIGHUP, until every node lists it ALIVE: discovery,
     first check, announcement and gossip, end to end.  Serf has neither
     services nor checks: its figure is a user event again, the least the
     same news would cost it.
3. an idle window with no polling at all: suspicions, refutations and
   failures in the logs, CPU per node, bytes sent per node (iptables
   counters, as root), and RSS at its end.
4. failure detection, K times: SIGKILL one non-seed node; the time until
   every survivor lists it as failed.  Median and max.

With C{--loss P}, phases 3 and 4 run with P % of gossip packets dropped
(UDP and TCP to or from port 7946, both ways, by iptables' statistic
match): false suspicions and members wrongly failed in the idle window,
and detection under loss.  That mode refuses to run outside a network
namespace of its own, as it drops packets on loopback.

Then a table with both systems and our/serf ratios.  Nothing is asserted:
the figures are for reading and comparing.  Every process started is
stopped at the end, on an error and on Ctrl-C.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import treq
from twisted.internet import defer, reactor, task
from twisted.internet.utils import getProcessOutputAndValue
from twisted.web.client import HTTPConnectionPool

from sidecar.catalog.service import Status
from sidecar.demo import processes
from sidecar.gossip.profiles import PROFILES, detectionBound

OURS_NET = "127.0.1"
SERF_NET = "127.0.2"
GOSSIP_PORT = 7946
API_PORT = 7777
RPC_PORT = 7373
CHAIN = "SIDECAR_BENCH"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# Polls in flight at once, and the bound on each one.
CONCURRENCY = 10
REQUEST_TIMEOUT = 5.0
# Pauses that let a cluster settle between phases.
SETTLE = 3.0
SETTLE_BEFORE_IDLE = 10.0
# Beyond the failure-detection bound, a loaded machine's delays: how long
# the benchmark waits for a failure to be declared before it counts a miss.
DETECTION_SLACK = 10.0
# Serf's discovery rounds are user events numbered from here, after its
# gossip rounds' (so at most this many rounds of each).
DISCOVERY_ROUNDS = 100
# The check of the benchmark's services: nothing listens on their ports.
ALWAYS = {"Type": "AlwaysSuccessful", "Args": ""}

Probe = Callable[[int], Awaitable[float | None]]
# A node in the foreground: append --config=FILE.
TWISTD_SIDECAR = [sys.executable, *processes.TWISTD_SIDECAR]


def log(message: str) -> None:
    """
    A progress line on standard error, so standard output is the table.
    """
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def printRows(rows: Sequence[tuple[str, str]]) -> None:
    """
    A benchmark's figures, one per line, names aligned, on standard output.
    """
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


def sleep(seconds: float) -> defer.Deferred[None]:
    return task.deferLater(reactor, seconds)  # type: ignore[arg-type]


# -- processes ---------------------------------------------------------------


def _dieWithParent() -> None:
    # In the child, before exec: SIGKILL it if the benchmark itself dies.
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


class Children:
    """
    Every long-running process the benchmark started.  L{killAll} is
    synchronous and idempotent, for C{finally}.
    """

    def __init__(self) -> None:
        self.processes: list[subprocess.Popen[bytes]] = []

    def spawn(
        self, arguments: Sequence[str], output: Path, env: dict[str, str], cwd: Path
    ) -> subprocess.Popen[bytes]:
        with output.open("ab") as out:
            process = subprocess.Popen(
                list(arguments),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=cwd,
                # Out of the terminal's process group: Ctrl-C reaches the
                # benchmark, which then ends them itself.
                start_new_session=True,
                preexec_fn=_dieWithParent,
            )
        self.processes.append(process)
        return process

    async def stop(
        self, processes: Sequence[subprocess.Popen[bytes]], grace: float = 10.0
    ) -> None:
        """
        SIGTERM the C{processes}, then SIGKILL those still running after
        C{grace} seconds.
        """
        for process in processes:
            if process.poll() is None:
                process.terminate()
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if all(process.poll() is not None for process in processes):
                return
            await sleep(0.1)
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait(5)

    def killAll(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
        for process in self.processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                log(f"process {process.pid} did not end after SIGKILL")


def cpuSeconds(pid: int) -> float:
    """
    The user and system CPU time of process C{pid} so far.
    """
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat.rpartition(")")[2].split()
    # After the command: state is field 3, utime 14 and stime 15.
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rssMiB(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


# -- bytes sent, from iptables counters ----------------------------------------


class ByteCounters:
    """
    Bytes sent per source address, counted by a dedicated iptables chain
    that OUTPUT jumps to.  Also counts the client side of TCP connections
    to each system's gossip ports: those leave from 127.0.0.1 (neither
    system binds its dialer), so they are known per system, not per node.

    @ivar unavailable: why bytes cannot be counted, or L{None}.
    """

    def __init__(self, addresses: Sequence[str], gossipNets: Sequence[str]) -> None:
        self._addresses = list(addresses)
        self._nets = list(gossipNets)
        self._installed = False
        self.unavailable: str | None = None

    def _iptables(self, *arguments: str, check: bool = True) -> str:
        done = subprocess.run(
            ["iptables", "-w", *arguments],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if check and done.returncode != 0:
            problem = (done.stderr or done.stdout).strip().splitlines()
            raise RuntimeError(
                f"iptables {' '.join(arguments)}: {problem[0] if problem else '?'}"
            )
        return done.stdout

    def install(self) -> None:
        if os.geteuid() != 0:
            self.unavailable = "not running as root"
            return
        if shutil.which("iptables") is None:
            self.unavailable = "no iptables executable"
            return
        self._installed = True
        try:
            self._removeRules()
            self._iptables("-N", CHAIN)
            for address in self._addresses:
                self._iptables("-A", CHAIN, "-s", address, "-j", "RETURN")
            for net in self._nets:
                self._iptables(
                    "-A", CHAIN, "-s", "127.0.0.1", "-d", net, "-p", "tcp",
                    "--dport", str(GOSSIP_PORT), "-j", "RETURN",
                )  # fmt: skip
            self._iptables("-I", "OUTPUT", "1", "-j", CHAIN)
        except (RuntimeError, OSError, subprocess.TimeoutExpired) as e:
            self.unavailable = f"cannot install iptables rules: {e}"
            self.remove()

    def read(self) -> dict[str, int]:
        """
        Bytes so far, by source address, and by gossip net (C{"dial
        <net>"}) for the TCP client sides.
        """
        if self.unavailable is not None:
            return {}
        counted: dict[str, int] = {}
        for line in self._iptables("-L", CHAIN, "-v", "-n", "-x").splitlines()[2:]:
            fields = line.split()
            if len(fields) < 9:
                continue
            source, destination = fields[7], fields[8]
            key = source if destination == "0.0.0.0/0" else f"dial {destination}"
            counted[key] = int(fields[1])
        return counted

    def remove(self) -> None:
        """
        Delete the jump and the chain, if this benchmark made them.
        """
        if self._installed:
            self._removeRules()
            self._installed = False

    def _removeRules(self) -> None:
        for _ in range(10):
            try:
                self._iptables("-D", "OUTPUT", "-j", CHAIN)
            except RuntimeError:
                break
        self._iptables("-F", CHAIN, check=False)
        self._iptables("-X", CHAIN, check=False)


# -- packet loss ------------------------------------------------------------------


def privateNetwork() -> bool:
    """
    Whether this process's network has no interface but loopback, as in a
    namespace made for it (C{unshare -n}): then dropping packets there
    touches nothing else.
    """
    return [name for _, name in socket.if_nameindex()] == ["lo"]


class Loss:
    """
    Drops C{percent} % of gossip packets (to or from port L{GOSSIP_PORT}, UDP
    and TCP) at random, with iptables rules at the top of C{INPUT}, between
    L{on} and L{off}.  Only ever in a private network namespace: checked by
    L{problem}.
    """

    def __init__(self, percent: float) -> None:
        self.percent = percent
        self._rules: list[list[str]] = [
            ["-p", protocol, direction, str(GOSSIP_PORT), "-m", "statistic",
             "--mode", "random", "--probability", f"{percent / 100:.4f}",
             "-j", "DROP"]
            for protocol in ("udp", "tcp")
            for direction in ("--dport", "--sport")
        ]  # fmt: skip
        self._installed: list[list[str]] = []

    def problem(self) -> str | None:
        """
        Why loss cannot be made here, or L{None}.
        """
        if os.geteuid() != 0 or shutil.which("iptables") is None:
            return "--loss needs root and iptables"
        if not privateNetwork():
            return (
                "--loss drops packets on loopback: run the benchmark in a "
                "network namespace of its own (unshare -n, then ip link set lo up)"
            )
        return None

    def on(self) -> None:
        if self.percent <= 0:
            return
        for rule in self._rules:
            subprocess.run(["iptables", "-w", "-I", "INPUT", "1", *rule], check=True)
            self._installed.append(rule)
        log(f"dropping {self.percent:g} % of gossip packets")

    def off(self) -> None:
        while self._installed:
            rule = self._installed.pop()
            subprocess.run(["iptables", "-w", "-D", "INPUT", *rule], check=False)


# -- the two systems ------------------------------------------------------------


@dataclass
class LogPatterns:
    """
    What to count in a system's logs: suspicions raised by a failed probe,
    refutations of a suspicion of oneself, members declared failed.
    """

    suspicions: re.Pattern[str]
    refutations: re.Pattern[str]
    failures: re.Pattern[str]


class System:
    """
    N processes of one system, numbered 1..N; 1 is the seed.
    """

    label = ""
    net = ""
    patterns: LogPatterns

    def __init__(
        self, size: int, workdir: Path, children: Children, profile: str
    ) -> None:
        self.size = size
        self.workdir = workdir
        self.children = children
        self.profile = profile
        self.processes: dict[int, subprocess.Popen[bytes]] = {}
        workdir.mkdir(parents=True, exist_ok=True)

    def name(self, k: int) -> str:
        raise NotImplementedError

    def host(self, k: int) -> str:
        return f"{self.net}.{k}"

    def logPath(self, k: int) -> Path:
        raise NotImplementedError

    def spawn(self, k: int) -> None:
        raise NotImplementedError

    async def members(self, k: int) -> dict[str, str] | None:
        """
        Node C{k}'s members, name to state (C{alive}, C{failed}, ...), or
        L{None} when it does not answer.
        """
        raise NotImplementedError

    async def gossip(self, round: int, k: int) -> tuple[float, Probe]:
        """
        Make one change at node C{k} that only gossip carries; return when
        it was made and a probe that gives the time a node has it, or
        L{None}.
        """
        raise NotImplementedError

    async def discover(self, round: int, k: int) -> tuple[float, Probe]:
        """
        Start a new instance at node C{k}; return as L{gossip} does, the
        probe saying when a node has it ALIVE.
        """
        raise NotImplementedError

    async def restore(self, k: int) -> None:
        """
        Undo L{gossip}'s change at node C{k}, if it needs undoing.
        """

    async def quiesce(self) -> None:
        """
        Drop any connection the benchmark keeps to the nodes, so that the
        idle window carries none of its traffic.
        """

    async def close(self) -> None:
        pass

    def running(self) -> list[int]:
        return [k for k, p in self.processes.items() if p.poll() is None]

    def kill(self, k: int) -> None:
        self.processes[k].kill()
        self.processes[k].wait(5)

    async def stop(self) -> None:
        await self.children.stop(list(self.processes.values()))
        await self.close()


class Sidecar(System):
    label = "sidecar"
    net = OURS_NET
    patterns = LogPatterns(
        re.compile(r"no ack from \S+: suspecting it"),
        re.compile(r"refuting a rumour about this node"),
        re.compile(r"member \S+ failed$"),
    )

    def __init__(
        self, size: int, workdir: Path, children: Children, profile: str
    ) -> None:
        super().__init__(size, workdir, children, profile)
        self.pool = HTTPConnectionPool(reactor, persistent=True)
        self.pool.maxPersistentPerHost = 2
        self.environment = processes.nodeEnvironment()
        self.statics: dict[int, list[dict[str, Any]]] = {}
        self.drained: dict[int, str] = {}

    def name(self, k: int) -> str:
        return f"bench-{k}"

    def directory(self, k: int) -> Path:
        return self.workdir / f"node-{k}"

    def logPath(self, k: int) -> Path:
        return self.directory(k) / "node.log"

    def writeStatic(self, k: int) -> None:
        path = self.directory(k) / "static.json"
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(self.statics[k], indent=1))
        os.replace(temporary, path)

    def spawn(self, k: int) -> None:
        directory = self.directory(k)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "node.toml").write_text(
            f'[node]\nname = "{self.name(k)}"\n'
            f'bind = "{self.host(k)}:{GOSSIP_PORT}"\n'
            f'seeds = ["{self.host(1)}:{GOSSIP_PORT}"]\n'
            f'profile = "{self.profile}"\n\n'
            f'[api]\nlisten = "{self.host(k)}:{API_PORT}"\n\n'
            '[discovery]\nstatic_file = "static.json"\n'
            'static_poll_interval = "1s"\n\n'
            '[log]\nlevel = "info"\n'
        )
        self.statics[k] = [
            {
                "Service": {
                    "Name": "bench-base",
                    "Image": "bench/base:1",
                    "Ports": [{"Type": "tcp", "Port": 9000, "ServicePort": 10001}],
                    "ProxyMode": "http",
                },
                "Check": ALWAYS,
            }
        ]
        self.writeStatic(k)
        self.processes[k] = self.children.spawn(
            [*TWISTD_SIDECAR, "--config=node.toml"],
            self.logPath(k),
            self.environment,
            directory,
        )

    async def get(self, k: int, path: str) -> tuple[int, Any] | None:
        url = f"http://{self.host(k)}:{API_PORT}/api/{path}"
        try:
            response = await treq.get(url, pool=self.pool, timeout=REQUEST_TIMEOUT)
            body = await response.content()
        except Exception:
            return None
        try:
            return response.code, json.loads(body)
        except ValueError:
            return None

    async def members(self, k: int) -> dict[str, str] | None:
        answer = await self.get(k, "members.json")
        if answer is None or answer[0] != 200:
            return None
        return {m["Name"]: m["State"] for m in answer[1]["Members"]}

    async def discover(self, round: int, k: int) -> tuple[float, Probe]:
        service = f"bench-change-{round}"
        hostname = self.name(k)
        self.statics[k].append(
            {
                "Service": {
                    "Name": service,
                    "Image": "bench/change:1",
                    "Ports": [
                        {"Type": "tcp", "Port": 9100 + round, "ServicePort": 11000}
                    ],
                },
                "Check": ALWAYS,
            }
        )
        started = time.time()
        self.writeStatic(k)
        self.processes[k].send_signal(signal.SIGHUP)

        return started, self.probe(service, hostname, Status.ALIVE)

    async def gossip(self, round: int, k: int) -> tuple[float, Probe]:
        hostname = self.name(k)
        answer = await self.get(k, "services/bench-base.json")
        if answer is None or answer[0] != 200:
            raise RuntimeError(f"{hostname} does not list bench-base: {answer}")
        instances = answer[1]["Services"]["bench-base"]
        serviceID = next(i["ID"] for i in instances if i["Hostname"] == hostname)
        url = f"http://{self.host(k)}:{API_PORT}/api/services/{serviceID}/drain"
        started = time.time()
        response = await treq.post(url, pool=self.pool, timeout=REQUEST_TIMEOUT)
        await response.content()
        if response.code != 202:
            raise RuntimeError(f"drain at {hostname}: HTTP {response.code}")
        self.drained[k] = url
        return started, self.probe("bench-base", hostname, Status.DRAINING)

    async def restore(self, k: int) -> None:
        url = self.drained.pop(k, None)
        if url is not None:
            response = await treq.delete(url, pool=self.pool, timeout=REQUEST_TIMEOUT)
            await response.content()

    def probe(self, service: str, hostname: str, status: Status) -> Probe:
        """
        A probe for C{hostname}'s instance of C{service} in C{status}.
        """

        async def probed(j: int) -> float | None:
            answer = await self.get(j, f"services/{service}.json")
            if answer is None or answer[0] != 200:
                return None
            instances = answer[1]["Services"].get(service, [])
            if any(
                i["Hostname"] == hostname and i["Status"] == status for i in instances
            ):
                return time.time()
            return None

        return probed

    async def quiesce(self) -> None:
        await self.pool.closeCachedConnections()

    async def close(self) -> None:
        await self.pool.closeCachedConnections()


HANDLER = """#!/bin/sh
# serf runs this for every "bench" user event: note when it arrived.
payload=$(cat)
echo "$(date +%s.%N) $payload" >> "{directory}/events-$SERF_SELF_NAME.log"
"""


class Serf(System):
    label = "serf"
    net = SERF_NET
    patterns = LogPatterns(
        re.compile(r"memberlist: Suspect \S+"),
        re.compile(r"memberlist: Refuting a suspect message"),
        re.compile(r"serf: EventMemberFailed"),
    )

    def __init__(
        self, size: int, workdir: Path, children: Children, profile: str
    ) -> None:
        super().__init__(size, workdir, children, profile)
        self.handler = workdir / "handler.sh"
        self.handler.write_text(HANDLER.format(directory=workdir))
        self.handler.chmod(0o755)
        self.serf = shutil.which("serf") or "serf"

    def name(self, k: int) -> str:
        return f"serf-{k}"

    def logPath(self, k: int) -> Path:
        return self.workdir / f"{self.name(k)}.log"

    def rpc(self, k: int) -> str:
        return f"-rpc-addr={self.host(k)}:{RPC_PORT}"

    def spawn(self, k: int) -> None:
        address = f"{self.host(k)}:{GOSSIP_PORT}"
        arguments = [
            self.serf,
            "agent",
            f"-node={self.name(k)}",
            f"-bind={address}",
            f"-advertise={address}",
            self.rpc(k),
            f"-profile={self.profile}",
            "-log-level=debug",
            f"-event-handler=user:bench={self.handler}",
        ]
        if k != 1:
            arguments.append(f"-join={self.host(1)}:{GOSSIP_PORT}")
        self.processes[k] = self.children.spawn(
            arguments, self.logPath(k), dict(os.environ), self.workdir
        )

    async def command(self, *arguments: str) -> tuple[bytes, int] | None:
        running = getProcessOutputAndValue(self.serf, arguments, env=dict(os.environ))
        running.addTimeout(REQUEST_TIMEOUT, reactor)
        try:
            out, err, code = await running
        except Exception:
            return None
        return out + err, code

    async def members(self, k: int) -> dict[str, str] | None:
        done = await self.command("members", "-format=json", self.rpc(k))
        if done is None or done[1] != 0:
            return None
        try:
            listed = json.loads(done[0])["members"]
        except (ValueError, KeyError):
            return None
        return {m["name"]: m["status"] for m in listed}

    async def discover(self, round: int, k: int) -> tuple[float, Probe]:
        # No services, no checks: the same news as a user event.
        return await self.gossip(round + DISCOVERY_ROUNDS, k)

    async def gossip(self, round: int, k: int) -> tuple[float, Probe]:
        payload = f"change-{round}"
        started = time.time()
        # Without -coalesce=false the agents hold user events back (up to
        # serf's coalescing period) before the handler runs.
        done = await self.command(
            "event", self.rpc(k), "-coalesce=false", "bench", payload
        )
        if done is None or done[1] != 0:
            log(f"serf event failed: {done}")

        async def probe(j: int) -> float | None:
            path = self.workdir / f"events-{self.name(j)}.log"
            try:
                lines = path.read_text().splitlines()
            except FileNotFoundError:
                return None
            for line in lines:
                stamp, _, arrived = line.partition(" ")
                if arrived == payload:
                    return float(stamp)
            return None

        return started, probe


# -- measuring -----------------------------------------------------------------


async def waitForAll(
    nodes: Sequence[int],
    probe: Probe,
    started: float,
    timeout: float,
    every: float,
    rounds: list[float] | None = None,
) -> dict[int, float]:
    """
    Probe every node in C{nodes}, a round at a time (at most L{CONCURRENCY}
    probes in flight), at most every C{every} seconds, until each has
    given a time or C{timeout} seconds have passed.  Each round's duration
    is appended to C{rounds}, when given: a node's time is at most that
    much later than when it really had what was probed for.

    @return: for each node that gave one, its time minus C{started}.
    """
    arrived: dict[int, float] = {}
    pending = list(nodes)
    limit = defer.DeferredSemaphore(CONCURRENCY)
    deadline = time.monotonic() + timeout

    def one(k: int) -> defer.Deferred[None]:
        async def probed() -> None:
            at = await probe(k)
            if at is not None:
                arrived[k] = at - started

        return defer.ensureDeferred(probed())

    while pending and time.monotonic() < deadline:
        began = time.monotonic()
        await defer.gatherResults([limit.run(one, k) for k in pending])
        pending = [k for k in pending if k not in arrived]
        if rounds is not None:
            rounds.append(time.monotonic() - began)
        pause = every - (time.monotonic() - began)
        if pending and pause > 0:
            await sleep(pause)
    return arrived


@dataclass
class Results:
    """
    One system's figures; L{None} where a phase timed out.
    """

    answering: float | None = None
    join: float | None = None
    gossip: list[float | None] = field(default_factory=list)
    discovery: list[float | None] = field(default_factory=list)
    detection: list[float | None] = field(default_factory=list)
    suspicions: int = 0
    refutations: int = 0
    failures: int = 0
    rss: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    sent: list[float] = field(default_factory=list)
    sentWithDials: float | None = None
    duration: float = 0.0
    # How long each round of polls for a change took.
    pollRounds: list[float] = field(default_factory=list)
    # Per node, for results.json: RSS (MiB), CPU (%) and bytes sent (B/s).
    nodes: dict[str, dict[str, float]] = field(default_factory=dict)


async def measure(
    system: System,
    counters: ByteCounters,
    idle: float,
    repeats: int,
    kills: int,
    loss: Loss,
) -> Results:
    results = Results()
    began = time.monotonic()
    size = system.size
    everyone = list(range(1, size + 1))
    names = {system.name(k) for k in everyone}

    # 1. Join: the seed first, then all others together.
    log(f"{system.label}: starting the seed")
    system.spawn(1)
    seed = await waitForAll([1], lambda k: answered(system, k), time.time(), 30, 0.1)
    if not seed:
        raise RuntimeError(f"{system.label}: the seed did not answer within 30 s")
    log(f"{system.label}: starting {size - 1} more")
    for k in everyone[1:]:
        system.spawn(k)
    started = time.time()
    firstAnswer: dict[int, float] = {}

    async def converged(k: int) -> float | None:
        members = await system.members(k)
        if members is None:
            return None
        firstAnswer.setdefault(k, time.time() - started)
        alive = {name for name, state in members.items() if state == "alive"}
        return time.time() if names <= alive else None

    joined = await waitForAll(everyone, converged, started, 60 + 2 * size, 0.25)
    if len(firstAnswer) == size:
        results.answering = max(firstAnswer.values())
    if len(joined) == size:
        results.join = max(joined.values())
    log(
        f"{system.label}: {len(joined)}/{size} converged, join {fmt(results.join, 's')}"
    )
    await sleep(SETTLE)

    # 2. Propagation: gossip alone, then discovery end to end.
    every = 0.01 if isinstance(system, Serf) else 0.02
    measures = [
        ("gossip", system.gossip, results.gossip),
        ("discovery", system.discover, results.discovery),
    ]
    for what, change, times in measures:
        for round in range(repeats):
            at = 2 + round % (size - 1)
            changed, probe = await change(round, at)
            reached = await waitForAll(
                everyone, probe, changed, 30, every, results.pollRounds
            )
            times.append(max(reached.values()) if len(reached) == size else None)
            log(
                f"{system.label}: {what} {round + 1} from node {at} reached "
                f"{len(reached)}/{size} in {fmt(times[-1], 's')}"
            )
            await system.restore(at)
            await sleep(1)

    # 3. The idle window: nothing polls.  Loss, if any, from here on.
    await system.quiesce()
    loss.on()
    await sleep(SETTLE_BEFORE_IDLE)
    log(f"{system.label}: idle for {idle:g} s")
    pids = {k: system.processes[k].pid for k in everyone}
    offsets = {k: system.logPath(k).stat().st_size for k in everyone}
    cpuBefore = {k: cpuSeconds(pid) for k, pid in pids.items()}
    bytesBefore = counters.read()
    windowStart = time.monotonic()
    await sleep(idle)
    window = time.monotonic() - windowStart
    bytesAfter = counters.read()
    cpuAfter = {k: cpuSeconds(pid) for k, pid in pids.items()}
    results.rss = [rssMiB(pid) for pid in pids.values()]
    results.cpu = [100 * (cpuAfter[k] - cpuBefore[k]) / window for k in everyone]
    for k in everyone:
        with system.logPath(k).open("rb") as logFile:
            logFile.seek(offsets[k])
            text = logFile.read().decode(errors="replace")
        for line in text.splitlines():
            patterns = system.patterns
            results.suspicions += bool(patterns.suspicions.search(line))
            results.refutations += bool(patterns.refutations.search(line))
            results.failures += bool(patterns.failures.search(line))
    if counters.unavailable is None:

        def sent(key: str) -> float:
            return (bytesAfter.get(key, 0) - bytesBefore.get(key, 0)) / window

        results.sent = [sent(system.host(k)) for k in everyone]
        dials = sent(f"dial {system.net}.0/24")
        results.sentWithDials = (sum(results.sent) + dials) / size
    for i, k in enumerate(everyone):
        results.nodes[system.name(k)] = {
            "rss": results.rss[i],
            "cpu": results.cpu[i],
            **({"sent": results.sent[i]} if results.sent else {}),
        }

    # 4. Failure detection: SIGKILL non-seed nodes, the last first.
    bound = detectionBound(PROFILES[system.profile], size) + DETECTION_SLACK
    for victim in range(size, max(1, size - kills), -1):
        survivors = [k for k in system.running() if k != victim]
        target = system.name(victim)
        log(f"{system.label}: SIGKILL {target}")
        killed = time.time()
        system.kill(victim)

        async def failed(k: int, target: str = target) -> float | None:
            members = await system.members(k)
            if members is not None and members.get(target) == "failed":
                return time.time()
            return None

        detected = await waitForAll(survivors, failed, killed, bound, 0.25)
        results.detection.append(
            max(detected.values()) if len(detected) == len(survivors) else None
        )
        log(
            f"{system.label}: {len(detected)}/{len(survivors)} list {target} "
            f"as failed, in {fmt(results.detection[-1], 's')}"
        )
        await sleep(1)

    loss.off()
    log(f"{system.label}: stopping")
    await system.stop()
    results.duration = time.monotonic() - began
    return results


async def answered(system: System, k: int) -> float | None:
    return time.time() if await system.members(k) is not None else None


# -- the table -------------------------------------------------------------------


def fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "timeout"
    if unit == "B/s":
        return f"{value:,.0f}"
    if unit == "%":
        return f"{value:.2f}"
    if unit == "MiB":
        return f"{value:.1f}"
    if unit == "n":
        return f"{value:.0f}"
    return f"{value:.3f}" if value < 10 else f"{value:.2f}"


def summary(values: Sequence[float | None], how: str) -> float | None:
    """
    The median or max of C{values}; L{None} if any is missing (a timeout
    makes the max unknown, and the median only a bound).
    """
    if not values or any(v is None for v in values):
        return None
    known = [v for v in values if v is not None]
    return statistics.median(known) if how == "median" else max(known)


def ratio(ours: float | None, theirs: float | None) -> str:
    if ours is None or theirs is None:
        return "n/a"
    if theirs == 0:
        return "-" if ours == 0 else "inf"
    return f"{ours / theirs:.2f}"


def table(
    ours: Results, serf: Results, counters: ByteCounters, idle: float
) -> list[str]:
    Row = tuple[str, float | None, float | None, str]
    rows: list[Row] = [
        ("all processes answering (s)", ours.answering, serf.answering, "s"),
        ("join convergence (s)", ours.join, serf.join, "s"),
    ]

    def spread(label: str, a: Sequence[float | None], b: Sequence[float | None],
               unit: str) -> list[Row]:  # fmt: skip
        return [
            (label.format(how), summary(a, how), summary(b, how), unit)
            for how in ("median", "max")
        ]

    rows += spread("gossip propagation {} (s)", ours.gossip, serf.gossip, "s")
    rows += spread("new instance ALIVE {} (s)", ours.discovery, serf.discovery, "s")
    rows += spread("failure detection {} (s)", ours.detection, serf.detection, "s")
    rows += [
        (f"suspicions, idle {idle:g} s", ours.suspicions, serf.suspicions, "n"),
        (f"refutations, idle {idle:g} s", ours.refutations, serf.refutations, "n"),
        (f"members failed, idle {idle:g} s", ours.failures, serf.failures, "n"),
    ]
    rows += spread("RSS per node {} (MiB)", ours.rss, serf.rss, "MiB")
    rows += spread("CPU per node {} (% of a core)", ours.cpu, serf.cpu, "%")
    if counters.unavailable is None:
        rows += spread("sent per node {} (B/s)", ours.sent, serf.sent, "B/s")
        rows.append(
            ("sent per node, with dials (B/s)", ours.sentWithDials,
             serf.sentWithDials, "B/s")
        )  # fmt: skip
    lines = [f"{'':<38}{'sidecar':>12}{'serf':>12}{'ratio':>8}"]
    for label, a, b, unit in rows:
        lines.append(f"{label:<38}{fmt(a, unit):>12}{fmt(b, unit):>12}{ratio(a, b):>8}")
    if counters.unavailable is not None:
        lines.append(f"{'bytes sent per node':<38}{'n/a':>12}{'n/a':>12}{'n/a':>8}")
        lines.append(f"  ({counters.unavailable})")
    return lines


def details(label: str, results: Results) -> str:
    def listed(values: Sequence[float | None]) -> str:
        return ", ".join(fmt(v, "s") for v in values)

    return (
        f"{label}: gossip [{listed(results.gossip)}] s; "
        f"discovery [{listed(results.discovery)}] s; "
        f"detection [{listed(results.detection)}] s; "
        f"change poll round {1000 * statistics.mean(results.pollRounds):.0f} ms "
        f"on average; "
        f"phases took {results.duration:.0f} s"
    )


# -- running ---------------------------------------------------------------------


def parseArguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="N sidecar nodes against N serf agents on loopback."
    )
    parser.add_argument("size", nargs="?", type=int, default=10, help="N (3-250)")
    parser.add_argument("--profile", choices=sorted(PROFILES), default="lan")
    parser.add_argument(
        "--idle", type=float, default=60.0, help="idle window in seconds"
    )
    parser.add_argument(
        "--repeats", type=int, default=5, help="propagations per measure and system"
    )
    parser.add_argument(
        "--kills", type=int, default=3, help="failure detections per system"
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the logs and configurations"
    )
    parser.add_argument(
        "--loss",
        type=float,
        default=0.0,
        metavar="PERCENT",
        help="drop this share of gossip packets in the idle and detection "
        "phases (in a network namespace of its own only)",
    )
    options = parser.parse_args(argv)
    if not 3 <= options.size <= 250:
        parser.error("N must be between 3 and 250")
    if not 1 <= options.repeats <= DISCOVERY_ROUNDS or options.idle <= 0:
        parser.error(f"--repeats must be 1-{DISCOVERY_ROUNDS} and --idle positive")
    if not 0 <= options.loss < 100:
        parser.error("--loss must be from 0 to under 100")
    options.kills = max(1, min(options.kills, options.size - 2))
    return options


def serfVersion() -> str:
    try:
        done = subprocess.run(
            ["serf", "version"], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return done.stdout.splitlines()[0] if done.stdout else "unknown"


async def run(
    options: argparse.Namespace,
    children: Children,
    counters: ByteCounters,
    workdir: Path,
    loss: Loss,
) -> None:
    size = options.size
    started = time.monotonic()
    date = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    counters.install()
    if counters.unavailable is not None:
        log(f"bytes sent: n/a ({counters.unavailable})")
    ours = await measure(
        Sidecar(size, workdir / "sidecar", children, options.profile),
        counters,
        options.idle,
        options.repeats,
        options.kills,
        loss,
    )
    serf = await measure(
        Serf(size, workdir / "serf", children, options.profile),
        counters,
        options.idle,
        options.repeats,
        options.kills,
        loss,
    )
    lossy = f", {options.loss:g} % gossip loss when idle and on kills"
    print(
        f"cluster benchmark, {date}: N={size}, profile {options.profile}, "
        f"idle {options.idle:g} s, {options.repeats} changes, "
        f"{options.kills} kills{lossy if options.loss else ''}; "
        f"{os.cpu_count()} CPUs, "
        f"Python {sys.version.split()[0]}, serf {serfVersion()}"
    )
    print("\n".join(table(ours, serf, counters, options.idle)))
    print(details("sidecar", ours))
    print(details("serf", serf))
    print(f"total {time.monotonic() - started:.0f} s")
    (workdir / "results.json").write_text(
        json.dumps({"sidecar": asdict(ours), "serf": asdict(serf)}, indent=1)
    )


def main(argv: Sequence[str] | None = None) -> None:
    options = parseArguments(argv)
    loss = Loss(options.loss)
    if options.loss and (problem := loss.problem()) is not None:
        sys.exit(f"cluster.py: {problem}")
    workdir = Path(tempfile.mkdtemp(prefix="sidecar-bench-"))
    children = Children()
    addresses = [
        f"{net}.{k}" for net in (OURS_NET, SERF_NET) for k in range(1, options.size + 1)
    ]
    counters = ByteCounters(addresses, [f"{OURS_NET}.0/24", f"{SERF_NET}.0/24"])
    finished: list[bool] = []

    async def runAndNote() -> None:
        await run(options, children, counters, workdir, loss)
        finished.append(True)

    try:
        task.react(lambda _: defer.ensureDeferred(runAndNote()))
    finally:
        if not finished:
            log("interrupted or failed: stopping every process started")
        loss.off()
        children.killAll()
        counters.remove()
        if options.keep:
            log(f"logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
        if not finished:
            sys.exit(1)


if __name__ == "__main__":
    main()
