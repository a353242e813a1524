"""
Helpers for tests that run real processes: L{sidecar.demo.processes}'s,
and this checkout's root.
"""

from __future__ import annotations

from pathlib import Path

from sidecar.demo.processes import (
    TWISTD_SIDECAR,
    NodeProcess,
    freePort,
    nodeEnvironment,
    pollUntil,
    startNode,
)

__all__ = [
    "REPO",
    "TWISTD_SIDECAR",
    "NodeProcess",
    "freePort",
    "nodeEnvironment",
    "pollUntil",
    "startNode",
]

REPO = Path(__file__).resolve().parent.parent
