"""
TCP stream messages: push-pull with the catalog as user state, large user
messages, fallback pings; plain, compressed and sealed; fed a byte at a
time.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from sidecar.gossip.messages import (
    Ack,
    Ping,
    PushNodeState,
    PushPullHeader,
    WireError,
)
from sidecar.gossip.security import Keyring
from sidecar.gossip.streams import (
    PushPull,
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
