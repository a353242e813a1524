"""
L{Bodies}: the catalog's documents, encoded once per catalog version and
shared by every reader.

A poller that asks for C{/api/services.json} a thousand times while nothing
changes costs one render and a thousand writes of the same bytes.  A render
takes a L{CatalogSnapshot} on the reactor (the catalog lives there) and
builds and encodes the document through an L{Offload}: in production, the
reactor's thread pool, so that a large catalog's encoding never holds up
gossip.  Readers who arrive while a render runs wait for that render; none
starts a second one.
"""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from sidecar.catalog import CatalogSnapshot, ServicesState
from sidecar.catalog.codec import dumps
from sidecar.catalog.documents import (
    byServiceDocument,
    serviceDocument,
    servicesDocument,
    stateDocument,
)
from sidecar.interfaces import IMembership
from sidecar.offload import Offload, inline

T = TypeVar("T")

# Cached bodies of C{/api/services/<name>.json} (unknown names included)
# before the cache starts over: a client asking for random names cannot
# grow it without bound.
MAX_CACHED = 1024


@dataclass(frozen=True)
class Body:
    """
    One encoded document.

    @ivar data: the bytes a Go client gets.
    @ivar etag: a strong entity tag for C{data} (a hash of it, quoted), so
        it survives a restart of the node.
    @ivar modified: when, by this node's clock (nanoseconds), what the
        document shows last changed.
    """

    data: bytes
    etag: bytes
    modified: int

    @classmethod
    def of(cls, data: bytes, modified: int) -> Body:
        digest = hashlib.blake2b(data, digest_size=12).hexdigest()
        return cls(data, f'"{digest}"'.encode("ascii"), modified)


class _Shared(Generic[T]):
    """
    One result for many waiters: each L{wait} is a Deferred of its own that
    fires with the result (or the failure) of the one underneath.
    """

    def __init__(self, result: Deferred[T]) -> None:
        self._waiting: list[Deferred[T]] | None = []
        self._outcome: T | Failure | None = None
        result.addBoth(self._settle)

    @property
    def failed(self) -> bool:
        return self._waiting is None and isinstance(self._outcome, Failure)

    def _settle(self, outcome: T | Failure) -> None:
        waiting, self._waiting = self._waiting or [], None
        self._outcome = outcome
        for waiter in waiting:
            waiter.callback(outcome)

    def wait(self) -> Deferred[T]:
        waiter: Deferred[T] = Deferred()
        if self._waiting is None:
            waiter.callback(self._outcome)  # type: ignore[arg-type]
        else:
            self._waiting.append(waiter)
        return waiter


class Bodies:
    """
    The encoded documents of one catalog, each rendered at most once per
    catalog L{version<ServicesState.version>} (and, for
    C{/api/services.json}, per list of member names).
    """

    log = Logger()

    def __init__(
        self,
        state: ServicesState,
        membership: IMembership,
        clock: IReactorTime,
        offload: Offload = inline,
    ) -> None:
        self._state = state
        self._membership = membership
        self._clock = clock
        self._offload = offload
        self._version = -1
        self._snapshot: CatalogSnapshot | None = None
        self._shared: dict[tuple[Any, ...], _Shared[Any]] = {}
        self._names: tuple[str, ...] = ()
        self._namesSeen = 0

    def state(self) -> Deferred[Body]:
        """
        C{/api/state.json}, compact; also C{/api/watch?by_service=false}.
        """
        snapshot = self._current()
        return self._get(
            ("state",),
            lambda: Body.of(dumps(stateDocument(snapshot)), snapshot.modified),
        )

    def byService(self) -> Deferred[Body]:
        """
        C{{<name>: [Service, ...]}}, compact: C{/api/watch}'s default.
        """
        snapshot = self._current()
        return self._get(
            ("byService",),
            lambda: Body.of(dumps(byServiceDocument(snapshot)), snapshot.modified),
        )

    def services(self) -> Deferred[Body]:
        """
        C{/api/services.json}, indented; it also lists the members, so a
        change of membership makes a new body too.
        """
        snapshot = self._current()
        names = tuple(sorted(self._membership.memberNames()))
        if names != self._names:
            self._names = names
            self._namesSeen = round(self._clock.seconds() * 1_000_000_000)
        modified = max(snapshot.modified, self._namesSeen)
        return self._get(
            ("services", names),
            lambda: Body.of(
                dumps(servicesDocument(snapshot, names), indent=2), modified
            ),
        )

    def service(self, name: str) -> Deferred[Body | None]:
        """
        C{/api/services/<name>.json}, indented, or L{None} when no instance
        has that name.
        """
        snapshot = self._current()

        def render() -> Body | None:
            document = serviceDocument(snapshot, name)
            if document is None:
                return None
            return Body.of(dumps(document, indent=2), snapshot.modified)

        return self._get(("service", name), render)

    def gzipped(self, body: Body) -> Deferred[bytes]:
        """
        C{body}'s data gzipped (deterministically: no name, no time), also
        once per body.
        """
        return self._get(
            ("gzip", body.etag),
            lambda: gzip.compress(body.data, compresslevel=6, mtime=0),
        )

    def _current(self) -> CatalogSnapshot:
        """
        The snapshot of the catalog's current version; a new version
        forgets every body of the old one.
        """
        if self._snapshot is None or self._state.version != self._version:
            self._version = self._state.version
            self._snapshot = self._state.snapshot()
            self._shared.clear()
        return self._snapshot

    def _get(self, key: tuple[Any, ...], render: Callable[[], T]) -> Deferred[T]:
        shared = self._shared.get(key)
        if shared is None or shared.failed:
            if len(self._shared) >= MAX_CACHED:
                self._shared.clear()
            result = self._offload(render)
            result.addErrback(self._renderFailed, key)
            shared = self._shared[key] = _Shared(result)
        return shared.wait()

    def _renderFailed(self, failure: Failure, key: tuple[Any, ...]) -> Failure:
        self.log.failure("rendering {key} failed", failure, key=key[0])
        return failure
