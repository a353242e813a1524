"""
Nodes built by L{makeService} in one reactor, gossiping over real UDP and
TCP on 127.0.1.x: they join through a seed, see each other's static
services, list each other in C{/api/members.json} (with their clocks'
skew), see a stopped node leave (and its services go), and shrug off
records forged from an address that is no member's.
"""

from __future__ import annotations

import socket
import time
from dataclasses import replace
from functools import partial
from typing import Any

import treq
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet import defer
from twisted.internet.error import CannotListenError
from twisted.internet.task import Clock
from twisted.logger import Logger, LogLevel, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase, TestCase

from sidecar.catalog import ServicesState, Status, encodeService
from sidecar.catalog.codec import dumps, serviceToJSON
from sidecar.catalog.timestamps import LATEST
from sidecar.gossip import service as gossipService
from sidecar.gossip.messages import NodeState
from sidecar.gossip.packets import encodeUserMessage
from sidecar.gossip.prober import memberAddress
from sidecar.gossip.service import GossipService, GossipSettings
from sidecar.problems import UNENCRYPTED_GOSSIP, Problems
from sidecar.service import SidecarNode

from .doubles import MemoryReactorWithUDP
from .inprocess import gossipPort, startNode
from .processes import freePort, pollUntil


class InProcessClusterTests(TestCase):
    def startNode(
        self, index: int, seed: int | None = None, *settings: str
    ) -> SidecarNode:
        lines = ['profile = "local"', *settings]
        if seed is not None:
            lines.append(f'seeds = ["127.0.1.1:{seed}"]')
        return startNode(
            self, f"host-{index}", f"127.0.1.{index}", lines, f"svc-{index}"
        )

    def gossipPort(self, node: SidecarNode) -> int:
        return gossipPort(node)

    async def startCluster(self, count: int) -> list[SidecarNode]:
        first = self.startNode(1)
        port = self.gossipPort(first)
        nodes = [first] + [self.startNode(i, seed=port) for i in range(2, count + 1)]
        names = {f"host-{i}" for i in range(1, count + 1)}

        def everyoneSeesEveryone() -> defer.Deferred[bool | None]:
            for node in nodes:
                if set(node.gossip.memberNames()) != names:
                    return defer.succeed(None)
                hosts = {s.hostname for s in node.state.services()}
                if hosts != names:
                    return defer.succeed(None)
            return defer.succeed(True)

        await pollUntil(everyoneSeesEveryone, timeout=10)
        return nodes

    async def test_nodesJoinAndShareTheirServices(self) -> None:
        nodes = await self.startCluster(3)
        for node in nodes:
            names = sorted(s.name for s in node.state.services())
            self.assertEqual(names, ["svc-1", "svc-2", "svc-3"])
        api = nodes[1].api.port.getHost()  # type: ignore[union-attr]
        response = await treq.get(
            f"http://{api.host}:{api.port}/api/members.json", persistent=False
        )
        body = await response.json()
        self.assertEqual(
            [(m["Name"], m["State"]) for m in body["Members"]],
            [("host-1", "alive"), ("host-2", "alive"), ("host-3", "alive")],
        )
        self.assertEqual(body["Members"][2]["Address"], "127.0.1.3")
        self.assertEqual(body["Members"][2]["Port"], self.gossipPort(nodes[2]))
        # Each other member's clock, from news it gossips of its own records
        # (none, perhaps, yet: what reached this node before its origin's
        # alive did, or by push-pull, tells no clock): all on ours.
        skews = {m["Name"]: m["ClockSkew"] for m in body["Members"]}
        self.assertIsNone(skews["host-2"])
        for name in ("host-1", "host-3"):
            self.assertLess(abs(skews[name] or 0.0), 1.0, skews)
        # News (a drain) from host-1 tells its clock, if nothing had.
        [service] = nodes[0].state.localServices()
        drained = nodes[0].api.port.getHost()  # type: ignore[union-attr]
        response = await treq.post(
            f"http://{drained.host}:{drained.port}/api/services/{service.id}/drain",
            persistent=False,
        )
        await response.content()

        async def hostOnesSkew() -> float | None:
            response = await treq.get(
                f"http://{api.host}:{api.port}/api/members.json", persistent=False
            )
            members = (await response.json())["Members"]
            return {m["Name"]: m["ClockSkew"] for m in members}["host-1"]

        self.assertLess(abs(await pollUntil(hostOnesSkew, timeout=10)), 1.0)

    async def test_forgedRecordsOverRealSocketsChangeNothing(self) -> None:
        """
        From 127.0.1.99, no member: a phantom instance of a service in year
        9999, a tombstone of a live one, an unwritable timestamp.  The
        catalog, the API and membership stay as they were; the refusals
        are counted in /metrics.
        """
        nodes = await self.startCluster(2)
        [victim] = nodes[1].state.localServices()
        ghost = replace(victim, id="ghost0000001", hostname="ghost", updated=LATEST)
        unwritable = serviceToJSON(replace(victim, updated=victim.updated + 1))
        unwritable["Created"] = "0001-01-01T00:00:00+01:00"
        payloads = [
            encodeService(ghost),
            encodeService(victim.tombstone(LATEST)),
            encodeService(victim.tombstone(victim.updated + 1)),
            dumps(unwritable),
        ]
        forger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(forger.close)
        forger.bind(("127.0.1.99", 0))
        target = ("127.0.1.1", self.gossipPort(nodes[0]))
        # A flood of phantoms besides: each refused, logged once a minute.
        logged: list[dict[str, object]] = []
        globalLogPublisher.addObserver(logged.append)
        self.addCleanup(globalLogPublisher.removeObserver, logged.append)
        flood = [encodeService(replace(ghost, id=f"ghost{n:07d}")) for n in range(300)]
        payloads += flood
        refused = nodes[0].gossip.admission.refused

        def counted(sent: int) -> defer.Deferred[bool | None]:
            return defer.succeed(True if refused.total() == sent else None)

        # In batches, so that the socket's buffer never overflows: every
        # packet is read and judged.
        for start in range(0, len(payloads), 20):
            for payload in payloads[start : start + 20]:
                forger.sendto(encodeUserMessage(payload), target)
            sent = min(start + 20, len(payloads))
            await pollUntil(partial(counted, sent), timeout=10)
        api = nodes[0].api.port.getHost()  # type: ignore[union-attr]
        base = f"http://{api.host}:{api.port}"
        response = await treq.get(f"{base}/metrics", persistent=False)
        refusals = {
            sample.labels["reason"]: sample.value
            for family in text_string_to_metric_families(await response.text())
            for sample in family.samples
            if sample.name == "sidecar_catalog_records_refused_total"
        }
        self.assertEqual(refusals, {"foreign sender": 303.0, "not a record": 1.0})
        refusalLines = [
            e for e in logged if "refused a catalog record" in str(e.get("log_format"))
        ]
        self.assertEqual(len(refusalLines), 2)
        self.assertFalse([e for e in logged if "log_failure" in e])
        self.assertEqual(
            {s.hostname for s in nodes[0].state.services()}, {"host-1", "host-2"}
        )
        held = nodes[0].state.get(victim.hostname, victim.id)
        assert held is not None
        self.assertNotEqual(held.status, Status.TOMBSTONE)
        self.assertLess(held.updated, LATEST)
        self.assertIsNone(nodes[0].state.get("ghost", ghost.id))
        self.assertEqual(nodes[0].gossip.memberNames(), ["host-1", "host-2"])
        for path in ("/api/state.json", "/api/services.json", "/api/members.json"):
            started = time.monotonic()
            response = await treq.get(base + path, persistent=False)
            self.assertEqual(response.code, 200, path)
            await response.content()
            # Generous for a loaded machine: a wedged node would not answer.
            self.assertLess(time.monotonic() - started, 2.0, path)

    async def test_aDrainAndUndrainReachTheOtherNode(self) -> None:
        nodes = await self.startCluster(2)
        owner, other = nodes
        [service] = owner.state.localServices()
        api = owner.api.port.getHost()  # type: ignore[union-attr]
        url = f"http://{api.host}:{api.port}/api/services/{service.id}/drain"

        async def otherSees(status: Status) -> None:
            def seen() -> defer.Deferred[bool | None]:
                record = other.state.get("host-1", service.id)
                ok = record is not None and record.status is status
                return defer.succeed(True if ok else None)

            await pollUntil(seen, timeout=10, every=0.02)

        await otherSees(Status.ALIVE)
        response = await treq.post(url, persistent=False)
        self.assertEqual(response.code, 202)
        await response.content()
        await otherSees(Status.DRAINING)
        response = await treq.delete(url, persistent=False)
        self.assertEqual(response.code, 200)
        await response.content()
        await otherSees(Status.ALIVE)

    async def test_aStoppedNodeLeavesAndItsServicesGo(self) -> None:
        nodes = await self.startCluster(3)
        leaver, others = nodes[2], nodes[:2]
        await leaver.stopService()

        def seenLeft() -> defer.Deferred[bool | None]:
            for node in others:
                assert node.gossip.cluster is not None
                member = node.gossip.cluster.members.get("host-3")
                if member is None or member.state is not NodeState.LEFT:
                    return defer.succeed(None)
            return defer.succeed(True)

        await pollUntil(seenLeft, timeout=5)
        for node in others:
            [record] = [s for s in node.state.services() if s.hostname == "host-3"]
            self.assertEqual(record.status, Status.TOMBSTONE)

    async def test_aRecordTooLargeForAPacketCrossesRealSockets(self) -> None:
        nodes = await self.startCluster(3)
        [service] = nodes[0].state.localServices()
        big = nodes[0].state.announceLocal(
            replace(service, id="big000000001", image="i" * 10_000)
        )

        def arrived() -> defer.Deferred[bool | None]:
            everywhere = all(
                node.state.get("host-1", big.id) == big for node in nodes[1:]
            )
            return defer.succeed(True if everywhere else None)

        await pollUntil(arrived, timeout=10)

    async def test_peersReachANodeAtItsAdvertisedAddress(self) -> None:
        port = freePort("127.0.1.7")
        first = self.startNode(1)
        second = startNode(
            self,
            "host-2",
            "127.0.1.2",
            [
                f'bind = "0.0.0.0:{port}"',
                f'advertise = "127.0.1.7:{port}"',
                f'seeds = ["127.0.1.1:{self.gossipPort(first)}"]',
            ],
        )
        assert second.gossip.joined is not None
        self.assertEqual(await second.gossip.joined, 1)
        assert first.gossip.cluster is not None
        member = first.gossip.cluster.members.get("host-2")
        assert member is not None
        self.assertEqual(memberAddress(member), ("127.0.1.7", port))
        [service] = second.state.localServices()
        self.assertEqual(service.ports[0].ip, "127.0.1.7")

    async def test_nodesOfDifferentClustersStayApart(self) -> None:
        first = self.startNode(1)
        stranger = self.startNode(
            2, self.gossipPort(first), 'cluster_name = "elsewhere"'
        )
        assert stranger.gossip.joined is not None
        self.assertEqual(await stranger.gossip.joined, 0)
        self.assertEqual(first.gossip.memberNames(), ["host-1"])
        self.assertEqual(stranger.gossip.memberNames(), ["host-2"])


