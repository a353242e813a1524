"""
What HAProxy should do, from the catalog: for each (service name,
ServicePort) a frontend on the well-known IP and a backend of the service's
ALIVE instances.  Pure: the input is the catalog's records (and, to ride
out our own node losing the cluster, the members we still see and the last
model).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

from sidecar.catalog import Port, Service, Status

_UNSAFE = re.compile(r"[^a-z0-9-]")
# What may be a server's address in HAProxy's file and runtime commands: an
# IPv4 or IPv6 address or a host name, nothing that could end a line or a
# command.
_ADDRESS = re.compile(r"[A-Za-z0-9][A-Za-z0-9.:-]{0,252}")
# What HAProxy allows in a name.
_UNSAFE_IN_HAPROXY = re.compile(r"[^A-Za-z0-9_.:-]")


@dataclass(frozen=True, order=True)
class Server:
    """
    One instance in a backend: HAProxy's C{server <name> <address>:<port>}.
    """

    name: str
    address: str
    port: int
    hostname: str = field(compare=False)


@dataclass(frozen=True)
class Frontend:
    """
    One service's ServicePort: a frontend on C{bind_ip:servicePort} and the
    backend of the same name.

    @ivar mode: C{http} or C{tcp}.
    @ivar websocket: whether the service's ProxyMode is C{ws} (C{http}
        with long tunnel timeouts).
    """

    name: str
    service: str
    servicePort: int
    mode: str
    websocket: bool
    servers: tuple[Server, ...]


@dataclass(frozen=True)
class Conflict:
    """
    Two service names claim one ServicePort: the older one keeps it.
    """

    servicePort: int
    kept: str
    refused: str

    def __str__(self) -> str:
        return (
            f"ServicePort {self.servicePort}: {self.refused} is refused, "
            f"{self.kept} (older) keeps it"
        )


@dataclass(frozen=True)
class ProxyModel:
    """
    Every frontend, by ServicePort; the conflicts found; and the frontends
    whose servers were kept from the last model because their hosts are
    out of this node's sight (see L{buildModel}).
    """

    frontends: tuple[Frontend, ...] = ()
    conflicts: tuple[Conflict, ...] = ()
    kept: tuple[str, ...] = ()

    def frontend(self, name: str) -> Frontend | None:
        for frontend in self.frontends:
            if frontend.name == name:
                return frontend
        return None

    def layout(self) -> tuple[tuple[str, int, str, bool], ...]:
        """
        What only a reload can change: the frontends and their modes, not
        their servers.
        """
        return tuple(
            (f.name, f.servicePort, f.mode, f.websocket) for f in self.frontends
        )


def sanitize(name: str) -> str:
    """
    The Go Sidecar's proxy name for a service: every character outside
    C{[a-z0-9-]} becomes C{-}.
    """
    return _UNSAFE.sub("-", name)


def buildModel(
    services: Iterable[Service],
    useHostnames: bool = False,
    liveHosts: Collection[str] | None = None,
    previous: ProxyModel | None = None,
) -> ProxyModel:
    """
    The proxy for the records C{services}.

    A service name gets a frontend for each ServicePort (of a tcp port) that
    one of its instances, in any status but TOMBSTONE, carries: frontends
    stay while instances come and go, so that most changes need no reload.
    The backend holds the ALIVE instances only.

    @param useHostnames: address servers by their host's name rather than
        the port's IP.
    @param liveHosts: the members this node sees alive; with C{previous},
        a frontend that would lose every server only because their hosts
        went out of sight keeps its last servers (our node has most likely
        lost the cluster, not they their health).
    """
    records = [s for s in services if s.status is not Status.TOMBSTONE]
    byName: dict[str, list[Service]] = {}
    for record in records:
        byName.setdefault(record.name, []).append(record)
    claims: dict[int, list[str]] = {}
    for name, instances in byName.items():
        for servicePort in sorted(_servicePorts(instances)):
            claims.setdefault(servicePort, []).append(name)
    frontends: dict[int, Frontend] = {}
    conflicts = []
    for servicePort, names in sorted(claims.items()):
        names.sort(key=lambda n: (min(s.created for s in byName[n]), n))
        kept, *refused = names
        conflicts += [Conflict(servicePort, kept, other) for other in refused]
        frontends[servicePort] = _frontend(
            kept, servicePort, byName[kept], useHostnames
        )
    keptNames: list[str] = []
    if previous is not None and liveHosts is not None:
        for old in previous.frontends:
            new = frontends.get(old.servicePort)
            lostSight = old.servers and not any(
                s.hostname in liveHosts for s in old.servers
            )
            emptied = new is None or (new.name == old.name and not new.servers)
            if lostSight and emptied:
                frontends[old.servicePort] = old
                keptNames.append(old.name)
    return ProxyModel(
        tuple(frontends[port] for port in sorted(frontends)),
        tuple(conflicts),
        tuple(sorted(keptNames)),
    )


def _servicePorts(instances: list[Service]) -> set[int]:
    return {
        port.servicePort
        for instance in instances
        for port in instance.ports
        if port.type == "tcp" and 0 < port.servicePort <= 65535
    }


def unusable(services: Iterable[Service], useHostnames: bool = False) -> list[str]:
    """
    The records the proxy must ignore, and why, one line each: a port or
    ServicePort out of range, or an address that is not one (records come
    from other nodes, and HAProxy's file must not be theirs to write).
    """
    problems = []
    for s in services:
        if s.status is Status.TOMBSTONE:
            continue
        for port in s.ports:
            if port.type != "tcp" or not port.servicePort:
                continue
            fault = _fault(s, port, useHostnames)
            if fault is not None:
                problems.append(f"{s.hostname}/{s.id}: {fault}")
    return problems


def _address(service: Service, port: Port, useHostnames: bool) -> str:
    return service.hostname if useHostnames or not port.ip else port.ip


def _fault(service: Service, port: Port, useHostnames: bool) -> str | None:
    """
    Why HAProxy must not be told of this port of C{service}, or L{None}.
    """
    if not 0 < port.servicePort <= 65535 or not 0 < port.port <= 65535:
        return f"port {port.port} or ServicePort {port.servicePort} out of range"
    address = _address(service, port, useHostnames)
    if not _ADDRESS.fullmatch(address):
        return f"not an address: {address!r:.80}"
    return None


def _frontend(
    name: str, servicePort: int, instances: list[Service], useHostnames: bool
) -> Frontend:
    # The newest instance's ProxyMode is the service's.
    newest = max(instances, key=lambda s: (s.updated, s.id))
    servers = []
    for instance in instances:
        if instance.status is not Status.ALIVE:
            continue
        for port in instance.ports:
            if port.type == "tcp" and port.servicePort == servicePort:
                if _fault(instance, port, useHostnames) is not None:
                    continue  # not something HAProxy may be told; see unusable()
                serverName = f"{instance.hostname}-{instance.id}"
                servers.append(
                    Server(
                        _UNSAFE_IN_HAPROXY.sub("-", serverName),
                        _address(instance, port, useHostnames),
                        port.port,
                        instance.hostname,
                    )
                )
                break
    return Frontend(
        name=f"{sanitize(name)}-{servicePort}",
        service=name,
        servicePort=servicePort,
        mode="tcp" if newest.proxyMode == "tcp" else "http",
        websocket=newest.proxyMode == "ws",
        servers=tuple(sorted(servers)),
    )
