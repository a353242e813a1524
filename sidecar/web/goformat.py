"""
Text the Go Sidecar's HTTP side writes with Go's formatting verbs, made
the same here: C{%q} quoting (drain messages) and the C{/servers} page
(C{ServicesState.Format}).  Pure functions.
"""

from __future__ import annotations

from collections.abc import Iterable

from sidecar.catalog import CatalogSnapshot, Service, Status

NANOSECONDS = 1_000_000_000

_ESCAPES = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
    '"': '\\"',
    "\\": "\\\\",
}


def goQuote(text: str) -> str:
    """
    Go's C{strconv.Quote} (the C{%q} verb): double quotes; backslash,
    quote and control characters escaped; other unprintable characters
    as C{\\xNN}, C{\\uNNNN} or C{\\UNNNNNNNN}; printable ones as they are.
    (Python's C{isprintable} and Go's C{unicode.IsPrint} admit the same
    categories: letters, marks, numbers, punctuation, symbols, and the
    ASCII space.)
    """
    out = ['"']
    for character in text:
        code = ord(character)
        if character in _ESCAPES:
            out.append(_ESCAPES[character])
        elif character.isprintable():
            out.append(character)
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif 0xD800 <= code <= 0xDFFF:
            out.append("\\ufffd")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


def _roundToSecond(nanoseconds: int) -> int:
    # Go's Time.Round(time.Second): halves round up.
    return (nanoseconds + NANOSECONDS // 2) // NANOSECONDS * NANOSECONDS


def timeAgo(when: int, reference: int) -> str:
    """
    Go's C{output.TimeAgo}: how long before C{reference} C{when} was
    (nanoseconds since the epoch), in the largest unit it exceeds.
    """
    seconds = (_roundToSecond(reference) - _roundToSecond(when)) / NANOSECONDS
    for size, unit in ((7 * 86400, "weeks"), (86400, "days"), (3600, "hours")):
        if seconds > size:
            return f"{seconds / size:.1f} {unit} ago"
    if seconds > 60:
        return f"{seconds / 60:.1f} mins ago"
    if seconds > 1:
        return f"{seconds:.1f} secs ago"
    return "1.0 sec ago"


_STATUS_WORDS = {
    Status.ALIVE: "Alive",
    Status.UNHEALTHY: "Unhealthy",
    Status.UNKNOWN: "Unknown",
    Status.DRAINING: "Draining",
}


def serviceLine(service: Service, now: int) -> str:
    """
    Go's C{Service.Format}: one line of the C{/servers} page.
    """
    ports = ",".join(f"{port.servicePort}->{port.port}" for port in service.ports)
    return (
        f"      {service.id} {service.name:<30} {ports:<15} {service.image:<45}  "
        f"{timeAgo(service.updated, now):<15} "
        f"{_STATUS_WORDS.get(service.status, 'Tombstone'):<9}\n"
    )


_PAGE_HEAD = (
    '\n \t\t\t<head>\n \t\t\t<meta http-equiv="refresh" content="4">\n'
    " \t\t\t</head>\n\t    \t<pre>"
)


def serversPage(snapshot: CatalogSnapshot, members: Iterable[str], now: int) -> bytes:
    """
    The Go Sidecar's C{/servers} page: each server with its records, then
    the cluster's members, in a C{<pre>} that refreshes every 4 seconds.
    Records of one name keep ID order (Go's sort leaves their order to
    chance).  Unlike Go, the text is HTML-escaped, so that a service name
    cannot inject markup: C{&} and C{<} (C{>} opens nothing, and the
    page's C{->} arrows stay); it differs only where a text holds those.
    """
    text = "Services ------------------------------\n"
    for server in sorted(snapshot.servers(), key=lambda server: server.name):
        text += f"  {server.name}: ({timeAgo(server.lastUpdated, now)})\n"
        for service in sorted(server.services, key=lambda s: (s.name, s.id)):
            text += serviceLine(service, now)
        text += "\n"
    text += "\nCluster Hosts -------------------------\n"
    for name in members:
        text += f"    {name}\n"
    text += "---------------------------------------"
    text = text.replace("&", "&amp;").replace("<", "&lt;")
    return (_PAGE_HEAD + text + "</pre>").encode("utf-8")
