"""
bench/hostile.py at a tiny size: two seconds without the hostile sender and
two with it.  Only that every figure comes out is asserted; the figures
themselves are for docs/performance.md.
"""

from __future__ import annotations

from twisted.trial.unittest import TestCase

from .benchruns import benchmarkLines, figures

FIGURES = (
    "API p99",
    "target RSS growth",
    "peers' failed probes",
    "false suspicions",
    "refused: packets, streams, members",
)


class HostileBenchTests(TestCase):
    timeout = 180

    async def test_everyFigureComesOut(self) -> None:
        rows = figures(await benchmarkLines(self, "hostile.py", "--seconds", "2"))
        for figure in FIGURES:
            self.assertIn(figure, rows)
            # Both runs: "<without> / <with>", each with a number.
            without, with_ = rows[figure].split(" / ")
            self.assertRegex(without, r"\d")
            self.assertRegex(with_, r"\d")
