"""
A running node under a stream of bad input on its real gossip port:
random bytes, mutated valid packets, impossible values, oversized and empty
datagrams, garbage and unfinished TCP streams.  Everything is counted and
dropped; the node keeps its members and its catalog, and keeps working.
"""

from __future__ import annotations

import random
import socket

import msgpack
import treq
from twisted.internet import defer, protocol, reactor, task
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.trial.unittest import TestCase

from sidecar.gossip.cluster import NEW_MEMBERS_BURST
from sidecar.gossip.messages import Alive, Dead, NodeState, Ping, Suspect
from sidecar.gossip.packets import addCRC, makeCompound
from sidecar.service import SidecarNode

from .inprocess import gossipPort, startNode
from .processes import pollUntil


def hostilePackets(rng: random.Random) -> list[bytes]:
    valid = [
        Ping(seqNo=1, node="host-a").encode(),
        Alive(2, "host-x", b"\x7f\x00\x01\x09", 7946, vsn=b"\x01\x05\x04").encode(),
        addCRC(makeCompound([Ping(seqNo=2, node="host-a").encode()] * 3)),
    ]
    packets = [b"", b"\x00" * 65_000]
    packets += [rng.randbytes(rng.randrange(1, 1400)) for _ in range(300)]
    for _ in range(300):
        packet = bytearray(rng.choice(valid))
        for _ in range(rng.randrange(1, 4)):
            packet[rng.randrange(len(packet))] = rng.randrange(256)
        packets.append(bytes(packet))
    impossible = [
        {"Node": "host-y", "Addr": b"\x01\x02\x03", "Port": 1},
        {"Node": "host-y", "Addr": b"\x7f\x00\x00\x01", "Port": 99999},
        {"Node": 7, "Addr": b"\x7f\x00\x00\x01"},
        {"Node": "host-y", "Addr": b"\x7f\x00\x00\x01", "Incarnation": -1},
    ]
    packets += [b"\x04" + msgpack.packb(d, use_bin_type=False) for d in impossible]
    packets.append(b"\x07\xff" + b"\x00\x01" * 10)  # a compound that lies
    packets.append(b"\x09" + msgpack.packb({"Algo": 0, "Buf": b"\xff" * 100}))
    return packets


class _Client(protocol.Protocol):
    def __init__(self) -> None:
        self.closed: defer.Deferred[None] = defer.Deferred()

    def connectionLost(self, reason: object = None) -> None:
        self.closed.callback(None)


async def joinedPair(case: TestCase) -> tuple[SidecarNode, SidecarNode]:
    """
    host-a on 127.0.1.1 and host-b on 127.0.1.2, on the local profile,
    once host-b has joined host-a.
    """
    a = startNode(case, "host-a", "127.0.1.1", ['profile = "local"'])
    b = startNode(
        case,
        "host-b",
        "127.0.1.2",
        ['profile = "local"', f'seeds = ["127.0.1.1:{gossipPort(a)}"]'],
    )
    assert b.gossip.joined is not None
    await b.gossip.joined
    return a, b


class HostileInputTests(TestCase):
    async def test_aNodeSurvivesBadPacketsAndStreams(self) -> None:
        a, b = await joinedPair(self)
        port = gossipPort(a)

        packets = hostilePackets(random.Random(4))
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(sender.close)
        sender.bind(("127.0.1.9", 0))
        for index, packet in enumerate(packets):
            sender.sendto(packet, ("127.0.1.1", port))
            if index % 20 == 19:
                # Let the node read, so the socket's buffer does not overflow.
                await task.deferLater(reactor, 0.002)

        endpoint = TCP4ClientEndpoint(reactor, "127.0.1.1", port)
        for stream in (b"\x06\xc1garbage", b"\x0a\xff\xff\xff\xff", b"\x06"):
            client = _Client()
            await connectProtocol(endpoint, client)
            client.transport.write(stream)  # type: ignore[union-attr]
            if stream != b"\x06":
                await client.closed.addTimeout(5, reactor)
            else:
                client.transport.loseConnection()  # type: ignore[union-attr]
                await client.closed.addTimeout(5, reactor)

        protocolA = a.gossip._protocol
        assert protocolA is not None

        def allRead() -> defer.Deferred[bool | None]:
            counters = protocolA.counters
            read = counters.packetsIn >= len(packets) - 1
            return defer.succeed(True if read else None)

        await pollUntil(allRead, timeout=10)
        # Random bytes are all refused; some mutations leave a valid packet.
        self.assertGreater(protocolA.counters.dropped, 400)
        self.assertGreaterEqual(a.gossip._serverFactory.dropped, 2)
        cluster = a.gossip.cluster
        assert cluster is not None
        self.assertNotIn("host-y", [m.name for m in cluster.members.all()])
        self.assertEqual(cluster.members.get("host-b").state, NodeState.ALIVE)  # type: ignore[union-attr]

        # Still working: b's refreshed record reaches a (or a newer one:
        # b's first health check may announce its service meanwhile).
        [service] = b.state.localServices()
        refreshed = b.state.announceLocal(service)

        def refreshedOnA() -> defer.Deferred[bool | None]:
            record = a.state.get("host-b", service.id)
            arrived = record is not None and record.updated >= refreshed.updated
            return defer.succeed(True if arrived else None)

        await pollUntil(refreshedOnA, timeout=5)


