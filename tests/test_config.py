"""
Reading the configuration: defaults, the file, the Go Sidecar's environment
variables, and a one-line error for every kind of mistake.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from sidecar.config import (
    KEYS,
    Address,
    ConfigError,
    HealthConfig,
    loadConfig,
    parseDuration,
)
from sidecar.proxy.build import admission
from sidecar.service import makeService

from .certs import makeTLSFiles
from .doubles import MemoryReactorWithUDP
from .processes import REPO


class ConfigTestCase(SynchronousTestCase):
    def write(self, text: str) -> str:
        directory = Path(self.mktemp()).resolve()
        directory.mkdir()
        path = directory / "node.toml"
        path.write_text(text)
        return str(path)

    def load(self, text: str, **environ: str):  # type: ignore[no-untyped-def]
        return loadConfig(self.write(text), environ=environ, hostname="this-host")

    def assertError(
        self, text: str, key: str | None, *fragments: str, **environ: str
    ) -> ConfigError:
        path = self.write(text)
        error = self.assertRaises(
            ConfigError, loadConfig, path, environ=environ, hostname="h"
        )
        self.assertEqual(error.key, key)
        message = str(error)
        self.assertEqual(len(message.splitlines()), 1, message)
        if not any(name.isupper() for name in environ):
            self.assertTrue(message.startswith(f"{path}: "), message)
        for fragment in fragments:
            self.assertIn(fragment, message)
        return error


class DefaultsTests(ConfigTestCase):
    def test_emptyFileGivesTheDocumentedDefaults(self) -> None:
        config = self.load("")
        self.assertEqual(config.node.name, "this-host")
        self.assertEqual(config.node.clusterName, "default")
        self.assertEqual(config.node.bind, Address("0.0.0.0", 7946))
        self.assertIsNone(config.node.advertise)
        self.assertEqual(config.node.seeds, ())
        self.assertIsNone(config.node.encryptKey)
        self.assertEqual(config.api.listen, Address("127.0.0.1", 7777))
        self.assertEqual(config.api.maxConnections, 256)
        self.assertEqual(config.api.maxWatchers, 64)
        self.assertEqual(config.discovery.backends, ("static",))
        self.assertEqual(config.discovery.dockerUrl, "")
        self.assertEqual(config.discovery.dockerNamer, "docker_label")
        self.assertEqual(config.discovery.dockerNameLabel, "ServiceName")
        self.assertEqual(config.discovery.dockerResyncInterval, 5.0)
        self.assertEqual(config.discovery.staticPollInterval, 1.0)
        self.assertFalse(config.haproxy.enabled)
        self.assertEqual(config.haproxy.bindIp, "192.168.168.168")
        self.assertEqual(config.haproxy.configFile, "/etc/haproxy/haproxy.cfg")
        self.assertEqual(config.haproxy.binary, "haproxy")
        self.assertEqual(config.listeners.urls, ())
        self.assertEqual((config.log.level, config.log.format), ("info", "text"))
        self.assertEqual(
            config.health, HealthConfig(3.0, 3.0, 1, 100, "/version", damping=True)
        )

    def test_noFileGivesDefaultsAndEnvironment(self) -> None:
        config = loadConfig(None, environ={"SIDECAR_CLUSTER_NAME": "c"}, hostname="h")
        self.assertEqual(config.node.clusterName, "c")
        self.assertIsNone(config.source)

    def test_staticFileIsRelativeToTheConfigurationFile(self) -> None:
        path = self.write('[discovery]\nstatic_file = "services/static.json"\n')
        config = loadConfig(path, environ={}, hostname="h")
        self.assertEqual(
            config.discovery.staticFile,
            str(Path(path).parent / "services" / "static.json"),
        )


class FileTests(ConfigTestCase):
    def test_everyKeyIsRead(self) -> None:
        key = base64.b64encode(b"k" * 32).decode()
        other = base64.b64encode(b"o" * 16).decode()
        config = self.load(
            "[node]\n"
            'name = "host-a"\ncluster_name = "prod"\nbind = "127.0.1.1:7000"\n'
            'advertise = "127.0.1.1:7000"\n'
            'seeds = ["127.0.1.2:7001", "127.0.1.3", "seed.example", "::1"]\n'
            f'encrypt_key = "{key}"\n'
            f'extra_encrypt_keys = ["{other}"]\n'
            "accept_unnamed_peers = true\n"
            'profile = "wan"\n'
            'push_pull_interval = "20s"\n'
            '[api]\nlisten = "[::1]:0"\nmax_connections = 64\nmax_watchers = 8\n'
            '[discovery]\nbackends = ["static", "docker"]\n'
            'static_file = "/srv/static.json"\ndocker_url = "tcp://127.0.0.1:2375"\n'
            'static_poll_interval = "1m30s"\n'
            'docker_namer = "regex"\ndocker_name_match = "^/(.+)-\\\\d+$"\n'
            'docker_name_label = "app"\ndocker_resync_interval = "30s"\n'
            '[health]\ninterval = "1s"\ntimeout = "500ms"\nfall = 3\n'
            'concurrency = 20\ndefault_check_endpoint = "/healthz"\n'
            "damping = false\nexternal_from_labels = true\n"
            'external_commands = ["/usr/lib/nagios/plugins/*"]\n'
            '[haproxy]\nenabled = true\nbind_ip = "127.0.0.168"\n'
            'config_file = "/tmp/h.cfg"\nbinary = "/usr/sbin/haproxy"\n'
            'template = "haproxy.cfg.j2"\nmanage_process = false\n'
            'reload_command = "systemctl reload haproxy"\n'
            'admin_socket = "/tmp/h.sock"\npid_file = "/tmp/h.pid"\n'
            'min_reload_interval = "2s"\nuse_hostnames = true\n'
            'stats_listen = ""\nuser = "haproxy"\ngroup = "haproxy"\nmaxconn = 512\n'
            "allow_loopback_targets = true\n"
            '[listeners]\nurls = ["http://127.0.0.1:9000/events"]\n'
            '[log]\nlevel = "debug"\nformat = "json"\n'
        )
        self.assertEqual(config.node.name, "host-a")
        self.assertEqual(config.node.clusterName, "prod")
        self.assertEqual(config.node.bind, Address("127.0.1.1", 7000))
        self.assertEqual(
            config.node.seeds,
            (
                Address("127.0.1.2", 7001),
                Address("127.0.1.3", 7000),
                Address("seed.example", 7000),
                Address("::1", 7000),
            ),
        )
        self.assertEqual(config.node.encryptKey, b"k" * 32)
        self.assertEqual(config.node.encryptKeys, (b"k" * 32, b"o" * 16))
        self.assertTrue(config.node.acceptUnnamedPeers)
        self.assertEqual(config.node.profile, "wan")
        self.assertEqual(config.node.pushPullInterval, 20.0)
        self.assertEqual(config.api.listen, Address("::1", 0))
        self.assertEqual(str(config.api.listen), "[::1]:0")
        self.assertEqual(config.api.maxConnections, 64)
        self.assertEqual(config.api.maxWatchers, 8)
        self.assertEqual(config.discovery.backends, ("static", "docker"))
        self.assertEqual(config.discovery.staticFile, "/srv/static.json")
        self.assertEqual(config.discovery.staticPollInterval, 90.0)
        self.assertEqual(
            (config.discovery.dockerNamer, config.discovery.dockerNameMatch),
            ("regex", r"^/(.+)-\d+$"),
        )
        self.assertEqual(config.discovery.dockerNameLabel, "app")
        self.assertEqual(config.discovery.dockerResyncInterval, 30.0)
        self.assertEqual(
            config.health,
            HealthConfig(
                1.0,
                0.5,
                3,
                20,
                "/healthz",
                damping=False,
                externalFromLabels=True,
                externalCommands=("/usr/lib/nagios/plugins/*",),
            ),
        )
        self.assertTrue(config.haproxy.enabled)
        self.assertEqual(config.haproxy.bindIp, "127.0.0.168")
        self.assertEqual(
            config.haproxy.template,
            str(Path(config.source or "").parent / "haproxy.cfg.j2"),
        )
        self.assertFalse(config.haproxy.manageProcess)
        self.assertEqual(config.haproxy.reloadCommand, "systemctl reload haproxy")
        self.assertEqual(
            (config.haproxy.adminSocket, config.haproxy.pidFile),
            ("/tmp/h.sock", "/tmp/h.pid"),
        )
        self.assertEqual(config.haproxy.minReloadInterval, 2.0)
        self.assertTrue(config.haproxy.useHostnames)
        self.assertEqual(config.haproxy.statsListen, "")
        self.assertEqual((config.haproxy.user, config.haproxy.group), ("haproxy",) * 2)
        self.assertEqual(config.haproxy.maxconn, 512)
        self.assertTrue(config.haproxy.allowLoopbackTargets)
        self.assertEqual(config.listeners.urls, ("http://127.0.0.1:9000/events",))
        self.assertEqual((config.log.level, config.log.format), ("debug", "json"))

    def test_advertiseAddressFallsBackToBindThenLoopback(self) -> None:
        explicit = self.load('[node]\nadvertise = "127.0.1.9:7946"\n')
        self.assertEqual(explicit.node.advertiseAddress, Address("127.0.1.9", 7946))
        bound = self.load('[node]\nbind = "127.0.1.4:7000"\n')
        self.assertEqual(bound.node.advertiseAddress, Address("127.0.1.4", 7000))
        wildcard = self.load('[node]\nbind = "0.0.0.0:7000"\n')
        self.assertEqual(wildcard.node.advertiseAddress, Address("127.0.0.1", 7000))


class EnvironmentTests(ConfigTestCase):
    def test_aZeroPushPullIntervalMeansGosDefault(self) -> None:
        config = self.load("", SIDECAR_PUSH_PULL_INTERVAL="0")
        self.assertEqual(config.node.pushPullInterval, 0.0)
        node = makeService(config, MemoryReactorWithUDP())
        self.assertEqual(node.gossip.settings.timing.pushPullInterval, 79.0)
        self.assertEqual(node.gossip.settings.timing.probeInterval, 1.0)

    def test_theAllowedClockSkewFromFileOrEnvironment(self) -> None:
        self.assertEqual(self.load("").node.maxClockSkew, 30.0)
        config = self.load('[node]\nmax_clock_skew = "5s"\n')
        self.assertEqual(config.node.maxClockSkew, 5.0)
        config = self.load(
            '[node]\nmax_clock_skew = "5s"\n', SIDECAR_MAX_CLOCK_SKEW="2m"
        )
        self.assertEqual(config.node.maxClockSkew, 120.0)
        node = makeService(config, MemoryReactorWithUDP())
        self.assertEqual(node.gossip.settings.maxClockSkew, 120.0)
        self.assertError('[node]\nmax_clock_skew = "0s"\n', "node.max_clock_skew")
        error = self.assertError("", None, "soon", SIDECAR_MAX_CLOCK_SKEW="soon")
        self.assertEqual(error.source, "environment SIDECAR_MAX_CLOCK_SKEW")

    def test_goVariablesOverrideTheFile(self) -> None:
        config = self.load(
            '[node]\ncluster_name = "file"\nbind = "127.0.1.1:7000"\n'
            'seeds = ["127.0.1.2:7000"]\n'
            "[haproxy]\nenabled = true\n",
            SIDECAR_CLUSTER_NAME="env",
            SIDECAR_BIND_PORT="7100",
            SIDECAR_ADVERTISE_IP="127.0.1.5",
            SIDECAR_SEEDS="127.0.1.6:7200, 127.0.1.7",
            SIDECAR_DISCOVERY="docker",
            STATIC_CONFIG_FILE="relative.json",
            DOCKER_URL="unix:///tmp/podman.sock",
            HAPROXY_DISABLE="true",
            HAPROXY_BIND_IP="127.0.0.169",
            HAPROXY_CONFIG_FILE="/tmp/other.cfg",
            LISTENERS_URLS="http://127.0.0.1:1/a,https://127.0.0.1:2/b",
            SIDECAR_LOGGING_LEVEL="warn",
            SIDECAR_LOGGING_FORMAT="json",
            SIDECAR_PUSH_PULL_INTERVAL="1m",
            SIDECAR_DEFAULT_CHECK_ENDPOINT="/status",
            SERVICES_NAMER="regex",
            SERVICES_NAME_MATCH="^/(.+)$",
            SERVICES_NAME_LABEL="svc",
            HAPROXY_RELOAD_COMMAND="service haproxy reload",
            HAPROXY_USE_HOSTNAMES="true",
        )
        self.assertEqual(config.haproxy.reloadCommand, "service haproxy reload")
        self.assertTrue(config.haproxy.useHostnames)
        self.assertEqual(config.discovery.dockerNamer, "regex")
        self.assertEqual(config.discovery.dockerNameMatch, "^/(.+)$")
        self.assertEqual(config.discovery.dockerNameLabel, "svc")
        self.assertEqual(config.health.defaultCheckEndpoint, "/status")
        self.assertEqual(config.node.clusterName, "env")
        self.assertEqual(config.node.pushPullInterval, 60.0)
        self.assertEqual(config.node.bind, Address("127.0.1.1", 7100))
        self.assertEqual(config.node.advertise, Address("127.0.1.5", 7100))
        self.assertEqual(
            config.node.seeds,
            (Address("127.0.1.6", 7200), Address("127.0.1.7", 7100)),
        )
        self.assertEqual(config.discovery.backends, ("docker",))
        self.assertEqual(
            config.discovery.staticFile, str(Path("relative.json").resolve())
        )
        self.assertEqual(config.discovery.dockerUrl, "unix:///tmp/podman.sock")
        self.assertFalse(config.haproxy.enabled)
        self.assertEqual(config.haproxy.bindIp, "127.0.0.169")
        self.assertEqual(config.haproxy.configFile, "/tmp/other.cfg")
        self.assertEqual(
            config.listeners.urls,
            ("http://127.0.0.1:1/a", "https://127.0.0.1:2/b"),
        )
        self.assertEqual((config.log.level, config.log.format), ("warn", "json"))

    def test_envoySection(self) -> None:
        """
        C{[envoy]} is off by default, on 127.0.0.1:7776; the file sets it
        and the Go Sidecar's variables override the file (the port
        variable keeps the file's host).
        """
        default = self.load("").envoy
        self.assertEqual(
            (default.enabled, default.listen, default.bindIp, default.useHostnames),
            (False, Address("127.0.0.1", 7776), "192.168.168.168", False),
        )
        config = self.load(
            '[envoy]\nenabled = false\nlisten = "127.0.0.2:7000"\n'
            'bind_ip = "127.0.0.168"\n',
            ENVOY_USE_GRPC_API="true",
            ENVOY_GRPC_PORT="7100",
            ENVOY_BIND_IP="127.0.0.169",
            ENVOY_USE_HOSTNAMES="yes",
        ).envoy
        self.assertEqual(
            (config.enabled, config.listen, config.bindIp, config.useHostnames),
            (True, Address("127.0.0.2", 7100), "127.0.0.169", True),
        )
        self.assertError('[envoy]\nlisten = "nowhere"\n', "envoy.listen")
        self.assertError('[envoy]\nbind_ip = "host"\n', "envoy.bind_ip")
        for variable, value in (
            ("ENVOY_GRPC_PORT", "port"),
            ("ENVOY_BIND_IP", "host.example"),
            ("ENVOY_USE_GRPC_API", "maybe"),
        ):
            error = self.assertError("", None, "", **{variable: value})
            self.assertEqual(error.source, f"environment {variable}")

    def test_envoyPortIsReservedFromServicePorts(self) -> None:
        """
        With Envoy on, its xDS port is one of the node's own: no
        ServicePort may take it, in HAProxy's model or Envoy's.
        """
        on = self.load('[envoy]\nenabled = true\nlisten = "127.0.0.1:7800"\n')
        self.assertIn(7800, admission(on).reservedPorts)
        off = self.load('[envoy]\nlisten = "127.0.0.1:7800"\n')
        self.assertNotIn(7800, admission(off).reservedPorts)

    def test_emptyVariablesCountAsUnset(self) -> None:
        config = self.load(
            '[node]\ncluster_name = "file"\n',
            SIDECAR_CLUSTER_NAME="",
            SIDECAR_SEEDS="  ",
        )
        self.assertEqual(config.node.clusterName, "file")
        self.assertEqual(config.node.seeds, ())

    def test_haproxyDisableFalseEnables(self) -> None:
        self.assertTrue(self.load("", HAPROXY_DISABLE="false").haproxy.enabled)

    def test_badVariableNamesTheVariable(self) -> None:
        for variable, value, fragment in (
            ("SIDECAR_BIND_PORT", "abc", "not a port number: 'abc'"),
            ("SIDECAR_BIND_PORT", "70000", "70000"),
            ("SIDECAR_ADVERTISE_IP", "host.example", "not an IP address"),
            ("SIDECAR_DISCOVERY", "kubernetes", "'kubernetes'"),
            ("HAPROXY_DISABLE", "maybe", "true or false"),
            ("LISTENERS_URLS", "ftp://x/", "not an http"),
            ("SIDECAR_LOGGING_LEVEL", "loud", "'loud'"),
        ):
            error = self.assertError("", None, fragment, **{variable: value})
            self.assertEqual(error.source, f"environment {variable}")
            self.assertTrue(str(error).startswith(f"environment {variable}: "))


class ErrorTests(ConfigTestCase):
    def test_unknownKeySuggestsTheClosest(self) -> None:
        self.assertError(
            '[node]\nclustr_name = "x"\n',
            "node.clustr_name",
            "unknown key 'clustr_name' (did you mean 'cluster_name'?)",
        )

    def test_unknownKeyWithNothingClose(self) -> None:
        error = self.assertError("[api]\nzzz = 1\n", "api.zzz", "unknown key 'zzz'")
        self.assertNotIn("did you mean", str(error))

    def test_unknownSectionSuggestsTheClosest(self) -> None:
        self.assertError(
            "[haproxi]\nenabled = true\n", "haproxi", "(did you mean 'haproxy'?)"
        )

    def test_sectionThatIsNotATable(self) -> None:
        self.assertError('node = "x"\n', "node", "expected a table")

    def test_wrongTypes(self) -> None:
        for text, key, fragment in (
            ("[api]\nlisten = 7777\n", "api.listen", "expected a string, got 7777"),
            ('[node]\nseeds = "a:1"\n', "node.seeds", "expected a list"),
            ('[haproxy]\nenabled = "yes please"\n', "haproxy.enabled", "true or false"),
            ("[haproxy]\nenabled = 1\n", "haproxy.enabled", "true or false"),
            ("[node]\nname = 5\n", "node.name", "expected a string"),
            ('[discovery]\nbackends = "static"\n', "discovery.backends", "a list"),
        ):
            error = self.assertError(text, key, fragment)
            self.assertIn(key, str(error))

    def test_badAddresses(self) -> None:
        for text, key, fragment in (
            ('[node]\nbind = "nowhere"\n', "node.bind", "not a host:port address"),
            ('[node]\nbind = "1.2.3.4"\n', "node.bind", "not a host:port address"),
            ('[node]\nbind = "host.example:7946"\n', "node.bind", "not an IP address"),
            ('[node]\nbind = "127.0.0.1:65536"\n', "node.bind", "not in 0-65535"),
            ('[node]\nadvertise = "127.0.0.1:0"\n', "node.advertise", "not in 1-65535"),
            ('[node]\nseeds = ["a:b:c:d:zz"]\n', "node.seeds", "item 0"),
            ('[node]\nseeds = ["127.0.0.1:0"]\n', "node.seeds", "not in 1-65535"),
            ('[node]\nseeds = [""]\n', "node.seeds", "must not be empty"),
            ('[api]\nlisten = "[::1:7777"\n', "api.listen", "not a host:port"),
            ('[haproxy]\nbind_ip = "my-host"\n', "haproxy.bind_ip", "not an IP"),
        ):
            self.assertError(text, key, fragment)

    def test_duplicateListItem(self) -> None:
        self.assertError(
            '[discovery]\nbackends = ["static", "static"]\n',
            "discovery.backends",
            "listed twice",
        )

    def test_badDuration(self) -> None:
        for value in ("soon", "3", "3 s", "s", "-1s", "1s2"):
            self.assertError(
                f'[discovery]\nstatic_poll_interval = "{value}"\n',
                "discovery.static_poll_interval",
                "not a duration",
            )

    def test_badEncryptKey(self) -> None:
        self.assertError(
            '[node]\nencrypt_key = "not base64!"\n', "node.encrypt_key", "base64"
        )
        short = base64.b64encode(b"x" * 10).decode()
        self.assertError(
            f'[node]\nencrypt_key = "{short}"\n',
            "node.encrypt_key",
            "decodes to 10 bytes; an AES key is 16, 24 or 32 bytes",
        )

    def test_extraKeysNeedAPrimaryAndMustBeKeys(self) -> None:
        key = base64.b64encode(b"k" * 16).decode()
        self.assertError(
            f'[node]\nextra_encrypt_keys = ["{key}"]\n',
            "node.extra_encrypt_keys",
            "extra keys need a primary key in node.encrypt_key",
        )
        self.assertError(
            f'[node]\nencrypt_key = "{key}"\nextra_encrypt_keys = [""]\n',
            "node.extra_encrypt_keys",
            "item 0: a key must not be empty",
        )

    def test_badChoices(self) -> None:
        self.assertError('[node]\nprofile = "fast"\n', "node.profile", "'fast'")
        self.assertError(
            '[node]\naccept_unnamed_peers = "sure"\n',
            "node.accept_unnamed_peers",
            "expected true or false, got 'sure'",
        )
        self.assertError(
            '[discovery]\nbackends = ["kubernetes"]\n',
            "discovery.backends",
            "expected one of static, docker, got 'kubernetes'",
        )
        self.assertError('[log]\nlevel = "loud"\n', "log.level", "'loud'")
        self.assertError('[log]\nformat = "xml"\n', "log.format", "'xml'")
        self.assertError(
            '[listeners]\nurls = ["127.0.0.1:9000"]\n', "listeners.urls", "not an http"
        )

    def test_badHealthSettings(self) -> None:
        for text, key, fragment in (
            ('[health]\ninterval = "0s"\n', "health.interval", "longer than zero"),
            ('[health]\ntimeout = "soon"\n', "health.timeout", "not a duration"),
            ("[health]\nfall = 0\n", "health.fall", "must be at least 1, got 0"),
            ("[health]\nfall = 1.5\n", "health.fall", "not a whole number: 1.5"),
            ("[health]\nconcurrency = true\n", "health.concurrency", "whole number"),
            (
                '[health]\ndefault_check_endpoint = "version"\n',
                "health.default_check_endpoint",
                "a path starting with '/', got 'version'",
            ),
            (
                '[health]\nexternal_commands = ["check_http"]\n',
                "health.external_commands",
                "a path starting with '/', got 'check_http'",
            ),
            (
                '[health]\nexternal_from_labels = "sometimes"\n',
                "health.external_from_labels",
                "",
            ),
        ):
            self.assertError(text, key, fragment)
        self.assertError(
            "",
            None,
            "environment SIDECAR_DEFAULT_CHECK_ENDPOINT",
            SIDECAR_DEFAULT_CHECK_ENDPOINT="healthz",
        )

    def test_badAPISettings(self) -> None:
        self.assertError(
            "[api]\nmax_connections = 0\n",
            "api.max_connections",
            "must be at least 1, got 0",
        )
        self.assertError(
            "[api]\nmax_watchers = 0\n",
            "api.max_watchers",
            "must be at least 1, got 0",
        )

    def test_badHAProxySettings(self) -> None:
        self.assertError(
            '[haproxy]\nstats_listen = "3212"\n',
            "haproxy.stats_listen",
            "not a host:port address",
        )
        self.assertError(
            "[haproxy]\nmaxconn = 0\n", "haproxy.maxconn", "must be at least 1, got 0"
        )

    def test_badDockerNaming(self) -> None:
        self.assertError(
            '[discovery]\ndocker_name_match = "(unclosed"\n',
            "discovery.docker_name_match",
            "not a regular expression: '(unclosed'",
        )
        self.assertError(
            '[discovery]\ndocker_name_match = "^/web$"\n',
            "discovery.docker_name_match",
            "'^/web$' has no group to take the name from",
        )
        self.assertError(
            '[discovery]\ndocker_namer = "regex"\n',
            "discovery.docker_name_match",
            "the regex namer needs a pattern",
        )
        self.assertError(
            '[discovery]\ndocker_namer = "label"\n',
            "discovery.docker_namer",
            "expected one of docker_label, regex, got 'label'",
        )

    def test_emptyName(self) -> None:
        self.assertError('[node]\nname = " "\n', "node.name", "must not be empty")

    def test_invalidTomlGivesLineAndColumn(self) -> None:
        self.assertError("[node\nname = 1\n", None, "invalid TOML", "line 1")

    def test_unreadableFile(self) -> None:
        missing = str(Path(self.mktemp()).resolve() / "absent.toml")
        error = self.assertRaises(ConfigError, loadConfig, missing, environ={})
        self.assertEqual(
            str(error), f"{missing}: cannot read: No such file or directory"
        )
        directory = Path(self.mktemp()).resolve()
        directory.mkdir()
        error = self.assertRaises(ConfigError, loadConfig, str(directory), environ={})
        self.assertIn("cannot read", str(error))


class DurationTests(SynchronousTestCase):
    def test_units(self) -> None:
        self.assertEqual(parseDuration("500ms"), 0.5)
        self.assertEqual(parseDuration("3s"), 3.0)
        self.assertEqual(parseDuration("1m"), 60.0)
        self.assertEqual(parseDuration("1h"), 3600.0)
        self.assertEqual(parseDuration("1m30s"), 90.0)
        self.assertEqual(parseDuration("1.5s"), 1.5)


class DocumentationTests(SynchronousTestCase):
    def test_everyKeyAndVariableIsDocumented(self) -> None:
        text = (REPO / "docs" / "configuration.md").read_text()
        rows = re.findall(r"^\| `([a-z_]+\.[a-z_]+)` \|", text, re.MULTILINE)
        self.assertEqual(rows, [key.path for key in KEYS])
        for key in KEYS:
            if key.env:
                self.assertIn(f"`{key.env}`", text)

    def test_theShippedExamplesAreValid(self) -> None:
        node = loadConfig(str(REPO / "examples" / "node.toml"), environ={})
        self.assertEqual(node.discovery.backends, ("static",))
        image = loadConfig(
            str(REPO / "examples" / "container" / "node.toml"), environ={}
        )
        self.assertEqual(image.discovery.backends, ("docker",))
        self.assertTrue(image.haproxy.enabled)
        self.assertEqual(image.api.listen, Address("127.0.0.1", 7777))
        self.assertEqual(image.haproxy.statsListen, "127.0.0.1:3212")
        routing = loadConfig(
            str(REPO / "examples" / "routing" / "node.toml"), environ={}
        )
        self.assertTrue(routing.haproxy.enabled)
        self.assertEqual(routing.haproxy.bindIp, "127.0.0.168")
        self.assertTrue(Path(routing.discovery.staticFile).is_file())


class APISecurityTests(ConfigTestCase):
    """
    C{api.tls_cert}, C{api.tls_key} and C{api.token_file}: read and
    checked when the configuration is, relative to the file.
    """

    def setUp(self) -> None:
        self.directory = Path(self.mktemp()).resolve()
        self.directory.mkdir()
        self.tls = makeTLSFiles(self.directory)

    def test_noneByDefault(self) -> None:
        api = self.load("").api
        self.assertEqual((api.tlsPEM, api.token), (None, None))

    def test_certificateKeyAndTokenAreRead(self) -> None:
        (self.directory / "token").write_text("0123456789abcdef\n")
        api = self.load(
            f'[api]\ntls_cert = "{self.tls.cert}"\ntls_key = "{self.tls.key}"\n'
            f'token_file = "{self.directory / "token"}"\n'
        ).api
        self.assertEqual(
            api.tlsPEM,
            self.tls.cert.read_bytes() + b"\n" + self.tls.key.read_bytes() + b"\n",
        )
        self.assertEqual(api.token, b"0123456789abcdef")
        self.assertNotIn("0123456789abcdef", repr(api))

    def test_bothOrNeither(self) -> None:
        self.assertError(
            f'[api]\ntls_cert = "{self.tls.cert}"\n',
            "api.tls_key",
            "TLS needs both api.tls_cert and api.tls_key",
        )
        self.assertError(
            f'[api]\ntls_key = "{self.tls.key}"\n',
            "api.tls_cert",
            "TLS needs both",
        )

    def test_unreadableOrNotAPair(self) -> None:
        self.assertError(
            f'[api]\ntls_cert = "{self.directory}/nope.pem"\n'
            f'tls_key = "{self.tls.key}"\n',
            "api.tls_cert",
            "nope.pem: No such file or directory",
        )
        self.assertError(
            f'[api]\ntls_cert = "{self.tls.ca}"\ntls_key = "{self.tls.key}"\n',
            "api.tls_cert",
            "are not a PEM certificate and its key",
        )

    def test_aTokenFileThatCannotServe(self) -> None:
        self.assertError(
            f'[api]\ntoken_file = "{self.directory}/nope"\n',
            "api.token_file",
            "cannot read",
        )
        (self.directory / "short").write_text("abc\n")
        self.assertError(
            f'[api]\ntoken_file = "{self.directory / "short"}"\n',
            "api.token_file",
            "at least 16 printable ASCII characters",
        )
