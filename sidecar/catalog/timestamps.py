"""
Timestamps as the Go Sidecar writes them.

Go's ``time.Time`` carries nanoseconds, and its JSON form is RFC 3339 with
the fraction trimmed of trailing zeros (``time.RFC3339Nano``).  Python's
``datetime`` stops at microseconds, so the catalog keeps every timestamp as an
integer count of nanoseconds since the Unix epoch (UTC) and converts at the
edges with the two functions here.

Only timestamps that Go's format can write back are accepted: from
C{0001-01-01T00:00:00Z} (Go's zero time) to C{9999-12-31T23:59:59.999999999Z}
in UTC.  A parsed timestamp outside that range (C{0001-01-01T00:00:00+01:00}
is in year 0 once in UTC) is refused, and arithmetic on stamps goes through
L{later}, which stops at the last writable instant, so every stamp the
catalog holds can always be formatted.
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
_ONE_DAY = 86400 * NANOSECONDS
# The first and last instants Go's RFC 3339 form can write in UTC.
EARLIEST = (datetime(1, 1, 1, tzinfo=UTC) - _EPOCH).days * _ONE_DAY
LATEST = (datetime(9999, 12, 31, tzinfo=UTC) - _EPOCH).days * _ONE_DAY + _ONE_DAY - 1


class TimestampError(ValueError):
    """
    A string is not an RFC 3339 timestamp.
    """


# Stamps formatted lately, kept so that a document re-rendered formats each
# record's stamps once: enough for the stamps of a catalog of about 2000
# records, and under 1 MiB.  Every change and refresh brings new stamps,
# so whatever the size, the cache fills up and stays full: at 65,536 it
# held 13 MiB, which looked like a leak under churn (#23).
STAMP_CACHE = 4096


@lru_cache(maxsize=STAMP_CACHE)
def formatTimestamp(nanoseconds: int) -> str:
    """
    Render nanoseconds since the epoch as Go's RFC3339Nano in UTC, e.g.
    C{2015-03-04T01:12:46.669648453Z}; a whole second has no fraction.

    @raise TimestampError: when C{nanoseconds} lies outside
        [L{EARLIEST}, L{LATEST}], which the parser never gives.
    """
    if not EARLIEST <= nanoseconds <= LATEST:
        raise TimestampError(f"{nanoseconds} ns is outside years 1 to 9999")
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
    stamp = seconds * NANOSECONDS + fraction
    if not EARLIEST <= stamp <= LATEST:
        raise TimestampError(f"outside years 1 to 9999 in UTC: {text!r}")
    return stamp


def later(stamp: int, nanoseconds: int) -> int:
    """
    C{stamp} plus C{nanoseconds}, but never past L{LATEST}: a stamp derived
    from another (a refutation, a tombstone) can always be written.
    """
    return min(stamp + nanoseconds, LATEST)
