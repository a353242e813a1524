"""
Hostile-input benchmark: what a sender that is no member costs a node.

    PYTHONPATH=. .venv/bin/python bench/hostile.py [--seconds 60]

Three nodes (C{twistd -n sidecar}, profile C{lan}, no key) run on
127.0.5.1-3: the target serves its API and gossips with the two others.
The benchmark measures C{--seconds} without a hostile sender, then as long
again while a sender process on 127.0.6.x runs a fixed mix at the target's
gossip port: mutated packets, floods of new members, slow streams from 16
addresses and oversized streams.  Printed for both runs: the target's API
p99 latency (C{/api/services.json}, one client back to back), its RSS
growth, the probes of the target its peers saw fail (each starts a
suspicion the target refutes: its log's refutations), and false suspicions
(refutations by any node: none is down).  Nothing is asserted; the targets
are in docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import random
import socket
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import treq
from cluster import TWISTD_SIDECAR, Children, log, printRows, rssMiB, sleep
from twisted.internet import defer, protocol, reactor, task
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol

from sidecar.demo.processes import freePort, nodeEnvironment
from sidecar.gossip.messages import Alive, Ping, PushPullHeader
from sidecar.gossip.packets import makeCompound

HOSTS = ("127.0.5.1", "127.0.5.2", "127.0.5.3")
NAMES = ("target", "peer-1", "peer-2")
SENDER = "127.0.6.1"
SLOW_SOURCES = [f"127.0.6.{n}" for n in range(2, 18)]
# The mix, per 10 ms tick: mutated packets, and fake members in one compound.
MUTATED, FLOOD = 10, 10
REFUTATION = "refuting a rumour about this node"


REFUSALS = (
    "sidecar_gossip_packets_dropped_total",
    "sidecar_gossip_streams_dropped_total",
    "sidecar_gossip_members_refused_total",
)


@dataclass
class Figures:
    p99: float
    rssGrowth: float
    failedProbesOfTarget: int
    suspicions: int
    refused: list[float]


# -- the nodes -------------------------------------------------------------------


def writeNode(directory: Path, index: int, ports: list[tuple[int, int]]) -> None:
    directory.mkdir()
    targets = [
        {
            "Service": {"Name": f"svc-{n}", "Ports": [{"Port": 20000 + n}]},
            "Check": {"Type": "AlwaysSuccessful"},
        }
        for n in range(20 if index == 0 else 2)
    ]
    (directory / "static.json").write_text(json.dumps(targets))
    gossip, api = ports[index]
    seeds = "" if index == 0 else f'seeds = ["{HOSTS[0]}:{ports[0][0]}"]\n'
    (directory / "node.toml").write_text(
        f'[node]\nname = "{NAMES[index]}"\nbind = "{HOSTS[index]}:{gossip}"\n{seeds}'
        f'[api]\nlisten = "{HOSTS[index]}:{api}"\n[log]\nlevel = "info"\n'
    )


async def getText(url: str) -> str:
    response = await treq.get(url, persistent=False, timeout=10)
    return str(await response.text())


async def refusals(host: str, api: int) -> list[float]:
    """
    What the node has refused so far: packets, streams, member news.
    """
    lines = (await getText(f"http://{host}:{api}/metrics")).splitlines()
    values = {
        line.split()[0]: float(line.split()[-1]) for line in lines if line[:1] != "#"
    }
    return [values.get(name, 0.0) for name in REFUSALS]


def refutations(workdir: Path) -> list[int]:
    """
    How many times each node has refuted a suspicion of itself so far.
    """
    return [
        (workdir / f"node-{index}" / "node.log").read_text().count(REFUTATION)
        for index in range(len(HOSTS))
    ]


async def measure(
    seconds: float, ports: list[tuple[int, int]], target: Any, workdir: Path
) -> Figures:
    url = f"http://{HOSTS[0]}:{ports[0][1]}/api/services.json"
    rssBefore = rssMiB(target.pid)
    refutedBefore = refutations(workdir)
    refusedBefore = await refusals(HOSTS[0], ports[0][1])
    latencies: list[float] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        started = time.perf_counter()
        await getText(url)
        latencies.append(time.perf_counter() - started)
        await sleep(0.01)
    ordered = sorted(latencies)
    refuted = [
        after - before
        for before, after in zip(refutedBefore, refutations(workdir), strict=True)
    ]
    return Figures(
        p99=1000 * ordered[min(len(ordered) - 1, round(0.99 * len(ordered)))],
        rssGrowth=rssMiB(target.pid) - rssBefore,
        failedProbesOfTarget=refuted[0],
        suspicions=sum(refuted),
        refused=[
            after - before
            for before, after in zip(
                refusedBefore, await refusals(HOSTS[0], ports[0][1]), strict=True
            )
        ],
    )


async def run(arguments: argparse.Namespace, workdir: Path) -> None:
    children = Children()
    environ = nodeEnvironment()
    ports = [(freePort(host), freePort(host, udp=False)) for host in HOSTS]
    try:
        nodes = []
        for index in range(3):
            directory = workdir / f"node-{index}"
            writeNode(directory, index, ports)
            nodes.append(
                children.spawn(
                    [*TWISTD_SIDECAR, "--config=node.toml"],
                    directory / "node.log",
                    environ,
                    directory,
                )
            )
        await waitForCluster(ports)
        log(f"cluster formed; {arguments.seconds:.0f} s without a sender")
        quiet = await measure(arguments.seconds, ports, nodes[0], workdir)
        log(f"{arguments.seconds:.0f} s with the hostile sender")
        sender = children.spawn(
            [sys.executable, __file__, "--sender", HOSTS[0], str(ports[0][0])],
            workdir / "sender.log",
            environ,
            workdir,
        )
        hostile = await measure(arguments.seconds, ports, nodes[0], workdir)
        await children.stop([sender])
        printRows(
            [
                ("figure", "without sender / with sender"),
                ("API p99", f"{quiet.p99:.1f} ms / {hostile.p99:.1f} ms"),
                (
                    "target RSS growth",
                    f"{quiet.rssGrowth:.1f} MiB / {hostile.rssGrowth:.1f} MiB",
                ),
                (
                    "peers' failed probes",
                    f"{quiet.failedProbesOfTarget} / {hostile.failedProbesOfTarget}",
                ),
                (
                    "false suspicions",
                    f"{quiet.suspicions} / {hostile.suspicions}",
                ),
                (
                    "refused: packets, streams, members",
                    " / ".join(
                        ", ".join(f"{n:.0f}" for n in figures.refused)
                        for figures in (quiet, hostile)
                    ),
                ),
            ]
        )
    finally:
        children.killAll()


async def waitForCluster(ports: list[tuple[int, int]]) -> None:
    deadline = time.monotonic() + 60
    url = f"http://{HOSTS[0]}:{ports[0][1]}/api/members.json"
    while time.monotonic() < deadline:
        try:
            members = json.loads(await getText(url))["Members"]
        except Exception:
            members = []
        if sorted(m["Name"] for m in members if m["State"] == "alive") == sorted(NAMES):
            return
        await sleep(0.5)
    raise RuntimeError("the three nodes never formed a cluster")


# -- the hostile sender (a child process) ------------------------------------------


class _Slow(protocol.Protocol):
    """
    A slow stream: a push-pull that announces 10 MiB, one byte a second.
    """

    def __init__(self, reopen: Any) -> None:
        self._reopen = reopen
        self._drip = task.LoopingCall(self._byte)

    def connectionMade(self) -> None:
        header = PushPullHeader(nodes=0, userStateLen=10 * 1024 * 1024)
        self.transport.write(header.encode())  # type: ignore[union-attr]
        self._drip.start(1.0, now=False)

    def _byte(self) -> None:
        self.transport.write(b"\x00")  # type: ignore[union-attr]

    def connectionLost(self, reason: object = None) -> None:
        if self._drip.running:
            self._drip.stop()
        self._reopen()


def hostilePackets(rng: random.Random, tick: int) -> list[bytes]:
    valid = [
        Ping(seqNo=1, node="target").encode(),
        Alive(2, "x", b"\x7f\x00\x06\x09", 7946, vsn=b"\x01\x05\x04").encode(),
    ]
    packets = []
    for _ in range(MUTATED):
        packet = bytearray(rng.choice(valid))
        for _ in range(rng.randrange(1, 4)):
            packet[rng.randrange(len(packet))] = rng.randrange(256)
        packets.append(bytes(packet))
    fakes = [
        Alive(
            1,
            f"fake-{tick}-{n}",
            bytes([127, 0, 7, n + 1]),
            7946,
            clusterName="default",
        ).encode()
        for n in range(FLOOD)
    ]
    packets.append(makeCompound(fakes))
    return packets


def oversized() -> bytes:
    # 110,000 tiny node states: refused at the header now, re-parsed on
    # every read once.
    state = b"\x84\xa4Name\xa1n\xa4Addr\xc4\x04\x7f\x00\x00\x01\xa4Port\x01"
    state += b"\xabIncarnation\x01"
    header = PushPullHeader(nodes=110_000, userStateLen=0).encode()
    return header + state * 110_000


class _Oversized(protocol.Protocol):
    def connectionMade(self) -> None:
        self.transport.write(oversized())  # type: ignore[union-attr]


def runSender(host: str, port: int) -> None:
    rng = random.Random(7)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind((SENDER, 0))
    udp.setblocking(False)
    ticks = [0]

    def sendPackets() -> None:
        ticks[0] += 1
        for packet in hostilePackets(rng, ticks[0]):
            try:
                udp.sendto(packet, (host, port))
            except BlockingIOError:
                pass

    def slowStream(source: str) -> None:
        endpoint = TCP4ClientEndpoint(
            reactor, host, port, timeout=5, bindAddress=(source, 0)
        )
        again = lambda: reactor.callLater(0.1, slowStream, source)  # noqa: E731
        connectProtocol(endpoint, _Slow(again)).addErrback(lambda _: again())

    def oversizedStream() -> None:
        endpoint = TCP4ClientEndpoint(reactor, host, port, timeout=5)
        connectProtocol(endpoint, _Oversized()).addErrback(lambda _: None)

    task.LoopingCall(sendPackets).start(0.01)
    task.LoopingCall(oversizedStream).start(1.0)
    for source in SLOW_SOURCES:
        for _ in range(4):
            slowStream(source)
    reactor.run()  # type: ignore[attr-defined]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--sender", nargs=2, metavar=("HOST", "PORT"))
    arguments = parser.parse_args()
    if arguments.sender:
        runSender(arguments.sender[0], int(arguments.sender[1]))
        return

    async def inTemporaryDirectory() -> None:
        with tempfile.TemporaryDirectory(prefix="sidecar-hostile-") as directory:
            await run(arguments, Path(directory))

    task.react(lambda _: defer.ensureDeferred(inTemporaryDirectory()))


if __name__ == "__main__":
    main()
