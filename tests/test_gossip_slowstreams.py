"""
Hostile TCP streams against running nodes on loopback: slow streams from
many addresses against a node process whose file descriptors are capped
(C{prlimit}), with and without a gossip key; and streams whose parsing
would be quadratic against an in-process node.  The node keeps its fds,
its memory, its API, its health checks and its place in the cluster.
"""

from __future__ import annotations

import json
import shutil
import signal
import struct
import subprocess
from pathlib import Path
from typing import Any

import msgpack
import treq
from twisted.internet import defer, protocol, reactor, task
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.trial.unittest import SkipTest, TestCase

from sidecar.gossip.messages import MessageType, PushPullHeader
from sidecar.gossip.streams import PushPull, parseStream

from .inprocess import gossipPort, startNode
from .processes import NodeProcess, freePort, pollUntil
from .processes import startNode as startNodeProcess

KEY = "AAECAwQFBgcICQoLDA0ODw=="  # bytes(range(16))
FD_LIMIT = 160
SOURCES = [f"127.0.2.{n}" for n in range(1, 41)]  # 40 x 8 streams each


def slowStreamOpening(encrypted: bool) -> bytes:
    """
    The start of a stream that announces nearly 10 MiB, then 64 KiB of
    it: what a slow-loris client sends before it goes quiet.
    """
    if encrypted:
        header = bytes([MessageType.ENCRYPT]) + struct.pack(">I", 10 * 1024 * 1024)
    else:
        header = PushPullHeader(nodes=0, userStateLen=10 * 1024 * 1024 - 100).encode()
    return header + b"\x00" * 65536


class _SlowClient(protocol.Protocol):
    """
    Sends the opening, then holds the connection open and silent; when
    the node closes it, the attacker connects again while it is running.
    """

    def __init__(self, attack: _SlowLoris, source: str) -> None:
        self._attack = attack
        self._source = source
        self.closed: defer.Deferred[None] = defer.Deferred()

    def connectionMade(self) -> None:
        self._attack.opened += 1
        self.transport.write(self._attack.opening)  # type: ignore[union-attr]

    def connectionLost(self, reason: object = None) -> None:
        self.closed.callback(None)
        self._attack.lost(self, self._source)


class _SlowLoris:
    def __init__(self, host: str, port: int, opening: bytes) -> None:
        self._host, self._port = host, port
        self.opening = opening
        self.running = True
        self.opened = 0
        self._clients: set[_SlowClient] = set()
        self._connecting: set[defer.Deferred[Any]] = set()

    def start(self) -> None:
        for source in SOURCES:
            for _ in range(8):
                self.again(source)

    def again(self, source: str) -> None:
        if not self.running:
            return
        endpoint = TCP4ClientEndpoint(
            reactor, self._host, self._port, timeout=5, bindAddress=(source, 0)
        )
        client = _SlowClient(self, source)
        self._clients.add(client)
        connecting = connectProtocol(endpoint, client)
        self._connecting.add(connecting)
        connecting.addBoth(self._connected, connecting)

    def _connected(self, result: object, connecting: defer.Deferred[Any]) -> None:
        self._connecting.discard(connecting)

    def lost(self, client: _SlowClient, source: str) -> None:
        self._clients.discard(client)
        self.again(source)

    async def stop(self) -> None:
        """
        Stop, and wait until every connection of the attacker is closed.
        """
        self.running = False
        for connecting in list(self._connecting):
            connecting.cancel()
        closing = []
        for client in list(self._clients):
            if client.transport is not None:
                closing.append(client.closed)
                client.transport.abortConnection()  # type: ignore[attr-defined]
        await defer.gatherResults(closing)


def rss(pid: int) -> int:
    """
    A process's resident memory, in bytes.
    """
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


