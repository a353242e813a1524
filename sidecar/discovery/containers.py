"""
Containers into services, the Go Sidecar's way: what a running container's
labels and published ports make of it.  Pure: the input is the Docker
Engine API's container list entry (C{GET /containers/json}), as JSON.

Labels read:

  - C{ServiceName} (or another label, or a regex on the container's name;
    see L{Naming}): the service's name; the image's name without either;
  - C{ServicePort_<container port>=<service port>}, also written
    C{ServicePort_<container port>/tcp} or C{/udp} to name one protocol;
  - C{HealthCheck}, C{HealthCheckArgs}: the check; C{HealthCheck=Docker}
    is the container's own C{HEALTHCHECK}, as the engine reports it;
    C{HealthCheckInterval}, C{HealthCheckTimeout}: its timing (ours);
  - C{ProxyMode}: C{http} (default), C{tcp} or C{ws};
  - C{SidecarDiscover=false}: not a service;
  - C{SidecarListener=<service port>}: the tcp port with that ServicePort
    wants change events.

A malformed label never loses the container: the label is ignored, the
problem is returned, and the rest of the service stands.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sidecar.catalog import Port, Service
from sidecar.catalog.local import CheckSpec, LocalService
from sidecar.config.values import ValueProblem, parsePositiveDuration

from .staticfile import PROXY_MODES

# The source that services made from containers are reported under: the
# Docker discoverer's name, which the health checks' command policy knows
# labels by.
SOURCE = "docker"
NANOSECONDS = 1_000_000_000
_UNSPECIFIED_IPS = ("", "0.0.0.0", "::")

# Reports a problem with a label: the label's name, then what is wrong.
Report = Callable[[str, str], None]


@dataclass(frozen=True)
class Naming:
    """
    How a container's service is named: by the label C{label}
    (C{namer="docker_label"}, the default), or by the first group of
    C{match} on the container's name (C{namer="regex"}); the image's name
    when neither gives one.
    """

    namer: str = "docker_label"
    label: str = "ServiceName"
    match: str = ""


DEFAULT_NAMING = Naming()


@dataclass(frozen=True)
class ContainerService:
    """
    What one container makes: its service (L{None} when it asks not to be
    discovered) and the problems found in its labels, each one line.
    """

    local: LocalService | None
    problems: tuple[str, ...] = ()


def serviceFromContainer(
    container: Mapping[str, Any],
    hostname: str,
    advertiseIP: str,
    naming: Naming = DEFAULT_NAMING,
) -> ContainerService:
    """
    The service a running container makes.

    @param container: an entry of the engine's container list.
    @param hostname: this node's name, the service's C{Hostname}.
    @param advertiseIP: the IP of ports published on every address.
    @raise ValueError: when C{container} is not a container list entry at
        all (no ID, say); the message names what is wrong.
    """
    containerID = container.get("Id")
    if not isinstance(containerID, str) or len(containerID) < 12:
        raise ValueError(f"container without a valid Id: {containerID!r:.80}")
    shortID = containerID[:12]
    labels = _labels(container.get("Labels"))
    if labels.get("SidecarDiscover", "").strip().lower() == "false":
        return ContainerService(None)
    problems: list[str] = []

    def problem(label: str, text: str) -> None:
        problems.append(
            f"container {shortID}: label {label}={labels.get(label, '')!r:.80}: {text}"
        )

    image = container.get("Image")
    image = image if isinstance(image, str) else ""
    ports = _ports(container.get("Ports"), labels, advertiseIP, problem)
    proxyMode = labels.get("ProxyMode", "http")
    if proxyMode not in PROXY_MODES:
        problem("ProxyMode", f"expected one of {', '.join(PROXY_MODES)}; using http")
        proxyMode = "http"
    created = container.get("Created")
    service = Service(
        id=shortID,
        name=_name(container, labels, image, naming),
        image=image,
        created=created * NANOSECONDS if isinstance(created, int) else 0,
        hostname=hostname,
        ports=ports,
        proxyMode=proxyMode,
    )
    checkType = labels.get("HealthCheck", "")
    checkArgs = labels.get("HealthCheckArgs", "")
    if checkType == "Docker" and not checkArgs:
        checkArgs = shortID  # the engine's own HEALTHCHECK of this container
    check = CheckSpec(
        type=checkType,
        args=checkArgs,
        interval=_duration(labels, "HealthCheckInterval", problem),
        timeout=_duration(labels, "HealthCheckTimeout", problem),
    )
    local = LocalService(service, check, _listenPort(labels, ports, problem))
    return ContainerService(local, tuple(problems))


def _labels(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        return {}
    return {k: v for k, v in value.items() if isinstance(k, str) and isinstance(v, str)}


def _name(
    container: Mapping[str, Any], labels: Mapping[str, str], image: str, naming: Naming
) -> str:
    if naming.namer == "regex":
        names = container.get("Names")
        if isinstance(names, list) and names and isinstance(names[0], str):
            found = re.search(naming.match, names[0])
            if found is not None and found.groups() and found.group(1):
                return found.group(1)
    else:
        named = labels.get(naming.label, "").strip()
        if named:
            return named
    return _imageName(image) or "unnamed"


def _imageName(image: str) -> str:
    # registry.example:5000/team/web:1.2 -> web, as a service name.
    last = image.rsplit("/", 1)[-1]
    return last.split("@", 1)[0].split(":", 1)[0]


def _ports(
    value: Any, labels: Mapping[str, str], advertiseIP: str, problem: Report
) -> tuple[Port, ...]:
    if not isinstance(value, list):
        return ()
    found: dict[tuple[str, int, str], Port] = {}
    for entry in value:
        if not isinstance(entry, Mapping):
            continue
        public = _portNumber(entry.get("PublicPort"))
        private = _portNumber(entry.get("PrivatePort"))
        portType = entry.get("Type", "tcp")
        if public is None or private is None or portType not in ("tcp", "udp"):
            continue  # exposed but not published: invisible, as in Go
        ip = entry.get("IP")
        if not isinstance(ip, str) or ip in _UNSPECIFIED_IPS:
            ip = advertiseIP
        # An engine that publishes on IPv4 and IPv6 lists the port twice.
        key = (portType, public, ip)
        if key not in found:
            servicePort = _servicePort(labels, private, portType, problem)
            found[key] = Port(portType, public, servicePort, ip)
    return tuple(sorted(found.values(), key=lambda p: (p.type, p.port, p.ip)))


def _servicePort(
    labels: Mapping[str, str], private: int, portType: str, problem: Report
) -> int:
    for label in (f"ServicePort_{private}/{portType}", f"ServicePort_{private}"):
        if label in labels:
            text = labels[label].strip()
            if text.isdigit() and 0 < int(text) <= 65535:
                return int(text)
            problem(label, "not a port number (1-65535); the port is not proxied")
            return 0
    return 0


def _portNumber(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= 65535:
        return value
    return None


def _duration(labels: Mapping[str, str], label: str, problem: Report) -> float | None:
    text = labels.get(label, "").strip()
    if not text:
        return None
    try:
        return parsePositiveDuration(text)
    except ValueProblem as e:
        problem(label, str(e))
        return None


def _listenPort(
    labels: Mapping[str, str], ports: tuple[Port, ...], problem: Report
) -> int | None:
    text = labels.get("SidecarListener", "").strip()
    if not text:
        return None
    if not text.isdigit():
        problem("SidecarListener", "not a service port number")
        return None
    for port in ports:
        if port.type == "tcp" and port.servicePort == int(text):
            return port.port
    problem("SidecarListener", f"no published tcp port has ServicePort {text}")
    return None
