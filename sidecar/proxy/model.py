"""
What HAProxy should do, from the catalog: for each (service name,
ServicePort) a frontend on the well-known IP and a backend of the service's
ALIVE instances.  Pure: the input is the catalog's records (and, to ride
out our own node losing the cluster, the members we still see and the last
model).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field

from sidecar.addresses import plainIP
from sidecar.catalog import Port, Service, Status

_UNSAFE = re.compile(r"[^a-z0-9-]")
# What may be a server's host name (with haproxy.use_hostnames): letters,
# digits, dots and dashes, nothing that could end a line or a command.
_HOSTNAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})")
# What HAProxy allows in a name.
_UNSAFE_IN_HAPROXY = re.compile(r"[^A-Za-z0-9_.:-]")
# Created times (nanoseconds) outside these bounds say nothing about age:
# before 2000, or more than a day ahead of this node's clock.
_EARLIEST_CREATED = 946_684_800 * 1_000_000_000
_CREATED_SLACK = 86_400 * 1_000_000_000


def bindableAlways(servicePort: int) -> str | None:
    """
    A bind probe that finds every ServicePort bindable.
    """
    return None


@dataclass(frozen=True)
class Admission:
    """
    What this node admits into its proxy besides well-formed records.

    @ivar localHost: this node's host name.  Its own instances win a
        contested ServicePort here, and only they may be addressed at
        loopback or link-local addresses.
    @ivar bindIP: the well-known proxy IP: no server may be addressed at it.
    @ivar reservedPorts: ports of this node's own (gossip, API, stats) that
        no frontend may take.
    @ivar bindable: why a ServicePort cannot be bound on the proxy IP, or
        L{None} when it can (see L{sidecar.proxy.follower}).
    @ivar now: this node's time in nanoseconds, to tell implausible
        C{Created} values; L{None} to trust them all.
    @ivar loopbackTargets: whether other hosts' instances may be addressed
        at loopback or link-local addresses: only for a cluster whose
        "hosts" all share one machine (the demo, tests).
    """

    localHost: str = ""
    bindIP: str = ""
    reservedPorts: frozenset[int] = frozenset()
    bindable: Callable[[int], str | None] = bindableAlways
    now: int | None = None
    loopbackTargets: bool = False


OPEN = Admission(loopbackTargets=True)


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
    Two service names claim one ServicePort: one keeps it, and C{why}.
    """

    servicePort: int
    kept: str
    refused: str
    why: str = "older"

    def __str__(self) -> str:
        return (
            f"ServicePort {self.servicePort}: {self.refused} is refused, "
            f"{self.kept} ({self.why}) keeps it"
        )


@dataclass(frozen=True)
class Refusal:
    """
    Something of the catalog the proxy leaves out, and why: C{what} is
    C{<host>/<id>} for one instance's port, C{ServicePort <n>} for a
    frontend.
    """

    what: str
    reason: str

    def __str__(self) -> str:
        return f"{self.what}: {self.reason}"


@dataclass(frozen=True)
class ProxyModel:
    """
    Every frontend, by ServicePort; the conflicts found; what was refused;
    and the frontends whose servers were kept from the last model because
    their hosts are out of this node's sight (see L{buildModel}).
    """

    frontends: tuple[Frontend, ...] = ()
    conflicts: tuple[Conflict, ...] = ()
    kept: tuple[str, ...] = ()
    refused: tuple[Refusal, ...] = ()

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


def haproxyName(name: str) -> str:
    """
    C{name} with every character HAProxy does not allow in a name as C{-}.
    """
    return _UNSAFE_IN_HAPROXY.sub("-", name)


