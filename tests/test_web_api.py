"""
The status API's endpoints, paths and JSON shapes, through treq's in-memory
HTTP client.
"""

from __future__ import annotations

import json
from typing import Any

import treq
from treq.testing import StubTreq
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from sidecar.catalog import Port, Service, ServicesState, Status
from sidecar.catalog.timestamps import formatTimestamp
from sidecar.interfaces import IDrainControl, IHealthReport
from sidecar.problems import Problems
from sidecar.web.server import makeSite
from sidecar.web.watch import HEARTBEAT

from .doubles import Members

SECOND = 1_000_000_000


@implementer(IHealthReport)
class Health:
    def __init__(self) -> None:
        self.checks: dict[str, dict[str, Any]] = {}

    def report(self) -> dict[str, dict[str, Any]]:
        return self.checks


@implementer(IDrainControl)
class Drains:
    def __init__(self, state: ServicesState) -> None:
        self.state = state
        self.calls: list[tuple[str, str]] = []

    def drain(self, serviceID: str) -> Service:
        self.calls.append(("drain", serviceID))
        found = self.state.get("node-b", serviceID)
        if found is None:
            raise KeyError(serviceID)
        return found.withStatus(Status.DRAINING, found.updated)

    def undrain(self, serviceID: str) -> Service:
        self.calls.append(("undrain", serviceID))
        found = self.state.get("node-b", serviceID)
        if found is None:
            raise KeyError(serviceID)
        return found


def record(
    serviceID: str, name: str, hostname: str, updated: int, **kw: Any
) -> Service:
    return Service(
        id=serviceID,
        name=name,
        image="img:1",
        created=SECOND,
        hostname=hostname,
        ports=(Port("tcp", 8080, 10001, "127.0.1.1"),),
        updated=updated,
        proxyMode="http",
        **kw,
    )


def oneRemoteService(testCase: SynchronousTestCase) -> tuple[Clock, ServicesState]:
    """
    A clock at a plausible now, and node-a's catalog holding node-b's one
    C{web} instance, updated a second ago.
    """
    clock = Clock()
    clock.advance(1_700_000_000)
    state = ServicesState("node-a", clock)
    testCase.addCleanup(state.stop)
    state.merge(record("bbbbbbbbbbbb", "web", "node-b", 1_699_999_999 * SECOND))
    return clock, state


