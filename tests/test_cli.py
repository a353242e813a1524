"""
The C{sidecar} command against a running node: tables, C{--json}, drain
and undrain, C{check-config}, and one-line errors.
"""

from __future__ import annotations

import io
import json
import sys
from dataclasses import replace
from importlib.metadata import version
from pathlib import Path

from twisted.internet import defer
from twisted.internet.utils import getProcessOutputAndValue
from twisted.python.usage import UsageError
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.resource import Resource

from sidecar.catalog import Service, Status
from sidecar.cli import (
    CommandFailed,
    Options,
    apiBase,
    checkConfig,
    main,
    run,
    servicesTable,
)
from sidecar.config.values import parseKey
from sidecar.problems import conflictSubject
from sidecar.service import SidecarNode

from .inprocess import startNode
from .processes import nodeEnvironment, pollUntil
from .switches import serve


def parse(*argv: str) -> Options:
    options = Options()
    options.parseOptions(list(argv))
    return options


class CommandTests(TestCase):
    async def say(self, *argv: str) -> str:
        out = io.StringIO()
        await run(parse("--api", self.api, *argv), out)
        return out.getvalue()

    async def nodeWithAliveService(self) -> tuple[str, SidecarNode, Service]:
        """
        A node whose one service is ALIVE: its API's C{host:port}, the node
        and the service.
        """
        node = startNode(
            self, "host-a", "127.0.1.1", moreSettings=["[health]", 'interval = "100ms"']
        )
        await pollUntil(
            lambda: defer.succeed(
                True
                if [s for s in node.state.localServices() if s.status is Status.ALIVE]
                else None
            )
        )
        [service] = node.state.localServices()
        address = node.api.port.getHost()  # type: ignore[union-attr]
        return f"{address.host}:{address.port}", node, service

    async def test_membersServicesDrainUndrain(self) -> None:
        api, node, service = await self.nodeWithAliveService()
        self.api = f"http://{api}"
        members = await self.say("members")
        self.assertEqual(
            members.splitlines()[0].split(),
            ["NAME", "ADDRESS", "STATE", "SINCE", "INCARNATION"],
        )
        [since] = [m["Since"] for m in node.gossip.members()]
        row = members.splitlines()[1].split()
        self.assertEqual([row[0], *row[2:4]], ["host-a", "alive", since])
        services = await self.say("services")
        self.assertEqual(
            services.splitlines()[1].split()[:4],
            ["svc-host-a", service.id, "host-a", "ALIVE"],
        )
        parsed = json.loads(await self.say("members", "--json"))
        self.assertEqual(
            [(m["Name"], m["State"]) for m in parsed["Members"]], [("host-a", "alive")]
        )
        parsed = json.loads(await self.say("services", "--json"))
        self.assertEqual(list(parsed["Services"]), ["svc-host-a"])
        self.assertIn("set to DRAINING", await self.say("drain", service.id))
        self.assertIn("DRAINING", await self.say("services"))
        self.assertIn("set to ALIVE", await self.say("undrain", service.id))
        with self.assertRaises(CommandFailed) as caught:
            await self.say("drain", "nope")
        self.assertIn(
            'HTTP 404: Not Found - Service ID "nope" not found',
            str(caught.exception),
        )

    async def test_checksServicesByNameAndHonestDrains(self) -> None:
        api, node, service = await self.nodeWithAliveService()
        # Given without its scheme, as operators type it.
        self.api = api
        checks = (await self.say("checks")).splitlines()
        self.assertEqual(
            checks[0].split(), ["NAME", "ID", "STATUS", "CHECK", "CHECKED", "SAID"]
        )
        self.assertEqual(
            checks[1].split()[:4],
            ["svc-host-a", service.id, "Alive", "AlwaysSuccessful"],
        )
        # Another host's instance, as gossip would bring it.
        remote = replace(service, id="remote1", hostname="host-b", name="other")
        node.state.merge(remote)
        only = (await self.say("services", "other")).splitlines()
        self.assertEqual([line.split()[0] for line in only[1:]], ["other"])
        with self.assertRaises(CommandFailed) as caught:
            await self.say("services", "nope")
        self.assertIn("the catalog has no service 'nope'", str(caught.exception))
        with self.assertRaises(CommandFailed) as caught:
            await self.say("drain", "remote1")
        self.assertEqual(
            str(caught.exception),
            "other remote1 runs on host-b, not on this node: "
            "ask its node (the sidecar on host-b)",
        )
        with self.assertRaises(CommandFailed) as caught:
            await self.say("undrain", service.id)
        self.assertEqual(
            str(caught.exception),
            f"svc-host-a {service.id} is not drained (it is Alive): nothing to undrain",
        )
        self.assertEqual([s.status for s in node.state.localServices()], [Status.ALIVE])

    async def test_statusShowsTheNodesProblems(self) -> None:
        node = startNode(self, "host-a", "127.0.1.1")
        address = node.api.port.getHost()  # type: ignore[union-attr]
        self.api = f"http://{address.host}:{address.port}"
        status = await self.say("status")
        self.assertEqual(
            status,
            "host-a is up in cluster default with 1 member(s)\nno problems\n",
        )
        node.problems.raise_("static-file", "/etc/s.json", "not JSON")
        lines = (await self.say("status")).splitlines()
        self.assertEqual(lines[1].split(), ["KIND", "SUBJECT", "SINCE", "MESSAGE"])
        self.assertEqual(lines[2].split()[:2], ["static-file", "/etc/s.json"])
        self.assertTrue(lines[2].endswith("not JSON"))
        parsed = json.loads(await self.say("status", "--json"))
        self.assertEqual(parsed["Problems"][0]["Message"], "not JSON")

    async def test_aNodeThatIsNotThere(self) -> None:
        self.api = "http://127.0.0.1:1"
        with self.assertRaises(CommandFailed) as caught:
            await self.say("members")
        self.assertIn(
            "cannot reach http://127.0.0.1:1/api/members.json", str(caught.exception)
        )


