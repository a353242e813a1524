"""
Our node and the real Go Sidecar in one cluster, in a private network: they
join in either order, share services, health changes and drains both ways,
and stay calm: no failed probe and no suspicion on our side, no refuted
suspicion on Go's.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import treq
from twisted.internet import reactor, task
from twisted.trial.unittest import TestCase

from sidecar import cli
from sidecar.catalog import Status
from sidecar.service import SidecarNode
from sidecar.web import watchclient
from sidecar.web.watchclient import WatchClient

from .gosidecar import (
    GO_GOSSIP_PORT,
    GO_HOST,
    REFUTED,
    GoNode,
    goSkipReason,
    privateNetwork,
    startGoNode,
)
from .inprocess import gossipPort, startNode
from .processes import pollUntil

OURS = "127.0.1.1"
# How long a mixed cluster must stay calm in these tests.
CALM_SECONDS = 20.0


def apiURL(node: SidecarNode) -> str:
    address = node.api.port.getHost()  # type: ignore[union-attr]
    return f"http://{address.host}:{address.port}/api"


class MixedCluster:
    """
    One Go node and one of ours, joined in the order a test chooses, each
    with one service whose health check is whether a file exists.
    """

    def __init__(self, case: TestCase) -> None:
        self.case = case
        directory = Path(case.mktemp()).resolve()
        directory.mkdir()
        self.goHealthy = directory / "go-healthy"
        self.oursHealthy = directory / "ours-healthy"
        self.goHealthy.touch()
        self.oursHealthy.touch()
        self.go: GoNode
        self.ours: SidecarNode

    def _startOurs(self, seeds: list[str]) -> None:
        check = {"Type": "External", "Args": f"test -e {self.oursHealthy}"}
        service = {"Name": "svc-ours", "Ports": [{"Port": 9001, "IP": OURS}]}
        listed = ", ".join(f'"{seed}"' for seed in seeds)
        self.ours = startNode(
            self.case,
            "ours-1",
            OURS,
            nodeSettings=[f"seeds = [{listed}]"],
            targets=[{"Service": service, "Check": check}],
        )

    async def _startGo(self, seeds: list[str]) -> None:
        check = {"Type": "External", "Args": f"test -e {self.goHealthy}"}
        service = {"Name": "svc-go", "Ports": [{"Port": 9002, "IP": GO_HOST}]}
        self.go = await startGoNode(
            self.case, seeds, services=[{"Service": service, "Check": check}]
        )

    async def goJoinsOurs(self) -> None:
        self._startOurs([])
        await self._startGo([f"{OURS}:{gossipPort(self.ours)}"])

    async def oursJoinsGo(self) -> None:
        goSeed = f"{GO_HOST}:{GO_GOSSIP_PORT}"
        await self._startGo([goSeed])
        self._startOurs([goSeed])

    def ourRecord(self, name: str) -> Any:
        records = [s for s in self.ours.state.services() if s.name == name]
        return records[0] if len(records) == 1 else None

    async def goRecord(self, name: str) -> dict[str, Any] | None:
        records = [r for r in (await self.go.services()).values() if r["Name"] == name]
        return records[0] if len(records) == 1 else None

    async def waitForStatus(self, name: str, status: Status) -> None:
        """
        Until both nodes hold service C{name} with C{status}.
        """

        async def both() -> bool | None:
            ours = self.ourRecord(name)
            go = await self.goRecord(name)
            if ours is None or go is None:
                return None
            return True if ours.status == status == go["Status"] else None

        await pollUntil(both, timeout=40, every=0.25)

    async def waitForMembers(self) -> None:
        async def joined() -> bool | None:
            names = {m["Name"]: m["State"] for m in self.ours.gossip.members()}
            goSees = await self.go.get("/state.json")
            return (
                True
                if names.get("go-1") == "alive" and "ours-1" in goSees["Servers"]
                else None
            )

        await pollUntil(joined, timeout=30, every=0.25)

    async def drainOurs(self) -> None:
        record = self.ourRecord("svc-ours")
        url = f"{apiURL(self.ours)}/services/{record.id}/drain"
        response = await treq.post(url, persistent=False, timeout=5)
        await response.content()
        self.case.assertEqual(response.code, 202, url)


class GoInteropTests(TestCase):
    skip = goSkipReason()
    timeout = 240

    def setUp(self) -> None:
        self.network = privateNetwork(self)

    async def everythingWorksBothWays(self, cluster: MixedCluster) -> None:
        await cluster.waitForMembers()
        await cluster.waitForStatus("svc-go", Status.ALIVE)
        await cluster.waitForStatus("svc-ours", Status.ALIVE)
        # Health changes, both ways.
        cluster.goHealthy.unlink()
        cluster.oursHealthy.unlink()
        await cluster.waitForStatus("svc-go", Status.UNHEALTHY)
        await cluster.waitForStatus("svc-ours", Status.UNHEALTHY)
        cluster.goHealthy.touch()
        cluster.oursHealthy.touch()
        await cluster.waitForStatus("svc-go", Status.ALIVE)
        await cluster.waitForStatus("svc-ours", Status.ALIVE)
        # Drains, both ways.
        [goID] = [
            i for i, r in (await cluster.go.services()).items() if r["Name"] == "svc-go"
        ]
        await cluster.go.drain(goID)
        await cluster.drainOurs()
        await cluster.waitForStatus("svc-go", Status.DRAINING)
        await cluster.waitForStatus("svc-ours", Status.DRAINING)
        await self.assertCalm(cluster)

    async def assertCalm(self, cluster: MixedCluster) -> None:
        """
        For L{CALM_SECONDS}: our node's probes of the Go node all succeed
        and it suspects no one; the Go node refutes no suspicion; every
        record stays as it is.
        """
        assert cluster.ours.gossip.cluster is not None
        prober = cluster.ours.gossip.cluster.prober
        members = cluster.ours.gossip.cluster.members
        probes, failures = prober.probes, prober.failures
        suspicions = members.suspicions
        await task.deferLater(reactor, CALM_SECONDS)  # type: ignore[arg-type]
        self.assertGreater(prober.probes - probes, CALM_SECONDS / 2)
        self.assertEqual(prober.failures - failures, 0, "our probes failed")
        self.assertEqual(members.suspicions - suspicions, 0, "we suspected")
        self.assertEqual(cluster.go.logCount(REFUTED), 0, cluster.go.describe())
        states = {m["Name"]: m["State"] for m in cluster.ours.gossip.members()}
        self.assertEqual(states, {"go-1": "alive", "ours-1": "alive"})
        self.assertEqual(cluster.ourRecord("svc-go").status, Status.DRAINING)
        self.assertEqual(
            (await cluster.goRecord("svc-ours"))["Status"],  # type: ignore[index]
            Status.DRAINING,
        )

    async def test_goJoinsOurs(self) -> None:
        cluster = MixedCluster(self)
        await cluster.goJoinsOurs()
        await self.everythingWorksBothWays(cluster)

    async def test_oursJoinsGo(self) -> None:
        cluster = MixedCluster(self)
        await cluster.oursJoinsGo()
        await self.everythingWorksBothWays(cluster)

    async def test_aRecordGoCannotRelayIsKeptFromGoAndReported(self) -> None:
        cluster = MixedCluster(self)
        await cluster.oursJoinsGo()
        await cluster.waitForMembers()
        await cluster.waitForStatus("svc-ours", Status.ALIVE)
        big = {
            "Name": "svc-big",
            "Image": "registry.example/" + "x" * 1500,
            "Ports": [{"Port": 9003, "IP": OURS}],
        }
        startNode(
            self,
            "ours-2",
            "127.0.1.2",
            nodeSettings=[f'seeds = ["{GO_HOST}:{GO_GOSSIP_PORT}"]'],
            targets=[{"Service": big, "Check": {"Type": "AlwaysSuccessful"}}],
        )

        async def reported() -> dict[str, Any] | None:
            response = await treq.get(
                f"{apiURL(cluster.ours)}/health", persistent=False, timeout=5
            )
            health = await response.json()
            withheld = health["GoPeers"]["Withheld"]
            return health if [r["Name"] for r in withheld] == ["svc-big"] else None

        # Our other node gets it, and says it keeps it from the Go node.
        await pollUntil(lambda: _async(cluster.ourRecord("svc-big")), timeout=30)
        health = await pollUntil(reported, timeout=30)
        self.assertEqual(health["GoPeers"]["Members"], ["go-1"])
        self.assertIn("shorten", health["GoPeers"]["Advice"])
        response = await treq.get(
            apiURL(cluster.ours).replace("/api", "/metrics"), persistent=False
        )
        self.assertIn(b"sidecar_gossip_withheld_from_go 1.0", await response.content())
        # A push-pull (Go's every 20 s) and gossip later, Go has not got it
        # and its gossip is not jammed.
        await task.deferLater(reactor, 25)  # type: ignore[arg-type]
        self.assertIsNone(await cluster.goRecord("svc-big"))
        self.assertEqual(cluster.go.logCount("too long to fit"), 0)
        self.assertIsNotNone(await cluster.goRecord("svc-ours"))

    async def test_theWatchClientAndTheCLIAgainstAGoNode(self) -> None:
        # A silence limit of 1 s would drop Go's quiet stream every second
        # if it applied to a stream without heartbeats.
        self.patch(watchclient, "SILENCE", 1.0)
        cluster = MixedCluster(self)
        await cluster.oursJoinsGo()
        await cluster.waitForMembers()
        await cluster.waitForStatus("svc-go", Status.ALIVE)
        await cluster.waitForStatus("svc-ours", Status.ALIVE)
        received: list[tuple[float, Any]] = []
        client = WatchClient(
            reactor,
            f"{cluster.go.api}/watch?by_service=false",
            lambda document: received.append((reactor.seconds(), document)),  # type: ignore[attr-defined]
        )
        client.startService()
        self.addCleanup(client.stopService)
        await pollUntil(lambda: _async(True if received else None), timeout=10)
        await task.deferLater(reactor, 5)  # type: ignore[arg-type]
        self.assertEqual(len(received), 1, "the quiet stream was followed again")
        self.assertTrue(client.connected)
        self.assertIsNone(client.lastError)
        [goID] = [
            i for i, r in (await cluster.go.services()).items() if r["Name"] == "svc-go"
        ]
        drained = reactor.seconds()  # type: ignore[attr-defined]
        await cluster.go.drain(goID)

        def statusOf(document: Any) -> int:
            return int(document["Servers"]["go-1"]["Services"][goID]["Status"])

        arrived = await pollUntil(
            lambda: _async(
                next((t for t, d in received if statusOf(d) == Status.DRAINING), None)
            ),
            timeout=5,
            every=0.02,
        )
        self.assertLess(arrived - drained, 1.0)

        # The CLI: what Go has works, what it lacks is said in one line.
        api = cluster.go.api.removesuffix("/api")
        out = io.StringIO()
        await cli.run(parseCLI("--api", api, "services"), out)
        self.assertIn("svc-ours", out.getvalue())
        for command in (("members",), ("undrain", goID)):
            with self.assertRaises(cli.CommandFailed) as caught:
                await cli.run(parseCLI("--api", api, *command), io.StringIO())
            self.assertIn(cli.NO_SUCH_ENDPOINT, str(caught.exception))

    async def test_aGoHostIsReplacedByOneOfOurs(self) -> None:
        """
        The migration of one host, as docs/migrating.md tells it: the Go
        node stops, ours starts in its place with the same name, address
        and services, and every node (the remaining Go one too) takes it.
        """
        seedNode = startNode(self, "ours-1", OURS)
        seed = f"{OURS}:{gossipPort(seedNode)}"
        go1 = await startGoNode(
            self, [seed], hostname="go-1", services=[goTarget("svc-one", GO_HOST)]
        )
        host2 = await self.network.addHost()
        go2 = await startGoNode(
            self,
            [seed],
            hostname="go-2",
            services=[goTarget("svc-two", host2.address)],
            host=host2,
        )

        async def everyone(serviceID: str, status: Status) -> None:
            """
            Until our seed and the other Go node hold record C{serviceID}
            of go-1 with C{status}, and go-1 is an alive member.
            """

            async def seen() -> bool | None:
                ours = seedNode.state.get("go-1", serviceID)
                theirs = (await go2.services()).get(serviceID)
                members = {m["Name"]: m["State"] for m in seedNode.gossip.members()}
                ok = (
                    members.get("go-1") == "alive"
                    and (Status.TOMBSTONE if ours is None else ours.status) == status
                    and (Status.TOMBSTONE if theirs is None else theirs["Status"])
                    == status
                )
                return True if ok else None

            await pollUntil(seen, timeout=120, every=0.5)

        await pollUntil(
            lambda: _async(
                next(
                    (s.id for s in seedNode.state.services() if s.name == "svc-one"),
                    None,
                )
            ),
            timeout=30,
        )
        [old] = [s for s in seedNode.state.services() if s.name == "svc-one"]
        await everyone(old.id, Status.ALIVE)
        # Step 1: stop the Go Sidecar (it does not leave; it fails).
        go1.signal("TERM")
        await go1.ended
        # Step 2: our node, named after the host, on the same address, with
        # the same static file.
        replacement = startNode(
            self,
            "go-1",
            GO_HOST,
            nodeSettings=[
                f'bind = "{GO_HOST}:{GO_GOSSIP_PORT}"',
                f'seeds = ["{seed}"]',
            ],
            targets=[goTarget("svc-one", GO_HOST)],
        )
        await pollUntil(
            lambda: _async([s.id for s in replacement.state.localServices()] or None),
            timeout=10,
        )
        [new] = replacement.state.localServices()
        self.assertNotEqual(new.id, old.id)
        await everyone(new.id, Status.ALIVE)
        # The Go node's own record (a random static ID) is tombstoned
        # everywhere once its lifespan (80 s) has run out; ours serves on.
        await everyone(old.id, Status.TOMBSTONE)
        await everyone(new.id, Status.ALIVE)


def goTarget(name: str, host: str) -> dict[str, Any]:
    """
    A static target for either kind of node: always healthy, one TCP port.
    """
    return {
        "Service": {"Name": name, "Ports": [{"Type": "tcp", "Port": 9005, "IP": host}]},
        "Check": {"Type": "AlwaysSuccessful"},
    }


def parseCLI(*argv: str) -> cli.Options:
    options = cli.Options()
    options.parseOptions(list(argv))
    return options


async def _async(value: object) -> object:
    return value
