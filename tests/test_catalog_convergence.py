"""
Properties of the merge, checked by hypothesis with 500 random cases each:
any delivery order with duplicates converges, merging is idempotent, and
lifespans run exactly on a Clock.
"""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from sidecar.catalog import (
    Port,
    Service,
    ServicesState,
    Status,
    decodeService,
    encodeService,
)

SECOND = 1_000_000_000
START = 1_700_000_000
NOW = START * SECOND
PROPERTY = settings(max_examples=500, deadline=None)

statuses = st.sampled_from(list(Status))
records = st.builds(
    Service,
    id=st.sampled_from(["aaaaaaaaaaaa", "bbbbbbbbbbbb"]),
    name=st.sampled_from(["web", "db"]),
    image=st.sampled_from(["", "img:1", "img:2"]),
    created=st.just(NOW - 3600 * SECOND),
    hostname=st.sampled_from(["peer-1", "peer-2"]),
    ports=st.lists(
        st.builds(Port, st.sampled_from(["tcp", "udp"]), st.integers(1, 3)),
        max_size=2,
    ).map(tuple),
    # A narrow range of stamps makes ties (and the tie-break) common.
    updated=st.integers(NOW - 5, NOW),
    proxyMode=st.sampled_from(["http", "tcp"]),
    status=statuses,
)


def freshState() -> ServicesState:
    clock = Clock()
    clock.advance(START)
    return ServicesState("me", clock)


def catalog(state: ServicesState) -> list[Service]:
    return sorted(state.services(), key=lambda s: (s.hostname, s.id))


class ConvergenceProperties(SynchronousTestCase):
    @PROPERTY
    @given(
        st.lists(records, min_size=1, max_size=12), st.randoms(use_true_random=False)
    )
    def test_anyOrderWithDuplicatesConverges(
        self, updates: list[Service], shuffler: random.Random
    ) -> None:
        reference = freshState()
        reference.mergeAll(updates)
        for _ in range(3):
            delivery = updates + shuffler.choices(updates, k=len(updates))
            shuffler.shuffle(delivery)
            other = freshState()
            other.mergeAll(delivery)
            self.assertEqual(catalog(other), catalog(reference))

    @PROPERTY
    @given(st.lists(records, min_size=1, max_size=12))
    def test_mergingAgainChangesNothing(self, updates: list[Service]) -> None:
        state = freshState()
        state.mergeAll(updates)
        before = catalog(state)
        events: list[object] = []

        class Observer:
            def serviceChanged(self, event: object) -> None:
                events.append(event)

        state.addObserver(Observer())  # type: ignore[arg-type]
        self.assertEqual(state.mergeAll(updates), 0)
        self.assertEqual(events, [])
        self.assertEqual(catalog(state), before)

    @PROPERTY
    @given(records, st.integers(-30 * SECOND, 3 * 3600 * SECOND))
    def test_expiryFollowsTheLifespansExactly(self, record: Service, age: int) -> None:
        """
        A record lives its lifespan from when it arrived, however old its
        stamp says it is (its origin's clock may be hours behind ours), and
        then expires to a tombstone one second after its own stamp.
        """
        state = freshState()
        clock: Clock = state._clock  # type: ignore[assignment]
        record = record.withStatus(record.status, NOW - age)
        state.merge(record)
        stored = state.get(record.hostname, record.id)
        assert stored is not None
        if stored.isTombstone:
            lifespan = 3 * 3600 * SECOND
        elif stored.status is Status.DRAINING:
            lifespan = 600 * SECOND
        else:
            lifespan = 80 * SECOND
        remaining = lifespan
        # A float clock at today's epoch resolves about 0.25 us, and the
        # catalog allows 1 us of slack, so "exactly" means within 10 us.
        margin = 10_000
        if remaining > margin:
            clock.advance((remaining - margin) / SECOND)
            self.assertEqual(state.get(record.hostname, record.id), stored)
            remaining = margin
        clock.advance(max(remaining, 0) / SECOND)
        after = state.get(record.hostname, record.id)
        if stored.isTombstone:
            self.assertIsNone(after)
        else:
            self.assertEqual(after, stored.tombstone(stored.updated + SECOND))
        state.stop()


class CodecProperties(SynchronousTestCase):
    @PROPERTY
    @given(
        st.builds(
            Service,
            id=st.text(min_size=1),
            name=st.text(),
            image=st.text(),
            created=st.integers(-62135596800 * SECOND, 253402300799 * SECOND),
            hostname=st.text(),
            ports=st.lists(
                st.builds(
                    Port,
                    st.text(),
                    st.integers(0, 65535),
                    st.integers(0, 65535),
                    st.text(),
                ),
                max_size=3,
            ).map(tuple),
            updated=st.integers(-62135596800 * SECOND, 253402300799 * SECOND),
            proxyMode=st.text(),
            status=statuses,
        )
    )
    def test_encodeThenDecodeIsIdentity(self, service: Service) -> None:
        self.assertEqual(decodeService(encodeService(service)), service)