class SlowStreamTests(TestCase):
    timeout = 120

    async def get(self, url: str) -> Any:
        response = await treq.get(url, persistent=False, timeout=5)
        self.assertEqual(response.code, 200, url)
        return await response.json()

    def writeNode(
        self, name: str, host: str, port: int, api: int, lines: list[str]
    ) -> str:
        directory = Path(self.mktemp()).resolve()
        directory.mkdir()
        check = {"Type": "HttpGet", "Args": f"http://{host}:{api}/api/health"}
        service = {"Name": f"svc-{name}", "Ports": [{"Port": 9000}]}
        (directory / "static.json").write_text(
            json.dumps([{"Service": service, "Check": check}])
        )
        (directory / "node.toml").write_text(
            "\n".join(
                [
                    "[node]",
                    f'name = "{name}"',
                    f'bind = "{host}:{port}"',
                    'profile = "local"',
                    *lines,
                    "[api]",
                    f'listen = "{host}:{api}"',
                    "[health]",
                    'interval = "200ms"',
                    # Three failures in a row: a machine busy with the
                    # attacker may delay one check, but not exhaust fds.
                    'timeout = "2s"',
                    "fall = 3",
                ]
            )
            + "\n"
        )
        return str(directory / "node.toml")

    async def startNode(self, config: str) -> NodeProcess:
        node = startNodeProcess(config)
        self.addCleanup(self.kill, node)
        await node.listening
        return node

    async def kill(self, node: NodeProcess) -> None:
        if not node.ended.called:
            node.transport.signalProcess(signal.SIGKILL)  # type: ignore[union-attr]
        await node.ended

    async def serviceStatuses(self, api: str) -> dict[str, int]:
        body = await self.get(f"{api}/services.json")
        return {
            instance["Hostname"]: instance["Status"]
            for instances in body["Services"].values()
            for instance in instances
        }

    async def attackAndCheck(self, encrypted: bool) -> None:
        if shutil.which("prlimit") is None:
            raise SkipTest("prlimit (util-linux) is not installed")
        keyLines = [f'encrypt_key = "{KEY}"'] if encrypted else []
        hostA, hostB = "127.0.1.1", "127.0.1.2"
        portA, apiA = freePort(hostA), freePort(hostA, udp=False)
        portB, apiB = freePort(hostB), freePort(hostB, udp=False)
        a = await self.startNode(self.writeNode("a", hostA, portA, apiA, keyLines))
        subprocess.run(
            ["prlimit", f"--pid={a.transport.pid}", f"--nofile={FD_LIMIT}"],  # type: ignore[union-attr]
            check=True,
        )
        await self.startNode(
            self.writeNode(
                "b", hostB, portB, apiB, [*keyLines, f'seeds = ["{hostA}:{portA}"]']
            )
        )
        apiOfA, apiOfB = f"http://{hostA}:{apiA}/api", f"http://{hostB}:{apiB}/api"

        async def settled() -> bool | None:
            statuses = await self.serviceStatuses(apiOfB)
            return True if statuses == {"a": 0, "b": 0} else None

        await pollUntil(settled, timeout=30)
        before = rss(a.transport.pid)  # type: ignore[union-attr]

        attack = _SlowLoris(hostA, portA, slowStreamOpening(encrypted))
        self.addCleanup(attack.stop)  # a second stop is harmless
        attack.start()
        slowest, grew = 0.0, 0
        # Five seconds of it: five times the node's stream deadline.
        for _ in range(25):
            started = reactor.seconds()  # type: ignore[attr-defined]
            await self.get(f"{apiOfA}/health")
            slowest = max(slowest, reactor.seconds() - started)  # type: ignore[attr-defined]
            grew = max(grew, rss(a.transport.pid) - before)  # type: ignore[union-attr]
            members = await self.get(f"{apiOfB}/members.json")
            states = {m["Name"]: m["State"] for m in members["Members"]}
            self.assertEqual(states, {"a": "alive", "b": "alive"})
            self.assertEqual(await self.serviceStatuses(apiOfB), {"a": 0, "b": 0})
            self.assertEqual(await self.serviceStatuses(apiOfA), {"a": 0, "b": 0})
            await task.deferLater(reactor, 0.2)  # type: ignore[arg-type]
        await attack.stop()
        # The attacker got through the listener many times over...
        self.assertGreater(attack.opened, len(SOURCES) * 8)
        # ...and the node held only what its bounds allow.
        self.assertLess(slowest, 2.0)
        self.assertLess(grew, 40 * 1024 * 1024)
        # Refused and expired streams are counted where an operator sees.
        metrics = await treq.get(
            f"http://{hostA}:{apiA}/metrics", persistent=False, timeout=5
        )
        text = (await metrics.text()).splitlines()
        [dropped] = [
            line
            for line in text
            if line.startswith("sidecar_gossip_streams_dropped_total ")
        ]
        self.assertGreater(float(dropped.split()[-1]), len(SOURCES))

    async def test_slowStreamsUnderAnFdLimit(self) -> None:
        await self.attackAndCheck(encrypted=False)

    async def test_slowSealedStreamsUnderAnFdLimit(self) -> None:
        await self.attackAndCheck(encrypted=True)


