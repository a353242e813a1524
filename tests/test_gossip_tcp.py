"""
memberlist streams over real TCP on 127.0.0.1: the listener and the dialer
exchange push-pulls, pings and large user messages, sealed or not; bad,
wrongly keyed, silent and unfinished streams fail cleanly and are counted.
"""

from __future__ import annotations

from twisted.internet import defer, protocol, reactor
from twisted.internet.defer import Deferred, TimeoutError
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.error import ConnectError
from twisted.trial.unittest import TestCase

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
