"""
Parsers for configuration values: each takes the raw value (from TOML or
an environment variable) and returns the typed value or raises
L{ValueProblem} saying what is wrong, in words for a person.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit


class ValueProblem(ValueError):
    """
    A value is not what its key needs; the message says why.
    """


@dataclass(frozen=True)
class Address:
    """
    A host and port; C{str()} gives C{host:port}, IPv6 hosts in brackets.
    """

    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
TRUE_WORDS = ("true", "1", "yes", "on")
FALSE_WORDS = ("false", "0", "no", "off", "")


def parseDuration(value: Any) -> float:
    """
    C{"3s"}, C{"500ms"}, C{"1m30s"}, C{"1h"} -> seconds.
    """
    text = _string(value).strip()
    position, total = 0, 0.0
    for match in _DURATION.finditer(text):
        if match.start() != position:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        position = match.end()
    if not text or position != len(text):
        raise ValueProblem(
            f"not a duration: {text!r} (write it like '3s', '500ms', '1m30s')"
        )
    return total


def parseAddress(value: Any, minimumPort: int = 1, ipOnly: bool = False) -> Address:
    """
    C{"host:port"} or C{"[v6]:port"} -> L{Address}.

    @param minimumPort: 0 where "any free port" makes sense (listening).
    @param ipOnly: whether the host must be an IP address literal.
    """
    text = _string(value)
    match = re.fullmatch(r"\[([^\]]+)\]:(\d+)|([^:\[\]]+):(\d+)", text)
    if match is None:
        raise ValueProblem(f"not a host:port address: {text!r}")
    host = match.group(1) or match.group(3)
    port = int(match.group(2) or match.group(4))
    if ipOnly or match.group(1):
        _ip(host, f"{text!r}: the host")
    if not minimumPort <= port <= 65535:
        raise ValueProblem(f"{text!r}: port {port} is not in {minimumPort}-65535")
    return Address(host, port)


def parseSeed(value: Any) -> tuple[str, int | None]:
    """
    A seed: C{host:port}, or a bare host or IP whose port is left to the
    caller (L{None}: the bind port).
    """
    text = _string(value).strip()
    if not text:
        raise ValueProblem("a seed must not be empty")
    if ":" not in text or _isIP(text):
        return (text, None)
    address = parseAddress(text)
    return (address.host, address.port)


def parsePort(value: Any) -> int:
    value = _wholeNumber(value, "a port number")
    if not 0 <= value <= 65535:
        raise ValueProblem(f"port {value} is not in 0-65535")
    return value


def parsePositiveInt(value: Any) -> int:
    value = _wholeNumber(value, "a whole number")
    if value < 1:
        raise ValueProblem(f"must be at least 1, got {value}")
    return value


def parsePositiveDuration(value: Any) -> float:
    seconds = parseDuration(value)
    if seconds <= 0:
        raise ValueProblem(f"must be longer than zero, got {value!r}")
    return seconds


def parsePath(value: Any) -> str:
    text = _string(value)
    if not text.startswith("/"):
        raise ValueProblem(f"expected a path starting with '/', got {text!r}")
    return text


def parseRegex(value: Any) -> str:
    """
    A regular expression with at least one group (the name to take), or
    the empty string for none.
    """
    text = _string(value)
    if not text:
        return text
    try:
        groups = re.compile(text).groups
    except re.error as e:
        raise ValueProblem(f"not a regular expression: {text!r}: {e}") from None
    if groups < 1:
        raise ValueProblem(f"{text!r} has no group to take the name from")
    return text


def parseIP(value: Any) -> str:
    return _ip(_string(value), repr(value))


def parseBool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        word = value.strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
    raise ValueProblem(f"expected true or false, got {value!r}")


def parseString(value: Any) -> str:
    return _string(value)


def parseName(value: Any) -> str:
    text = _string(value).strip()
    if not text:
        raise ValueProblem("must not be empty")
    return text


def parseEncryptKey(value: Any) -> bytes | None:
    """
    Base64 of 16, 24 or 32 bytes (AES-128, -192, -256); empty: no key.
    """
    if not _string(value).strip():
        return None
    return parseKey(value)


def parseKey(value: Any) -> bytes:
    """
    Base64 of 16, 24 or 32 bytes (AES-128, -192, -256).
    """
    text = _string(value).strip()
    if not text:
        raise ValueProblem("a key must not be empty")
    try:
        key = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueProblem("not valid base64") from None
    if len(key) not in (16, 24, 32):
        raise ValueProblem(
            f"decodes to {len(key)} bytes; an AES key is 16, 24 or 32 bytes"
        )
    return key


def parseURL(value: Any) -> str:
    text = _string(value)
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueProblem(f"not an http:// or https:// URL: {text!r}")
    return text


def oneOf(*choices: str) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        text = _string(value)
        if text not in choices:
            raise ValueProblem(f"expected one of {', '.join(choices)}, got {text!r}")
        return text

    return parse


def listOf(item: Callable[[Any], Any]) -> Callable[[Any], tuple[Any, ...]]:
    """
    A list of values, each parsed by C{item}; duplicates are refused.
    """

    def parse(value: Any) -> tuple[Any, ...]:
        if not isinstance(value, list):
            raise ValueProblem(f"expected a list, got {value!r}")
        items = []
        for index, raw in enumerate(value):
            try:
                parsed = item(raw)
            except ValueProblem as e:
                raise ValueProblem(f"item {index}: {e}") from None
            if parsed in items:
                raise ValueProblem(f"item {index}: {raw!r} is listed twice")
            items.append(parsed)
        return tuple(items)

    return parse


def splitCommas(text: str) -> list[str]:
    """
    The items of a comma-separated environment variable.
    """
    return [part.strip() for part in text.split(",") if part.strip()]


def _wholeNumber(value: Any, what: str) -> int:
    # The environment gives text; the file gives numbers.
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueProblem(f"not {what}: {value!r}")
    return value


def _string(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueProblem(f"expected a string, got {value!r}")
    return value


def _isIP(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _ip(text: str, what: str) -> str:
    if not _isIP(text):
        raise ValueProblem(f"{what} is not an IP address")
    return text
