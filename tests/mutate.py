"""
Mutation testing: does the suite notice when the product is broken?

cosmic-ray makes one small change at a time (a mutant: C{<} for C{<=},
C{+} for C{-}, C{True} for C{False}, ...) to a module and runs the tests
that cover it; a mutant the tests still pass on "survived", and shows code
that no test really pins down.  Each target pairs the code under test with
the test modules meant to catch its mutants.

    python -m tests.mutate [--report FILE] [--sample N] [TARGET ...]
                                                    (tox -e mutate)

It works on a copy of the checkout, never on the checkout itself (a
mutation run that is interrupted would leave a mutant behind), prints each
target's share of mutants killed and every survivor with its diff, and
exits 1 when a target kills less than L{TARGET_KILLED}.
"""

from __future__ import annotations

import ast
import json
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from twisted.python import usage

CHECKOUT = Path(__file__).resolve().parent.parent
TARGET_KILLED = 0.90
# Per mutant: far above what the target's tests take, so that only a
# mutant that loops for ever counts as a timeout (and as killed).
MUTANT_TIMEOUT = 120.0
# The seed of --sample's draw, fixed so that a sample can be run again.
SAMPLE_SEED = 21
HAPROXY_DRIVER = "sidecar/proxy/haproxy.py"
HAPROXY_RUNTIME = "sidecar/proxy/runtime.py"


@dataclass(frozen=True)
class Target:
    """
    Code to mutate (files or packages, relative to the checkout, less the
    C{excluded} files in it) and the test modules that must kill its
    mutants, fastest first: a mutant is killed by its first failing test.
    """

    name: str
    code: str | tuple[str, ...]
    tests: tuple[str, ...]
    excluded: tuple[str, ...] = ()


TARGETS = [
    Target(
        "catalog",
        "sidecar/catalog",
        (
            "tests.test_catalog_merge",
            "tests.test_catalog_snapshot",
            "tests.test_catalog_local",
            "tests.test_catalog_json",
            "tests.test_catalog_convergence",
        ),
    ),
    Target(
        "members",
        "sidecar/gossip/members.py",
        ("tests.test_gossip_members", "tests.test_gossip_cluster"),
    ),
    Target(
        "suspicion",
        "sidecar/gossip/suspicion.py",
        ("tests.test_gossip_suspicion",),
    ),
    Target(
        "admission",
        "sidecar/gossip/admission.py",
        (
            "tests.test_gossip_admission",
            "tests.test_catalog_admission",
            "tests.test_gossip_delegate",
        ),
    ),
    # The proxy's model, template, ports and follower, with the tests
    # that need no HAProxy process (seconds a mutant); the code that
    # drives a real HAProxy is a target of its own, as its tests start
    # one per test (hours a run).
    Target(
        "proxy",
        "sidecar/proxy",
        (
            "tests.test_proxy_model",
            "tests.test_proxy_ports",
            "tests.test_proxy_follower",
            "tests.test_watch",
        ),
        excluded=(HAPROXY_DRIVER, HAPROXY_RUNTIME),
    ),
    Target("haproxy", (HAPROXY_DRIVER, HAPROXY_RUNTIME), ("tests.test_haproxy",)),
]


@dataclass(frozen=True)
class Survivor:
    """
    A mutant the tests did not notice.
    """

    path: str
    line: int
    operator: str
    diff: str


@dataclass(frozen=True)
class Outcome:
    """
    A target's mutants: C{total} run, C{killed}, the C{survivors}, and the
    survivors that change only a type annotation (C{annotations}: never
    evaluated, every module having C{from __future__ import annotations},
    so no test can tell them apart), which the share leaves out; for a
    sample, C{drawnFrom} is how many mutants it was drawn from.
    """

    target: Target
    total: int
    killed: int
    survivors: tuple[Survivor, ...]
    annotations: tuple[Survivor, ...] = ()
    drawnFrom: int | None = None

    @property
    def share(self) -> float:
        counted = self.total - len(self.annotations)
        return self.killed / counted if counted else 1.0


def _signature(line: str) -> ast.AST | None:
    """
    C{line} of a function's signature (all of it, a parameter, or its
    return), parsed, with every annotation removed; L{None} if it is no
    such line.
    """
    text = line.strip()
    for template in ("{}\n pass", "def f(\n{}\n): pass", "def f(\n{}\n pass"):
        try:
            tree = ast.parse(template.format(text))
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                node.returns = None
            elif isinstance(node, ast.arg):
                node.annotation = None
        return tree
    return None


def annotationOnly(diff: str) -> bool:
    """
    Whether C{diff} (one line changed) changes only annotations of a
    function's signature.
    """
    removed = [x[1:] for x in diff.splitlines() if x[:1] == "-" and x[:3] != "---"]
    added = [x[1:] for x in diff.splitlines() if x[:1] == "+" and x[:3] != "+++"]
    if len(removed) != 1 or len(added) != 1:
        return False
    before, after = _signature(removed[0]), _signature(added[0])
    return (
        before is not None
        and after is not None
        and (ast.dump(before) == ast.dump(after))
    )


def _copyCheckout(into: Path) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "_trial_temp*")
    for name in ["sidecar", "tests", "twisted"]:
        shutil.copytree(CHECKOUT / name, into / name, ignore=ignore)


def _config(target: Target) -> str:
    # Tests run with the copy as the current directory: "python -m" puts
    # it first on sys.path, so they import the mutated package.  A mutant
    # is killed by its first failure: the rest need not run.
    command = " ".join(
        [sys.executable, "-m", "twisted.trial", "--exitfirst", *target.tests]
    )
    return "\n".join(
        [
            "[cosmic-ray]",
            f"module-path = {json.dumps(target.code)}",
            f"timeout = {MUTANT_TIMEOUT}",
            f"excluded-modules = {json.dumps(list(target.excluded))}",
            f"test-command = {json.dumps(command)}",
            "",
            "[cosmic-ray.distributor]",
            'name = "local"',
            "",
        ]
    )


