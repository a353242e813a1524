"""
memberlist packets over real UDP sockets on 127.0.0.1: dispatch, compounds,
encryption, and bad packets counted and dropped with a rate-limited log.
"""

from __future__ import annotations

import socket

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.logger import Logger
from twisted.trial.unittest import SynchronousTestCase, TestCase

from sidecar.gossip.messages import Ack, Alive, Ping
from sidecar.gossip.packets import encodeUserMessage
from sidecar.gossip.security import Keyring
from sidecar.gossip.transport import GossipDatagramProtocol, PacketHandlers
from sidecar.ratelimit import PerSourceBudget, RateLimitedLog

from .processes import pollUntil

KEY = bytes(range(16))


class Endpoint:
    """
    A protocol listening on 127.0.0.1 whose handlers fire Deferreds.
    """

    def __init__(self, test: TestCase, keyring: Keyring | None = None) -> None:
        self.received: Deferred[object] = Deferred()
        self.protocol = GossipDatagramProtocol(
            PacketHandlers(
                ping=self.onPing,
                indirectPing=self.fire,
                ack=self.fire,
                nack=self.fire,
                alive=self.fire,
                suspect=self.fire,
                dead=self.fire,
                user=self.fire,
            ),
            reactor,  # type: ignore[arg-type]
            keyring,
        )
        self.port = reactor.listenUDP(0, self.protocol, interface="127.0.0.1")  # type: ignore[attr-defined]
        test.addCleanup(self.port.stopListening)
        self.address = ("127.0.0.1", self.port.getHost().port)
        self.items: list[object] = []

    def fire(self, item: object, *rest: object) -> None:
        self.items.append(item)
        if not self.received.called:
            self.received.callback(item)

    def onPing(self, ping: Ping, source: tuple[str, int]) -> None:
        self.protocol.send(source, [Ack(ping.seqNo, b"pong").encode()])

    def next(self) -> Deferred[object]:
        self.received = Deferred()
        self.received.addTimeout(5, reactor)
        return self.received


class UDPTests(TestCase):
    async def test_pingIsAnsweredWithAnAck(self) -> None:
        a, b = Endpoint(self), Endpoint(self)
        waiting = a.next()
        a.protocol.send(b.address, [Ping(seqNo=42, node="b").encode()], crc=True)
        self.assertEqual(await waiting, Ack(42, b"pong"))
        self.assertEqual(b.protocol.counters.packetsIn, 1)
        self.assertEqual(b.protocol.counters.packetsOut, 1)

    async def test_compoundDeliversEveryMessage(self) -> None:
        a, b = Endpoint(self), Endpoint(self)
        alive = Alive(1, "a", b"\x7f\x00\x00\x01", 1, clusterName="default")
        waiting = b.next()
        a.protocol.send(b.address, [alive.encode(), encodeUserMessage(b'{"ID":"x"}')])
        await waiting
        while len(b.items) < 2:
            await b.next()
        self.assertEqual(b.items, [alive, b'{"ID":"x"}'])

    async def test_sameKeyTalksDifferentKeyIsDropped(self) -> None:
        a, b = Endpoint(self, Keyring([KEY])), Endpoint(self, Keyring([KEY]))
        waiting = a.next()
        a.protocol.send(b.address, [Ping(seqNo=1, node="b").encode()])
        self.assertEqual(await waiting, Ack(1, b"pong"))
        stranger = Endpoint(self, Keyring([bytes(16)]))
        stranger.protocol.send(b.address, [Ping(seqNo=2, node="b").encode()])
        # An unkeyed packet follows; when it is dropped, so was the first.
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as raw:
            raw.sendto(b"\x00plain", b.address)

        async def bothDropped() -> bool | None:
            return True if b.protocol.counters.dropped >= 2 else None

        await pollUntil(bothDropped, timeout=5)
        self.assertEqual(b.items, [])
        self.assertEqual(b.protocol.counters.packetsIn, 3)


