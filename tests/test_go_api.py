"""
Our API and the real Go Sidecar's, byte for byte, for the same catalog:
one Go node and one of ours in one cluster (L{MixedCluster}), each with a
service of its own, both listing every instance; then the same requests
to both, whose status codes, the headers a Go client could notice and the
body bytes must be the same.

Normalised, and only these values (blanked in the bytes, so the rest is
still compared byte for byte, key order and indentation too; the key
order of state.json is also checked on its parsed pairs):

  - in C{/api/state.json}, the top-level C{Hostname}: the serving node's
    own name (C{go-1} on one, C{ours-1} on the other);
  - in C{/api/state.json}, every C{LastChanged}, the top-level one and
    each server's: when the serving node saw that catalog or server
    change, its local bookkeeping, never gossiped (the Go node stamps its
    own server's from its clock, microseconds after the record's
    C{Updated}, which no peer, Go or ours, can know);
  - in every read, the C{Updated} of the Go node's own records and the
    C{LastUpdated} equal to it (its server's in state.json, its
    C{ClusterMembers} entry in services.json): the Go node refreshes its
    own records' C{Updated} every second in its own catalog but gossips
    them only now and then, so between two broadcasts no peer holds the
    time its API shows (see L{withoutGoRefresh}).

Our node's records, and every other time, travel with each change and are
compared as they are.

Headers: C{Content-Type}, C{Access-Control-Allow-Origin},
C{Access-Control-Allow-Methods}, C{X-Content-Type-Options} and
C{Content-Encoding} must be the same (or absent on both), and neither side
may have a header the other lacks, but for C{Date} and C{Content-Length}
(and their order), and what docs/migrating.md lists as ours on purpose:
C{ETag}, C{Last-Modified}, C{Vary} (the cached encodings) and C{Allow} on
a 405.  The client sends no C{Accept-Encoding}, so both answer the plain
bytes (ours gzips only for a client that asks; Go never does).
"""

from __future__ import annotations

import json
import re
from typing import Any

from twisted.internet import reactor
from twisted.trial.unittest import TestCase
from twisted.web.client import Agent, HTTPConnectionPool, readBody

from sidecar.catalog import Status

from .gosidecar import goSkipReason, privateNetwork
from .processes import pollUntil
from .test_go_interop import MixedCluster, apiURL

# Headers a Go client could notice: the same on both nodes, or on neither.
NOTICED = (
    "content-type",
    "access-control-allow-origin",
    "access-control-allow-methods",
    "x-content-type-options",
    "content-encoding",
)
# Headers either side may have alone: HTTP's bookkeeping, and
# ours on purpose (docs/migrating.md: cached encodings, Allow on a 405).
UNCOMPARED = {
    "date",
    "content-length",
    "etag",
    "last-modified",
    "vary",
    "allow",
}
NODE_LOCAL = "-"
GO_NODE = "go-1"


class Answer:
    """
    One HTTP answer: status code, headers (lower-cased names), body.
    """

    def __init__(self, code: int, headers: dict[str, list[bytes]], body: bytes) -> None:
        self.code = code
        self.headers = headers
        self.body = body

    def __repr__(self) -> str:
        return f"<{self.code} {self.headers!r} {self.body!r}>"


async def request(base: str, method: str, path: str) -> Answer:
    """
    C{method} C{path} under the API at C{base}, on a connection of its own,
    with no headers but Twisted's own (C{Host}, C{Connection: close}).
    """
    pool = HTTPConnectionPool(reactor, persistent=False)
    agent = Agent(reactor, pool=pool)
    found = agent.request(method.encode(), f"{base}{path}".encode())
    found.addTimeout(5, reactor)
    response = await found
    body = await readBody(response)
    headers = {
        name.decode().lower(): list(values)
        for name, values in response.headers.getAllRawHeaders()
    }
    return Answer(response.code, headers, body)


def records(state: bytes) -> Any:
    """
    The records of a C{state.json} body, by server and ID, but for the Go
    node's own records' C{Updated} (see L{withoutGoRefresh}): what must be
    the same for the two nodes to hold the same catalog.
    """
    held = json.loads(withoutGoRefresh(state))
    return {name: server["Services"] for name, server in held["Servers"].items()}


