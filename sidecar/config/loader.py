"""
Reading the TOML file and the environment into a L{Config}.

Every key is declared once in L{KEYS}: its section, default, parser and
environment variable.  The loader, the errors and the documentation test all
work from that table.
"""

from __future__ import annotations

import difflib
import os
import socket
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from twisted.internet.ssl import PrivateCertificate

from .model import (
    ApiConfig,
    Config,
    DiscoveryConfig,
    EnvoyConfig,
    HaproxyConfig,
    HealthConfig,
    ListenersConfig,
    LogConfig,
    NodeConfig,
)
from .values import (
    Address,
    ValueProblem,
    listOf,
    oneOf,
    parseAddress,
    parseBool,
    parseDuration,
    parseEncryptKey,
    parseIP,
    parseKey,
    parseName,
    parsePath,
    parsePort,
    parsePositiveDuration,
    parsePositiveInt,
    parseRegex,
    parseSeed,
    parseString,
    parseURL,
    splitCommas,
)


class ConfigError(Exception):
    """
    A configuration problem, said in one line: C{<source>: <key>: <problem>}.

    @ivar source: the file's path, or C{environment VAR}.
    @ivar key: the key at fault (C{node.bind}), or L{None} for the file as
        a whole.
    @ivar problem: what is wrong.
    """

    def __init__(self, source: str, key: str | None, problem: str) -> None:
        super().__init__(source, key, problem)
        self.source = source
        self.key = key
        self.problem = problem

    def __str__(self) -> str:
        parts = [self.source, self.key, self.problem]
        return ": ".join(part for part in parts if part)


Values = dict[str, Any]
EnvOverride = Callable[[str, Values], Any]


@dataclass(frozen=True)
class Key:
    """
    One configuration key.

    @ivar default: the value when neither the file nor the environment
        gives one, already in parsed form.
    @ivar parse: turns a file value into the typed value.
    @ivar env: the Go Sidecar's environment variable that overrides it.
    @ivar fromEnv: how that variable's text becomes the typed value, given
        the values read so far; by default C{parse}.
    """

    section: str
    name: str
    default: Any
    parse: Callable[[Any], Any]
    env: str | None = None
    fromEnv: EnvOverride | None = None

    @property
    def path(self) -> str:
        return f"{self.section}.{self.name}"


def parseOptionalAddress(value: Any) -> str:
    text = parseString(value)
    return str(_listenAddress(text)) if text else ""


def _listenAddress(value: Any) -> Address:
    return parseAddress(value, minimumPort=0, ipOnly=True)


def _advertiseAddress(value: Any) -> Address:
    return parseAddress(value, minimumPort=1, ipOnly=True)


def _bindPort(text: str, values: Values) -> Address:
    return Address(values["node.bind"].host, parsePort(text))


def _advertiseIP(text: str, values: Values) -> Address:
    return Address(parseIP(text), values["node.bind"].port)


def _envoyPort(text: str, values: Values) -> Address:
    return Address(values["envoy.listen"].host, parsePort(text))


def _haproxyDisable(text: str, values: Values) -> bool:
    return not parseBool(text)


def _commaSeparated(parse: Callable[[Any], Any]) -> EnvOverride:
    def fromEnv(text: str, values: Values) -> Any:
        return parse(splitCommas(text))

    return fromEnv


def _goDuration(text: str, values: Values) -> float:
    # Go's time.ParseDuration takes a bare "0"; the Go Sidecar uses it.
    return 0.0 if text.strip() == "0" else parseDuration(text)


def _fromWorkingDirectory(text: str, values: Values) -> str:
    return os.path.abspath(text)


