"""
The xDS server over real loopback gRPC, with a raw ADS client (Envoy's
generated stubs): resources for every ProxyMode, ACK and NACK (shown in
C{/api/envoy.json}), versions, a client that returns, delta
subscriptions, a request for a type not served; a change of the catalog
reaches clients once per burst, within 100 ms; the server stops cleanly
and reports a port it cannot have; and a node without Envoy never loads
gRPC.
"""

from __future__ import annotations

import json
import queue
import socket
import subprocess
import sys
from typing import Any

import grpc
import treq
from envoy.config.cluster.v3.cluster_pb2 import Cluster
from envoy.config.listener.v3.listener_pb2 import Listener
from envoy.service.discovery.v3.ads_pb2_grpc import AggregatedDiscoveryServiceStub
from envoy.service.discovery.v3.discovery_pb2 import (
    DeltaDiscoveryRequest,
    DiscoveryRequest,
)
from treq.testing import StubTreq
from twisted.internet import reactor
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.internet.threads import deferToThread
from twisted.logger import capturedLogs, formatEvent
from twisted.trial.unittest import TestCase
from zope.interface.verify import verifyObject

from sidecar.catalog import ServicesState, Status
from sidecar.catalog.interfaces import ICatalogObserver
from sidecar.interfaces import IProxyReport, IProxyWriter
from sidecar.problems import Problems
from sidecar.proxy.xds import streams
from sidecar.proxy.xds.build import MIN_INTERVAL, EnvoyControlPlane
from sidecar.proxy.xds.server import XDSListenError, XDSServer
from sidecar.proxy.xds.snapshot import CLUSTER, ENDPOINT, LISTENER, ROUTE
from sidecar.web.server import makeSite

from .doubles import Members
from .grpcapps import controlPlane, record
from .inprocess import startNode
from .processes import REPO, pollUntil
from .test_web_api import Health

# How long a raw client waits for one response.
RESPONSE_TIMEOUT = 10.0


class RawADS:
    """
    An ADS stream made with the generated stubs, on a blocking gRPC
    channel whose responses are read in the reactor's thread pool.
    """

    def __init__(self, port: int, delta: bool = False, node: str = "envoy-1"):
        self.node = node
        self._channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        stub = AggregatedDiscoveryServiceStub(self._channel)
        self._requests: queue.Queue[Any] = queue.Queue()
        method = (
            stub.DeltaAggregatedResources if delta else stub.StreamAggregatedResources
        )
        self._responses = method(iter(self._requests.get, None), timeout=60)

    def send(self, request: Any) -> None:
        request.node.id = self.node
        self._requests.put(request)

    def receive(self) -> Deferred[Any]:
        """
        The next response, within L{RESPONSE_TIMEOUT}.
        """
        return deferToThread(next, self._responses).addTimeout(
            RESPONSE_TIMEOUT, reactor
        )

    def close(self) -> None:
        self._requests.put(None)
        self._responses.cancel()
        self._channel.close()


def names(response: Any, kind: type) -> list[str]:
    found = []
    for packed in response.resources:
        message = kind()
        packed.Unpack(message)
        found.append(message.name)
    return sorted(found)


