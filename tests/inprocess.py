"""
Nodes built by L{makeService} inside the test's reactor, from a TOML file
written for the test, with one static service each.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

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
    targets: Sequence[dict[str, Any]] | None = None,
    moreSettings: Sequence[str] = (),
) -> SidecarNode:
    """
    Start a node called C{name} with gossip and API on C{host} (any free
    ports; a C{bind} line in C{nodeSettings} overrides the gossip address),
    the extra C{[node]} lines C{nodeSettings}, and the static file
    C{targets}: by default one service C{serviceName} (C{svc-<name>}) that
    is always healthy.  C{moreSettings} are lines for the configuration
    file after C{[node]} and C{[api]} (other sections).  Stop it at cleanup.
    """
    directory = Path(case.mktemp())
    directory.mkdir()
    if targets is None:
        service = {"Name": serviceName or f"svc-{name}", "Ports": [{"Port": 9000}]}
        targets = [{"Service": service, "Check": {"Type": "AlwaysSuccessful"}}]
    (directory / "static.json").write_text(json.dumps(list(targets)))
    lines = ["[node]", f'name = "{name}"', *nodeSettings]
    if not any(line.startswith("bind") for line in nodeSettings):
        lines.append(f'bind = "{host}:0"')
    lines += ["[api]", f'listen = "{host}:0"', *moreSettings]
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