def _cosmicRay(*args: str, cwd: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "cosmic_ray.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise SystemExit(f"cosmic-ray {args[0]} failed:\n{done.stderr}")
    return done.stdout


def outcomeOf(target: Target, dump: str) -> Outcome:
    """
    Count the results in C{dump}, cosmic-ray's JSON lines of (job, result).
    """
    total = killed = 0
    survivors = []
    annotations = []
    for line in dump.splitlines():
        job, result = json.loads(line)
        if result is None:
            continue
        total += 1
        if result["test_outcome"] == "survived":
            [mutation] = job["mutations"]
            survivor = Survivor(
                mutation["module_path"],
                mutation["start_pos"][0],
                mutation["operator_name"],
                result.get("diff") or "",
            )
            if annotationOnly(survivor.diff):
                annotations.append(survivor)
            else:
                survivors.append(survivor)
        else:
            killed += 1
    survivors.sort(key=lambda s: (s.path, s.line, s.operator))
    return Outcome(target, total, killed, tuple(survivors), tuple(annotations))


def keepSample(session: Path, size: int, seed: int = SAMPLE_SEED) -> int:
    """
    Leave only C{size} of the mutants in cosmic-ray's C{session} database
    (before it runs them), drawn at random with C{seed} from the mutants
    in the order of where and what they change, so that the same code
    gives the same sample (the jobs' own IDs are new at each C{init}).

    @return: how many mutants there were.
    """
    with sqlite3.connect(session) as db:
        jobs = [
            row[0]
            for row in db.execute(
                "SELECT job_id FROM mutation_specs ORDER BY module_path,"
                " start_pos_row, start_pos_col, operator_name, occurrence"
            )
        ]
        drawn = set(random.Random(seed).sample(jobs, min(size, len(jobs))))
        dropped = [(job,) for job in jobs if job not in drawn]
        db.executemany("DELETE FROM mutation_specs WHERE job_id = ?", dropped)
        db.executemany("DELETE FROM work_items WHERE job_id = ?", dropped)
    return len(jobs)


def mutate(target: Target, sample: int | None = None) -> Outcome:
    """
    Run every mutant of C{target} (or a random C{sample} of them) against
    its tests, on a fresh copy.
    """
    with tempfile.TemporaryDirectory(prefix="sidecar-mutate-") as directory:
        work = Path(directory)
        _copyCheckout(work)
        (work / "cosmic-ray.toml").write_text(_config(target))
        _cosmicRay("init", "cosmic-ray.toml", "session.sqlite", cwd=work)
        drawnFrom = None
        if sample is not None:
            drawnFrom = keepSample(work / "session.sqlite", sample)
        _cosmicRay("exec", "cosmic-ray.toml", "session.sqlite", cwd=work)
        dump = _cosmicRay("dump", "session.sqlite", cwd=work)
        return replace(outcomeOf(target, dump), drawnFrom=drawnFrom)


def report(outcomes: Sequence[Outcome]) -> str:
    """
    The summary table, then every survivor with its diff.
    """
    lines = [
        "| target | mutants | killed | annotation-only | survived | share |",
        "|---|---|---|---|---|---|",
    ]
    for o in outcomes:
        name = o.target.name
        if o.drawnFrom is not None:
            name += f" (a sample of {o.drawnFrom})"
        lines.append(
            f"| {name} | {o.total} | {o.killed} | {len(o.annotations)}"
            f" | {len(o.survivors)} | {100 * o.share:.1f} % |"
        )
    for o in outcomes:
        if o.survivors:
            lines += ["", f"## {o.target.name}: {len(o.survivors)} survivor(s)"]
        for s in o.survivors:
            lines += ["", f"{s.path}:{s.line} {s.operator}", s.diff.rstrip()]
    return "\n".join(lines) + "\n"


class Options(usage.Options):
    synopsis = "[--report FILE] [--sample N] [TARGET ...]"
    optParameters = [
        ["report", "r", None, "Also write the report to FILE."],
        [
            "sample",
            "s",
            None,
            "Run only N mutants of each target, drawn at random (an estimate,"
            " when running them all would take too long).",
            int,
        ],
    ]

    def parseArgs(self, *names: str) -> None:  # type: ignore[override]
        known = {t.name: t for t in TARGETS}
        unknown = [n for n in names if n not in known]
        if unknown:
            raise usage.UsageError(
                f"unknown target(s) {', '.join(unknown)}; known: {', '.join(known)}"
            )
        self["targets"] = [known[n] for n in names] or TARGETS


def main(argv: Sequence[str] | None = None) -> None:
    options = Options()
    try:
        options.parseOptions(list(sys.argv[1:] if argv is None else argv))
    except usage.UsageError as e:
        raise SystemExit(f"mutate: {e}") from None
    outcomes = []
    for target in options["targets"]:
        code = target.code if isinstance(target.code, str) else ", ".join(target.code)
        print(f"mutate: {target.name} ({code})", flush=True)
        outcomes.append(mutate(target, options["sample"]))
    text = report(outcomes)
    print(text)
    if options["report"]:
        Path(options["report"]).write_text(text)
    short = [o.target.name for o in outcomes if o.share < TARGET_KILLED]
    if short:
        raise SystemExit(
            f"mutate: under {TARGET_KILLED:.0%} killed: {', '.join(short)}"
        )


if __name__ == "__main__":
    main()