def buildModel(
    services: Iterable[Service],
    useHostnames: bool = False,
    liveHosts: Collection[str] | None = None,
    previous: ProxyModel | None = None,
    admission: Admission = OPEN,
) -> ProxyModel:
    """
    The proxy for the records C{services}.

    A service name gets a frontend for each ServicePort (of a tcp port) that
    one of its instances, in any status but TOMBSTONE, carries: frontends
    stay while instances come and go, so that most changes need no reload.
    The backend holds the ALIVE instances only.

    Every port and frontend is checked first (see L{Admission}): what
    HAProxy would refuse, or must not be told, is left out and listed in
    the model's C{refused}, and everything else goes on.

    @param useHostnames: address servers by their host's name rather than
        the port's IP.
    @param liveHosts: the members this node sees alive; with C{previous},
        a frontend that would lose every server only because their hosts
        went out of sight keeps its last servers (our node has most likely
        lost the cluster, not they their health).
    """
    refused: list[Refusal] = []
    # Each instance with the ports the proxy may use.
    usable: list[tuple[Service, tuple[Port, ...]]] = []
    for record in services:
        if record.status is Status.TOMBSTONE:
            continue
        admitted = []
        for port in record.ports:
            if port.type != "tcp" or not port.servicePort:
                continue
            fault = _fault(record, port, useHostnames, admission)
            if fault is None:
                admitted.append(port)
            else:
                refused.append(Refusal(f"{record.hostname}/{record.id}", fault))
        if admitted:
            usable.append((record, tuple(admitted)))
    byName: dict[str, list[tuple[Service, tuple[Port, ...]]]] = {}
    for record, ports in usable:
        byName.setdefault(record.name, []).append((record, ports))
    claims: dict[int, list[str]] = {}
    for name, instances in byName.items():
        for servicePort in sorted({p.servicePort for _, ps in instances for p in ps}):
            claims.setdefault(servicePort, []).append(name)
    frontends: dict[int, Frontend] = {}
    conflicts = []
    for servicePort, names in sorted(claims.items()):
        why = _portFault(servicePort, admission)
        if why is not None:
            refused += [
                Refusal(f"ServicePort {servicePort}", f"{n}: {why}") for n in names
            ]
            continue
        ranked = sorted(names, key=lambda n: _precedence(byName[n], admission) + (n,))
        kept, *others = ranked
        conflicts += [
            Conflict(
                servicePort, kept, other, _why(byName[kept], byName[other], admission)
            )
            for other in others
        ]
        frontend, collisions = _frontend(
            kept, servicePort, byName[kept], useHostnames, admission
        )
        frontends[servicePort] = frontend
        refused += collisions
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
        tuple(refused),
    )


def _plausibleCreated(record: Service, admission: Admission) -> bool:
    if record.created < _EARLIEST_CREATED:
        return False
    return admission.now is None or record.created <= admission.now + _CREATED_SLACK


def _precedence(
    instances: list[tuple[Service, tuple[Port, ...]]], admission: Admission
) -> tuple[int, float]:
    """
    How a service name ranks for a contested ServicePort, lowest first: one
    running on this host, then the oldest by a plausible C{Created}; a name
    whose every C{Created} is implausible comes last.
    """
    local = any(r.hostname == admission.localHost for r, _ in instances)
    created = [r.created for r, _ in instances if _plausibleCreated(r, admission)]
    return (0 if local else 1, min(created) if created else float("inf"))


def _why(
    kept: list[tuple[Service, tuple[Port, ...]]],
    other: list[tuple[Service, tuple[Port, ...]]],
    admission: Admission,
) -> str:
    keptRank, otherRank = _precedence(kept, admission), _precedence(other, admission)
    if keptRank[0] < otherRank[0]:
        return "runs on this host"
    if keptRank[1] < otherRank[1]:
        return "older"
    return "first by name"


def _portFault(servicePort: int, admission: Admission) -> str | None:
    """
    Why no frontend may bind C{servicePort}, or L{None}.
    """
    if servicePort in admission.reservedPorts:
        return f"ServicePort {servicePort} is one of this node's own ports"
    why = admission.bindable(servicePort)
    if why is not None:
        return f"ServicePort {servicePort} cannot be bound: {why}"
    return None


def _address(service: Service, port: Port, useHostnames: bool) -> str:
    return service.hostname if useHostnames or not port.ip else port.ip