KEYS: tuple[Key, ...] = (
    Key("node", "name", None, parseName),
    Key("node", "cluster_name", "default", parseName, "SIDECAR_CLUSTER_NAME"),
    Key(
        "node",
        "bind",
        Address("0.0.0.0", 7946),
        _listenAddress,
        "SIDECAR_BIND_PORT",
        _bindPort,
    ),
    Key(
        "node",
        "advertise",
        None,
        _advertiseAddress,
        "SIDECAR_ADVERTISE_IP",
        _advertiseIP,
    ),
    Key(
        "node",
        "seeds",
        (),
        listOf(parseSeed),
        "SIDECAR_SEEDS",
        _commaSeparated(listOf(parseSeed)),
    ),
    Key("node", "encrypt_key", None, parseEncryptKey),
    Key("node", "extra_encrypt_keys", (), listOf(parseKey)),
    Key("node", "accept_unnamed_peers", False, parseBool),
    Key("node", "profile", "lan", oneOf("lan", "local", "wan")),
    Key(
        "node",
        "push_pull_interval",
        None,
        parseDuration,
        "SIDECAR_PUSH_PULL_INTERVAL",
        _goDuration,
    ),
    Key(
        "node",
        "max_clock_skew",
        30.0,
        parsePositiveDuration,
        "SIDECAR_MAX_CLOCK_SKEW",
    ),
    Key("api", "listen", Address("127.0.0.1", 7777), _listenAddress),
    Key("api", "max_connections", 256, parsePositiveInt),
    Key("api", "max_watchers", 64, parsePositiveInt),
    Key("api", "tls_cert", "", parseString),
    Key("api", "tls_key", "", parseString),
    Key("api", "token_file", "", parseString),
    Key(
        "discovery",
        "backends",
        ("static",),
        listOf(oneOf("static", "docker")),
        "SIDECAR_DISCOVERY",
        _commaSeparated(listOf(oneOf("static", "docker"))),
    ),
    Key(
        "discovery",
        "static_file",
        "static.json",
        parseString,
        "STATIC_CONFIG_FILE",
        _fromWorkingDirectory,
    ),
    Key(
        "discovery",
        "docker_url",
        "",
        parseString,
        "DOCKER_URL",
    ),
    Key("discovery", "static_poll_interval", 1.0, parseDuration),
    Key(
        "discovery",
        "docker_namer",
        "docker_label",
        oneOf("docker_label", "regex"),
        "SERVICES_NAMER",
    ),
    Key(
        "discovery",
        "docker_name_label",
        "ServiceName",
        parseName,
        "SERVICES_NAME_LABEL",
    ),
    Key("discovery", "docker_name_match", "", parseRegex, "SERVICES_NAME_MATCH"),
    Key("discovery", "docker_resync_interval", 5.0, parsePositiveDuration),
    Key("health", "interval", 3.0, parsePositiveDuration),
    Key("health", "timeout", 3.0, parsePositiveDuration),
    Key("health", "fall", 1, parsePositiveInt),
    Key("health", "concurrency", 100, parsePositiveInt),
    Key(
        "health",
        "default_check_endpoint",
        "/version",
        parsePath,
        "SIDECAR_DEFAULT_CHECK_ENDPOINT",
    ),
    Key("health", "damping", True, parseBool),
    Key("health", "external_from_labels", False, parseBool),
    Key("health", "external_commands", (), listOf(parsePath)),
    Key("haproxy", "enabled", False, parseBool, "HAPROXY_DISABLE", _haproxyDisable),
    Key("haproxy", "bind_ip", "192.168.168.168", parseIP, "HAPROXY_BIND_IP"),
    Key(
        "haproxy",
        "config_file",
        "/etc/haproxy/haproxy.cfg",
        parseString,
        "HAPROXY_CONFIG_FILE",
    ),
    Key("haproxy", "binary", "haproxy", parseString),
    Key("haproxy", "template", "", parseString),
    Key("haproxy", "manage_process", True, parseBool),
    Key("haproxy", "reload_command", "", parseString, "HAPROXY_RELOAD_COMMAND"),
    Key(
        "haproxy",
        "admin_socket",
        "/var/run/haproxy_stats.sock",
        parseString,
    ),
    Key("haproxy", "pid_file", "/var/run/haproxy.pid", parseString, "HAPROXY_PID_FILE"),
    Key("haproxy", "min_reload_interval", 1.0, parseDuration),
    Key("haproxy", "use_hostnames", False, parseBool, "HAPROXY_USE_HOSTNAMES"),
    Key("haproxy", "stats_listen", "0.0.0.0:3212", parseOptionalAddress),
    Key("haproxy", "user", "", parseString, "HAPROXY_USER"),
    Key("haproxy", "group", "", parseString, "HAPROXY_GROUP"),
    Key("haproxy", "maxconn", 4096, parsePositiveInt),
    Key("haproxy", "allow_loopback_targets", False, parseBool),
    Key("envoy", "enabled", False, parseBool, "ENVOY_USE_GRPC_API"),
    Key(
        "envoy",
        "listen",
        Address("127.0.0.1", 7776),
        _listenAddress,
        "ENVOY_GRPC_PORT",
        _envoyPort,
    ),
    Key("envoy", "bind_ip", "192.168.168.168", parseIP, "ENVOY_BIND_IP"),
    Key("envoy", "use_hostnames", False, parseBool, "ENVOY_USE_HOSTNAMES"),
    Key(
        "listeners",
        "urls",
        (),
        listOf(parseURL),
        "LISTENERS_URLS",
        _commaSeparated(listOf(parseURL)),
    ),
    Key(
        "log",
        "level",
        "info",
        oneOf("debug", "info", "warn", "error"),
        "SIDECAR_LOGGING_LEVEL",
    ),
    Key("log", "format", "text", oneOf("text", "json"), "SIDECAR_LOGGING_FORMAT"),
)
SECTIONS = tuple(dict.fromkeys(key.section for key in KEYS))