class ExposureTests(SynchronousTestCase):
    """
    A node that gossips beyond its host without a key says so.
    """

    def service(self, bind: str, keys: tuple[bytes, ...] = ()) -> GossipService:
        settings = GossipSettings(
            name="a", clusterName="c", bind=(bind, 7946), keys=keys
        )
        return GossipService(None, settings, ServicesState("a", Clock()))

    def test_unencryptedGossipBeyondLoopbackIsWarnedOf(self) -> None:
        for bind in ("0.0.0.0", "::", "", "127.0.0.168x", "10.1.2.3"):
            [warning] = self.service(bind).warnings
            self.assertIn("is not encrypted", warning)
            self.assertIn("node.encrypt_key", warning)

    def test_loopbackOrAKeyNeedsNoWarning(self) -> None:
        for bind in ("127.0.1.1", "::1", "localhost"):
            self.assertEqual(self.service(bind).warnings, [])
        self.assertEqual(self.service("0.0.0.0", (bytes(16),)).warnings, [])

    def test_theWarningIsLoggedOnceAtStart(self) -> None:
        # A memory reactor: nothing is bound to 0.0.0.0 for real.
        events: list[dict[str, Any]] = []
        service = GossipService(
            MemoryReactorWithUDP(),
            GossipSettings(name="a", clusterName="c", bind=("0.0.0.0", 7946)),
            ServicesState("a", Clock()),
        )
        service.log = Logger(observer=events.append)
        service.startService()
        self.addCleanup(service.stopService)
        warnings = [e for e in events if e["log_level"] is LogLevel.warn]
        self.assertEqual([e["problem"] for e in warnings], service.warnings)
        self.assertEqual(len(warnings), 1)

    def test_theWarningIsAProblemWhileTheGossipRuns(self) -> None:
        reactor = MemoryReactorWithUDP()
        problems = Problems(reactor)
        service = GossipService(
            reactor,
            GossipSettings(name="a", clusterName="c", bind=("0.0.0.0", 7946)),
            ServicesState("a", Clock()),
            problems=problems,
        )
        service.startService()
        self.assertEqual(
            [(p.kind, p.subject, p.message) for p in problems.current()],
            [(UNENCRYPTED_GOSSIP, "0.0.0.0:7946", service.warnings[0])],
        )
        service.stopService()
        self.assertEqual(problems.current(), [])


