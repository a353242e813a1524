"""
The C{sidecar} command for operators: it asks a node's API and prints
readable tables (or the JSON, with C{--json}).

Options: C{--api URL} (C{https://...} for a node with TLS), C{--ca-file
PEM} (the CA that signed its certificate), C{--token-file FILE} (its
bearer token, for drain and undrain).

    sidecar [--api URL] status [--json]
    sidecar [--api URL] members [--json]
    sidecar [--api URL] services [--json] [NAME]
    sidecar [--api URL] checks [--json]
    sidecar [--api URL] drain ID
    sidecar [--api URL] undrain ID
    sidecar check-config FILE
    sidecar keygen [--size 16|24|32]
"""

from __future__ import annotations

import json
import sys
from collections.abc import Awaitable, Callable, Sequence
from importlib.metadata import version
from typing import IO, Any
from urllib.parse import urlsplit

import treq
from twisted.internet import defer, task
from twisted.python import usage
from twisted.web.client import Agent

from sidecar.catalog import Status
from sidecar.clienttls import TrustError, agentTrusting
from sidecar.config import ConfigError, loadConfig
from sidecar.discovery.staticfile import StaticFileError, parseStaticFile
from sidecar.gossip.security import KEY_SIZES, newKey
from sidecar.problems import CONFLICT, REFUSED, conflictSubject
from sidecar.proxy.template import ProxyTemplate, ProxyTemplateError

DEFAULT_API = "http://127.0.0.1:7777"


class CommandFailed(Exception):
    """
    The command cannot do what was asked; the message says why, one line.
    """


class _Listing(usage.Options):
    synopsis = "[--json]"
    optFlags = [["json", "j", "Print the API's JSON instead of a table."]]


class _Services(_Listing):
    synopsis = "[--json] [NAME]"

    def parseArgs(self, *names: str) -> None:
        if len(names) > 1:
            raise usage.UsageError("services takes at most one service NAME")
        self["name"] = names[0] if names else None


class _OneService(usage.Options):
    synopsis = "ID"

    def parseArgs(self, *ids: str) -> None:
        if len(ids) != 1:
            raise usage.UsageError(
                "give the ID of one service of the node ('sidecar services' lists them)"
            )
        self["id"] = ids[0]


class _CheckConfig(usage.Options):
    synopsis = "FILE"

    def parseArgs(self, *paths: str) -> None:
        if len(paths) != 1:
            raise usage.UsageError("give the path of one configuration file")
        self["path"] = paths[0]


class _Keygen(usage.Options):
    synopsis = "[--size 16|24|32]"
    optParameters = [
        ["size", "s", 32, "Bytes of key: 16, 24 or 32 (AES-128/192/256).", int]
    ]

    def postOptions(self) -> None:
        if self["size"] not in KEY_SIZES:
            raise usage.UsageError(f"--size is 16, 24 or 32, not {self['size']}")


class Options(usage.Options):
    synopsis = "Usage: sidecar [--api URL] [options] COMMAND [command options]"
    longdesc = (
        "Ask a sidecar node's API and print what it says: status, members, "
        "services [NAME], checks; drain ID and undrain ID (a service of that "
        "node); or, with no node, check-config FILE and keygen. "
        "'sidecar COMMAND --help' tells each command's arguments."
    )
    optParameters = [
        ["api", "a", DEFAULT_API, "The node's API."],
        ["ca-file", None, None, "The CA certificate (PEM) an https API's is from."],
        ["token-file", None, None, "The bearer token file, for drain and undrain."],
    ]
    subCommands = [
        ["status", None, _Listing, "Whether the node is up, and its problems."],
        ["members", None, _Listing, "The cluster's members, as the node sees them."],
        ["services", None, _Services, "The catalog's instances (of NAME)."],
        ["checks", None, _Listing, "What the node's health checks last said."],
        ["drain", None, _OneService, "Take a service of the node out of proxies."],
        ["undrain", None, _OneService, "Bring a drained service back."],
        ["check-config", None, _CheckConfig, "Check a configuration file."],
        ["keygen", None, _Keygen, "Print a new key for node.encrypt_key."],
    ]

    def opt_version(self) -> None:
        """
        Print the version of sidecar and exit.
        """
        print(f"sidecar {version('sidecar')}")
        raise SystemExit(0)

    def postOptions(self) -> None:
        if self.subCommand is None:
            raise usage.UsageError("a command is needed")


