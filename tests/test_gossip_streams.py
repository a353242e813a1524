"""
TCP stream messages: push-pull with the catalog as user state, large user
messages, fallback pings; plain, compressed and sealed; fed a byte at a
time.
"""

from __future__ import annotations

from dataclasses import replace

import msgpack
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from sidecar.gossip import streams
from sidecar.gossip.messages import (
    Ack,
    Ping,
    PushNodeState,
    PushPullHeader,
    UserMessageHeader,
    WireError,
)
from sidecar.gossip.security import Keyring
from sidecar.gossip.streams import (
    MAX_OBJECT_BYTES,
    MAX_PUSH_NODES,
    MAX_STREAM_BYTES,
    PushPull,
    StreamReader,
    StreamUserMessage,
    encodePushPull,
    encodeStreamUserMessage,
    frameStream,
    parseStream,
)

KEY = bytes(range(16))
STATES = (
    PushNodeState(
        name="a",
        addr=b"\x7f\x00\x01\x01",
        port=7946,
        incarnation=2,
        state=0,
        vsn=b"\x01\x05\x02\x02\x05\x04",
    ),
    PushNodeState(
        name="b",
        addr=b"\x7f\x00\x01\x02",
        port=7946,
        incarnation=1,
        state=3,
        meta=b"{}",
    ),
)
CATALOG = b'{"Servers":{},"LastChanged":"1970-01-01T00:00:00Z"}' * 40


def pushPull(clusterName: str = "default") -> tuple[bytes, PushPull]:
    header = PushPullHeader(
        nodes=2, userStateLen=len(CATALOG), join=True, clusterName=clusterName
    )
    return encodePushPull(header, STATES, CATALOG), PushPull(header, STATES, CATALOG)


