"""
The static file parser: the Go Sidecar's target list in, this node's
L{LocalService}s out, or a one-line L{StaticFileError} naming the file, the
entry and the field.
"""

from __future__ import annotations

import json
import re
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from sidecar.catalog import Port, Status
from sidecar.catalog.local import CheckSpec, LocalService
from sidecar.discovery.staticfile import StaticFileError, parseStaticFile

PATH = "/etc/sidecar/static.json"
NODE = "node1"
ADVERTISE = "10.0.0.7"

# The Go Sidecar's fixtures/static.json.
GO_FIXTURE = b"""[
  {
    "Service": {
      "Name": "some_service",
      "Image": "bb6268ff91dc42a51f51db53846f72a80f35d5ba",
      "Ports": [
        {"Type": "tcp", "Port": 10234, "ServicePort": 9999}
      ],
      "ProxyMode": "http"
    },
    "Check": {"Type": "HttpGet", "Args": "http://:10234/"},
    "ListenPort": 9999
  }
]
"""


def target(name: str = "web", **service: Any) -> dict[str, Any]:
    """
    A valid target whose C{Service} has C{name} and the given keys.
    """
    document: dict[str, Any] = {"Name": name}
    document.update(service)
    return {"Service": document}


def encode(targets: Any) -> bytes:
    return json.dumps(targets).encode("utf-8")


def parse(
    data: bytes, hostname: str = NODE, advertiseIP: str = ADVERTISE
) -> list[LocalService]:
    return parseStaticFile(data, PATH, hostname, advertiseIP)


class GoFixtureTests(SynchronousTestCase):
    """
    The Go Sidecar's own fixture parses to the record it describes.
    """

    def setUp(self) -> None:
        [self.local] = parse(GO_FIXTURE)
        self.service = self.local.service

    def test_serviceFieldsAreTheFixtures(self) -> None:
        self.assertEqual(self.service.name, "some_service")
        self.assertEqual(self.service.image, "bb6268ff91dc42a51f51db53846f72a80f35d5ba")
        self.assertEqual(self.service.proxyMode, "http")
        self.assertEqual(self.service.status, Status.ALIVE)
        self.assertEqual(self.service.updated, 0)

    def test_hostnameIsTheNodeName(self) -> None:
        self.assertEqual(self.service.hostname, NODE)

    def test_portWithoutIPGetsTheAdvertiseIP(self) -> None:
        self.assertEqual(
            self.service.ports,
            (Port(type="tcp", port=10234, servicePort=9999, ip=ADVERTISE),),
        )

    def test_checkAndListenPortAreTheFixtures(self) -> None:
        self.assertEqual(self.local.check, CheckSpec("HttpGet", "http://:10234/"))
        self.assertEqual(self.local.listenPort, 9999)

    def test_idIsTwelveHexCharacters(self) -> None:
        self.assertTrue(
            re.fullmatch("[0-9a-f]{12}", self.service.id), repr(self.service.id)
        )


