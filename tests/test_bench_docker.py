"""
bench/docker_discovery.py at a tiny size: three containers on Docker's
engine and on podman's.  Only that every figure comes out for both engines
is asserted; the figures themselves are for docs/performance.md.
"""

from __future__ import annotations

from twisted.trial.unittest import TestCase

from .benchruns import benchmarkLines, figures
from .dockerengine import dockerEngineSkipReason

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
        lines = await benchmarkLines(
            self, "docker_discovery.py", "3", "--starters", "3"
        )
        rows = figures(lines)
        self.assertEqual(rows["engine"], "docker / podman")
        self.assertEqual(rows["containers"], "3 / 3")
        for figure in FIGURES:
            docker, podman = rows[figure].split(" / ")
            self.assertRegex(docker, r"^\d+(\.\d+)? (s|ms|MiB)")
            self.assertRegex(podman, r"^\d+(\.\d+)? (s|ms|MiB)")
