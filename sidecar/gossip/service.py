"""
L{GossipService}: the cluster as a Twisted service.  It binds UDP and TCP on
the gossip port, runs a L{Cluster} carrying the catalog, and leaves the
cluster gracefully when stopped (which twistd does on SIGTERM and SIGINT).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList, maybeDeferred
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IListeningPort
from twisted.logger import Logger
from zope.interface import implementer

from sidecar.catalog import ServicesState
from sidecar.catalog.timestamps import formatTimestamp
from sidecar.interfaces import IMembership
from sidecar.problems import UNENCRYPTED_GOSSIP, Problems

from .admission import Admission, catalogAdmission
from .cluster import (
    DELEGATE_VERSIONS_SERF,
    DELEGATE_VERSIONS_SIDECAR,
    Cluster,
    localMember,
)
from .delegate import CatalogBroadcaster, CatalogDelegate, WithheldRecords
from .interfaces import IGossipDelegate
from .members import Member
from .messages import NodeState
from .peers import GO_RELAY_ADVICE, GO_RELAY_LIMIT
from .prober import Address, memberAddress
from .profiles import LAN, Timing
from .security import Keyring, exposureWarning
from .serf import SerfAwareDelegate, SerfClock
from .streams import StreamMessage
from .tcp import StreamDialer, StreamServerFactory
from .transport import GossipDatagramProtocol, PacketCounters

# With port 0, TCP picks a port and UDP must get the same one; another
# program may hold it for UDP, so try a few times.
_BIND_ATTEMPTS = 10


@dataclass(frozen=True)
class GossipSettings:
    """
    What the gossip layer needs from the configuration.

    @ivar advertise: the address peers use; L{None}: the bind address (at
        the port actually bound).
    @ivar keys: the encryption keys, the primary first; empty for none.
    @ivar maxClockSkew: seconds a record may be stamped ahead of this
        node's clock before it is refused.
    """

    name: str
    clusterName: str
    bind: Address
    advertise: Address | None = None
    seeds: tuple[Address, ...] = ()
    keys: tuple[bytes, ...] = ()
    acceptUnnamedPeers: bool = False
    timing: Timing = LAN
    maxClockSkew: float = 30.0


@implementer(IMembership)
class GossipService(Service):
    """
    Gossip for one node, carrying the catalog C{state}.

    @ivar cluster: the running L{Cluster}, else L{None}.
    @ivar udpPort: the listening UDP port while running; C{tcpPort}, TCP.
    @ivar joined: while running, a L{Deferred} that fires with the number
        of seeds that answered the first join.
    @ivar firstJoin: a L{Deferred} made with the service, which fires with
        the same number once the first join after the first start has
        ended (at once for a node without seeds): from then on the
        catalog holds what the seeds knew, not only this node's own.
    """

    log = Logger()

    def __init__(
        self,
        reactor: Any,
        settings: GossipSettings,
        state: ServicesState,
        rng: random.Random | None = None,
        problems: Problems | None = None,
    ) -> None:
        """
        @param problems: where the gossip's faults (members' clocks far
            from ours, and its L{warnings} while it runs) are shown.
        """
        self._problems = Problems(reactor) if problems is None else problems
        self._reactor = reactor
        self.settings = settings
        self.clusterName = settings.clusterName
        self._state = state
        self._rng = rng or random.SystemRandom()
        self._keyring = Keyring(settings.keys) if settings.keys else None
        self.cluster: Cluster | None = None
        self.udpPort: IListeningPort | None = None
        self.tcpPort: IListeningPort | None = None
        self._protocol: GossipDatagramProtocol | None = None
        self._broadcaster: CatalogBroadcaster | None = None
        self._serfClock: SerfClock | None = None
        self.joined: Deferred[int] | None = None
        self.firstJoin: Deferred[int] = Deferred()
        self.withheld = WithheldRecords(self._problems)
        self.admission: Admission = catalogAdmission(
            state, reactor, settings.maxClockSkew, problems
        )

    @property
    def packetCounters(self) -> PacketCounters | None:
        """
        UDP packets and bytes in and out, while running.
        """
        return None if self._protocol is None else self._protocol.counters

    @property
    def streamsDropped(self) -> int | None:
        """
        TCP streams refused as bad, over a bound or too slow, while bound.
        """
        return None if self.tcpPort is None else self._serverFactory.dropped

    # -- IMembership --------------------------------------------------------

    @property
    def seeded(self) -> bool:
        return bool(self.settings.seeds)

    @property
    def warnings(self) -> list[str]:
        warning = exposureWarning(self.settings.bind[0], self._keyring is not None)
        return [] if warning is None else [warning]

    def memberNames(self) -> list[str]:
        if self.cluster is None:
            return [self.settings.name]
        return [m.name for m in self.cluster.members.alive()]

    def members(self) -> list[dict[str, Any]]:
        if self.cluster is None:
            return []
        skews = self.admission.skews
        return [
            describeMember(m, skews.skew(m.name)) for m in self.cluster.members.all()
        ]

    def expectsRefreshes(self) -> bool:
        """
        Whether a live peer expires records it has not heard of for 80 s
        (a Go Sidecar, or one of ours of old), so that this node must
        refresh its own.
        """
        return self.cluster is not None and bool(self.cluster.refreshedPeers())

    def goPeers(self) -> dict[str, Any]:
        goPeers = [] if self.cluster is None else self.cluster.goPeers()
        withheld = self.withheld.report(self._state) if goPeers else []
        document: dict[str, Any] = {
            "Members": sorted(m.name for m in goPeers),
            "RelayLimit": GO_RELAY_LIMIT,
            "Withheld": withheld,
        }
        if withheld:
            document["Advice"] = GO_RELAY_ADVICE
        return document

    # -- the service --------------------------------------------------------

    def privilegedStartService(self) -> None:
        super().privilegedStartService()
        self._listen()

    def startService(self) -> None:
        super().startService()
        self._listen()
        assert self.tcpPort is not None and self._protocol is not None
        settings = self.settings
        bound = self.tcpPort.getHost()
        advertise = settings.advertise or (settings.bind[0], bound.port)  # type: ignore[attr-defined]
        if _specificHost(advertise[0]) is None:
            advertise = ("127.0.0.1", advertise[1])
        local = localMember(
            settings.name,
            advertise,
            settings.clusterName,
            DELEGATE_VERSIONS_SERF
            if settings.acceptUnnamedPeers
            else DELEGATE_VERSIONS_SIDECAR,
        )
        catalog = CatalogDelegate(self._state, self.admission, self.withheld)
        delegate: IGossipDelegate = catalog
        if settings.acceptUnnamedPeers:
            self._serfClock = SerfClock(settings.name)
            delegate = SerfAwareDelegate(catalog, self._serfClock)
        self.cluster = cluster = Cluster(
            local,
            self._reactor,
            self._rng,
            self._protocol,
            StreamDialer(
                self._reactor,
                self._keyring,
                settings.timing.tcpTimeout,
                bindHost=_specificHost(settings.bind[0]),
            ),
            delegate,
            observer=catalog,
            clusterName=settings.clusterName,
            acceptUnnamedPeers=settings.acceptUnnamedPeers,
            timing=settings.timing,
            encrypted=self._keyring is not None,
            seeds=settings.seeds,
        )
        self.admission.watch(cluster.members)
        self._protocol.handlers = cluster.handlers
        self._broadcaster = CatalogBroadcaster(cluster, self.withheld)
        self._state.addBroadcaster(self._broadcaster)
        self.log.info(
            "gossip on {host}:{port} as {node} in cluster {cluster}",
            host=advertise[0],
            port=advertise[1],
            node=settings.name,
            cluster=settings.clusterName,
        )
        for warning in self.warnings:
            self.log.warn("{problem}", problem=warning)
            self._problems.raise_(UNENCRYPTED_GOSSIP, self._bindText(), warning)
        self.joined = cluster.start()
        self.joined.addCallback(self._joinEnded)

    def _joinEnded(self, answered: int) -> int:
        if not self.firstJoin.called:
            self.firstJoin.callback(answered)
        return answered

    def _bindText(self) -> str:
        host, port = self.settings.bind
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def stopService(self) -> Deferred[object]:
        super().stopService()
        self._problems.clear(UNENCRYPTED_GOSSIP, self._bindText())
        cluster, self.cluster = self.cluster, None
        if self._broadcaster is not None:
            self._state.removeBroadcaster(self._broadcaster)
            self._broadcaster = None
        if cluster is not None:
            farewell = (
                [] if self._serfClock is None else [self._serfClock.leaveIntent()]
            )
            cluster.leave(farewell)
            cluster.stop()
        if self._protocol is not None:
            self._protocol.handlers = None
            self._serverFactory.abortAll()
        ports = [p for p in (self.udpPort, self.tcpPort) if p is not None]
        self.udpPort = self.tcpPort = None
        stopped = [maybeDeferred(port.stopListening) for port in ports]
        return DeferredList(stopped, consumeErrors=True)  # type: ignore[return-value]

    def _streamReceived(self, message: StreamMessage, source: Address) -> bytes | None:
        if self.cluster is None:
            return None
        return self.cluster.streamReceived(message, source)

    def _listen(self) -> None:
        if self.tcpPort is not None:
            return
        host, port = self.settings.bind
        self._protocol = GossipDatagramProtocol(None, self._reactor, self._keyring)
        self._serverFactory = StreamServerFactory(
            self._streamReceived,
            self._reactor,
            self._keyring,
            self.settings.timing.tcpTimeout,
        )
        for attempt in range(_BIND_ATTEMPTS):
            tcp = self._reactor.listenTCP(port, self._serverFactory, interface=host)
            try:
                udp = self._reactor.listenUDP(
                    tcp.getHost().port, self._protocol, interface=host
                )
            except CannotListenError:
                tcp.stopListening()
                if port != 0 or attempt == _BIND_ATTEMPTS - 1:
                    raise
                continue
            self.tcpPort, self.udpPort = tcp, udp
            return


_STATE_NAMES = {
    NodeState.ALIVE: "alive",
    NodeState.SUSPECT: "suspect",
    NodeState.DEAD: "failed",
    NodeState.LEFT: "left",
}


def _specificHost(host: str) -> str | None:
    """
    C{host}, unless it is a wildcard that names no one address.
    """
    return None if host in ("0.0.0.0", "::", "") else host


def describeMember(member: Member, skew: float | None = None) -> dict[str, Any]:
    """
    A member as C{/api/members.json} shows it, with its clock's offset
    from ours in seconds (see L{sidecar.gossip.skew}); L{None} when it has
    sent no record of its own (this node, serf agents).  C{Since} is when
    it entered its state, as this node saw it.
    """
    host, port = memberAddress(member)
    return {
        "Name": member.name,
        "Address": host,
        "Port": port,
        "State": _STATE_NAMES[member.state],
        "Incarnation": member.incarnation,
        "Meta": member.meta.decode("utf-8", "replace"),
        "ProtocolVersions": list(member.vsn),
        "ClockSkew": None if skew is None else round(skew, 3),
        # To the millisecond: finer would only show float noise.
        "Since": formatTimestamp(int(member.stateChange * 1000) * 1_000_000),
    }