class NoEndpoint(Resource):
    """
    What a Go Sidecar answers where it has no endpoint: a plain 405.
    """

    isLeaf = True

    def render(self, request):  # type: ignore[no-untyped-def]
        request.setResponseCode(405)
        return b""


class GoNodeTests(TestCase):
    async def test_anEndpointTheNodeLacksIsSaidInOneLine(self) -> None:
        port = serve(self, NoEndpoint())
        out = io.StringIO()
        options = parse("--api", f"http://127.0.0.1:{port}", "members")
        with self.assertRaises(CommandFailed) as caught:
            await run(options, out)
        self.assertEqual(
            str(caught.exception),
            f"http://127.0.0.1:{port}/api/members.json: HTTP 405: the node has no "
            "such endpoint (a Go Sidecar node has no members list and no undrain: "
            "ask a node of ours)",
        )


class OfflineTests(SynchronousTestCase):
    def test_servicesTheProxyLeavesOutSaySo(self) -> None:
        def instance(serviceID: str, host: str) -> dict[str, object]:
            return {
                "ID": serviceID,
                "Hostname": host,
                "Status": 0,
                "Ports": [{"IP": "10.0.0.1", "Port": 8080, "ServicePort": 10001}],
            }

        document = {
            "Services": {
                "api": [instance("a1", "h1")],
                "web": [instance("w1", "h1"), instance("w2", "h2")],
            }
        }
        problems = [
            {"Kind": "conflict", "Subject": conflictSubject("web", 10001)},
            {"Kind": "refused", "Subject": "h2/w2", "Message": "no IP"},
        ]
        rows = [
            line.split(None, 5)
            for line in servicesTable(document, problems).splitlines()
        ]
        self.assertEqual(rows[0], ["NAME", "ID", "HOST", "STATUS", "PORTS", "PROXY"])
        self.assertEqual(len(rows[1]), 5)  # api: routed, nothing to say
        self.assertEqual(rows[2][5], "ServicePort 10001 held by another service")
        self.assertEqual(
            rows[3][5], "ServicePort 10001 held by another service; refused"
        )

    def configWithStaticFile(self, static: str | None, more: str = "") -> Path:
        directory = Path(self.mktemp()).resolve()
        directory.mkdir()
        if static is not None:
            (directory / "static.json").write_text(static)
        config = directory / "node.toml"
        config.write_text('[node]\nname = "a"\n' + more)
        return config

    def test_checkConfig(self) -> None:
        good = self.configWithStaticFile("[]")
        self.assertEqual(
            checkConfig(str(good)),
            f"valid: {good}, {good.parent / 'static.json'} (0 service(s))",
        )
        bad = Path(self.mktemp())
        bad.write_text('[node]\nnmae = "a"\n')
        error = self.assertRaises(CommandFailed, checkConfig, str(bad))
        self.assertIn(
            "node.nmae: unknown key 'nmae' (did you mean 'name'?)", str(error)
        )

    def test_keygenPrintsANewKeyTheConfigurationTakes(self) -> None:
        keys = []
        for argv in (["keygen"], ["keygen"], ["keygen", "--size", "16"]):
            out = io.StringIO()
            self.successResultOf(defer.ensureDeferred(run(parse(*argv), out)))
            keys.append(out.getvalue().strip())
        self.assertNotEqual(keys[0], keys[1])
        self.assertEqual([len(parseKey(key)) for key in keys], [32, 32, 16])
        config = self.configWithStaticFile("[]", f'encrypt_key = "{keys[0]}"\n')
        self.assertTrue(checkConfig(str(config)).startswith(f"valid: {config}"))

    def test_keygenRefusesOtherSizes(self) -> None:
        self.assertRaises(UsageError, parse, "keygen", "--size", "20")

    def test_checkConfigReadsTheStaticFileAndTemplateItNames(self) -> None:
        missing = self.configWithStaticFile(None)
        error = self.assertRaises(CommandFailed, checkConfig, str(missing))
        self.assertEqual(
            str(error),
            f"{missing.parent / 'static.json'}: cannot read: No such file or directory",
        )
        broken = self.configWithStaticFile('[{"Service": {"Name": ""}}]')
        error = self.assertRaises(CommandFailed, checkConfig, str(broken))
        self.assertIn("static.json: entry 0: Service.Name", str(error))
        template = self.configWithStaticFile(
            "[]", '[haproxy]\ntemplate = "nowhere.j2"\n'
        )
        error = self.assertRaises(CommandFailed, checkConfig, str(template))
        self.assertIn("nowhere.j2: cannot read", str(error))
        self.assertNotIn("Errno", str(error))
        docker = self.configWithStaticFile(None, '[discovery]\nbackends = ["docker"]\n')
        self.assertEqual(checkConfig(str(docker)), f"valid: {docker}")

    def test_aCommandIsNeeded(self) -> None:
        self.assertRaises(UsageError, parse)
        self.assertRaises(UsageError, parse, "drain")

    def test_usageErrorsSayWhatToGiveAndWhereTheHelpIs(self) -> None:
        for argv, expected in [
            ([], "Usage: sidecar [--api URL] [options] COMMAND"),
            (["drain"], "sidecar: give the ID of one service of the node"),
            (["drain", "a", "b"], "usage: sidecar drain ID (sidecar drain --help)"),
            (["check-config"], "usage: sidecar check-config FILE"),
            (["services", "a", "b"], "services takes at most one service NAME"),
            (["nosuch"], "Usage: sidecar [--api URL] [options] COMMAND"),
        ]:
            code, _, err = self.runMain(argv)
            self.assertEqual(code, 2, argv)
            self.assertIn(expected, err, argv)
        self.assertIn("ID", str(parse("drain", "x").subOptions))

    def test_versionIsThePackages(self) -> None:
        code, out, _ = self.runMain(["--version"])
        self.assertEqual(code, 0)
        self.assertEqual(out, f"sidecar {version('sidecar')}\n")

    def runMain(self, argv: list[str]) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        self.patch(sys, "stdout", out)
        self.patch(sys, "stderr", err)
        with self.assertRaises(SystemExit) as ended:
            main(argv)
        code = ended.exception.code
        return (code if isinstance(code, int) else 1), out.getvalue(), err.getvalue()

    def test_apiMayBeGivenWithoutItsScheme(self) -> None:
        self.assertEqual(apiBase("127.0.0.1:7777"), "http://127.0.0.1:7777")
        self.assertEqual(apiBase("https://node-a:7777/"), "https://node-a:7777")
        for bad in ["ftp://a:1", "http://", "127.0.0.1:port", ""]:
            error = self.assertRaises(CommandFailed, apiBase, bad)
            self.assertIn("is not a node's address", str(error))


