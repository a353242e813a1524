"""
L{Reports}: what each discoverer last reported, combined by the Go
Sidecar's rule (the first source to report a service ID is the one used).
"""

from __future__ import annotations

from twisted.logger import capturedLogs, formatEvent
from twisted.trial.unittest import SynchronousTestCase

from sidecar.catalog import Service
from sidecar.catalog.local import LocalService
from sidecar.discovery.reports import Reports


def local(serviceID: str, image: str) -> LocalService:
    return LocalService(Service(serviceID, "web", image=image, hostname="me"))


class ReportsTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.reports = Reports()
        self.reports.replace("docker", [local("a1", "docker-a1")])
        self.reports.replace(
            "static", [local("a1", "static-a1"), local("s1", "static-s1")]
        )

    def test_theFirstSourceToReportAnIDSuppliesIt(self) -> None:
        self.assertEqual(self.reports.supplier("a1").service.image, "docker-a1")  # type: ignore[union-attr]
        # Reported by the second source only: that one.
        self.assertEqual(self.reports.supplier("s1").service.image, "static-s1")  # type: ignore[union-attr]
        self.assertIsNone(self.reports.supplier("nope"))
        self.assertEqual(
            {i: s.service.image for i, s in self.reports.wanted().items()},
            {"a1": "docker-a1", "s1": "static-s1"},
        )

    def test_everySourceThatReportsAnIDIsListedInOrder(self) -> None:
        self.assertEqual(
            [(source, s.service.image) for source, s in self.reports.reportsOf("a1")],
            [("docker", "docker-a1"), ("static", "static-a1")],
        )
        self.assertEqual(
            [source for source, _ in self.reports.reportsOf("s1")], ["static"]
        )
        self.assertEqual(list(self.reports.reportsOf("nope")), [])

    def test_aChangeCountsOnlyForAServiceTheSourceReported(self) -> None:
        self.assertTrue(self.reports.change("docker", local("a1", "docker-a1-v2")))
        self.assertEqual(self.reports.supplier("a1").service.image, "docker-a1-v2")  # type: ignore[union-attr]
        with capturedLogs() as events:
            self.assertFalse(self.reports.change("docker", local("s1", "docker-s1")))
            self.assertFalse(self.reports.change("files", local("f1", "f1")))
        self.assertEqual(
            [formatEvent(e) for e in events],
            [
                "docker changed service s1, which it never reported",
                "files changed service f1, which it never reported",
            ],
        )
        self.assertEqual(sorted(self.reports.wanted()), ["a1", "s1"])
