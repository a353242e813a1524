"""
The C{sidecar} command for operators: it asks a node's API and prints
readable tables (or the JSON, with C{--json}).

    sidecar [--api URL] members [--json]
    sidecar [--api URL] services [--json]
    sidecar [--api URL] drain ID
    sidecar [--api URL] undrain ID
    sidecar check-config FILE
    sidecar keygen [--size 16|24|32]
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import IO, Any

import treq
from twisted.internet import defer, task
from twisted.python import usage

from sidecar.catalog import Status
from sidecar.config import ConfigError, loadConfig
from sidecar.gossip.security import KEY_SIZES, newKey
from sidecar.proxy.template import ProxyTemplate, ProxyTemplateError

DEFAULT_API = "http://127.0.0.1:7777"


class CommandFailed(Exception):
    """
    The command cannot do what was asked; the message says why, one line.
    """


class _Listing(usage.Options):
    optFlags = [["json", "j", "Print the API's JSON instead of a table."]]


class _OneService(usage.Options):
    def parseArgs(self, serviceID: str) -> None:  # type: ignore[override]
        self["id"] = serviceID


class _CheckConfig(usage.Options):
    def parseArgs(self, path: str) -> None:  # type: ignore[override]
        self["path"] = path


class _Keygen(usage.Options):
    optParameters = [
        ["size", "s", 32, "Bytes of key: 16, 24 or 32 (AES-128/192/256).", int]
    ]

    def postOptions(self) -> None:
        if self["size"] not in KEY_SIZES:
            raise usage.UsageError(f"--size is 16, 24 or 32, not {self['size']}")


class Options(usage.Options):
    synopsis = (
        "[--api URL] members|services|drain ID|undrain ID|check-config FILE|keygen"
    )
    optParameters = [["api", "a", DEFAULT_API, "The node's API."]]
    subCommands = [
        ["members", None, _Listing, "The cluster's members, as the node sees them."],
        ["services", None, _Listing, "Every service instance in the catalog."],
        ["drain", None, _OneService, "Take a service of the node out of proxies."],
        ["undrain", None, _OneService, "Bring a drained service back."],
        ["check-config", None, _CheckConfig, "Check a configuration file."],
        ["keygen", None, _Keygen, "Print a new key for node.encrypt_key."],
    ]

    def postOptions(self) -> None:
        if self.subCommand is None:
            raise usage.UsageError("a command is needed: " + self.synopsis)


async def run(options: Options, out: IO[str]) -> None:
    """
    Carry out the parsed command, writing to C{out}.

    @raise CommandFailed: saying why it could not.
    """
    command, sub = options.subCommand, options.subOptions
    api = options["api"].rstrip("/")
    if command == "check-config":
        out.write(checkConfig(sub["path"]) + "\n")
    elif command == "keygen":
        out.write(newKey(sub["size"]) + "\n")
    elif command == "members":
        document = await _get(f"{api}/api/members.json")
        out.write(_json(document) if sub["json"] else membersTable(document))
    elif command == "services":
        document = await _get(f"{api}/api/services.json")
        out.write(_json(document) if sub["json"] else servicesTable(document))
    else:
        method = "POST" if command == "drain" else "DELETE"
        url = f"{api}/api/services/{sub['id']}/drain"
        document = await requestJSON(method, url)
        out.write(document["Message"] + "\n")


def checkConfig(path: str) -> str:
    try:
        config = loadConfig(path)
        if config.haproxy.template:
            ProxyTemplate.fromFile(config.haproxy.template)
    except (ConfigError, ProxyTemplateError) as e:
        raise CommandFailed(str(e)) from None
    return f"{path}: valid"


def membersTable(document: Any) -> str:
    rows = [
        (m["Name"], f"{m['Address']}:{m['Port']}", m["State"], str(m["Incarnation"]))
        for m in document["Members"]
    ]
    return _table(("NAME", "ADDRESS", "STATE", "INCARNATION"), rows)


def servicesTable(document: Any) -> str:
    rows = []
    for name, instances in sorted(document["Services"].items()):
        for s in instances:
            ports = ", ".join(
                f"{p['IP']}:{p['Port']}"
                + (f"->{p['ServicePort']}" if p["ServicePort"] else "")
                for p in s["Ports"] or []
            )
            status = _statusName(s["Status"])
            rows.append((name, s["ID"], s["Hostname"], status, ports))
    return _table(("NAME", "ID", "HOST", "STATUS", "PORTS"), rows)


def _statusName(value: Any) -> str:
    # Go prints any status it does not know as Tombstone.
    try:
        return Status(value).name
    except ValueError:
        return Status.TOMBSTONE.name


def _table(headings: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [
        max(len(str(r[i])) for r in [headings, *rows]) for i in range(len(headings))
    ]
    lines = [
        "  ".join(str(v).ljust(w) for v, w in zip(r, widths, strict=True)).rstrip()
        for r in [headings, *rows]
    ]
    return "\n".join(lines) + "\n"


def _json(document: Any) -> str:
    return json.dumps(document, indent=2) + "\n"


async def _get(url: str) -> Any:
    return await requestJSON("GET", url)


async def requestJSON(method: str, url: str, timeout: float = 10.0) -> Any:
    """
    Send C{method} to C{url} (a node's API) and return the JSON answer.

    @raise CommandFailed: when it cannot be reached, does not answer JSON,
        or answers an error (its message is told).
    """
    try:
        response = await treq.request(method, url, persistent=False, timeout=timeout)
        body = await response.content()
    except Exception as e:
        raise CommandFailed(f"cannot reach {url}: {e}") from None
    try:
        document = json.loads(body)
    except ValueError:
        if response.code in (NOT_FOUND, NOT_ALLOWED):
            raise CommandFailed(
                f"{url}: HTTP {response.code}: {NO_SUCH_ENDPOINT}"
            ) from None
        raise CommandFailed(f"{url}: HTTP {response.code}, not JSON") from None
    if response.code >= 400:
        message = document.get("message") if isinstance(document, dict) else None
        said = message if message else repr(body[:200])
        raise CommandFailed(f"{url}: HTTP {response.code}: {said}")
    return document


# Our nodes answer every API error in JSON; a plain 404 or 405 comes from a
# node without the endpoint: the Go Sidecar has no members list and no
# undrain.
NOT_FOUND, NOT_ALLOWED = 404, 405
NO_SUCH_ENDPOINT = (
    "the node has no such endpoint (a Go Sidecar node has no members list and "
    "no undrain: ask a node of ours)"
)


def main(argv: Sequence[str] | None = None) -> None:
    """
    The console script: parse, run, exit 0, or 1 with one line on stderr.
    """
    options = Options()
    try:
        options.parseOptions(list(sys.argv[1:] if argv is None else argv))
    except usage.UsageError as e:
        sys.stderr.write(f"sidecar: {e}\n")
        raise SystemExit(2) from None

    async def react(reactor: Any) -> None:
        try:
            await run(options, sys.stdout)
        except CommandFailed as e:
            sys.stderr.write(f"sidecar: {e}\n")
            raise SystemExit(1) from None

    task.react(lambda reactor: defer.ensureDeferred(react(reactor)))
