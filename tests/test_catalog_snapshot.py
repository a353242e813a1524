"""
The catalog's version counter (what readers cache by) and its immutable
snapshots (what another thread renders).
"""

from __future__ import annotations

from dataclasses import FrozenInstanceError

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from sidecar.catalog import ServicesState, Status, recordOrder
from sidecar.catalog.documents import (
    serviceDocument,
    servicesDocument,
    stateDocument,
)
from sidecar.catalog.order import groupByName

from .test_web_api import SECOND, record


class VersionTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1_700_000_000)
        self.state = ServicesState("node-a", self.clock)
        self.addCleanup(self.state.stop)

    def test_movesWithEveryWinningRecordAndOnlyThen(self) -> None:
        now = self.state.now()
        self.assertEqual(self.state.version, 0)
        self.state.merge(record("bbbbbbbbbbbb", "web", "node-b", now))
        self.assertEqual(self.state.version, 1)
        # A refresh changes the Updated stamp shown: a new version.
        self.state.merge(record("bbbbbbbbbbbb", "web", "node-b", now + 1))
        self.assertEqual(self.state.version, 2)
        # The same record again, or an older one: nothing shown changes.
        self.state.merge(record("bbbbbbbbbbbb", "web", "node-b", now + 1))
        self.state.merge(record("bbbbbbbbbbbb", "web", "node-b", now - SECOND))
        self.assertEqual(self.state.version, 2)

    def test_movesWhenARecordExpiresAndIsForgotten(self) -> None:
        self.state.merge(record("bbbbbbbbbbbb", "web", "node-b", self.state.now()))
        before = self.state.version
        self.clock.advance(81)  # expired: tombstoned
        self.assertEqual(
            self.state.get("node-b", "bbbbbbbbbbbb").status, Status.TOMBSTONE
        )  # type: ignore[union-attr]
        expired = self.state.version
        self.assertGreater(expired, before)
        self.clock.advance(3 * 3600 + 1)  # the tombstone is forgotten
        self.assertIsNone(self.state.get("node-b", "bbbbbbbbbbbb"))
        self.assertGreater(self.state.version, expired)

    def test_movesWhenDrainTrustChanges(self) -> None:
        self.state.trustDrains("node-b", True)
        self.assertEqual(self.state.version, 1)
        self.state.trustDrains("node-b", True)
        self.assertEqual(self.state.version, 1)
        self.state.trustDrains("node-b", False)
        self.assertEqual(self.state.version, 2)

    def test_modifiedIsTheLocalTimeOfTheLastMoveAndNeverGoesBack(self) -> None:
        now = self.state.now()
        # Made now: a new catalog is newer than anything a client saw.
        self.assertEqual(self.state.modified, now)
        self.clock.advance(5)
        now = self.state.now()
        self.state.merge(record("bbbbbbbbbbbb", "web", "node-b", now - 30 * SECOND))
        self.assertEqual(self.state.modified, now)
        self.assertEqual(self.state.lastChanged, now - 30 * SECOND)


class SnapshotTests(SynchronousTestCase):
    def test_aSnapshotRendersAsTheCatalogAndStaysPut(self) -> None:
        clock = Clock()
        clock.advance(1_700_000_000)
        state = ServicesState("node-a", clock, clusterName="c")
        self.addCleanup(state.stop)
        now = state.now()
        state.merge(record("bbbbbbbbbbbb", "web", "node-b", now))
        state.merge(record("aaaaaaaaaaaa", "web", "node-c", now))  # a tie
        state.merge(record("cccccccccccc", "db", "node-b", now - SECOND))
        snapshot = state.snapshot()
        self.assertEqual(snapshot.version, state.version)
        for render in (
            stateDocument,
            lambda catalog: servicesDocument(catalog, ["node-a", "node-b"]),
            lambda catalog: serviceDocument(catalog, "web"),
        ):
            self.assertEqual(render(snapshot), render(state))
        rendered = stateDocument(snapshot)
        state.merge(record("dddddddddddd", "web", "node-b", now + SECOND))
        self.assertEqual(stateDocument(snapshot), rendered)
        self.assertNotEqual(stateDocument(state), rendered)
        # A member with no record counts none.
        members = servicesDocument(snapshot, ["node-b", "node-z"])["ClusterMembers"]
        self.assertEqual(
            {name: m["ServiceCount"] for name, m in members.items()},  # type: ignore[index,union-attr]
            {"node-b": 2, "node-z": 0},
        )
        # Another thread may render it: nothing changes it in place.
        self.assertRaises(FrozenInstanceError, setattr, snapshot, "version", 0)
        [server, *_] = snapshot.servers()
        self.assertRaises(FrozenInstanceError, setattr, server, "lastChanged", 0)


class GroupingTests(SynchronousTestCase):
    def test_groupsAreInRecordOrderEvenWhenStampsTie(self) -> None:
        records = [
            record(f"{n:012x}", f"svc-{n % 3}", f"node-{n % 4}", SECOND * (n % 2))
            for n in range(40)
        ]
        records += [r.withStatus(Status.UNHEALTHY, r.updated) for r in records[:5]]
        groups = groupByName(reversed(records))
        self.assertEqual(list(groups), ["svc-0", "svc-1", "svc-2"])
        for name, group in groups.items():
            expected = sorted((r for r in records if r.name == name), key=recordOrder)
            self.assertEqual(group, expected)

    def test_twoRecordsThatTieAreInRecordOrder(self) -> None:
        # A tie of just two, the larger encoding given first.
        one = record("aaaaaaaaaaaa", "web", "node-b", SECOND)
        two = record("bbbbbbbbbbbb", "web", "node-b", SECOND)
        first, second = sorted([one, two], key=recordOrder)
        self.assertEqual(groupByName([second, first]), {"web": [first, second]})