class _UDPTaken:
    """
    The real reactor, but another program binds the UDP port a node is
    about to bind, the first C{times} times (as can happen between the
    node's TCP bind, on a port the system chose, and its UDP bind of the
    same port).
    """

    def __init__(self, times: int) -> None:
        from twisted.internet import reactor

        self._reactor = reactor
        self.times = times
        self.tcp: list[Any] = []
        self.udpAttempts = 0
        self.held: list[socket.socket] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._reactor, name)

    def listenTCP(self, port: int, factory: Any, interface: str = "") -> Any:
        listening = self._reactor.listenTCP(port, factory, interface=interface)
        self.tcp.append(listening)
        return listening

    def listenUDP(self, port: int, protocol: Any, interface: str = "") -> Any:
        self.udpAttempts += 1
        if self.times:
            self.times -= 1
            other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            other.bind((interface, port))
            self.held.append(other)
        return self._reactor.listenUDP(port, protocol, interface=interface)

    def release(self) -> None:
        for other in self.held:
            other.close()


class BindTests(TestCase):
    """
    Gossip binds TCP and UDP on one port; when the system chose the port
    and the UDP half is taken, it tries another, a bounded number of
    times; a port the user chose is not changed.
    """

    def service(self, reactor: _UDPTaken, port: int) -> GossipService:
        self.addCleanup(reactor.release)
        service = GossipService(
            reactor,
            GossipSettings(name="a", clusterName="c", bind=("127.0.0.1", port)),
            ServicesState("a", Clock()),
        )
        self.addCleanup(service.stopService)
        return service

    def test_aChosenPortWhoseUDPIsTakenIsChosenAgain(self) -> None:
        reactor = _UDPTaken(times=2)
        service = self.service(reactor, 0)
        service.privilegedStartService()
        self.assertEqual(reactor.udpAttempts, 3)
        first, second, third = reactor.tcp
        self.assertIs(service.tcpPort, third)
        self.assertEqual(
            service.udpPort.getHost().port,  # type: ignore[union-attr]
            third.getHost().port,
        )
        # The TCP ports of the failed attempts are let go.
        self.assertTrue(first.disconnecting and second.disconnecting)
        self.assertFalse(third.disconnecting)

    def test_aChosenPortIsChosenAgainOnlySoManyTimes(self) -> None:
        reactor = _UDPTaken(times=gossipService._BIND_ATTEMPTS)
        service = self.service(reactor, 0)
        self.assertRaises(CannotListenError, service.privilegedStartService)
        self.assertEqual(reactor.udpAttempts, gossipService._BIND_ATTEMPTS)
        self.assertTrue(all(tcp.disconnecting for tcp in reactor.tcp))
        self.assertIsNone(service.tcpPort)

    def test_aPortTheUserChoseIsNotChangedWhenItsUDPIsTaken(self) -> None:
        reactor = _UDPTaken(times=1)
        port = freePort("127.0.0.1")
        service = self.service(reactor, port)
        error = self.assertRaises(CannotListenError, service.privilegedStartService)
        self.assertEqual(error.port, port)
        self.assertEqual(reactor.udpAttempts, 1)
        [tcp] = reactor.tcp
        self.assertTrue(tcp.disconnecting)

    def test_bindingTwiceBindsOnce(self) -> None:
        reactor = _UDPTaken(times=0)
        service = self.service(reactor, 0)
        service.privilegedStartService()
        service.startService()
        self.assertEqual((len(reactor.tcp), reactor.udpAttempts), (1, 1))


