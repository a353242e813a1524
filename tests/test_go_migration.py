"""
The rolling migration of docs/migrating.md, against the real Go Sidecar:
three hosts, each with an instance of one web service, a Go Sidecar and
the HAProxy it drives on the host's proxy IP; a client calls the service
through the three proxies in turn, 50 calls a second, each on a new
connection.  Host by host, the Go Sidecar stops and our node starts in its
place with the host's environment as it is, and takes the host's HAProxy
over.  Not one call fails, every proxy routes to every instance after each
step, and at the end our nodes run every proxy and no Go node is left.

The hosts are network namespaces (see L{tests.gosidecar}); every address
is a loopback one, hence C{haproxy.allow_loopback_targets}, which a real
cluster does not need.
"""

from __future__ import annotations

import json
import os
import signal
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import treq
from twisted.internet import reactor
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.task import LoopingCall
from twisted.trial.unittest import TestCase

from sidecar.demo.processes import NodeProcess
from sidecar.proxy.haproxy import leftBehind

from .gosidecar import (
    GO_API_PORT,
    GO_GOSSIP_PORT,
    GO_HOST,
    GoHost,
    GoNode,
    goHAProxyTemplate,
    goSkipReason,
    goSourcesSkipReason,
    privateNetwork,
    startGoNode,
    startOursInPlaceOf,
)
from .netns import inNetwork
from .processes import pollUntil
from .switches import serve
from .test_haproxy import Named, haproxySkipReason, temporaryDirectory

SERVICE = "web"
INSTANCE_PORT = 9100
SERVICE_PORT = 10100
CALLS_PER_SECOND = 50
# How long one step may take to show its effect.
STEP_TIMEOUT = 60.0


@dataclass
class Host:
    """
    One "host": its network namespace (L{None}: the test's own), address,
    proxy IP, hostname, HAProxy files, and the sidecar running there now.
    """

    name: str
    address: str
    proxyIP: str
    namespace: GoHost | None
    directory: Path
    go: GoNode | None = None
    ours: NodeProcess | None = None
    goHAProxy: int | None = None

    @property
    def configFile(self) -> Path:
        return self.directory / "haproxy.cfg"

    @property
    def pidFile(self) -> Path:
        return self.directory / "haproxy.pid"

    @property
    def adminSocket(self) -> Path:
        return self.directory / "admin.sock"

    @property
    def proxy(self) -> str:
        return f"http://{self.proxyIP}:{SERVICE_PORT}/"

    @property
    def ourAPI(self) -> str:
        return f"http://{self.address}:{GO_API_PORT}/api"


