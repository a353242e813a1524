"""
Containers into services: the Go Sidecar's labels on an engine's container
list entry, and a problem reported for each malformed label.
"""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from sidecar.catalog import Port
from sidecar.catalog.local import CheckSpec
from sidecar.discovery.containers import (
    DEFAULT_NAMING,
    ContainerService,
    Naming,
    serviceFromContainer,
)

CONTAINER_ID = "0123456789abcdef" * 4
ADVERTISE = "127.0.1.7"


def container(labels: dict[str, str] | None = None, **fields: Any) -> dict[str, Any]:
    """
    An engine's list entry for the seed's C{docker run -P nginx}.
    """
    entry: dict[str, Any] = {
        "Id": CONTAINER_ID,
        "Names": ["/awesome-svc-1a2b3c4d"],
        "Image": "registry.example:5000/team/nginx:1.25",
        "Created": 1_700_000_000,
        "Ports": [
            {"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 32768, "Type": "tcp"},
            {"IP": "::", "PrivatePort": 80, "PublicPort": 32768, "Type": "tcp"},
            {"PrivatePort": 443, "Type": "tcp"},
        ],
        "Labels": {
            "HealthCheck": "HttpGet",
            "ServiceName": "awesome-svc",
            "ServicePort_80": "9500",
            "HealthCheckArgs": "http://{{ host }}:{{ tcp 9500 }}/",
        }
        if labels is None
        else labels,
        "State": "running",
    }
    entry.update(fields)
    return entry


def parse(entry: dict[str, Any], naming: Naming = DEFAULT_NAMING) -> ContainerService:
    return serviceFromContainer(entry, "host-a", ADVERTISE, naming)


class SeedContainerTests(SynchronousTestCase):
    def setUp(self) -> None:
        found = parse(container())
        assert found.local is not None
        self.local = found.local
        self.service = found.local.service
        self.problems = found.problems

    def test_idIsTheShortContainerID(self) -> None:
        self.assertEqual(self.service.id, "0123456789ab")

    def test_nameImageHostCreated(self) -> None:
        self.assertEqual(self.service.name, "awesome-svc")
        self.assertEqual(self.service.image, "registry.example:5000/team/nginx:1.25")
        self.assertEqual(self.service.hostname, "host-a")
        self.assertEqual(self.service.created, 1_700_000_000 * 1_000_000_000)

    def test_onlyPublishedPortsOnceEachWithTheAdvertisedIP(self) -> None:
        self.assertEqual(self.service.ports, (Port("tcp", 32768, 9500, ADVERTISE),))

    def test_theCheckComesFromTheLabels(self) -> None:
        self.assertEqual(
            self.local.check,
            CheckSpec("HttpGet", "http://{{ host }}:{{ tcp 9500 }}/"),
        )

    def test_defaultsAndNoProblems(self) -> None:
        self.assertEqual(self.service.proxyMode, "http")
        self.assertIsNone(self.local.listenPort)
        self.assertEqual(self.problems, ())


class LabelTests(SynchronousTestCase):
    def only(self, labels: dict[str, str], **fields: Any) -> ContainerService:
        return parse(container(labels, **fields))

    def test_sidecarDiscoverFalseIsNotAService(self) -> None:
        self.assertIsNone(self.only({"SidecarDiscover": "false"}).local)
        self.assertIsNone(self.only({"SidecarDiscover": "False "}).local)
        self.assertIsNotNone(self.only({"SidecarDiscover": "true"}).local)

    def test_withoutANameLabelTheImagesName(self) -> None:
        local = self.only({}).local
        assert local is not None
        self.assertEqual(local.service.name, "nginx")

    def test_anotherNameLabel(self) -> None:
        local = parse(container({"app": "shop"}), Naming(label="app")).local
        assert local is not None
        self.assertEqual(local.service.name, "shop")

    def test_theRegexNamer(self) -> None:
        naming = Naming(namer="regex", match=r"^/(.+)(-[0-9a-z]{7,14})$")
        local = parse(container({}), naming).local
        assert local is not None
        self.assertEqual(local.service.name, "awesome-svc")
        other = parse(container({}, Names=["/plain"]), naming).local
        assert other is not None
        self.assertEqual(other.service.name, "nginx")

    def test_servicePortsForManyPortsAndUdp(self) -> None:
        ports = [
            {"IP": "127.0.0.1", "PrivatePort": 80, "PublicPort": 32768, "Type": "tcp"},
            {"IP": "0.0.0.0", "PrivatePort": 53, "PublicPort": 32769, "Type": "udp"},
            {"IP": "0.0.0.0", "PrivatePort": 53, "PublicPort": 32770, "Type": "tcp"},
        ]
        labels = {"ServicePort_80": "8080", "ServicePort_53/udp": "5353"}
        local = self.only(labels, Ports=ports).local
        assert local is not None
        self.assertEqual(
            local.service.ports,
            (
                Port("tcp", 32768, 8080, "127.0.0.1"),
                Port("tcp", 32770, 0, ADVERTISE),
                Port("udp", 32769, 5353, ADVERTISE),
            ),
        )

    def test_aProtocolLabelWinsOverThePlainOne(self) -> None:
        labels = {"ServicePort_80": "8080", "ServicePort_80/tcp": "8081"}
        local = self.only(labels).local
        assert local is not None
        self.assertEqual(local.service.ports[0].servicePort, 8081)

    def test_proxyModeAndListener(self) -> None:
        labels = {
            "ServicePort_80": "9500",
            "ProxyMode": "ws",
            "SidecarListener": "9500",
        }
        local = self.only(labels).local
        assert local is not None
        self.assertEqual(local.service.proxyMode, "ws")
        self.assertEqual(local.listenPort, 32768)

    def test_checkTiming(self) -> None:
        labels = {"HealthCheckInterval": "10s", "HealthCheckTimeout": "500ms"}
        local = self.only(labels).local
        assert local is not None
        self.assertEqual((local.check.interval, local.check.timeout), (10.0, 0.5))

    def test_noPortsAtAll(self) -> None:
        for ports in (None, [], "nonsense"):
            local = self.only({}, Ports=ports).local
            assert local is not None
            self.assertEqual(local.service.ports, ())


class MalformedLabelTests(SynchronousTestCase):
    def problems(self, labels: dict[str, str]) -> list[str]:
        found = parse(container(labels))
        self.assertIsNotNone(found.local)  # the container is still a service
        for problem in found.problems:
            self.assertNotIn("\n", problem)
            self.assertTrue(problem.startswith("container 0123456789ab: label "))
        return list(found.problems)

    def test_aServicePortThatIsNotANumber(self) -> None:
        [problem] = self.problems({"ServicePort_80": "web"})
        self.assertIn("ServicePort_80='web': not a port number", problem)
        local = parse(container({"ServicePort_80": "web"})).local
        assert local is not None
        self.assertEqual(local.service.ports[0].servicePort, 0)

    def test_aServicePortOutOfRange(self) -> None:
        [problem] = self.problems({"ServicePort_80": "70000"})
        self.assertIn("not a port number (1-65535)", problem)

    def test_anUnknownProxyMode(self) -> None:
        [problem] = self.problems({"ProxyMode": "https"})
        self.assertIn("ProxyMode='https': expected one of http, tcp, ws", problem)

    def test_aListenerWithoutItsPort(self) -> None:
        [problem] = self.problems({"SidecarListener": "9999"})
        self.assertIn("no published tcp port has ServicePort 9999", problem)
        [problem] = self.problems({"SidecarListener": "x"})
        self.assertIn("not a service port number", problem)

    def test_badCheckTiming(self) -> None:
        first, second = self.problems(
            {"HealthCheckInterval": "often", "HealthCheckTimeout": "0s"}
        )
        self.assertIn("HealthCheckInterval='often': not a duration", first)
        self.assertIn("HealthCheckTimeout='0s': must be longer than zero", second)

    def test_labelsThatAreNotTextAreIgnored(self) -> None:
        local = parse(container(None, Labels={"ServiceName": 5, 7: "x"})).local
        assert local is not None
        self.assertEqual(local.service.name, "nginx")

    def test_anEntryWithoutAnIdIsRefused(self) -> None:
        for bad in (None, 5, "short"):
            error = self.assertRaises(ValueError, parse, container(Id=bad))
            self.assertIn("container without a valid Id", str(error))