async def run(options: Options, out: IO[str], reactor: Any = None) -> None:
    """
    Carry out the parsed command, writing to C{out}.

    @param reactor: what the API is asked with; the global reactor when
        L{None}.

    @raise CommandFailed: saying why it could not.
    """
    command, sub = options.subCommand, options.subOptions
    if command == "check-config":
        out.write(checkConfig(sub["path"]) + "\n")
        return
    if command == "keygen":
        out.write(newKey(sub["size"]) + "\n")
        return
    api = apiBase(options["api"])
    if reactor is None:
        from twisted.internet import reactor
    try:
        agent = agentTrusting(reactor, options["ca-file"])
    except TrustError as e:
        raise CommandFailed(f"--ca-file: {e}") from None

    async def _get(url: str) -> Any:
        return await requestJSON("GET", url, agent=agent)

    if command == "status":
        document = await _get(f"{api}/api/health")
        out.write(_json(document) if sub["json"] else statusReport(document))
    elif command == "members":
        document = await _get(f"{api}/api/members.json")
        out.write(_json(document) if sub["json"] else membersTable(document))
    elif command == "services":
        document = _only(await _get(f"{api}/api/services.json"), sub["name"])
        if sub["json"]:
            out.write(_json(document))
        else:
            out.write(servicesTable(document, await _problems(_get, api)))
    elif command == "checks":
        document = await _get(f"{api}/api/checks.json")
        out.write(_json(document) if sub["json"] else checksTable(document))
    else:
        await _beforeDrain(_get, api, str(command), sub["id"])
        method = "POST" if command == "drain" else "DELETE"
        url = f"{api}/api/services/{sub['id']}/drain"
        headers = _authorization(options["token-file"])
        document = await requestJSON(method, url, headers=headers, agent=agent)
        out.write(document["Message"] + "\n")


def apiBase(given: str) -> str:
    """
    The node's API as given to C{--api}: a URL, or just C{host:port}
    (http is meant).

    @raise CommandFailed: when it is neither.
    """
    text = given.strip()
    if "://" not in text:
        text = "http://" + text
    parts = urlsplit(text)
    try:
        parts.port  # noqa: B018 (raises for a port that is not a number)
    except ValueError:
        parts = parts._replace(netloc="")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise CommandFailed(
            f"--api {given!r} is not a node's address: give one like "
            f"{DEFAULT_API} or 127.0.0.1:7777"
        )
    return text.rstrip("/")


def _only(document: Any, name: str | None) -> Any:
    """
    C{/api/services.json} with only the instances of service C{name}.
    """
    if name is None:
        return document
    services = document.get("Services") or {}
    if name not in services:
        known = ", ".join(sorted(services)) or "none"
        raise CommandFailed(f"the catalog has no service {name!r} (it has: {known})")
    return {**document, "Services": {name: services[name]}}


async def _beforeDrain(
    get: Callable[[str], Awaitable[Any]], api: str, command: str, serviceID: str
) -> None:
    """
    Refuse, with what to do instead, a drain or undrain this node cannot
    or need not do: an instance of another host (whose node must be
    asked), or an undrain of an instance that is not drained.  When the
    catalog does not know the ID, the node's own answer says so.
    """
    try:
        catalog = await get(f"{api}/api/services.json")
        health = await get(f"{api}/api/health")
    except CommandFailed:
        return  # an older or a Go node: let its answer speak
    instance = _instance(catalog, serviceID)
    if instance is None:
        return
    name, record = instance
    if record["Hostname"] != health.get("Hostname"):
        where = await _nodeOf(get, api, record["Hostname"])
        raise CommandFailed(
            f"{name} {serviceID} runs on {record['Hostname']}, not on this node: "
            f"ask its node ({where})"
        )
    status = _statusName(record["Status"])
    if command == "undrain" and status != Status.DRAINING.name:
        raise CommandFailed(
            f"{name} {serviceID} is not drained (it is {status.title()}): "
            "nothing to undrain"
        )


