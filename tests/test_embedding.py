"""
Embedding a node in another Twisted program, as docs/embedding.md shows:
this test runs the document's own code block on the real reactor.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import treq
from twisted.internet import reactor
from twisted.trial.unittest import SynchronousTestCase, TestCase

import sidecar
from sidecar.catalog import Status

from .processes import REPO

DOC = REPO / "docs" / "embedding.md"


def embeddingExample() -> dict[str, Any]:
    """
    Execute the Python block of docs/embedding.md (not as __main__) and
    return its namespace.
    """
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.DOTALL)
    namespace: dict[str, Any] = {"__name__": "embedding_example"}
    exec(compile(blocks[0], str(DOC), "exec"), namespace)
    return namespace


class EmbeddingTests(TestCase):
    def setUp(self) -> None:
        directory = Path(self.mktemp())
        directory.mkdir()
        (directory / "static.json").write_text(
            json.dumps(
                [
                    {
                        "Service": {
                            "Name": "embedded-svc",
                            "Ports": [{"Port": 19000, "ServicePort": 10009}],
                        },
                        "Check": {"Type": "AlwaysSuccessful"},
                    }
                ]
            )
        )
        self.configPath = directory / "node.toml"
        self.configPath.write_text(
            '[node]\nname = "embedder"\nbind = "127.0.0.1:0"\n'
            '[api]\nlisten = "127.0.0.1:0"\n'
            '[discovery]\nstatic_file = "static.json"\n'
            '[health]\ninterval = "100ms"\n'
        )

    async def test_documentedEmbeddingRunsAndSeesTheCatalog(self) -> None:
        example = embeddingExample()
        node, changes = example["embedNode"](reactor, str(self.configPath))
        try:
            [service] = node.state.localServices()
            self.assertEqual(service.name, "embedded-svc")
            self.assertEqual(service.hostname, "embedder")
            # Announced before its first check has run.
            self.assertEqual(service.status, Status.UNKNOWN)
            self.assertEqual([e.service.name for e in changes.events], ["embedded-svc"])
            port = node.api.port.getHost().port
            response = await treq.get(
                f"http://127.0.0.1:{port}/api/services.json", persistent=False
            )
            body = await response.json()
            self.assertEqual(
                [s["ID"] for s in body["Services"]["embedded-svc"]], [service.id]
            )
        finally:
            await node.stopService()
        self.assertIsNone(node.api.port)

    async def test_documentedMainRunsToCompletion(self) -> None:
        example = embeddingExample()
        printed: list[str] = []
        example["print"] = lambda *args: printed.append(" ".join(map(str, args)))
        await example["main"](reactor, str(self.configPath))
        # Announced Unknown, then Alive after its first check.
        self.assertIn("2 change(s) seen", printed)
        pattern = r"embedder embedded-svc [0-9a-f]{12} Alive"
        self.assertTrue(any(re.fullmatch(pattern, line) for line in printed), printed)


class LazyNamesTests(SynchronousTestCase):
    def test_thePackageOffersTheNodeAndNothingElseItDoesNotHave(self) -> None:
        from sidecar.service import SidecarNode, makeService

        self.assertIs(sidecar.SidecarNode, SidecarNode)
        self.assertIs(sidecar.makeService, makeService)
        error = self.assertRaises(AttributeError, getattr, sidecar, "Nonesuch")
        self.assertEqual(str(error), "module 'sidecar' has no attribute 'Nonesuch'")