@dataclass
class Client:
    """
    Calls the service through the proxies in turn, each call on a new
    connection, and counts what answered through each.
    """

    proxies: list[str]
    answered: dict[str, Counter[str]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    calls: int = 0
    started: float = 0.0
    stopped: float = 0.0
    _pending: set[Deferred[None]] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.answered = {proxy: Counter() for proxy in self.proxies}
        # A late reactor (a busy machine) makes up the calls it missed.
        self._loop = LoopingCall.withCount(self._tick)
        self._loop.clock = reactor

    def start(self) -> None:
        self.started = reactor.seconds()  # type: ignore[attr-defined]
        self._loop.start(1 / CALLS_PER_SECOND)

    async def stop(self) -> None:
        if self._loop.running:
            self._loop.stop()
            self.stopped = reactor.seconds()  # type: ignore[attr-defined]
        for pending in list(self._pending):
            await pending

    def _tick(self, count: int) -> None:
        for _ in range(count):
            proxy = self.proxies[self.calls % len(self.proxies)]
            self.calls += 1
            self._start(proxy)

    def _start(self, proxy: str) -> None:
        d = ensureDeferred(self._call(proxy))
        self._pending.add(d)
        d.addBoth(lambda _: self._pending.discard(d))

    async def _call(self, proxy: str) -> None:
        started = reactor.seconds()  # type: ignore[attr-defined]
        try:
            response = await treq.get(proxy, persistent=False, timeout=5)
            body = (await response.content()).decode("utf-8", "replace")
        except Exception as e:
            self.failures.append(f"{proxy} at {started:.3f}: {e!r}")
            return
        if response.code != 200:
            self.failures.append(f"{proxy} at {started:.3f}: {response.code} {body}")
            return
        self.answered[proxy][body] += 1

    def mark(self) -> dict[str, Counter[str]]:
        """
        What has answered so far, to compare with later.
        """
        return {proxy: Counter(seen) for proxy, seen in self.answered.items()}


def goTarget(host: Host) -> dict[str, Any]:
    """
    The host's instance, in the static file both kinds of node read.
    """
    return {
        "Service": {
            "Name": SERVICE,
            "Ports": [
                {
                    "Type": "tcp",
                    "Port": INSTANCE_PORT,
                    "ServicePort": SERVICE_PORT,
                    "IP": host.address,
                }
            ],
            "ProxyMode": "http",
        },
        "Check": {
            "Type": "HttpGet",
            "Args": f"http://{host.address}:{INSTANCE_PORT}/",
        },
    }


def goHAProxyEnvironment(host: Host, template: Path) -> dict[str, str]:
    """
    The host's C{HAPROXY_*} variables: its proxy IP and files, Go's own
    template with the sockets handed over (see L{goHAProxyTemplate}), and
    a reload that hands them over too (docs/migrating.md, step 3).
    """
    config, pids, socket = host.configFile, host.pidFile, host.adminSocket
    return {
        "HAPROXY_DISABLE": "false",
        "HAPROXY_BIND_IP": host.proxyIP,
        "HAPROXY_CONFIG_FILE": str(config),
        "HAPROXY_PID_FILE": str(pids),
        "HAPROXY_TEMPLATE_FILE": str(template),
        "HAPROXY_USER": "",
        "HAPROXY_RELOAD_COMMAND": (
            f"haproxy -f {config} -p {pids}"
            f' $([ -f {pids} ] && echo "-x {socket} -sf $(cat {pids})")'
        ),
    }


def ourSettings(host: Host) -> list[str]:
    """
    Our node's configuration file on the host: what has no variable
    (docs/migrating.md, step 1).
    """
    return [
        "[api]",
        f'listen = "{host.address}:{GO_API_PORT}"',
        "[haproxy]",
        "enabled = true",
        f'admin_socket = "{host.adminSocket}"',
        "allow_loopback_targets = true",
    ]


class RollingMigrationTests(TestCase):
    skip = goSkipReason() or goSourcesSkipReason() or haproxySkipReason()
    timeout = 240

    async def test_threeGoHostsReplacedOneByOneWithoutAFailedCall(self) -> None:
        network = privateNetwork(self)
        hosts = [Host("go-1", GO_HOST, "127.0.0.168", None, temporaryDirectory(self))]
        for index in (2, 3):
            proxyIP = f"127.1.168.{index}"
            namespace = await network.addHost(aliases=[proxyIP])
            hosts.append(
                Host(
                    f"go-{index}",
                    namespace.address,
                    proxyIP,
                    namespace,
                    temporaryDirectory(self),
                )
            )
        for host in hosts:
            self.addCleanup(self.stopGoHAProxy, host)
            resource = Named(f"instance on {host.name}")
            if host.namespace is None:
                serve(self, resource, host.address, INSTANCE_PORT)
            else:
                with inNetwork(host.namespace.namespace):
                    serve(self, resource, host.address, INSTANCE_PORT)
        # Every node lists every host as a seed (docs/migrating.md, step 2).
        seeds = [f"{host.address}:{GO_GOSSIP_PORT}" for host in hosts]
        for host in hosts:
            template = goHAProxyTemplate(
                host.directory / "go-haproxy.cfg.tmpl", str(host.adminSocket)
            )
            host.go = await startGoNode(
                self,
                seeds,
                hostname=host.name,
                services=[goTarget(host)],
                host=host.namespace,
                environment=goHAProxyEnvironment(host, template),
            )
        proxies = [host.proxy for host in hosts]
        # Until the Go nodes route everywhere, calls may fail: a client of
        # its own waits for that, then the client that counts starts.
        warmUp, client = Client(proxies), Client(proxies)
        for each in (warmUp, client):
            self.addCleanup(lambda each=each: ensureDeferred(each.stop()))
        try:
            warmUp.start()
            await self.routesEverywhere(warmUp, hosts, warmUp.mark())
            await warmUp.stop()
            client.start()
            await self.routesEverywhere(client, hosts, client.mark())
            for host in hosts:
                await self.migrate(client, hosts, host)
            await client.stop()
            await self.assertOursEverywhere(hosts)
        except Exception as e:
            self.fail(f"{e!r}\n{self.diagnostics(hosts, client)}")
        self.assertEqual(client.failures, [], self.diagnostics(hosts, client))
        # Every call was made: 50 a second while the client ran.
        expected = (client.stopped - client.started) * CALLS_PER_SECOND
        self.assertGreater(client.calls, expected - CALLS_PER_SECOND)

    async def migrate(self, client: Client, hosts: list[Host], host: Host) -> None:
        """
        docs/migrating.md's steps 4 and 5 on C{host}: stop the Go Sidecar,
        start ours in its place, check that it took the host's HAProxy over
        and that every proxy routes to every instance after it.
        """
        assert host.go is not None
        host.goHAProxy = leftBehind(str(host.pidFile), str(host.configFile))
        self.assertIsNotNone(host.goHAProxy, "the Go Sidecar's HAProxy runs")
        host.go.signal("TERM")
        await host.go.ended
        host.ours = await startOursInPlaceOf(
            self, host.go, host.namespace, ourSettings(host)
        )

        async def tookOver() -> bool | None:
            status = await self.ourAPI(host, "/haproxy.json")
            return (
                True
                if status["Running"]
                and status["UpToDate"]
                and status["LastError"] is None
                and not _running(host.goHAProxy)
                else None
            )

        await pollUntil(tookOver, timeout=STEP_TIMEOUT, every=0.2)
        await self.goRoutesOurRecord(hosts, host)
        await self.routesEverywhere(client, hosts, client.mark())

    async def goRoutesOurRecord(self, hosts: list[Host], host: Host) -> None:
        """
        Until every HAProxy a Go Sidecar still drives has a server for our
        record of C{host}'s instance (its own ID, the Go node's name and
        address): the Go nodes route to our nodes' records.
        """
        [ourID] = (await self.ourAPI(host, "/checks.json"))["Checks"]
        server = f"server {host.name}-{ourID} {host.address}:{INSTANCE_PORT} "
        stillGo = [other for other in hosts if other.ours is None]

        async def routed() -> bool | None:
            configs = [other.configFile.read_text() for other in stillGo]
            return True if all(server in text for text in configs) else None

        await pollUntil(routed, timeout=STEP_TIMEOUT, every=0.2)

    async def routesEverywhere(
        self, client: Client, hosts: list[Host], since: dict[str, Counter[str]]
    ) -> None:
        """
        Until every proxy has routed C{client}'s calls to every instance
        since C{since}.
        """
        instances = {f"instance on {host.name}" for host in hosts}

        async def everywhere() -> bool | None:
            for proxy, seen in client.answered.items():
                new = {
                    body for body, count in seen.items() if count > since[proxy][body]
                }
                if new != instances:
                    return None
            return True

        await pollUntil(everywhere, timeout=STEP_TIMEOUT, every=0.2)

    async def assertOursEverywhere(self, hosts: list[Host]) -> None:
        """
        Our nodes wrote every proxy's configuration and run its HAProxy;
        the Go nodes' HAProxies are gone, and no member is a Go node.
        """
        for host in hosts:
            self.assertTrue(
                host.configFile.read_text().startswith("# Written by sidecar"),
                host.configFile,
            )
            status = await self.ourAPI(host, "/haproxy.json")
            self.assertTrue(status["Running"])
            self.assertGreaterEqual(status["Reloads"], 1)
            self.assertFalse(_running(host.goHAProxy))

        async def noGoLeft() -> Any:
            health = await self.ourAPI(hosts[-1], "/health")
            return health if health["GoPeers"]["Members"] == [] else None

        await pollUntil(noGoLeft, timeout=STEP_TIMEOUT, every=0.5)
        members = (await self.ourAPI(hosts[-1], "/members.json"))["Members"]
        self.assertEqual(
            [(m["Name"], m["State"], "Drains" in m["Meta"]) for m in members],
            [(host.name, "alive", True) for host in hosts],
            "every member is alive and one of ours (its metadata says so)",
        )

    async def ourAPI(self, host: Host, path: str) -> Any:
        response = await treq.get(f"{host.ourAPI}{path}", persistent=False, timeout=5)
        return json.loads(await response.content())

    def diagnostics(self, hosts: list[Host], client: Client) -> str:
        """
        What to look at when the migration fails: every call that failed,
        and each host's sidecar log tail and HAProxy configuration.
        """
        parts = [f"{client.calls} calls; failed: {client.failures[:20]}"]
        for host in hosts:
            parts.append(f"===== {host.name} =====")
            if host.go is not None:
                parts.append("--- Go Sidecar ---\n" + host.go.describe()[-3000:])
            if host.ours is not None:
                parts.append("--- ours ---\n" + host.ours.describe()[-3000:])
            try:
                parts.append("--- haproxy.cfg ---\n" + host.configFile.read_text())
            except OSError as e:
                parts.append(f"--- haproxy.cfg: {e}")
        return "\n".join(parts)

    def stopGoHAProxy(self, host: Host) -> None:
        """
        Kill the HAProxy the Go Sidecar started as a daemon on C{host}, if
        it still runs once our node has stopped (a migration that failed
        half-way).
        """
        pid = leftBehind(str(host.pidFile), str(host.configFile))
        if pid is not None:
            os.kill(pid, signal.SIGKILL)


def _running(pid: int | None) -> bool:
    """
    Whether the process C{pid} still runs (and is not a zombie).
    """
    if pid is None:
        return False
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
