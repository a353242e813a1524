"""
The Go Sidecar's JSON documents built from a L{ServicesState}: the state
blob (C{/api/state.json}, anti-entropy, listener events) and the grouped
views of C{/api/services.json} and C{/api/services/<name>.json}.
"""

from __future__ import annotations

from collections.abc import Iterable

from .codec import JSONObject, serverToJSON, serviceToJSON
from .service import Service
from .state import ServicesState
from .timestamps import formatTimestamp


def stateDocument(state: ServicesState) -> JSONObject:
    """
    The Go C{catalog.ServicesState} object: every server with every record,
    tombstones included.
    """
    servers = sorted(state.servers(), key=lambda server: server.name)
    return {
        "Servers": {
            server.name: serverToJSON(
                server.name,
                state.serverServices(server),
                server.lastUpdated,
                server.lastChanged,
            )
            for server in servers
        },
        "LastChanged": formatTimestamp(state.lastChanged),
        "ClusterName": state.clusterName,
        "Hostname": state.hostname,
    }


def servicesDocument(state: ServicesState, memberNames: Iterable[str]) -> JSONObject:
    """
    C{/api/services.json}: instances grouped by service name (oldest first),
    the cluster's members with their record counts, and the cluster name.
    """
    servers = {server.name: server for server in state.servers()}
    members = {}
    for name in sorted(memberNames):
        server = servers.get(name)
        members[name] = {
            "Name": name,
            "LastUpdated": formatTimestamp(server.lastUpdated if server else 0),
            "ServiceCount": len(server.entries) if server else 0,
        }
    return {
        "Services": _grouped(state.byName()),
        "ClusterMembers": members,
        "ClusterName": state.clusterName,
    }


def byServiceDocument(state: ServicesState) -> JSONObject:
    """
    The Go C{ServicesState.ByService()} map, C{{<name>: [Service, ...]}}:
    C{/api/watch}'s default payload.
    """
    return _grouped(state.byName())


def serviceDocument(state: ServicesState, name: str) -> JSONObject | None:
    """
    C{/api/services/<name>.json}, or L{None} when no instance has that name.
    """
    instances = state.byName().get(name)
    if not instances:
        return None
    return {
        "Services": _grouped({name: instances}),
        "ClusterName": state.clusterName,
    }


def _grouped(groups: dict[str, list[Service]]) -> JSONObject:
    return {name: [serviceToJSON(s) for s in group] for name, group in groups.items()}
