"""
C{bench/api.py} at a tiny size: every figure it prints comes out.  The
figures themselves are for reading, never asserted.
"""

from __future__ import annotations

import importlib
import shutil
import sys
from types import ModuleType

from twisted.trial.unittest import TestCase

from .processes import REPO


def benchModule() -> ModuleType:
    bench = str(REPO / "bench")
    if bench not in sys.path:
        sys.path.insert(0, bench)
    return importlib.import_module("api")


class APIBenchTests(TestCase):
    timeout = 120

    async def test_everyFigureComesOut(self) -> None:
        if shutil.which("wrk") is None:
            raise self.skipTest("wrk is not installed (Debian: apt-get install wrk)")
        api = benchModule()
        # Addresses no other test uses, on loopback.
        self.patch(api, "HOSTS", ("127.0.1.211", "127.0.1.212"))
        arguments = api.parseArguments(["20", "--connections", "2", "--seconds", "1"])
        runs = await api.run(arguments)
        self.assertEqual(
            [(run.path, run.connections) for run in runs],
            [("services.json", 2), ("state.json", 2)],
        )
        for run in runs:
            self.assertGreater(run.load.requests, 0)
            self.assertGreater(run.load.perSecond, 0)
            self.assertGreater(run.load.p50, 0)
            self.assertGreaterEqual(run.load.p99, run.load.p50)
            self.assertGreaterEqual(run.load.errors, 0)
            self.assertGreaterEqual(run.cpu, 0)
            self.assertGreater(run.rss, 0)
            self.assertGreaterEqual(run.suspicions, 0)
            self.assertGreaterEqual(run.failures, 0)
