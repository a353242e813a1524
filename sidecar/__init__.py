"""
sidecar: peer-to-peer service discovery on Twisted.

Embed a node with L{makeService}; see C{docs/embedding.md}.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["SidecarNode", "__version__", "makeService"]


def __getattr__(name: str) -> Any:
    # The composition imports every part; load it only when asked for, so
    # that importing one part (the catalog, say) stays light.
    if name in ("SidecarNode", "makeService"):
        from sidecar import service

        return getattr(service, name)
    raise AttributeError(f"module 'sidecar' has no attribute {name!r}")
