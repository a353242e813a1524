"""
Nodes built by L{makeService} in one reactor, gossiping over real UDP and
TCP on 127.0.1.x: they join through a seed, see each other's static
services, list each other in C{/api/members.json}, and see a stopped node
leave (and its services go).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import treq
from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.logger import Logger, LogLevel
from twisted.trial.unittest import SynchronousTestCase, TestCase

from sidecar.catalog import ServicesState, Status
from sidecar.gossip.messages import NodeState
from sidecar.gossip.prober import memberAddress
from sidecar.gossip.service import GossipService, GossipSettings
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
