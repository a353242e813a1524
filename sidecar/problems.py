"""
L{Problems}: every fault the node knows of, in one place, so that it can
be shown outside the log (C{/api/health}'s C{Problems}, the
C{sidecar_problems} gauge, the web page, C{sidecar status}).

A part raises a problem under a kind and a subject when it sees a fault,
and clears it when the cause goes; a problem raised again keeps the
moment it was first seen.  Pure: the time comes from an injected clock.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from twisted.internet.interfaces import IReactorTime

from sidecar.catalog.timestamps import formatTimestamp

# The kinds of problem the node reports.  A new source adds its own.
HAPROXY = "haproxy"  # the proxy file could not be written, checked or run
REFUSED = "refused"  # a record left out of the proxy
CONFLICT = "conflict"  # two services claim one ServicePort
KEPT = "kept"  # a backend kept whose hosts are out of sight
STATIC_FILE = "static-file"  # the static file cannot be read or is invalid
DOCKER = "docker"  # the Docker engine cannot be read
LISTENER = "listener"  # a change listener does not accept its events
CLOCK_SKEW = "clock-skew"  # a member's clock is far from ours
UNENCRYPTED_GOSSIP = "gossip-unencrypted"  # gossip beyond loopback, no key
GO_PEERS = "go-peers"  # a record too large for Go peers to relay
XDS = "xds"  # the xDS server cannot listen, or a client refused what it sent


def conflictSubject(name: str, servicePort: int) -> str:
    """
    The subject of a L{CONFLICT}: the service refused a ServicePort.
    """
    return f"{name} ServicePort {servicePort}"


@dataclass(frozen=True)
class Problem:
    """
    One fault: what kind, what it is about, what is wrong, and since when
    (nanoseconds since the epoch).
    """

    kind: str
    subject: str
    message: str
    since: int

    def toJSON(self) -> dict[str, Any]:
        """
        As C{/api/health} lists it.
        """
        return {
            "Kind": self.kind,
            "Subject": self.subject,
            "Message": self.message,
            "Since": formatTimestamp(self.since),
        }


class Problems:
    """
    The node's current problems, by (kind, subject).
    """

    def __init__(self, clock: IReactorTime) -> None:
        self._clock = clock
        self._current: dict[tuple[str, str], Problem] = {}

    def raise_(self, kind: str, subject: str, message: str) -> None:
        """
        C{subject} has a problem of C{kind}; one already raised keeps its
        C{since} and takes the new message.
        """
        key = (kind, subject)
        was = self._current.get(key)
        since = was.since if was is not None else self._now()
        self._current[key] = Problem(kind, subject, message, since)

    def clear(self, kind: str, subject: str) -> None:
        """
        C{subject}'s problem of C{kind} has gone (if it had one).
        """
        self._current.pop((kind, subject), None)

    def replaceKind(self, kind: str, messages: Mapping[str, str]) -> None:
        """
        The problems of C{kind} are now exactly C{messages} (subject to
        message): for a part that sees all its faults at once, such as a
        proxy update; those not listed clear.
        """
        for key in [key for key in self._current if key[0] == kind]:
            if key[1] not in messages:
                del self._current[key]
        for subject, message in messages.items():
            self.raise_(kind, subject, message)

    def current(self) -> list[Problem]:
        """
        The problems now, sorted by kind, then subject.
        """
        return [self._current[key] for key in sorted(self._current)]

    def counts(self) -> Counter[str]:
        """
        How many problems of each kind there are now.
        """
        return Counter(kind for kind, _ in self._current)

    def _now(self) -> int:
        return round(self._clock.seconds() * 1_000_000_000)
