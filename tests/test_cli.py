"""
The C{sidecar} command against a running node: tables, C{--json}, drain
and undrain, C{check-config}, and one-line errors.
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

from twisted.internet import defer
from twisted.internet.utils import getProcessOutputAndValue
from twisted.python.usage import UsageError
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.resource import Resource

from sidecar.catalog import Status
from sidecar.cli import CommandFailed, Options, checkConfig, run
from sidecar.config.values import parseKey

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

    async def test_membersServicesDrainUndrain(self) -> None:
        node = startNode(
            self, "host-a", "127.0.1.1", moreSettings=["[health]", 'interval = "100ms"']
        )
        address = node.api.port.getHost()  # type: ignore[union-attr]
        self.api = f"http://{address.host}:{address.port}"
        await pollUntil(
            lambda: defer.succeed(
                True
                if [s for s in node.state.localServices() if s.status is Status.ALIVE]
                else None
            )
        )
        [service] = node.state.localServices()
        members = await self.say("members")
        self.assertEqual(
            members.splitlines()[0].split(), ["NAME", "ADDRESS", "STATE", "INCARNATION"]
        )
        self.assertEqual(members.splitlines()[1].split()[0::2], ["host-a", "alive"])
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
    def test_checkConfig(self) -> None:
        good = Path(self.mktemp())
        good.write_text('[node]\nname = "a"\n')
        self.assertEqual(checkConfig(str(good)), f"{good}: valid")
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
        config = Path(self.mktemp())
        config.write_text(f'[node]\nname = "a"\nencrypt_key = "{keys[0]}"\n')
        self.assertEqual(checkConfig(str(config)), f"{config}: valid")

    def test_keygenRefusesOtherSizes(self) -> None:
        self.assertRaises(UsageError, parse, "keygen", "--size", "20")

    def test_aCommandIsNeeded(self) -> None:
        self.assertRaises(UsageError, parse)
        self.assertRaises(UsageError, parse, "drain")


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
        good = Path(self.mktemp())
        good.write_text('[node]\nname = "a"\n')
        out, err, code = await self.sidecar("check-config", str(good))
        self.assertEqual((out, err, code), (f"{good}: valid\n", "", 0))

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
        for argv, fragment in (
            ((), "a command is needed"),
            (("keygen", "--size", "20"), "--size is 16, 24 or 32, not 20"),
        ):
            out, err, code = await self.sidecar(*argv)
            self.assertEqual((out, code), ("", 2))
            self.assertOneLine(err, fragment)
