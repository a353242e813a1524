"""
The demo's machines, all on this one: host N is the loopback address
127.0.1.N, where its sidecar node gossips and serves its API and its
services listen, and its HAProxy binds 127.0.2.N.  Node 1 runs awesome-svc,
nodes 2 and 3 each run an instance of good-svc; each node publishes its
services from a static file.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twisted.internet import defer, reactor

from ..cli import requestJSON
from ..proxy.runtime import RuntimeAPI
from .processes import (
    ChildProcess,
    ListeningProcess,
    bindProblem,
    killTrees,
    spawn,
    startNode,
)

GOOD = "good-svc"
AWESOME = "awesome-svc"
GOOD_SERVICE_PORT = 10001
AWESOME_SERVICE_PORT = 10002
# The nodes' gossip timing: memberlist's for one machine's loopback.
PROFILE = "local"
# The longest path a UNIX socket (HAProxy's admin socket) may have on Linux.
MAX_SOCKET_PATH = 107
# How long a process may take to start answering.
START_TIMEOUT = 30.0


# The story's hosts: node 1 calls, nodes 2 and 3 answer.
HOSTS = (1, 2, 3)


@dataclass(frozen=True)
class Layout:
    """
    Where everything listens.  The ports are the same on every host.
    """

    gossipPort: int = 7946
    apiPort: int = 7777
    goodPort: int = 8001
    awesomePort: int = 8002

    def address(self, number: int) -> str:
        """
        Host C{number}'s address: its node's and its services'.
        """
        return f"127.0.1.{number}"

    def proxyAddress(self, number: int) -> str:
        """
        Where host C{number}'s HAProxy listens.
        """
        return f"127.0.2.{number}"

    def api(self, number: int) -> str:
        return f"http://{self.address(number)}:{self.apiPort}/api"

    def goodURL(self, number: int) -> str:
        """
        The good-svc instance of host C{number}, directly.
        """
        return f"http://{self.address(number)}:{self.goodPort}"

    def awesomeURL(self) -> str:
        """
        awesome-svc, directly (its call log).
        """
        return f"http://{self.address(1)}:{self.awesomePort}"

    def goodThroughProxy(self, number: int) -> str:
        """
        good-svc as a client on host C{number} reaches it: its HAProxy.
        """
        return f"http://{self.proxyAddress(number)}:{GOOD_SERVICE_PORT}/"

    def instance(self, number: int) -> str:
        return f"{GOOD}@node-{number}"

    def unavailable(self) -> list[str]:
        """
        Why each address this layout needs that cannot be bound now cannot.
        """
        wanted: list[tuple[str, int, bool]] = []
        for n in HOSTS:
            wanted += [
                (self.address(n), self.gossipPort, True),
                (self.address(n), self.apiPort, False),
                (self.address(n), self.goodPort if n > 1 else self.awesomePort, False),
                (self.proxyAddress(n), GOOD_SERVICE_PORT, False),
                (self.proxyAddress(n), AWESOME_SERVICE_PORT, False),
            ]
        problems = [bindProblem(host, port, udp=udp) for host, port, udp in wanted]
        return [problem for problem in problems if problem is not None]


class ServiceProcess(ListeningProcess[bool]):
    """
    One of L{sidecar.demo.apps}'s services; C{listening} fires once it says
    it is listening.
    """

    def heard(self, output: bytes) -> bool | None:
        return True if b" listening on " in output else None


class Host:
    """
    One demo machine: its node's configuration and static file in
    C{directory}, its services, its node and (the node's child) its HAProxy.
    """

    def __init__(
        self,
        layout: Layout,
        number: int,
        directory: Path,
    ) -> None:
        self.layout = layout
        self.number = number
        self.name = f"node-{number}"
        self.directory = directory
        # Every process started, in order, with its name.
        self.started: list[tuple[str, ChildProcess]] = []
        socket = directory / "haproxy.sock"
        if len(bytes(socket)) > MAX_SOCKET_PATH:
            raise ValueError(
                f"{socket}: longer than a UNIX socket's path may be "
                f"({MAX_SOCKET_PATH} bytes); use a shorter directory"
            )
        directory.mkdir(parents=True, exist_ok=True)
        self.runtime = RuntimeAPI(reactor, str(socket))
        (directory / "static.json").write_text(json.dumps(self._static(), indent=2))
        (directory / "node.toml").write_text(self._configuration())

    def _static(self) -> list[dict[str, Any]]:
        layout, address = self.layout, self.layout.address(self.number)
        if self.number == 1:
            name, port, servicePort = AWESOME, layout.awesomePort, AWESOME_SERVICE_PORT
        else:
            name, port, servicePort = GOOD, layout.goodPort, GOOD_SERVICE_PORT
        ports = [{"Type": "tcp", "Port": port, "ServicePort": servicePort}]
        return [
            {
                "Service": {
                    "Name": name,
                    "Image": f"demo/{name}:1",
                    "Ports": ports,
                    "ProxyMode": "http",
                },
                "Check": {"Type": "HttpGet", "Args": f"http://{address}:{port}/health"},
            }
        ]

    def _configuration(self) -> str:
        layout, n = self.layout, self.number
        others = [f'"{layout.address(k)}:{layout.gossipPort}"' for k in HOSTS if k != n]

        def path(name: str) -> str:
            # A TOML basic string, as JSON writes it.
            return json.dumps(str(self.directory / name))

        return f"""\
# The demo's node {n}; written by sidecar.demo.
[node]
name = "{self.name}"
bind = "{layout.address(n)}:{layout.gossipPort}"
seeds = [{", ".join(others)}]
profile = "{PROFILE}"

[api]
listen = "{layout.address(n)}:{layout.apiPort}"

[discovery]
backends = ["static"]
static_file = "static.json"

[health]
interval = "1s"
timeout = "1s"

[haproxy]
enabled = true
bind_ip = "{layout.proxyAddress(n)}"
config_file = {path("haproxy.cfg")}
pid_file = {path("haproxy.pid")}
admin_socket = {path("haproxy.sock")}
stats_listen = ""
maxconn = 256                 # within a small ulimit -n
allow_loopback_targets = true # every "host" of the demo is this machine
min_reload_interval = "0.2s"

[log]
format = "text"
"""

    def _serviceArguments(self) -> list[str]:
        layout, n = self.layout, self.number
        if n == 1:
            listen = f"{layout.address(n)}:{layout.awesomePort}"
            return [
                "awesome",
                f"--listen={listen}",
                f"--target={layout.goodThroughProxy(n)}",
            ]
        listen = f"{layout.address(n)}:{layout.goodPort}"
        return ["good", f"--listen={listen}", f"--instance={layout.instance(n)}"]

    async def start(self) -> None:
        """
        Start the host's service, then its node; return once both answer.
        """
        service = ServiceProcess()
        argv = [sys.executable, "-m", "sidecar.demo.apps", *self._serviceArguments()]
        spawn(service, argv, str(self.directory))
        self.started.append(("service", service))
        await service.listening.addTimeout(START_TIMEOUT, reactor)
        node = startNode(str(self.directory / "node.toml"), START_TIMEOUT)
        self.started.append(("node", node))
        await node.listening

    def logs(self) -> dict[str, bytes]:
        """
        What this host's processes wrote, by file name: every run of its
        node in C{node.log}, of its service in C{service.log}.
        """
        logs: dict[str, bytes] = {}
        for name, process in self.started:
            earlier = logs.get(f"{name}.log")
            restart = b"" if earlier is None else earlier + b"\n---- restarted ----\n"
            logs[f"{name}.log"] = restart + process.output + process.errors
        return logs

    def running(self) -> list[ChildProcess]:
        """
        This host's processes that have not ended.
        """
        return [p for _, p in self.started if not p.exited]

    async def crash(self) -> None:
        """
        The machine dies: SIGKILL its node, the node's HAProxy and its
        services, all at once.
        """
        running = self.running()
        killTrees([p.pid for p in running if p.pid is not None])
        await defer.gatherResults([p.ended for p in running])

    async def stop(self) -> None:
        """
        A clean shutdown: SIGTERM to the node (which stops its HAProxy and
        leaves the cluster) and to the services.
        """
        await defer.gatherResults([p.stop() for p in self.running()])

    async def rotation(
        self, service: str = GOOD, port: int = GOOD_SERVICE_PORT
    ) -> set[str]:
        """
        The C{address:port} of every server that this host's HAProxy sends
        C{service}'s requests to now (up, and not in maintenance or
        draining).
        """
        answer = await self.runtime.run(f"show servers state {service}-{port}")
        lines = answer.splitlines()
        header = next((line for line in lines if line.startswith("# be_id")), None)
        if header is None:
            return set()
        names = header[2:].split()
        servers = set()
        for line in lines[lines.index(header) + 1 :]:
            row = dict(zip(names, line.split(), strict=False))
            if row.get("srv_op_state") == "2" and row.get("srv_admin_state") == "0":
                servers.add(f"{row['srv_addr']}:{row['srv_port']}")
        return servers

    async def get(self, path: str) -> Any:
        """
        GET C{path} of this node's API, as JSON.
        """
        return await requestJSON("GET", f"{self.layout.api(self.number)}{path}", 5)