class ExitCodeTests(TestCase):
    """
    The console script in a process of its own: 0 and the answer on
    stdout, 1 when the command cannot be done, 2 when it is not understood;
    each failure is one line on stderr.
    """

    async def sidecar(self, *argv: str) -> tuple[str, str, int]:
        out, err, code = await getProcessOutputAndValue(
            sys.executable,
            ["-c", "from sidecar.cli import main; main()", *argv],
            env=nodeEnvironment(),
        )
        return out.decode(), err.decode(), code

    def assertOneLine(self, err: str, *fragments: str) -> None:
        self.assertEqual(len(err.splitlines()), 1, err)
        self.assertTrue(err.startswith("sidecar: "), err)
        for fragment in fragments:
            self.assertIn(fragment, err)

    async def test_success(self) -> None:
        directory = Path(self.mktemp()).resolve()
        directory.mkdir()
        (directory / "static.json").write_text("[]")
        good = directory / "node.toml"
        good.write_text('[node]\nname = "a"\n')
        out, err, code = await self.sidecar("check-config", str(good))
        self.assertEqual(
            (out, err, code),
            (f"valid: {good}, {directory / 'static.json'} (0 service(s))\n", "", 0),
        )

    async def test_aCommandThatCannotBeDone(self) -> None:
        bad = Path(self.mktemp())
        bad.write_text('[node]\nnmae = "a"\n')
        out, err, code = await self.sidecar("check-config", str(bad))
        self.assertEqual((out, code), ("", 1))
        self.assertOneLine(err, "node.nmae")
        out, err, code = await self.sidecar("--api", "http://127.0.0.1:1", "members")
        self.assertEqual((out, code), ("", 1))
        self.assertOneLine(err, "cannot reach http://127.0.0.1:1/api/members.json")

    async def test_aCommandNotUnderstood(self) -> None:
        out, err, code = await self.sidecar()
        self.assertEqual((out, code), ("", 2))
        self.assertIn("Usage: sidecar", err)
        out, err, code = await self.sidecar("keygen", "--size", "20")
        self.assertEqual((out, code), ("", 2))
        first, *rest = err.splitlines()
        self.assertEqual(first, "sidecar: --size is 16, 24 or 32, not 20")
        self.assertEqual(len(rest), 1, err)  # how to use it
