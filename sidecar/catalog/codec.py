"""
The Go Sidecar's JSON for services, servers and the whole catalog.

Pure functions, no I/O.  Keys and their order are the Go field names in
declaration order; timestamps are RFC 3339 with nanoseconds in UTC; strings
are escaped as Go's C{encoding/json} escapes them (C{<}, C{>}, C{&}, U+2028
and U+2029 as C{\\uXXXX}, other non-ASCII text as UTF-8).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from .service import Port, Service, Status
from .timestamps import TimestampError, formatTimestamp, parseTimestamp

JSONObject = dict[str, Any]

_GO_ESCAPES = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}
_GO_ESCAPE_TABLE = str.maketrans(_GO_ESCAPES)


class DecodeError(ValueError):
    """
    A JSON document is not a valid service, server or catalog.  The message
    names the offending field, e.g. C{Ports[0].Port: expected an integer}.
    """


def dumps(document: Any, indent: int | None = None) -> bytes:
    """
    Serialize C{document} as Go's C{json.Marshal} (or C{MarshalIndent} with
    two spaces when C{indent} is given) would.
    """
    if indent is None:
        text = json.dumps(document, ensure_ascii=False, separators=(",", ":"))
    else:
        text = json.dumps(document, ensure_ascii=False, indent=indent)
    # These characters can only occur inside strings in JSON text, so a
    # translation of the whole text escapes exactly what Go escapes.
    return text.translate(_GO_ESCAPE_TABLE).encode("utf-8")


def portToJSON(port: Port) -> JSONObject:
    return {
        "Type": port.type,
        "Port": port.port,
        "ServicePort": port.servicePort,
        "IP": port.ip,
    }


def serviceToJSON(service: Service) -> JSONObject:
    """
    The Go C{service.Service} object for C{service}.
    """
    return {
        "ID": service.id,
        "Name": service.name,
        "Image": service.image,
        "Created": formatTimestamp(service.created),
        "Hostname": service.hostname,
        "Ports": [portToJSON(p) for p in service.ports],
        "Updated": formatTimestamp(service.updated),
        "ProxyMode": service.proxyMode,
        "Status": int(service.status),
    }


def serverToJSON(
    name: str, services: Iterable[Service], lastUpdated: int, lastChanged: int
) -> JSONObject:
    """
    The Go C{catalog.Server} object: services keyed by ID.
    """
    return {
        "Name": name,
        "Services": {s.id: serviceToJSON(s) for s in sorted(services, key=_byID)},
        "LastUpdated": formatTimestamp(lastUpdated),
        "LastChanged": formatTimestamp(lastChanged),
    }


def _byID(service: Service) -> str:
    return service.id


def encodeService(service: Service) -> bytes:
    """
    One service record as compact Go JSON (what gossip carries).
    """
    return dumps(serviceToJSON(service))


def decodeService(data: bytes | str) -> Service:
    """
    Parse one JSON service record.

    @raise DecodeError: naming the field at fault.
    """
    return serviceFromJSON(_loads(data), "Service")


def decodeStateServices(data: bytes | str) -> list[Service]:
    """
    Parse a Go C{ServicesState} document (C{/api/state.json}, push-pull user
    state) into its service records.

    @raise DecodeError: naming the field at fault.
    """
    document = _loads(data)
    _expect(document, dict, "ServicesState", "an object")
    servers = _present(document.get("Servers"), {})
    _expect(servers, dict, "Servers", "an object")
    records = []
    for hostname, server in servers.items():
        where = f"Servers[{hostname!r}]"
        _expect(server, dict, where, "an object")
        services = _present(server.get("Services"), {})
        _expect(services, dict, f"{where}.Services", "an object")
        for serviceID, record in services.items():
            records.append(serviceFromJSON(record, f"{where}.Services[{serviceID!r}]"))
    return records


def serviceFromJSON(document: Any, where: str = "Service") -> Service:
    """
    Build a L{Service} from a decoded JSON object, checking every field.
    Missing fields take Go's zero values, as Go's decoder gives them.

    @param where: how to name this object in an error.
    @raise DecodeError: naming the field at fault.
    """
    _expect(document, Mapping, where, "an object")
    ports = _present(document.get("Ports"), [])
    _expect(ports, list, f"{where}.Ports", "a list")
    status = _integer(document, "Status", where)
    try:
        status = Status(status)
    except ValueError:
        raise DecodeError(f"{where}.Status: unknown status {status}") from None
    serviceID = _string(document, "ID", where)
    if not serviceID:
        raise DecodeError(f"{where}.ID: must not be empty")
    return Service(
        id=serviceID,
        name=_string(document, "Name", where),
        image=_string(document, "Image", where),
        created=_timestamp(document, "Created", where),
        hostname=_string(document, "Hostname", where),
        ports=tuple(
            portFromJSON(port, f"{where}.Ports[{index}]")
            for index, port in enumerate(ports)
        ),
        updated=_timestamp(document, "Updated", where),
        proxyMode=_string(document, "ProxyMode", where),
        status=status,
    )


def portFromJSON(document: Any, where: str) -> Port:
    _expect(document, Mapping, where, "an object")
    return Port(
        type=_string(document, "Type", where),
        port=_integer(document, "Port", where),
        servicePort=_integer(document, "ServicePort", where),
        ip=_string(document, "IP", where),
    )


def _loads(data: bytes | str) -> Any:
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise DecodeError(f"not JSON: {e}") from None
    except RecursionError:
        raise DecodeError("not JSON: nested too deeply") from None


def _present(value: Any, default: Any) -> Any:
    """
    C{value}, or C{default} when it is missing or JSON null (Go's nil);
    an empty value of the wrong type stays, to be refused.
    """
    return default if value is None else value


def _expect(value: Any, kind: Any, where: str, description: str) -> None:
    if not isinstance(value, kind):
        raise DecodeError(f"{where}: expected {description}, got {value!r:.60}")


def _string(document: Mapping[str, Any], key: str, where: str) -> str:
    value = document.get(key, "")
    if value is None:
        return ""
    _expect(value, str, f"{where}.{key}", "a string")
    return value


def _integer(document: Mapping[str, Any], key: str, where: str) -> int:
    value = document.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, int):
        raise DecodeError(f"{where}.{key}: expected an integer, got {value!r:.60}")
    return value


def _timestamp(document: Mapping[str, Any], key: str, where: str) -> int:
    value = document.get(key, "0001-01-01T00:00:00Z")
    try:
        return parseTimestamp(value)
    except TimestampError as e:
        raise DecodeError(f"{where}.{key}: {e}") from None
