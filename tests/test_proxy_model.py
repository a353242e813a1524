"""
The proxy model (which frontends, which servers) and its rendering by the
default template, checked by a real C{haproxy -c}.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import FrozenInstanceError, replace
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from sidecar.catalog import Port, Service, Status
from sidecar.proxy.model import (
    Admission,
    Conflict,
    Frontend,
    ProxyModel,
    Refusal,
    Server,
    buildModel,
    describeChanges,
    sanitize,
)
from sidecar.proxy.template import ProxyTemplate, ProxyTemplateError, TemplateSettings

# 2026-01-01, in nanoseconds: a plausible Created.
CREATED = 1_767_225_600 * 1_000_000_000
SECOND = 1_000_000_000
SETTINGS = TemplateSettings(
    "127.0.0.168", "/run/sidecar/haproxy.sock", "127.0.0.1:3212"
)


def instance(
    serviceID: str,
    name: str = "web",
    host: str = "host-a",
    port: int = 8080,
    servicePort: int = 10001,
    status: Status = Status.ALIVE,
    **kw: object,
) -> Service:
    return Service(
        id=serviceID,
        name=name,
        image="img",
        hostname=host,
        ports=(Port("tcp", port, servicePort, "127.0.1.1"),),
        status=status,
        **kw,  # type: ignore[arg-type]
    )


class ModelTests(SynchronousTestCase):
    def test_aBackendHoldsOnlyAliveInstances(self) -> None:
        model = buildModel(
            [
                instance("a1"),
                instance("b2", host="host-b", port=8081),
                instance("c3", port=8082, status=Status.UNHEALTHY),
                instance("d4", port=8083, status=Status.UNKNOWN),
                instance("e5", port=8084, status=Status.DRAINING),
                instance("f6", port=8085, status=Status.TOMBSTONE),
            ]
        )
        [frontend] = model.frontends
        self.assertEqual((frontend.name, frontend.servicePort), ("web-10001", 10001))
        self.assertEqual(
            frontend.servers,
            (
                Server("host-a-a1", "127.0.1.1", 8080, "host-a"),
                Server("host-b-b2", "127.0.1.1", 8081, "host-b"),
            ),
        )

    def test_aFrontendStaysWhenNoInstanceIsHealthy(self) -> None:
        model = buildModel([instance("a1", status=Status.UNHEALTHY)])
        self.assertEqual(
            [(f.name, f.servers) for f in model.frontends], [("web-10001", ())]
        )
        self.assertEqual(
            buildModel([instance("a1", status=Status.TOMBSTONE)]), ProxyModel()
        )

    def test_modes(self) -> None:
        model = buildModel(
            [
                instance("a1", name="db", servicePort=1, proxyMode="tcp"),
                instance("b2", name="chat", servicePort=2, proxyMode="ws"),
                instance("c3", name="web", servicePort=3),
            ]
        )
        self.assertEqual(
            [(f.name, f.mode, f.websocket) for f in model.frontends],
            [
                ("db-1", "tcp", False),
                ("chat-2", "http", True),
                ("web-3", "http", False),
            ],
        )

    def test_theNewestInstanceSetsTheMode(self) -> None:
        model = buildModel(
            [
                instance("a1", proxyMode="tcp", updated=1),
                instance("b2", proxyMode="http", updated=2),
            ]
        )
        self.assertEqual(model.frontends[0].mode, "http")

    def test_addresses(self) -> None:
        byIP = buildModel([instance("a1")])
        self.assertEqual(byIP.frontends[0].servers[0].address, "127.0.1.1")
        byName = buildModel([instance("b2")], useHostnames=True)
        self.assertEqual(byName.frontends[0].servers[0].address, "host-a")

    def test_onlyTcpPortsWithAServicePort(self) -> None:
        service = Service(
            id="a1",
            name="dns",
            image="",
            hostname="h",
            ports=(
                Port("udp", 53, 10053, "127.0.1.1"),
                Port("sctp", 38412, 10055, "127.0.1.1"),
                Port("tcp", 9090, 0, "127.0.1.1"),
                Port("tcp", 8053, 10054, "127.0.1.1"),
            ),
        )
        self.assertEqual(
            [f.servicePort for f in buildModel([service]).frontends], [10054]
        )

    def test_namesAreSanitizedAsInGo(self) -> None:
        self.assertEqual(sanitize("My_Web.app"), "-y--eb-app")
        model = buildModel([instance("a1", name="My_Web", host="host.example")])
        self.assertEqual(model.frontends[0].name, "-y--eb-10001")
        self.assertEqual(model.frontends[0].servers[0].name, "host.example-a1")

    def test_aContestedServicePortGoesToThisHostsServiceThenTheOlder(self) -> None:
        """
        This host's own service keeps a contested ServicePort here; between
        other hosts' services the older by C{Created} keeps it, and a
        C{Created} before 2000 or more than a day ahead of this node's
        clock counts for nothing (a record of C{Created} 0 must not take a
        port from the real service).
        """
        admission = Admission(
            localHost="host-a", now=CREATED + 3600 * SECOND, loopbackTargets=True
        )
        remote = [
            instance("a1", name="web", host="host-b", created=CREATED + 5 * SECOND),
            instance("b2", name="api", host="host-c", created=CREATED + SECOND),
            instance("c3", name="web", host="host-b", servicePort=10002),
            instance("d4", name="zero", host="host-c", created=0),
            instance("e5", name="future", host="host-c", created=CREATED * 2),
        ]
        model = buildModel(remote, admission=admission)
        self.assertEqual(
            [(f.servicePort, f.service) for f in model.frontends],
            [(10001, "api"), (10002, "web")],
        )
        self.assertEqual(
            [str(c) for c in model.conflicts],
            [
                "ServicePort 10001: web is refused, api (older) keeps it",
                "ServicePort 10001: future is refused, api (older) keeps it",
                "ServicePort 10001: zero is refused, api (older) keeps it",
            ],
        )
        # This host's own service, however young, keeps it here.
        local = instance("f6", name="mine", host="host-a", created=CREATED * 2)
        model = buildModel([*remote, local], admission=admission)
        self.assertEqual(model.frontends[0].service, "mine")
        self.assertIn(
            Conflict(10001, "mine", "api", "runs on this host"), model.conflicts
        )
        # Among implausible ones only, the name decides.
        model = buildModel(remote[3:], admission=admission)
        self.assertEqual(
            model.conflicts, (Conflict(10001, "future", "zero", "first by name"),)
        )

    def test_aCreatedUpToADayAheadOrFrom2000Counts(self) -> None:
        """
        The bounds of a plausible C{Created}, to the nanosecond: "zzz",
        last by name, keeps the port from "aaa" (C{Created} 0) only when
        its own C{Created} counts.
        """
        admission = Admission(now=CREATED, loopbackTargets=True)
        day = 86_400 * SECOND
        year2000 = 946_684_800 * SECOND
        for created, why in [
            (CREATED + day, "older"),
            (CREATED + day + 1, "first by name"),
            (year2000, "older"),
            (year2000 - 1, "first by name"),
        ]:
            model = buildModel(
                [
                    instance("a1", name="aaa", host="host-b", created=0),
                    instance("z1", name="zzz", host="host-c", created=created),
                ],
                admission=admission,
            )
            kept = "zzz" if why == "older" else "aaa"
            refused = "aaa" if why == "older" else "zzz"
            self.assertEqual(model.conflicts, (Conflict(10001, kept, refused, why),))

    def test_aFrontendIsFoundByItsName(self) -> None:
        model = buildModel(
            [instance("a1"), instance("b1", name="api", servicePort=10002)]
        )
        # A name as a caller builds it, not the model's own string.
        api = model.frontend("".join(["api-", "10002"]))
        self.assertEqual((api.service, api.servicePort), ("api", 10002))  # type: ignore[union-attr]
        self.assertIsNone(model.frontend("nope-1"))

    def test_eachPortOfAnInstanceGoesToItsOwnFrontend(self) -> None:
        ports = (
            Port("tcp", 8080, 10001, "127.0.1.1"),
            Port("tcp", 8081, 10002, "127.0.1.1"),
            Port("tcp", 8082, 10003, "127.0.1.1"),
        )
        model = buildModel([replace(instance("a1"), ports=ports)])
        self.assertEqual(
            [(f.servicePort, [s.port for s in f.servers]) for f in model.frontends],
            [(10001, [8080]), (10002, [8081]), (10003, [8082])],
        )
        self.assertEqual(model.refused, ())

    def test_aPortTypeDecodedOffTheWireCounts(self) -> None:
        # "tcp" as a decoder makes it: equal to, not the same as, a literal.
        tcp = "".join(["t", "cp"])
        model = buildModel(
            [replace(instance("a1"), ports=(Port(tcp, 8080, 10001, "127.0.1.1"),))]
        )
        self.assertEqual([f.servicePort for f in model.frontends], [10001])

    def test_thisHostsOwnInstancesMayUseLoopback(self) -> None:
        # This host's name as the configuration gives it, not the record's
        # own string.
        admission = Admission(localHost="".join(["host-", "a"]))
        model = buildModel([instance("a1", host="host-a")], admission=admission)
        self.assertEqual([s.address for s in model.frontends[0].servers], ["127.0.1.1"])
        self.assertEqual(model.refused, ())

    def test_onlyThisHostsInstancesRunOnThisHost(self) -> None:
        # Hosts before and after this one by name: neither is this host,
        # so the older service keeps the port.
        admission = Admission(localHost="host-m", now=CREATED, loopbackTargets=True)
        model = buildModel(
            [
                instance("a1", name="young", host="host-a", created=CREATED),
                instance("z1", name="old", host="host-z", created=CREATED - SECOND),
            ],
            admission=admission,
        )
        self.assertEqual(model.conflicts, (Conflict(10001, "old", "young", "older"),))

    def test_frontendsAndConflictsAreValues(self) -> None:
        # A model is compared with the last one applied: no part of it
        # changes in place.
        model = buildModel(
            [instance("a1"), instance("b2", name="api", host="host-b")],
            admission=Admission(loopbackTargets=True),
        )
        self.assertRaises(
            FrozenInstanceError, setattr, model.frontends[0], "servicePort", 1
        )
        self.assertRaises(FrozenInstanceError, setattr, model.conflicts[0], "kept", "x")
        self.assertRaises(FrozenInstanceError, setattr, Admission(), "now", 1)

    def test_theLayoutIgnoresServers(self) -> None:
        one = buildModel([instance("a1")])
        two = buildModel([instance("a1"), instance("b2", host="host-b")])
        self.assertEqual(one.layout(), two.layout())
        self.assertNotEqual(one, two)
        self.assertNotEqual(
            one.layout(), buildModel([instance("a1", servicePort=1)]).layout()
        )


class HostileRecordTests(SynchronousTestCase):
    """
    Records come from other nodes: none may write HAProxy's file or its
    runtime commands, nor block every update with a port out of range.
    """

    def test_anAddressThatIsNotOneIsIgnoredAndReported(self) -> None:
        evil = Service(
            id="e1",
            name="web\n    server evil 6.6.6.6:80",
            image="",
            hostname="host-b",
            ports=(Port("tcp", 80, 10001, "10.0.0.1 check\n    server evil"),),
        )
        good = instance("a1")
        model = buildModel([evil, good])
        text = ProxyTemplate.default().render(model, SETTINGS)
        self.assertNotIn("evil", text)
        self.assertEqual(
            [s.name for f in model.frontends for s in f.servers], ["host-a-a1"]
        )
        [refusal] = model.refused
        self.assertEqual(refusal.what, "host-b/e1")
        self.assertTrue(refusal.reason.startswith("not an IP address: "), refusal)

    def test_onlyIPLiteralsAreAddresses(self) -> None:
        """
        A host name where an IP belongs would make HAProxy resolve it, and
        refuse the whole file when it cannot: it is refused alone.
        """
        for address in ("no-such-host", "1.2.3.4.5", ""):
            record = replace(
                instance("b2", host="host-b"),
                ports=(Port("tcp", 8080, 10001, address),),
            )
            model = buildModel([record, instance("a1")])
            self.assertEqual(
                [s.name for s in model.frontends[0].servers], ["host-a-a1"]
            )
            self.assertEqual([r.what for r in model.refused], ["host-b/b2"], address)
        self.assertEqual(
            str(
                buildModel(
                    [replace(instance("b2"), ports=(Port("tcp", 1, 2, "x y"),))]
                ).refused[0]
            ),
            "host-a/b2: not an IP address: 'x y'",
        )

    def test_portsOutOfRangeAreIgnoredAndReported(self) -> None:
        wide = Service(
            id="w1",
            name="wide",
            image="",
            hostname="host-b",
            ports=(Port("tcp", 80, 70000, "127.0.1.2"),),
        )
        model = buildModel([wide])
        self.assertEqual(model.frontends, ())
        self.assertEqual(
            model.refused,
            (Refusal("host-b/w1", "port 80 or ServicePort 70000 out of range"),),
        )

    def test_portsAreInRangeFrom1To65535(self) -> None:
        ports = (
            Port("tcp", 65535, 65535, "127.0.1.2"),
            Port("tcp", 1, 1, "127.0.1.3"),
            Port("tcp", -1, 10001, "127.0.1.2"),
            Port("tcp", 80, -1, "127.0.1.2"),
            Port("tcp", 65536, 10002, "127.0.1.2"),
        )
        model = buildModel([Service("w1", "wide", hostname="host-b", ports=ports)])
        self.assertEqual(
            [(f.servicePort, [s.port for s in f.servers]) for f in model.frontends],
            [(1, [1]), (65535, [65535])],
        )
        self.assertEqual(
            [r.reason for r in model.refused],
            [
                "port -1 or ServicePort 10001 out of range",
                "port 80 or ServicePort -1 out of range",
                "port 65536 or ServicePort 10002 out of range",
            ],
        )

    def test_serverNamesThatCollideAfterSanitisingKeepTheFirst(self) -> None:
        """
        C{a-b}/C{c} and C{a}/C{b-c} are both C{a-b-c}: HAProxy refuses two
        servers of one name, so the second is left out and reported; this
        host's instance keeps the name whatever the order.
        """
        one = instance("c", host="a-b", port=1)
        two = instance("b-c", host="a", port=2)
        model = buildModel([one, two])
        self.assertEqual(
            [(s.name, s.port) for s in model.frontends[0].servers], [("a-b-c", 2)]
        )
        self.assertEqual(
            model.refused,
            (Refusal("a-b/c", "server name a-b-c is taken in web-10001 by a"),),
        )
        # This host's name as the configuration gives it (not the record's
        # string), and loopback allowed: the name, not the address, decides.
        local = Admission(localHost="".join(["a-", "b"]), loopbackTargets=True)
        mine = buildModel([one, two], admission=local)
        self.assertEqual([s.port for s in mine.frontends[0].servers], [1])
        self.assertEqual(
            mine.refused,
            (Refusal("a/b-c", "server name a-b-c is taken in web-10001 by a-b"),),
        )

    def test_anotherHostsLoopbackOrTheProxyIPIsNeverRouted(self) -> None:
        """
        Another host's instance at a loopback or link-local address, or at
        the proxy IP, would expose this node's own ports (its API) on the
        proxy IP; this host's own instances may use loopback.
        """
        admission = Admission(localHost="host-a", bindIP="127.0.0.168")
        for address in (
            "127.0.0.1",
            "127.1.2.3",
            "::1",
            "::ffff:127.0.0.1",
            "169.254.1.1",
            "fe80::1",
            "0.0.0.0",
        ):
            remote = replace(
                instance("b2", host="host-b"),
                ports=(Port("tcp", 7777, 10001, address),),
            )
            model = buildModel([remote, instance("a1")], admission=admission)
            self.assertEqual(
                [s.hostname for s in model.frontends[0].servers], ["host-a"]
            )
            self.assertEqual(
                model.refused,
                (
                    Refusal(
                        "host-b/b2",
                        f"address {address} of another host is this node's own",
                    ),
                ),
            )
        proxyIP = replace(
            instance("a1"), ports=(Port("tcp", 80, 10001, "127.0.0.168"),)
        )
        self.assertEqual(
            buildModel([proxyIP], admission=admission).refused,
            (Refusal("host-a/a1", "address 127.0.0.168 is the proxy's own IP"),),
        )
        mapped = replace(
            instance("a1"), ports=(Port("tcp", 80, 10001, "::ffff:127.0.0.168"),)
        )
        self.assertEqual(
            [r.reason for r in buildModel([mapped], admission=admission).refused],
            ["address ::ffff:127.0.0.168 is the proxy's own IP"],
        )

    def test_byHostNameAnotherHostCannotBeLocalhost(self) -> None:
        admission = Admission(localHost="host-a")
        for name in ("localhost", "LOCALHOST.", "api.localhost"):
            model = buildModel(
                [instance("b2", host=name), instance("a1", host="host-a")],
                useHostnames=True,
                admission=admission,
            )
            self.assertEqual(
                [s.address for s in model.frontends[0].servers], ["host-a"]
            )
            self.assertEqual(
                model.refused,
                (
                    Refusal(
                        f"{name}/b2",
                        f"host name {name} of another host is this node's own",
                    ),
                ),
            )

    def test_byHostNameThisHostMayBeLocalhost(self) -> None:
        # A node named "localhost" (a laptop's) routes to its own instances.
        model = buildModel(
            [instance("a1", host="localhost")],
            useHostnames=True,
            admission=Admission(localHost="localhost"),
        )
        self.assertEqual([s.address for s in model.frontends[0].servers], ["localhost"])
        self.assertEqual(model.refused, ())

    def test_byHostNameOtherHostsBeforeLocalhostByNameAreRouted(self) -> None:
        model = buildModel(
            [instance("b2", host="alpha")],
            useHostnames=True,
            admission=Admission(localHost="host-a"),
        )
        self.assertEqual([s.address for s in model.frontends[0].servers], ["alpha"])
        self.assertEqual(model.refused, ())

    def test_aServicePortOfOursOrInUseGetsNoFrontend(self) -> None:
        """
        A ServicePort this node uses (gossip, API) or that something else
        holds would pass C{haproxy -c} and fail every reload: no frontend,
        and the rest goes on.
        """
        admission = Admission(
            loopbackTargets=True,
            reservedPorts=frozenset({7946}),
            bindable=lambda port: "in use" if port == 10002 else None,
        )
        model = buildModel(
            [
                instance("a1", servicePort=7946),
                instance("b2", name="api", servicePort=10002),
                instance("c3", name="ok", servicePort=10003),
            ],
            admission=admission,
        )
        self.assertEqual([f.name for f in model.frontends], ["ok-10003"])
        self.assertEqual(
            [str(r) for r in model.refused],
            [
                "ServicePort 7946: web: ServicePort 7946 is one of this node's "
                "own ports",
                "ServicePort 10002: api: ServicePort 10002 cannot be bound: in use",
            ],
        )


class LostSightTests(SynchronousTestCase):
    """
    When this node loses the cluster, other hosts' records are tombstoned
    here; their frontends keep their last servers.
    """

    def setUp(self) -> None:
        self.before = buildModel([instance("a1", host="host-b")])

    def test_serversOfHostsOutOfSightAreKept(self) -> None:
        expired = instance("a1", host="host-b", status=Status.TOMBSTONE)
        after = buildModel([expired], liveHosts={"host-a"}, previous=self.before)
        self.assertEqual(after.frontends, self.before.frontends)
        self.assertEqual(after.kept, ("web-10001",))

    def test_serversOfLiveHostsThatTurnedUnhealthyAreNot(self) -> None:
        sick = instance("a1", host="host-b", status=Status.UNHEALTHY)
        after = buildModel([sick], liveHosts={"host-a", "host-b"}, previous=self.before)
        self.assertEqual(after.frontends[0].servers, ())
        self.assertEqual(after.kept, ())

    def test_anotherServiceOnThePortIsNoReasonToKeep(self) -> None:
        # Another name now claims the port, with no server yet (before
        # and after "web" by name): its frontend, not the old one.
        for name in ("api", "zzz"):
            newcomer = instance("n1", name=name, status=Status.DRAINING)
            after = buildModel([newcomer], liveHosts={"host-a"}, previous=self.before)
            self.assertEqual(
                [(f.service, f.servers) for f in after.frontends], [(name, ())]
            )
            self.assertEqual(after.kept, ())

    def test_serversOfHostsOutOfSightAreKeptWhateverTheirLastStatus(self) -> None:
        # Last seen unhealthy, then out of sight: the frontend, of the same
        # name, has no server left, so the last servers are kept.
        sick = instance("a1", host="host-b", status=Status.UNHEALTHY)
        after = buildModel([sick], liveHosts={"host-a"}, previous=self.before)
        self.assertEqual(after.frontends, self.before.frontends)
        self.assertEqual(after.kept, ("web-10001",))

    def test_withoutMembershipNothingIsKept(self) -> None:
        expired = instance("a1", host="host-b", status=Status.TOMBSTONE)
        self.assertEqual(buildModel([expired], previous=self.before), ProxyModel())


class TemplateTests(SynchronousTestCase):
    def render(self, model: ProxyModel) -> str:
        return ProxyTemplate.default().render(model, SETTINGS)

    def test_theDefaultTemplate(self) -> None:
        text = self.render(
            buildModel(
                [
                    instance("a1"),
                    instance("b2", name="chat", servicePort=2, proxyMode="ws"),
                ]
            )
        )
        self.assertIn(
            "frontend web-10001\n    mode http\n    bind 127.0.0.168:10001\n"
            "    option idle-close-on-response\n    default_backend web-10001\n",
            text,
        )
        self.assertIn(
            "backend web-10001\n    mode http\n    server host-a-a1 127.0.1.1:8080\n",
            text,
        )
        self.assertIn("timeout tunnel 1h", text)
        self.assertIn(
            "stats socket /run/sidecar/haproxy.sock mode 600 level admin", text
        )
        self.assertIn("bind 127.0.0.1:3212", text)
        # A host name that does not resolve disables its server, rather than
        # making HAProxy refuse the file.
        self.assertIn("    default-server init-addr last,libc,none\n", text)

    def test_theDefaultTemplateIsValidForHAProxy(self) -> None:
        haproxy = shutil.which("haproxy")
        if haproxy is None:
            raise self.skipTest("haproxy is not installed")
        model = buildModel(
            [
                instance("a1"),
                instance("b2", name="db", servicePort=2, proxyMode="tcp"),
                instance("c3", name="chat", servicePort=3, proxyMode="ws"),
                instance("d4", name="idle", servicePort=4, status=Status.UNHEALTHY),
            ]
        )
        path = Path(self.mktemp())
        path.write_text(self.render(model))
        checked = subprocess.run(
            [haproxy, "-c", "-f", str(path)], capture_output=True, text=True, timeout=30
        )
        self.assertEqual(checked.returncode, 0, checked.stdout + checked.stderr)

    def test_aTemplateThatDoesNotParse(self) -> None:
        error = self.assertRaises(
            ProxyTemplateError, ProxyTemplate, "global\n{% for x in %}\n", "my.cfg.j2"
        )
        self.assertTrue(str(error).startswith("my.cfg.j2: line 2: "), str(error))

    def test_aTemplateThatDoesNotRender(self) -> None:
        template = ProxyTemplate("bind {{ bind_address }}\n", "my.cfg.j2")
        error = self.assertRaises(
            ProxyTemplateError, template.render, ProxyModel(), SETTINGS
        )
        self.assertIn("my.cfg.j2: ", str(error))
        self.assertIn("'bind_address' is undefined", str(error))

    def test_aMissingTemplateFile(self) -> None:
        error = self.assertRaises(
            ProxyTemplateError, ProxyTemplate.fromFile, "/nonexistent.j2"
        )
        self.assertIn("/nonexistent.j2: cannot read", str(error))

    def test_aValueThatIsNotTextIsAnErrorNotARepr(self) -> None:
        for source in ("{{ lipsum }}", "{{ frontends }}", "{{ range }}"):
            template = ProxyTemplate(source, "my.cfg.j2")
            error = self.assertRaises(
                ProxyTemplateError, template.render, ProxyModel(), SETTINGS
            )
            self.assertIn("my.cfg.j2: ", str(error))
            self.assertIn("only text and numbers print", str(error))

    def test_aTemplateSeesNamesOnlySanitised(self) -> None:
        hostile = Service(
            id="a1",
            name="web\n    server evil 6.6.6.6:80",
            image="",
            hostname="host-b\n    bind *:22",
            ports=(Port("tcp", 80, 10001, "127.0.1.2"),),
        )
        template = ProxyTemplate(
            "{% for f in frontends %}{{ f.service }}"
            "{% for s in f.servers %} {{ s.hostname }} {{ s.name }}{% endfor %}"
            "{% endfor %}",
            "custom.cfg.j2",
        )
        self.assertEqual(
            template.render(buildModel([hostile]), SETTINGS),
            "web-----server-evil-6-6-6-6-80 host-b-----bind--:22"
            " host-b-----bind--:22-a1",
        )


class DescribeChangesTests(SynchronousTestCase):
    """
    L{describeChanges}: what a proxy update changed, for its log line.
    """

    def frontend(self, port: int, *servers: Server) -> Frontend:
        return Frontend(f"web-{port}", "web", port, "http", False, servers)

    def test_serversInAndOutAndFrontendsAddedAndRemoved(self) -> None:
        a = Server("host-a-i1", "127.0.1.1", 8080, "host-a")
        b = Server("host-b-i2", "127.0.1.2", 8080, "host-b")
        moved = Server("host-a-i1", "127.0.1.9", 8080, "host-a")
        before = ProxyModel(frontends=(self.frontend(10001, a), self.frontend(10003)))
        after = ProxyModel(
            frontends=(self.frontend(10001, b, moved), self.frontend(10002, a))
        )
        self.assertEqual(
            describeChanges(before, after),
            "web:10001 +host-a-i1@127.0.1.9:8080 +host-b-i2@127.0.1.2:8080"
            " -host-a-i1@127.0.1.1:8080; web:10002 added; web:10003 removed",
        )

    def test_firstModelAndNoChange(self) -> None:
        model = ProxyModel(frontends=(self.frontend(10001),))
        self.assertEqual(describeChanges(None, model), "web:10001 added")
        self.assertEqual(describeChanges(model, model), "no frontend or server changed")