class _Sender(protocol.Protocol):
    def __init__(self, data: bytes) -> None:
        self._data = data
        self.reply = b""
        self.closed: defer.Deferred[None] = defer.Deferred()

    def connectionMade(self) -> None:
        self.transport.write(self._data)  # type: ignore[union-attr]

    def dataReceived(self, data: bytes) -> None:
        self.reply += data

    def connectionLost(self, reason: object = None) -> None:
        self.closed.callback(None)


class QuadraticStreamTests(TestCase):
    async def test_largeStreamsDoNotStallTheNode(self) -> None:
        # Three 4 MiB push-pulls of 110,000 small node states each: parsed
        # again on every read, they held the reactor for seconds.
        node = startNode(self, "host-a", "127.0.1.1", ['profile = "local"'])
        port = gossipPort(node)
        state = msgpack.packb(
            {"Name": "n", "Addr": b"\x7f\0\0\1", "Port": 1, "Incarnation": 1},
            use_bin_type=False,
        )
        header = PushPullHeader(nodes=110_000, userStateLen=0).encode()
        stream = header + state * 110_000
        self.assertGreater(len(stream), 3 * 1024 * 1024)

        gaps: list[float] = []
        last = [reactor.seconds()]  # type: ignore[attr-defined]

        def tick() -> None:
            now = reactor.seconds()  # type: ignore[attr-defined]
            gaps.append(now - last[0])
            last[0] = now

        ticker = task.LoopingCall(tick)
        ticker.start(0.01)
        self.addCleanup(ticker.stop)
        endpoint = TCP4ClientEndpoint(reactor, "127.0.1.1", port)
        senders = [_Sender(stream) for _ in range(3)]
        for sender in senders:
            await connectProtocol(endpoint, sender)
        for sender in senders:
            await sender.closed.addTimeout(30, reactor)
        api = node.api.port.getHost()  # type: ignore[union-attr]
        response = await treq.get(
            f"http://{api.host}:{api.port}/api/health", persistent=False, timeout=5
        )
        self.assertEqual(response.code, 200)
        self.assertLess(max(gaps), 0.5)
        cluster = node.gossip.cluster
        assert cluster is not None
        self.assertEqual([m.name for m in cluster.members.all()], ["host-a"])

    async def test_aLegitimateLargePushPullStillArrives(self) -> None:
        # The most members a push-pull may list, with large metadata: about
        # 2 MiB, answered like any push-pull.
        node = startNode(self, "host-a", "127.0.1.1", ['profile = "local"'])
        port = gossipPort(node)
        states = [
            msgpack.packb(
                {
                    "Name": f"member-{n}",
                    "Addr": bytes([127, 0, 4 + n // 250, 1 + n % 250]),
                    "Port": 7946,
                    "Incarnation": 1,
                    "Meta": b"m" * 500,
                    "State": 3,  # left: merged, not probed
                },
                use_bin_type=False,
            )
            for n in range(4096)
        ]
        header = PushPullHeader(
            nodes=4096, userStateLen=0, clusterName="default"
        ).encode()
        sender = _Sender(header + b"".join(states))
        await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.1.1", port), sender)
        await sender.closed.addTimeout(30, reactor)
        reply = parseStream(sender.reply)
        assert isinstance(reply, PushPull)
        self.assertEqual(reply.states[0].name, "host-a")
