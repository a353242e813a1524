"""
Building the proxy part from a configuration, for a node and for the
C{sidecar-haproxy} companion alike.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred

from sidecar.catalog.interfaces import ICatalog
from sidecar.config import Config, ConfigError
from sidecar.interfaces import IMembership
from sidecar.problems import Problems

from .follower import ProxyFollower
from .haproxy import HAProxySettings, HAProxyWriter
from .model import Admission
from .ports import bindProbe
from .template import ProxyTemplate, ProxyTemplateError, TemplateSettings


def makeProxy(
    config: Config,
    catalog: ICatalog,
    membership: IMembership | None,
    reactor: Any,
    ready: Deferred[Any] | None = None,
    problems: Problems | None = None,
) -> ProxyFollower:
    """
    The HAProxy of C{config}'s C{[haproxy]} section, following C{catalog}.

    @param problems: where the proxy's faults are shown.

    @raise ConfigError: when the template cannot be read or parsed, or an
        unmanaged HAProxy has no reload command.
    """
    haproxy = config.haproxy
    if not haproxy.manageProcess and not haproxy.reloadCommand:
        raise ConfigError(
            config.source or "configuration",
            "haproxy.reload_command",
            "a HAProxy this node does not manage needs a reload command",
        )
    try:
        template = (
            ProxyTemplate.fromFile(haproxy.template)
            if haproxy.template
            else ProxyTemplate.default()
        )
    except ProxyTemplateError as e:
        raise ConfigError(
            config.source or "configuration", "haproxy.template", str(e)
        ) from None
    writer = HAProxyWriter(
        reactor,
        HAProxySettings(
            configFile=haproxy.configFile,
            binary=haproxy.binary,
            pidFile=haproxy.pidFile,
            manageProcess=haproxy.manageProcess,
            reloadCommand=haproxy.reloadCommand,
        ),
        template,
        TemplateSettings(
            bind_ip=haproxy.bindIp,
            admin_socket=haproxy.adminSocket,
            stats_listen=haproxy.statsListen,
            user=haproxy.user,
            group=haproxy.group,
            maxconn=haproxy.maxconn,
        ),
    )
    return ProxyFollower(
        catalog,
        membership,
        writer,
        reactor,
        minInterval=haproxy.minReloadInterval,
        useHostnames=haproxy.useHostnames,
        ready=ready,
        admission=admission(config),
        problems=problems,
    )


def admission(config: Config) -> Admission:
    """
    What C{config}'s node admits into its proxy: its own instances first,
    no frontend on its gossip, API, stats or xDS port, nor on a port another
    program holds, and no other host's instance at a loopback or
    link-local address (unless C{haproxy.allow_loopback_targets}).
    """
    haproxy = config.haproxy
    reserved = {config.node.bind.port, config.api.listen.port}
    if config.envoy.enabled:
        reserved.add(config.envoy.listen.port)
    if haproxy.statsListen:
        reserved.add(int(haproxy.statsListen.rpartition(":")[2]))
    return Admission(
        localHost=config.node.name,
        bindIP=haproxy.bindIp,
        reservedPorts=frozenset(reserved),
        bindable=bindProbe(haproxy.bindIp),
        loopbackTargets=haproxy.allowLoopbackTargets,
    )
