"""
TCP stream messages as memberlist frames them: push-pull state exchange,
fallback pings and large user messages; optionally compressed, optionally
sealed with the stream form of encryption.  Pure: a L{StreamReader} that
is fed the bytes as they arrive says "need more", returns a message, or
raises L{WireError}, at a cost linear in the bytes and within bounds
checked before the bytes they announce are waited for.
"""

from __future__ import annotations

import struct
from collections.abc import Generator, Sequence
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
# Members one push-pull may list: the member table's bound (a push-pull
# lists the whole table).
MAX_PUSH_NODES = 4096
# A msgpack header or node state: a few hundred bytes (metadata is at most
# 512); anything this big is not one.
MAX_OBJECT_BYTES = 64 * 1024
MAX_CONTAINER_LEN = 1024
_FIRST_BUFFER = 16 * 1024
_SEALED_HEADER = 5


@dataclass(frozen=True)
class PushPull:
    """
    A push-pull as received: C{leftOut} says why each member state that
    could not be right (a name that is not printable, say) was left out;
    the others stand.
    """

    header: PushPullHeader
    states: tuple[PushNodeState, ...]
    userState: bytes
    leftOut: tuple[str, ...] = ()


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
    return StreamReader(keyring).feed(buffer)


class StreamReader:
    """
    Reads one stream message as its bytes arrive, in time and memory
    linear in the bytes received: each byte is looked at once, and every
    length is checked against its bound before the bytes it announces are
    waited for.  With a keyring only sealed streams are accepted, and the
    sealed length is checked before anything is buffered.

    @ivar received: bytes fed so far.
    """

    def __init__(
        self,
        keyring: Keyring | None = None,
        maxBytes: int = MAX_STREAM_BYTES,
        maxNodes: int = MAX_PUSH_NODES,
    ) -> None:
        self._keyring = keyring
        self._maxBytes = maxBytes
        self._maxNodes = maxNodes
        self.received = 0
        self._sealed = bytearray()
        self._body = _BodyReader(maxBytes, maxNodes, complete=False)

    @property
    def announced(self) -> int:
        """
        The bytes the stream has said it will send (the sealed length and
        its header), once known; else the bytes received so far.
        """
        if self._keyring is not None and len(self._sealed) >= _SEALED_HEADER:
            return _SEALED_HEADER + _sealedLength(self._sealed)
        return self.received

    def close(self) -> None:
        """
        Let go of what was buffered, at once: the stream was abandoned.
        """
        self._sealed = bytearray()
        self._body.close()

    def feed(self, data: bytes) -> StreamMessage | None:
        """
        Take the next bytes of the stream.

        @return: the message once it is whole, else L{None}.
        @raise WireError: as soon as the bytes cannot start a valid message
            within the bounds; the reader is then spent.
        """
        self.received += len(data)
        if self.received > self._maxBytes + _SEALED_HEADER:
            raise WireError(f"stream over {self._maxBytes} bytes")
        if self._keyring is None:
            return self._body.feed(data)
        return self._feedSealed(data, self._keyring)

    def _feedSealed(self, data: bytes, keyring: Keyring) -> StreamMessage | None:
        if self._sealed == b"" and data and data[0] != MessageType.ENCRYPT:
            raise WireError("stream is not encrypted, and encryption is required")
        self._sealed += data
        if len(self._sealed) < _SEALED_HEADER:
            return None
        length = _sealedLength(self._sealed)
        if length > self._maxBytes:
            raise WireError(f"sealed stream of {length} bytes is over the limit")
        if len(self._sealed) < _SEALED_HEADER + length:
            return None
        header = bytes(self._sealed[:_SEALED_HEADER])
        body = keyring.open(
            bytes(self._sealed[_SEALED_HEADER : _SEALED_HEADER + length]),
            associatedData=header,
        )
        return _BodyReader(self._maxBytes, self._maxNodes, complete=True).feed(body)


def _sealedLength(sealed: bytearray) -> int:
    (length,) = struct.unpack(">I", sealed[1:_SEALED_HEADER])
    return int(length)


_Wanted = Generator[None, None, StreamMessage]


