"""
C{bench/envoy.py} at a tiny size: every figure it prints comes out.  The
figures themselves are for reading, never asserted.
"""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

from twisted.trial.unittest import TestCase

from .processes import REPO


def benchModule() -> ModuleType:
    # Not as "envoy", which is Envoy's generated API.
    spec = importlib.util.spec_from_file_location(
        "bench_envoy", REPO / "bench" / "envoy.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


class EnvoyBenchTests(TestCase):
    timeout = 120

    async def test_everyFigureComesOut(self) -> None:
        bench = benchModule()
        arguments = bench.parseArguments(
            ["--changes", "2", "--clients", "1", "3", "--services", "20"]
        )
        results, build = await bench.run(arguments)
        self.assertEqual([(r.clients, r.changes) for r in results], [(1, 2), (3, 2)])
        for result in results:
            self.assertGreater(result.p50, 0)
            self.assertGreaterEqual(result.p99, result.p50)
        full, again = build
        self.assertGreater(full, 0)
        self.assertGreater(again, 0)