def _goRecords(document: Any) -> list[Any]:
    """
    Every record (an object with C{ID} and C{Hostname}) in C{document}
    whose origin is the Go node.
    """
    if isinstance(document, list):
        return [r for each in document for r in _goRecords(each)]
    if not isinstance(document, dict):
        return []
    if "ID" in document and document.get("Hostname") == GO_NODE:
        return [document]
    return [r for each in document.values() for r in _goRecords(each)]


def withoutGoRefresh(body: bytes) -> bytes:
    """
    C{body} (a JSON answer) with the C{Updated} of the Go node's own
    records, and every C{LastUpdated} equal to it (its server's, its
    C{ClusterMembers} entry's), blanked, the rest as it is.

    The Go node stamps its own records' C{Updated} anew every second, in
    its own catalog, and gossips them only now and then: between two of
    its broadcasts no peer (Go or ours) holds the time its API shows.
    The records of our node travel at each change, and are compared.
    """
    try:
        document = json.loads(body)
    except ValueError:
        return body  # not JSON: an empty 405, Go's mux 404
    for record in _goRecords(document):
        when = json.dumps(record["Updated"]).encode()
        for key in (b'"Updated"', b'"LastUpdated"'):
            for colon in (b":", b": "):
                body = body.replace(key + colon + when, key + colon + b'"-"')
    return body


def withoutNodeLocal(state: bytes) -> bytes:
    """
    C{state} with the values of every C{LastChanged} (top-level or a
    server's: records have none) and of the top-level C{Hostname} blanked,
    the rest as it is.  The top-level pairs follow C{Servers} (the key
    order is checked before), so they are after the last C{"LastChanged"}.
    """
    state = re.sub(rb'"LastChanged":"[^"]*"', b'"LastChanged":"-"', state)
    start = state.rindex(b'"LastChanged":')
    tail = re.sub(rb'"Hostname":"[^"]*"', b'"Hostname":"-"', state[start:])
    return state[:start] + tail


def pairsWithoutNodeLocal(state: bytes) -> Any:
    """
    C{state} parsed into lists of pairs (so key order counts), with the
    fields L{withoutNodeLocal} blanks blanked.
    """
    document = json.loads(withoutGoRefresh(state), object_pairs_hook=list)
    for _, server in dict(document)["Servers"]:
        server[:] = [
            (key, NODE_LOCAL if key == "LastChanged" else value)
            for key, value in server
        ]
    return [
        (key, NODE_LOCAL if key in ("LastChanged", "Hostname") else value)
        for key, value in document
    ]