def _fault(
    service: Service, port: Port, useHostnames: bool, admission: Admission
) -> str | None:
    """
    Why HAProxy must not be told of this port of C{service}, or L{None}:
    records come from other nodes, and HAProxy's file must be neither
    theirs to write nor theirs to make HAProxy refuse.
    """
    if not 0 < port.servicePort <= 65535 or not 0 < port.port <= 65535:
        return f"port {port.port} or ServicePort {port.servicePort} out of range"
    address = _address(service, port, useHostnames)
    remote = service.hostname != admission.localHost and not admission.loopbackTargets
    if useHostnames:
        if not _HOSTNAME.fullmatch(address):
            return f"not a host name: {address!r:.80}"
        name = address.lower().rstrip(".")
        if remote and (name == "localhost" or name.endswith(".localhost")):
            return f"host name {address} of another host is this node's own"
        return None
    try:
        ip = plainIP(address)
    except ValueError:
        return f"not an IP address: {address!r:.80}"
    if admission.bindIP and ip == plainIP(admission.bindIP):
        return f"address {address} is the proxy's own IP"
    if remote and (ip.is_loopback or ip.is_link_local or ip.is_unspecified):
        return f"address {address} of another host is this node's own"
    return None


def _frontend(
    name: str,
    servicePort: int,
    instances: list[tuple[Service, tuple[Port, ...]]],
    useHostnames: bool,
    admission: Admission,
) -> tuple[Frontend, list[Refusal]]:
    """
    C{name}'s frontend on C{servicePort}, and the servers refused because
    their names, sanitised, collide with another's (this host's instances,
    then the others by host and ID, keep theirs).
    """
    # The newest instance's ProxyMode is the service's.
    newest = max((r for r, _ in instances), key=lambda s: (s.updated, s.id))
    servers: dict[str, Server] = {}
    collisions = []
    ranked = sorted(
        instances,
        key=lambda i: (i[0].hostname != admission.localHost, i[0].hostname, i[0].id),
    )
    for instance, ports in ranked:
        if instance.status is not Status.ALIVE:
            continue
        for port in ports:
            if port.servicePort != servicePort:
                continue
            serverName = haproxyName(f"{instance.hostname}-{instance.id}")
            if serverName in servers:
                collisions.append(
                    Refusal(
                        f"{instance.hostname}/{instance.id}",
                        f"server name {serverName} is taken in "
                        f"{sanitize(name)}-{servicePort} by "
                        f"{servers[serverName].hostname}",
                    )
                )
            else:
                servers[serverName] = Server(
                    serverName,
                    _address(instance, port, useHostnames),
                    port.port,
                    instance.hostname,
                )
            break
    frontend = Frontend(
        name=f"{sanitize(name)}-{servicePort}",
        service=name,
        servicePort=servicePort,
        mode="tcp" if newest.proxyMode == "tcp" else "http",
        websocket=newest.proxyMode == "ws",
        servers=tuple(sorted(servers.values())),
    )
    return frontend, collisions


def describeChanges(before: ProxyModel | None, after: ProxyModel) -> str:
    """
    What changed from C{before} to C{after}, for a log line a person reads:
    frontends added and removed, and each frontend's servers put in and
    taken out, e.g. C{web:10001 +host-b-i2@10.0.0.2:8080 -host-a-i1@10.0.0.1:8080;
    api:10002 added}.
    """
    old = {f.servicePort: f for f in (before.frontends if before else ())}
    new = {f.servicePort: f for f in after.frontends}
    parts = []
    for port in sorted(old.keys() | new.keys()):
        if port not in old:
            parts.append(f"{new[port].service}:{port} added")
        elif port not in new:
            parts.append(f"{old[port].service}:{port} removed")
        else:
            was = {_serverLabel(s) for s in old[port].servers}
            now = {_serverLabel(s) for s in new[port].servers}
            moves = [f"+{label}" for label in sorted(now - was)]
            moves += [f"-{label}" for label in sorted(was - now)]
            if moves:
                parts.append(f"{new[port].service}:{port} {' '.join(moves)}")
    return "; ".join(parts) or "no frontend or server changed"


def _serverLabel(server: Server) -> str:
    return f"{server.name}@{server.address}:{server.port}"