class NotStartedTests(SynchronousTestCase):
    """
    A gossip service not started (or stopped) answers for itself alone.
    """

    def setUp(self) -> None:
        self.service = GossipService(
            MemoryReactorWithUDP(),
            GossipSettings(name="a", clusterName="c", bind=("127.0.0.1", 7946)),
            ServicesState("a", Clock()),
        )

    def test_beforeStart(self) -> None:
        self.assertIsNone(self.service.packetCounters)
        self.assertIsNone(self.service.streamsDropped)
        self.assertEqual(self.service.memberNames(), ["a"])
        self.assertEqual(self.service.members(), [])
        self.assertIsNone(self.service.cluster)
        self.successResultOf(self.service.stopService())

    def test_afterStop(self) -> None:
        self.service.startService()
        self.assertIsNotNone(self.service.packetCounters)
        self.assertEqual(self.service.streamsDropped, 0)
        self.assertEqual([m["Name"] for m in self.service.members()], ["a"])
        self.successResultOf(self.service.stopService())
        self.assertIsNone(self.service.streamsDropped)
        self.assertEqual(self.service.memberNames(), ["a"])
        self.assertEqual(self.service.members(), [])
        self.assertIsNone(self.service.cluster)
        self.assertIsNone(self.service.tcpPort)