def _instance(catalog: Any, serviceID: str) -> tuple[str, Any] | None:
    for name, records in (catalog.get("Services") or {}).items():
        for record in records:
            if record.get("ID") == serviceID:
                return name, record
    return None


async def _nodeOf(get: Callable[[str], Awaitable[Any]], api: str, host: str) -> str:
    """
    How to ask host C{host}'s node: C{sidecar --api ...} at its address
    and this node's API port, as far as this node can tell.
    """
    try:
        members = await get(f"{api}/api/members.json")
    except CommandFailed:
        return f"the sidecar on {host}"
    for member in members.get("Members") or []:
        if member.get("Name") == host:
            port = urlsplit(api).port or (443 if api.startswith("https") else 80)
            scheme = urlsplit(api).scheme
            return f"sidecar --api {scheme}://{member['Address']}:{port} ..."
    return f"the sidecar on {host}"


def _authorization(tokenFile: str | None) -> dict[bytes | str, bytes | str]:
    """
    The header that carries the token in C{tokenFile}, if one is given.
    """
    if tokenFile is None:
        return {}
    try:
        with open(tokenFile, "rb") as f:
            token = f.readline(4096).strip()
    except OSError as e:
        raise CommandFailed(
            f"--token-file: cannot read {tokenFile}: {e.strerror}"
        ) from None
    return {b"Authorization": b"Bearer " + token}


def checkConfig(path: str) -> str:
    """
    Check the configuration file at C{path} and the files it names (the
    static file, when static discovery is on, and a HAProxy template) as a
    node would read them at start.

    @raise CommandFailed: with the first problem, naming its file.
    """
    try:
        config = loadConfig(path)
        checked = [path]
        if config.haproxy.template:
            ProxyTemplate.fromFile(config.haproxy.template)
            checked.append(config.haproxy.template)
        if "static" in config.discovery.backends:
            staticFile = config.discovery.staticFile
            try:
                with open(staticFile, "rb") as f:
                    data = f.read()
            except OSError as e:
                problem = f"{staticFile}: cannot read: {e.strerror}"
                raise CommandFailed(problem) from None
            advertise = config.node.advertiseAddress
            found = parseStaticFile(data, staticFile, config.node.name, advertise.host)
            checked.append(f"{staticFile} ({len(found)} service(s))")
    except (ConfigError, ProxyTemplateError, StaticFileError) as e:
        raise CommandFailed(str(e)) from None
    return "valid: " + ", ".join(checked)


def checksTable(document: Any) -> str:
    """
    C{/api/checks.json} as a table: each local service, its status, and
    what its check last said and when.
    """
    rows = []
    for serviceID, check in sorted(
        (document.get("Checks") or {}).items(), key=lambda item: item[1]["Name"]
    ):
        said = check.get("LastError") or check.get("LastResult") or ""
        held = " (held: flapping)" if check.get("Suppressed") else ""
        rows.append(
            (
                check["Name"],
                serviceID,
                f"{check['Status']}{held}",
                check["Check"]["Type"],
                check.get("LastChecked") or "never",
                said,
            )
        )
    return _table(("NAME", "ID", "STATUS", "CHECK", "CHECKED", "SAID"), rows)


def membersTable(document: Any) -> str:
    """
    C{/api/members.json} as a table: each member, its state and since when.
    """
    rows = [
        (
            m["Name"],
            f"{m['Address']}:{m['Port']}",
            m["State"],
            m["Since"],
            str(m["Incarnation"]),
        )
        for m in document["Members"]
    ]
    return _table(("NAME", "ADDRESS", "STATE", "SINCE", "INCARNATION"), rows)


