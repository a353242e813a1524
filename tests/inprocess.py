"""
Nodes built by L{makeService} inside the test's reactor, from a TOML file
written for the test, with one static service each.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from sidecar.config import loadConfig
from sidecar.service import SidecarNode, makeService


def startNode(
    case: TestCase,
    name: str,
    host: str,
    nodeSettings: Sequence[str] = (),
    serviceName: str | None = None,
) -> SidecarNode:
    """
    Start a node called C{name} with gossip and API on C{host} (any free
    ports; a C{bind} line in C{nodeSettings} overrides the gossip address),
    the extra C{[node]} lines C{nodeSettings}, and a static service
    C{serviceName} (by default C{svc-<name>}); stop it at cleanup.
    """
    directory = Path(case.mktemp())
    directory.mkdir()
    service = {"Name": serviceName or f"svc-{name}", "Ports": [{"Port": 9000}]}
    (directory / "static.json").write_text(json.dumps([{"Service": service}]))
    lines = ["[node]", f'name = "{name}"', *nodeSettings]
    if not any(line.startswith("bind") for line in nodeSettings):
        lines.append(f'bind = "{host}:0"')
    lines += ["[api]", f'listen = "{host}:0"']
    (directory / "node.toml").write_text("\n".join(lines) + "\n")
    node = makeService(loadConfig(directory / "node.toml"), reactor)
    node.startService()
    case.addCleanup(_stop, node)
    return node


async def _stop(node: SidecarNode) -> None:
    if node.running:
        await node.stopService()


def gossipPort(node: SidecarNode) -> int:
    """
    The port a running node gossips on.
    """
    assert node.gossip.tcpPort is not None
    return node.gossip.tcpPort.getHost().port  # type: ignore[attr-defined, no-any-return]
