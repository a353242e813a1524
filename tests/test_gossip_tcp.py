"""
memberlist streams over real TCP on 127.0.0.1: the listener and the dialer
exchange push-pulls, pings and large user messages, sealed or not; bad,
wrongly keyed, silent and unfinished streams fail cleanly and are counted.
"""

from __future__ import annotations

from twisted.internet import defer, protocol, reactor
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, TimeoutError
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.error import ConnectError
from twisted.internet.protocol import Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase, TestCase

from sidecar.gossip.messages import Ack, Ping, PushPullHeader
from sidecar.gossip.security import Keyring
from sidecar.gossip.streams import (
    PushPull,
    StreamMessage,
    StreamUserMessage,
    encodePushPull,
    encodeStreamUserMessage,
)
from sidecar.gossip.tcp import StreamDialer, StreamError, StreamServerFactory

from .processes import pollUntil

KEY = bytes(range(16))
OTHER_KEY = bytes(range(1, 17))


def pushPullBody(userState: bytes, join: bool = False) -> bytes:
    header = PushPullHeader(
        nodes=0, userStateLen=len(userState), join=join, clusterName="default"
    )
    return encodePushPull(header, [], userState)


class Listener:
    """
    A stream listener on 127.0.0.1 that records what it is sent and answers
    push-pulls with C{answer} and pings with acks.
    """

    def __init__(
        self, test: TestCase, keyring: Keyring | None = None, timeout: float = 10.0
    ) -> None:
        self.received: list[StreamMessage] = []
        self.answer = pushPullBody(b'{"answer":true}')
        self.factory = StreamServerFactory(self.handle, reactor, keyring, timeout)  # type: ignore[arg-type]
        self.port = reactor.listenTCP(0, self.factory, interface="127.0.0.1")  # type: ignore[attr-defined]
        test.addCleanup(self.port.stopListening)
        self.address = ("127.0.0.1", self.port.getHost().port)

    def handle(self, message: StreamMessage, source: tuple[str, int]) -> bytes | None:
        self.received.append(message)
        if isinstance(message, PushPull):
            return self.answer
        if isinstance(message, Ping):
            return Ack(message.seqNo, b"").encode()
        return None


class StreamExchangeTests(TestCase):
    async def test_pushPullIsAnsweredWithThePeersState(self) -> None:
        listener = Listener(self)
        dialer = StreamDialer(reactor, timeout=5)
        reply = await dialer.request(listener.address, pushPullBody(b"{}", join=True))
        assert isinstance(reply, PushPull)
        self.assertEqual(reply.userState, b'{"answer":true}')
        [sent] = listener.received
        assert isinstance(sent, PushPull)
        self.assertTrue(sent.header.join)
        self.assertEqual(sent.userState, b"{}")

    async def test_sealedStreamsWorkWithTheSameKey(self) -> None:
        listener = Listener(self, Keyring([KEY]))
        dialer = StreamDialer(reactor, Keyring([KEY]), timeout=5)
        reply = await dialer.request(listener.address, Ping(seqNo=9, node="n").encode())
        self.assertEqual(reply, Ack(9, b""))

    async def test_aLargeUserMessageArrivesWhole(self) -> None:
        listener = Listener(self)
        dialer = StreamDialer(reactor, timeout=5)
        payload = b"r" * 10_000 + b"end"
        reply = await dialer.request(
            listener.address, encodeStreamUserMessage(payload), expectReply=False
        )
        self.assertIsNone(reply)
        await pollUntil(lambda: defer.succeed(listener.received or None), timeout=5)
        self.assertEqual(listener.received, [StreamUserMessage(payload)])

    async def test_aWrongKeyIsRefusedAndCounted(self) -> None:
        listener = Listener(self, Keyring([KEY]))
        dialer = StreamDialer(reactor, Keyring([OTHER_KEY]), timeout=5)
        with self.assertRaises(StreamError):
            await dialer.request(listener.address, pushPullBody(b"{}"))
        self.assertEqual(listener.received, [])
        self.assertEqual(listener.factory.dropped, 1)

    async def test_anUnsealedStreamIsRefusedWhenAKeyIsRequired(self) -> None:
        listener = Listener(self, Keyring([KEY]))
        dialer = StreamDialer(reactor, timeout=5)
        with self.assertRaises(StreamError):
            await dialer.request(listener.address, pushPullBody(b"{}"))
        self.assertEqual(listener.factory.dropped, 1)

    async def test_noReplyWhereOneIsExpectedFails(self) -> None:
        listener = Listener(self)
        dialer = StreamDialer(reactor, timeout=5)
        with self.assertRaises(StreamError):
            await dialer.request(listener.address, encodeStreamUserMessage(b"x"))

    async def test_aSilentPeerTimesOut(self) -> None:
        factory = protocol.Factory.forProtocol(protocol.Protocol)
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")  # type: ignore[attr-defined]
        self.addCleanup(port.stopListening)
        dialer = StreamDialer(reactor, timeout=0.3)
        with self.assertRaises(TimeoutError):
            await dialer.request(
                ("127.0.0.1", port.getHost().port), pushPullBody(b"{}")
            )

    async def test_nobodyListeningFails(self) -> None:
        listener = Listener(self)
        address = listener.address
        await listener.port.stopListening()
        dialer = StreamDialer(reactor, timeout=5)
        with self.assertRaises(ConnectError):
            await dialer.request(address, pushPullBody(b"{}"))


