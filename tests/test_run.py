"""
The test runner's banner of skipped tests (L{tests.run}).
"""

from __future__ import annotations

from io import StringIO

from twisted.trial import unittest
from twisted.trial.reporter import TreeReporter

from tests.run import loudSkips, skipBanner


def _sample() -> type[unittest.SynchronousTestCase]:
    # Made in a function, so that trial's discovery does not run it.
    class Sample(unittest.SynchronousTestCase):
        def test_runs(self) -> None:
            pass

        def test_needsHaproxy(self) -> None:
            raise unittest.SkipTest("haproxy is not installed")

        def test_needsSerf(self) -> None:
            raise unittest.SkipTest("serf is not installed")

        def test_alsoNeedsHaproxy(self) -> None:
            raise unittest.SkipTest("haproxy is not installed")

    return Sample


def _run(*names: str) -> str:
    stream = StringIO()
    result = loudSkips(TreeReporter)(stream)
    sample = _sample()
    suite = unittest.TestSuite([sample(name) for name in names])
    suite.run(result)
    result.done()
    return stream.getvalue()


class SkipBannerTests(unittest.SynchronousTestCase):
    def test_skipsAreCountedAfterTheSummary(self) -> None:
        output = _run(
            "test_runs", "test_needsHaproxy", "test_needsSerf", "test_alsoNeedsHaproxy"
        )
        summary = output.index("PASSED (")
        banner = output.index("3 test(s) SKIPPED")
        self.assertGreater(banner, summary)
        tail = output[banner:]
        self.assertIn("   2 x haproxy is not installed", tail)
        self.assertIn("   1 x serf is not installed", tail)
        self.assertLess(tail.index("haproxy"), tail.index("serf"))

    def test_noSkipsNoBanner(self) -> None:
        output = _run("test_runs")
        self.assertIn("PASSED (successes=1)", output)
        self.assertNotIn("SKIPPED", output)

    def test_bannerOfNothingIsEmpty(self) -> None:
        self.assertEqual(skipBanner([]), [])
