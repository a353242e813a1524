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

from sidecar.catalog import Port, Service, ServicesState, Status
from sidecar.config import loadConfig
from sidecar.proxy.xds.build import EnvoyControlPlane, makeEnvoy

from .grpcapps import EchoServer, XDSClient
from .processes import pollUntil

SECOND = 1_000_000_000
SERVICE = "that-service"
NODE = "grpc-client"
CALLS = 12


def controlPlane(
    case: TestCase, state: ServicesState, lines: str = ""
) -> EnvoyControlPlane:
    """
    A control plane on 127.0.0.1 (any port) following C{state}, from a
    configuration file with C{lines} after its C{[envoy]} section's; other
    hosts' instances may be on loopback (every "host" here is this one).
    Stopped at cleanup.
    """
    directory = Path(case.mktemp())
    directory.mkdir()
    (directory / "node.toml").write_text(
        f'[node]\nname = "{state.hostname}"\n'
        '[envoy]\nenabled = true\nlisten = "127.0.0.1:0"\n'
        'bind_ip = "127.0.0.168"\n'
        "[haproxy]\nallow_loopback_targets = true\n" + lines
    )
    plane = makeEnvoy(loadConfig(directory / "node.toml", environ={}), state, None, reactor)
    plane.startService()
    case.addCleanup(plane.stopService)
    return plane


def record(
    state: ServicesState, serviceID: str, port: int, status: Status = Status.ALIVE
) -> Service:
    """
    Instance C{serviceID} of L{SERVICE} on host C{host-<id>} at
    C{127.0.0.1:port}, stamped now.
    """
    now = state.now()
    return Service(
        id=serviceID,
        name=SERVICE,
        image="echo:1",
        created=now - 60 * SECOND,
        hostname=f"host-{serviceID}",
        ports=(Port("tcp", port, 10001, "127.0.0.1"),),
        updated=now,
        proxyMode="http",
        status=status,
    )


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
