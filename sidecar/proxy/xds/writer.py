"""
L{EnvoyWriter}: the proxy writer (L{IProxyWriter}) that makes each model
a snapshot and publishes it on the xDS server, so that the same
L{ProxyFollower<sidecar.proxy.follower.ProxyFollower>} that drives HAProxy
drives Envoy and gRPC clients: one model, two renderers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from zope.interface import implementer

from sidecar.interfaces import IProxyWriter
from sidecar.offload import Offload, inline

from ..model import ProxyModel
from .resources import EnvoySettings, SnapshotBuilder
from .server import XDSServer


def _nothing() -> None:
    pass


@implementer(IProxyWriter)
class EnvoyWriter:
    """
    Publishes a model's resources to every xDS client.  Envoy is not a
    process of ours, so nothing here starts or stops one; the server is a
    service of its own.
    """

    def __init__(
        self, server: XDSServer, settings: EnvoySettings, offload: Offload = inline
    ) -> None:
        """
        @param offload: where snapshots are built (from the model, an
            immutable value): the reactor's thread pool in a node, so that
            a large catalog's first snapshot does not hold up gossip.
        """
        self.exited: Callable[[], None] = _nothing
        self._server = server
        self._settings = settings
        self._builder = SnapshotBuilder(settings)
        self._offload = offload

    async def apply(self, model: ProxyModel) -> str:
        """
        @return: C{"unchanged"} when the resources are what clients have,
            else C{"xds"} (a new snapshot is served).
        """
        current = self._server.snapshot
        snapshot = await self._offload(
            lambda: self._builder.build(model, current.serial + 1)
        )
        if snapshot.versions() == current.versions():
            return "unchanged"
        self._server.publish(snapshot)
        return "xds"

    def status(self) -> dict[str, Any]:
        return {
            "BindIP": self._settings.bindIP,
            "UseHostnames": self._settings.useHostnames,
            **self._server.status(),
        }

    async def stop(self) -> None:
        return None
