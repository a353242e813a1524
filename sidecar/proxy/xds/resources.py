"""
The proxy model as Envoy's v3 resources: the second renderer of
L{sidecar.proxy.model.ProxyModel} (HAProxy's template is the first), so
that both proxies route exactly the same instances.  Pure.

Per frontend (a service's ServicePort), named C{<service>:<ServicePort>}
as the Go Sidecar names them:

 - a Listener on C{bind_ip:ServicePort}: an HTTP connection manager (its
   routes by RDS) for C{http} and C{ws} (with the websocket upgrade), a
   TCP proxy for C{tcp};
 - its RouteConfiguration, for HTTP: every path to the cluster;
 - a Cluster of type EDS over ADS, and its ClusterLoadAssignment with the
   frontend's servers (the ALIVE instances the model admitted).

And per service name, for proxyless gRPC (C{xds:///<service>}): a Listener
named C{<service>} holding an C{api_listener}, served only by name, and a
RouteConfiguration of the same name to the cluster of its lowest
ServicePort.
"""

from __future__ import annotations

from dataclasses import dataclass

from envoy.config.cluster.v3.cluster_pb2 import Cluster
from envoy.config.core.v3.address_pb2 import Address, SocketAddress
from envoy.config.core.v3.base_pb2 import Locality
from envoy.config.core.v3.config_source_pb2 import (
    AggregatedConfigSource,
    ApiVersion,
    ConfigSource,
)
from envoy.config.core.v3.health_check_pb2 import HealthStatus
from envoy.config.endpoint.v3.endpoint_components_pb2 import (
    Endpoint,
    LbEndpoint,
    LocalityLbEndpoints,
)
from envoy.config.endpoint.v3.endpoint_pb2 import ClusterLoadAssignment
from envoy.config.listener.v3.api_listener_pb2 import ApiListener
from envoy.config.listener.v3.listener_components_pb2 import Filter, FilterChain
from envoy.config.listener.v3.listener_pb2 import Listener
from envoy.config.route.v3.route_components_pb2 import (
    Route,
    RouteAction,
    RouteMatch,
    VirtualHost,
)
from envoy.config.route.v3.route_pb2 import RouteConfiguration
from envoy.extensions.filters.http.router.v3.router_pb2 import Router
from envoy.extensions.filters.network.http_connection_manager.v3.http_connection_manager_pb2 import (  # noqa: E501
    HttpConnectionManager,
    HttpFilter,
    Rds,
)
from envoy.extensions.filters.network.tcp_proxy.v3.tcp_proxy_pb2 import TcpProxy
from google.protobuf.any_pb2 import Any as AnyProto
from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import Message
from google.protobuf.wrappers_pb2 import BoolValue, UInt32Value

from ..model import Frontend, ProxyModel
from .snapshot import (
    CLUSTER,
    ENDPOINT,
    LISTENER,
    ROUTE,
    TYPES,
    Resource,
    Snapshot,
    makeSnapshot,
    resource,
)

HTTP_MANAGER = "envoy.filters.network.http_connection_manager"
TCP_PROXY = "envoy.filters.network.tcp_proxy"
ROUTER = "envoy.filters.http.router"
# What a frontend makes, in L{SnapshotBuilder._frontend}'s order.
_MADE = (CLUSTER, LISTENER, ENDPOINT, ROUTE)
# The Go Sidecar's connect timeout for every cluster.
CONNECT_TIMEOUT = Duration(nanos=500_000_000)


@dataclass(frozen=True)
class EnvoySettings:
    """
    @ivar bindIP: the address Envoy's listeners bind.
    @ivar useHostnames: the model's server addresses are host names: the
        clusters are C{STRICT_DNS} with their endpoints inline, and Envoy
        resolves the names.
    """

    bindIP: str = "192.168.168.168"
    useHostnames: bool = False


def clusterName(frontend: Frontend) -> str:
    """
    The Go Sidecar's name for a frontend's cluster, listener and routes.
    """
    return f"{frontend.service}:{frontend.servicePort}"


class SnapshotBuilder:
    """
    Builds snapshots of successive models, reusing the resources of every
    frontend that did not change since the last build: a change of one
    service costs that service's resources, not the whole catalog's.
    Not thread-safe: one build at a time (the follower makes sure).
    """

    def __init__(self, settings: EnvoySettings) -> None:
        self.settings = settings
        self._frontends: dict[Frontend, tuple[Resource | None, ...]] = {}
        self._grpc: dict[tuple[str, str], tuple[Resource, Resource]] = {}

    def build(self, model: ProxyModel, serial: int = 0) -> Snapshot:
        """
        Every resource C{model} makes, as one snapshot.
        """
        frontends = {f: self._frontend(f) for f in model.frontends}
        found: dict[str, dict[str, Resource]] = {t: {} for t in TYPES}
        for made in frontends.values():
            for typeURL, one in zip(_MADE, made, strict=True):
                if one is not None:
                    found[typeURL][one.name] = one
        grpc = {}
        for service, frontend in _lowestPorts(model).items():
            if service in found[LISTENER] or service in found[ROUTE]:
                continue  # a name like "web:80" is already some frontend's
            key = (service, clusterName(frontend))
            listener, routes = grpc[key] = self._grpc.get(key) or (
                resource(service, _apiListener(service), wildcard=False),
                resource(service, _routes(service, key[1])),
            )
            found[LISTENER][service] = listener
            found[ROUTE][service] = routes
        self._frontends = frontends
        self._grpc = grpc
        return makeSnapshot({t: found[t].values() for t in TYPES}, serial)

    def _frontend(self, frontend: Frontend) -> tuple[Resource | None, ...]:
        """
        C{frontend}'s cluster, listener, endpoints and routes (the last two
        L{None} when it has none).
        """
        cached = self._frontends.get(frontend)
        if cached is not None:
            return cached
        name = clusterName(frontend)
        assignment = _assignment(name, frontend)
        if self.settings.useHostnames:
            cluster = resource(name, _dnsCluster(name, assignment))
            endpoints = None
        else:
            cluster = resource(name, _edsCluster(name))
            endpoints = resource(name, assignment)
        listener = resource(name, _listener(name, frontend, self.settings.bindIP))
        routes = (
            resource(name, _routes(name, name)) if frontend.mode == "http" else None
        )
        return (cluster, listener, endpoints, routes)


