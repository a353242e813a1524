"""
Proxyless gRPC through our xDS control plane: a real gRPC client (gRPC's
own xDS resolver and load balancer, in a child process) calls
C{xds:///that-service}, whose instances are two real gRPC servers in the
catalog.  As one of them turns unhealthy, is drained, is killed and comes
back, every call, once the change has reached the client, goes to an
ALIVE instance, and none fails.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from sidecar.catalog import ServicesState, Status
from sidecar.proxy.xds.build import EnvoyControlPlane

from .grpcapps import SERVICE, EchoServer, XDSClient, controlPlane, record
from .processes import pollUntil

NODE = "grpc-client"
CALLS = 12


class ProxylessTests(TestCase):
    timeout = 120

    async def test_callsFollowTheCatalog(self) -> None:
        state = ServicesState("xds-host", reactor)
        self.addCleanup(state.stop)
        plane = controlPlane(self, state)
        xdsPort = await plane.server.whenListening()
        servers = {name: EchoServer(name) for name in ("a", "b")}
        ports = {name: server.port for name, server in servers.items()}
        self.addCleanup(lambda: [s.stop() for s in servers.values()])
        for name in servers:
            state.merge(record(state, name, ports[name]))
        directory = Path(self.mktemp())
        directory.mkdir()
        client = XDSClient(directory, xdsPort, SERVICE, NODE)
        self.addCleanup(client.stop)

        async def calls(alive: set[str]) -> None:
            await self.propagated(plane)
            answers = await client.call(CALLS)
            self.assertEqual(set(answers), alive, answers)

        await calls({"a", "b"})
        state.merge(record(state, "b", ports["b"], Status.UNHEALTHY))
        await calls({"a"})
        state.merge(record(state, "b", ports["b"]))
        await calls({"a", "b"})
        state.merge(record(state, "b", ports["b"], Status.DRAINING))
        await calls({"a"})
        state.merge(record(state, "b", ports["b"], Status.TOMBSTONE))
        await self.propagated(plane)
        servers.pop("b").stop()
        await calls({"a"})
        servers["b"] = EchoServer("b", ports["b"])
        state.merge(record(state, "b", ports["b"]))
        await calls({"a", "b"})

    async def propagated(self, plane: EnvoyControlPlane) -> None:
        """
        Wait until the catalog's last change has reached the client: the
        follower is up to date, and the client has acknowledged the
        endpoints now served.
        """

        async def acked() -> bool | None:
            wanted = plane.server.snapshot.versions()["EDS"]
            for client in plane.server.clients.values():
                if client["Node"] == NODE and plane.follower.upToDate:
                    eds: dict[str, Any] = client["Types"].get("EDS", {})
                    if eds.get("Acked") == wanted:
                        return True
            return None

        try:
            await pollUntil(acked, timeout=20)
        except TimeoutError:
            self.fail(f"never propagated: {plane.status()}")