class FieldTests(SynchronousTestCase):
    """
    Optional fields, defaults, and what the file cannot override.
    """

    def test_portIPGivenInTheFileIsKept(self) -> None:
        [local] = parse(encode([target(Ports=[{"Port": 80, "IP": "192.0.2.1"}])]))
        self.assertEqual(local.service.ports[0].ip, "192.0.2.1")

    def test_emptyPortIPGetsTheAdvertiseIP(self) -> None:
        [local] = parse(encode([target(Ports=[{"Port": 80, "IP": ""}])]))
        self.assertEqual(local.service.ports[0].ip, ADVERTISE)

    def test_proxyModeDefaultsToHttp(self) -> None:
        [local] = parse(encode([target()]))
        self.assertEqual(local.service.proxyMode, "http")

    def test_proxyModeTcpAndWsAreKept(self) -> None:
        services = parse(encode([target(ProxyMode="tcp"), target(ProxyMode="ws")]))
        self.assertEqual([s.service.proxyMode for s in services], ["tcp", "ws"])

    def test_portTypeDefaultsToTcp(self) -> None:
        [local] = parse(encode([target(Ports=[{"Port": 80}])]))
        self.assertEqual(local.service.ports, (Port("tcp", 80, 0, ADVERTISE),))

    def test_udpPortIsKept(self) -> None:
        [local] = parse(encode([target(Ports=[{"Type": "udp", "Port": 53}])]))
        self.assertEqual(local.service.ports[0].type, "udp")

    def test_absentOptionalFieldsGiveDefaults(self) -> None:
        [local] = parse(encode([target()]))
        self.assertEqual(local.service.image, "")
        self.assertEqual(local.service.ports, ())
        self.assertEqual(local.check, CheckSpec())
        self.assertIsNone(local.listenPort)

    def test_nullOptionalFieldsGiveDefaults(self) -> None:
        document = target(Ports=None, Image=None, ProxyMode=None)
        document.update(Check=None, ListenPort=None)
        [local] = parse(encode([document]))
        self.assertEqual(local.service.ports, ())
        self.assertEqual(local.service.proxyMode, "http")
        self.assertEqual(local.check, CheckSpec())
        self.assertIsNone(local.listenPort)

    def test_checkIntervalAndTimeoutAreDurations(self) -> None:
        document = target()
        document["Check"] = {
            "Type": "Tcp",
            "Args": ":5432",
            "Interval": "10s",
            "Timeout": "1500ms",
        }
        [local] = parse(encode([document]))
        self.assertEqual(local.check, CheckSpec("Tcp", ":5432", 10.0, 1.5))

    def test_listenPortZeroMeansNone(self) -> None:
        document = target()
        document["ListenPort"] = 0
        [local] = parse(encode([document]))
        self.assertIsNone(local.listenPort)

    def test_fileHostnameIDAndStatusAreIgnored(self) -> None:
        [local] = parse(
            encode([target(Hostname="chaucer", ID="deadbeef0000", Status=1)])
        )
        self.assertEqual(local.service.hostname, NODE)
        self.assertNotEqual(local.service.id, "deadbeef0000")
        self.assertEqual(local.service.status, Status.ALIVE)

    def test_unknownKeysAreIgnored(self) -> None:
        document = target(Colour="blue")
        document["Extra"] = [1, 2]
        [local] = parse(encode([document]))
        self.assertEqual(local.service.name, "web")

    def test_emptyListGivesNoServices(self) -> None:
        self.assertEqual(parse(b"[]"), [])

    def test_servicesComeInFileOrder(self) -> None:
        services = parse(encode([target("a"), target("b"), target("c")]))
        self.assertEqual([s.service.name for s in services], ["a", "b", "c"])


class IDTests(SynchronousTestCase):
    """
    IDs are stable: derived from the node, the name and the ports.
    """

    def test_sameFileGivesTheSameIDs(self) -> None:
        data = encode([target("a", Ports=[{"Port": 80}]), target("b")])
        first = [s.service.id for s in parse(data)]
        second = [s.service.id for s in parse(data)]
        self.assertEqual(first, second)

    def test_anotherHostnameGivesOtherIDs(self) -> None:
        [here] = parse(GO_FIXTURE, hostname="node1")
        [there] = parse(GO_FIXTURE, hostname="node2")
        self.assertNotEqual(here.service.id, there.service.id)

    def test_everyIDIsTwelveHexCharacters(self) -> None:
        data = encode([target(str(n), Ports=[{"Port": 1000 + n}]) for n in range(20)])
        for local in parse(data):
            self.assertTrue(re.fullmatch("[0-9a-f]{12}", local.service.id))

    def test_entryKeepsItsIDWhenAnotherIsAddedBeforeIt(self) -> None:
        web = target("web", Ports=[{"Port": 8080}])
        [before] = parse(encode([web]))
        services = parse(encode([target("db", Ports=[{"Port": 5432}]), web]))
        self.assertEqual(services[1].service.id, before.service.id)
        self.assertNotEqual(services[0].service.id, before.service.id)

    def test_identicalEntriesGetDistinctIDs(self) -> None:
        web = target("web", Ports=[{"Port": 8080}])
        services = parse(encode([web, web, web]))
        ids = [s.service.id for s in services]
        self.assertEqual(len(set(ids)), 3, ids)

    def test_identicalEntriesKeepTheirIDsAcrossReads(self) -> None:
        data = encode([target("web"), target("web")])
        self.assertEqual(
            [s.service.id for s in parse(data)], [s.service.id for s in parse(data)]
        )

    def test_differentPortsGiveDifferentIDs(self) -> None:
        [a] = parse(encode([target("web", Ports=[{"Port": 8080}])]))
        [b] = parse(encode([target("web", Ports=[{"Port": 8081}])]))
        self.assertNotEqual(a.service.id, b.service.id)

    def test_differentNamesGiveDifferentIDs(self) -> None:
        [a] = parse(encode([target("web")]))
        [b] = parse(encode([target("api")]))
        self.assertNotEqual(a.service.id, b.service.id)


