"""
UDP packets as memberlist frames them: compound messages, compression, the
CRC header and encryption.  Pure functions: bytes in, messages out.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

from . import lzw
from .messages import Body, Compress, MessageType, WireError, decodeBody, unpackBody
from .security import Keyring

UDP_BUFFER_SIZE = 1400
MAX_COMPOUND_PARTS = 255
LZW_ALGORITHM = 0


@dataclass(frozen=True)
class UserMessage:
    """
    An application message (type 8): for us, one catalog record's JSON.
    """

    payload: bytes


Message = Body | UserMessage


def makeCompound(messages: Sequence[bytes]) -> bytes:
    """
    Several encoded messages in one: type 7, a count, a big-endian u16
    length for each, then the messages.
    """
    if not 1 <= len(messages) <= MAX_COMPOUND_PARTS:
        raise ValueError(f"a compound holds 1-255 messages, not {len(messages)}")
    lengths = b"".join(struct.pack(">H", len(m)) for m in messages)
    return bytes([MessageType.COMPOUND, len(messages)]) + lengths + b"".join(messages)


def compressMessage(message: bytes) -> bytes:
    return Compress(algo=LZW_ALGORITHM, buf=lzw.compress(message)).encode()


def decompressBody(compress: Compress, limit: int) -> bytes:
    """
    What a compress message holds, at most C{limit} bytes of it.

    @raise WireError: for another algorithm than LZW or a bad stream.
    """
    if compress.algo != LZW_ALGORITHM:
        raise WireError(f"unknown compression algorithm {compress.algo}")
    try:
        return lzw.decompress(compress.buf, limit=limit)
    except lzw.LZWError as e:
        raise WireError(f"Compress.Buf: {e}") from None


def addCRC(packet: bytes) -> bytes:
    """
    The header protocol version 5 wants: type 12 and the CRC-32 (IEEE) of
    the rest, big-endian.
    """
    return bytes([MessageType.HAS_CRC]) + struct.pack(">I", zlib.crc32(packet)) + packet


def encodeUserMessage(payload: bytes) -> bytes:
    return bytes([MessageType.USER]) + payload


def decodePacket(data: bytes, keyring: Keyring | None = None) -> list[Message]:
    """
    Every message in one UDP packet, unwrapping encryption (when a keyring
    is given, every packet must be sealed), the CRC header, compression and
    compounds.

    @raise WireError: naming what is wrong; nothing is returned from a
        packet with any fault, since its parts cannot be trusted.
    """
    if keyring is not None:
        data = keyring.open(data)
    messages: list[Message] = []
    _decodeInto(data, messages, depth=0)
    return messages


def _decodeInto(data: bytes, messages: list[Message], depth: int) -> None:
    if depth > 4:
        raise WireError("messages nested too deeply")
    if not data:
        raise WireError("empty message")
    try:
        messageType = MessageType(data[0])
    except ValueError:
        raise WireError(f"unknown message type {data[0]}") from None
    body = data[1:]
    if messageType is MessageType.HAS_CRC:
        if len(body) < 4:
            raise WireError("CRC header truncated")
        (expected,) = struct.unpack(">I", body[:4])
        if zlib.crc32(body[4:]) != expected:
            raise WireError("CRC mismatch")
        _decodeInto(body[4:], messages, depth + 1)
    elif messageType is MessageType.COMPRESS:
        compress = Compress.fromMap(unpackBody(body, "Compress"))
        inner = decompressBody(compress, limit=UDP_BUFFER_SIZE * 64)
        _decodeInto(inner, messages, depth + 1)
    elif messageType is MessageType.COMPOUND:
        for part in _splitCompound(body):
            _decodeInto(part, messages, depth + 1)
    elif messageType is MessageType.USER:
        messages.append(UserMessage(body))
    else:
        messages.append(decodeBody(messageType, body))


def _splitCompound(body: bytes) -> list[bytes]:
    if not body:
        raise WireError("compound without a count")
    count = body[0]
    header = 1 + 2 * count
    if len(body) < header:
        raise WireError(f"compound of {count} truncated in its lengths")
    lengths = struct.unpack(f">{count}H", body[1:header])
    if header + sum(lengths) > len(body):
        raise WireError(f"compound of {count} truncated in its messages")
    parts, offset = [], header
    for length in lengths:
        parts.append(body[offset : offset + length])
        offset += length
    return parts
