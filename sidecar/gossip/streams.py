"""
TCP stream messages as memberlist frames them: push-pull state exchange,
fallback pings and large user messages; optionally compressed, optionally
sealed with the stream form of encryption.  Pure: a parser that is given
the bytes received so far says "need more", returns a message, or raises
L{WireError}.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

import msgpack

from . import lzw
from .messages import (
    Ack,
    Body,
    Compress,
    ErrorResponse,
    MessageType,
    Ping,
    PushNodeState,
    PushPullHeader,
    UserMessageHeader,
    WireError,
    packBody,
    stringKeys,
)
from .packets import LZW_ALGORITHM, decompressBody
from .security import Keyring

# The Go Sidecar's fork caps a push at 10 MiB; so do we, for what we read.
MAX_STREAM_BYTES = 10 * 1024 * 1024
_SEALED_HEADER = 5


@dataclass(frozen=True)
class PushPull:
    header: PushPullHeader
    states: tuple[PushNodeState, ...]
    userState: bytes


@dataclass(frozen=True)
class StreamUserMessage:
    payload: bytes


StreamMessage = PushPull | StreamUserMessage | Ping | Ack | ErrorResponse


def encodePushPull(
    header: PushPullHeader, states: Sequence[PushNodeState], userState: bytes
) -> bytes:
    """
    A push-pull body: type 6, the header, each node state, then the
    application's state.  C{header.nodes} and C{header.userStateLen} must
    agree with what follows.
    """
    if header.nodes != len(states) or header.userStateLen != len(userState):
        raise ValueError("the push-pull header does not describe its contents")
    parts = [header.encode()] + [packBody(state.toMap()) for state in states]
    return b"".join(parts) + userState


def encodeStreamUserMessage(payload: bytes) -> bytes:
    return UserMessageHeader(userMsgLen=len(payload)).encode() + payload


def frameStream(
    body: bytes, keyring: Keyring | None = None, compress: bool = True
) -> bytes:
    """
    Wrap a stream body for the wire: LZW compression, then the sealed form
    (type 10, a big-endian u32 length, and the sealed bytes with those five
    bytes as associated data).
    """
    if compress:
        body = Compress(algo=LZW_ALGORITHM, buf=lzw.compress(body)).encode()
    if keyring is None:
        return body
    # The sealed length is known before sealing: version, nonce, tag.
    length = 1 + 12 + len(body) + 16
    header = bytes([MessageType.ENCRYPT]) + struct.pack(">I", length)
    return header + keyring.seal(body, associatedData=header)


def parseStream(buffer: bytes, keyring: Keyring | None = None) -> StreamMessage | None:
    """
    The message at the start of C{buffer}, or L{None} while it is
    incomplete.  With a keyring, only sealed streams are accepted.

    @raise WireError: for anything malformed, oversized or wrongly keyed.
    """
    if not buffer:
        return None
    if keyring is not None:
        if buffer[0] != MessageType.ENCRYPT:
            raise WireError("stream is not encrypted, and encryption is required")
        if len(buffer) < _SEALED_HEADER:
            return None
        (length,) = struct.unpack(">I", buffer[1:_SEALED_HEADER])
        if length > MAX_STREAM_BYTES:
            raise WireError(f"sealed stream of {length} bytes is over the limit")
        if len(buffer) < _SEALED_HEADER + length:
            return None
        body = keyring.open(
            buffer[_SEALED_HEADER : _SEALED_HEADER + length],
            associatedData=buffer[:_SEALED_HEADER],
        )
        return _parseBody(body, complete=True)
    return _parseBody(buffer, complete=False)


def _parseBody(body: bytes, complete: bool) -> StreamMessage | None:
    if len(body) > MAX_STREAM_BYTES:
        raise WireError(f"stream over {MAX_STREAM_BYTES} bytes")
    if body and body[0] == MessageType.COMPRESS:
        objects = _unpackObjects(body[1:], 1, complete)
        if objects is None:
            return None
        compress = Compress.fromMap(stringKeys(objects[0][0], "Compress"))
        body = decompressBody(compress, limit=MAX_STREAM_BYTES)
        complete = True
    if not body:
        return None
    try:
        messageType = MessageType(body[0])
    except ValueError:
        raise WireError(f"unknown stream message type {body[0]}") from None
    rest = body[1:]
    if messageType is MessageType.PUSH_PULL:
        return _parsePushPull(rest, complete)
    if messageType is MessageType.USER:
        found = _unpackObjects(rest, 1, complete)
        if found is None:
            return None
        header = UserMessageHeader.fromMap(stringKeys(found[0][0], "UserMessageHeader"))
        payload = rest[found[1] : found[1] + header.userMsgLen]
        if len(payload) < header.userMsgLen:
            _needMore(complete, "user message")
            return None
        return StreamUserMessage(payload)
    kinds: dict[MessageType, type[Body]] = {
        MessageType.PING: Ping,
        MessageType.ACK: Ack,
        MessageType.ERR: ErrorResponse,
    }
    if messageType not in kinds:
        raise WireError(f"{messageType.name} is not a stream message")
    found = _unpackObjects(rest, 1, complete)
    if found is None:
        return None
    kind = kinds[messageType]
    return kind.fromMap(stringKeys(found[0][0], kind.__name__))  # type: ignore[no-any-return]


def _parsePushPull(rest: bytes, complete: bool) -> PushPull | None:
    found = _unpackObjects(rest, 1, complete)
    if found is None:
        return None
    header = PushPullHeader.fromMap(stringKeys(found[0][0], "PushPullHeader"))
    if header.userStateLen > MAX_STREAM_BYTES:
        raise WireError(f"user state of {header.userStateLen} bytes is over the limit")
    everything = _unpackObjects(rest, 1 + header.nodes, complete)
    if everything is None:
        return None
    objects, offset = everything
    states = tuple(
        PushNodeState.fromMap(stringKeys(state, f"PushNodeState[{n}]"))
        for n, state in enumerate(objects[1:])
    )
    userState = rest[offset : offset + header.userStateLen]
    if len(userState) < header.userStateLen:
        _needMore(complete, "push-pull user state")
        return None
    return PushPull(header, states, userState)


def _unpackObjects(
    data: bytes, count: int, complete: bool
) -> tuple[list[object], int] | None:
    """
    The first C{count} msgpack objects of C{data} and the offset after
    them, or L{None} when C{data} stops short (an error if C{complete}).
    """
    unpacker = msgpack.Unpacker(raw=True, strict_map_key=False, max_buffer_size=0)
    unpacker.feed(data)
    objects = []
    try:
        for _ in range(count):
            objects.append(unpacker.unpack())
    except msgpack.OutOfData:
        _needMore(complete, "msgpack body")
        return None
    except Exception as e:  # msgpack raises several unrelated types
        raise WireError(f"not msgpack: {e}") from None
    return objects, unpacker.tell()


def _needMore(complete: bool, what: str) -> None:
    """
    More bytes may come, unless the body was C{complete} (decompressed or
    decrypted whole): then it is truncated.
    """
    if complete:
        raise WireError(f"{what} truncated")
