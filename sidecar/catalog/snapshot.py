"""
L{CatalogSnapshot}: an immutable copy of what the catalog's documents
show.  The catalog lives on the reactor thread; a snapshot, taken there in
one pass, can be rendered and encoded anywhere.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property

from .order import groupByName
from .service import Service


@dataclass(frozen=True, slots=True)
class ServerView:
    """
    One host's part of a snapshot: its records as they read, and Go's
    bookkeeping stamps.
    """

    name: str
    lastUpdated: int
    lastChanged: int
    services: tuple[Service, ...]


@dataclass(frozen=True)
class CatalogSnapshot:
    """
    The catalog at one L{version<sidecar.catalog.state.ServicesState.version>},
    readable as the documents read a live catalog.
    """

    version: int
    modified: int
    hostname: str
    clusterName: str
    lastChanged: int
    serverViews: tuple[ServerView, ...]

    def servers(self) -> Iterator[ServerView]:
        return iter(self.serverViews)

    def byName(self) -> dict[str, list[Service]]:
        """
        Records grouped by name, as L{groupByName}; worked out once per
        snapshot (every C{/api/services/<name>.json} of a version reads
        it), so it is not to be changed.
        """
        return self._byName

    @cached_property
    def _byName(self) -> dict[str, list[Service]]:
        return groupByName(
            service for server in self.serverViews for service in server.services
        )