def loadConfig(
    path: str | os.PathLike[str] | None,
    environ: Mapping[str, str] = os.environ,
    hostname: str | None = None,
) -> Config:
    """
    Read a configuration: the file's values over the defaults, and the Go
    Sidecar's environment variables over both.

    @param path: the TOML file, or L{None} for defaults and environment.
    @param hostname: the default node name; the machine's hostname when
        L{None}.
    @raise ConfigError: naming the file (or variable), the key and the
        problem.
    """
    source = None if path is None else os.fspath(path)
    document = {} if source is None else _readTOML(source)
    values = _fileValues(document, source or "configuration")
    _applyEnvironment(values, environ)
    if values["node.name"] is None:
        values["node.name"] = hostname or socket.gethostname()
    staticFile = _besideTheFile(source, values["discovery.static_file"])
    template = values["haproxy.template"]
    if template:
        template = os.path.abspath(_besideTheFile(source, template))
    bind: Address = values["node.bind"]
    tlsCert, tlsKey, tokenFile = (
        values[key] and os.path.abspath(_besideTheFile(source, values[key]))
        for key in ("api.tls_cert", "api.tls_key", "api.token_file")
    )
    if values["node.extra_encrypt_keys"] and values["node.encrypt_key"] is None:
        raise ConfigError(
            source or "configuration",
            "node.extra_encrypt_keys",
            "extra keys need a primary key in node.encrypt_key",
        )
    if (
        values["discovery.docker_namer"] == "regex"
        and not values["discovery.docker_name_match"]
    ):
        raise ConfigError(
            source or "configuration",
            "discovery.docker_name_match",
            "the regex namer needs a pattern with a group for the name",
        )
    return Config(
        node=NodeConfig(
            name=values["node.name"],
            clusterName=values["node.cluster_name"],
            bind=bind,
            advertise=values["node.advertise"],
            seeds=tuple(
                Address(host, bind.port if port is None else port)
                for host, port in values["node.seeds"]
            ),
            encryptKey=values["node.encrypt_key"],
            extraEncryptKeys=values["node.extra_encrypt_keys"],
            acceptUnnamedPeers=values["node.accept_unnamed_peers"],
            profile=values["node.profile"],
            pushPullInterval=values["node.push_pull_interval"],
            maxClockSkew=values["node.max_clock_skew"],
        ),
        api=ApiConfig(
            listen=values["api.listen"],
            maxConnections=values["api.max_connections"],
            maxWatchers=values["api.max_watchers"],
            tlsCert=tlsCert,
            tlsKey=tlsKey,
            tokenFile=tokenFile,
            tlsPEM=_readTLS(source or "configuration", tlsCert, tlsKey),
            token=_readToken(source or "configuration", tokenFile),
        ),
        discovery=DiscoveryConfig(
            backends=values["discovery.backends"],
            staticFile=os.path.abspath(staticFile),
            dockerUrl=values["discovery.docker_url"],
            staticPollInterval=values["discovery.static_poll_interval"],
            dockerNamer=values["discovery.docker_namer"],
            dockerNameLabel=values["discovery.docker_name_label"],
            dockerNameMatch=values["discovery.docker_name_match"],
            dockerResyncInterval=values["discovery.docker_resync_interval"],
        ),
        health=HealthConfig(
            interval=values["health.interval"],
            timeout=values["health.timeout"],
            fall=values["health.fall"],
            concurrency=values["health.concurrency"],
            defaultCheckEndpoint=values["health.default_check_endpoint"],
            damping=values["health.damping"],
            externalFromLabels=values["health.external_from_labels"],
            externalCommands=values["health.external_commands"],
        ),
        haproxy=HaproxyConfig(
            enabled=values["haproxy.enabled"],
            bindIp=values["haproxy.bind_ip"],
            configFile=values["haproxy.config_file"],
            binary=values["haproxy.binary"],
            template=template,
            manageProcess=values["haproxy.manage_process"],
            reloadCommand=values["haproxy.reload_command"],
            adminSocket=values["haproxy.admin_socket"],
            pidFile=values["haproxy.pid_file"],
            minReloadInterval=values["haproxy.min_reload_interval"],
            useHostnames=values["haproxy.use_hostnames"],
            statsListen=values["haproxy.stats_listen"],
            maxconn=values["haproxy.maxconn"],
            user=values["haproxy.user"],
            group=values["haproxy.group"],
            allowLoopbackTargets=values["haproxy.allow_loopback_targets"],
        ),
        envoy=EnvoyConfig(
            enabled=values["envoy.enabled"],
            listen=values["envoy.listen"],
            bindIp=values["envoy.bind_ip"],
            useHostnames=values["envoy.use_hostnames"],
        ),
        listeners=ListenersConfig(urls=values["listeners.urls"]),
        log=LogConfig(level=values["log.level"], format=values["log.format"]),
        source=source,
    )