class _RawClient(protocol.Protocol):
    def __init__(self) -> None:
        self.closed: Deferred[None] = Deferred()

    def connectionLost(self, reason: object = None) -> None:
        self.closed.callback(None)


class BadStreamTests(TestCase):
    async def connect(self, listener: Listener) -> _RawClient:
        endpoint = TCP4ClientEndpoint(reactor, *listener.address)
        client = _RawClient()
        await connectProtocol(endpoint, client)
        return client

    async def test_garbageIsDroppedAndTheConnectionClosed(self) -> None:
        listener = Listener(self)
        client = await self.connect(listener)
        client.transport.write(b"\x63garbage")  # type: ignore[union-attr]
        await client.closed.addTimeout(5, reactor)
        self.assertEqual(listener.factory.dropped, 1)
        self.assertEqual(listener.received, [])

    async def test_anUnfinishedStreamIsClosedAfterTheTimeout(self) -> None:
        listener = Listener(self, timeout=0.2)
        client = await self.connect(listener)
        body = pushPullBody(b"{" + b" " * 100 + b"}")
        client.transport.write(body[:-10])  # type: ignore[union-attr]
        await client.closed.addTimeout(5, reactor)
        self.assertEqual(listener.received, [])

    async def test_anOversizedStreamIsRefused(self) -> None:
        listener = Listener(self)
        client = await self.connect(listener)
        header = PushPullHeader(nodes=0, userStateLen=11 * 1024 * 1024)
        client.transport.write(header.encode())  # type: ignore[union-attr]
        await client.closed.addTimeout(5, reactor)
        self.assertEqual(listener.factory.dropped, 1)