class GoAPIBytesTests(TestCase):
    skip = goSkipReason()
    timeout = 180

    async def setUp(self) -> None:  # type: ignore[override]
        privateNetwork(self)
        self.cluster = MixedCluster(self)
        await self.cluster.oursJoinsGo()
        await self.cluster.waitForMembers()
        await self.cluster.waitForStatus("svc-go", Status.ALIVE)
        await self.cluster.waitForStatus("svc-ours", Status.ALIVE)
        self.goAPI = self.cluster.go.api
        self.ourAPI = apiURL(self.cluster.ours)

    async def both(self, method: str, path: str) -> tuple[Answer, Answer]:
        return (
            await request(self.goAPI, method, path),
            await request(self.ourAPI, method, path),
        )

    def assertSameAnswer(
        self, go: Answer, ours: Answer, what: str, body: bool = True
    ) -> None:
        """
        The same status code and noticed headers, no header on one side
        only (but L{UNCOMPARED}), and (if C{body}) the same body bytes.
        """
        self.assertEqual(ours.code, go.code, what)
        for name in NOTICED:
            self.assertEqual(ours.headers.get(name), go.headers.get(name), (what, name))
        self.assertEqual(
            set(ours.headers) - UNCOMPARED, set(go.headers) - UNCOMPARED, what
        )
        if body:
            self.assertEqual(
                withoutGoRefresh(ours.body), withoutGoRefresh(go.body), what
            )

    async def test_readsOfTheSameCatalog(self) -> None:
        """
        C{services.json}, C{services/<name>.json} for a service of each
        side and C{state.json} are Go's bytes, but for the serving node's
        own fields of C{state.json}.  The answers are taken while the
        catalog stands still: the two C{state.json} before and after them
        hold the same records, or all are taken again (a re-announced
        record may land between two requests).
        """
        paths = ("/services.json", "/services/svc-go.json", "/services/svc-ours.json")

        async def stillCatalog() -> Any:
            goState, ourState = await self.both("GET", "/state.json")
            answers = [await self.both("GET", path) for path in paths]
            goAfter, ourAfter = await self.both("GET", "/state.json")
            bodies = (goState.body, ourState.body, goAfter.body, ourAfter.body)
            if not all(a.code == 200 for a in (goState, ourState, goAfter, ourAfter)):
                return None
            held = [records(body) for body in bodies]
            if any(each != held[0] for each in held):
                unsettled[:] = held
                return None
            return goState, ourState, answers

        unsettled: list[Any] = []
        try:
            found = await pollUntil(stillCatalog, timeout=30, every=0.1)
        except TimeoutError:
            self.fail(f"the nodes' catalogs never agreed: {unsettled!r}")
        goState, ourState, answers = found
        for path, (go, ours) in zip(paths, answers, strict=True):
            self.assertSameAnswer(go, ours, path)
        # Every instance is listed, on both.
        listed = json.loads(answers[0][0].body)["Services"]
        self.assertEqual(sorted(listed), ["svc-go", "svc-ours"])

        self.assertSameAnswer(goState, ourState, "/state.json", body=False)
        goPairs = pairsWithoutNodeLocal(goState.body)
        self.assertEqual(pairsWithoutNodeLocal(ourState.body), goPairs)
        self.assertEqual(
            [k for k, _ in goPairs],
            ["Servers", "LastChanged", "ClusterName", "Hostname"],
        )
        self.assertEqual(json.loads(goState.body)["Hostname"], "go-1")
        self.assertEqual(json.loads(ourState.body)["Hostname"], "ours-1")
        self.assertEqual(
            withoutNodeLocal(withoutGoRefresh(ourState.body)),
            withoutNodeLocal(withoutGoRefresh(goState.body)),
        )

    async def test_errors(self) -> None:
        """
        Refusals: an unknown service, a bad extension, an unknown drain
        ID, an unknown single segment (405, no body; our C{Allow} is on
        purpose), a path no route takes (Go's mux 404); and OPTIONS.
        """
        cases = [
            ("GET", "/services/nope.json", 404),
            ("GET", "/services.txt", 404),
            ("GET", "/x", 405),
            ("POST", "/services/nosuchid/drain", 404),
            ("GET", "/services/a/b", 404),
            ("OPTIONS", "/services.json", 200),
            ("OPTIONS", "/state.json", 200),
        ]
        for method, path, code in cases:
            go, ours = await self.both(method, path)
            what = f"{method} {path}"
            self.assertEqual(go.code, code, (what, go))
            self.assertSameAnswer(go, ours, what)
        # The bytes themselves, as read off Go's source, are Go's answers.
        go, _ = await self.both("POST", "/services/nosuchid/drain")
        self.assertEqual(
            go.body,
            b'{"message":"Not Found - Service ID \\"nosuchid\\" not found",'
            b'"status":"error"}',
        )
        go, _ = await self.both("GET", "/x")
        self.assertEqual(go.body, b"")

    async def test_drainOfEachNodesOwnService(self) -> None:
        """
        Each node drains its own service with the same message, but for
        the service's name and ID.
        """
        [goID] = [
            i
            for i, r in (await self.cluster.go.services()).items()
            if r["Name"] == "svc-go"
        ]
        ourID = self.cluster.ourRecord("svc-ours").id
        go = await request(self.goAPI, "POST", f"/services/{goID}/drain")
        ours = await request(self.ourAPI, "POST", f"/services/{ourID}/drain")
        self.assertEqual(go.code, 202, go)
        self.assertSameAnswer(go, ours, "drain", body=False)
        self.assertEqual(
            go.body,
            b'{\n  "Message": "Service \\"svc-go\\" instance \\"%s\\" set to'
            b' DRAINING"\n}' % goID.encode(),
        )
        self.assertEqual(
            ours.body,
            go.body.replace(b"svc-go", b"svc-ours").replace(
                goID.encode(), ourID.encode()
            ),
        )
        await self.cluster.waitForStatus("svc-go", Status.DRAINING)
        await self.cluster.waitForStatus("svc-ours", Status.DRAINING)
