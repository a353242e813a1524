"""
What a member's metadata and versions say about it: whether it is one of
ours (it publishes its drains itself), whether its records live as long as
it is a member, or a Go Sidecar, and what a Go Sidecar can pass on.  Pure.

A member that follows membership (L{FOLLOWS_MEMBERSHIP}) neither refreshes
its own records while no peer needs it nor expires another such member's:
their records live while their origin is a member.  Go Sidecars, and ours
from before, expire a record they have not heard of for 80 s; while one is
present, every node refreshes its records every 25 s, as all did before
(L{expectsRefreshes}).

The Go Sidecar re-broadcasts every record it learns of (by gossip or by
push-pull) as one user message in one UDP packet, and its broadcast queue
serves the oldest message first: a record that never fits a packet blocks
every record queued after it, for as long as Go keeps re-sending it (its
tombstone's life).  Records over L{GO_RELAY_LIMIT} bytes must never reach
a Go node.
"""

from __future__ import annotations

import json

from .packets import UDP_BUFFER_SIZE

# In a node's metadata: it publishes its drains itself, and undrains, so
# that peers need not hold its ALIVE records as DRAINING (the Go Sidecar's
# sticky rule, for origins that keep announcing ALIVE while drained).
PUBLISHES_DRAINS = {"Drains": "published"}
# In a node's metadata: its records live as long as it is a member; peers
# need no refresh of them.  Such a node also takes a digest as push-pull
# user state (L{sidecar.gossip.digest}): both came in one version, and one
# mark keeps the metadata, gossiped in every alive message, short.
FOLLOWS_MEMBERSHIP = {"Records": "membership"}

# The fork's gossip(): a packet of UDPBufferSize (1400) bytes less the
# compound header (2); each user message costs its length plus the compound
# entry (2) and the user message type byte (1).
GO_RELAY_LIMIT = UDP_BUFFER_SIZE - 2 - 2 - 1

# What an operator can do about a record over the limit.
GO_RELAY_ADVICE = (
    f"the Go Sidecar cannot relay a record over {GO_RELAY_LIMIT} bytes, so Go "
    "nodes do not get it: shorten the service's name, image or port list, or "
    "finish migrating the Go nodes (docs/migrating.md)"
)


def nodeMeta(clusterName: str) -> bytes:
    """
    The node metadata the Go Sidecar gossips (its cluster and state), and
    that this node publishes its drains itself and that its records follow
    membership (and so that it takes a digest in a push-pull); Go ignores
    the extra keys.
    """
    return json.dumps(
        {
            "ClusterName": clusterName,
            "State": "Running",
            **PUBLISHES_DRAINS,
            **FOLLOWS_MEMBERSHIP,
        },
        separators=(",", ":"),
    ).encode()


def _says(meta: bytes, marks: dict[str, str]) -> bool:
    try:
        document = json.loads(meta)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return False
    return isinstance(document, dict) and all(
        document.get(key) == value for key, value in marks.items()
    )


def publishesDrains(meta: bytes) -> bool:
    """
    Whether a member's metadata says it publishes its drains itself.
    """
    return _says(meta, PUBLISHES_DRAINS)


def followsMembership(meta: bytes) -> bool:
    """
    Whether a member's metadata says its records live as long as it is a
    member, unrefreshed.
    """
    return _says(meta, FOLLOWS_MEMBERSHIP)


def acceptsDigests(meta: bytes) -> bool:
    """
    Whether a member's metadata says it takes a digest in a push-pull:
    ours whose records follow membership do.
    """
    return followsMembership(meta)


def expectsRefreshes(vsn: bytes, meta: bytes) -> bool:
    """
    Whether a member expires records it has not heard of for 80 s: a Go
    Sidecar, or one of ours that does not follow membership (an older
    version).  Serf agents hold no records.
    """
    if isGoSidecar(vsn, meta):
        return True
    return publishesDrains(meta) and not followsMembership(meta)


def isGoSidecar(vsn: bytes, meta: bytes) -> bool:
    """
    Whether a member with these versions and metadata is a Go Sidecar: it
    claims no delegate protocol (serf claims 2-5) and does not mark its
    metadata as ours do.
    """
    return len(vsn) >= 6 and vsn[3:6] == bytes(3) and not publishesDrains(meta)
