"""
The memberlist wire format: messages, compounds, CRC, LZW compression and
AES-GCM sealing, and a decoder that answers any bytes with a WireError at
worst.
"""

from __future__ import annotations

import os
import struct
import zlib

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from sidecar.gossip import lzw
from sidecar.gossip.messages import (
    Ack,
    Alive,
    Dead,
    IndirectPing,
    Nack,
    Ping,
    Suspect,
    WireError,
)
from sidecar.gossip.packets import (
    UserMessage,
    addCRC,
    compressMessage,
    decodePacket,
    encodeUserMessage,
    makeCompound,
)
from sidecar.gossip.security import Keyring

ALIVE = Alive(
    incarnation=3,
    node="node-a",
    addr=bytes([127, 0, 1, 1]),
    port=7946,
    meta=b'{"ClusterName":"default","State":"Running"}',
    vsn=bytes([1, 5, 2, 2, 5, 4]),
    clusterName="default",
)
SAMPLES = [
    Ping(seqNo=7, node="node-b"),
    Ping(
        seqNo=8,
        node="node-b",
        sourceAddr=b"\x7f\x00\x00\x01",
        sourcePort=7946,
        sourceNode="node-a",
    ),
    IndirectPing(
        seqNo=9, target=b"\x7f\x00\x01\x02", port=7946, node="node-c", nack=True
    ),
    Ack(seqNo=7, payload=b"coordinates"),
    Nack(seqNo=9),
    Suspect(incarnation=2, node="node-c", source="node-a", clusterName="default"),
    ALIVE,
    Dead(incarnation=4, node="node-a", source="node-a"),
]


class MessageTests(SynchronousTestCase):
    def test_pingIsAMsgpackMapWithRawStrings(self) -> None:
        self.assertEqual(
            Ping(seqNo=1, node="a").encode(), b"\x00\x82\xa5SeqNo\x01\xa4Node\xa1a"
        )

    def test_emptyOptionalFieldsAreLeftOut(self) -> None:
        self.assertNotIn(b"SourceNode", Ping(seqNo=1, node="a").encode())
        self.assertNotIn(b"ClusterName", Dead(node="a", source="a").encode())
        self.assertIn(b"ClusterName", ALIVE.encode())

    def test_vsnTravelsAsRawBytesLikeGosUint8Slice(self) -> None:
        self.assertIn(b"\xa3Vsn\xa6\x01\x05\x02\x02\x05\x04", ALIVE.encode())

    def test_everyMessageRoundTrips(self) -> None:
        for message in SAMPLES:
            self.assertEqual(decodePacket(message.encode()), [message])

    def test_unknownKeysAreIgnoredAsGoDoes(self) -> None:
        import msgpack

        body = msgpack.packb(
            {"SeqNo": 5, "Node": "x", "Extra": [1]}, use_bin_type=False
        )
        self.assertEqual(decodePacket(b"\x00" + body), [Ping(seqNo=5, node="x")])

    def test_vsnAsAnArrayIsAccepted(self) -> None:
        import msgpack

        body = msgpack.packb(
            {"Node": "x", "Addr": b"\x7f\0\0\1", "Vsn": [1, 5, 2]},
            use_bin_type=False,
        )
        [alive] = decodePacket(b"\x04" + body)
        self.assertEqual(alive.vsn, b"\x01\x05\x02")  # type: ignore[union-attr]

    def test_namesUpToTheBoundArePrintableText(self) -> None:
        name = "nœud-" + "x" * 122  # 128 bytes of UTF-8
        alive = Alive(1, name, b"\x7f\0\0\1", 7946)
        self.assertEqual(decodePacket(alive.encode()), [alive])

    def test_valuesThatCannotBeRightAreRefused(self) -> None:
        import msgpack

        for kind, document, fragment in (
            (4, {"Node": "x", "Addr": b"\x01\x02\x03"}, "Alive.Addr: an IP"),
            (4, {"Node": "x", "Addr": b"\x7f\0\0\1", "Port": 70000}, "over 65535"),
            (4, {"Node": "x", "Addr": b"\x7f\0\0\1", "Incarnation": 1 << 40}, "32"),
            (0, {"SeqNo": 1 << 33}, "Ping.SeqNo"),
            (0, {"SeqNo": 1, "SourceAddr": b"\x01"}, "Ping.SourceAddr"),
            (1, {"SeqNo": 1, "Target": b""}, "IndirectPing.Target"),
            (1, {"Target": b"\x7f\0\0\1", "Port": 0}, "IndirectPing.Port: port 0"),
            (4, {"Node": "a\x1bb", "Addr": b"\x7f\0\0\1"}, "Alive.Node: a name is"),
            (4, {"Node": "n" * 129, "Addr": b"\x7f\0\0\1"}, "at most 128 bytes"),
            (4, {"Node": "", "Addr": b"\x7f\0\0\1"}, "needs a name"),
            (3, {"Node": "x", "From": "\x00"}, "Suspect.From"),
            (5, {"Node": "x\n"}, "Dead.Node"),
        ):
            body = msgpack.packb(document, use_bin_type=False)
            with self.assertRaises(WireError) as caught:
                decodePacket(bytes([kind]) + body)
            self.assertIn(fragment, str(caught.exception))


