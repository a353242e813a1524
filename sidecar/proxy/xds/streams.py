"""
One ADS stream's side of the xDS protocol, state of the world
(L{SotwStream}) or incremental (L{DeltaStream}): requests and snapshots
in, responses out, and what the client has accepted.  Pure: no gRPC, no
threads; the server (L{sidecar.proxy.xds.server}) moves the messages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from envoy.service.discovery.v3.discovery_pb2 import (
    DeltaDiscoveryRequest,
    DeltaDiscoveryResponse,
    DiscoveryRequest,
    DiscoveryResponse,
)
from envoy.service.discovery.v3.discovery_pb2 import (
    Resource as ResourceProto,
)

from .snapshot import SHORT, TYPES, WILDCARD_TYPES, Snapshot

# How much of a NACK's message is kept: it comes from the client.
_MESSAGE_LIMIT = 500
# The most names one stream may subscribe to, per type: far more than any
# catalog has, few enough that no client can fill the node's memory.
MAX_NAMES = 100_000


@dataclass(frozen=True)
class Nack:
    """
    A client refused a response: the type (C{LDS}, ...), the version it
    refused, and its reason.
    """

    type: str
    version: str
    message: str

    def asJSON(self) -> dict[str, str]:
        return {"Type": self.type, "Version": self.version, "Message": self.message}


class TooManyNames(Exception):
    """
    A stream subscribed to more than L{MAX_NAMES} names of one type.
    """


class UnknownType(Exception):
    """
    A request for a type this control plane does not serve (another API
    version's, or no xDS type at all).
    """


@dataclass
class _TypeState:
    """
    One type's subscription on a stream.

    @ivar names: the subscribed names.
    @ivar wildcard: whether every resource a wildcard may see is
        subscribed too.
    @ivar pending: (state of the world) the client waits for a response.
    @ivar known: (delta) the version the client holds of each name.
    """

    names: frozenset[str] = frozenset()
    wildcard: bool = False
    sentNonce: str = ""
    sentVersion: str = ""
    sentNames: tuple[frozenset[str], bool] | None = None
    acked: str = ""
    nacks: int = 0
    pending: bool = False
    known: dict[str, str] = field(default_factory=dict)
    started: bool = False


class _Stream:
    """
    What both kinds of stream share: the snapshot served, per-type state,
    nonces, and the client's ACKs and NACKs.

    @ivar node: the client's node ID, from its first request that has one.
    @ivar lastNack: the last response refused, or L{None}.
    """

    kind = ""

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self.node = ""
        self.lastNack: Nack | None = None
        self._types: dict[str, _TypeState] = {}
        self._nonce = 0

    def _state(self, typeURL: str) -> _TypeState:
        if typeURL not in TYPES:
            raise UnknownType(typeURL)
        return self._types.setdefault(typeURL, _TypeState())

    @staticmethod
    def _bounded(typeURL: str, names: frozenset[str]) -> frozenset[str]:
        if len(names) > MAX_NAMES:
            raise TooManyNames(
                f"{len(names)} names of {SHORT[typeURL]}, more than {MAX_NAMES}"
            )
        return names

    def _nextNonce(self) -> str:
        self._nonce += 1
        return str(self._nonce)

    def _answer(self, state: _TypeState, typeURL: str, request: Any) -> Nack | None:
        """
        Take C{request}'s ACK or NACK of the response it names; return the
        NACK, if it is one.
        """
        if request.node.id and not self.node:
            self.node = request.node.id[:200]
        if not request.HasField("error_detail"):
            state.acked = state.sentVersion
            return None
        state.nacks += 1
        nack = Nack(
            SHORT[typeURL],
            state.sentVersion,
            request.error_detail.message[:_MESSAGE_LIMIT],
        )
        self.lastNack = nack
        return nack

    def status(self) -> dict[str, Any]:
        """
        What the client subscribes to and has accepted, per type, as JSON.
        """
        return {
            "Node": self.node,
            "Stream": self.kind,
            "Types": {
                SHORT[t]: {
                    "Subscribed": (["*"] if s.wildcard else []) + sorted(s.names),
                    "Sent": s.sentVersion,
                    "Acked": s.acked,
                    "Nacks": s.nacks,
                }
                for t, s in sorted(self._types.items(), key=lambda i: SHORT[i[0]])
            },
            "LastNack": None if self.lastNack is None else self.lastNack.asJSON(),
        }


def _subscribe(state: _TypeState, typeURL: str, names: frozenset[str]) -> None:
    """
    Set C{state}'s subscription to C{names}, as a state-of-the-world
    request gives it: C{*}, or no name for a wildcard type, is a wildcard.
    """
    state.wildcard = "*" in names or (not names and typeURL in WILDCARD_TYPES)
    state.names = names - {"*"}


class SotwStream(_Stream):
    """
    A state-of-the-world stream: each response carries every subscribed
    resource of its type.  A response is sent only to a request waiting
    for one (the first, or the ACK or NACK of the last), and only when
    it differs from what was last sent; a NACKed version is not sent
    again, and the client keeps what it last accepted.
    """

    kind = "sotw"

    def request(
        self, request: DiscoveryRequest
    ) -> tuple[list[DiscoveryResponse], Nack | None]:
        """
        @return: the responses to send, and the NACK C{request} carries.
        @raise UnknownType: for a type not served.
        @raise TooManyNames: for a subscription beyond L{MAX_NAMES}.
        """
        state = self._state(request.type_url)
        nack = None
        if request.response_nonce:
            if request.response_nonce != state.sentNonce:
                return [], None  # stale: answers a response since replaced
            nack = self._answer(state, request.type_url, request)
        elif request.node.id and not self.node:
            self.node = request.node.id[:200]
        names = self._bounded(request.type_url, frozenset(request.resource_names))
        _subscribe(state, request.type_url, names)
        state.pending = True
        return self._respond(request.type_url, state), nack

    def update(self, snapshot: Snapshot) -> list[DiscoveryResponse]:
        """
        Serve C{snapshot} from now on: the responses it makes.
        """
        self.snapshot = snapshot
        responses = []
        for typeURL in TYPES:
            state = self._types.get(typeURL)
            if state is not None:
                responses += self._respond(typeURL, state)
        return responses

    def _respond(self, typeURL: str, state: _TypeState) -> list[DiscoveryResponse]:
        if not state.pending:
            return []
        served = self.snapshot.of(typeURL)
        subscription = (state.names, state.wildcard)
        if state.sentVersion == served.version and state.sentNames == subscription:
            return []
        state.pending = False
        state.sentNonce = self._nextNonce()
        state.sentVersion = served.version
        state.sentNames = subscription
        return [
            DiscoveryResponse(
                version_info=served.version,
                type_url=typeURL,
                nonce=state.sentNonce,
                resources=[
                    r.packed for r in served.select(state.names, state.wildcard)
                ],
            )
        ]


class DeltaStream(_Stream):
    """
    An incremental stream: each response carries only the subscribed
    resources whose version the client does not have, and the names of
    those it has that are gone.
    """

    kind = "delta"

    def request(
        self, request: DeltaDiscoveryRequest
    ) -> tuple[list[DeltaDiscoveryResponse], Nack | None]:
        """
        @return: the responses to send, and the NACK C{request} carries.
        @raise UnknownType: for a type not served.
        @raise TooManyNames: for subscriptions beyond L{MAX_NAMES}.
        """
        typeURL = request.type_url
        state = self._state(typeURL)
        nack = None
        if request.response_nonce:
            if request.response_nonce == state.sentNonce:
                nack = self._answer(state, typeURL, request)
        elif request.node.id and not self.node:
            self.node = request.node.id[:200]
        subscribe = frozenset(request.resource_names_subscribe)
        unsubscribe = frozenset(request.resource_names_unsubscribe)
        first = not state.started
        if first:
            state.started = True
            state.known = {
                str(n)[:200]: str(v)[:200]
                for n, v in request.initial_resource_versions.items()
            }
            # The legacy wildcard: a first request that names nothing.
            state.wildcard = typeURL in WILDCARD_TYPES and not subscribe
        if "*" in subscribe:
            state.wildcard = True
        if "*" in unsubscribe:
            state.wildcard = False
        state.names = self._bounded(
            typeURL, (state.names | subscribe) - unsubscribe - {"*"}
        )
        for name in unsubscribe:
            state.known.pop(name, None)
        return self._respond(typeURL, state, always=first), nack

    def update(self, snapshot: Snapshot) -> list[DeltaDiscoveryResponse]:
        """
        Serve C{snapshot} from now on: the responses it makes.
        """
        self.snapshot = snapshot
        responses = []
        for typeURL in TYPES:
            state = self._types.get(typeURL)
            if state is not None and state.started:
                responses += self._respond(typeURL, state)
        return responses

    def _respond(
        self, typeURL: str, state: _TypeState, always: bool = False
    ) -> list[DeltaDiscoveryResponse]:
        served = self.snapshot.of(typeURL)
        view = {r.name: r for r in served.select(state.names, state.wildcard)}
        changed = [r for n, r in view.items() if state.known.get(n) != r.version]
        removed = sorted(n for n in state.known if n not in view)
        if not (changed or removed or always):
            return []
        for gone in removed:
            del state.known[gone]
        for r in changed:
            state.known[r.name] = r.version
        state.sentNonce = self._nextNonce()
        state.sentVersion = served.version
        return [
            DeltaDiscoveryResponse(
                system_version_info=served.version,
                type_url=typeURL,
                nonce=state.sentNonce,
                removed_resources=removed,
                resources=[
                    ResourceProto(name=r.name, version=r.version, resource=r.packed)
                    for r in changed
                ],
            )
        ]
