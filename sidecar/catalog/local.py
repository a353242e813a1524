"""
What discovery reports about this node's own services, before the catalog
stamps and publishes them.
"""

from __future__ import annotations

from dataclasses import dataclass

from .service import Service


@dataclass(frozen=True, slots=True)
class CheckSpec:
    """
    How a service asks to be health checked: a checker name (C{HttpGet},
    C{Tcp}, C{External}, ...) and its argument string, as labels and the
    static file give them.  An empty C{type} means "the default check".

    @ivar interval: seconds between checks, or L{None} for the node's
        setting.
    @ivar timeout: seconds one check may take, or L{None} for the node's
        setting.
    """

    type: str = ""
    args: str = ""
    interval: float | None = None
    timeout: float | None = None


@dataclass(frozen=True, slots=True)
class LocalService:
    """
    One service instance found on this host by a discoverer.

    @ivar service: the record to publish (its C{updated} and C{status} are
        set when it is published).
    @ivar check: how to health check it.
    @ivar listenPort: a port on this host that wants change events, or
        L{None}.
    """

    service: Service
    check: CheckSpec = CheckSpec()
    listenPort: int | None = None