def goBody(kind: int, *fields: tuple[str, object]) -> bytes:
    """
    A message as go-msgpack writes a Go struct: its fields in declaration
    order, a nil slice as msgpack nil (0xc0).
    """
    import msgpack

    return bytes([kind]) + msgpack.packb(dict(fields), use_bin_type=False)


class GoNilFieldTests(SynchronousTestCase):
    """
    Every field the Go Sidecar's memberlist fork (net.go's structs) can send
    as a nil slice decodes to an empty value, as Go's decoder decodes it.
    """

    def test_goAckWithoutPingDelegateHasNilPayload(self) -> None:
        # The Go Sidecar sets no ping delegate: ackResp{SeqNo, nil}.
        wire = b"\x02\x82\xa5SeqNo\x05\xa7Payload\xc0"
        self.assertEqual(goBody(2, ("SeqNo", 5), ("Payload", None)), wire)
        self.assertEqual(decodePacket(wire), [Ack(seqNo=5, payload=b"")])

    def test_nilAckInACompoundKeepsTheRecordsPiggybackedOnIt(self) -> None:
        ack = goBody(2, ("SeqNo", 9), ("Payload", None))
        record = encodeUserMessage(b'{"ID":"abc"}')
        self.assertEqual(
            decodePacket(makeCompound([ack, record])),
            [Ack(seqNo=9), UserMessage(b'{"ID":"abc"}')],
        )

    def test_aliveWithNilMetaAndVsn(self) -> None:
        wire = goBody(
            4,
            ("Incarnation", 2),
            ("Node", "go-1"),
            ("ClusterName", "default"),
            ("Addr", b"\x7f\x00\x00\x01"),
            ("Port", 7946),
            ("Meta", None),
            ("Vsn", None),
        )
        [alive] = decodePacket(wire)
        self.assertEqual(
            alive,
            Alive(
                incarnation=2,
                node="go-1",
                addr=b"\x7f\x00\x00\x01",
                port=7946,
                clusterName="default",
            ),
        )

    def test_nilScalarsAndStringsDecodeAsZero(self) -> None:
        # Go never writes these as nil, but its decoder would take them so.
        wire = goBody(
            3,
            ("Incarnation", None),
            ("Node", "go-1"),
            ("ClusterName", None),
            ("From", None),
        )
        self.assertEqual(decodePacket(wire), [Suspect(node="go-1")])
        wire = goBody(
            1,
            ("SeqNo", 3),
            ("Target", b"\x7f\x00\x00\x02"),
            ("Port", 7946),
            ("Node", "go-2"),
            ("Nack", None),
        )
        [indirect] = decodePacket(wire)
        self.assertFalse(indirect.nack)  # type: ignore[union-attr]

    def test_nilWhereAValueIsNeededIsStillRefusedByName(self) -> None:
        for kind, document, fragment in (
            (4, (("Node", "go-1"), ("Addr", None)), "Alive.Addr: an IP"),
            (1, (("SeqNo", 1), ("Target", None)), "IndirectPing.Target"),
        ):
            with self.assertRaises(WireError) as caught:
                decodePacket(goBody(kind, *document))
            self.assertIn(fragment, str(caught.exception))

    def test_compressWithNilBufIsAnEmptyStreamError(self) -> None:
        with self.assertRaises(WireError) as caught:
            decodePacket(goBody(9, ("Algo", 0), ("Buf", None)))
        self.assertIn("Compress.Buf", str(caught.exception))


class FramingTests(SynchronousTestCase):
    def test_compoundCarriesEveryPartInOrder(self) -> None:
        packet = makeCompound(
            [m.encode() for m in SAMPLES] + [encodeUserMessage(b"{}")]
        )
        self.assertEqual(decodePacket(packet), SAMPLES + [UserMessage(b"{}")])

    def test_compoundLayout(self) -> None:
        packet = makeCompound([b"\x02ab", b"\x0bc"])
        self.assertEqual(packet, b"\x07\x02\x00\x03\x00\x02\x02ab\x0bc")

    def test_truncatedCompoundIsRefused(self) -> None:
        packet = makeCompound([m.encode() for m in SAMPLES[:3]])
        for cut in (1, 2, 5, len(packet) - 1):
            self.assertRaises(WireError, decodePacket, packet[:cut])

    def test_crcIsCheckedAndStripped(self) -> None:
        inner = ALIVE.encode()
        packet = addCRC(inner)
        self.assertEqual(packet[:5], b"\x0c" + struct.pack(">I", zlib.crc32(inner)))
        self.assertEqual(decodePacket(packet), [ALIVE])
        corrupted = packet[:-1] + bytes([packet[-1] ^ 1])
        error = self.assertRaises(WireError, decodePacket, corrupted)
        self.assertIn("CRC mismatch", str(error))

    def test_compressedMessagesAreUnderstood(self) -> None:
        compound = makeCompound([m.encode() for m in SAMPLES])
        self.assertEqual(decodePacket(addCRC(compressMessage(compound))), SAMPLES)

    def test_unknownTypeAndJunkAreWireErrors(self) -> None:
        for junk in (b"", b"\x63", b"\x00\xc1", b"\x00\x93\x01\x02\x03", b"\x0a"):
            self.assertRaises(WireError, decodePacket, junk)


