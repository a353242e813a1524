"""
bench/soak.py at a tiny size: two nodes, a few seconds of churn, a report
every two seconds.  Only that every figure comes out is asserted; the
figures themselves are for docs/performance.md.
"""

from __future__ import annotations

import re

from twisted.trial.unittest import TestCase

from .benchruns import benchmarkLines, figures

FIGURES = (
    "changes",
    "RSS growth per node",
    "largest RSS growth",
    "RSS at the end",
    "suspicions",
    "failures",
    "tracebacks",
    "members alive at the end",
)
REPORT = re.compile(r"^minute +[\d.]+  RSS MiB +[\d.]+ +[\d.]+  fds +\d+ +\d+$")


class SoakBenchTests(TestCase):
    timeout = 180

    async def test_everyFigureComesOut(self) -> None:
        lines = await benchmarkLines(
            self,
            "soak.py",
            *("--minutes", "0.1", "--nodes", "2"),
            *("--interval", "0.5", "--report-every", "2"),
        )
        reports = [line for line in lines if line.startswith("minute")]
        # At the start, every two seconds, and at the end.
        self.assertGreaterEqual(len(reports), 3, lines)
        for line in reports:
            self.assertRegex(line, REPORT)
        rows = figures(line for line in lines if not line.startswith("minute"))
        self.assertEqual(sorted(rows), sorted(FIGURES))
        for figure in FIGURES:
            self.assertRegex(rows[figure], r"\d")
        self.assertRegex(rows["RSS growth per node"], r"^[+-]\d+\.\d [+-]\d+\.\d MiB")
        self.assertGreater(int(rows["changes"]), 0)
