"""
Timestamps as the Go Sidecar writes them.

Go's ``time.Time`` carries nanoseconds, and its JSON form is RFC 3339 with
the fraction trimmed of trailing zeros (``time.RFC3339Nano``).  Python's
``datetime`` stops at microseconds, so the catalog keeps every timestamp as an
integer count of nanoseconds since the Unix epoch (UTC) and converts at the
edges with the two functions here.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from functools import lru_cache

NANOSECONDS = 1_000_000_000

_RFC3339 = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2})[Tt](?P<time>\d{2}:\d{2}:\d{2})"
    r"(?:\.(?P<fraction>\d{1,9}))?"
    r"(?P<zone>[Zz]|[+-]\d{2}:\d{2})\Z"
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class TimestampError(ValueError):
    """
    A string is not an RFC 3339 timestamp.
    """


@lru_cache(maxsize=1 << 16)
def formatTimestamp(nanoseconds: int) -> str:
    """
    Render nanoseconds since the epoch as Go's RFC3339Nano in UTC, e.g.
    C{2015-03-04T01:12:46.669648453Z}; a whole second has no fraction.
    """
    seconds, fraction = divmod(nanoseconds, NANOSECONDS)
    moment = _EPOCH + timedelta(seconds=seconds)
    text = f"{moment.year:04d}" + moment.strftime("-%m-%dT%H:%M:%S")
    if fraction:
        text += "." + f"{fraction:09d}".rstrip("0")
    return text + "Z"


def parseTimestamp(text: str) -> int:
    """
    Parse an RFC 3339 timestamp with up to nine fractional digits and any
    offset into nanoseconds since the epoch.

    @raise TimestampError: when C{text} is not such a timestamp.
    """
    if not isinstance(text, str):
        raise TimestampError(f"expected an RFC 3339 string, got {text!r}")
    match = _RFC3339.match(text)
    if match is None:
        raise TimestampError(f"not an RFC 3339 timestamp: {text!r}")
    zone = match["zone"]
    zone = "+00:00" if zone in ("Z", "z") else zone
    try:
        moment = datetime.fromisoformat(f"{match['date']}T{match['time']}{zone}")
    except ValueError as e:
        raise TimestampError(f"not a valid date or time: {text!r}") from e
    delta = moment - _EPOCH
    seconds = delta.days * 86400 + delta.seconds
    fraction = int((match["fraction"] or "0").ljust(9, "0"))
    return seconds * NANOSECONDS + fraction