class StreamTests(SynchronousTestCase):
    def assertArrivesWhole(self, wire: bytes, expected: object, keyring=None) -> None:  # type: ignore[no-untyped-def]
        # Every proper prefix asks for more; the whole gives the message.
        for cut in range(0, len(wire), max(1, len(wire) // 97)):
            self.assertIsNone(parseStream(wire[:cut], keyring), cut)
        self.assertEqual(parseStream(wire, keyring), expected)

    def test_plainPushPull(self) -> None:
        body, expected = pushPull()
        self.assertArrivesWhole(frameStream(body, compress=False), expected)

    def test_compressedPushPull(self) -> None:
        body, expected = pushPull()
        wire = frameStream(body)
        self.assertLess(len(wire), len(body))
        self.assertArrivesWhole(wire, expected)

    def test_sealedPushPullWithItsHeaderAuthenticated(self) -> None:
        body, expected = pushPull()
        ring = Keyring([KEY])
        wire = frameStream(body, ring)
        self.assertEqual(wire[0], 10)
        self.assertEqual(int.from_bytes(wire[1:5], "big"), len(wire) - 5)
        self.assertArrivesWhole(wire, expected, ring)
        tampered = wire[:4] + bytes([wire[4] ^ 1]) + wire[5:]
        self.assertRaises(WireError, parseStream, tampered + b"\x00", ring)

    def test_wrongKeyOrPlainStreamIsRefusedWhenEncrypting(self) -> None:
        body, _ = pushPull()
        self.assertRaises(
            WireError,
            parseStream,
            frameStream(body, Keyring([KEY])),
            Keyring([bytes(16)]),
        )
        self.assertRaises(WireError, parseStream, frameStream(body), Keyring([KEY]))

    def test_tenKilobyteUserMessage(self) -> None:
        record = b'{"ID":"deadbeef0123","Image":"' + b"x" * 10_000 + b'"}'
        wire = frameStream(encodeStreamUserMessage(record), Keyring([KEY]))
        self.assertEqual(parseStream(wire, Keyring([KEY])), StreamUserMessage(record))
        self.assertArrivesWhole(
            frameStream(encodeStreamUserMessage(record), compress=False),
            StreamUserMessage(record),
        )

    def test_fallbackPing(self) -> None:
        ping = Ping(seqNo=3, node="b")
        self.assertEqual(parseStream(frameStream(ping.encode())), ping)

    def test_headerMustDescribeItsContents(self) -> None:
        self.assertRaises(
            ValueError, encodePushPull, PushPullHeader(nodes=3), STATES, b""
        )

    def test_oversizedSealedLengthIsRefused(self) -> None:
        self.assertRaises(
            WireError, parseStream, b"\x0a\xff\xff\xff\xff", Keyring([KEY])
        )

    def test_truncatedCompressedBodyIsAnError(self) -> None:
        body, _ = pushPull()
        from sidecar.gossip import lzw
        from sidecar.gossip.messages import Compress

        short = Compress(algo=0, buf=lzw.compress(body[:-10])).encode()
        self.assertRaises(WireError, parseStream, short)

    def test_nonStreamTypesAreRefused(self) -> None:
        for junk in (b"\x04\x80", b"\x07\x01", b"\x63"):
            self.assertRaises(WireError, parseStream, junk)

    def test_goStreamAckWithNilPayload(self) -> None:
        # The fork answers a TCP ping with ackResp{SeqNo, nil}.
        wire = frameStream(b"\x02\x82\xa5SeqNo\x03\xa7Payload\xc0")
        self.assertEqual(parseStream(wire), Ack(seqNo=3))

    def test_goPushPullWithNilMetaVsnAndNoUserState(self) -> None:
        import msgpack

        def pack(*fields: tuple[str, object]) -> bytes:
            return bytes(msgpack.packb(dict(fields), use_bin_type=False))

        # pushPullHeader, then a pushNodeState whose nil slices are nil.
        body = (
            b"\x06"
            + pack(
                ("Nodes", 1),
                ("ClusterName", "default"),
                ("UserStateLen", 0),
                ("Join", False),
            )
            + pack(
                ("Name", "go-1"),
                ("Addr", b"\x7f\x00\x00\x01"),
                ("Port", 7946),
                ("Meta", None),
                ("Incarnation", 4),
                ("State", 0),
                ("Vsn", None),
            )
        )
        state = PushNodeState(
            name="go-1", addr=b"\x7f\x00\x00\x01", port=7946, incarnation=4
        )
        header = PushPullHeader(nodes=1, clusterName="default")
        self.assertArrivesWhole(frameStream(body), PushPull(header, (state,), b""))

    @settings(max_examples=1000, deadline=None)
    @given(st.binary(max_size=2000))
    def test_randomBytesNeedMoreOrParseOrFail(self, data: bytes) -> None:
        for keyring in (None, Keyring([KEY])):
            try:
                parseStream(data, keyring)
            except WireError:
                pass


class _CountingUnpacker(msgpack.Unpacker):  # type: ignore[misc]
    fed = 0

    def feed(self, data: bytes) -> None:
        _CountingUnpacker.fed += len(data)
        super().feed(data)


class BoundedReaderTests(SynchronousTestCase):
    """
    What a stream costs is linear in its bytes, and every bound is checked
    before the bytes it announces are waited for.
    """

    def test_eachByteIsParsedOnce(self) -> None:
        # 4,000 node states fed 1 KiB at a time: msgpack sees each byte
        # once, where re-parsing the buffer on every read (the quadratic
        # reader) would show it about 700 MiB.
        states = [replace(STATES[0], name=f"n{n}") for n in range(4000)]
        header = PushPullHeader(nodes=len(states), userStateLen=len(CATALOG))
        wire = encodePushPull(header, states, CATALOG)
        _CountingUnpacker.fed = 0
        self.patch(streams.msgpack, "Unpacker", _CountingUnpacker)
        reader = StreamReader()
        message = None
        for offset in range(0, len(wire), 1024):
            self.assertIsNone(message)
            message = reader.feed(wire[offset : offset + 1024])
        assert isinstance(message, PushPull)
        self.assertEqual(len(message.states), 4000)
        self.assertEqual(message.userState, CATALOG)
        self.assertEqual(_CountingUnpacker.fed, len(wire))

    def test_aMemberStateThatCannotBeRightIsLeftOutAndTheRestStand(self) -> None:
        bad = replace(STATES[0], name="evil\x1b[2J")
        header = PushPullHeader(nodes=3, userStateLen=len(CATALOG))
        wire = encodePushPull(header, [STATES[0], bad, STATES[1]], CATALOG)
        message = StreamReader().feed(wire)
        assert isinstance(message, PushPull)
        self.assertEqual(message.states, STATES)
        self.assertEqual(message.userState, CATALOG)
        [why] = message.leftOut
        self.assertIn("PushNodeState.Name: a name is printable text", why)

    def test_tooManyNodesAreRefusedFromTheHeader(self) -> None:
        header = PushPullHeader(nodes=MAX_PUSH_NODES + 1, userStateLen=0)
        with self.assertRaises(WireError) as caught:
            StreamReader().feed(header.encode())
        self.assertIn(f"{MAX_PUSH_NODES + 1} nodes", str(caught.exception))

    def test_anOversizedUserStateIsRefusedFromTheHeader(self) -> None:
        header = PushPullHeader(nodes=0, userStateLen=MAX_STREAM_BYTES + 1)
        self.assertRaises(WireError, StreamReader().feed, header.encode())

    def test_anOversizedUserMessageIsRefusedFromTheHeader(self) -> None:
        header = UserMessageHeader(userMsgLen=MAX_STREAM_BYTES + 1)
        self.assertRaises(WireError, StreamReader().feed, header.encode())

    def test_aHeaderThatNeverEndsIsRefusedAtItsBound(self) -> None:
        # A map announcing a string of 1 MiB: no header is that big.
        reader = StreamReader()
        self.assertIsNone(reader.feed(b"\x06\x81\xa5Nodes\xdb\x00\x10\x00\x00"))
        with self.assertRaises(WireError) as caught:
            for _ in range(MAX_OBJECT_BYTES // 4096 + 1):
                reader.feed(b"x" * 4096)
        self.assertIn("PushPullHeader over", str(caught.exception))

    def test_anArrayAnnouncingMillionsOfItemsIsRefused(self) -> None:
        # Five bytes that would otherwise make msgpack allocate 32 MiB.
        self.assertRaises(WireError, StreamReader().feed, b"\x06\xdd\x00\x40\x00\x00")

    def test_aStreamBeyondTheTotalBoundIsRefused(self) -> None:
        reader = StreamReader(maxBytes=1000)
        header = PushPullHeader(nodes=0, userStateLen=900)
        self.assertIsNone(reader.feed(header.encode() + b"x" * 500))
        self.assertRaises(WireError, reader.feed, b"x" * 600)

    def test_aSealedStreamOverTheBoundIsRefusedFromItsHeader(self) -> None:
        reader = StreamReader(Keyring([KEY]), maxBytes=1000)
        self.assertRaises(WireError, reader.feed, b"\x0a\x00\x00\x03\xe9")
