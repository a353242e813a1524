"""
An immutable, versioned set of xDS resources: what every client of the
control plane is served at one moment.  Pure: no gRPC, no reactor.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from google.protobuf.any_pb2 import Any as AnyProto
from google.protobuf.message import Message

_PREFIX = "type.googleapis.com/"
LISTENER = _PREFIX + "envoy.config.listener.v3.Listener"
ROUTE = _PREFIX + "envoy.config.route.v3.RouteConfiguration"
CLUSTER = _PREFIX + "envoy.config.cluster.v3.Cluster"
ENDPOINT = _PREFIX + "envoy.config.endpoint.v3.ClusterLoadAssignment"

# The types served, in the order a client should apply them.
TYPES = (CLUSTER, ENDPOINT, LISTENER, ROUTE)
# The types whose empty subscription means "all of them" (xDS wildcard).
WILDCARD_TYPES = frozenset({LISTENER, CLUSTER})
SHORT = {LISTENER: "LDS", ROUTE: "RDS", CLUSTER: "CDS", ENDPOINT: "EDS"}


@dataclass(frozen=True)
class Resource:
    """
    One named resource, packed, with a version that is a digest of its
    bytes (the same content has the same version in every snapshot and
    after a restart).

    @ivar wildcard: whether a wildcard subscription gets it; a gRPC
        client's C{api_listener} is only served by name, since Envoy
        rejects an LDS update that carries one.
    """

    name: str
    version: str
    packed: AnyProto = field(compare=False)
    wildcard: bool = True


def resource(name: str, message: Message, wildcard: bool = True) -> Resource:
    """
    C{message} as the resource C{name}.
    """
    packed = AnyProto()
    packed.Pack(message)
    digest = hashlib.sha256(packed.value).hexdigest()[:16]
    return Resource(name, digest, packed, wildcard)


@dataclass(frozen=True)
class TypeResources:
    """
    All the resources of one type, by name, and the type's version: a
    digest of every name and version in it.
    """

    byName: Mapping[str, Resource]
    version: str

    def select(self, names: frozenset[str], wildcard: bool) -> list[Resource]:
        """
        What a subscription to C{names} gets, in name order, with every
        resource a wildcard may see when C{wildcard}.
        """
        return [
            r
            for n, r in sorted(self.byName.items())
            if n in names or (wildcard and r.wildcard)
        ]


def _typeResources(resources: Iterable[Resource]) -> TypeResources:
    byName = {r.name: r for r in resources}
    digest = hashlib.sha256()
    for name in sorted(byName):
        digest.update(f"{name}\0{byName[name].version}\0".encode())
    return TypeResources(MappingProxyType(byName), digest.hexdigest()[:16])


@dataclass(frozen=True)
class Snapshot:
    """
    Every type's resources.  Built in the reactor thread and handed to the
    gRPC server's thread as it is: nothing in it changes.

    @ivar serial: how many snapshots were published before this one, for
        the API and the benchmark.
    """

    types: Mapping[str, TypeResources]
    serial: int = 0

    def of(self, typeURL: str) -> TypeResources:
        return self.types[typeURL]

    def versions(self) -> dict[str, str]:
        """
        Each type's version, by the type's short name (C{LDS}, ...).
        """
        return {SHORT[t]: self.types[t].version for t in TYPES}


def makeSnapshot(
    resources: Mapping[str, Iterable[Resource]], serial: int = 0
) -> Snapshot:
    """
    A snapshot of C{resources} (type URL to resources); a type not given
    is empty.
    """
    return Snapshot(
        MappingProxyType(
            {t: _typeResources(resources.get(t, ())) for t in TYPES},
        ),
        serial,
    )


EMPTY = makeSnapshot({})
