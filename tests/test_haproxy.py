"""
A real HAProxy (Debian's), driven from a catalog by L{ProxyFollower} and
L{HAProxyWriter}, with clients sending requests through its frontend on
127.0.0.168 the whole time: instances turn unhealthy and healthy, join
and leave (all through the runtime API), and 20 reloads happen, and no
request fails, nor reaches an instance after its removal was applied.  A
configuration HAProxy refuses leaves the old one serving until a good one
comes; one it cannot run is rolled back.  Hostile records (no IP, names
that collide, a ServicePort held or of our own, another host's loopback,
C{Created} 0) are left out and shown, and the rest keeps flowing.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import treq
from twisted.internet import defer, reactor
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import deferLater
from twisted.python.usage import UsageError
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.client import HTTPConnectionPool
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site

from sidecar.catalog import Port, Service, ServicesState, Status
from sidecar.config import loadConfig
from sidecar.demo.processes import TWISTD, ChildProcess, spawn
from sidecar.haproxytap import Options, makeCompanion
from sidecar.problems import Problems
from sidecar.proxy import follower as followerModule
from sidecar.proxy import haproxy as haproxyModule
from sidecar.proxy.follower import ProxyFollower
from sidecar.proxy.haproxy import HAProxySettings, HAProxyWriter
from sidecar.proxy.model import OPEN, Admission, buildModel
from sidecar.proxy.ports import bindProbe
from sidecar.proxy.runtime import RuntimeCommandError
from sidecar.proxy.template import ProxyTemplate, TemplateSettings
from sidecar.service import SidecarNode

from .doubles import Members
from .inprocess import gossipPort, startNode
from .processes import freePort, pollUntil
from .switches import serve

BIND_IP = "127.0.0.168"
SECOND = 1_000_000_000


def haproxySkipReason() -> str | None:
    if shutil.which("haproxy") is None:
        return "haproxy is not installed (Debian package haproxy)"
    return None


class Slow(Resource):
    """
    Answers its name when the test says: a request under way.
    """

    isLeaf = True

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name.encode()
        self.waiting: list[object] = []

    def render_GET(self, request):  # type: ignore[no-untyped-def]
        self.waiting.append(request)
        return NOT_DONE_YET

    def answerAll(self) -> None:
        for request in self.waiting:
            request.write(self.name)  # type: ignore[attr-defined]
            request.finish()  # type: ignore[attr-defined]
        self.waiting = []


class Named(Resource):
    isLeaf = True

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name.encode()

    def render_GET(self, request):  # type: ignore[no-untyped-def]
        return self.name


def temporaryDirectory(case: TestCase) -> Path:
    # Short: HAProxy's admin socket path must fit in 107 bytes.
    directory = Path(tempfile.mkdtemp(prefix="sidecar-haproxy-"))
    case.addCleanup(shutil.rmtree, directory, True)
    return directory


def serveNamed(case: TestCase, name: str, resource: Resource | None = None) -> int:
    """
    A web server on 127.0.0.1 answering C{name}; its port.
    """
    return serve(case, resource or Named(name))


def staticTarget(port: int, servicePort: int) -> dict[str, Any]:
    return {
        "Service": {
            "Name": "web",
            "Ports": [{"Port": port, "ServicePort": servicePort}],
        },
        "Check": {"Type": "AlwaysSuccessful"},
    }


def haproxySettings(directory: Path) -> list[str]:
    """
    The C{[haproxy]} lines of a test: everything in C{directory}.
    """
    return [
        "[haproxy]",
        f'bind_ip = "{BIND_IP}"',
        f'config_file = "{directory / "haproxy.cfg"}"',
        f'pid_file = "{directory / "haproxy.pid"}"',
        f'admin_socket = "{directory / "admin.sock"}"',
        'stats_listen = ""',
        'min_reload_interval = "100ms"',
    ]


async def routing(follower: ProxyFollower) -> None:
    """
    Wait until C{follower}'s HAProxy routes to some server.
    """

    def routed() -> defer.Deferred[bool | None]:
        model = follower.model
        up = (
            follower.upToDate
            and model is not None
            and any(f.servers for f in model.frontends)
        )
        return defer.succeed(True if up else None)

    await pollUntil(routed, timeout=15, every=0.02)


async def answer(url: str) -> bytes | None:
    """
    The body of one GET of C{url} on a new connection, or L{None} if it
    fails.
    """
    try:
        response = await treq.get(url, persistent=False, timeout=2)
        return await response.content()  # type: ignore[no-any-return]
    except Exception:
        return None


async def startOwnHAProxy(
    case: TestCase, config: Path, pidFile: Path
) -> subprocess.Popen[bytes]:
    """
    A master-worker HAProxy of the test's own on C{config}, not the
    writer's child (one run by someone else, or left by an earlier node);
    stopped when the test ends.  Return once it has written C{pidFile}.
    """
    own = subprocess.Popen(
        ["haproxy", "-W", "-db", "-f", str(config), "-p", str(pidFile)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    case.addCleanup(own.wait, 10)
    case.addCleanup(own.terminate)
    await pollUntil(lambda: defer.succeed(True if pidFile.exists() else None))
    return own


@dataclass
class Request:
    started: float
    answer: str | None  # the instance that answered, or None: it failed
    error: str = ""


class HAProxyCase(TestCase):
    """
    A real HAProxy, its writer and a follower of a catalog of host-a; the
    follower admits what C{admission} says.
    """

    skip = haproxySkipReason()
    admission = OPEN

    def setUp(self) -> None:
        self.directory = temporaryDirectory(self)
        self.state = ServicesState("host-a", reactor)  # type: ignore[arg-type]
        self.addCleanup(self.state.stop)
        self.servicePort = freePort(BIND_IP, udp=False)
        self.ports: dict[str, int] = {}
        self.problems = Problems(reactor)  # type: ignore[arg-type]
        self.writer = HAProxyWriter(
            reactor,
            HAProxySettings(
                configFile=str(self.directory / "haproxy.cfg"),
                binary="haproxy",
                pidFile=str(self.directory / "haproxy.pid"),
            ),
            ProxyTemplate.default(),
            TemplateSettings(
                bind_ip=BIND_IP,
                admin_socket=str(self.directory / "admin.sock"),
                maxconn=1024,
            ),
        )
        self.follower = ProxyFollower(
            self.state,
            Members("host-a", "host-b"),
            self.writer,
            reactor,
            0.1,
            admission=self.admission,
            problems=self.problems,
        )
        self.follower.startService()
        self.addCleanup(self.follower.stopService)

    def backend(self, name: str, resource: Resource | None = None) -> int:
        self.ports[name] = serveNamed(self, name, resource)
        return self.ports[name]

    def record(
        self,
        name: str,
        status: Status = Status.ALIVE,
        service: str = "web",
        servicePort: int | None = None,
        host: str = "host-b",
    ) -> Service:
        return Service(
            id=name,
            name=service,
            image="img",
            hostname=host,
            ports=(
                Port(
                    "tcp",
                    self.ports[name],
                    servicePort or self.servicePort,
                    "127.0.0.1",
                ),
            ),
            created=SECOND,
            updated=round(reactor.seconds() * SECOND),  # type: ignore[attr-defined]
            status=status,
        )

    async def applied(self) -> float:
        """
        Wait until the follower has applied the catalog as it is now;
        return when.
        """
        await pollUntil(
            lambda: defer.succeed(True if self.follower.upToDate else None),
            timeout=15,
            every=0.01,
        )
        return reactor.seconds()  # type: ignore[attr-defined, no-any-return]

    async def clients(
        self, log: list[Request], count: int = 2
    ) -> defer.Deferred[object]:
        self.sending = True

        # Besides new connections, one client keeps its connections alive,
        # and does not retry a request on a connection HAProxy closed.
        pool = HTTPConnectionPool(reactor, persistent=True)
        pool.retryAutomatically = False
        self.addCleanup(pool.closeCachedConnections)

        async def loop(keepAlive: bool) -> None:
            url = f"http://{BIND_IP}:{self.servicePort}/"
            while self.sending:
                started = reactor.seconds()  # type: ignore[attr-defined]
                try:
                    if keepAlive:
                        response = await treq.get(url, pool=pool, timeout=5)
                    else:
                        response = await treq.get(url, persistent=False, timeout=5)
                    body = (await response.content()).decode()
                    if response.code == 200:
                        log.append(Request(started, body))
                    else:
                        log.append(Request(started, None, f"HTTP {response.code}"))
                except Exception as e:
                    log.append(Request(started, None, repr(e)))

        loops = [loop(keepAlive=False) for _ in range(count)] + [loop(keepAlive=True)]
        return defer.DeferredList([defer.ensureDeferred(each) for each in loops])


class HAProxyTests(HAProxyCase):
    async def test_noRequestFailsThroughChangesAndReloads(self) -> None:
        for name in ("a", "b", "c"):
            self.backend(name)
        self.state.merge(self.record("a"))
        self.state.merge(self.record("b"))
        await self.applied()
        reloads = self.writer.reloads
        log: list[Request] = []
        running = await self.clients(log)
        try:
            await deferLater(reactor, 0.3)
            # b turns unhealthy: no request started after that reaches it.
            self.state.merge(self.record("b", Status.UNHEALTHY))
            gone = await self.applied()
            await deferLater(reactor, 0.3)
            self.state.merge(self.record("b"))
            await self.applied()
            # c joins, then leaves.
            self.state.merge(self.record("c"))
            await self.applied()
            await deferLater(reactor, 0.3)
            self.state.merge(self.record("c", Status.TOMBSTONE))
            cGone = await self.applied()
            self.assertEqual(self.writer.reloads, reloads)  # no reload at all
            self.assertEqual(self.writer.runtimeChanges, 4)
            # 20 reloads: another service's frontend comes and goes.
            otherPort = freePort(BIND_IP, udp=False)
            for n in range(20):
                status = Status.ALIVE if n % 2 == 0 else Status.TOMBSTONE
                other = self.record("c", status, service="other", servicePort=otherPort)
                self.state.merge(replace(other, id="other"))
                await self.applied()
            self.assertEqual(self.writer.reloads, reloads + 20)
            await deferLater(reactor, 0.3)
        finally:
            self.sending = False
            await running
        failed = [r for r in log if r.answer is None]
        self.assertEqual(failed, [], f"{len(failed)} of {len(log)} requests failed")
        self.assertGreater(len(log), 200)
        served = {r.answer for r in log}
        self.assertEqual(served, {"a", "b", "c"})
        unhealthyB = [
            r for r in log if r.answer == "b" and gone < r.started < gone + 0.3
        ]
        self.assertEqual(unhealthyB, [])
        lateC = [r for r in log if r.answer == "c" and r.started > cGone]
        self.assertEqual(lateC, [])

    async def test_aHAProxyThatDiesIsStartedAgain(self) -> None:
        self.backend("a")
        self.state.merge(self.record("a"))
        await self.applied()
        pid = int((self.directory / "haproxy.pid").read_text().split()[0])
        os.kill(pid, signal.SIGKILL)
        url = f"http://{BIND_IP}:{self.servicePort}/"
        await pollUntil(
            lambda: defer.succeed(True if self.writer.lastError else None), timeout=10
        )
        self.assertEqual(await pollUntil(lambda: answer(url), timeout=15), b"a")

    async def test_aServerBusyWhenTakenOutComesBackWithoutAReload(self) -> None:
        slow = Slow("a")
        self.backend("a", slow)
        self.state.merge(self.record("a"))
        await self.applied()
        reloads = self.writer.reloads
        url = f"http://{BIND_IP}:{self.servicePort}/"
        underWay = treq.get(url, persistent=False, timeout=10)
        await pollUntil(lambda: defer.succeed(True if slow.waiting else None))
        # Taken out with a request under way: HAProxy cannot delete it yet.
        self.state.merge(self.record("a", Status.UNHEALTHY))
        await self.applied()
        self.assertEqual(
            self.follower.status()["ServersDraining"],
            [f"web-{self.servicePort}/host-b-a"],
        )
        self.state.merge(self.record("a"))
        await self.applied()
        slow.answerAll()
        response = await underWay
        self.assertEqual(await response.content(), b"a")
        self.assertEqual(self.writer.reloads, reloads)
        self.assertEqual(self.writer.runtimeChanges, 2)
        second = treq.get(url, persistent=False, timeout=10)
        await pollUntil(lambda: defer.succeed(True if slow.waiting else None))
        slow.answerAll()
        self.assertEqual(await (await second).content(), b"a")

    async def test_aConfigurationHAProxyRefusesLeavesTheOldOneServing(self) -> None:
        self.patch(followerModule, "RETRY_AFTER", 0.5)
        self.backend("a")
        self.state.merge(self.record("a"))
        await self.applied()
        configFile = self.directory / "haproxy.cfg"
        good = configFile.read_text()
        # A user's template that renders what HAProxy refuses.
        self.writer.template = ProxyTemplate(
            "global\n    nonsense-keyword\n", "broken.cfg.j2"
        )
        self.state.merge(self.record("a", Status.UNHEALTHY))
        await pollUntil(
            lambda: defer.succeed(True if self.writer.lastError else None), timeout=15
        )
        self.assertIn(
            "haproxy refused the new configuration", self.writer.lastError or ""
        )
        self.assertIn("nonsense-keyword", self.writer.lastError or "")
        self.assertEqual(configFile.read_text(), good)
        url = f"http://{BIND_IP}:{self.servicePort}/"
        response = await treq.get(url, persistent=False, timeout=5)
        self.assertEqual(await response.content(), b"a")
        status = self.follower.status()
        self.assertEqual(status["LastError"], self.writer.lastError)
        # Nothing is frozen for good: with a template HAProxy accepts, the
        # change that waited (a is unhealthy) is applied.
        self.writer.template = ProxyTemplate.default()
        await self.applied()
        self.assertIsNone(self.writer.lastError)
        response = await treq.get(url, persistent=False, timeout=5)
        self.assertEqual(response.code, 503)
        await response.content()


class RuntimeChangeTests(HAProxyCase):
    """
    A server that keeps its name but moves (another port, another address)
    is moved at runtime; a runtime change HAProxy refuses becomes a reload.
    """

    def moved(self, name: str, port: int, address: str) -> Service:
        record = self.record(name)
        return replace(record, ports=(replace(record.ports[0], port=port, ip=address),))

    async def test_aServerThatMovesToAnotherPortIsFollowedWithoutAReload(
        self,
    ) -> None:
        url = f"http://{BIND_IP}:{self.servicePort}/"
        self.backend("a")
        self.state.merge(self.record("a"))
        await self.applied()
        self.assertEqual(await answer(url), b"a")
        reloads, changes = self.writer.reloads, self.writer.runtimeChanges
        elsewhere = serveNamed(self, "a-moved")
        self.state.merge(self.moved("a", elsewhere, "127.0.0.1"))
        await self.applied()
        self.assertEqual(await answer(url), b"a-moved")
        self.assertEqual(self.writer.reloads, reloads)
        self.assertEqual(self.writer.runtimeChanges, changes + 1)

    async def test_aServerThatMovesToAnotherAddressIsFollowedWithoutAReload(
        self,
    ) -> None:
        url = f"http://{BIND_IP}:{self.servicePort}/"
        # The same port on two loopback addresses: only the address moves.
        port = freePort("127.0.0.1", udp=False)
        for address, body in (("127.0.0.1", "a"), ("127.0.0.2", "a-moved")):
            listening = reactor.listenTCP(  # type: ignore[attr-defined]
                port, Site(Named(body)), interface=address
            )
            self.addCleanup(listening.stopListening)
        self.ports["a"] = port
        self.state.merge(self.moved("a", port, "127.0.0.1"))
        await self.applied()
        self.assertEqual(await answer(url), b"a")
        reloads = self.writer.reloads
        self.state.merge(self.moved("a", port, "127.0.0.2"))
        await self.applied()
        self.assertEqual(await answer(url), b"a-moved")
        self.assertEqual(self.writer.reloads, reloads)

    async def test_aRuntimeChangeHAProxyRefusesIsMadeByAReload(self) -> None:
        url = f"http://{BIND_IP}:{self.servicePort}/"
        self.backend("a")
        self.backend("b")
        self.state.merge(self.record("a"))
        await self.applied()
        reloads, changes = self.writer.reloads, self.writer.runtimeChanges
        # HAProxy refuses to add a server at runtime (as it does for a
        # backend whose balance algorithm cannot take one).
        runtime = self.writer._runtime
        expect = runtime.expect

        async def refusing(command: str, *accepted: str) -> str:
            if command.startswith("add server"):
                raise RuntimeCommandError(f"{command!r}: refused")
            return await expect(command, *accepted)

        self.patch(runtime, "expect", refusing)
        self.state.merge(self.record("a", Status.UNHEALTHY))
        self.state.merge(self.record("b"))
        await self.applied()
        self.assertEqual(self.writer.reloads, reloads + 1)
        self.assertEqual(self.writer.runtimeChanges, changes)
        self.assertIsNone(self.writer.lastError)
        self.assertEqual(await answer(url), b"b")
        self.assertEqual(self.follower.status()["ServersDraining"], [])


class HostileRecordsCase(HAProxyCase):
    """
    Records that once froze every later update (HAProxy refused the file,
    or every reload) are left out and shown, and the rest keeps flowing:
    a service that turns unhealthy is taken out of HAProxy.  The routed
    service runs on this host (host-a); the hostile records are host-b's.
    """

    admission = Admission(
        localHost="host-a",
        bindIP=BIND_IP,
        reservedPorts=frozenset({7946}),
        bindable=bindProbe(BIND_IP),
    )

    async def assertStillFollows(
        self, *hostile: Service, answers: frozenset[bytes] = frozenset({b"a"})
    ) -> list[str]:
        """
        With a and b of host-a routed, merge C{hostile}, then turn b
        unhealthy: HAProxy applies it, and only C{answers} answer.

        @return: what the follower refused.
        """
        for name in ("a", "b"):
            self.backend(name)
            self.state.merge(self.record(name, host="host-a"))
        await self.applied()
        for record in hostile:
            self.state.merge(record)
        await self.applied()
        self.state.merge(self.record("b", Status.UNHEALTHY, host="host-a"))
        await self.applied()
        self.assertIsNone(self.writer.lastError)
        url = f"http://{BIND_IP}:{self.servicePort}/"
        self.assertEqual({await answer(url) for _ in range(6)}, answers)
        status = self.follower.status()
        self.assertIsNone(status["LastError"])
        return status["Refused"]  # type: ignore[no-any-return]

    def hostile(self, serviceID: str, ip: str, **kw: Any) -> Service:
        return Service(
            id=serviceID,
            name=kw.pop("name", "web"),
            image="img",
            hostname=kw.pop("hostname", "host-b"),
            ports=(
                Port(
                    "tcp",
                    kw.pop("port", 8080),
                    kw.pop("servicePort", self.servicePort),
                    ip,
                ),
            ),
            created=kw.pop("created", SECOND),
            updated=round(reactor.seconds() * SECOND),  # type: ignore[attr-defined]
        )


class HostileRecordsTests(HostileRecordsCase):
    async def test_anAddressThatIsNotAnIP(self) -> None:
        refused = await self.assertStillFollows(
            self.hostile("x1", "no-such-host"), self.hostile("x2", "1.2.3.4.5")
        )
        self.assertEqual(
            refused,
            [
                "host-b/x1: not an IP address: 'no-such-host'",
                "host-b/x2: not an IP address: '1.2.3.4.5'",
            ],
        )

    async def test_aServicePortInUseOrOfOurOwn(self) -> None:
        held = freePort(BIND_IP, udp=False)
        holder = reactor.listenTCP(  # type: ignore[attr-defined]
            held, Factory.forProtocol(Protocol), interface=BIND_IP
        )
        self.addCleanup(holder.stopListening)
        refused = await self.assertStillFollows(
            self.hostile(
                "h1", "127.0.0.1", hostname="host-a", name="held", servicePort=held
            ),
            self.hostile(
                "g1", "127.0.0.1", hostname="host-a", name="gossip", servicePort=7946
            ),
        )
        self.assertEqual(
            refused,
            [
                "ServicePort 7946: gossip: ServicePort 7946 is one of this node's "
                "own ports",
                f"ServicePort {held}: held: ServicePort {held} cannot be bound: in use",
            ],
        )

    async def test_anotherHostsLoopbackTargetIsNotRouted(self) -> None:
        # host-b says its "admin" service is at 127.0.0.1: this node's own
        # loopback-only API, say.
        private = serveNamed(self, "private")
        exposed = freePort(BIND_IP, udp=False)
        refused = await self.assertStillFollows(
            self.hostile(
                "p1", "127.0.0.1", name="admin", port=private, servicePort=exposed
            )
        )
        self.assertEqual(
            refused, ["host-b/p1: address 127.0.0.1 of another host is this node's own"]
        )
        self.assertIsNone(await answer(f"http://{BIND_IP}:{exposed}/"))


class SharedMachineTests(HostileRecordsCase):
    """
    Hostile records of hosts that share this machine (loopback targets
    allowed), so that what is refused is refused for itself alone: two
    servers whose names collide once sanitised (HAProxy would refuse the
    file), a record of C{Created} 0 that would take the ServicePort.
    """

    admission = replace(HostileRecordsCase.admission, loopbackTargets=True)

    async def test_serverNamesThatCollideAfterSanitising(self) -> None:
        # host-a/b-x and host/a-b-x are both host-a-b-x; ours keeps it.
        self.backend("b-x")
        mine = self.record("b-x", host="host-a")
        theirs = self.hostile(
            "a-b-x", "127.0.0.1", hostname="host", port=self.backend("theirs")
        )
        refused = await self.assertStillFollows(
            mine, theirs, answers=frozenset({b"a", b"b-x"})
        )
        self.assertEqual(
            refused,
            [
                f"host/a-b-x: server name host-a-b-x is taken in "
                f"web-{self.servicePort} by host-a"
            ],
        )

    async def test_aRecordCreatedAtZeroDoesNotTakeTheServicePort(self) -> None:
        squatter = self.hostile("z1", "127.0.0.1", name="squatter", created=0)
        await self.assertStillFollows(squatter)
        self.assertEqual(
            self.follower.status()["Conflicts"],
            [
                f"ServicePort {self.servicePort}: squatter is refused, web "
                "(runs on this host) keeps it"
            ],
        )


class ReloadRollbackTests(HAProxyCase):
    """
    A file that passes C{haproxy -c} but that HAProxy cannot run (a port
    another program holds, when nothing checked it first) is rolled back.
    """

    async def test_aFileHAProxyCannotRunIsRolledBack(self) -> None:
        self.patch(haproxyModule, "RELOAD_TIMEOUT", 3.0)
        self.patch(followerModule, "RETRY_AFTER", 0.5)
        self.backend("a")
        self.state.merge(self.record("a"))
        await self.applied()
        configFile = self.directory / "haproxy.cfg"
        good = configFile.read_text()
        held = freePort(BIND_IP, udp=False)
        holder = reactor.listenTCP(  # type: ignore[attr-defined]
            held, Factory.forProtocol(Protocol), interface=BIND_IP
        )
        self.addCleanup(holder.stopListening)
        self.state.merge(
            replace(self.record("a", service="other", servicePort=held), id="o")
        )
        await pollUntil(
            lambda: defer.succeed(True if self.writer.lastError else None), timeout=15
        )
        self.assertIn("after a reload", self.writer.lastError or "")
        self.assertEqual(configFile.read_text(), good)
        url = f"http://{BIND_IP}:{self.servicePort}/"
        self.assertEqual(await answer(url), b"a")
        # Once the port is free, the frontend comes.
        await holder.stopListening()
        await self.applied()
        self.assertEqual(await answer(f"http://{BIND_IP}:{held}/"), b"a")


class NodeTests(TestCase):
    """
    A node built by L{makeService} with C{haproxy.enabled}: its static
    service is reachable at the well-known IP and its ServicePort.
    """

    skip = haproxySkipReason()

    async def test_aStaticServiceIsReachableAtTheWellKnownAddress(self) -> None:
        directory = temporaryDirectory(self)
        servicePort = freePort(BIND_IP, udp=False)
        target = staticTarget(serveNamed(self, "static-web"), servicePort)
        node = startNode(
            self,
            "host-a",
            "127.0.0.1",
            targets=[target],
            moreSettings=[
                "[health]",
                'interval = "100ms"',
                *haproxySettings(directory),
                "enabled = true",
            ],
        )
        assert node.proxy is not None
        await routing(node.proxy)
        response = await treq.get(
            f"http://{BIND_IP}:{servicePort}/", persistent=False, timeout=5
        )
        self.assertEqual(await response.content(), b"static-web")
        api = node.api.port.getHost()  # type: ignore[union-attr]
        response = await treq.get(
            f"http://{api.host}:{api.port}/api/haproxy.json", persistent=False
        )
        body = await response.json()
        self.assertTrue(body["Enabled"])
        self.assertEqual(
            [(f["Name"], f["ServicePort"]) for f in body["Frontends"]],
            [(f"web-{servicePort}", servicePort)],
        )
        self.assertIsNone(body["LastError"])
        metrics = await treq.get(
            f"http://{api.host}:{api.port}/metrics", persistent=False
        )
        text = await metrics.text()
        self.assertIn("sidecar_haproxy_reloads_total ", text)
        self.assertIn("sidecar_haproxy_refused 0.0", text)

    async def test_theFirstConfigurationHoldsWhatTheSeedsKnow(self) -> None:
        """
        A starting node leaves HAProxy alone until its first join has
        ended, so that the first file (which replaces the one a HAProxy
        left running serves) routes the cluster's services, not only the
        node's own (none here).
        """
        servicePort = freePort(BIND_IP, udp=False)
        seed = startNode(
            self,
            "host-a",
            "127.0.0.1",
            targets=[staticTarget(serveNamed(self, "far"), servicePort)],
        )
        await pollUntil(
            lambda: defer.succeed(
                True
                if [s.status for s in seed.state.services()] == [Status.ALIVE]
                else None
            ),
            timeout=15,
        )
        directory = temporaryDirectory(self)
        node = startNode(
            self,
            "host-b",
            "127.0.0.2",
            nodeSettings=[f'seeds = ["127.0.0.1:{gossipPort(seed)}"]'],
            targets=[],
            moreSettings=[
                *haproxySettings(directory),
                "enabled = true",
                "allow_loopback_targets = true",
            ],
        )
        assert node.proxy is not None
        writer = node.proxy.writer
        applied: list[list[str]] = []
        apply = writer.apply

        def recording(model: Any) -> Any:
            applied.append([s.hostname for f in model.frontends for s in f.servers])
            return apply(model)

        writer.apply = recording  # type: ignore[method-assign]
        await routing(node.proxy)
        self.assertEqual(applied[0], ["host-a"])
        self.assertEqual(
            await answer(f"http://{BIND_IP}:{servicePort}/"), b"far", applied
        )


def followedNode(case: TestCase) -> tuple[SidecarNode, int, str]:
    """
    A node on host-a whose one service answers C{followed} at a free
    ServicePort on the proxy IP, for a companion to follow: the node, the
    ServicePort and the node's API URL.
    """
    servicePort = freePort(BIND_IP, udp=False)
    target = staticTarget(serveNamed(case, "followed"), servicePort)
    node = startNode(
        case,
        "host-a",
        "127.0.0.1",
        targets=[target],
        moreSettings=["[health]", 'interval = "100ms"'],
    )
    api = node.api.port.getHost()  # type: ignore[union-attr]
    return node, servicePort, f"http://{api.host}:{api.port}"


class CompanionTests(TestCase):
    """
    C{sidecar-haproxy}: a HAProxy that follows a node's C{/api/watch} from
    outside, and keeps serving when the node goes away.
    """

    skip = haproxySkipReason()

    async def test_itRoutesTheNodesServicesAndOutlivesTheNode(self) -> None:
        directory = temporaryDirectory(self)
        node, servicePort, sidecarURL = followedNode(self)
        configPath = directory / "companion.toml"
        # It runs on host-a's machine: host-a's instances are its own.
        settings = ["[node]", 'name = "host-a"', *haproxySettings(directory)]
        configPath.write_text("\n".join(settings) + "\n")
        companion = makeCompanion(loadConfig(configPath, environ={}), sidecarURL)
        companion.startService()
        self.addCleanup(companion.stopService)
        await routing(companion.proxy)
        url = f"http://{BIND_IP}:{servicePort}/"
        response = await treq.get(url, persistent=False, timeout=5)
        self.assertEqual(await response.content(), b"followed")
        # The node goes away; HAProxy keeps serving what it had.
        await node.stopService()
        await pollUntil(
            lambda: defer.succeed(True if companion.watch.lastError else None),
            timeout=10,
        )
        response = await treq.get(url, persistent=False, timeout=5)
        self.assertEqual(await response.content(), b"followed")


class CompanionProcessTests(TestCase):
    """
    C{twistd -n sidecar-haproxy} as a user runs it: a real process that
    routes a node's services, stops cleanly on SIGTERM, and refuses a bad
    configuration in one line.
    """

    skip = haproxySkipReason()

    def companion(self, directory: Path, *argv: str) -> ChildProcess:
        child = ChildProcess()
        spawn(
            child,
            [sys.executable, *TWISTD, "-n", "--pidfile=", "sidecar-haproxy", *argv],
            str(directory),
        )

        async def stopped() -> None:
            child.signal("KILL")
            await child.ended

        self.addCleanup(lambda: defer.ensureDeferred(stopped()))
        return child

    async def test_itRoutesTheNodesServicesAndStopsOnSIGTERM(self) -> None:
        directory = temporaryDirectory(self)
        _, servicePort, sidecarURL = followedNode(self)
        configPath = directory / "companion.toml"
        settings = [
            "[node]",
            'name = "host-a"',
            "[log]",
            'format = "json"',
            *haproxySettings(directory),
        ]
        configPath.write_text("\n".join(settings) + "\n")
        child = self.companion(
            directory,
            f"--sidecar={sidecarURL}",
            f"--config={configPath}",
        )
        url = f"http://{BIND_IP}:{servicePort}/"

        async def routed() -> bool | None:
            if child.exited:
                self.fail(f"sidecar-haproxy ended: {child.describe()}")
            return True if await answer(url) == b"followed" else None

        await pollUntil(routed, timeout=30)
        # twistd ends by the signal it was sent, once it has stopped.
        self.assertEqual(await child.stop(), -signal.SIGTERM, child.describe())
        # Its log is as the configuration says: JSON, one event a line.
        events = [json.loads(line) for line in child.output.splitlines()]
        self.assertIn("Main loop terminated.", [e["message"] for e in events])
        # Its HAProxy went with it.
        self.assertIsNone(await answer(url))

    async def test_aBadConfigurationExitsWithOneLine(self) -> None:
        directory = temporaryDirectory(self)
        configPath = directory / "companion.toml"
        configPath.write_text('[haproxy]\nbind_ipp = "127.0.0.168"\n')
        child = self.companion(
            directory, "--sidecar=http://127.0.0.1:1", f"--config={configPath}"
        )
        code = await child.ended.addTimeout(30, reactor)
        self.assertNotEqual(code, 0)
        said = child.describe().strip()
        self.assertEqual(len(said.splitlines()), 1, said)
        self.assertIn("sidecar-haproxy: ", said)
        self.assertIn("haproxy.bind_ipp", said)


class CompanionOptionsTests(SynchronousTestCase):
    def test_theSidecarURLIsRequiredAndMustBeHTTP(self) -> None:
        for argv, problem in (
            ([], "--sidecar=URL is required"),
            (["--sidecar=127.0.0.1:7777"], "not an http(s) URL"),
        ):
            error = self.assertRaises(UsageError, Options().parseOptions, argv)
            self.assertIn(problem, str(error))
        options = Options()
        options.parseOptions(["--sidecar=http://127.0.0.1:7777"])
        self.assertEqual(options["sidecar"], "http://127.0.0.1:7777")


class UnmanagedTests(TestCase):
    """
    A HAProxy someone else runs, reloaded with C{haproxy.reload_command}.
    """

    skip = haproxySkipReason()

    async def test_theReloadCommandReloadsIt(self) -> None:
        directory = temporaryDirectory(self)
        backendPort = serveNamed(self, "elsewhere")
        config = directory / "haproxy.cfg"
        pidFile = directory / "haproxy.pid"
        settings = TemplateSettings(BIND_IP, str(directory / "admin.sock"), maxconn=256)
        template = ProxyTemplate.default()
        config.write_text(template.render(buildModel([]), settings))
        other = await startOwnHAProxy(self, config, pidFile)
        state = ServicesState("host-a", reactor)  # type: ignore[arg-type]
        self.addCleanup(state.stop)
        writer = HAProxyWriter(
            reactor,
            HAProxySettings(
                configFile=str(config),
                binary="haproxy",
                pidFile=str(pidFile),
                manageProcess=False,
                reloadCommand=f"kill -USR2 $(cat {pidFile})",
            ),
            template,
            settings,
        )
        follower = ProxyFollower(state, None, writer, reactor, 0.1)
        follower.startService()
        self.addCleanup(follower.stopService)
        servicePort = freePort(BIND_IP, udp=False)
        state.merge(
            Service(
                id="e1",
                name="web",
                image="img",
                hostname="host-b",
                ports=(Port("tcp", backendPort, servicePort, "127.0.0.1"),),
                updated=round(reactor.seconds() * SECOND),  # type: ignore[attr-defined]
            )
        )
        url = f"http://{BIND_IP}:{servicePort}/"
        self.assertEqual(await pollUntil(lambda: answer(url), timeout=15), b"elsewhere")
        # The new worker may answer before the writer has seen it on the
        # admin socket, which ends the reload.
        await pollUntil(
            lambda: defer.succeed(True if writer.reloads >= 1 else None), timeout=15
        )
        self.assertIsNone(writer.lastError)
        self.assertEqual(other.poll(), None)  # the same HAProxy, reloaded


class TakeoverTests(TestCase):
    """
    A HAProxy that an earlier node left running on the same files (that
    node was killed before it could stop it) holds the ports: the new
    node's HAProxy takes its listening sockets over.
    """

    skip = haproxySkipReason()

    async def test_theNewHAProxyTakesTheSocketsOverAndNoRequestFails(self) -> None:
        directory = temporaryDirectory(self)
        config, pidFile = directory / "haproxy.cfg", directory / "haproxy.pid"
        settings = TemplateSettings(BIND_IP, str(directory / "admin.sock"), maxconn=256)
        template = ProxyTemplate.default()
        servicePort = freePort(BIND_IP, udp=False)
        url = f"http://{BIND_IP}:{servicePort}/"

        def record(name: str) -> Service:
            port = Port("tcp", serveNamed(self, name), servicePort, "127.0.0.1")
            now = round(reactor.seconds() * SECOND)  # type: ignore[attr-defined]
            return Service(
                id=name,
                name="web",
                image="img",
                hostname="host-b",
                ports=(port,),
                updated=now,
            )

        config.write_text(template.render(buildModel([record("earlier")]), settings))
        earlier = await startOwnHAProxy(self, config, pidFile)
        self.assertEqual(await pollUntil(lambda: answer(url), timeout=15), b"earlier")

        answers: list[bytes | None] = []
        asking = True

        async def keepAsking() -> None:
            while asking:
                answers.append(await answer(url))

        asked = defer.ensureDeferred(keepAsking())
        state = ServicesState("host-a", reactor)  # type: ignore[arg-type]
        self.addCleanup(state.stop)
        state.merge(record("later"))
        writer = HAProxyWriter(
            reactor,
            HAProxySettings(
                configFile=str(config), binary="haproxy", pidFile=str(pidFile)
            ),
            template,
            settings,
        )
        follower = ProxyFollower(state, None, writer, reactor, 0.1)
        follower.startService()
        self.addCleanup(follower.stopService)

        # The earlier HAProxy finishes and exits; the new one answers.
        await pollUntil(
            lambda: defer.succeed(True if earlier.poll() is not None else None),
            timeout=15,
        )
        await pollUntil(
            lambda: defer.succeed(
                True if answers and answers[-1] == b"later" else None
            ),
            timeout=15,
        )
        asking = False
        await asked
        self.assertEqual([a for a in answers if a is None], [])
        self.assertIsNone(writer.lastError)
        self.assertNotEqual(int(pidFile.read_text().split()[0]), earlier.pid)
