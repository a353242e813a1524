"""
Running a real C{twistd -n sidecar} process for a test, with bounded waits.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

from twisted.internet import defer, protocol, reactor
from twisted.internet.error import ProcessDone
from twisted.python.failure import Failure

REPO = Path(__file__).resolve().parent.parent
TWISTD = ["-c", "from twisted.scripts.twistd import run; run()"]
_API_LINE = re.compile(rb"status API on http://([^:/]+):(\d+)/api/")


def twistdEnvironment() -> dict[str, str]:
    """
    The test's environment, without the Go Sidecar's variables (which
    would override the test's configuration), and with this checkout first
    on the path so that its plugin and package are the ones run.
    """
    environ = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SIDECAR_", "HAPROXY_", "LISTENERS_", "STATIC_"))
        and k != "DOCKER_URL"
    }
    environ["PYTHONPATH"] = os.pathsep.join(
        [str(REPO)] + [p for p in [os.environ.get("PYTHONPATH")] if p]
    )
    return environ


class NodeProcess(protocol.ProcessProtocol):
    """
    A twistd sidecar process.  C{listening} fires with the API's port once
    the node logs it; C{ended} fires with the exit code.
    """

    def __init__(self) -> None:
        self.output = b""
        self.errors = b""
        self.listening: defer.Deferred[int] = defer.Deferred()
        self.ended: defer.Deferred[int | None] = defer.Deferred()

    def outReceived(self, data: bytes) -> None:
        self.output += data
        port = _apiPort(self.output)
        if port is not None and not self.listening.called:
            self.listening.callback(port)

    def errReceived(self, data: bytes) -> None:
        self.errors += data

    def processEnded(self, reason: Failure) -> None:
        code = 0 if reason.check(ProcessDone) else reason.value.exitCode
        if not self.listening.called:
            self.listening.errback(
                RuntimeError(
                    f"twistd exited ({code}) before listening:\n"
                    f"{self.output.decode()}{self.errors.decode()}"
                )
            )
        self.ended.callback(code)


def _apiPort(output: bytes) -> int | None:
    """
    The API's port from the node's log, in text or JSON lines.
    """
    match = _API_LINE.search(output)
    if match:
        return int(match.group(2))
    for line in output.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if str(event.get("log_format", "")).startswith("status API on"):
            return int(event["port"])
    return None


def startNode(configPath: str, timeout: float = 30) -> NodeProcess:
    """
    Start C{twistd -n sidecar --config=configPath}; C{listening} times out
    after C{timeout} seconds.
    """
    node = NodeProcess()
    reactor.spawnProcess(  # type: ignore[attr-defined]
        node,
        sys.executable,
        [
            sys.executable,
            *TWISTD,
            "-n",
            "--pidfile=",
            "sidecar",
            f"--config={configPath}",
        ],
        env=twistdEnvironment(),
        path=str(Path(configPath).parent),
    )
    node.listening.addTimeout(timeout, reactor)
    node.ended.addTimeout(timeout * 2, reactor)
    return node
