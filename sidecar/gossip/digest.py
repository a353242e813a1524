"""
Catalog digests for push-pull between our own nodes: one short hash per
host of what the catalog holds of it, so that two nodes whose catalogs
agree exchange bytes in proportion to hosts, not records.

A node that dials one of ours (L{sidecar.gossip.peers.acceptsDigests}) sends
its digest as the push-pull's user state; the other answers with its
records of only the hosts whose hash differs, as an ordinary Go
C{ServicesState} document.  What the dialling node holds newer, the other
gets when it dials in turn.  Go Sidecars and serf agents never see a
digest: they are dialled, and answered, with the whole state as before.
Pure.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable

from sidecar.catalog import DecodeError, Service

# How a digest document starts; no Go ServicesState starts so.
_PREFIX = b'{"Digest":'
# Hex digits of each host's hash: 64 bits, ample to tell two versions of
# one host's records apart.
_HASH_DIGITS = 16


def hostHash(records: Iterable[Service]) -> str:
    """
    The hash of one host's records: their IDs, stamps and statuses, which
    the merge rule orders by (a record with other content has another
    stamp).
    """
    lines = sorted(f"{r.id}\0{r.updated}\0{int(r.status)}" for r in records)
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:_HASH_DIGITS]


def encodeDigest(hashes: dict[str, str]) -> bytes:
    """
    A digest document: C{{"Digest": {hostname: hash}}}.
    """
    return json.dumps({"Digest": hashes}, separators=(",", ":")).encode()


def isDigest(data: bytes) -> bool:
    return data.startswith(_PREFIX)


def decodeDigest(data: bytes) -> dict[str, str]:
    """
    The hashes of a digest document (L{isDigest}).

    @raise DecodeError: naming what is wrong.
    """
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise DecodeError(f"digest: not JSON: {e}") from None
    hashes = document.get("Digest") if isinstance(document, dict) else None
    if not isinstance(hashes, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in hashes.items()
    ):
        raise DecodeError("digest: Digest is not an object of strings")
    return hashes