def statusReport(document: Any) -> str:
    """
    C{/api/health} as lines: the node, then its problems as a table.
    """
    head = (
        f"{document['Hostname']} is {document['Status']} in cluster "
        f"{document['ClusterName']} with {document['Members']} member(s)\n"
    )
    problems = document.get("Problems") or []
    if not problems:
        return head + "no problems\n"
    rows = [(p["Kind"], p["Subject"], p["Since"], p["Message"]) for p in problems]
    return head + _table(("KIND", "SUBJECT", "SINCE", "MESSAGE"), rows)


def servicesTable(document: Any, problems: Sequence[Any] = ()) -> str:
    """
    C{/api/services.json} as a table; an instance the node's proxy leaves
    out (refused, or its ServicePort held by another service) says so in
    C{PROXY}, from the node's C{problems}.
    """
    refused = {p["Subject"]: p["Message"] for p in problems if p["Kind"] == REFUSED}
    conflicts = {p["Subject"] for p in problems if p["Kind"] == CONFLICT}
    rows = []
    for name, instances in sorted(document["Services"].items()):
        for s in instances:
            ports = ", ".join(
                f"{p['IP']}:{p['Port']}"
                + (f"->{p['ServicePort']}" if p["ServicePort"] else "")
                for p in s["Ports"] or []
            )
            status = _statusName(s["Status"])
            notes = [
                f"ServicePort {p['ServicePort']} held by another service"
                for p in s["Ports"] or []
                if conflictSubject(name, p["ServicePort"]) in conflicts
            ]
            if f"{s['Hostname']}/{s['ID']}" in refused:
                notes.append("refused")
            rows.append((name, s["ID"], s["Hostname"], status, ports, "; ".join(notes)))
    return _table(("NAME", "ID", "HOST", "STATUS", "PORTS", "PROXY"), rows)


async def _problems(get: Callable[[str], Awaitable[Any]], api: str) -> list[Any]:
    """
    The node's problems, or none when it cannot tell (an older node, or
    one that is up but alone).
    """
    try:
        health = await get(f"{api}/api/health")
    except CommandFailed:
        return []
    problems = health.get("Problems") if isinstance(health, dict) else None
    return problems if isinstance(problems, list) else []


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


async def requestJSON(
    method: str,
    url: str,
    timeout: float = 10.0,
    headers: dict[bytes | str, bytes | str] | None = None,
    agent: Agent | None = None,
) -> Any:
    """
    Send C{method} to C{url} (a node's API) and return the JSON answer.

    @raise CommandFailed: when it cannot be reached, does not answer JSON,
        or answers an error (its message is told).
    """
    try:
        response = await treq.request(
            method,
            url,
            headers=headers,
            timeout=timeout,
            **({"persistent": False} if agent is None else {"agent": agent}),
        )
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
    arguments = list(sys.argv[1:] if argv is None else argv)
    if not arguments:
        sys.stderr.write(str(options))
        raise SystemExit(2)
    try:
        options.parseOptions(arguments)
    except usage.UsageError as e:
        sys.stderr.write(f"sidecar: {e}\n{_usageLine(options, arguments)}\n")
        raise SystemExit(2) from None

    async def react(reactor: Any) -> None:
        try:
            await run(options, sys.stdout, reactor)
        except CommandFailed as e:
            sys.stderr.write(f"sidecar: {e}\n")
            raise SystemExit(1) from None

    task.react(lambda reactor: defer.ensureDeferred(react(reactor)))


def _usageLine(options: Options, arguments: Sequence[str]) -> str:
    """
    The usage of the command the arguments name, if any, else the whole
    command's; and where the help is.
    """
    for command in options.subCommands:
        name, parser = command[0], command[2]  # type: ignore[index]
        if name in arguments:
            synopsis = getattr(parser, "synopsis", "")
            return f"usage: sidecar {name} {synopsis} (sidecar {name} --help)"
    return f"{options.synopsis} (sidecar --help)"