class ForgedMembershipTests(TestCase):
    """
    The attacks of tests/test_gossip_boundary.py on real sockets: a sender
    on 127.0.1.9 that is no member forges a maximal incarnation, a dead
    verdict, a leave and a flood of members at two running nodes.
    """

    async def test_forgedRumoursAndAMemberFloodChangeNothing(self) -> None:
        a, b = await joinedPair(self)
        port = gossipPort(a)
        targets = [("127.0.1.1", port), ("127.0.1.2", gossipPort(b))]
        api = a.api.port.getHost()  # type: ignore[union-attr]
        url = f"http://{api.host}:{api.port}/api/services.json"

        async def services() -> dict[str, int]:
            response = await treq.get(url, persistent=False, timeout=5)
            body = await response.json()
            return {
                s["Hostname"]: s["Status"]
                for instances in body["Services"].values()
                for s in instances
            }

        async def bothAlive() -> bool | None:
            return True if await services() == {"host-a": 0, "host-b": 0} else None

        await pollUntil(bothAlive, timeout=10)

        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(sender.close)
        sender.bind(("127.0.1.9", 0))
        rumours = [
            Suspect(0xFFFFFFFF, "host-a", "mallory", "default").encode(),
            Dead(0xFFFFFFFF, "host-b", "mallory", "default").encode(),
            Dead(1, "host-a", "host-a", "default").encode(),
        ]
        for target in targets:
            for rumour in rumours:
                sender.sendto(rumour, target)
        for n in range(0, 3000, 20):
            fakes = [
                Alive(
                    1,
                    f"fake-{n + i}",
                    bytes([127, 0, 3, 1 + i]),
                    7946,
                    clusterName="default",
                ).encode()
                for i in range(20)
            ]
            sender.sendto(makeCompound(fakes), targets[n % 2])
            if n % 400 == 0:
                await task.deferLater(reactor, 0.002)

        # For several suspicion timeouts of the local profile, nothing
        # changes for the API and routing; no member is declared gone (a
        # rumour may hold one suspect until its refutation), and the fakes
        # admitted stay within the stranger's budget.
        def states() -> list[NodeState]:
            found = []
            for node in (a, b):
                cluster = node.gossip.cluster
                assert cluster is not None
                admitted = len(cluster.members) - 2
                self.assertLessEqual(admitted, 2 * (NEW_MEMBERS_BURST + 4 * 10))
                for name in ("host-a", "host-b"):
                    member = cluster.members.get(name)
                    assert member is not None
                    self.assertLess(member.incarnation, 1000)
                    found.append(member.state)
            return found

        slowest = 0.0
        for _ in range(20):
            started = reactor.seconds()  # type: ignore[attr-defined]
            self.assertEqual(await services(), {"host-a": 0, "host-b": 0})
            slowest = max(slowest, reactor.seconds() - started)  # type: ignore[attr-defined]
            for state in states():
                self.assertIn(state, (NodeState.ALIVE, NodeState.SUSPECT))
            await task.deferLater(reactor, 0.4)
        self.assertEqual(set(states()), {NodeState.ALIVE})
        self.assertLess(slowest, 1.0)