class ServerTests(TestCase):
    timeout = 60

    async def setUpPlane(self, lines: str = "") -> tuple[ServicesState, int]:
        self.state = ServicesState("xds-host", reactor)
        self.addCleanup(self.state.stop)
        self.problems = Problems(reactor)
        self.plane = controlPlane(self, self.state, lines, problems=self.problems)
        port = await self.plane.server.whenListening()
        self.state.merge(record(self.state, "w1", 8001, name="web"))
        self.state.merge(
            record(self.state, "s1", 8002, name="chat", servicePort=10002, mode="ws")
        )
        self.state.merge(
            record(self.state, "d1", 8003, name="db", servicePort=10003, mode="tcp")
        )
        await self.published()
        return self.state, port

    async def published(self) -> None:
        async def upToDate() -> bool | None:
            return True if self.plane.follower.upToDate else None

        await pollUntil(upToDate, timeout=10, every=0.01)

    def client(self, port: int, delta: bool = False, node: str = "envoy-1") -> RawADS:
        raw = RawADS(port, delta, node)
        self.addCleanup(raw.close)
        return raw

    async def test_everyProxyMode(self) -> None:
        """
        A wildcard client (Envoy) gets a listener and a cluster per
        ServicePort, HTTP routes for C{http} and C{ws}, and the endpoints
        it names; no C{api_listener}.
        """
        state, port = await self.setUpPlane()
        raw = self.client(port)
        raw.send(DiscoveryRequest(type_url=LISTENER))
        listeners = await raw.receive()
        self.assertEqual(
            names(listeners, Listener), ["chat:10002", "db:10003", "web:10001"]
        )
        raw.send(DiscoveryRequest(type_url=CLUSTER))
        clusters = await raw.receive()
        self.assertEqual(
            names(clusters, Cluster), ["chat:10002", "db:10003", "web:10001"]
        )
        raw.send(
            DiscoveryRequest(
                type_url=ROUTE, resource_names=["web:10001", "chat:10002", "db:10003"]
            )
        )
        routes = await raw.receive()
        self.assertEqual(len(routes.resources), 2)  # tcp has none
        raw.send(DiscoveryRequest(type_url=ENDPOINT, resource_names=["db:10003"]))
        endpoints = await raw.receive()
        self.assertEqual(len(endpoints.resources), 1)
        self.assertEqual(
            endpoints.version_info, self.plane.server.snapshot.versions()["EDS"]
        )

    async def test_ackNackAndTheAPI(self) -> None:
        """
        An ACK is what the client has; a NACK is logged, counted and shown
        in C{/api/envoy.json}, and the client keeps the version it last
        accepted; the next change is sent as usual.
        """
        state, port = await self.setUpPlane()
        raw = self.client(port)
        raw.send(DiscoveryRequest(type_url=ENDPOINT, resource_names=["web:10001"]))
        first = await raw.receive()
        raw.send(
            DiscoveryRequest(
                type_url=ENDPOINT,
                resource_names=["web:10001"],
                version_info=first.version_info,
                response_nonce=first.nonce,
            )
        )
        await self.clientHas("EDS", "Acked", first.version_info)
        state.merge(record(state, "w2", 8004, name="web"))
        second = await raw.receive()
        self.assertNotEqual(second.version_info, first.version_info)
        refusal = DiscoveryRequest(
            type_url=ENDPOINT,
            resource_names=["web:10001"],
            version_info=first.version_info,
            response_nonce=second.nonce,
        )
        refusal.error_detail.message = "endpoint refused"
        with capturedLogs() as events:
            raw.send(refusal)
            await self.clientHas("EDS", "Nacks", 1)
        self.assertIn("refused EDS version", " ".join(formatEvent(e) for e in events))
        self.assertEqual(self.plane.server.nacks, 1)
        body = await self.envoyJSON(self.plane)
        (shown,) = body["Clients"]
        self.assertEqual(shown["Node"], "envoy-1")
        self.assertEqual(shown["Types"]["EDS"]["Acked"], first.version_info)
        self.assertEqual(shown["LastNack"]["Message"], "endpoint refused")
        self.assertEqual(body["LastNack"]["Version"], second.version_info)
        self.assertEqual(body["Nacks"], 1)
        (problem,) = self.problems.current()
        self.assertEqual((problem.kind, problem.subject), ("xds", "envoy-1 EDS"))
        self.assertIn("endpoint refused", problem.message)
        state.merge(record(state, "w3", 8005, name="web"))
        third = await raw.receive()
        self.assertNotIn(third.version_info, (first.version_info, second.version_info))
        raw.send(
            DiscoveryRequest(
                type_url=ENDPOINT,
                resource_names=["web:10001"],
                version_info=third.version_info,
                response_nonce=third.nonce,
            )
        )
        await self.clientHas("EDS", "Acked", third.version_info)
        self.assertEqual(self.problems.current(), [])

    async def envoyJSON(self, plane: EnvoyControlPlane | None) -> Any:
        site = makeSite(self.state, Members(), Health(), reactor=Clock(), envoy=plane)
        response = await StubTreq(site.resource).get("http://node/api/envoy.json")
        self.assertEqual(response.code, 200)
        return json.loads(await response.content())

    async def test_envoyJSONWhenDisabled(self) -> None:
        self.state = ServicesState("xds-host", reactor)
        self.addCleanup(self.state.stop)
        self.assertEqual(await self.envoyJSON(None), {"Enabled": False})

    async def clientHas(
        self, kind: str, key: str, value: object, node: str = "envoy-1"
    ) -> None:
        async def found() -> bool | None:
            for client in self.plane.server.clients.values():
                if (
                    client["Node"] == node
                    and client["Types"].get(kind, {}).get(key) == value
                ):
                    return True
            return None

        await pollUntil(found, timeout=10, every=0.01)

    async def test_clientReturns(self) -> None:
        """
        A client that leaves is dropped; when it comes back with the
        version it has, its stream resumes: it is answered, and its ACK
        recorded.
        """
        state, port = await self.setUpPlane()
        raw = self.client(port)
        raw.send(DiscoveryRequest(type_url=CLUSTER))
        first = await raw.receive()
        raw.close()

        async def gone() -> bool | None:
            return True if not self.plane.server.clients else None

        await pollUntil(gone, timeout=10, every=0.01)
        again = self.client(port)
        again.send(DiscoveryRequest(type_url=CLUSTER, version_info=first.version_info))
        resumed = await again.receive()
        self.assertEqual(resumed.version_info, first.version_info)
        again.send(
            DiscoveryRequest(
                type_url=CLUSTER,
                version_info=resumed.version_info,
                response_nonce=resumed.nonce,
            )
        )
        await self.clientHas("CDS", "Acked", first.version_info)
        self.assertEqual(len(self.plane.server.clients), 1)

    async def test_delta(self) -> None:
        """
        An incremental client gets what it subscribes to, then only what
        changes, and the names of what is removed.
        """
        state, port = await self.setUpPlane()
        raw = self.client(port, delta=True)
        raw.send(
            DeltaDiscoveryRequest(
                type_url=ENDPOINT, resource_names_subscribe=["web:10001", "db:10003"]
            )
        )
        first = await raw.receive()
        self.assertEqual(
            sorted(r.name for r in first.resources), ["db:10003", "web:10001"]
        )
        state.merge(record(state, "w2", 8004, name="web"))
        second = await raw.receive()
        self.assertEqual([r.name for r in second.resources], ["web:10001"])
        state.merge(
            record(
                state,
                "d1",
                8003,
                name="db",
                servicePort=10003,
                mode="tcp",
                status=Status.TOMBSTONE,
            )
        )
        third = await raw.receive()
        self.assertEqual(list(third.removed_resources), ["db:10003"])
        self.assertEqual(
            self.plane.server.clients[min(self.plane.server.clients)]["Stream"], "delta"
        )

    async def test_unknownType(self) -> None:
        """
        A request for a type not served (the v2 API's) is logged and
        ignored; the stream goes on.
        """
        state, port = await self.setUpPlane()
        raw = self.client(port)
        with capturedLogs() as events:
            raw.send(
                DiscoveryRequest(type_url="type.googleapis.com/envoy.api.v2.Cluster")
            )
            raw.send(DiscoveryRequest(type_url=CLUSTER))
            response = await raw.receive()
        self.assertEqual(response.type_url, CLUSTER)
        text = " ".join(formatEvent(e) for e in events)
        self.assertIn("envoy.api.v2.Cluster, which is not served", text)

    async def test_stopEndsStreams(self) -> None:
        """
        Stopping ends the streams and frees the port, and the Deferred
        fires when it has.
        """
        state, port = await self.setUpPlane()
        raw = self.client(port)
        raw.send(DiscoveryRequest(type_url=CLUSTER))
        await raw.receive()
        await self.plane.stopService()
        self.assertIsNone(self.plane.server.port)
        with self.assertRaises(grpc.RpcError):
            await raw.receive()
        with socket.socket() as again:
            again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            again.bind(("127.0.0.1", port))

    async def test_portTaken(self) -> None:
        """
        A port another socket holds is reported (logged, and
        L{XDSServer.whenListening} fails); stopping still works.
        """
        with socket.socket() as holder:
            holder.bind(("127.0.0.1", 0))
            holder.listen()
            taken = holder.getsockname()[1]
            problems = Problems(reactor)
            server = XDSServer(reactor, "127.0.0.1", taken, problems=problems)
            with capturedLogs() as events:
                server.startService()
                with self.assertRaises(XDSListenError):
                    await server.whenListening()
            await server.stopService()
        (problem,) = problems.current()
        self.assertEqual((problem.kind, problem.subject), ("xds", f"127.0.0.1:{taken}"))
        self.assertIn(
            f"cannot listen on 127.0.0.1:{taken}",
            " ".join(formatEvent(e) for e in events),
        )


