"""
The Go Sidecar's JSON documents built from a L{ServicesState} or a
L{CatalogSnapshot} of one: the state blob (C{/api/state.json},
anti-entropy, listener events) and the grouped views of
C{/api/services.json} and C{/api/services/<name>.json}.  Given a
snapshot, they run on any thread.
"""

from __future__ import annotations

from collections.abc import Iterable

from .codec import JSONObject, serverToJSON, serviceToJSON
from .service import Service
from .snapshot import CatalogSnapshot
from .state import ServicesState
from .timestamps import formatTimestamp

Catalog = ServicesState | CatalogSnapshot


def _snapshot(catalog: Catalog) -> CatalogSnapshot:
    return catalog if isinstance(catalog, CatalogSnapshot) else catalog.snapshot()


def stateDocument(catalog: Catalog) -> JSONObject:
    """
    The Go C{catalog.ServicesState} object: every server with every record,
    tombstones included.
    """
    state = _snapshot(catalog)
    servers = sorted(state.servers(), key=lambda server: server.name)
    return {
        "Servers": {
            server.name: serverToJSON(
                server.name,
                server.services,
                server.lastUpdated,
                server.lastChanged,
            )
            for server in servers
        },
        "LastChanged": formatTimestamp(state.lastChanged),
        "ClusterName": state.clusterName,
        "Hostname": state.hostname,
    }


def servicesDocument(catalog: Catalog, memberNames: Iterable[str]) -> JSONObject:
    """
    C{/api/services.json}: instances grouped by service name (oldest first),
    the cluster's members with their record counts, and the cluster name.
    """
    state = _snapshot(catalog)
    servers = {server.name: server for server in state.servers()}
    members = {}
    for name in sorted(memberNames):
        server = servers.get(name)
        members[name] = {
            "Name": name,
            "LastUpdated": formatTimestamp(server.lastUpdated if server else 0),
            "ServiceCount": len(server.services) if server else 0,
        }
    return {
        "Services": _grouped(state.byName()),
        "ClusterMembers": members,
        "ClusterName": state.clusterName,
    }


def byServiceDocument(catalog: Catalog) -> JSONObject:
    """
    The Go C{ServicesState.ByService()} map, C{{<name>: [Service, ...]}}:
    C{/api/watch}'s default payload.
    """
    return _grouped(_snapshot(catalog).byName())


def serviceDocument(catalog: Catalog, name: str) -> JSONObject | None:
    """
    C{/api/services/<name>.json}, or L{None} when no instance has that name.
    """
    state = _snapshot(catalog)
    instances = state.byName().get(name)
    if not instances:
        return None
    return {
        "Services": _grouped({name: instances}),
        "ClusterName": state.clusterName,
    }


def _grouped(groups: dict[str, list[Service]]) -> JSONObject:
    return {name: [serviceToJSON(s) for s in group] for name, group in groups.items()}