def _readTLS(source: str, certPath: str, keyPath: str) -> bytes | None:
    """
    The certificate and key for the API's TLS, checked to be a PEM
    certificate and its private key; L{None} when neither is set.
    """
    if not (certPath or keyPath):
        return None
    if not (certPath and keyPath):
        missing = "api.tls_key" if certPath else "api.tls_cert"
        raise ConfigError(
            source, missing, "TLS needs both api.tls_cert and api.tls_key"
        )
    pem = b""
    for key, path in (("api.tls_cert", certPath), ("api.tls_key", keyPath)):
        try:
            with open(path, "rb") as f:
                pem += f.read() + b"\n"
        except OSError as e:
            raise ConfigError(
                source, key, f"cannot read {path}: {e.strerror}"
            ) from None
    try:
        PrivateCertificate.loadPEM(pem)
    except Exception as e:
        raise ConfigError(
            source,
            "api.tls_cert",
            f"{certPath} and {keyPath} are not a PEM certificate and its key: {e}",
        ) from None
    return pem


def _readToken(source: str, path: str) -> bytes | None:
    """
    The bearer token writes need, from the first line of C{path}; L{None}
    when no file is set.
    """
    if not path:
        return None
    try:
        with open(path, "rb") as f:
            token = f.readline(4096).strip()
    except OSError as e:
        raise ConfigError(
            source, "api.token_file", f"cannot read {path}: {e.strerror}"
        ) from None
    if len(token) < 16 or not all(0x21 <= c <= 0x7E for c in token):
        raise ConfigError(
            source,
            "api.token_file",
            f"{path} must start with a token of at least 16 printable ASCII"
            " characters and no spaces",
        )
    return token


def _besideTheFile(source: str | None, path: str) -> str:
    # A relative path in the file is relative to the file's directory.
    if source is None or os.path.isabs(path):
        return path
    return os.path.join(os.path.dirname(os.path.abspath(source)), path)


def _readTOML(source: str) -> dict[str, Any]:
    try:
        with open(source, "rb") as f:
            return tomllib.load(f)
    except OSError as e:
        raise ConfigError(source, None, f"cannot read: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(source, None, f"invalid TOML: {e}") from None


def _fileValues(document: dict[str, Any], source: str) -> Values:
    keysBySection = {
        section: {key.name: key for key in KEYS if key.section == section}
        for section in SECTIONS
    }
    for section, table in document.items():
        if section not in keysBySection:
            raise ConfigError(
                source, section, f"unknown section{_suggest(section, SECTIONS)}"
            )
        if not isinstance(table, dict):
            raise ConfigError(source, section, f"expected a table, got {table!r}")
        for name in table:
            if name not in keysBySection[section]:
                raise ConfigError(
                    source,
                    f"{section}.{name}",
                    f"unknown key{_suggest(name, keysBySection[section])}",
                )
    values: Values = {}
    for key in KEYS:
        table = document.get(key.section, {})
        if key.name not in table:
            values[key.path] = key.default
            continue
        try:
            values[key.path] = key.parse(table[key.name])
        except ValueProblem as e:
            raise ConfigError(source, key.path, str(e)) from None
    return values


def _applyEnvironment(values: Values, environ: Mapping[str, str]) -> None:
    for key in KEYS:
        text = environ.get(key.env or "", "")
        if not key.env or not text.strip():
            continue
        try:
            if key.fromEnv is not None:
                values[key.path] = key.fromEnv(text, values)
            else:
                values[key.path] = key.parse(text)
        except ValueProblem as e:
            raise ConfigError(f"environment {key.env}", None, str(e)) from None


def _suggest(word: str, choices: Any) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" {word!r} (did you mean {close[0]!r}?)" if close else f" {word!r}"
