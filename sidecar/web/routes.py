"""
The API's paths, matched as the Go Sidecar's router (gorilla/mux) matches
them, so that every path a Go client can send gets the Go answer's status:
a path that fits a route but not its method is C{405} with no body, a path
that fits no route is C{404 page not found}.  Pure: segments in, a match
out.
"""

from __future__ import annotations

from dataclasses import dataclass

# GET, and HEAD wherever GET is taken.
READ = frozenset({b"GET", b"HEAD"})


@dataclass(frozen=True)
class Route:
    """
    One route: a name for the handler, a pattern per path segment, and
    the methods it takes.

    A segment pattern is a literal (C{watch}), C{{}} (any non-empty
    segment), C{{}.{}} (a name and an extension, both non-empty, split at
    the last dot, as gorilla's greedy C{{name}.{extension}}) or
    C{<literal>.{}} (C{state.{}}: that name with any extension).
    """

    name: str
    pattern: tuple[str, ...]
    methods: frozenset[bytes]


# Go's routes, in its order, with ours among them (C{members.json},
# C{checks.json}, C{haproxy.json}, C{envoy.json}, C{health}, and DELETE to
# undrain); HEAD is taken wherever GET is.  The last one is Go's CORS route: any single
# segment for OPTIONS, which also makes every other single segment a 405.
API_ROUTES = (
    Route("service", ("services", "{}.{}"), READ),
    Route("drain", ("services", "{}", "drain"), frozenset({b"POST", b"DELETE"})),
    Route("services", ("services.{}",), READ),
    Route("state", ("state.{}",), READ),
    Route("watch", ("watch",), frozenset({b"GET"})),
    Route("members", ("members.{}",), READ),
    Route("checks", ("checks.{}",), READ),
    Route("haproxy", ("haproxy.{}",), READ),
    Route("envoy", ("envoy.{}",), READ),
    Route("health", ("health",), READ),
    Route("health", ("health.{}",), READ),
    Route("options", ("{}",), frozenset({b"OPTIONS"})),
)

# The Go Sidecar's deprecated aliases at the root, and ours for one
# service by name.
ALIAS_ROUTES = (
    Route("service", ("services", "{}.{}"), READ),
    Route("services", ("services.{}",), READ),
    Route("state", ("state.{}",), READ),
    Route("watch", ("watch",), frozenset({b"GET"})),
)


@dataclass(frozen=True)
class Match:
    """
    A route fits the path and takes the method; C{values} are what its
    C{{}} parts matched, in order.
    """

    route: Route
    values: tuple[str, ...]


@dataclass(frozen=True)
class WrongMethod:
    """
    Some route fits the path, none takes the method.
    """

    allowed: frozenset[bytes]


def match(
    routes: tuple[Route, ...], segments: list[str], method: bytes
) -> Match | WrongMethod | None:
    """
    The first route that fits C{segments} and takes C{method}; else
    L{WrongMethod} when a route fits the path; else L{None} (not found).
    """
    allowed: set[bytes] = set()
    for route in routes:
        values = _fit(route.pattern, segments)
        if values is None:
            continue
        if method in route.methods:
            return Match(route, values)
        allowed |= route.methods
    return WrongMethod(frozenset(allowed)) if allowed else None


def _fit(pattern: tuple[str, ...], segments: list[str]) -> tuple[str, ...] | None:
    if len(pattern) != len(segments):
        return None
    values: list[str] = []
    for part, segment in zip(pattern, segments, strict=True):
        if part == "{}":
            if not segment:
                return None
            values.append(segment)
        elif part == "{}.{}":
            stem, dot, extension = segment.rpartition(".")
            if not (dot and stem and extension):
                return None
            values += [stem, extension]
        elif part.endswith(".{}"):
            prefix = part[:-2]
            extension = segment[len(prefix) :]
            if not (segment.startswith(prefix) and extension):
                return None
            values.append(extension)
        elif part != segment:
            return None
    return tuple(values)


def isAlias(segments: list[str]) -> bool:
    """
    Whether a path from the root is one of L{ALIAS_ROUTES}' (with any
    method: the route decides what the method gets).
    """
    return any(_fit(route.pattern, segments) is not None for route in ALIAS_ROUTES)