class NodeTests(TestCase):
    timeout = 60

    async def test_aNodeServesEnvoy(self) -> None:
        """
        A node with C{[envoy]} enabled serves its catalog over xDS and its
        clients in C{/api/envoy.json}; stopping the node stops the server.
        """
        web = {"Name": "web", "ProxyMode": "http"}
        web["Ports"] = [{"Port": 9000, "ServicePort": 10001}]  # type: ignore[assignment]
        node = startNode(
            self,
            "n1",
            "127.0.0.1",
            targets=[{"Service": web, "Check": {"Type": "AlwaysSuccessful"}}],
            moreSettings=["[envoy]", "enabled = true", 'listen = "127.0.0.1:0"'],
        )
        assert isinstance(node.envoy, EnvoyControlPlane)
        port = await node.envoy.server.whenListening()
        raw = RawADS(port)
        self.addCleanup(raw.close)

        raw.send(DiscoveryRequest(type_url=CLUSTER))
        response = await raw.receive()
        while not response.resources:
            raw.send(
                DiscoveryRequest(
                    type_url=CLUSTER,
                    version_info=response.version_info,
                    response_nonce=response.nonce,
                )
            )
            response = await raw.receive()
        self.assertEqual(names(response, Cluster), ["web:10001"])
        api = node.api.port.getHost()  # type: ignore[union-attr]
        answer = await treq.get(
            f"http://127.0.0.1:{api.port}/api/envoy.json", persistent=False
        )
        body = json.loads(await answer.content())
        self.assertTrue(body["Enabled"])
        self.assertEqual(body["Listen"], f"127.0.0.1:{port}")
        self.assertEqual(body["Frontends"][0]["Name"], "web-10001")
        await node.stopService()
        self.assertIsNone(node.envoy.server.port)
        with self.assertRaises(grpc.RpcError):
            await raw.receive()


