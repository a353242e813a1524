"""
The service record: one instance of a service on one host, as the Go
Sidecar models it (C{service.Service} and C{service.Port}).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace


class Status(enum.IntEnum):
    """
    A service instance's status; the numbers are the Go Sidecar's and travel
    as JSON integers.
    """

    ALIVE = 0
    TOMBSTONE = 1
    UNHEALTHY = 2
    UNKNOWN = 3
    DRAINING = 4

    @property
    def label(self) -> str:
        """
        The Go Sidecar's C{StatusString}: C{Alive}, C{Tombstone}, ...
        """
        return self.name.capitalize()


@dataclass(frozen=True, slots=True)
class Port:
    """
    One published port of an instance.

    @ivar type: C{"tcp"} or C{"udp"}.
    @ivar port: the host-side port that reaches the instance.
    @ivar servicePort: the cluster-wide port the proxy listens on; 0 means
        the port is not proxied.
    @ivar ip: the address to reach C{port} on.
    """

    type: str
    port: int
    servicePort: int = 0
    ip: str = ""


@dataclass(frozen=True, slots=True)
class Service:
    """
    One instance of a service on one host.  Immutable: a change is a new
    record with a newer C{updated}.

    Timestamps are integer nanoseconds since the Unix epoch (UTC), see
    L{sidecar.catalog.timestamps}.
    """

    id: str
    name: str
    image: str = ""
    created: int = 0
    hostname: str = ""
    ports: tuple[Port, ...] = field(default=())
    updated: int = 0
    proxyMode: str = ""
    status: Status = Status.ALIVE

    @property
    def key(self) -> tuple[str, str]:
        """
        What identifies this instance across updates: (hostname, ID).
        """
        return (self.hostname, self.id)

    @property
    def isTombstone(self) -> bool:
        return self.status is Status.TOMBSTONE

    def withStatus(self, status: Status, updated: int) -> Service:
        """
        A copy of this record with another status, stamped C{updated}.
        """
        return replace(self, status=status, updated=updated)

    def tombstone(self, updated: int) -> Service:
        """
        The tombstone that replaces this record at C{updated}.
        """
        return self.withStatus(Status.TOMBSTONE, updated)

    def sameContentAs(self, other: Service) -> bool:
        """
        Whether C{other} says the same as this record in all but its
        C{updated} stamp (a refresh, not a change).
        """
        return replace(self, updated=0) == replace(other, updated=0)