class ErrorTests(SynchronousTestCase):
    """
    Every malformed file raises L{StaticFileError} with a one-line message
    naming the file and, for an entry, its index and the field at fault.
    """

    def assertRejected(self, data: bytes, *fragments: str) -> str:
        """
        C{data} is rejected with a one-line message that names the file and
        contains every fragment.
        """
        error = self.assertRaises(StaticFileError, parse, data)
        message = str(error)
        self.assertNotIn("\n", message)
        self.assertTrue(message.startswith(PATH + ": "), message)
        for fragment in fragments:
            self.assertIn(fragment, message)
        return message

    def assertEntryRejected(self, bad: Any, field: str) -> str:
        """
        A file whose entry 1 is C{bad} (after a valid entry 0) is rejected,
        naming entry 1 and C{field}.
        """
        message = self.assertRejected(encode([target("ok"), bad]), "entry 1", field)
        self.assertTrue(message.startswith(f"{PATH}: entry 1: {field}"), message)
        return message

    def test_documentedExample(self) -> None:
        self.assertEqual(
            str(
                self.assertRaises(
                    StaticFileError,
                    parseStaticFile,
                    encode([target("ok"), target(Ports=[{"Port": "80"}])]),
                    "static.json",
                    NODE,
                    ADVERTISE,
                )
            ),
            "static.json: entry 1: Service.Ports[0].Port: "
            "expected a port number, got '80'",
        )

    def test_notJSON(self) -> None:
        self.assertRejected(b'[{"Service": ', "not JSON")

    def test_notUTF8(self) -> None:
        self.assertRejected(b'["\xff\xfe\xfd"]', "not JSON")

    def test_emptyFile(self) -> None:
        self.assertRejected(b"", "not JSON")

    def test_notAList(self) -> None:
        self.assertRejected(encode(target()), "expected a JSON list", "an object")

    def test_entryNotAnObject(self) -> None:
        self.assertEntryRejected("web", "target")

    def test_serviceMissing(self) -> None:
        self.assertEntryRejected({"Check": {}}, "Service")

    def test_serviceNotAnObject(self) -> None:
        self.assertEntryRejected({"Service": ["web"]}, "Service")

    def test_nameMissing(self) -> None:
        self.assertEntryRejected({"Service": {"Image": "x"}}, "Service.Name")

    def test_nameEmpty(self) -> None:
        self.assertEntryRejected(target(""), "Service.Name")

    def test_nameBlank(self) -> None:
        self.assertEntryRejected(target("   "), "Service.Name")

    def test_nameNotAString(self) -> None:
        self.assertEntryRejected({"Service": {"Name": 5}}, "Service.Name")

    def test_imageNotAString(self) -> None:
        self.assertEntryRejected(target(Image=5), "Service.Image")

    def test_badCheckInterval(self) -> None:
        message = self.assertEntryRejected(
            {"Service": {"Name": "w"}, "Check": {"Interval": "often"}},
            "Check.Interval",
        )
        self.assertIn("not a duration: 'often'", message)

    def test_zeroCheckTimeout(self) -> None:
        message = self.assertEntryRejected(
            {"Service": {"Name": "w"}, "Check": {"Timeout": "0s"}}, "Check.Timeout"
        )
        self.assertIn("must be longer than zero", message)

    def test_checkIntervalNotAString(self) -> None:
        self.assertEntryRejected(
            {"Service": {"Name": "w"}, "Check": {"Interval": 3}}, "Check.Interval"
        )

    def test_badProxyMode(self) -> None:
        message = self.assertEntryRejected(
            target(ProxyMode="https"), "Service.ProxyMode"
        )
        self.assertIn("'https'", message)

    def test_proxyModeNotAString(self) -> None:
        self.assertEntryRejected(target(ProxyMode=1), "Service.ProxyMode")

    def test_portsNotAList(self) -> None:
        self.assertEntryRejected(target(Ports={"Port": 80}), "Service.Ports")

    def test_portsAString(self) -> None:
        self.assertEntryRejected(target(Ports="80"), "Service.Ports")

    def test_portNotAnObject(self) -> None:
        self.assertEntryRejected(target(Ports=[{"Port": 80}, 81]), "Service.Ports[1]")

    def test_badPortType(self) -> None:
        message = self.assertEntryRejected(
            target(Ports=[{"Type": "sctp", "Port": 80}]), "Service.Ports[0].Type"
        )
        self.assertIn("'sctp'", message)

    def test_portTypeNotAString(self) -> None:
        self.assertEntryRejected(
            target(Ports=[{"Type": 6, "Port": 80}]), "Service.Ports[0].Type"
        )

    def test_portMissing(self) -> None:
        self.assertEntryRejected(
            target(Ports=[{"Type": "tcp"}]), "Service.Ports[0].Port"
        )

    def test_portAboveRange(self) -> None:
        message = self.assertEntryRejected(
            target(Ports=[{"Port": 65536}]), "Service.Ports[0].Port"
        )
        self.assertIn("65536", message)

    def test_portZero(self) -> None:
        self.assertEntryRejected(target(Ports=[{"Port": 0}]), "Service.Ports[0].Port")

    def test_portNegative(self) -> None:
        self.assertEntryRejected(target(Ports=[{"Port": -1}]), "Service.Ports[0].Port")

    def test_portAsString(self) -> None:
        self.assertEntryRejected(
            target(Ports=[{"Port": "80"}]), "Service.Ports[0].Port"
        )

    def test_portAsBool(self) -> None:
        self.assertEntryRejected(
            target(Ports=[{"Port": True}]), "Service.Ports[0].Port"
        )

    def test_portAsFloat(self) -> None:
        self.assertEntryRejected(
            target(Ports=[{"Port": 80.5}]), "Service.Ports[0].Port"
        )

    def test_secondPortIsNamed(self) -> None:
        self.assertEntryRejected(
            target(Ports=[{"Port": 80}, {"Port": 99999}]), "Service.Ports[1].Port"
        )

    def test_servicePortOutOfRange(self) -> None:
        self.assertEntryRejected(
            target(Ports=[{"Port": 80, "ServicePort": 70000}]),
            "Service.Ports[0].ServicePort",
        )

    def test_servicePortAsString(self) -> None:
        self.assertEntryRejected(
            target(Ports=[{"Port": 80, "ServicePort": "9999"}]),
            "Service.Ports[0].ServicePort",
        )

    def test_portIPNotAString(self) -> None:
        self.assertEntryRejected(
            target(Ports=[{"Port": 80, "IP": 10}]), "Service.Ports[0].IP"
        )

    def test_listenPortAsString(self) -> None:
        self.assertEntryRejected(dict(target(), ListenPort="9999"), "ListenPort")

    def test_listenPortOutOfRange(self) -> None:
        self.assertEntryRejected(dict(target(), ListenPort=70000), "ListenPort")

    def test_listenPortNegative(self) -> None:
        self.assertEntryRejected(dict(target(), ListenPort=-1), "ListenPort")

    def test_listenPortAsTrue(self) -> None:
        self.assertEntryRejected(dict(target(), ListenPort=True), "ListenPort")

    def test_checkNotAnObject(self) -> None:
        self.assertEntryRejected(dict(target(), Check="HttpGet"), "Check")

    def test_checkTypeNotAString(self) -> None:
        self.assertEntryRejected(dict(target(), Check={"Type": 1}), "Check.Type")

    def test_checkArgsNotAString(self) -> None:
        self.assertEntryRejected(
            dict(target(), Check={"Type": "External", "Args": ["ls"]}), "Check.Args"
        )

    def test_valueWithNewlineStaysOnOneLine(self) -> None:
        self.assertEntryRejected(target(ProxyMode="ht\ntp"), "Service.ProxyMode")

    def test_longValueIsCut(self) -> None:
        message = self.assertEntryRejected(
            target(Image=["x" * 10_000]), "Service.Image"
        )
        self.assertLess(len(message), 300)

    # Falsy values of the wrong type are not "absent": Go's decoder rejects
    # them, and so do the rules above for their truthy twins.

    def test_portsAsEmptyObject(self) -> None:
        self.assertEntryRejected(target(Ports={}), "Service.Ports")

    def test_checkAsEmptyList(self) -> None:
        self.assertEntryRejected(dict(target(), Check=[]), "Check")

    def test_listenPortAsFalse(self) -> None:
        self.assertEntryRejected(dict(target(), ListenPort=False), "ListenPort")

    def test_deeplyNestedJSON(self) -> None:
        self.assertRejected(b"[" * 100_000 + b"]" * 100_000)