class HostileTests(TestCase):
    timeout = 30

    async def test_garbageOnTheStream(self) -> None:
        """
        Bytes that are no request end that stream only: the server goes
        on serving others.
        """
        state = ServicesState("xds-host", reactor)
        self.addCleanup(state.stop)
        plane = controlPlane(self, state)
        port = await plane.server.whenListening()
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self.addCleanup(channel.close)
        method = channel.stream_stream(
            "/envoy.service.discovery.v3.AggregatedDiscoveryService/"
            "StreamAggregatedResources",
            request_serializer=lambda b: b,
            response_deserializer=lambda b: b,
        )
        broken = method(iter([b"\xff\xff\xff garbage"]), timeout=10)
        with capturedLogs() as events:
            with self.assertRaises(grpc.RpcError) as raised:
                await deferToThread(next, broken)

            async def logged() -> bool | None:
                text = " ".join(formatEvent(e) for e in events)
                return True if "unreadable request" in text else None

            await pollUntil(logged, timeout=10, every=0.01)
        self.assertEqual(raised.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        raw = RawADS(port)
        self.addCleanup(raw.close)
        raw.send(DiscoveryRequest(type_url=CLUSTER))
        response = await raw.receive()
        self.assertEqual(response.type_url, CLUSTER)


class InterfaceTests(TestCase):
    def test_interfaces(self) -> None:
        """
        The writer is a proxy writer, the control plane a proxy report,
        and the follower observes the catalog.
        """
        clock = Clock()
        state = ServicesState("xds-host", clock)
        self.addCleanup(state.stop)
        plane = controlPlane(self, state, clock=clock)
        self.assertTrue(verifyObject(IProxyWriter, plane.follower.writer))
        self.assertTrue(verifyObject(IProxyReport, plane))
        self.assertTrue(verifyObject(ICatalogObserver, plane.follower))


class LimitTests(TestCase):
    timeout = 30

    async def test_tooManyNames(self) -> None:
        """
        A stream that subscribes to more names than any catalog has is
        ended with C{RESOURCE_EXHAUSTED} and a warning.
        """
        self.patch(streams, "MAX_NAMES", 10)
        state = ServicesState("xds-host", reactor)
        self.addCleanup(state.stop)
        plane = controlPlane(self, state)
        port = await plane.server.whenListening()
        raw = RawADS(port, delta=True)
        self.addCleanup(raw.close)
        with capturedLogs() as events:
            raw.send(
                DeltaDiscoveryRequest(type_url=ENDPOINT, resource_names_subscribe=["a"])
            )
            await raw.receive()
            raw.send(
                DeltaDiscoveryRequest(
                    type_url=ENDPOINT,
                    resource_names_subscribe=[f"n{n}" for n in range(10)],
                )
            )
            with self.assertRaises(grpc.RpcError) as raised:
                await raw.receive()
        self.assertEqual(raised.exception.code(), grpc.StatusCode.RESOURCE_EXHAUSTED)
        self.assertIn("11 names of EDS, more than 10", raised.exception.details())
        await pollUntil(
            lambda: succeed(
                True
                if "its stream is ended" in " ".join(formatEvent(e) for e in events)
                else None
            ),
            timeout=10,
            every=0.01,
        )


class PropagationTests(TestCase):
    def test_burstIsOneUpdateWithin100ms(self) -> None:
        """
        A burst of catalog changes reaches clients as one new snapshot,
        at most 100 ms after the first.
        """
        clock = Clock()
        clock.advance(1_700_000_000)
        state = ServicesState("xds-host", clock)
        self.addCleanup(state.stop)
        plane = controlPlane(self, state, clock=clock)
        clock.advance(1)
        before = plane.server.snapshot.serial
        for n in range(5):
            state.merge(record(state, f"i{n}", 8000 + n))
        clock.advance(MIN_INTERVAL)
        self.assertLessEqual(MIN_INTERVAL, 0.1)
        self.assertEqual(plane.server.snapshot.serial, before + 1)
        endpoints = plane.server.snapshot.of(ENDPOINT).byName
        self.assertEqual(list(endpoints), ["that-service:10001"])
        clock.advance(1)
        self.assertEqual(plane.server.snapshot.serial, before + 1)


class LazyImportTests(TestCase):
    def test_noGRPCWithoutEnvoy(self) -> None:
        """
        A node built without C{[envoy]} has not imported gRPC or Envoy's
        API; with it, it has.
        """
        program = (
            "import sys\n"
            "from twisted.internet.task import Clock\n"
            "from sidecar.config import loadConfig\n"
            "from sidecar.service import makeService\n"
            "env = {'ENVOY_USE_GRPC_API': sys.argv[1]}\n"
            "makeService(loadConfig(None, environ=env, hostname='n'), Clock())\n"
            "loaded = {m.split('.')[0] for m in sys.modules}\n"
            "print(sorted(loaded & {'grpc', 'envoy'}))\n"
        )
        found = []
        for enabled in ("false", "true"):
            output = subprocess.run(
                [sys.executable, "-c", program, enabled],
                capture_output=True,
                text=True,
                timeout=60,
                cwd=REPO,
            )
            self.assertEqual(output.returncode, 0, output.stderr)
            found.append(output.stdout.strip())
        self.assertEqual(found, ["[]", "['envoy', 'grpc']"])
