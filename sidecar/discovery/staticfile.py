"""
The Go Sidecar's static discovery file: a JSON list of targets, each
C{{"Service": {...}, "Check": {"Type", "Args"}, "ListenPort": n}}, and
our own optional C{Check.Interval} and C{Check.Timeout} durations.

Pure parsing, no I/O: L{parseStaticFile} turns the file's bytes into
L{LocalService}s or raises L{StaticFileError} naming the file, the entry and
the field at fault.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from sidecar.catalog import Port, Service
from sidecar.catalog.local import CheckSpec, LocalService
from sidecar.config.values import ValueProblem, parsePositiveDuration

PROXY_MODES = ("http", "tcp", "ws")
PORT_TYPES = ("tcp", "udp")


class StaticFileError(ValueError):
    """
    The static file is unreadable or invalid; the message is one line that
    names the file, the entry (counting from 0) and the field.
    """


def parseStaticFile(
    data: bytes, path: str, hostname: str, advertiseIP: str
) -> list[LocalService]:
    """
    Parse a static discovery file.

    Each entry's ID is derived from the node name, the service name and
    its ports, so the same file gives the same IDs after a restart (the Go
    Sidecar draws new random IDs at every start).

    @param path: the file's name, for errors.
    @param hostname: this node's name; every service's C{Hostname}.
    @param advertiseIP: the IP given to ports that name none.
    @raise StaticFileError: when the file is not a valid target list.
    """
    try:
        targets = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise StaticFileError(f"{path}: not JSON: {e}") from None
    except RecursionError:
        raise StaticFileError(f"{path}: not JSON: nested too deeply") from None
    if not isinstance(targets, list):
        raise StaticFileError(
            f"{path}: expected a JSON list of targets, got {_kind(targets)}"
        )
    services = []
    seen: dict[str, int] = {}
    for index, target in enumerate(targets):
        try:
            local = _parseTarget(target, hostname, advertiseIP)
        except _FieldError as e:
            raise StaticFileError(f"{path}: entry {index}: {e}") from None
        # Identical entries are told apart by how many came before.
        base = _stableID(hostname, local.service, 0)
        ordinal = seen.get(base, 0)
        seen[base] = ordinal + 1
        serviceID = _stableID(hostname, local.service, ordinal)
        services.append(
            LocalService(
                service=replace(local.service, id=serviceID),
                check=local.check,
                listenPort=local.listenPort,
            )
        )
    return services


class _FieldError(ValueError):
    pass


def _parseTarget(target: Any, hostname: str, advertiseIP: str) -> LocalService:
    _expectObject(target, "target")
    service = target.get("Service")
    _expectObject(service, "Service")
    name = service.get("Name")
    if not isinstance(name, str) or not name.strip():
        raise _FieldError(f"Service.Name: expected a non-empty string, got {name!r}")
    proxyMode = _string(service, "ProxyMode", "Service", default="http")
    if proxyMode not in PROXY_MODES:
        raise _FieldError(
            f"Service.ProxyMode: expected one of {', '.join(PROXY_MODES)}, "
            f"got {proxyMode!r}"
        )
    # Only a missing key (or JSON null) means "none": an empty value of the
    # wrong type is as wrong as a full one.
    ports = _orDefault(service.get("Ports"), [])
    if not isinstance(ports, list):
        raise _FieldError(f"Service.Ports: expected a list, got {_kind(ports)}")
    check = _orDefault(target.get("Check"), {})
    _expectObject(check, "Check")
    listenPort = target.get("ListenPort")
    if listenPort is not None:
        listenPort = _portNumber(listenPort, "ListenPort", minimum=0) or None
    return LocalService(
        service=Service(
            id="",
            name=name,
            image=_string(service, "Image", "Service"),
            hostname=hostname,
            ports=tuple(
                _parsePort(port, f"Service.Ports[{n}]", advertiseIP)
                for n, port in enumerate(ports)
            ),
            proxyMode=proxyMode,
        ),
        check=CheckSpec(
            type=_string(check, "Type", "Check"),
            args=_string(check, "Args", "Check"),
            interval=_duration(check, "Interval", "Check"),
            timeout=_duration(check, "Timeout", "Check"),
        ),
        listenPort=listenPort,
    )


def _parsePort(document: Any, where: str, advertiseIP: str) -> Port:
    _expectObject(document, where)
    portType = _string(document, "Type", where, default="tcp")
    if portType not in PORT_TYPES:
        raise _FieldError(f"{where}.Type: expected tcp or udp, got {portType!r}")
    if "Port" not in document:
        raise _FieldError(f"{where}.Port: missing")
    return Port(
        type=portType,
        port=_portNumber(document["Port"], f"{where}.Port", minimum=1),
        servicePort=_portNumber(
            document.get("ServicePort", 0), f"{where}.ServicePort", minimum=0
        ),
        ip=_string(document, "IP", where) or advertiseIP,
    )


def _stableID(hostname: str, service: Service, ordinal: int) -> str:
    identity = json.dumps(
        [
            hostname,
            service.name,
            [[p.type, p.port, p.servicePort, p.ip] for p in service.ports],
            ordinal,
        ]
    )
    return hashlib.sha256(identity.encode("utf-8")).hexdigest()[:12]


def _orDefault(value: Any, default: Any) -> Any:
    return default if value is None else value


def _expectObject(value: Any, where: str) -> None:
    if not isinstance(value, Mapping):
        raise _FieldError(f"{where}: expected an object, got {_kind(value)}")


def _string(
    document: Mapping[str, Any], key: str, where: str, default: str = ""
) -> str:
    value = document.get(key)
    if value is None:
        return default
    if not isinstance(value, str):
        raise _FieldError(f"{where}.{key}: expected a string, got {value!r:.60}")
    return value


def _duration(document: Mapping[str, Any], key: str, where: str) -> float | None:
    text = _string(document, key, where)
    if not text:
        return None
    try:
        return parsePositiveDuration(text)
    except ValueProblem as e:
        raise _FieldError(f"{where}.{key}: {e}") from None


def _portNumber(value: Any, where: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _FieldError(f"{where}: expected a port number, got {value!r:.60}")
    if not minimum <= value <= 65535:
        raise _FieldError(f"{where}: {value} is not a port number ({minimum}-65535)")
    return value


_KINDS: dict[type, str] = {dict: "an object", list: "a list", str: "a string"}


def _kind(value: Any) -> str:
    return _KINDS.get(type(value), repr(value)[:60])
