"""
The composition: one function, L{makeService}, builds a whole node from a
L{Config}.  The twistd plugin calls it, and so can any Twisted program that
embeds a node.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING, Any

from twisted.application.service import MultiService
from twisted.internet.interfaces import IReactorTCP, IReactorTime

from sidecar.announce import LocalAnnouncer
from sidecar.catalog import ServicesState
from sidecar.config import Address, Config, HealthConfig
from sidecar.discovery.containers import SOURCE as CONTAINERS
from sidecar.discovery.containers import Naming
from sidecar.discovery.static import StaticDiscoverer
from sidecar.gossip.profiles import PROFILES, Timing
from sidecar.gossip.service import GossipService, GossipSettings
from sidecar.health.checkers import CheckerRegistry, installedCheckers
from sidecar.health.commands import CommandPolicy
from sidecar.health.monitor import HealthMonitor, HealthSettings
from sidecar.health.status import DAMPING, Damping
from sidecar.interfaces import IDiscoverer
from sidecar.listeners import Listeners, managedListeners
from sidecar.metrics import installMetrics
from sidecar.problems import Problems
from sidecar.web.server import APIService, makeSite

if TYPE_CHECKING:
    from sidecar.proxy.follower import ProxyFollower

    # Imported at run time only when [envoy] is on: it loads gRPC.
    from sidecar.proxy.xds.build import EnvoyControlPlane


class SidecarNode(MultiService):
    """
    A running node: its catalog, the gossip that shares it, its
    discoverers, the health monitor that checks what they find, the
    announcer that publishes it, and the status API.

    @ivar state: the catalog, L{ServicesState}; read it, observe it.
    @ivar gossip: the L{GossipService}; C{gossip.cluster} is the running
        cluster, C{gossip.tcpPort} the bound gossip port.
    @ivar health: the L{HealthMonitor}; C{health.report()} says what each
        local service's check last said.
    @ivar discoverers: the L{IDiscoverer}s in configured order.
    @ivar api: the L{APIService}; C{api.port} is its listening port.
    @ivar problems: the faults its parts know of now (L{Problems}).
    @ivar envoy: the xDS control plane
        (L{sidecar.proxy.xds.build.EnvoyControlPlane}), or L{None}.
    """

    def __init__(
        self,
        config: Config,
        state: ServicesState,
        gossip: GossipService,
        announcer: LocalAnnouncer,
        health: HealthMonitor,
        discoverers: Sequence[IDiscoverer],
        api: APIService,
        proxy: ProxyFollower | None = None,
        listeners: Listeners | None = None,
        *,
        problems: Problems,
        envoy: EnvoyControlPlane | None = None,
    ) -> None:
        super().__init__()
        self.problems = problems
        self.config = config
        self.state = state
        self.gossip = gossip
        self.announcer = announcer
        self.health = health
        self.discoverers = list(discoverers)
        self.api = api
        self.proxy = proxy
        self.listeners = listeners
        self.envoy = envoy
        # Start order is the order of addition, stop order the reverse:
        # gossip runs before anything is announced and leaves the cluster
        # last; the announcer and the monitor listen before discoverers
        # report; the API comes last.
        gossip.setServiceParent(self)
        announcer.setServiceParent(self)
        health.setServiceParent(self)
        for discoverer in discoverers:
            discoverer.setServiceParent(self)  # type: ignore[attr-defined]
        if proxy is not None:
            proxy.setServiceParent(self)
        if envoy is not None:
            envoy.setServiceParent(self)
        if listeners is not None:
            listeners.setServiceParent(self)
        api.setServiceParent(self)

    def reload(self) -> None:
        """
        Re-read what can be re-read without a restart: the static file, the
        container list.
        """
        for discoverer in self.discoverers:
            discoverer.reload()

    def stopService(self):  # type: ignore[no-untyped-def]
        d = super().stopService()
        d.addBoth(self._stopCatalog)
        return d

    def _stopCatalog(self, result: object) -> object:
        self.state.stop()
        return result


def makeService(config: Config, reactor: object = None) -> SidecarNode:
    """
    Build a node from C{config}.

    @param reactor: the reactor to run on (an L{IReactorTime} and
        L{IReactorTCP}); the global reactor when L{None}.
    @raise ConfigError: when the configuration asks for a part this
        version does not have.
    """
    if reactor is None:
        from twisted.internet import reactor as globalReactor

        reactor = globalReactor
    clock: IReactorTime = reactor  # type: ignore[assignment]
    tcp: IReactorTCP = reactor  # type: ignore[assignment]
    node = config.node
    advertise = node.advertiseAddress
    state = ServicesState(node.name, clock, clusterName=node.clusterName)
    problems = Problems(clock)
    announcer = LocalAnnouncer(state, clock, expected=lambda: gossip.expectsRefreshes())
    registry = CheckerRegistry(installedCheckers())
    health = HealthMonitor(
        announcer,
        clock,
        registry,
        advertise.host,
        _healthSettings(config.health),
        commands=CommandPolicy(
            labelSources=frozenset({CONTAINERS}),
            fromLabels=config.health.externalFromLabels,
            allowed=config.health.externalCommands,
        ),
    )
    discoverers = [
        _discoverer(backend, config, health, reactor, registry, problems)
        for backend in config.discovery.backends
    ]
    gossip = GossipService(
        reactor,
        GossipSettings(
            name=node.name,
            clusterName=node.clusterName,
            bind=_pair(node.bind),
            advertise=None if node.advertise is None else _pair(node.advertise),
            seeds=tuple(_pair(seed) for seed in node.seeds),
            keys=node.encryptKeys,
            acceptUnnamedPeers=node.acceptUnnamedPeers,
            timing=_timing(node.profile, node.pushPullInterval),
            maxClockSkew=node.maxClockSkew,
        ),
        state,
        problems=problems,
    )
    proxy = None
    if config.haproxy.enabled:
        # Loaded only when used, as Docker's client is: less to hold.
        from sidecar.proxy.build import makeProxy

        # HAProxy waits for the first join: one taken over (left by an
        # earlier node, or by the Go Sidecar this node replaces) keeps
        # serving the cluster's services instead of this node's alone.
        proxy = makeProxy(
            config, state, gossip, reactor, ready=gossip.firstJoin, problems=problems
        )
    envoy = _envoy(config, state, gossip, reactor, problems)
    listeners = Listeners(
        state,
        config.listeners.urls,
        managedListeners(announcer.wanted, advertise.host),
        reactor,
        problems=problems,
    )
    site = makeSite(
        state,
        gossip,
        health,
        proxy,
        drains=announcer,
        reactor=clock,
        problems=problems,
        maxWatchers=config.api.maxWatchers,
        token=config.api.token,
        envoy=envoy,
    )
    api = APIService(
        tcp,
        site,
        config.api.listen.host,
        config.api.listen.port,
        maxConnections=config.api.maxConnections,
        tls=config.api.tlsPEM,
    )
    built = SidecarNode(
        config,
        state,
        gossip,
        announcer,
        health,
        discoverers,
        api,
        proxy,
        listeners,
        problems=problems,
        envoy=envoy,
    )
    installMetrics(built, site)
    return built


def _envoy(
    config: Config,
    state: ServicesState,
    gossip: GossipService,
    reactor: Any,
    problems: Problems,
) -> EnvoyControlPlane | None:
    """
    The xDS control plane when C{[envoy]} is enabled, else L{None}.  Its
    module is imported only then: it loads gRPC and Envoy's API, which a
    node without Envoy has no use for.
    """
    if not config.envoy.enabled:
        return None
    from sidecar.proxy.xds.build import makeEnvoy

    return makeEnvoy(config, state, gossip, reactor, problems=problems)


# Damping that can never suppress: every change is published.
_NO_DAMPING = Damping(penalty=0.0)


def _healthSettings(health: HealthConfig) -> HealthSettings:
    return HealthSettings(
        interval=health.interval,
        timeout=health.timeout,
        fall=health.fall,
        concurrency=health.concurrency,
        defaultEndpoint=health.defaultCheckEndpoint,
        damping=DAMPING if health.damping else _NO_DAMPING,
    )


def _discoverer(
    backend: str,
    config: Config,
    listener: HealthMonitor,
    reactor: Any,
    registry: CheckerRegistry,
    problems: Problems,
) -> IDiscoverer:
    node, discovery = config.node, config.discovery
    advertise = node.advertiseAddress.host
    if backend == "static":
        return StaticDiscoverer(
            discovery.staticFile,
            node.name,
            advertise,
            listener,
            reactor,
            pollInterval=discovery.staticPollInterval,
            problems=problems,
        )
    # Loaded only for Docker discovery: its client is large.
    from sidecar.discovery.docker import (
        ContainerHealthCheckers,
        DockerDiscoverer,
        dockerClient,
    )

    url = discovery.dockerUrl
    docker = DockerDiscoverer(
        partial(dockerClient, url),
        node.name,
        advertise,
        listener,
        reactor,
        Naming(
            discovery.dockerNamer, discovery.dockerNameLabel, discovery.dockerNameMatch
        ),
        resyncInterval=discovery.dockerResyncInterval,
        where=f"the Docker engine at {url or 'DOCKER_HOST'}",
        problems=problems,
    )
    registry.add(ContainerHealthCheckers(docker))
    return docker


# The Go Sidecar's meaning of a zero push-pull interval: just inside the
# 80 s lifespan of a record.
_GO_DEFAULT_PUSH_PULL = 79.0


def _timing(profile: str, pushPullInterval: float | None) -> Timing:
    timing = PROFILES[profile]
    if pushPullInterval is None:
        return timing
    return replace(timing, pushPullInterval=pushPullInterval or _GO_DEFAULT_PUSH_PULL)


def _pair(address: Address) -> tuple[str, int]:
    return (address.host, address.port)
