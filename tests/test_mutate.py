"""
The mutation-testing runner's reading of cosmic-ray's results
(L{tests.mutate}); the mutation run itself is C{tox -e mutate}.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import replace
from pathlib import Path

from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from tests.mutate import TARGETS, Options, _config, keepSample, outcomeOf, report


def _line(outcome: str | None, line: int = 7, diff: str = "-a\n+b") -> str:
    job = {
        "job_id": "x",
        "mutations": [
            {
                "module_path": "sidecar/x.py",
                "operator_name": "core/NumberReplacer",
                "start_pos": [line, 4],
            }
        ],
    }
    result = None if outcome is None else {"test_outcome": outcome, "diff": diff}
    return json.dumps([job, result])


class OutcomeTests(SynchronousTestCase):
    def test_killedSurvivedAndPendingAreCounted(self) -> None:
        dump = "\n".join(
            [_line("killed"), _line("survived", 9), _line("incompetent"), _line(None)]
        )
        outcome = outcomeOf(TARGETS[0], dump)
        # A mutant that broke the import (incompetent) was noticed;
        # one not yet run is not counted at all.
        self.assertEqual((outcome.total, outcome.killed), (3, 2))
        [survivor] = outcome.survivors
        self.assertEqual((survivor.path, survivor.line), ("sidecar/x.py", 9))
        text = report([outcome])
        self.assertIn(f"| {TARGETS[0].name} | 3 | 2 | 0 | 1 | 66.7 % |", text)
        self.assertIn("sidecar/x.py:9 core/NumberReplacer\n-a\n+b", text)

    def test_survivorsThatChangeOnlyAnAnnotationAreNotCounted(self) -> None:
        signature = "@@ -1 +1 @@\n-    def f(self, x: str | None) -> int | None:\n"
        dump = "\n".join(
            [
                _line("killed"),
                _line(
                    "survived",
                    3,
                    signature + "+    def f(self, x: str - None) -> int | None:",
                ),
                _line(
                    "survived",
                    4,
                    "-        x: A | None = None,\n+        x: A ^ None = None,",
                ),
                _line("survived", 5, "-    ) -> A | None:\n+    ) -> A % None:"),
                # A default is no annotation: counted.
                _line("survived", 6, "-        x: int = 1,\n+        x: int = 2,"),
            ]
        )
        outcome = outcomeOf(TARGETS[0], dump)
        self.assertEqual([s.line for s in outcome.annotations], [3, 4, 5])
        self.assertEqual([s.line for s in outcome.survivors], [6])
        self.assertEqual(outcome.share, 0.5)
        self.assertIn(
            f"| {TARGETS[0].name} | 5 | 1 | 3 | 1 | 50.0 % |", report([outcome])
        )

    def test_unknownTargetsAreRefused(self) -> None:
        options = Options()
        self.assertRaises(usage.UsageError, options.parseOptions, ["nosuch"])
        options = Options()
        options.parseOptions(["suspicion"])
        self.assertEqual([t.name for t in options["targets"]], ["suspicion"])

    def test_aSampleIsCountedAndNamedAsOne(self) -> None:
        outcome = replace(outcomeOf(TARGETS[0], _line("killed")), drawnFrom=1420)
        self.assertIn(
            f"| {TARGETS[0].name} (a sample of 1420) | 1 | 1 | 0 | 0 | 100.0 % |",
            report([outcome]),
        )


def _session(path: Path, jobs: int, prefix: str = "job") -> None:
    """
    A cosmic-ray session of C{jobs} mutants, one a line of C{m.py}, whose
    job IDs begin with C{prefix}.
    """
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE work_items (job_id VARCHAR PRIMARY KEY)")
        db.execute(
            "CREATE TABLE mutation_specs (module_path VARCHAR, operator_name"
            " VARCHAR, occurrence INTEGER, start_pos_row INTEGER, start_pos_col"
            " INTEGER, job_id VARCHAR PRIMARY KEY)"
        )
        for n in range(jobs):
            job = f"{prefix}{n}"
            db.execute("INSERT INTO work_items VALUES (?)", (job,))
            db.execute(
                "INSERT INTO mutation_specs VALUES ('m.py', 'op', 0, ?, 0, ?)",
                (n, job),
            )


def _lines(path: Path) -> list[int]:
    with sqlite3.connect(path) as db:
        return sorted(
            r[0]
            for r in db.execute(
                "SELECT start_pos_row FROM mutation_specs JOIN work_items"
                " USING (job_id)"
            )
        )


def _jobs(path: Path, table: str) -> list[str]:
    with sqlite3.connect(path) as db:
        return sorted(r[0] for r in db.execute(f"SELECT job_id FROM {table}"))


class SampleTests(SynchronousTestCase):
    def test_aSampleKeepsThatManyMutantsTheSameEachTime(self) -> None:
        # The same mutants, though cosmic-ray names its jobs anew each time.
        drawn = []
        for prefix in ("a", "b"):
            path = Path(self.mktemp())
            _session(path, 40, prefix)
            self.assertEqual(keepSample(path, 5), 40)
            self.assertEqual(_jobs(path, "mutation_specs"), _jobs(path, "work_items"))
            drawn.append(_lines(path))
        self.assertEqual(len(drawn[0]), 5)
        self.assertEqual(drawn[0], drawn[1])

    def test_aSampleLargerThanTheMutantsKeepsThemAll(self) -> None:
        path = Path(self.mktemp())
        _session(path, 3)
        self.assertEqual(keepSample(path, 10), 3)
        self.assertEqual(_jobs(path, "work_items"), ["job0", "job1", "job2"])

    def test_theSampleSizeIsANumber(self) -> None:
        options = Options()
        options.parseOptions(["--sample", "7", "catalog"])
        self.assertEqual(options["sample"], 7)
        self.assertRaises(usage.UsageError, Options().parseOptions, ["--sample", "x"])


class TargetTests(SynchronousTestCase):
    def test_theProxyTargetLeavesItsHAProxyDriverToATargetOfItsOwn(self) -> None:
        known = {t.name: t for t in TARGETS}
        proxy = _config(known["proxy"])
        driver = '["sidecar/proxy/haproxy.py", "sidecar/proxy/runtime.py"]'
        self.assertIn(f"excluded-modules = {driver}", proxy)
        self.assertNotIn("test_haproxy", proxy)
        self.assertIn(f"module-path = {driver}", _config(known["haproxy"]))
