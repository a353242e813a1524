"""
docs/docker-discovery.md's quick start, its commands run as written against
Docker's own engine (L{tests.dockerengine.DockerdEngine}), in the engine's
network namespace: the image is built from busybox, the node runs on
C{examples/docker/node.toml} with its HAProxy, a labelled container is
routed at 127.0.0.168:10001, and once removed it is not.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

from twisted.internet import reactor
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import TestCase

from .dockerengine import SYSTEM_PATH, dockerEngineSkipReason, startDockerEngine
from .processes import REPO, TWISTD_SIDECAR, NodeProcess, nodeEnvironment, pollUntil
from .test_haproxy import haproxySkipReason

DOC = REPO / "docs" / "docker-discovery.md"
NODE_COMMAND = ".venv/bin/twistd -n sidecar --config=examples/docker/node.toml"
GREETING = "hello from a container\n"


def quickStart() -> list[str]:
    """
    The shell blocks of the quick start, in order.
    """
    section = DOC.read_text().split("## Quick start\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)```", section, re.DOTALL)


def skipReason() -> str | None:
    for tool in ("docker", "curl"):
        if shutil.which(tool, path=SYSTEM_PATH) is None:
            return f"the quick start needs {tool} (Debian's docker.io, curl)"
    return dockerEngineSkipReason("docker") or haproxySkipReason()


class CommandFailed(Exception):
    """
    A command of the quick start exited with an error; the message has its
    output.
    """


class QuickStartTests(TestCase):
    skip = skipReason()

    async def shell(self, script: str) -> str:
        """
        Run C{script} with C{sh -e} as the reader would, in the test's
        directory, with Docker's engine at C{DOCKER_HOST}; return its output.
        """
        out, err, code = await getProcessOutputAndValue(
            "/bin/sh", ["-ec", script], env=self.environment, path=str(self.directory)
        )
        if code != 0:
            raise CommandFailed(f"{script!r} exited {code}: {(out + err).decode()}")
        return out.decode()

    async def test_theQuickStartRoutesALabelledContainer(self) -> None:
        engine = await startDockerEngine(self, "docker")
        self.directory = Path(self.mktemp()).resolve()
        self.directory.mkdir()
        self.environment = {
            **nodeEnvironment(),
            "DOCKER_HOST": engine.url,
            "PATH": SYSTEM_PATH,
        }
        image, node, run, check, remove = quickStart()

        await self.shell(image)
        *prepare, command = node.strip().splitlines()
        await self.shell("\n".join(prepare))
        self.assertEqual(command, NODE_COMMAND)
        process = NodeProcess()
        argv = [sys.executable, *TWISTD_SIDECAR, "--config=examples/docker/node.toml"]
        reactor.spawnProcess(  # type: ignore[attr-defined]
            process, argv[0], argv, env=self.environment, path=str(REPO)
        )
        self.addCleanup(process.stop)
        process.listening.addTimeout(30, reactor)
        await process.listening

        await self.shell(run)

        last: list[str] = []

        async def routed() -> str | None:
            try:
                output = await self.shell(check)
            except CommandFailed as e:
                last[:] = [str(e)]
                return None  # HAProxy does not listen on 10001 yet
            last[:] = [output]
            return output if output.startswith(GREETING) else None

        try:
            output = await pollUntil(routed, timeout=10, every=0.1)
        except TimeoutError as e:
            raise AssertionError(
                f"not routed: {last}\nthe node said:\n{process.describe()}"
            ) from e
        [hello] = json.loads(output[len(GREETING) :])["Services"]["hello"]
        [listed] = await engine.listContainers(filters={"name": "hello"})
        self.assertEqual(hello["ID"], listed["Id"][:12])
        self.assertEqual(hello["Status"], 0)
        self.assertEqual(
            hello["Ports"],
            [
                {
                    "Type": "tcp",
                    "Port": await engine.publishedPort(listed["Id"]),
                    "ServicePort": 10001,
                    "IP": "127.0.0.1",
                }
            ],
        )

        removeContainer, answer = remove.strip().splitlines()
        await self.shell(removeContainer)

        async def refused() -> bool | None:
            return True if await self.shell(answer) == "503\n" else None

        await pollUntil(refused, timeout=5, every=0.1)
