"""
The real Go Sidecar (Nitro/sidecar with its memberlist fork) as a peer for
a test, in a private network namespace.

The Go node binds C{0.0.0.0:7777} and C{0.0.0.0:<gossip port>} and names
itself after the hostname, so a test never runs it in the machine's own
network: L{privateNetwork} moves the reactor's thread (the test's own
sockets, and every child it spawns) into a fresh network namespace with
only C{lo} up, and back at cleanup.  Sockets keep the namespace they were
made in, so nodes started in a test (in process, or as children) stay
there.  Each Go node runs in its own UTS namespace too, with hostname
C{go-N}.

A Go node's API port is fixed, so only one fits a network namespace: the
first runs in the test's (at 127.0.0.1), and L{PrivateNetwork.addHost}
makes another namespace for each further one, joined to the test's by a
veth pair that carries loopback addresses (C{route_localnet}): host N is
127.1.0.N, and the test's namespace keeps only 127.0.0.0/16 on C{lo} and
forwards between hosts.  A host may have more addresses (its proxy IP).

The binary is found through C{SIDECAR_GO_BINARY}, which C{.ci/run} sets
after building it with C{../shared/go-sidecar/build}; without it the tests
skip, saying so.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tarfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import treq
from twisted.internet import reactor
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import TestCase

from sidecar.demo.processes import (
    TWISTD_SIDECAR,
    ChildProcess,
    NodeProcess,
    nodeEnvironment,
)

from .netns import newNetwork
from .processes import REPO, pollUntil

GO_BINARY_VARIABLE = "SIDECAR_GO_BINARY"
GO_API_PORT = 7777
GO_GOSSIP_PORT = 7946
GO_HOST = "127.0.0.1"
REFUTED = "Refuting a suspect message"
# The Go Sidecar's sources, beside the checkout as in CI (for its HAProxy
# template), and the template's path in them.
GO_SOURCES = REPO.parent / "shared" / "go-sidecar" / "go-sidecar-src.tar.xz"
GO_TEMPLATE = "./github.com/Nitro/sidecar/views/haproxy.cfg"


def goBinary() -> str | None:
    """
    The Go Sidecar's binary from C{SIDECAR_GO_BINARY}, or L{None}.
    """
    path = os.environ.get(GO_BINARY_VARIABLE)
    if path and os.access(path, os.X_OK):
        return path
    return None


def goSkipReason() -> str | None:
    """
    Why tests with the Go Sidecar must skip (for a C{skip} attribute), or
    L{None} when they can run.
    """
    if goBinary() is None:
        return (
            f"the Go Sidecar is not built: set {GO_BINARY_VARIABLE} to the "
            "binary that ../shared/go-sidecar/build makes (.ci/run does)"
        )
    if os.geteuid() != 0:
        return "the Go Sidecar runs in private network namespaces: needs root"
    for tool, package in (("unshare", "util-linux"), ("nsenter", "util-linux")):
        if not Path(f"/usr/bin/{tool}").exists():
            return f"the Go Sidecar's namespaces need /usr/bin/{tool} ({package})"
    if shutil.which("ip", path="/usr/sbin:/usr/bin:/sbin:/bin") is None:
        return "the Go Sidecar's namespaces need `ip` (iproute2)"
    return None


def privateNetwork(case: TestCase) -> PrivateNetwork:
    """
    Move the calling (reactor) thread into a new network namespace with
    only C{lo}, up, for the rest of C{case}; it returns to its own
    namespace at cleanup, after every later cleanup has run.
    """
    newNetwork(case)
    return PrivateNetwork(case)


async def _shell(script: str) -> None:
    """
    Run C{script} with C{/bin/sh -e} in the reactor thread's namespace.
    """
    out, err, code = await getProcessOutputAndValue(
        "/bin/sh", ["-ec", script], env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    )
    if code != 0:
        raise RuntimeError(f"network setup failed ({code}): {(out + err).decode()}")


def _mac(device: str, inNamespace: str = "") -> str:
    """
    A shell expression for C{device}'s MAC address (in the namespace
    C{inNamespace} names, a C{nsenter} prefix, if given).
    """
    return (
        f"$({inNamespace} ip -o link show {device} "
        "| grep -o 'link/ether [0-9a-f:]*' | cut -d' ' -f2)"
    )


def _routeLocalnet(device: str, inNamespace: str = "") -> str:
    """
    Shell lines that let C{device} (and every device) route loopback
    addresses, with no reverse-path filter (in the namespace C{inNamespace}
    names, a C{nsenter} prefix, if given).
    """
    writes = "; ".join(
        f"echo {value} > /proc/sys/net/ipv4/conf/{each}/{key}"
        for each in ("all", device)
        for key, value in (("route_localnet", 1), ("rp_filter", 0))
    )
    return f"{inNamespace} /bin/sh -c '{writes}'\n"


class PrivateNetwork:
    """
    The test's network namespace, to which L{addHost} joins more.
    """

    def __init__(self, case: TestCase) -> None:
        self._case = case
        self._hosts = 0

    async def addHost(self, aliases: Sequence[str] = ()) -> GoHost:
        """
        Another network namespace with its own loopback address, and the
        loopback addresses C{aliases} (outside 127.0.0.0/16) too,
        reachable from the test's and from other hosts, and reaching them
        (see the module's docstring).
        """
        if self._hosts == 0:
            await _shell(
                "ip route del local 127.0.0.0/8 dev lo table local\n"
                "ip route add local 127.0.0.0/16 dev lo table local\n"
                "echo 1 > /proc/sys/net/ipv4/ip_forward\n" + _routeLocalnet("lo")
            )
        self._hosts += 1
        index = self._hosts + 1
        holder = ChildProcess()
        argv = ["/usr/bin/unshare", "-n", "/bin/sleep", "infinity"]
        reactor.spawnProcess(holder, argv[0], argv, env={})  # type: ignore[attr-defined]
        self._case.addCleanup(_kill, holder)
        own = os.stat("/proc/thread-self/ns/net").st_ino

        async def unshared() -> bool | None:
            try:
                theirs = os.stat(f"/proc/{holder.pid}/ns/net").st_ino
            except OSError:
                return None
            return True if theirs != own else None

        await pollUntil(unshared, timeout=10, every=0.02)
        host = GoHost(f"127.1.0.{index}", f"/proc/{holder.pid}/ns/net")
        there = f"nsenter --net={host.namespace}"
        veth = f"vgo{index}"
        addresses = [host.address, *aliases]
        await _shell(
            f"ip link add {veth} type veth peer name eth0 netns {host.namespace}\n"
            f"ip link set {veth} up\n"
            + _routeLocalnet(veth)
            + "".join(
                f"ip route add {address}/32 dev {veth} src 127.0.0.1\n"
                f"ip neigh replace {address} lladdr {_mac('eth0', there)}"
                f" dev {veth} nud permanent\n"
                for address in addresses
            )
            + _routeLocalnet("eth0", there)
            # Its own addresses are delivered through lo, which must be up,
            # and must not hold 127.0.0.1/8: that is the test's namespace.
            + f"{there} ip link set lo up\n"
            f"{there} ip addr del 127.0.0.1/8 dev lo\n"
            f"{there} ip link set eth0 up\n"
            + "".join(
                f"{there} ip addr add {address}/32 dev eth0\n" for address in addresses
            )
            + f"{there} ip route add 127.0.0.0/8 via 127.0.0.1 dev eth0 onlink"
            f" src {host.address}\n"
            f"{there} ip neigh replace 127.0.0.1 lladdr {_mac(veth)}"
            " dev eth0 nud permanent"
        )
        return host


class GoHost:
    """
    A network namespace of its own for a Go node: its C{address}, and the
    C{namespace} file to enter it by.
    """

    def __init__(self, address: str, namespace: str) -> None:
        self.address = address
        self.namespace = namespace


def goSourcesSkipReason() -> str | None:
    """
    Why tests that need the Go Sidecar's sources (its HAProxy template)
    must skip, or L{None}.
    """
    if not GO_SOURCES.exists():
        return (
            f"the Go Sidecar's sources are not at {GO_SOURCES}"
            " (shared/ beside the checkout, as in CI)"
        )
    return None


def goHAProxyTemplate(destination: Path, adminSocket: str) -> Path:
    """
    Write the Go Sidecar's own HAProxy template (from L{GO_SOURCES}) to
    C{destination}, with its C{stats socket} at C{adminSocket} (the Go
    template's path, C{/var/run/haproxy_stats.sock}, is one per machine)
    and C{expose-fd listeners}, as docs/migrating.md tells an operator to
    add: the listening sockets can then be handed over.
    """
    with tarfile.open(GO_SOURCES) as sources:
        member = sources.extractfile(GO_TEMPLATE)
        assert member is not None, GO_TEMPLATE
        text = member.read().decode()
    line = re.compile(r"^(\s*stats\s+socket)\s+\S+(.*?)\s*$", re.MULTILINE)
    text, found = line.subn(
        lambda m: f"{m.group(1)} {adminSocket}{m.group(2)} expose-fd listeners", text
    )
    assert found == 1, "the Go template's stats socket line was not found"
    destination.write_text(text)
    return destination


class GoNode(ChildProcess):
    """
    One Go Sidecar process, started by L{startGoNode}.

    @ivar hostname: its hostname, which is its member name.
    @ivar api: its API's base URL (C{http://127.0.0.1:7777/api}).
    """

    def __init__(
        self, hostname: str, host: str, gossipPort: int, environment: dict[str, str]
    ) -> None:
        super().__init__()
        self.hostname = hostname
        self.host = host
        self.gossipPort = gossipPort
        self.environment = environment
        self.api = f"http://{host}:{GO_API_PORT}/api"

    @property
    def address(self) -> str:
        return f"{self.host}:{self.gossipPort}"

    def logCount(self, pattern: str) -> int:
        """
        How many lines of its log (logrus, on stderr) match C{pattern}.
        """
        found = re.compile(pattern)
        return sum(1 for line in self.describe().splitlines() if found.search(line))

    async def get(self, path: str) -> Any:
        """
        GET C{path} under its API and decode the JSON.
        """
        response = await treq.get(f"{self.api}{path}", persistent=False, timeout=5)
        return json.loads(await response.content())

    async def services(self) -> dict[str, dict[str, Any]]:
        """
        Every record it holds, by instance ID (from its C{state.json}).
        """
        state = await self.get("/state.json")
        return {
            record["ID"]: record
            for server in (state.get("Servers") or {}).values()
            for record in (server.get("Services") or {}).values()
        }

    async def drain(self, serviceID: str) -> None:
        response = await treq.post(
            f"{self.api}/services/{serviceID}/drain", persistent=False, timeout=5
        )
        await response.content()
        if response.code >= 300:
            raise RuntimeError(f"the Go node refused to drain: {response.code}")


async def startGoNode(
    case: TestCase,
    seeds: list[str],
    hostname: str = "go-1",
    services: list[dict[str, Any]] | None = None,
    clusterName: str = "default",
    gossipPort: int = GO_GOSSIP_PORT,
    timeout: float = 30,
    host: GoHost | None = None,
    environment: Mapping[str, str] | None = None,
) -> GoNode:
    """
    Start a Go node in the test's private network (see L{privateNetwork}),
    or in C{host}'s, with hostname C{hostname}, gossiping on C{gossipPort}
    and advertising 127.0.0.1 (or C{host}'s address), joining through
    C{seeds} (C{host:port}; its own address is fine for the first node),
    with the static discovery file C{services} (Go's format), and the
    variables C{environment} over those (e.g. C{HAPROXY_*}).  Return once
    its API answers; kill it at cleanup.
    """
    binary = goBinary()
    assert binary is not None, goSkipReason()
    directory = Path(case.mktemp()).resolve()
    directory.mkdir()
    static = directory / "static.json"
    static.write_text(json.dumps(services or []))
    variables = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "SIDECAR_CLUSTER_NAME": clusterName,
        "SIDECAR_BIND_PORT": str(gossipPort),
        "SIDECAR_ADVERTISE_IP": GO_HOST if host is None else host.address,
        "SIDECAR_SEEDS": ",".join(seeds),
        "SIDECAR_DISCOVERY": "static",
        "STATIC_CONFIG_FILE": str(static),
        "HAPROXY_DISABLE": "true",
        "ENVOY_USE_GRPC_API": "false",
        "SIDECAR_LOGGING_LEVEL": "info",
        **(environment or {}),
    }
    node = GoNode(hostname, variables["SIDECAR_ADVERTISE_IP"], gossipPort, variables)
    argv = _onHost(host, hostname, [binary])
    reactor.spawnProcess(  # type: ignore[attr-defined]
        node, argv[0], argv, env=variables, path=str(directory)
    )
    case.addCleanup(_kill, node)

    async def answers() -> bool | None:
        if node.exited:
            raise RuntimeError(f"the Go node exited:\n{node.describe()}")
        try:
            await node.get("/state.json")
        except Exception:
            return None
        return True

    await pollUntil(answers, timeout=timeout, every=0.2)
    return node


def _onHost(host: GoHost | None, hostname: str, argv: list[str]) -> list[str]:
    """
    C{argv} run in C{host}'s network namespace (or the test's), in a UTS
    namespace of its own whose hostname is C{hostname}.
    """
    enter = [] if host is None else ["/usr/bin/nsenter", f"--net={host.namespace}"]
    return [
        *enter,
        "/usr/bin/unshare",
        "-u",
        "/bin/sh",
        "-c",
        'hostname "$0" && exec "$@"',
        hostname,
        *argv,
    ]


async def startOursInPlaceOf(
    case: TestCase, go: GoNode, host: GoHost | None, settings: Sequence[str]
) -> NodeProcess:
    """
    Start our node (C{twistd -n sidecar}) where C{go} ran, as an operator
    would: on the same host, with the same hostname (so the same member
    name) and the same environment (the Go Sidecar's variables, its static
    file), and the configuration file lines C{settings} for what has no
    variable.  Return once its API listens; stop it at cleanup.
    """
    directory = Path(case.mktemp()).resolve()
    directory.mkdir()
    config = directory / "node.toml"
    config.write_text("\n".join(settings) + "\n")
    node = NodeProcess()
    environment = {**nodeEnvironment(), **go.environment}
    argv = _onHost(
        host,
        go.hostname,
        [sys.executable, *TWISTD_SIDECAR, f"--config={config}"],
    )
    reactor.spawnProcess(  # type: ignore[attr-defined]
        node, argv[0], argv, env=environment, path=str(directory)
    )
    case.addCleanup(node.stop)
    await node.listening.addTimeout(30, reactor)
    return node


async def _kill(node: ChildProcess) -> None:
    node.signal("KILL")
    await node.ended