class _BodyReader:
    """
    An unsealed body, parsed by a generator that pauses wherever the bytes
    run out and resumes where it stopped; msgpack's unpacker resumes the
    same way, so nothing is parsed twice.  A C{complete} body (decrypted
    or decompressed whole) that runs out is truncated.
    """

    def __init__(self, maxBytes: int, maxNodes: int, complete: bool) -> None:
        self._maxBytes = maxBytes
        self._maxNodes = maxNodes
        self._complete = complete
        # Container lengths are bounded too: msgpack allocates a list for
        # the length an array announces before any element arrives.  Its
        # buffer starts small (not at its default 1 MiB) and grows with
        # what arrives.
        self._unpacker = msgpack.Unpacker(
            raw=True,
            strict_map_key=False,
            read_size=min(_FIRST_BUFFER, maxBytes + 1),
            max_buffer_size=maxBytes + 1,
            max_array_len=MAX_CONTAINER_LEN,
            max_map_len=MAX_CONTAINER_LEN,
        )
        self._fed = 0
        self._parser = self._message()

    def close(self) -> None:
        # The paused parser refers to this reader: closing it breaks the
        # cycle, so the buffers go now rather than at the next collection.
        self._parser.close()

    def feed(self, data: bytes) -> StreamMessage | None:
        self._fed += len(data)
        if self._fed > self._maxBytes:
            raise WireError(f"stream over {self._maxBytes} bytes")
        self._unpacker.feed(data)
        try:
            next(self._parser)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        if self._complete:
            raise WireError("stream truncated")
        return None

    def _message(self) -> _Wanted:
        [typeByte] = yield from self._raw(1)
        try:
            messageType = MessageType(typeByte)
        except ValueError:
            raise WireError(f"unknown stream message type {typeByte}") from None
        if messageType is MessageType.COMPRESS:
            document = yield from self._object("Compress", self._maxBytes)
            compress = Compress.fromMap(document)
            body = decompressBody(compress, limit=self._maxBytes)
            inner = _BodyReader(self._maxBytes, self._maxNodes, complete=True)
            return inner._compressed(body)
        if messageType is MessageType.PUSH_PULL:
            return (yield from self._pushPull())
        if messageType is MessageType.USER:
            header = UserMessageHeader.fromMap(
                (yield from self._object("UserMessageHeader"))
            )
            self._bounded(header.userMsgLen, "user message")
            return StreamUserMessage((yield from self._raw(header.userMsgLen)))
        kind = _SIMPLE.get(messageType)
        if kind is None:
            raise WireError(f"{messageType.name} is not a stream message")
        return kind.fromMap((yield from self._object(kind.__name__)))  # type: ignore[no-any-return]

    def _compressed(self, body: bytes) -> StreamMessage:
        if body[:1] == bytes([MessageType.COMPRESS]):
            raise WireError("a compressed stream inside a compressed stream")
        message = self.feed(body)
        assert message is not None  # a complete reader raises instead
        return message

    def _pushPull(self) -> _Wanted:
        header = PushPullHeader.fromMap((yield from self._object("PushPullHeader")))
        if header.nodes > self._maxNodes:
            raise WireError(
                f"push-pull of {header.nodes} nodes is over the limit "
                f"of {self._maxNodes}"
            )
        self._bounded(header.userStateLen, "push-pull user state")
        states, leftOut = [], []
        for n in range(header.nodes):
            where = f"PushNodeState[{n}]"
            document = yield from self._object(where)
            try:
                states.append(PushNodeState.fromMap(document))
            except WireError as e:
                leftOut.append(str(e))
        userState = yield from self._raw(header.userStateLen)
        return PushPull(header, tuple(states), userState, tuple(leftOut))

    def _bounded(self, length: int, what: str) -> None:
        if length > self._maxBytes:
            raise WireError(f"{what} of {length} bytes is over the limit")

    def _object(
        self, where: str, limit: int = MAX_OBJECT_BYTES
    ) -> Generator[None, None, dict[str, object]]:
        """
        The next msgpack map, waiting for its bytes; one of more than
        C{limit} bytes is refused while it is still arriving.
        """
        start = self._unpacker.tell()
        while True:
            try:
                document = self._unpacker.unpack()
            except msgpack.OutOfData:
                if self._fed - start > limit:
                    raise WireError(f"{where} over {limit} bytes") from None
                yield
                continue
            except Exception as e:  # msgpack raises several unrelated types
                raise WireError(f"{where}: not msgpack: {e}") from None
            return stringKeys(document, where)

    def _raw(self, length: int) -> Generator[None, None, bytes]:
        """
        The next C{length} bytes after the msgpack objects, as they come.
        """
        collected = bytearray()
        while len(collected) < length:
            chunk = self._unpacker.read_bytes(length - len(collected))
            if not chunk:
                yield
                continue
            collected += chunk
        return bytes(collected)


_SIMPLE: dict[MessageType, type[Body]] = {
    MessageType.PING: Ping,
    MessageType.ACK: Ack,
    MessageType.ERR: ErrorResponse,
}