class LZWTests(SynchronousTestCase):
    def test_roundTripsAcrossTableResets(self) -> None:
        for data in (
            b"",
            b"a",
            b"abababababab",
            os.urandom(20000),
            b"x" * 100000,
            bytes(range(256)) * 64,
        ):
            self.assertEqual(lzw.decompress(lzw.compress(data)), data)

    def test_knownGoStream(self) -> None:
        # Go: lzw.NewWriter(&b, lzw.LSB, 8); w.Write([]byte("TOBEORNOT")); w.Close()
        # starts with a clear code (256) then the literals, 9 bits each.
        stream = lzw.compress(b"TOBEORNOT")
        codes, bits, count = [], int.from_bytes(stream, "little"), len(stream) * 8
        for _ in range(count // 9):
            codes.append(bits & 0x1FF)
            bits >>= 9
        self.assertEqual(codes[:11], [256, *b"TOBEORNOT", 257])

    def test_outputLimitStopsDecompressionBombs(self) -> None:
        bomb = lzw.compress(b"\x00" * 1_000_000)
        self.assertRaises(lzw.LZWError, lzw.decompress, bomb, 10_000)

    def test_streamWithoutEndCodeIsRefused(self) -> None:
        self.assertRaises(lzw.LZWError, lzw.decompress, lzw.compress(b"abc")[:-2])


KEY = bytes(range(32))


class EncryptionTests(SynchronousTestCase):
    def test_sealedPacketsOpenWithTheKey(self) -> None:
        ring = Keyring([KEY])
        sealed = ring.seal(ALIVE.encode())
        self.assertEqual(sealed[0], 1)
        self.assertEqual(len(sealed), 1 + 12 + len(ALIVE.encode()) + 16)
        self.assertEqual(decodePacket(sealed, ring), [ALIVE])

    def test_anyKeyOfTheRingOpensSoKeysRotate(self) -> None:
        old, new = Keyring([KEY]), Keyring([bytes(16), KEY])
        self.assertEqual(decodePacket(old.seal(ALIVE.encode()), new), [ALIVE])

    def test_wrongKeyAndPlaintextAreRefused(self) -> None:
        sealed = Keyring([KEY]).seal(ALIVE.encode())
        other = Keyring([bytes(24)])
        self.assertIn(
            "no key", str(self.assertRaises(WireError, decodePacket, sealed, other))
        )
        self.assertRaises(WireError, decodePacket, ALIVE.encode(), Keyring([KEY]))

    def test_associatedDataIsAuthenticated(self) -> None:
        ring = Keyring([KEY])
        sealed = ring.seal(b"stream", associatedData=b"\x0a\x00\x00\x00\x29")
        self.assertEqual(ring.open(sealed, b"\x0a\x00\x00\x00\x29"), b"stream")
        self.assertRaises(WireError, ring.open, sealed, b"\x0a\x00\x00\x00\x2a")

    def test_paddedVersionZeroIsStillAccepted(self) -> None:
        plaintext = ALIVE.encode()
        pad = 16 - len(plaintext) % 16
        nonce = bytes(12)
        sealed = AESGCM(KEY).encrypt(nonce, plaintext + bytes([pad]) * pad, None)
        self.assertEqual(
            decodePacket(b"\x00" + nonce + sealed, Keyring([KEY])), [ALIVE]
        )

    def test_badKeysAreRefused(self) -> None:
        self.assertRaises(ValueError, Keyring, [])
        self.assertRaises(ValueError, Keyring, [b"short"])


class FuzzTests(SynchronousTestCase):
    @settings(max_examples=1000, deadline=None)
    @given(st.binary(max_size=1400))
    def test_randomBytesGiveMessagesOrAWireError(self, data: bytes) -> None:
        try:
            decodePacket(data)
        except WireError:
            pass

    @settings(max_examples=1000, deadline=None)
    @given(st.data())
    def test_mutatedValidPacketsGiveMessagesOrAWireError(
        self, data: st.DataObject
    ) -> None:
        packet = bytearray(
            addCRC(makeCompound([m.encode() for m in SAMPLES]))
            if data.draw(st.booleans())
            else compressMessage(makeCompound([m.encode() for m in SAMPLES]))
        )
        for _ in range(data.draw(st.integers(1, 8))):
            position = data.draw(st.integers(0, len(packet) - 1))
            packet[position] = data.draw(st.integers(0, 255))
        cut = data.draw(st.integers(0, len(packet)))
        try:
            decodePacket(bytes(packet[:cut]))
        except WireError:
            pass

    @settings(max_examples=300, deadline=None)
    @given(st.binary(max_size=1400))
    def test_randomBytesUnderEncryptionAreWireErrors(self, data: bytes) -> None:
        self.assertRaises(WireError, decodePacket, data, Keyring([KEY]))
