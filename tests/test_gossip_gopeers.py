"""
Go Sidecar peers: how a member is recognised as one, and that a record too
large for Go to relay never reaches a Go member (by gossip or push-pull)
while our nodes still get it, and is reported with what to do.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.task import Clock
from twisted.logger import LogLevel, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from sidecar.catalog import Service, ServicesState
from sidecar.catalog.codec import encodeService
from sidecar.gossip.delegate import WithheldRecords
from sidecar.gossip.peers import (
    GO_RELAY_LIMIT,
    expectsRefreshes,
    isGoSidecar,
    nodeMeta,
)
from sidecar.problems import Problems

from .simnet import SimNetwork, SimNode

GO_META = b'{"ClusterName":"default","State":"Running"}'
GO_VSN = bytes([1, 5, 2, 0, 0, 0])


def record(image: str, serviceID: str = "big1") -> Service:
    return Service(
        id=serviceID,
        name="web",
        image=image,
        created=0,
        hostname="node-1",
        ports=(),
        updated=0,
    )


def imageFor(size: int) -> str:
    """
    An image name that makes L{record} exactly C{size} bytes as gossiped.
    """
    base = len(encodeService(record("")))
    return "x" * (size - base)


class RecognitionTests(SynchronousTestCase):
    def test_goSidecarClaimsNoDelegateVersionsAndNoDrainsMark(self) -> None:
        self.assertTrue(isGoSidecar(GO_VSN, GO_META))
        self.assertTrue(isGoSidecar(GO_VSN, b""))

    def test_oursAndSerfAreNot(self) -> None:
        self.assertFalse(isGoSidecar(GO_VSN, nodeMeta("default")))
        self.assertFalse(isGoSidecar(bytes([1, 5, 4, 2, 5, 4]), b""))
        self.assertFalse(isGoSidecar(b"", GO_META))

    def test_goSidecarsAndOurOlderNodesExpectRefreshesOursAndSerfNot(self) -> None:
        older = b'{"ClusterName":"default","State":"Running","Drains":"published"}'
        self.assertTrue(expectsRefreshes(GO_VSN, GO_META))
        self.assertTrue(expectsRefreshes(GO_VSN, older))
        self.assertFalse(expectsRefreshes(GO_VSN, nodeMeta("default")))
        self.assertFalse(expectsRefreshes(bytes([1, 5, 4, 2, 5, 4]), b""))

    def test_limitIsTheForksPacketLessItsFraming(self) -> None:
        # 1400-byte packets; 2 for the compound header, 2 per entry, 1 for
        # the user message type.
        self.assertEqual(GO_RELAY_LIMIT, 1395)


class WithheldRecordsTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def test_aRecordOverTheLimitIsReportedOnceWithAdvice(self) -> None:
        withheld = WithheldRecords()
        big = record(imageFor(GO_RELAY_LIMIT + 1))
        self.assertFalse(withheld.check(big, GO_RELAY_LIMIT + 1))
        self.assertFalse(withheld.check(big, GO_RELAY_LIMIT + 1))
        warnings = [e for e in self.events if e.get("log_level") == LogLevel.warn]
        self.assertEqual(len(warnings), 1)
        self.assertIn("shorten", warnings[0]["advice"])
        self.assertEqual(
            withheld.report(self.catalogHolding(big)),
            [{"Hostname": "node-1", "ID": "big1", "Name": "web", "Bytes": 1396}],
        )
        self.assertEqual(withheld.total, 1)

    def catalogHolding(self, *services: Service) -> ServicesState:
        clock = Clock()
        state = ServicesState("node-9", clock)
        self.addCleanup(state.stop)
        for service in services:
            state.merge(service)
        return state

    def test_aVersionThatFitsClearsTheReport(self) -> None:
        withheld = WithheldRecords()
        withheld.check(record("x"), GO_RELAY_LIMIT + 1)
        self.assertTrue(withheld.check(record("x"), GO_RELAY_LIMIT))
        self.assertEqual(withheld.report(self.catalogHolding(record("x"))), [])

    def test_aWithheldRecordIsANodeProblemUntilItFits(self) -> None:
        problems = Problems(Clock())
        withheld = WithheldRecords(problems)
        withheld.check(record("x"), GO_RELAY_LIMIT + 1)
        [problem] = problems.current()
        self.assertEqual((problem.kind, problem.subject), ("go-peers", "node-1/big1"))
        self.assertIn(f"over the {GO_RELAY_LIMIT} Go peers can relay", problem.message)
        withheld.check(record("x"), GO_RELAY_LIMIT)
        self.assertEqual(problems.current(), [])
        withheld.check(record("x"), GO_RELAY_LIMIT + 1)
        withheld.report(self.catalogHolding())  # the catalog dropped it
        self.assertEqual(problems.current(), [])

    def test_aRecordTheCatalogDroppedIsNoLongerReported(self) -> None:
        withheld = WithheldRecords()
        withheld.check(record("x"), GO_RELAY_LIMIT + 1)
        self.assertEqual(withheld.report(self.catalogHolding()), [])
        self.assertEqual(withheld.report(self.catalogHolding(record("x"))), [])


class GoPeersInTheClusterTests(SynchronousTestCase):
    """
    Two of ours and a node that marks itself as a Go Sidecar, on the
    simulated network.
    """

    def setUp(self) -> None:
        self.network = SimNetwork(seed=3)
        self.ours = self.network.build(2)
        [self.go] = self.network.build(1, goSidecar=True)
        nodes = [*self.ours, self.go]
        for node in nodes:
            node.start()
            self.addCleanup(node.stop)
        self.network.runUntil(
            lambda: all(len(n.cluster.members.alive()) == 3 for n in nodes), 30
        )

    def holds(self, node: SimNode, serviceID: str) -> bool:
        return node.state.get("node-1", serviceID) is not None

    def announce(self, serviceID: str, size: int) -> None:
        """
        Announce a record of node-1 that is C{size} bytes as gossiped, once
        the catalog has stamped it.
        """
        state = self.ours[0].state
        service = record("", serviceID)
        stamped = service.withStatus(service.status, state.now())
        image = "x" * (size - len(encodeService(stamped)))
        stored = state.announceLocal(record(image, serviceID))
        self.assertEqual(len(encodeService(stored)), size)

    def test_goPeersAreKnown(self) -> None:
        self.assertEqual([m.name for m in self.ours[0].cluster.goPeers()], ["node-3"])
        self.assertEqual(self.go.cluster.goPeers(), [])

    def test_whileAGoPeerIsAMemberOurNodesRefresh(self) -> None:
        """
        Ours expect no refreshes of each other; a Go peer does, so both of
        ours must refresh theirs while it is a member, and not once it is gone.
        """
        self.assertEqual(
            [m.name for m in self.ours[0].cluster.refreshedPeers()], ["node-3"]
        )
        self.assertEqual([m.name for m in self.go.cluster.refreshedPeers()], [])
        self.network.freeze(self.go)  # it dies
        self.network.runUntil(lambda: not self.ours[0].cluster.refreshedPeers(), 60)

    def test_aRecordGoCanRelayReachesEveryone(self) -> None:
        self.announce("fits", GO_RELAY_LIMIT)
        self.network.runUntil(
            lambda: self.holds(self.ours[1], "fits") and self.holds(self.go, "fits"),
            10,
        )

    def test_aRecordGoCannotRelayReachesOnlyOurs(self) -> None:
        self.announce("big", GO_RELAY_LIMIT + 1)
        self.network.runUntil(lambda: self.holds(self.ours[1], "big"), 10)
        # Gossip, large-message streams and push-pulls (both ways) for a
        # minute: never to the Go node.
        self.network.run(60, step=0.05)
        self.assertTrue(self.ours[0].cluster.pushPulls > 0)
        self.assertFalse(self.holds(self.go, "big"))
        state = json.loads(self.ours[1].delegate.localState(GO_RELAY_LIMIT))
        self.assertNotIn("big", state["Servers"]["node-1"]["Services"])
        self.assertIn(
            "big",
            json.loads(self.ours[1].delegate.localState())["Servers"]["node-1"][
                "Services"
            ],
        )
