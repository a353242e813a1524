"""
L{LocalAnnouncer}: the union of what the discoverers report becomes this
node's own records in a real L{ServicesState}.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace

from twisted.internet.task import Clock
from twisted.logger import capturedLogs, formatEvent
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from sidecar.announce import QUIET_REFRESH_INTERVAL, REFRESH_INTERVAL, LocalAnnouncer
from sidecar.catalog import (
    Port,
    Service,
    ServicesState,
    Status,
)
from sidecar.catalog.local import LocalService
from sidecar.discovery.static import StaticDiscoverer
from sidecar.interfaces import IDiscoveryListener

from .doubles import RecordingObserver

NODE = "node1"
START = 1_700_000_000
NS = 1_000_000_000


def local(
    serviceID: str, name: str = "web", port: int = 8080, image: str = ""
) -> LocalService:
    return LocalService(
        Service(
            id=serviceID,
            name=name,
            image=image,
            hostname=NODE,
            ports=(Port("tcp", port, 0, "10.0.0.7"),),
            proxyMode="http",
        )
    )


class LocalAnnouncerTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(START)
        self.state = ServicesState(NODE, self.clock)
        self.addCleanup(self.state.stop)
        self.changes = RecordingObserver()
        self.state.addObserver(self.changes)
        self.announcer = LocalAnnouncer(self.state, self.clock)

    def now(self) -> int:
        return round(self.clock.seconds() * NS)

    def record(self, serviceID: str) -> Service:
        found = self.state.get(NODE, serviceID)
        assert found is not None, serviceID
        return found

    def localIDs(self) -> list[str]:
        return [s.id for s in self.state.localServices()]

    def test_providesIDiscoveryListener(self) -> None:
        self.assertTrue(verifyObject(IDiscoveryListener, self.announcer))

    # -- announcing and withdrawing -----------------------------------------

    def test_reportedServicesAreAnnouncedAliveAndStampedNow(self) -> None:
        self.announcer.servicesDiscovered("static", [local("a" * 12), local("b" * 12)])
        self.assertEqual(self.localIDs(), ["a" * 12, "b" * 12])
        for record in self.state.localServices():
            self.assertEqual(record.status, Status.ALIVE)
            self.assertEqual(record.updated, START * NS)
            self.assertEqual(record.hostname, NODE)

    def test_announcedRecordIsTheReportedService(self) -> None:
        reported = local("a" * 12, image="img:1")
        self.announcer.servicesDiscovered("static", [reported])
        self.assertTrue(self.record("a" * 12).sameContentAs(reported.service))

    def test_announcementIsAChangeEventForObservers(self) -> None:
        self.announcer.servicesDiscovered("static", [local("a" * 12)])
        [event] = self.changes.events
        self.assertEqual(event.service.id, "a" * 12)
        self.assertEqual(event.service.status, Status.ALIVE)
        self.assertEqual(event.previousStatus, Status.UNKNOWN)

    def test_serviceDroppedFromAReportIsTombstoned(self) -> None:
        self.announcer.servicesDiscovered("static", [local("a" * 12), local("b" * 12)])
        self.clock.advance(3)
        self.announcer.servicesDiscovered("static", [local("b" * 12)])
        self.assertEqual(self.localIDs(), ["b" * 12])
        tombstone = self.record("a" * 12)
        self.assertEqual(tombstone.status, Status.TOMBSTONE)
        self.assertEqual(tombstone.updated, self.now())
        self.assertEqual(self.record("b" * 12).status, Status.ALIVE)
        self.assertEqual(self.changes.events[-1].service, tombstone)
        self.assertEqual(self.changes.events[-1].previousStatus, Status.ALIVE)

    def test_emptyReportTombstonesEverything(self) -> None:
        self.announcer.servicesDiscovered("static", [local("a" * 12), local("b" * 12)])
        self.announcer.servicesDiscovered("static", [])
        self.assertEqual(self.state.localServices(), [])
        self.assertTrue(self.record("a" * 12).isTombstone)
        self.assertTrue(self.record("b" * 12).isTombstone)

    def test_withdrawnServiceReportedAgainIsAnnouncedAgain(self) -> None:
        self.announcer.servicesDiscovered("static", [local("a" * 12)])
        self.announcer.servicesDiscovered("static", [])
        self.clock.advance(2)
        self.announcer.servicesDiscovered("static", [local("a" * 12)])
        record = self.record("a" * 12)
        self.assertEqual(record.status, Status.ALIVE)
        self.assertEqual(record.updated, self.now())
        self.assertEqual(self.localIDs(), ["a" * 12])

    def test_reReportOfTheSameServicesDoesNotReAnnounce(self) -> None:
        services = [local("a" * 12), local("b" * 12)]
        self.announcer.servicesDiscovered("static", services)
        before = list(self.state.localServices())
        events = len(self.changes.events)
        self.clock.advance(5)
        self.announcer.servicesDiscovered("static", list(services))
        self.assertEqual(len(self.changes.events), events)
        self.assertEqual(self.state.localServices(), before)

    def test_changedPortIsReAnnounced(self) -> None:
        self.announcer.servicesDiscovered("static", [local("a" * 12, port=8080)])
        self.clock.advance(5)
        self.announcer.servicesDiscovered("static", [local("a" * 12, port=8081)])
        record = self.record("a" * 12)
        self.assertEqual(record.ports[0].port, 8081)
        self.assertEqual(record.updated, self.now())
        self.assertEqual(len(self.changes.events), 2)
        self.assertEqual(self.changes.events[-1].service, record)

    def test_changedImageIsReAnnounced(self) -> None:
        self.announcer.servicesDiscovered("static", [local("a" * 12, image="v1")])
        self.clock.advance(5)
        self.announcer.servicesDiscovered("static", [local("a" * 12, image="v2")])
        self.assertEqual(self.record("a" * 12).image, "v2")
        self.assertEqual(len(self.changes.events), 2)

    def test_wantedIsTheUnionOfTheReports(self) -> None:
        self.announcer.servicesDiscovered("static", [local("a" * 12)])
        self.announcer.servicesDiscovered("docker", [local("b" * 12)])
        self.assertEqual(sorted(self.announcer.wanted()), ["a" * 12, "b" * 12])

    # -- refresh ------------------------------------------------------------

    def test_refreshIntervalIs25Seconds(self) -> None:
        self.assertEqual(REFRESH_INTERVAL, 25.0)

    def test_periodicRefreshRestampsUpdatedWithoutEvents(self) -> None:
        self.announcer.startService()
        self.addCleanup(self.announcer.stopService)
        self.announcer.servicesDiscovered("static", [local("a" * 12), local("b" * 12)])
        events = len(self.changes.events)
        self.clock.advance(24)
        self.assertEqual(self.record("a" * 12).updated, START * NS)
        self.clock.advance(1)
        for serviceID in ("a" * 12, "b" * 12):
            record = self.record(serviceID)
            self.assertEqual(record.updated, (START + 25) * NS)
            self.assertEqual(record.status, Status.ALIVE)
        self.clock.advance(25)
        self.assertEqual(self.record("a" * 12).updated, (START + 50) * NS)
        self.assertEqual(len(self.changes.events), events)

    def test_withoutPeersThatExpireRecordsTheRefreshIsHourly(self) -> None:
        expected = [False]
        announcer = LocalAnnouncer(self.state, self.clock, expected=lambda: expected[0])
        announcer.startService()
        self.addCleanup(announcer.stopService)
        announcer.servicesDiscovered("static", [local("a" * 12)])
        self.clock.advance(QUIET_REFRESH_INTERVAL - 1)
        self.assertEqual(self.record("a" * 12).updated, START * NS)
        self.clock.advance(1)  # the first tick an hour on
        self.assertEqual(
            self.record("a" * 12).updated, round((START + QUIET_REFRESH_INTERVAL) * NS)
        )
        # A peer that expires records joins: every 25 s again.
        expected[0] = True
        self.clock.advance(REFRESH_INTERVAL)
        self.assertEqual(
            self.record("a" * 12).updated,
            round((START + QUIET_REFRESH_INTERVAL + REFRESH_INTERVAL) * NS),
        )

    def test_refreshDoesNotReviveWithdrawnServices(self) -> None:
        self.announcer.startService()
        self.addCleanup(self.announcer.stopService)
        self.announcer.servicesDiscovered("static", [local("a" * 12)])
        self.announcer.servicesDiscovered("static", [])
        self.clock.advance(REFRESH_INTERVAL)
        self.assertTrue(self.record("a" * 12).isTombstone)
        self.assertEqual(self.state.localServices(), [])

    def test_stopServiceStopsTheRefresh(self) -> None:
        self.announcer.startService()
        self.announcer.servicesDiscovered("static", [local("a" * 12)])
        self.announcer.stopService()
        self.clock.advance(REFRESH_INTERVAL * 3)
        self.assertEqual(self.record("a" * 12).updated, START * NS)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    # -- several sources ----------------------------------------------------

    def test_firstSourceKeepsAServiceIDBothReport(self) -> None:
        self.announcer.servicesDiscovered("static", [local("a" * 12, port=8080)])
        self.clock.advance(1)
        self.announcer.servicesDiscovered("docker", [local("a" * 12, port=9090)])
        record = self.record("a" * 12)
        self.assertEqual(record.ports[0].port, 8080)
        self.assertEqual(record.updated, START * NS)
        self.assertEqual(len(self.changes.events), 1)
        self.assertEqual(self.announcer.wanted()["a" * 12].service.ports[0].port, 8080)

    def test_firstSourceKeepsItWhenItReportsAgain(self) -> None:
        self.announcer.servicesDiscovered("static", [local("a" * 12, port=8080)])
        self.announcer.servicesDiscovered("docker", [local("a" * 12, port=9090)])
        self.announcer.servicesDiscovered("static", [local("a" * 12, port=8080)])
        self.assertEqual(self.record("a" * 12).ports[0].port, 8080)

    def test_otherSourceTakesOverWhenTheFirstDropsIt(self) -> None:
        self.announcer.servicesDiscovered("static", [local("a" * 12, port=8080)])
        self.announcer.servicesDiscovered("docker", [local("a" * 12, port=9090)])
        self.clock.advance(1)
        self.announcer.servicesDiscovered("static", [])
        record = self.record("a" * 12)
        self.assertEqual(record.status, Status.ALIVE)
        self.assertEqual(record.ports[0].port, 9090)
        self.assertEqual(self.localIDs(), ["a" * 12])

    def test_servicesOfOneSourceSurviveAnEmptyReportFromAnother(self) -> None:
        self.announcer.servicesDiscovered("static", [local("a" * 12)])
        self.announcer.servicesDiscovered("docker", [local("b" * 12)])
        self.announcer.servicesDiscovered("docker", [])
        self.assertEqual(self.localIDs(), ["a" * 12])
        self.assertEqual(self.record("a" * 12).status, Status.ALIVE)
        self.assertTrue(self.record("b" * 12).isTombstone)

    def test_oneChangedServiceIsAnnouncedAlone(self) -> None:
        self.announcer.servicesDiscovered("static", [local("a" * 12), local("b" * 12)])
        self.clock.advance(1)
        changed = local("b" * 12)
        changed = replace(
            changed, service=changed.service.withStatus(Status.UNHEALTHY, 0)
        )
        self.announcer.serviceChanged("static", changed)
        self.assertEqual(self.record("b" * 12).status, Status.UNHEALTHY)
        self.assertEqual(self.record("b" * 12).updated, (START + 1) * NS)
        self.assertEqual(self.record("a" * 12).updated, START * NS)
        self.assertEqual(len(self.changes.events), 3)
        # The change stays: a refresh announces what was last reported.
        self.clock.advance(REFRESH_INTERVAL)
        self.assertEqual(self.record("b" * 12).status, Status.UNHEALTHY)

    def test_aChangeFromTheSecondSourceOfAnIDIsKeptButNotAnnounced(self) -> None:
        self.announcer.servicesDiscovered("static", [local("a" * 12, port=8080)])
        self.announcer.servicesDiscovered("docker", [local("a" * 12, port=9090)])
        self.announcer.serviceChanged("docker", local("a" * 12, port=9191))
        self.assertEqual(self.record("a" * 12).ports[0].port, 8080)
        self.announcer.servicesDiscovered("static", [])
        self.assertEqual(self.record("a" * 12).ports[0].port, 9191)

    def test_aChangeToAServiceNeverReportedIsLoggedAndIgnored(self) -> None:
        self.announcer.servicesDiscovered("static", [local("a" * 12)])
        with capturedLogs() as events:
            self.announcer.serviceChanged("static", local("b" * 12))
            self.announcer.serviceChanged("docker", local("a" * 12))
        self.assertEqual(self.localIDs(), ["a" * 12])
        self.assertEqual(
            [formatEvent(e) for e in events],
            [
                f"static changed service {'b' * 12}, which it never reported",
                f"docker changed service {'a' * 12}, which it never reported",
            ],
        )

    def test_aDrainedServiceIsPublishedDrainingUntilUndrained(self) -> None:
        self.announcer.servicesDiscovered("static", [local("a" * 12)])
        self.clock.advance(1)
        drained = self.announcer.drain("a" * 12)
        self.assertEqual(drained.status, Status.DRAINING)
        self.assertEqual(self.record("a" * 12).status, Status.DRAINING)
        # Neither a refresh nor a health change undoes it.
        self.announcer.startService()
        self.addCleanup(self.announcer.stopService)
        self.clock.advance(REFRESH_INTERVAL)
        self.assertEqual(self.record("a" * 12).status, Status.DRAINING)
        sick = local("a" * 12)
        sick = replace(sick, service=sick.service.withStatus(Status.UNHEALTHY, 0))
        self.announcer.serviceChanged("static", sick)
        self.assertEqual(self.record("a" * 12).status, Status.DRAINING)
        # Undrained, it is what its checks say.
        self.clock.advance(1)
        self.assertEqual(self.announcer.undrain("a" * 12).status, Status.UNHEALTHY)
        self.assertEqual(self.record("a" * 12).status, Status.UNHEALTHY)

    def test_onlyLocalServicesCanBeDrained(self) -> None:
        self.assertRaises(KeyError, self.announcer.drain, "b" * 12)
        self.assertRaises(KeyError, self.announcer.undrain, "b" * 12)

    def test_firstEmptyReportOfASourceWithdrawsNothing(self) -> None:
        self.announcer.servicesDiscovered("static", [local("a" * 12)])
        self.announcer.servicesDiscovered("docker", [])
        self.assertEqual(self.localIDs(), ["a" * 12])
        self.assertEqual(len(self.changes.events), 1)


class StaticFileToCatalogTests(SynchronousTestCase):
    """
    A static file followed by a L{StaticDiscoverer} that reports to a
    L{LocalAnnouncer}: the file's changes reach the catalog.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(START)
        self.state = ServicesState(NODE, self.clock)
        self.addCleanup(self.state.stop)
        self.announcer = LocalAnnouncer(self.state, self.clock)
        directory = self.mktemp()
        os.makedirs(directory)
        self.path = os.path.join(directory, "static.json")
        self.mtime = START * NS
        self.write(8080)
        self.discoverer = StaticDiscoverer(
            self.path, NODE, "10.0.0.7", self.announcer, self.clock
        )
        self.announcer.startService()
        self.discoverer.startService()
        self.addCleanup(self.announcer.stopService)
        self.addCleanup(self.discoverer.stopService)

    def write(self, port: int) -> None:
        with open(self.path, "w") as f:
            json.dump([{"Service": {"Name": "web", "Ports": [{"Port": port}]}}], f)
        self.mtime += 3 * NS
        os.utime(self.path, ns=(self.mtime, self.mtime))

    def test_fileServicesAreAnnouncedAtStart(self) -> None:
        [record] = self.state.localServices()
        self.assertEqual(record.name, "web")
        self.assertEqual(record.status, Status.ALIVE)
        self.assertEqual(record.created, START * NS)
        self.assertEqual(record.updated, START * NS)

    def test_changedPortReplacesTheInstance(self) -> None:
        [old] = self.state.localServices()
        self.write(8081)
        self.clock.advance(1)
        [new] = self.state.localServices()
        self.assertNotEqual(new.id, old.id)
        self.assertEqual(new.ports[0].port, 8081)
        gone = self.state.get(NODE, old.id)
        assert gone is not None
        self.assertEqual(gone.status, Status.TOMBSTONE)

    def test_brokenFileKeepsTheServicesAnnounced(self) -> None:
        [record] = self.state.localServices()
        with open(self.path, "w") as f:
            f.write("[")
        os.utime(self.path, ns=(self.mtime + NS, self.mtime + NS))
        self.clock.advance(REFRESH_INTERVAL)
        [after] = self.state.localServices()
        self.assertEqual(after.id, record.id)
        self.assertEqual(after.status, Status.ALIVE)
        self.assertEqual(after.updated, (START + int(REFRESH_INTERVAL)) * NS)