class APITests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1_700_000_000)
        self.state = ServicesState("node-a", self.clock, clusterName="test-cluster")
        now = round(self.clock.seconds() * SECOND)
        self.state.merge(record("bbbbbbbbbbbb", "web", "node-b", now - 5 * SECOND))
        self.state.merge(record("aaaaaaaaaaaa", "web", "node-c", now - 9 * SECOND))
        self.state.merge(
            record("cccccccccccc", "db", "node-b", now, status=Status.UNHEALTHY)
        )
        self.members = Members("node-a", "node-b", "node-c")
        self.health = Health()
        self.drains = Drains(self.state)
        self.problems = Problems(self.clock)
        site = makeSite(
            self.state,
            self.members,
            self.health,
            drains=self.drains,
            reactor=self.clock,
            problems=self.problems,
        )
        self.client = StubTreq(site.resource)
        self.addCleanup(self.state.stop)

    def request(
        self, method: str, path: str, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, Any], Any]:
        response = self.successResultOf(
            self.client.request(method, "http://node-a" + path, headers=headers)
        )
        body = self.successResultOf(response.content())
        headers = {
            k.decode().lower(): [v.decode() for v in vs]
            for k, vs in response.headers.getAllRawHeaders()
        }
        return response.code, headers, json.loads(body) if body else None

    def test_stateIsTheGoServicesStateDocument(self) -> None:
        code, headers, body = self.request("GET", "/api/state.json")
        self.assertEqual(code, 200)
        self.assertEqual(headers["content-type"], ["application/json"])
        self.assertEqual(headers["access-control-allow-origin"], ["*"])
        self.assertEqual(
            list(body), ["Servers", "LastChanged", "ClusterName", "Hostname"]
        )
        self.assertEqual(body["ClusterName"], "test-cluster")
        self.assertEqual(body["Hostname"], "node-a")
        self.assertEqual(sorted(body["Servers"]), ["node-b", "node-c"])
        server = body["Servers"]["node-b"]
        self.assertEqual(
            list(server), ["Name", "Services", "LastUpdated", "LastChanged"]
        )
        self.assertEqual(sorted(server["Services"]), ["bbbbbbbbbbbb", "cccccccccccc"])
        self.assertEqual(server["Services"]["cccccccccccc"]["Status"], 2)

    def test_watchHeartbeatsRunOnTheGivenReactor(self) -> None:
        response = self.successResultOf(self.client.get("http://node-a/api/watch"))
        received: list[bytes] = []
        treq.collect(response, received.append)
        self.assertEqual(len(received), 1)  # the state, at once
        self.clock.advance(HEARTBEAT)
        self.client.flush()
        self.assertEqual(received[1:], [b"\n"])

    def test_stateIsCompact(self) -> None:
        response = self.successResultOf(self.client.get("http://node-a/api/state.json"))
        body = self.successResultOf(response.content())
        self.assertNotIn(b"\n", body)
        self.assertTrue(body.startswith(b'{"Servers":{"node-b":{"Name":"node-b",'))

    def test_servicesGroupsByNameOldestFirstWithMembers(self) -> None:
        code, _, body = self.request("GET", "/api/services.json")
        self.assertEqual(code, 200)
        self.assertEqual(list(body), ["Services", "ClusterMembers", "ClusterName"])
        self.assertEqual(sorted(body["Services"]), ["db", "web"])
        self.assertEqual(
            [s["ID"] for s in body["Services"]["web"]],
            ["aaaaaaaaaaaa", "bbbbbbbbbbbb"],
        )
        self.assertEqual(
            body["ClusterMembers"]["node-b"],
            {
                "Name": "node-b",
                "LastUpdated": formatTimestamp(self.state.now()),
                "ServiceCount": 2,
            },
        )
        self.assertEqual(
            body["ClusterMembers"]["node-a"],
            {
                "Name": "node-a",
                "LastUpdated": "1970-01-01T00:00:00Z",
                "ServiceCount": 0,
            },
        )

    def test_servicesIsIndentedLikeGoMarshalIndent(self) -> None:
        response = self.successResultOf(
            self.client.get("http://node-a/api/services.json")
        )
        body = self.successResultOf(response.content())
        self.assertTrue(body.startswith(b'{\n  "Services": {\n    "db": [\n'))

    def test_membersListsWhatTheMembershipKnows(self) -> None:
        code, headers, body = self.request("GET", "/api/members.json")
        self.assertEqual(code, 200)
        self.assertEqual(headers["content-type"], ["application/json"])
        self.assertEqual(body["ClusterName"], "test-cluster")
        self.assertEqual(body["Members"], self.members.members())
        code, _, _ = self.request("GET", "/api/members.xml")
        self.assertEqual(code, 404)

    def test_drainAndUndrain(self) -> None:
        code, _, body = self.request("POST", "/api/services/bbbbbbbbbbbb/drain")
        self.assertEqual(code, 202)
        self.assertEqual(
            body, {"Message": 'Service "web" instance "bbbbbbbbbbbb" set to DRAINING'}
        )
        code, _, body = self.request("DELETE", "/api/services/bbbbbbbbbbbb/drain")
        self.assertEqual(code, 200)
        self.assertEqual(
            body, {"Message": 'Service "web" instance "bbbbbbbbbbbb" set to ALIVE'}
        )
        self.assertEqual(
            self.drains.calls,
            [("drain", "bbbbbbbbbbbb"), ("undrain", "bbbbbbbbbbbb")],
        )

    def test_aBrowsersCrossSiteWriteIsRefused(self) -> None:
        path = "/api/services/bbbbbbbbbbbb/drain"
        cases = [
            ("POST", {"Origin": "http://evil.example"}),
            ("DELETE", {"Origin": "http://evil.example"}),
            ("POST", {"Origin": "null"}),
            ("POST", {"Origin": "https://node-a"}),
            ("POST", {"Content-Type": "text/plain;charset=UTF-8"}),
            ("POST", {"Content-Type": "application/x-www-form-urlencoded"}),
            ("POST", {"Content-Type": "multipart/form-data; boundary=x"}),
            ("POST", {"Origin": "http://node-a", "Content-Type": "text/plain"}),
        ]
        for method, headers in cases:
            code, response, body = self.request(method, path, headers)
            self.assertEqual(code, 403, (method, headers))
            self.assertEqual(body["status"], "error")
            self.assertIn("cross-site write refused", body["message"])
            self.assertNotIn("access-control-allow-origin", response)
        self.assertEqual(self.drains.calls, [])

    def test_scriptsAndTheNodesOwnPageMayWrite(self) -> None:
        path = "/api/services/bbbbbbbbbbbb/drain"
        for headers in [
            {},
            {"Content-Type": "application/json"},
            {"Origin": "http://node-a", "Content-Type": "application/json"},
        ]:
            code, response, _ = self.request("POST", path, headers)
            self.assertEqual(code, 202, headers)
            self.assertNotIn("access-control-allow-origin", response)
        self.assertEqual(len(self.drains.calls), 3)

    def test_withATokenWritesNeedItAndReadsDoNot(self) -> None:
        site = makeSite(
            self.state,
            self.members,
            self.health,
            drains=self.drains,
            reactor=self.clock,
            token=b"0123456789abcdef",
        )
        self.client = StubTreq(site.resource)
        path = "/api/services/bbbbbbbbbbbb/drain"
        for headers in [
            {},
            {"Authorization": "Bearer wrong"},
            {"Authorization": "Basic 0123456789abcdef"},
            {"Authorization": "Bearer 0123456789abcdeF"},
        ]:
            code, response, body = self.request("POST", path, headers)
            self.assertEqual(code, 401, headers)
            self.assertEqual(response["www-authenticate"], ['Bearer realm="sidecar"'])
            self.assertEqual(
                body,
                {
                    "message": "this node's writes need its bearer token",
                    "status": "error",
                },
            )
        self.assertEqual(self.drains.calls, [])
        code, _, _ = self.request(
            "DELETE", path, {"Authorization": "Bearer 0123456789abcdef"}
        )
        self.assertEqual(code, 200)
        code, _, _ = self.request("GET", "/api/services.json")
        self.assertEqual(code, 200)

    def test_aPreflightForAWriteIsNotGranted(self) -> None:
        code, headers, _ = self.request(
            "OPTIONS",
            "/api/services/bbbbbbbbbbbb/drain",
            {
                "Origin": "http://evil.example",
                "Access-Control-Request-Method": "POST",
            },
        )
        self.assertEqual(code, 405)
        self.assertNotIn("access-control-allow-origin", headers)
        self.assertNotIn("access-control-allow-methods", headers)

    def test_drainingAServiceThatIsNotHereIs404(self) -> None:
        code, _, body = self.request("POST", "/api/services/nope/drain")
        self.assertEqual(code, 404)
        self.assertEqual(
            body,
            {"status": "error", "message": 'Not Found - Service ID "nope" not found'},
        )

    def test_drainTakesOnlyPostAndDelete(self) -> None:
        code, headers, body = self.request("GET", "/api/services/bbbbbbbbbbbb/drain")
        self.assertEqual((code, body), (405, None))
        self.assertEqual(headers["allow"], ["DELETE, POST"])
        self.assertEqual(self.drains.calls, [])

    def test_healthSaysTheNodeIsUpAndInACluster(self) -> None:
        for path in ("/api/health", "/api/health.json"):
            code, _, body = self.request("GET", path)
            self.assertEqual(code, 200)
            self.assertEqual(
                body,
                {
                    "Status": "up",
                    "Hostname": "node-a",
                    "ClusterName": "test-cluster",
                    "Members": 3,
                    "InCluster": True,
                    "Warnings": [],
                    "GoPeers": {"Members": [], "RelayLimit": 1395, "Withheld": []},
                    "Problems": [],
                },
            )

    def test_healthListsTheNodesProblemsByKindThenSubject(self) -> None:
        since = round(self.clock.seconds() * SECOND)
        self.problems.raise_("static-file", "/etc/s.json", "not JSON")
        self.clock.advance(2)
        self.problems.raise_("haproxy", "/etc/haproxy.cfg", "disk full")
        self.problems.raise_("docker", "the engine", "refused")
        self.problems.clear("docker", "the engine")
        code, _, body = self.request("GET", "/api/health")
        self.assertEqual(code, 200)
        self.assertEqual(
            body["Problems"],
            [
                {
                    "Kind": "haproxy",
                    "Subject": "/etc/haproxy.cfg",
                    "Message": "disk full",
                    "Since": formatTimestamp(since + 2 * SECOND),
                },
                {
                    "Kind": "static-file",
                    "Subject": "/etc/s.json",
                    "Message": "not JSON",
                    "Since": formatTimestamp(since),
                },
            ],
        )

    def test_healthSaysWhatToFixInHowTheNodeGossips(self) -> None:
        self.members.warnings = ["gossip on 0.0.0.0 is not encrypted: ..."]
        code, _, body = self.request("GET", "/api/health")
        self.assertEqual(code, 200)
        self.assertEqual(body["Warnings"], self.members.warnings)

    def test_healthReportsRecordsKeptFromGoPeers(self) -> None:
        self.members.go = {
            "Members": ["go-1"],
            "RelayLimit": 1395,
            "Withheld": [
                {"Hostname": "node-a", "ID": "x", "Name": "web", "Bytes": 1500}
            ],
            "Advice": "shorten it",
        }
        code, _, body = self.request("GET", "/api/health")
        self.assertEqual(code, 200)
        self.assertEqual(body["GoPeers"], self.members.go)

    def test_healthOfANodeAloneOnPurpose(self) -> None:
        self.members.names = ["node-a"]
        code, _, body = self.request("GET", "/api/health")
        self.assertEqual(code, 200)
        self.assertEqual((body["Members"], body["InCluster"]), (1, False))

    def test_healthOfANodeThatShouldHavePeersButHasNone(self) -> None:
        self.members.names = ["node-a"]
        self.members.seeded = True
        code, _, body = self.request("GET", "/api/health")
        self.assertEqual(code, 503)
        self.assertEqual(
            body,
            {
                "status": "error",
                "message": "this node is up but sees no other member of its cluster",
            },
        )

    def test_healthListsWhatTheChecksLastSaid(self) -> None:
        self.health.checks["dddddddddddd"] = {
            "Name": "web",
            "Status": "Unhealthy",
            "LastError": "HTTP 503 from http://127.0.1.1:8080/version",
        }
        code, headers, body = self.request("GET", "/api/checks.json")
        self.assertEqual(code, 200)
        self.assertEqual(headers["content-type"], ["application/json"])
        self.assertEqual(body, {"Hostname": "node-a", "Checks": self.health.checks})
        code, _, _ = self.request("GET", "/api/health.txt")
        self.assertEqual(code, 404)

    def test_oneServiceByName(self) -> None:
        code, _, body = self.request("GET", "/api/services/web.json")
        self.assertEqual(code, 200)
        self.assertEqual(list(body), ["Services", "ClusterName"])
        self.assertEqual(list(body["Services"]), ["web"])
        self.assertEqual(len(body["Services"]["web"]), 2)

    def test_unknownServiceIs404WithGoErrorBody(self) -> None:
        code, headers, body = self.request("GET", "/api/services/nope.json")
        self.assertEqual(code, 404)
        self.assertEqual(headers["content-type"], ["application/json"])
        self.assertEqual(
            body, {"status": "error", "message": "no instances of nope found"}
        )

    def test_otherExtensionIs404InvalidContentType(self) -> None:
        for path in ("/api/state.yaml", "/api/services.xml", "/api/services/web.txt"):
            code, _, body = self.request("GET", path)
            self.assertEqual(code, 404, path)
            self.assertEqual(
                body,
                {
                    "status": "error",
                    "message": "Not Found - Invalid content type extension",
                },
            )

    def test_writesAreRefusedWith405(self) -> None:
        for method in ("POST", "PUT", "DELETE"):
            code, headers, body = self.request(method, "/api/state.json")
            self.assertEqual((code, body), (405, None), method)
            self.assertEqual(headers["allow"], ["GET, HEAD, OPTIONS"])

    def test_percentEncodedNamesAreDecoded(self) -> None:
        self.state.merge(record("dddddddddddd", "my svc", "node-b", self.state.now()))
        code, _, body = self.request("GET", "/api/services/my%20svc.json")
        self.assertEqual(code, 200)
        self.assertEqual(list(body["Services"]), ["my svc"])

    def test_badPercentEncodingIs400(self) -> None:
        code, _, body = self.request("GET", "/api/services/%FF%FE.json")
        self.assertEqual(code, 400)
        self.assertEqual(body["status"], "error")

    def test_readsDoNotChangeTheCatalog(self) -> None:
        before = sorted(self.state.services(), key=lambda s: s.id)
        for path in ("/api/state.json", "/api/services.json", "/api/services/web.json"):
            self.request("GET", path)
        self.assertEqual(sorted(self.state.services(), key=lambda s: s.id), before)
