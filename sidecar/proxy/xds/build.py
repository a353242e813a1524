"""
Building a node's xDS control plane from its configuration.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from twisted.application.service import MultiService
from zope.interface import implementer

from sidecar.catalog.interfaces import ICatalog
from sidecar.config import Config
from sidecar.interfaces import IMembership, IProxyReport
from sidecar.offload import offloadFor
from sidecar.problems import Problems

from ..build import admission
from ..follower import ProxyFollower
from ..model import bindableAlways
from .resources import EnvoySettings
from .server import XDSServer
from .writer import EnvoyWriter

# How soon after a change of the catalog clients are sent it: changes
# within this much of the last update are sent together.
MIN_INTERVAL = 0.05


@implementer(IProxyReport)
class EnvoyControlPlane(MultiService):
    """
    The xDS server and the follower that feeds it, started and stopped
    together (the follower stops first).

    @ivar server: the L{XDSServer}.
    @ivar follower: the L{ProxyFollower} with an L{EnvoyWriter}.
    """

    def __init__(self, server: XDSServer, follower: ProxyFollower) -> None:
        super().__init__()
        self.server = server
        self.follower = follower
        server.setServiceParent(self)
        follower.setServiceParent(self)

    def status(self) -> dict[str, Any]:
        return self.follower.status()


def makeEnvoy(
    config: Config,
    catalog: ICatalog,
    membership: IMembership | None,
    reactor: Any,
    problems: Problems | None = None,
) -> EnvoyControlPlane:
    """
    The control plane of C{config}'s C{[envoy]} section, following
    C{catalog} with the same model, and the same admission, as HAProxy's;
    but no ServicePort is probed for binding here: Envoy may run
    elsewhere (another container, another network namespace).

    @param problems: where the server's faults are shown, and the model's
        conflicts and refusals when HAProxy is off (with HAProxy on, its
        follower shows them: the same, bar the ports HAProxy cannot bind).
    """
    envoy = config.envoy
    if problems is None:
        problems = Problems(reactor)
    server = XDSServer(reactor, envoy.listen.host, envoy.listen.port, problems=problems)
    settings = EnvoySettings(bindIP=envoy.bindIp, useHostnames=envoy.useHostnames)
    follower = ProxyFollower(
        catalog,
        membership,
        EnvoyWriter(server, settings, offloadFor(reactor)),
        reactor,
        minInterval=MIN_INTERVAL,
        useHostnames=envoy.useHostnames,
        admission=replace(
            admission(config), bindIP=envoy.bindIp, bindable=bindableAlways
        ),
        problems=Problems(reactor) if config.haproxy.enabled else problems,
    )
    return EnvoyControlPlane(server, follower)
