"""
C{bench/simulate.py} at a tiny size: five nodes, a few virtual seconds per
step.  Only that every figure comes out is asserted; the figures
themselves are for docs/performance.md.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType

from twisted.trial.unittest import SynchronousTestCase

from .processes import REPO

LABELS = (
    "change to 99 % (median / max)",
    "change to 99.9 % (median / max)",
    "bytes/node/s idle",
    "records held after idle (worst node)",
    "bytes/node/s churn (5 changes/s)",
    "failure detected: first / 99.9 % / all",
    "false suspicions (refutations)",
    "false failures (verdicts)",
)


def benchModule() -> ModuleType:
    bench = str(REPO / "bench")
    if bench not in sys.path:
        sys.path.insert(0, bench)
    return importlib.import_module("simulate")


class SimulateBenchTests(SynchronousTestCase):
    def test_everyFigureComesOut(self) -> None:
        simulate = benchModule()
        arguments = simulate.parseArguments(
            ["5", "--idle", "3", "--churn", "3", "--changes", "2", "--settle", "2"]
        )
        run = simulate.simulate(5, arguments)
        self.assertEqual(run.nodes, 5)
        self.assertGreater(run.formed, 0)
        self.assertEqual([f.loss for f in run.figures], [0.0, 0.1])
        for f in run.figures:
            self.assertEqual(len(f.reach99), 2)
            for reached in f.reach99 + f.reach999:
                self.assertIsNotNone(reached)
                self.assertGreater(reached, 0)
            # Probes at least, by UDP; push-pulls, by TCP.
            self.assertGreater(f.idleBytes.udp, 0)
            self.assertGreater(f.churnBytes.udp, f.idleBytes.udp)
            self.assertGreaterEqual(f.idleBytes.tcp, 0)
            self.assertGreater(f.held, 0)
            self.assertLessEqual(f.held, 1)
            for detected in (f.detectFirst, f.detect999, f.detectAll):
                self.assertIsNotNone(detected)
                self.assertGreater(detected, 0)
            self.assertGreaterEqual(f.falseSuspicions, 0)
            self.assertGreaterEqual(f.falseFailures, 0)
        lines = simulate.rows(run, arguments)
        for label in LABELS:
            values = [v for k, v in lines if k.strip() == label]
            self.assertEqual(len(values), 2, label)
            for value in values:
                self.assertRegex(value, r"\d")

    def test_sameSeedSameFigures(self) -> None:
        """
        A run is reproducible: the same seed gives the same figures.
        """
        simulate = benchModule()
        arguments = simulate.parseArguments(
            ["4", "--idle", "2", "--churn", "2", "--changes", "1", "--settle", "1"]
        )
        arguments.loss = [0.1]
        first = simulate.simulate(4, arguments).figures
        second = simulate.simulate(4, arguments).figures
        self.assertEqual(first, second)

    def test_quantile(self) -> None:
        """
        The time by which a share of all nodes had it; none when too few
        did.
        """
        quantile = benchModule().quantile
        times = [0.1, 0.2, 0.3, 0.4]
        self.assertEqual(quantile(times, 4, 0.99), 0.4)
        self.assertEqual(quantile(times, 4, 0.5), 0.2)
        self.assertEqual(quantile(times, 400, 0.01), 0.4)
        self.assertIsNone(quantile(times, 5, 0.99))
