"""
The typed configuration a node is built from.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .values import Address

_ANY_HOST = ("0.0.0.0", "::", "")


@dataclass(frozen=True)
class NodeConfig:
    name: str
    clusterName: str
    bind: Address
    advertise: Address | None
    seeds: tuple[Address, ...]
    encryptKey: bytes | None
    extraEncryptKeys: tuple[bytes, ...] = ()
    acceptUnnamedPeers: bool = False
    profile: str = "lan"
    pushPullInterval: float | None = None
    maxClockSkew: float = 30.0

    @property
    def encryptKeys(self) -> tuple[bytes, ...]:
        """
        The gossip keyring: the primary key first, then the extra ones.
        """
        if self.encryptKey is None:
            return ()
        return (self.encryptKey, *self.extraEncryptKeys)

    @property
    def advertiseAddress(self) -> Address:
        """
        What peers use to reach this node: C{advertise} when set, else the
        bind address when it names one host, else 127.0.0.1 at the bind
        port (a wildcard bind says nothing about which address to give).
        """
        if self.advertise is not None:
            return self.advertise
        if self.bind.host not in _ANY_HOST:
            return self.bind
        return Address("127.0.0.1", self.bind.port)


@dataclass(frozen=True)
class ApiConfig:
    """
    @ivar tlsPEM: the certificate and key of C{tlsCert} and C{tlsKey},
        read and checked, or L{None} for plain HTTP.
    @ivar token: what C{tokenFile} holds, or L{None}: writes need no
        token.
    """

    listen: Address
    maxConnections: int
    maxWatchers: int = 64
    tlsCert: str = ""
    tlsKey: str = ""
    tokenFile: str = ""
    tlsPEM: bytes | None = field(default=None, repr=False)
    token: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True)
class DiscoveryConfig:
    backends: tuple[str, ...]
    staticFile: str
    dockerUrl: str
    staticPollInterval: float
    dockerNamer: str = "docker_label"
    dockerNameLabel: str = "ServiceName"
    dockerNameMatch: str = ""
    dockerResyncInterval: float = 5.0


@dataclass(frozen=True)
class HealthConfig:
    interval: float
    timeout: float
    fall: int
    concurrency: int
    defaultCheckEndpoint: str
    damping: bool
    externalFromLabels: bool = False
    externalCommands: tuple[str, ...] = ()


@dataclass(frozen=True)
class HaproxyConfig:
    enabled: bool
    bindIp: str
    configFile: str
    binary: str
    template: str = ""
    manageProcess: bool = True
    reloadCommand: str = ""
    adminSocket: str = "/var/run/haproxy_stats.sock"
    pidFile: str = "/var/run/haproxy.pid"
    minReloadInterval: float = 1.0
    useHostnames: bool = False
    statsListen: str = "0.0.0.0:3212"
    user: str = ""
    group: str = ""
    maxconn: int = 4096
    allowLoopbackTargets: bool = False


@dataclass(frozen=True)
class EnvoyConfig:
    """
    The xDS control plane for Envoy and proxyless gRPC clients.

    @ivar listen: where its gRPC server listens.
    @ivar bindIp: the IP Envoy's listeners bind, with each ServicePort.
    @ivar useHostnames: address endpoints by their host's name (Envoy
        resolves it) rather than the port's IP.
    """

    enabled: bool = False
    listen: Address = Address("127.0.0.1", 7776)
    bindIp: str = "192.168.168.168"
    useHostnames: bool = False


@dataclass(frozen=True)
class ListenersConfig:
    urls: tuple[str, ...]


@dataclass(frozen=True)
class LogConfig:
    level: str
    format: str


@dataclass(frozen=True)
class Config:
    """
    A whole node's configuration.

    @ivar source: the file it was read from, or L{None}.
    """

    node: NodeConfig
    api: ApiConfig
    discovery: DiscoveryConfig
    health: HealthConfig
    haproxy: HaproxyConfig
    listeners: ListenersConfig
    log: LogConfig
    source: str | None = None
    envoy: EnvoyConfig = EnvoyConfig()
