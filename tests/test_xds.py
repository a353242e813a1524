"""
The xDS control plane's pure parts: the model as Envoy's resources, for
each ProxyMode and for proxyless gRPC; and one stream's side of the
protocol, state of the world and delta (ACK, NACK, stale nonces,
versions, subscriptions).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from envoy.config.cluster.v3.cluster_pb2 import Cluster
from envoy.config.endpoint.v3.endpoint_pb2 import ClusterLoadAssignment
from envoy.config.listener.v3.listener_pb2 import Listener
from envoy.config.route.v3.route_pb2 import RouteConfiguration
from envoy.extensions.filters.network.http_connection_manager.v3.http_connection_manager_pb2 import (  # noqa: E501
    HttpConnectionManager,
)
from envoy.extensions.filters.network.tcp_proxy.v3.tcp_proxy_pb2 import TcpProxy
from envoy.service.discovery.v3.discovery_pb2 import (
    DeltaDiscoveryRequest,
    DiscoveryRequest,
)
from google.protobuf.message import Message
from twisted.trial.unittest import SynchronousTestCase

from sidecar.catalog import Port, Service, Status
from sidecar.proxy.model import Admission, buildModel
from sidecar.proxy.xds import streams
from sidecar.proxy.xds.resources import EnvoySettings, SnapshotBuilder, buildSnapshot
from sidecar.proxy.xds.snapshot import CLUSTER, ENDPOINT, LISTENER, ROUTE, Snapshot
from sidecar.proxy.xds.streams import (
    DeltaStream,
    SotwStream,
    TooManyNames,
    UnknownType,
)

SECOND = 1_000_000_000
CREATED = 1_700_000_000 * SECOND
SETTINGS = EnvoySettings(bindIP="127.0.0.168")


def instance(
    serviceID: str,
    name: str = "web",
    mode: str = "http",
    status: Status = Status.ALIVE,
    servicePort: int = 10001,
    ip: str = "127.0.1.1",
    created: int = CREATED,
) -> Service:
    return Service(
        id=serviceID,
        name=name,
        image="img:1",
        created=created,
        hostname=f"host-{serviceID}",
        ports=(Port("tcp", 8000 + int(serviceID[-1]), servicePort, ip),),
        updated=created + SECOND,
        proxyMode=mode,
        status=status,
    )


def snapshot(*records: Service, settings: EnvoySettings = SETTINGS) -> Snapshot:
    return buildSnapshot(buildModel(records), settings)


def unpack(snap: Snapshot, typeURL: str, name: str, kind: type[Message]) -> Any:
    message = kind()
    snap.of(typeURL).byName[name].packed.Unpack(message)
    return message


def filterConfig(listener: Listener, kind: type[Message]) -> Any:
    (chain,) = listener.filter_chains
    (only,) = chain.filters
    message = kind()
    only.typed_config.Unpack(message)
    return message


class ResourceTests(SynchronousTestCase):
    def test_httpService(self) -> None:
        """
        An C{http} service: a listener on C{bind_ip:ServicePort} with an
        HTTP connection manager whose routes come by RDS, every path to
        its EDS cluster, whose endpoints are its instances.
        """
        snap = snapshot(instance("i1"), instance("i2", ip="127.0.1.2"))
        listener = unpack(snap, LISTENER, "web:10001", Listener)
        self.assertEqual(listener.address.socket_address.address, "127.0.0.168")
        self.assertEqual(listener.address.socket_address.port_value, 10001)
        manager = filterConfig(listener, HttpConnectionManager)
        self.assertEqual(manager.rds.route_config_name, "web:10001")
        self.assertTrue(manager.rds.config_source.HasField("ads"))
        self.assertEqual(list(manager.upgrade_configs), [])
        self.assertEqual(
            [f.name for f in manager.http_filters], ["envoy.filters.http.router"]
        )
        routes = unpack(snap, ROUTE, "web:10001", RouteConfiguration)
        (host,) = routes.virtual_hosts
        self.assertEqual(list(host.domains), ["*"])
        self.assertEqual(host.routes[0].route.cluster, "web:10001")
        self.assertEqual(host.routes[0].match.prefix, "/")
        cluster = unpack(snap, CLUSTER, "web:10001", Cluster)
        self.assertEqual(cluster.type, Cluster.EDS)
        self.assertTrue(cluster.eds_cluster_config.eds_config.HasField("ads"))
        self.assertEqual(cluster.connect_timeout.ToMilliseconds(), 500)
        self.assertEqual(
            self.endpoints(snap, "web:10001"),
            [("127.0.1.1", 8001), ("127.0.1.2", 8002)],
        )

    def endpoints(self, snap: Snapshot, name: str) -> list[tuple[str, int]]:
        assignment = unpack(snap, ENDPOINT, name, ClusterLoadAssignment)
        return [
            (
                e.endpoint.address.socket_address.address,
                e.endpoint.address.socket_address.port_value,
            )
            for locality in assignment.endpoints
            for e in locality.lb_endpoints
        ]

    def test_websocketService(self) -> None:
        """
        A C{ws} service is HTTP with the websocket upgrade.
        """
        snap = snapshot(instance("i1", mode="ws"))
        listener = unpack(snap, LISTENER, "web:10001", Listener)
        manager = filterConfig(listener, HttpConnectionManager)
        self.assertEqual(
            [u.upgrade_type for u in manager.upgrade_configs], ["websocket"]
        )

    def test_tcpService(self) -> None:
        """
        A C{tcp} service is a TCP proxy to its cluster, with no routes.
        """
        snap = snapshot(instance("i1", name="db", mode="tcp", servicePort=10002))
        listener = unpack(snap, LISTENER, "db:10002", Listener)
        proxy = filterConfig(listener, TcpProxy)
        self.assertEqual(proxy.cluster, "db:10002")
        self.assertNotIn("db:10002", snap.of(ROUTE).byName)
        self.assertEqual(self.endpoints(snap, "db:10002"), [("127.0.1.1", 8001)])

    def test_aliveOnly(self) -> None:
        """
        Only ALIVE instances are endpoints; a service none of whose
        instances is ALIVE keeps its listener and cluster, with no
        endpoints.
        """
        snap = snapshot(
            instance("i1"),
            instance("i2", status=Status.DRAINING),
            instance("i3", status=Status.UNHEALTHY),
            instance("i4", name="api", servicePort=10005, status=Status.DRAINING),
        )
        self.assertEqual(self.endpoints(snap, "web:10001"), [("127.0.1.1", 8001)])
        self.assertEqual(self.endpoints(snap, "api:10005"), [])
        self.assertIn("api:10005", snap.of(LISTENER).byName)

    def test_apiListenerForGRPC(self) -> None:
        """
        Each service name has an C{api_listener} named for it, for
        C{xds:///<service>}, routed to its lowest ServicePort's cluster;
        a wildcard subscription (Envoy's) does not get it.
        """
        web = instance("i1")
        other = replace(web, id="i2", ports=(Port("tcp", 8002, 10000, "127.0.1.2"),))
        snap = snapshot(web, other)
        listener = unpack(snap, LISTENER, "web", Listener)
        self.assertTrue(listener.HasField("api_listener"))
        manager = HttpConnectionManager()
        listener.api_listener.api_listener.Unpack(manager)
        self.assertEqual(manager.rds.route_config_name, "web")
        routes = unpack(snap, ROUTE, "web", RouteConfiguration)
        self.assertEqual(routes.virtual_hosts[0].routes[0].route.cluster, "web:10000")
        wildcard = [r.name for r in snap.of(LISTENER).select(frozenset(), True)]
        self.assertEqual(wildcard, ["web:10000", "web:10001"])

    def test_sameInstancesAsHAProxy(self) -> None:
        """
        Conflicts and refusals are the model's: of two names on one
        ServicePort only the one the model keeps has resources, and an
        instance the model refuses is no endpoint.
        """
        older = instance("i1", name="old")
        newer = instance("i2", name="new", created=CREATED + SECOND)
        atProxy = instance("i3", name="old", ip="127.0.1.3")
        model = buildModel(
            [older, newer, atProxy],
            admission=Admission(bindIP="127.0.1.3", loopbackTargets=True),
        )
        snap = buildSnapshot(model, SETTINGS)
        self.assertEqual(sorted(snap.of(CLUSTER).byName), ["old:10001"])
        self.assertEqual(self.endpoints(snap, "old:10001"), [("127.0.1.1", 8001)])
        self.assertEqual(len(model.refused), 1)

    def test_useHostnames(self) -> None:
        """
        With host names, clusters are STRICT_DNS with their endpoints
        inline (Envoy resolves the names), and there is no EDS.
        """
        settings = EnvoySettings("127.0.0.168", useHostnames=True)
        model = buildModel([instance("i1")], useHostnames=True)
        snap = buildSnapshot(model, settings)
        cluster = unpack(snap, CLUSTER, "web:10001", Cluster)
        self.assertEqual(cluster.type, Cluster.STRICT_DNS)
        address = cluster.load_assignment.endpoints[0].lb_endpoints[0]
        self.assertEqual(address.endpoint.address.socket_address.address, "host-i1")
        self.assertEqual(dict(snap.of(ENDPOINT).byName), {})

    def test_rebuildReusesUnchangedFrontends(self) -> None:
        """
        A builder rebuilds only the frontends that changed: the others'
        resources are the very same, and the snapshot is what a fresh
        build makes.
        """
        builder = SnapshotBuilder(SETTINGS)
        api = instance("j1", name="api", servicePort=10002)
        first = builder.build(buildModel([instance("i1"), api]))
        changed = [instance("i1"), instance("i2"), api]
        second = builder.build(buildModel(changed))
        for typeURL in (CLUSTER, LISTENER, ENDPOINT):
            self.assertIs(
                second.of(typeURL).byName["api:10002"],
                first.of(typeURL).byName["api:10002"],
            )
        self.assertIsNot(
            second.of(ENDPOINT).byName["web:10001"],
            first.of(ENDPOINT).byName["web:10001"],
        )
        self.assertEqual(second.versions(), snapshot(*changed).versions())

    def test_versions(self) -> None:
        """
        A version is a digest of the content: the same catalog gives the
        same versions, and a change changes only its own types' versions.
        """
        one = snapshot(instance("i1"), instance("i2"))
        self.assertEqual(
            one.versions(), snapshot(instance("i1"), instance("i2")).versions()
        )
        two = snapshot(instance("i1"), instance("i2", status=Status.UNHEALTHY))
        self.assertNotEqual(one.versions()["EDS"], two.versions()["EDS"])
        for same in ("LDS", "RDS", "CDS"):
            self.assertEqual(one.versions()[same], two.versions()[same])


WEB = snapshot(instance("i1"))
WEB2 = snapshot(instance("i1"), instance("i2"))


def sotw(
    typeURL: str, names: tuple[str, ...] = (), nonce: str = "", **kw: Any
) -> DiscoveryRequest:
    request = DiscoveryRequest(
        type_url=typeURL, resource_names=names, response_nonce=nonce, **kw
    )
    request.node.id = "envoy-1"
    return request


class SotwStreamTests(SynchronousTestCase):
    def test_firstRequestAnswered(self) -> None:
        """
        The first request of a type is answered with every resource it
        subscribes to, at the type's version; the node is remembered.
        """
        stream = SotwStream(WEB)
        (response,), nack = stream.request(sotw(CLUSTER))
        self.assertIsNone(nack)
        self.assertEqual(response.version_info, WEB.of(CLUSTER).version)
        self.assertEqual(len(response.resources), 1)
        self.assertEqual(stream.node, "envoy-1")
        (named,), _ = stream.request(sotw(ENDPOINT, ("web:10001", "nothing")))
        self.assertEqual(len(named.resources), 1)

    def test_ackThenUpdate(self) -> None:
        """
        An ACK is recorded and waits for a change; a new snapshot is sent
        to the waiting client, and one that changes nothing is not.
        """
        stream = SotwStream(WEB)
        (first,), _ = stream.request(sotw(ENDPOINT, ("web:10001",)))
        responses, _ = stream.request(
            sotw(ENDPOINT, ("web:10001",), first.nonce, version_info=first.version_info)
        )
        self.assertEqual(responses, [])
        self.assertEqual(stream.status()["Types"]["EDS"]["Acked"], first.version_info)
        self.assertEqual(stream.update(WEB), [])
        (second,) = stream.update(WEB2)
        self.assertEqual(second.version_info, WEB2.of(ENDPOINT).version)
        self.assertNotEqual(second.nonce, first.nonce)

    def test_noResponseUntilAnswered(self) -> None:
        """
        While a response is unanswered, a newer snapshot waits: it is
        sent with the next request.
        """
        stream = SotwStream(WEB)
        (first,), _ = stream.request(sotw(CLUSTER))
        self.assertEqual(stream.update(WEB2), [])
        # WEB2 adds an endpoint, not a cluster: CDS is unchanged.
        self.assertEqual(WEB.of(CLUSTER).version, WEB2.of(CLUSTER).version)
        stream = SotwStream(WEB)
        (first,), _ = stream.request(sotw(ENDPOINT, ("web:10001",)))
        self.assertEqual(stream.update(WEB2), [])
        (second,), _ = stream.request(
            sotw(ENDPOINT, ("web:10001",), first.nonce, version_info=first.version_info)
        )
        self.assertEqual(second.version_info, WEB2.of(ENDPOINT).version)

    def test_nack(self) -> None:
        """
        A NACK is returned and recorded, the last accepted version stays
        the client's, and the refused version is not sent again; the
        next change is.
        """
        stream = SotwStream(WEB)
        (first,), _ = stream.request(sotw(ENDPOINT, ("web:10001",)))
        stream.request(
            sotw(ENDPOINT, ("web:10001",), first.nonce, version_info=first.version_info)
        )
        (second,) = stream.update(WEB2)
        refusal = sotw(
            ENDPOINT, ("web:10001",), second.nonce, version_info=first.version_info
        )
        refusal.error_detail.message = "no thanks" + " " * 10_000 + "!"
        responses, nack = stream.request(refusal)
        self.assertEqual(responses, [])
        assert nack is not None
        self.assertEqual(
            (nack.type, nack.version, nack.message.rstrip()),
            ("EDS", second.version_info, "no thanks"),
        )
        self.assertEqual(len(nack.message), 500)  # the client's text, bounded
        status = stream.status()
        self.assertEqual(status["Types"]["EDS"]["Acked"], first.version_info)
        self.assertEqual(status["Types"]["EDS"]["Nacks"], 1)
        self.assertEqual(status["LastNack"]["Message"].rstrip(), "no thanks")
        (third,) = stream.update(WEB)
        self.assertEqual(third.version_info, first.version_info)

    def test_staleNonceIgnored(self) -> None:
        """
        A request answering a response since replaced changes nothing.
        """
        stream = SotwStream(WEB)
        (first,), _ = stream.request(sotw(CLUSTER))
        stream.request(sotw(CLUSTER, (), first.nonce, version_info=first.version_info))
        stale = sotw(CLUSTER, (), "999", version_info="old")
        stale.error_detail.message = "late"
        self.assertEqual(stream.request(stale), ([], None))
        self.assertEqual(stream.status()["Types"]["CDS"]["Nacks"], 0)

    def test_subscriptionChange(self) -> None:
        """
        A request that changes the names is answered with the new set,
        even when the version is the same.
        """
        stream = SotwStream(WEB2)
        (first,), _ = stream.request(sotw(LISTENER, ("web",)))
        self.assertEqual(len(first.resources), 1)
        (second,), _ = stream.request(
            sotw(
                LISTENER,
                ("web", "web:10001"),
                first.nonce,
                version_info=first.version_info,
            )
        )
        self.assertEqual(len(second.resources), 2)

    def test_unknownType(self) -> None:
        """
        Another API version's type is refused with L{UnknownType}.
        """
        stream = SotwStream(WEB)
        self.assertRaises(
            UnknownType,
            stream.request,
            sotw("type.googleapis.com/envoy.api.v2.Cluster"),
        )


def delta(
    typeURL: str, subscribe: tuple[str, ...] = (), **kw: Any
) -> DeltaDiscoveryRequest:
    return DeltaDiscoveryRequest(
        type_url=typeURL, resource_names_subscribe=subscribe, **kw
    )


class LimitTests(SynchronousTestCase):
    def test_tooManyNames(self) -> None:
        """
        More names of a type than L{streams.MAX_NAMES}, at once or added
        up, are refused.
        """
        self.patch(streams, "MAX_NAMES", 3)
        sotwStream = SotwStream(WEB)
        self.assertRaises(
            TooManyNames, sotwStream.request, sotw(ENDPOINT, ("a", "b", "c", "d"))
        )
        deltaStream = DeltaStream(WEB)
        deltaStream.request(delta(ENDPOINT, ("a", "b")))
        deltaStream.request(delta(ENDPOINT, ("c",)))
        self.assertRaises(TooManyNames, deltaStream.request, delta(ENDPOINT, ("d",)))


class DeltaStreamTests(SynchronousTestCase):
    def test_onlyChangesAreSent(self) -> None:
        """
        A delta stream gets its subscribed resources, then only those
        whose version changed, then the names of those removed.
        """
        stream = DeltaStream(
            snapshot(instance("i1"), instance("j1", name="api", servicePort=10002))
        )
        (first,), _ = stream.request(delta(ENDPOINT, ("web:10001", "api:10002")))
        self.assertEqual(
            sorted(r.name for r in first.resources), ["api:10002", "web:10001"]
        )
        (second,) = stream.update(
            snapshot(
                instance("i1"),
                instance("i2"),
                instance("j1", name="api", servicePort=10002),
            )
        )
        self.assertEqual([r.name for r in second.resources], ["web:10001"])
        self.assertEqual(list(second.removed_resources), [])
        (third,) = stream.update(snapshot(instance("i1"), instance("i2")))
        self.assertEqual(list(third.resources), [])
        self.assertEqual(list(third.removed_resources), ["api:10002"])
        self.assertEqual(stream.update(snapshot(instance("i1"), instance("i2"))), [])

    def test_wildcardAndUnsubscribe(self) -> None:
        """
        A first CDS request naming nothing is a wildcard; unsubscribing
        C{*} ends it, and names can be added and removed.
        """
        snap = snapshot(instance("i1"), instance("j1", name="api", servicePort=10002))
        stream = DeltaStream(snap)
        (first,), _ = stream.request(delta(CLUSTER))
        self.assertEqual(len(first.resources), 2)
        responses, _ = stream.request(
            DeltaDiscoveryRequest(
                type_url=CLUSTER,
                resource_names_unsubscribe=["*"],
                response_nonce=first.nonce,
            )
        )
        (second,) = responses or stream.update(snap)
        self.assertEqual(sorted(second.removed_resources), ["api:10002", "web:10001"])
        (third,), _ = stream.request(delta(CLUSTER, ("api:10002",)))
        self.assertEqual([r.name for r in third.resources], ["api:10002"])
        self.assertEqual(stream.status()["Types"]["CDS"]["Subscribed"], ["api:10002"])

    def test_initialVersionsAndNack(self) -> None:
        """
        What a returning client says it has is not sent again; its NACK is
        recorded.
        """
        snap = snapshot(instance("i1"))
        version = snap.of(CLUSTER).byName["web:10001"].version
        stream = DeltaStream(snap)
        (first,), _ = stream.request(
            delta(
                CLUSTER, initial_resource_versions={"web:10001": version, "gone:1": "x"}
            )
        )
        self.assertEqual(list(first.resources), [])
        self.assertEqual(list(first.removed_resources), ["gone:1"])
        refusal = DeltaDiscoveryRequest(type_url=CLUSTER, response_nonce=first.nonce)
        refusal.error_detail.message = "bad"
        _, nack = stream.request(refusal)
        assert nack is not None
        self.assertEqual(nack.message, "bad")
        self.assertEqual(stream.status()["LastNack"]["Type"], "CDS")
