"""
Which writes the API refuses as cross-site: a web page open in a browser
on the host must not drain services.  Pure: a request's headers in, a
reason out.

A browser sends C{Origin} on every cross-origin C{POST} and C{DELETE},
and a page can send a "simple" request (no preflight) only with a form or
text content type.  Scripts (C{curl -X POST .../drain}, Go-era tools) send
neither, and are let through; so is the node's own page, which is
same-origin and sends C{Content-Type: application/json}.
"""

from __future__ import annotations

# The content types a page may send cross-site without a preflight.
SIMPLE_TYPES = frozenset(
    {b"application/x-www-form-urlencoded", b"multipart/form-data", b"text/plain"}
)


def crossSiteReason(
    origin: bytes | None, contentType: bytes | None, ownOrigin: bytes
) -> str | None:
    """
    Why a write with these headers is refused, or L{None} if it is not.

    @param origin: the request's C{Origin}, if any.
    @param contentType: its C{Content-Type}, if any.
    @param ownOrigin: this API's own origin, C{scheme://host[:port]} as
        the request's C{Host} names it.
    """
    if origin is not None and origin.strip().lower() != ownOrigin.lower():
        shown = origin.decode("latin-1")[:200]
        return f"cross-site write refused: Origin {shown!r} is not this API's"
    if contentType is not None:
        essence = contentType.split(b";", 1)[0].strip().lower()
        if essence in SIMPLE_TYPES:
            return (
                "cross-site write refused: Content-Type "
                f"{essence.decode('latin-1')!r} is a browser form's; send none or "
                "application/json"
            )
    return None