class BadPacketTests(SynchronousTestCase):
    def test_badPacketsAreCountedAndLoggedAtMostOncePerPeriod(self) -> None:
        clock = Clock()
        events: list[dict] = []  # type: ignore[type-arg]
        protocol = GossipDatagramProtocol(
            PacketHandlers(*(lambda *a: None for _ in range(8))), clock
        )
        protocol.log = Logger(observer=events.append)
        protocol._badPackets = RateLimitedLog(protocol.log, clock)
        for junk in (b"", b"\xff", b"\x07\x05"):
            protocol.datagramReceived(junk, ("127.0.0.9", 7946))
        self.assertEqual(protocol.counters.dropped, 3)
        self.assertEqual(len(events), 1)
        self.assertIn("127.0.0.9", events[0]["host"])
        clock.advance(10)
        protocol.datagramReceived(b"\xff", ("127.0.0.9", 7946))
        self.assertEqual(len(events), 2)
        self.assertEqual(events[1]["suppressed"], 2)

    def test_failingHandlerIsLoggedAndTheRestStillHandled(self) -> None:
        seen: list[object] = []

        def broken(*args: object) -> None:
            raise RuntimeError("handler bug")

        protocol = GossipDatagramProtocol(
            PacketHandlers(
                broken,
                broken,
                broken,
                broken,
                broken,
                broken,
                broken,
                lambda payload, source: seen.append(payload),
            ),
            Clock(),
        )
        from sidecar.gossip.packets import makeCompound

        packet = makeCompound([Ping(1, "x").encode(), encodeUserMessage(b"u")])
        protocol.datagramReceived(packet, ("127.0.0.9", 1))
        self.assertEqual(seen, [b"u"])
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)


class UnsendableTests(SynchronousTestCase):
    def test_anAddressTheSocketRefusesIsCountedNotRaised(self) -> None:
        protocol = GossipDatagramProtocol(None, Clock())
        port = reactor.listenUDP(0, protocol, interface="127.0.0.1")  # type: ignore[attr-defined]
        self.addCleanup(port.stopListening)
        for address in (("127.0.0.1", 0), ("::1", 7946)):
            protocol.send(address, [Ping(1, "x").encode()])
        self.assertEqual(protocol.counters.unsendable, 2)
        self.assertEqual(protocol.counters.packetsOut, 0)


class RateLimitTests(SynchronousTestCase):
    def test_failuresAreLoggedWithTheirTracebackAtMostOncePerPeriod(self) -> None:
        clock = Clock()
        events: list[dict] = []  # type: ignore[type-arg]
        limited = RateLimitedLog(Logger(observer=events.append), clock)
        for _ in range(5):
            try:
                raise RuntimeError("bug")
            except RuntimeError:
                limited.failure("handling {what}", what="x")
        self.assertEqual(len(events), 1)
        self.assertIn("log_failure", events[0])
        clock.advance(10)
        try:
            raise RuntimeError("bug")
        except RuntimeError:
            limited.failure("handling {what}", what="x")
        self.assertEqual(events[1]["suppressed"], 4)

    def test_eachSourceSpendsItsOwnBudgetAndEarnsItBack(self) -> None:
        clock = Clock()
        budget = PerSourceBudget(clock, burst=3, rate=2)
        self.assertEqual([budget.spend("a") for _ in range(4)], [True] * 3 + [False])
        self.assertTrue(budget.spend("b"))
        clock.advance(0.5)  # one token back
        self.assertEqual([budget.spend("a") for _ in range(2)], [True, False])
        clock.advance(100)  # never more than the burst
        self.assertEqual([budget.spend("a") for _ in range(4)], [True] * 3 + [False])

    def test_manySourcesAreBoundedToo(self) -> None:
        clock = Clock()
        budget = PerSourceBudget(clock, burst=1, rate=1, sources=2)
        self.assertTrue(budget.spend("a"))
        self.assertTrue(budget.spend("b"))
        # Both buckets are spent: a third source must wait.
        self.assertFalse(budget.spend("c"))
        clock.advance(1)
        # Full buckets are forgotten, which makes room.
        self.assertTrue(budget.spend("c"))
