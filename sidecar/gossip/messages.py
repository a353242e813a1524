"""
memberlist's messages: a type byte and a msgpack map keyed by Go field
names, strings and bytes both in msgpack's "raw" family, as hashicorp's
go-msgpack writes them.  Pure encode and decode, no I/O.

A Go nil slice goes on the wire as msgpack nil: the Go Sidecar, which sets
no ping delegate, sends every ack's C{Payload} so, and a Go node without
metadata its C{Meta}.  As Go's own decoder does, nil decodes to the field's
zero value, in every field of every message.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

import msgpack


class MessageType(enum.IntEnum):
    PING = 0
    INDIRECT_PING = 1
    ACK = 2
    SUSPECT = 3
    ALIVE = 4
    DEAD = 5
    PUSH_PULL = 6
    COMPOUND = 7
    USER = 8
    COMPRESS = 9
    ENCRYPT = 10
    NACK = 11
    HAS_CRC = 12
    ERR = 13


class NodeState(enum.IntEnum):
    ALIVE = 0
    SUSPECT = 1
    DEAD = 2
    LEFT = 3


class WireError(ValueError):
    """
    Bytes that are not a valid memberlist message; the message says what
    and where.
    """


@dataclass(frozen=True)
class Body:
    """
    A msgpack body.  Each field's Go name is its C{metadata["go"]}; fields
    marked C{omitempty} are left out when empty, as Go's tags say.
    """

    messageType: ClassVar[MessageType]

    def toMap(self) -> dict[str, Any]:
        document = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.metadata.get("omitempty") and not value:
                continue
            document[f.metadata["go"]] = value
        return document

    @classmethod
    def fromMap(cls, document: dict[str, Any]) -> Any:
        values = {}
        for f in fields(cls):
            raw = document.get(f.metadata["go"], f.default)
            where = f"{cls.__name__}.{f.metadata['go']}"
            value = _coerce(raw, str(f.type), where)
            check = f.metadata.get("check")
            if check is not None:
                check(value, where)
            values[f.name] = value
        return cls(**values)

    def encode(self) -> bytes:
        """
        The type byte and the msgpack body.
        """
        return bytes([self.messageType]) + packBody(self.toMap())


def go(
    name: str,
    default: Any,
    omitempty: bool = False,
    check: Callable[[Any, str], None] | None = None,
) -> Any:
    """
    A field with Go name C{name}; C{check} refuses a decoded value that
    is of the right type but cannot be right (an IP of 7 bytes, say).
    """
    metadata = {"go": name, "omitempty": omitempty, "check": check}
    return field(default=default, metadata=metadata)


def _ip(value: bytes, where: str) -> None:
    if len(value) not in (4, 16):
        raise WireError(f"{where}: an IP address is 4 or 16 bytes, not {len(value)}")


def _optionalIP(value: bytes, where: str) -> None:
    if value:
        _ip(value, where)


def _port(value: int, where: str) -> None:
    if value > 0xFFFF:
        raise WireError(f"{where}: port {value} is over 65535")


def _targetPort(value: int, where: str) -> None:
    if not 0 < value <= 0xFFFF:
        raise WireError(f"{where}: port {value} is not one to send to")


NAME_BYTES = 128


def _name(value: str, where: str) -> None:
    """
    A member's name: printable and at most L{NAME_BYTES} bytes of UTF-8
    (it is logged, shown by the API and written into HAProxy's config).
    """
    if len(value.encode("utf-8")) > NAME_BYTES:
        raise WireError(f"{where}: a name is at most {NAME_BYTES} bytes: {value!r:.60}")
    if not value.isprintable():
        raise WireError(f"{where}: a name is printable text: {value!r:.60}")


def _memberName(value: str, where: str) -> None:
    if not value:
        raise WireError(f"{where}: a member needs a name")
    _name(value, where)


def _u32(value: int, where: str) -> None:
    if value > 0xFFFFFFFF:
        raise WireError(f"{where}: {value} does not fit 32 bits")


@dataclass(frozen=True)
class Ping(Body):
    messageType = MessageType.PING
    seqNo: int = go("SeqNo", 0, check=_u32)
    node: str = go("Node", "", check=_name)
    sourceAddr: bytes = go("SourceAddr", b"", omitempty=True, check=_optionalIP)
    sourcePort: int = go("SourcePort", 0, omitempty=True, check=_port)
    sourceNode: str = go("SourceNode", "", omitempty=True)


@dataclass(frozen=True)
class IndirectPing(Body):
    messageType = MessageType.INDIRECT_PING
    seqNo: int = go("SeqNo", 0, check=_u32)
    target: bytes = go("Target", b"", check=_ip)
    port: int = go("Port", 0, check=_targetPort)
    node: str = go("Node", "", check=_name)
    nack: bool = go("Nack", False)
    sourceAddr: bytes = go("SourceAddr", b"", omitempty=True, check=_optionalIP)
    sourcePort: int = go("SourcePort", 0, omitempty=True, check=_port)
    sourceNode: str = go("SourceNode", "", omitempty=True)


@dataclass(frozen=True)
class Ack(Body):
    messageType = MessageType.ACK
    seqNo: int = go("SeqNo", 0, check=_u32)
    payload: bytes = go("Payload", b"")


@dataclass(frozen=True)
class Nack(Body):
    messageType = MessageType.NACK
    seqNo: int = go("SeqNo", 0, check=_u32)


@dataclass(frozen=True)
class Suspect(Body):
    messageType = MessageType.SUSPECT
    incarnation: int = go("Incarnation", 0, check=_u32)
    node: str = go("Node", "", check=_memberName)
    source: str = go("From", "", check=_name)
    clusterName: str = go("ClusterName", "", omitempty=True)


@dataclass(frozen=True)
class Alive(Body):
    messageType = MessageType.ALIVE
    incarnation: int = go("Incarnation", 0, check=_u32)
    node: str = go("Node", "", check=_memberName)
    addr: bytes = go("Addr", b"", check=_ip)
    port: int = go("Port", 0, check=_port)
    meta: bytes = go("Meta", b"")
    vsn: bytes = go("Vsn", b"")
    clusterName: str = go("ClusterName", "", omitempty=True)


@dataclass(frozen=True)
class Dead(Body):
    messageType = MessageType.DEAD
    incarnation: int = go("Incarnation", 0, check=_u32)
    node: str = go("Node", "", check=_memberName)
    source: str = go("From", "", check=_name)
    clusterName: str = go("ClusterName", "", omitempty=True)


@dataclass(frozen=True)
class PushPullHeader(Body):
    messageType = MessageType.PUSH_PULL
    nodes: int = go("Nodes", 0)
    userStateLen: int = go("UserStateLen", 0)
    join: bool = go("Join", False)
    clusterName: str = go("ClusterName", "", omitempty=True)


@dataclass(frozen=True)
class PushNodeState(Body):
    messageType = MessageType.PUSH_PULL
    name: str = go("Name", "", check=_memberName)
    addr: bytes = go("Addr", b"", check=_ip)
    port: int = go("Port", 0, check=_port)
    meta: bytes = go("Meta", b"")
    incarnation: int = go("Incarnation", 0, check=_u32)
    state: int = go("State", 0)
    vsn: bytes = go("Vsn", b"")

    def toAlive(self, clusterName: str) -> Alive:
        """
        The alive message this state stands for, in cluster C{clusterName}.
        """
        return Alive(
            incarnation=self.incarnation,
            node=self.name,
            addr=self.addr,
            port=self.port,
            meta=self.meta,
            vsn=self.vsn,
            clusterName=clusterName,
        )


@dataclass(frozen=True)
class UserMessageHeader(Body):
    messageType = MessageType.USER
    userMsgLen: int = go("UserMsgLen", 0)


@dataclass(frozen=True)
class Compress(Body):
    messageType = MessageType.COMPRESS
    algo: int = go("Algo", 0)
    buf: bytes = go("Buf", b"")


@dataclass(frozen=True)
class ErrorResponse(Body):
    messageType = MessageType.ERR
    error: str = go("Error", "")


PACKET_BODIES: dict[MessageType, type[Body]] = {
    body.messageType: body
    for body in (
        Ping,
        IndirectPing,
        Ack,
        Nack,
        Suspect,
        Alive,
        Dead,
        Compress,
        ErrorResponse,
    )
}


def packBody(document: dict[str, Any]) -> bytes:
    return msgpack.packb(document, use_bin_type=False)


def unpackBody(data: bytes, where: str) -> dict[str, Any]:
    """
    One msgpack map with string keys; trailing bytes are an error.
    """
    try:
        document = msgpack.unpackb(data, raw=True, strict_map_key=False)
    except Exception as e:  # msgpack raises several unrelated types
        raise WireError(f"{where}: not msgpack: {e}") from None
    return stringKeys(document, where)


def stringKeys(document: Any, where: str) -> dict[str, Any]:
    """
    A decoded msgpack map with its raw keys turned into names.
    """
    if not isinstance(document, dict):
        raise WireError(f"{where}: expected a map, got {type(document).__name__}")
    return {_text(key, where): value for key, value in document.items()}


def decodeBody(messageType: MessageType, data: bytes) -> Body:
    """
    Decode the body of a packet message of C{messageType}.

    @raise WireError: for an unknown type or a malformed body.
    """
    body = PACKET_BODIES.get(messageType)
    if body is None:
        raise WireError(f"message type {messageType.name} has no packet body")
    return body.fromMap(unpackBody(data, messageType.name))  # type: ignore[no-any-return]


def _text(value: Any, where: str) -> str:
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise WireError(f"{where}: a name is not UTF-8: {value!r:.40}") from None
    if isinstance(value, str):
        return value
    raise WireError(f"{where}: expected a string, got {value!r:.40}")


# What msgpack nil decodes to, by field type: Go's zero values.
_ZERO: dict[str, Any] = {"str": "", "bytes": b"", "bool": False, "int": 0}


def _coerce(value: Any, kind: str, where: str) -> Any:
    if value is None:
        value = _ZERO[kind]
    if kind == "str":
        return _text(value, where)
    if kind == "bytes":
        if isinstance(value, bytes):
            return value
        if isinstance(value, str):
            return value.encode("utf-8")
        # A Go []uint8 (Vsn) may also come as an array of small integers.
        if isinstance(value, list) and all(
            isinstance(n, int) and not isinstance(n, bool) and 0 <= n <= 255
            for n in value
        ):
            return bytes(value)
        raise WireError(f"{where}: expected bytes, got {value!r:.40}")
    if kind == "bool":
        if isinstance(value, bool):
            return value
        raise WireError(f"{where}: expected a bool, got {value!r:.40}")
    if kind == "int":
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
        raise WireError(f"{where}: expected an unsigned integer, got {value!r:.40}")
    raise AssertionError(f"no coercion for {kind}")
