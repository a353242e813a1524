"""
HTTP validators and content coding for the cached documents: whether a
client's copy is still good (C{If-None-Match}, C{If-Modified-Since}),
which C{Last-Modified} may be given, and whether gzip is welcome.  Pure
functions of header values; a malformed header is ignored, as RFC 9110
says, never an error.
"""

from __future__ import annotations

from twisted.web.http import datetimeToString, stringToDatetime

NANOSECONDS = 1_000_000_000


def lastModified(modified: int, now: int) -> bytes | None:
    """
    The C{Last-Modified} value for a document that last changed at
    C{modified} (nanoseconds), or L{None} while it cannot be given safely.

    HTTP dates have one-second resolution.  The value is the second after
    C{modified}, and is only given once that second is past (RFC 9110's
    rule for a strong Last-Modified): any later change then happens at a
    later time than the one a client will send back in
    C{If-Modified-Since}, and is never mistaken for no change.
    """
    second = -(-modified // NANOSECONDS)
    if now <= second * NANOSECONDS:
        return None
    return datetimeToString(second)


def etagMatches(header: bytes | None, etag: bytes) -> bool:
    """
    Whether an C{If-None-Match} value names C{etag} (weak comparison: a
    C{W/} prefix is ignored) or is C{*}.
    """
    if header is None:
        return False
    for candidate in header.split(b","):
        tag = candidate.strip()
        if tag == b"*" or tag.removeprefix(b"W/") == etag:
            return True
    return False


def unmodifiedSince(header: bytes | None, modified: int) -> bool:
    """
    Whether an C{If-Modified-Since} date is at or after C{modified}
    (nanoseconds); an unreadable date says nothing.
    """
    if header is None:
        return False
    try:
        since = stringToDatetime(header)
    except (ValueError, IndexError, KeyError):
        return False
    return modified <= since * NANOSECONDS


def notModified(
    ifNoneMatch: bytes | None, ifModifiedSince: bytes | None, etag: bytes, modified: int
) -> bool:
    """
    Whether the client's copy is current: C{If-None-Match} decides when it
    is sent; C{If-Modified-Since} counts only without it (RFC 9110 13.2.2).
    """
    if ifNoneMatch is not None:
        return etagMatches(ifNoneMatch, etag)
    return unmodifiedSince(ifModifiedSince, modified)


def acceptsGzip(header: bytes | None) -> bool:
    """
    Whether an C{Accept-Encoding} value admits gzip: C{gzip} (or
    C{x-gzip}, or C{*}) with a non-zero quality; C{gzip;q=0} refuses it.
    """
    if header is None:
        return False
    wildcard = False
    for item in header.split(b","):
        coding, _, parameters = item.strip().partition(b";")
        coding = coding.strip().lower()
        quality = _quality(parameters)
        if coding in (b"gzip", b"x-gzip"):
            return quality > 0
        if coding == b"*":
            wildcard = quality > 0
    return wildcard


def _quality(parameters: bytes) -> float:
    for parameter in parameters.split(b";"):
        name, _, value = parameter.strip().partition(b"=")
        if name.strip().lower() == b"q":
            try:
                return float(value.strip())
            except ValueError:
                return 0.0
    return 1.0
