"""
Running a benchmark of C{bench/} at a tiny size, as an ordinary test does:
only that it ends well and that every figure comes out is asserted.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable

from twisted.internet import reactor
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import TestCase

from .processes import REPO, nodeEnvironment


async def benchmarkLines(
    case: TestCase, script: str, *argv: str, timeout: float = 150
) -> list[str]:
    """
    Run C{bench/<script>} with C{argv}, for C{timeout} seconds at most;
    fail C{case} (with the end of its standard error) unless it exits 0,
    and return the lines it printed that are not blank.
    """
    run = getProcessOutputAndValue(
        sys.executable,
        [str(REPO / "bench" / script), *argv],
        env=nodeEnvironment(),
        path=str(REPO / "bench"),
    )
    run.addTimeout(timeout, reactor)
    out, err, code = await run
    case.assertEqual(code, 0, err.decode(errors="replace")[-2000:])
    return [line for line in out.decode().splitlines() if line.strip()]


def figures(lines: Iterable[str]) -> dict[str, str]:
    """
    The C{name  value} rows of C{lines} (two spaces or more between).
    """
    return dict(re.split(r"\s{2,}", line, maxsplit=1) for line in lines)