def buildSnapshot(
    model: ProxyModel, settings: EnvoySettings, serial: int = 0
) -> Snapshot:
    """
    Every resource C{model} makes, as one snapshot (with nothing reused).
    """
    return SnapshotBuilder(settings).build(model, serial)


def _lowestPorts(model: ProxyModel) -> dict[str, Frontend]:
    lowest: dict[str, Frontend] = {}
    for frontend in model.frontends:  # in ServicePort order
        lowest.setdefault(frontend.service, frontend)
    return lowest


def _pack(message: Message) -> AnyProto:
    packed = AnyProto()
    packed.Pack(message)
    return packed


def _ads() -> ConfigSource:
    return ConfigSource(
        ads=AggregatedConfigSource(), resource_api_version=ApiVersion.V3
    )


def _edsCluster(name: str) -> Cluster:
    return Cluster(
        name=name,
        type=Cluster.EDS,
        eds_cluster_config=Cluster.EdsClusterConfig(eds_config=_ads()),
        connect_timeout=CONNECT_TIMEOUT,
        lb_policy=Cluster.ROUND_ROBIN,
    )


def _dnsCluster(name: str, assignment: ClusterLoadAssignment) -> Cluster:
    return Cluster(
        name=name,
        type=Cluster.STRICT_DNS,
        load_assignment=assignment,
        connect_timeout=CONNECT_TIMEOUT,
        lb_policy=Cluster.ROUND_ROBIN,
    )


def _assignment(name: str, frontend: Frontend) -> ClusterLoadAssignment:
    # One locality, weighted (gRPC ignores a locality without a weight).
    endpoints = [
        LbEndpoint(
            endpoint=Endpoint(
                address=Address(
                    socket_address=SocketAddress(
                        address=server.address, port_value=server.port
                    )
                ),
                hostname=server.hostname,
            ),
            health_status=HealthStatus.HEALTHY,
        )
        for server in frontend.servers
    ]
    localities = (
        [
            LocalityLbEndpoints(
                locality=Locality(zone="sidecar"),
                lb_endpoints=endpoints,
                load_balancing_weight=UInt32Value(value=1),
            )
        ]
        if endpoints
        else []
    )
    return ClusterLoadAssignment(cluster_name=name, endpoints=localities)


def _httpManager(routes: str, websocket: bool) -> HttpConnectionManager:
    return HttpConnectionManager(
        stat_prefix="ingress_http",
        codec_type=HttpConnectionManager.AUTO,
        rds=Rds(config_source=_ads(), route_config_name=routes),
        http_filters=[HttpFilter(name=ROUTER, typed_config=_pack(Router()))],
        upgrade_configs=(
            [HttpConnectionManager.UpgradeConfig(upgrade_type="websocket")]
            if websocket
            else []
        ),
    )


def _listener(name: str, frontend: Frontend, bindIP: str) -> Listener:
    if frontend.mode == "http":
        chain = Filter(
            name=HTTP_MANAGER,
            typed_config=_pack(_httpManager(name, frontend.websocket)),
        )
    else:
        chain = Filter(
            name=TCP_PROXY,
            typed_config=_pack(TcpProxy(stat_prefix="ingress_tcp", cluster=name)),
        )
    return Listener(
        name=name,
        address=Address(
            socket_address=SocketAddress(
                address=bindIP, port_value=frontend.servicePort
            )
        ),
        filter_chains=[FilterChain(filters=[chain])],
    )


def _apiListener(service: str) -> Listener:
    return Listener(
        name=service,
        api_listener=ApiListener(
            api_listener=_pack(_httpManager(service, websocket=False))
        ),
    )


def _routes(name: str, cluster: str) -> RouteConfiguration:
    # Every path to the cluster, with no timeout (as Go); clusters are
    # not checked, since they may arrive after the routes.
    return RouteConfiguration(
        name=name,
        virtual_hosts=[
            VirtualHost(
                name=name,
                domains=["*"],
                routes=[
                    Route(
                        match=RouteMatch(prefix="/"),
                        route=RouteAction(cluster=cluster, timeout=Duration()),
                    )
                ],
            )
        ],
        validate_clusters=BoolValue(value=False),
    )
