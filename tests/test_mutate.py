"""
The mutation-testing runner's reading of cosmic-ray's results
(L{tests.mutate}); the mutation run itself is C{tox -e mutate}.
"""

from __future__ import annotations

import json

from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from tests.mutate import TARGETS, Options, outcomeOf, report


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
