"""
trial, with the skipped tests told loudly at the very end.

Tests that drive a real binary (haproxy, serf, podman, chromium, the Go
Sidecar) skip when it is missing.  trial lists skips above its summary,
where a green C{PASSED} line buries them; a run that skipped a third of the
integration tests must not read like a full pass.  So after trial's own
summary this prints one banner with the count and each distinct reason.

Run as C{python -m tests.run [trial options] tests}; tox does.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from twisted.scripts import trial
from twisted.trial.reporter import Reporter


def skipBanner(reasons: list[str]) -> list[str]:
    """
    The lines that end a run that skipped tests: how many, then each
    distinct reason with how many tests it skipped, most first.
    """
    if not reasons:
        return []
    rule = "!" * 72
    lines = [rule, f"{len(reasons)} test(s) SKIPPED; they did not run:"]
    for reason, count in Counter(reasons).most_common():
        lines.append(f"  {count:4d} x {reason}")
    lines.append("Install what they name (.ci/run lists it) to run them.")
    lines.append(rule)
    return lines


def loudSkips(reporter: type[Reporter]) -> type[Reporter]:
    """
    A subclass of C{reporter} that writes L{skipBanner} after its summary.
    """

    def done(self: Reporter) -> None:
        reporter.done(self)
        reasons = [str(reason).strip() for _, reason in self.skips]
        for line in skipBanner(reasons):
            self._writeln(line)  # type: ignore[attr-defined]

    return type(f"LoudSkips{reporter.__name__}", (reporter,), {"done": done})


class _Options(trial.Options):
    def postOptions(self) -> None:
        super().postOptions()
        self["reporter"] = loudSkips(self["reporter"])


def main() -> Any:
    trial.Options = _Options  # type: ignore[misc]
    return trial.run()


if __name__ == "__main__":
    main()
