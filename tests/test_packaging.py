"""
Installing the package as contributors do: C{pip install -e .} must keep
C{twistd sidecar} working.  Twisted finds plugins only in C{twisted/plugins}
directories on C{sys.path}, which setuptools' default editable install (an
import hook) does not provide.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from twisted.internet import reactor
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import TestCase

CHECKOUT = Path(__file__).resolve().parent.parent
# What a build of the package reads.
_SOURCES = ["setup.py", "pyproject.toml", "README.md", "sidecar", "twisted"]


def _outsideThisVenv() -> dict[str, str]:
    # The environment without what ties a child to the tests' own venv.
    tied = {"VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME"}
    return {name: value for name, value in os.environ.items() if name not in tied}


async def _run(argv: list[str], path: str, timeout: float) -> tuple[str, str, int]:
    running = getProcessOutputAndValue(
        argv[0], argv[1:], env=_outsideThisVenv(), path=path
    )
    running.addTimeout(timeout, reactor)
    out, err, code = await running
    return out.decode(errors="replace"), err.decode(errors="replace"), code


class EditableInstallTests(TestCase):
    timeout = 600

    async def test_editableInstallKeepsTheTwistdPlugin(self) -> None:
        work = Path(self.mktemp()).resolve()
        source = work / "checkout"
        source.mkdir(parents=True)
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "dropin.cache")
        for name in _SOURCES:
            origin = CHECKOUT / name
            if origin.is_dir():
                shutil.copytree(origin, source / name, ignore=ignore)
            else:
                shutil.copy(origin, source / name)
        venv = work / "venv"
        out, err, code = await _run(
            [sys.executable, "-m", "venv", str(venv)], str(work), 120
        )
        self.assertEqual(code, 0, err)
        out, err, code = await _run(
            [str(venv / "bin" / "pip"), "install", "-q", "-e", str(source)],
            str(work),
            540,
        )
        self.assertEqual(code, 0, err)
        # Run from elsewhere, so that the current directory (a checkout
        # holds twisted/plugins/) cannot be what finds the plugin.
        out, err, code = await _run(
            [str(venv / "bin" / "twistd"), "sidecar", "--help"], str(work), 60
        )
        self.assertEqual(code, 0, out + err)
        self.assertIn("twistd [options] sidecar --config=FILE", out)
        out, err, code = await _run(
            [str(venv / "bin" / "twistd"), "sidecar-haproxy", "--help"],
            str(work),
            60,
        )
        self.assertEqual(code, 0, out + err)
        self.assertIn("--sidecar=", out)
