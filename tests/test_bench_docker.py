"""
bench/docker_discovery.py at a tiny size: three containers on Docker's
engine and on podman's.  Only that every figure comes out for both engines
is asserted; the figures themselves are for docs/performance.md.
"""

from __future__ import annotations

import re
import sys

from twisted.internet import reactor
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import TestCase

from .dockerengine import dockerEngineSkipReason
from .processes import REPO, nodeEnvironment

FIGURES = (
    "engine: last container started",
    "node: last container in the catalog",
    "start returned -> announced, p50",
    "start returned -> announced, p99",
    "node CPU during the burst",
    "node RSS at the end",
)


class DockerBenchTests(TestCase):
    skip = dockerEngineSkipReason("docker") or dockerEngineSkipReason("podman")
    timeout = 180

    async def test_everyFigureComesOutForBothEngines(self) -> None:
        run = getProcessOutputAndValue(
            sys.executable,
            [str(REPO / "bench" / "docker_discovery.py"), "3", "--starters", "3"],
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
        self.assertEqual(rows["engine"], "docker / podman")
        self.assertEqual(rows["containers"], "3 / 3")
        for figure in FIGURES:
            docker, podman = rows[figure].split(" / ")
            self.assertRegex(docker, r"^\d+(\.\d+)? (s|ms|MiB)")
            self.assertRegex(podman, r"^\d+(\.\d+)? (s|ms|MiB)")