class BoundedListenerTests(SynchronousTestCase):
    """
    The listener's bounds on a Clock with in-memory transports: streams at
    once, per source, pending bytes, and one deadline per exchange.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.received: list[StreamMessage] = []

    def factory(
        self, keyring: Keyring | None = None, **bounds: int
    ) -> StreamServerFactory:
        return StreamServerFactory(
            lambda message, source: self.received.append(message),  # type: ignore[func-returns-value]
            self.clock,
            keyring,
            timeout=3.0,
            **bounds,
        )

    def connect(
        self, factory: StreamServerFactory, host: str = "127.0.1.9"
    ) -> tuple[Protocol | None, StringTransport]:
        address = IPv4Address("TCP", host, 40000 + len(factory.connections))
        transport = StringTransport(peerAddress=address)
        proto = factory.buildProtocol(address)
        if proto is not None:
            proto.makeConnection(transport)
        return proto, transport

    def test_trickledBytesDoNotPushTheDeadlineBack(self) -> None:
        factory = self.factory()
        proto, transport = self.connect(factory)
        assert proto is not None
        body = pushPullBody(b"{" + b" " * 100 + b"}")
        for byte in range(2):
            proto.dataReceived(body[byte : byte + 1])
            self.clock.advance(1.4)
        self.assertFalse(transport.disconnecting)
        proto.dataReceived(body[2:3])
        self.clock.advance(0.3)  # 3.1 s after the connection, 0.3 after a byte
        self.assertTrue(transport.disconnected)
        self.assertEqual(factory.dropped, 1)
        self.assertEqual(self.received, [])

    def test_streamsAtOnceAreCappedInAllAndPerSource(self) -> None:
        factory = self.factory(maxStreams=4, maxPerSource=2)
        opened = [self.connect(factory, "127.0.1.9")[0] for _ in range(3)]
        self.assertEqual([p is not None for p in opened], [True, True, False])
        others = [self.connect(factory, f"127.0.1.{n}")[0] for n in (10, 11, 12)]
        self.assertEqual([p is not None for p in others], [True, True, False])
        self.assertEqual(factory.dropped, 2)
        # A closed stream makes room again.
        assert opened[0] is not None
        opened[0].transport.loseConnection()  # type: ignore[union-attr]
        opened[0].connectionLost(None)
        self.assertIsNotNone(self.connect(factory, "127.0.1.9")[0])

    def test_aSealedLengthBeyondThePendingBudgetIsRefusedBeforeBuffering(
        self,
    ) -> None:
        factory = self.factory(Keyring([KEY]), maxPendingBytes=1_000_000)
        first, firstTransport = self.connect(factory, "127.0.1.9")
        second, secondTransport = self.connect(factory, "127.0.1.10")
        assert first is not None and second is not None
        announce = b"\x0a" + (600_000).to_bytes(4, "big")
        first.dataReceived(announce)
        self.assertEqual(factory.pending, 5 + 600_000)
        second.dataReceived(announce + b"\x01" * 1000)
        self.assertTrue(secondTransport.disconnected)
        self.assertFalse(firstTransport.disconnected)
        self.assertEqual(factory.dropped, 1)
        # The budget comes back when a stream ends.
        first.connectionLost(None)
        self.assertEqual(factory.pending, 0)

    def test_aPlainStreamIsChargedAsItArrives(self) -> None:
        factory = self.factory(maxPendingBytes=1000)
        proto, transport = self.connect(factory)
        assert proto is not None
        header = PushPullHeader(nodes=0, userStateLen=5000)
        proto.dataReceived(header.encode() + b"x" * 500)
        self.assertFalse(transport.disconnected)
        proto.dataReceived(b"x" * 600)
        self.assertTrue(transport.disconnected)
        self.assertEqual(factory.pending, 0)

    def test_aFailingHandlerIsLoggedOncePerPeriod(self) -> None:
        def broken(message: StreamMessage, source: tuple[str, int]) -> None:
            raise RuntimeError("handler bug")

        factory = StreamServerFactory(broken, self.clock)
        for _ in range(5):
            proto, transport = self.connect(factory)
            assert proto is not None
            proto.dataReceived(pushPullBody(b"{}"))
            self.assertTrue(transport.disconnecting)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_aWholeStreamIsHandledAndReleasesItsBytes(self) -> None:
        factory = self.factory()
        proto, transport = self.connect(factory)
        assert proto is not None
        body = pushPullBody(b"{}")
        proto.dataReceived(body[:5])
        self.assertGreater(factory.pending, 0)
        proto.dataReceived(body[5:])
        self.assertEqual(len(self.received), 1)
        self.assertEqual(factory.pending, 0)

    def test_aSealedStreamIsChargedOnceForWhatItAnnounced(self) -> None:
        # The announced length is charged at once; the bytes that follow
        # within it charge nothing more.
        factory = self.factory(Keyring([KEY]), maxPendingBytes=1_000_000)
        proto, transport = self.connect(factory)
        assert proto is not None
        proto.dataReceived(b"\x0a" + (1000).to_bytes(4, "big"))
        proto.dataReceived(b"\x01" * 100)
        proto.dataReceived(b"\x01" * 100)
        self.assertEqual(factory.pending, 5 + 1000)
        self.assertFalse(transport.disconnected)

    def test_bytesAfterAWholeStreamAreIgnored(self) -> None:
        factory = self.factory()
        proto, transport = self.connect(factory)
        assert proto is not None
        body = pushPullBody(b"{}")
        proto.dataReceived(body)
        proto.dataReceived(body)
        self.assertEqual(len(self.received), 1)
        self.assertEqual((factory.pending, factory.dropped), (0, 0))
