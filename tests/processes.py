"""
Running a real C{twistd -n sidecar} process for a test, with bounded waits:
this checkout's node, and L{sidecar.demo.processes}'s helpers.
"""

from __future__ import annotations

import os
from pathlib import Path

from sidecar.demo.processes import (
    TWISTD,
    NodeProcess,
    freePort,
    nodeEnvironment,
    pollUntil,
)
from sidecar.demo.processes import startNode as _startNode

__all__ = ["REPO", "TWISTD", "NodeProcess", "freePort", "pollUntil", "startNode"]

REPO = Path(__file__).resolve().parent.parent


def twistdEnvironment() -> dict[str, str]:
    """
    The test's environment, without the Go Sidecar's variables (which
    would override the test's configuration), and with this checkout first
    on the path so that its plugin and package are the ones run.
    """
    environ = nodeEnvironment()
    environ["PYTHONPATH"] = os.pathsep.join(
        [str(REPO)] + [p for p in [os.environ.get("PYTHONPATH")] if p]
    )
    return environ


def startNode(configPath: str, timeout: float = 30) -> NodeProcess:
    """
    Start this checkout's C{twistd -n sidecar --config=configPath};
    C{listening} times out after C{timeout} seconds.
    """
    return _startNode(configPath, timeout, twistdEnvironment())
