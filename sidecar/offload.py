"""
Where pure work runs: an L{Offload} takes a callable and gives a
L{Deferred} of its result.  In production the reactor's thread pool, so
that encoding a large catalog's document or building a large proxy
snapshot never holds up gossip; inline on a reactor without threads (a
test's clock).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IReactorThreads
from twisted.internet.threads import deferToThreadPool
from twisted.python.failure import Failure

T = TypeVar("T")

# Runs a piece of work somewhere and says when it is done.
Offload = Callable[[Callable[[], Any]], Deferred[Any]]


def inline(work: Callable[[], T]) -> Deferred[T]:
    """
    The L{Offload} that runs C{work} at once, on the calling thread (for
    a reactor without threads, such as a test's clock).
    """
    try:
        return succeed(work())
    except Exception:
        return fail(Failure())


def inThreads(reactor: IReactorThreads) -> Offload:
    """
    The L{Offload} that runs work in C{reactor}'s thread pool.
    """
    pool = reactor.getThreadPool()

    def offload(work: Callable[[], T]) -> Deferred[T]:
        return deferToThreadPool(reactor, pool, work)  # type: ignore[arg-type]

    return offload


def offloadFor(reactor: object) -> Offload:
    """
    Threads when C{reactor} has them, else L{inline}.
    """
    if IReactorThreads.providedBy(reactor):
        return inThreads(reactor)  # type: ignore[arg-type]
    return inline
