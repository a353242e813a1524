"""
bench/hostile.py at a tiny size: two seconds without the hostile sender and
two with it.  Only that every figure comes out is asserted; the figures
themselves are for docs/performance.md.
"""

from __future__ import annotations

import re
import sys

from twisted.internet import reactor
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import TestCase

from .processes import REPO, nodeEnvironment

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
        run = getProcessOutputAndValue(
            sys.executable,
            [str(REPO / "bench" / "hostile.py"), "--seconds", "2"],
            env=nodeEnvironment(),
            path=str(REPO / "bench"),
        )
        run.addTimeout(150, reactor)
        out, err, code = await run
        self.assertEqual(code, 0, err.decode(errors="replace")[-2000:])
        rows = dict(
            re.split(r"\s{2,}", line, maxsplit=1)
            for line in out.decode().splitlines()
            if line.strip()
        )
        for figure in FIGURES:
            self.assertIn(figure, rows)
            # Both runs: "<without> / <with>", each with a number.
            without, with_ = rows[figure].split(" / ")
            self.assertRegex(without, r"\d")
            self.assertRegex(with_, r"\d")
