"""
For the xDS tests: L{controlPlane}, one from a configuration file, and
L{record}, an instance for its catalog; and real gRPC programs:
L{EchoServer}, a gRPC server in this process that answers every call
with its own name, and L{XDSClient}, a child process whose gRPC channel
to C{xds:///<service>} is resolved by gRPC's own xDS client against our
control plane (the bootstrap file is read once per process, so the client
is a process of its own).  No generated application code: bytes in,
bytes out.
"""

from __future__ import annotations

import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.protocol import ProcessProtocol
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase

from sidecar.catalog import Port, Service, ServicesState, Status
from sidecar.config import loadConfig
from sidecar.problems import Problems
from sidecar.proxy.xds.build import EnvoyControlPlane, makeEnvoy

SECOND = 1_000_000_000
SERVICE = "that-service"

METHOD = "/sidecar.test.Echo/Who"
# How long one call, and one command of the client, may take.
CALL_TIMEOUT = 5.0
COMMAND_TIMEOUT = 30.0

_CLIENT = """
import json, sys, grpc
channel = grpc.insecure_channel(sys.argv[1])
# Resolve now, not at the first call: the control plane sees the client.
channel.subscribe(lambda state: None, try_to_connect=True)
who = channel.unary_unary(%r)
for line in sys.stdin:
    answers = []
    for _ in range(int(line)):
        try:
            answers.append(who(b"", timeout=%r, wait_for_ready=True).decode())
        except grpc.RpcError as e:
            answers.append("error: " + str(e.code()))
    print(json.dumps(answers), flush=True)
"""


def controlPlane(
    case: TestCase,
    state: ServicesState,
    lines: str = "",
    clock: Any = reactor,
    problems: Problems | None = None,
) -> EnvoyControlPlane:
    """
    A control plane on 127.0.0.1 (any port) following C{state}, from a
    configuration file with C{lines} after its sections; on C{clock},
    only the follower runs (nothing listens); its faults go to
    C{problems}.  Other
    hosts' instances may be on loopback (every "host" here is this one).
    Stopped at cleanup.
    """
    directory = Path(case.mktemp())
    directory.mkdir()
    (directory / "node.toml").write_text(
        f'[node]\nname = "{state.hostname}"\n'
        '[envoy]\nenabled = true\nlisten = "127.0.0.1:0"\n'
        'bind_ip = "127.0.0.168"\n'
        "[haproxy]\nallow_loopback_targets = true\n" + lines
    )
    config = loadConfig(directory / "node.toml", environ={})
    plane = makeEnvoy(config, state, None, clock, problems)
    part = plane if clock is reactor else plane.follower
    part.startService()
    case.addCleanup(lambda: part.stopService() if part.running else None)
    return plane


def record(
    state: ServicesState,
    serviceID: str,
    port: int,
    status: Status = Status.ALIVE,
    name: str = SERVICE,
    servicePort: int = 10001,
    mode: str = "http",
) -> Service:
    """
    Instance C{serviceID} of C{name} on host C{host-<id>} at
    C{127.0.0.1:port}, stamped now.
    """
    now = state.now()
    return Service(
        id=serviceID,
        name=name,
        image="echo:1",
        created=now - 60 * SECOND,
        hostname=f"host-{serviceID}",
        ports=(Port("tcp", port, servicePort, "127.0.0.1"),),
        updated=now,
        proxyMode=mode,
        status=status,
    )


class EchoServer:
    """
    A gRPC server on C{127.0.0.1:port} (any free port when 0) that answers
    L{METHOD} with C{name}.

    @ivar port: the bound port.
    """

    def __init__(self, name: str, port: int = 0) -> None:
        import grpc

        def who(request: bytes, context: Any) -> bytes:
            return name.encode()

        handler = grpc.method_handlers_generic_handler(
            "sidecar.test.Echo",
            {
                "Who": grpc.unary_unary_rpc_method_handler(
                    who,
                    request_deserializer=bytes,
                    response_serializer=bytes,
                )
            },
        )
        self._server = grpc.server(ThreadPoolExecutor(max_workers=4))
        self._server.add_generic_rpc_handlers((handler,))
        self.port = self._server.add_insecure_port(f"127.0.0.1:{port}")
        self._server.start()

    def stop(self) -> None:
        """
        Kill it: calls under way are cut off.
        """
        self._server.stop(None)


class _Lines(ProcessProtocol):
    def __init__(self) -> None:
        self.buffer = b""
        self.waiting: list[Deferred[list[str]]] = []
        self.ended: Deferred[None] = Deferred()
        self.errors = b""

    def outReceived(self, data: bytes) -> None:
        self.buffer += data
        while b"\n" in self.buffer:
            line, self.buffer = self.buffer.split(b"\n", 1)
            if self.waiting:
                self.waiting.pop(0).callback(json.loads(line))

    def errReceived(self, data: bytes) -> None:
        self.errors = (self.errors + data)[-4000:]

    def processEnded(self, reason: Failure) -> None:
        for waiting in self.waiting:
            waiting.errback(RuntimeError(f"client ended: {self.errors!r}"))
        self.waiting = []
        self.ended.callback(None)


class XDSClient:
    """
    A child process with one gRPC channel to C{xds:///<service>}, bootstrapped
    to the control plane at C{127.0.0.1:xdsPort} as node C{node}.
    """

    def __init__(self, directory: Path, xdsPort: int, service: str, node: str):
        bootstrap = directory / "bootstrap.json"
        bootstrap.write_text(
            json.dumps(
                {
                    "xds_servers": [
                        {
                            "server_uri": f"127.0.0.1:{xdsPort}",
                            "channel_creds": [{"type": "insecure"}],
                            "server_features": ["xds_v3"],
                        }
                    ],
                    "node": {"id": node, "locality": {"zone": "test"}},
                }
            )
        )
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith("GRPC_")
        }
        env["GRPC_XDS_BOOTSTRAP"] = str(bootstrap)
        self._lines = _Lines()
        self._process = reactor.spawnProcess(  # type: ignore[attr-defined]
            self._lines,
            sys.executable,
            [
                sys.executable,
                "-c",
                _CLIENT % (METHOD, CALL_TIMEOUT),
                f"xds:///{service}",
            ],
            env=env,
        )

    def call(self, count: int) -> Deferred[list[str]]:
        """
        Make C{count} calls, one after the other: who answered each (or
        C{error: <code>}).
        """
        answers: Deferred[list[str]] = Deferred()
        self._lines.waiting.append(answers)
        self._process.write(f"{count}\n".encode())
        return answers.addTimeout(COMMAND_TIMEOUT, reactor)

    def stop(self) -> Deferred[None]:
        """
        End the process (killed if it has not ended within 10 s); fires
        when it has ended.
        """
        ended: Deferred[None] = Deferred()
        if self._lines.ended.called:
            ended.callback(None)
            return ended
        kill = reactor.callLater(  # type: ignore[attr-defined]
            10, self._process.signalProcess, "KILL"
        )
        self._process.closeStdin()

        def done(result: object) -> object:
            if kill.active():
                kill.cancel()
            ended.callback(None)
            return result

        self._lines.ended.addCallback(done)
        return ended
