"""
L{Problems}: raised and cleared by kind and subject, dated by the clock.
"""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from sidecar.problems import Problem, Problems

SECOND = 1_000_000_000


class ProblemsTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(100)
        self.problems = Problems(self.clock)

    def test_aProblemRaisedAgainKeepsWhenItWasFirstSeen(self) -> None:
        self.problems.raise_("docker", "engine", "refused")
        self.clock.advance(5)
        self.problems.raise_("docker", "engine", "timed out")
        self.assertEqual(
            self.problems.current(),
            [Problem("docker", "engine", "timed out", 100 * SECOND)],
        )

    def test_aClearedProblemIsGoneAndComesBackWithANewSince(self) -> None:
        self.problems.raise_("docker", "engine", "refused")
        self.problems.clear("docker", "engine")
        self.problems.clear("docker", "never raised")
        self.assertEqual(self.problems.current(), [])
        self.clock.advance(1)
        self.problems.raise_("docker", "engine", "refused")
        self.assertEqual(self.problems.current()[0].since, 101 * SECOND)

    def test_sortedByKindThenSubjectAndCountedByKind(self) -> None:
        self.problems.raise_("refused", "b", "x")
        self.problems.raise_("haproxy", "z", "x")
        self.problems.raise_("refused", "a", "x")
        self.assertEqual(
            [(p.kind, p.subject) for p in self.problems.current()],
            [("haproxy", "z"), ("refused", "a"), ("refused", "b")],
        )
        self.assertEqual(dict(self.problems.counts()), {"haproxy": 1, "refused": 2})

    def test_replaceKindClearsWhatItNoLongerListsAndLeavesOtherKinds(self) -> None:
        self.problems.raise_("refused", "a", "x")
        self.problems.raise_("refused", "b", "x")
        self.problems.raise_("conflict", "a", "x")
        self.clock.advance(3)
        self.problems.replaceKind("refused", {"b": "y", "c": "z"})
        self.assertEqual(
            self.problems.current(),
            [
                Problem("conflict", "a", "x", 100 * SECOND),
                Problem("refused", "b", "y", 100 * SECOND),
                Problem("refused", "c", "z", 103 * SECOND),
            ],
        )

    def test_asJSONWithAnRFC3339Since(self) -> None:
        self.problems.raise_("haproxy", "/etc/haproxy.cfg", "disk full")
        self.assertEqual(
            self.problems.current()[0].toJSON(),
            {
                "Kind": "haproxy",
                "Subject": "/etc/haproxy.cfg",
                "Message": "disk full",
                "Since": "1970-01-01T00:01:40Z",
            },
        )
