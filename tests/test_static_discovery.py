"""
L{StaticDiscoverer}: reads the static file at start, follows its changes on
an injected clock, re-reads it on L{StaticDiscoverer.reload}, and keeps the
last good services when the file breaks.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

from twisted.internet.task import Clock
from twisted.logger import ILogObserver, LogEvent, LogLevel, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from sidecar.catalog.local import LocalService
from sidecar.discovery.static import StaticDiscoverer
from sidecar.interfaces import IDiscoverer, IDiscoveryListener
from sidecar.problems import STATIC_FILE, Problems

NODE = "node1"
ADVERTISE = "10.0.0.7"
START = 1_700_000_000
NS = 1_000_000_000


@implementer(IDiscoveryListener)
class Reports:
    """
    Remembers every report a discoverer makes.
    """

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[LocalService]]] = []

    def servicesDiscovered(self, source: str, services: Sequence[LocalService]) -> None:
        self.calls.append((source, list(services)))

    def serviceChanged(self, source: str, service: LocalService) -> None:
        raise AssertionError("static discovery reports whole sets")

    @property
    def last(self) -> list[LocalService]:
        return self.calls[-1][1]

    def names(self) -> list[str]:
        return [local.service.name for local in self.last]


@implementer(ILogObserver)
class LoggedErrors:
    """
    Collects the error events logged by sidecar's code.
    """

    def __init__(self) -> None:
        self.events: list[LogEvent] = []

    def __call__(self, event: LogEvent) -> None:
        namespace = event.get("log_namespace", "")
        if event.get("log_level") is LogLevel.error and namespace.startswith(
            "sidecar."
        ):
            self.events.append(event)


def targets(*names: str, port: int = 8080) -> list[dict[str, Any]]:
    return [
        {"Service": {"Name": name, "Ports": [{"Port": port + n}]}}
        for n, name in enumerate(names)
    ]


class StaticDiscovererTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(START)
        directory = self.mktemp()
        os.makedirs(directory)
        self.path = os.path.join(directory, "static.json")
        self.reports = Reports()
        self.problems = Problems(self.clock)
        self._mtime = START * NS
        observer = LoggedErrors()
        self.errors = observer.events
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)

    def write(self, content: Any) -> None:
        """
        Write the file (JSON for anything but bytes) and give it a modification
        time it never had before, so that its signature surely changes.
        """
        data = content if isinstance(content, bytes) else json.dumps(content).encode()
        with open(self.path, "wb") as f:
            f.write(data)
        self._mtime += 7 * NS
        os.utime(self.path, ns=(self._mtime, self._mtime))

    def start(self, pollInterval: float = 1.0) -> StaticDiscoverer:
        discoverer = StaticDiscoverer(
            self.path,
            NODE,
            ADVERTISE,
            self.reports,
            self.clock,
            pollInterval,
            problems=self.problems,
        )
        discoverer.startService()
        self.addCleanup(self.stop, discoverer)
        return discoverer

    def stop(self, discoverer: StaticDiscoverer) -> None:
        if discoverer.running:
            discoverer.stopService()

    # -- start --------------------------------------------------------------

    def test_providesIDiscoverer(self) -> None:
        self.write(targets("web"))
        self.assertTrue(verifyObject(IDiscoverer, self.start()))

    def test_nameIsStatic(self) -> None:
        self.write(targets("web"))
        self.assertEqual(self.start().name, "static")

    def test_reportsTheFileServicesAtStart(self) -> None:
        self.write(targets("web", "db"))
        discoverer = self.start()
        self.assertEqual(len(self.reports.calls), 1)
        source, services = self.reports.calls[0]
        self.assertEqual(source, "static")
        self.assertEqual([s.service.name for s in services], ["web", "db"])
        self.assertEqual(list(discoverer.services()), services)
        self.assertIsNone(discoverer.lastError)

    def test_servicesBelongToTheNodeAndGetTheAdvertiseIP(self) -> None:
        self.write(targets("web"))
        [local] = self.start().services()
        self.assertEqual(local.service.hostname, NODE)
        self.assertEqual(local.service.ports[0].ip, ADVERTISE)

    def test_servicesAreCreatedAtStartTime(self) -> None:
        self.write(targets("web"))
        [local] = self.start().services()
        self.assertEqual(local.service.created, START * NS)

    def test_missingFileAtStartGivesNoServicesAndCannotRead(self) -> None:
        discoverer = self.start()
        self.assertEqual(list(discoverer.services()), [])
        self.assertEqual(self.reports.calls, [])
        assert discoverer.lastError is not None
        self.assertIn(self.path, discoverer.lastError)
        self.assertIn("cannot read", discoverer.lastError)
        self.assertEqual(len(self.errors), 1)

    def test_fileAppearingAfterStartIsPickedUp(self) -> None:
        discoverer = self.start()
        self.write(targets("web"))
        self.clock.advance(1)
        self.assertEqual(self.reports.names(), ["web"])
        self.assertIsNone(discoverer.lastError)

    def test_brokenFileAtStartGivesNoServices(self) -> None:
        self.write(b"[{")
        discoverer = self.start()
        self.assertEqual(list(discoverer.services()), [])
        self.assertEqual(self.reports.calls, [])
        assert discoverer.lastError is not None
        self.assertIn("not JSON", discoverer.lastError)

    # -- following changes --------------------------------------------------

    def test_changeIsPickedUpAfterOnePollInterval(self) -> None:
        self.write(targets("web"))
        self.start()
        self.write(targets("web", "db"))
        self.clock.advance(0.5)
        self.assertEqual(len(self.reports.calls), 1)
        self.clock.advance(0.5)
        self.assertEqual(len(self.reports.calls), 2)
        self.assertEqual(self.reports.names(), ["web", "db"])

    def test_pollIntervalIsTheGivenOne(self) -> None:
        self.write(targets("web"))
        self.start(pollInterval=5)
        self.write(targets("db"))
        self.clock.advance(4)
        self.assertEqual(self.reports.names(), ["web"])
        self.clock.advance(1)
        self.assertEqual(self.reports.names(), ["db"])

    def test_unchangedFileIsNotReReported(self) -> None:
        self.write(targets("web"))
        self.start()
        self.clock.pump([1] * 30)
        self.assertEqual(len(self.reports.calls), 1)

    def test_fileReplacedByRenameIsPickedUp(self) -> None:
        self.write(targets("web"))
        self.start()
        staging = self.path + ".new"
        with open(staging, "w") as f:
            json.dump(targets("db"), f)
        os.replace(staging, self.path)
        self.clock.advance(1)
        self.assertEqual(self.reports.names(), ["db"])

    def test_removedEntryIsNoLongerReported(self) -> None:
        self.write(targets("web", "db"))
        discoverer = self.start()
        self.write(targets("web"))
        self.clock.advance(1)
        self.assertEqual(self.reports.names(), ["web"])
        self.assertEqual([s.service.name for s in discoverer.services()], ["web"])

    def test_emptiedFileReportsNoServices(self) -> None:
        self.write(targets("web"))
        self.start()
        self.write([])
        self.clock.advance(1)
        self.assertEqual(self.reports.last, [])

    # -- broken files -------------------------------------------------------

    def test_brokenFileKeepsTheLastGoodServices(self) -> None:
        self.write(targets("web"))
        discoverer = self.start()
        good = list(discoverer.services())
        self.write([{"Service": {"Name": "web", "Ports": [{"Port": "80"}]}}])
        self.clock.advance(1)
        self.assertEqual(list(discoverer.services()), good)
        self.assertEqual(len(self.reports.calls), 1)

    def test_brokenFileSetsLastErrorNamingTheProblem(self) -> None:
        self.write(targets("web"))
        discoverer = self.start()
        self.write([{"Service": {"Name": "web", "Ports": [{"Port": "80"}]}}])
        self.clock.advance(1)
        assert discoverer.lastError is not None
        self.assertIn(self.path, discoverer.lastError)
        self.assertIn("entry 0", discoverer.lastError)
        self.assertIn("Service.Ports[0].Port", discoverer.lastError)

    def test_aBrokenFileIsAProblemUntilItIsValidAgain(self) -> None:
        self.write(targets("web"))
        discoverer = self.start()
        self.assertEqual(self.problems.current(), [])
        self.write(b"not json")
        self.clock.advance(1)
        self.assertEqual(
            [(p.kind, p.subject, p.message) for p in self.problems.current()],
            [(STATIC_FILE, self.path, discoverer.lastError)],
        )
        self.write(targets("web"))
        self.clock.advance(1)
        self.assertEqual(self.problems.current(), [])

    def test_brokenFileIsLoggedOnceAsAnError(self) -> None:
        self.write(targets("web"))
        self.start()
        self.write(b"not json")
        self.clock.pump([1] * 10)
        self.assertEqual(len(self.errors), 1)
        [event] = self.errors
        self.assertIn(self.path, event["problem"])

    def test_anotherProblemIsLoggedAgain(self) -> None:
        self.write(targets("web"))
        self.start()
        self.write(b"not json")
        self.clock.advance(1)
        self.write([{"Service": {}}])
        self.clock.advance(1)
        self.assertEqual(len(self.errors), 2)

    def test_reloadOfTheSameBrokenFileIsNotLoggedAgain(self) -> None:
        self.write(b"not json")
        discoverer = self.start()
        self.assertFalse(discoverer.reload())
        self.assertEqual(len(self.errors), 1)

    def test_recoveryClearsLastErrorAndReports(self) -> None:
        self.write(targets("web"))
        discoverer = self.start()
        self.write(b"not json")
        self.clock.advance(1)
        self.write(targets("web", "db"))
        self.clock.advance(1)
        self.assertIsNone(discoverer.lastError)
        self.assertEqual(self.reports.names(), ["web", "db"])
        self.assertEqual(len(self.reports.calls), 2)

    def test_deletedFileKeepsTheLastGoodServices(self) -> None:
        self.write(targets("web"))
        discoverer = self.start()
        good = list(discoverer.services())
        os.remove(self.path)
        self.clock.advance(1)
        self.assertEqual(list(discoverer.services()), good)
        assert discoverer.lastError is not None
        self.assertIn("cannot read", discoverer.lastError)
        self.assertEqual(len(self.reports.calls), 1)

    def test_restoredFileIsPickedUpAfterDeletion(self) -> None:
        self.write(targets("web"))
        discoverer = self.start()
        os.remove(self.path)
        self.clock.advance(1)
        self.write(targets("db"))
        self.clock.advance(1)
        self.assertIsNone(discoverer.lastError)
        self.assertEqual(self.reports.names(), ["db"])

    def test_fileThatCrashesTheParserDoesNotStopPolling(self) -> None:
        # A file nested deeper than the interpreter's recursion limit makes
        # json raise RecursionError: it must count as a broken file, and
        # the file must still be followed.
        self.write(targets("web"))
        discoverer = self.start()
        self.write(b"[" * 100_000 + b"]" * 100_000)
        self.clock.advance(1)
        self.assertIsNotNone(discoverer.lastError)
        self.write(targets("db"))
        self.clock.advance(1)
        self.assertEqual(self.reports.names(), ["db"])

    # -- reload -------------------------------------------------------------

    def test_reloadReReadsImmediately(self) -> None:
        self.write(targets("web"))
        discoverer = self.start()
        self.write(targets("db"))
        self.assertTrue(discoverer.reload())
        self.assertEqual(self.reports.names(), ["db"])

    def test_reloadReReadsEvenWhenTheSignatureIsUnchanged(self) -> None:
        self.write(targets("web"))
        discoverer = self.start()
        stat = os.stat(self.path)
        with open(self.path, "w") as f:
            json.dump(targets("api"), f)  # the same size as before
        os.utime(self.path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        self.assertEqual(os.stat(self.path).st_size, stat.st_size)
        self.clock.advance(1)
        self.assertEqual(self.reports.names(), ["web"])
        discoverer.reload()
        self.assertEqual(self.reports.names(), ["api"])

    def test_reloadOfABrokenFileReturnsFalse(self) -> None:
        self.write(targets("web"))
        discoverer = self.start()
        self.write(b"[1]")
        self.assertFalse(discoverer.reload())
        self.assertEqual([s.service.name for s in discoverer.services()], ["web"])

    def test_pollAfterReloadDoesNotReReport(self) -> None:
        self.write(targets("web"))
        discoverer = self.start()
        self.write(targets("db"))
        discoverer.reload()
        self.clock.pump([1] * 5)
        self.assertEqual(len(self.reports.calls), 2)

    # -- Created ------------------------------------------------------------

    def test_createdIsKeptAcrossReReadsForTheSameID(self) -> None:
        self.write(targets("web"))
        discoverer = self.start()
        [web] = discoverer.services()
        self.clock.advance(60)
        self.write(
            [{"Service": {"Name": "web", "Image": "v2", "Ports": [{"Port": 8080}]}}]
            + targets("db", port=9000)
        )
        self.clock.advance(1)
        webAgain, db = self.reports.last
        self.assertEqual(webAgain.service.id, web.service.id)
        self.assertEqual(webAgain.service.image, "v2")
        self.assertEqual(webAgain.service.created, START * NS)
        self.assertEqual(db.service.created, (START + 61) * NS)

    def test_createdIsKeptAcrossABrokenFile(self) -> None:
        self.write(targets("web"))
        discoverer = self.start()
        self.write(b"oops")
        self.clock.advance(1)
        self.write(targets("web"))
        self.clock.advance(1)
        [web] = discoverer.services()
        self.assertEqual(web.service.created, START * NS)

    # -- stop ---------------------------------------------------------------

    def test_stopServiceLeavesNoDelayedCalls(self) -> None:
        self.write(targets("web"))
        discoverer = self.start()
        self.assertNotEqual(self.clock.getDelayedCalls(), [])
        discoverer.stopService()
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_stoppedDiscovererNoLongerFollowsTheFile(self) -> None:
        self.write(targets("web"))
        discoverer = self.start()
        discoverer.stopService()
        self.write(targets("db"))
        self.clock.advance(5)
        self.assertEqual(len(self.reports.calls), 1)

    def test_stopServiceAfterAMissingFileLeavesNoDelayedCalls(self) -> None:
        discoverer = self.start()
        discoverer.stopService()
        self.assertEqual(self.clock.getDelayedCalls(), [])
