"""
Catalog benchmark: how fast one node merges records and renders the
catalog's JSON, and how much memory the catalog takes.

    python bench/catalog.py [SERVICES] [HOSTS]

Prints merges per second (new records, refreshes, and duplicates), the time
to render /api/state.json and /api/services.json, and the process's peak
RSS.  Nothing is asserted: the figures are for reading and comparing.
"""

from __future__ import annotations

import random
import resource
import sys
import time

from twisted.internet.task import Clock

from sidecar.catalog import Port, Service, ServicesState
from sidecar.catalog.codec import dumps
from sidecar.catalog.documents import servicesDocument, stateDocument

SECOND = 1_000_000_000


def records(services: int, hosts: int, updated: int) -> list[Service]:
    return [
        Service(
            id=f"{n:012x}",
            name=f"svc-{n % 50}",
            image=f"registry.example/svc-{n % 50}:1.{n % 7}",
            created=updated - 3600 * SECOND,
            hostname=f"host-{n % hosts}",
            ports=(
                Port("tcp", 30000 + n % 20000, 10000 + n % 50, f"127.0.1.{n % hosts}"),
            ),
            updated=updated,
            proxyMode="http",
        )
        for n in range(services)
    ]


def rate(label: str, batch: list[Service], state: ServicesState) -> None:
    started = time.perf_counter()
    changed = state.mergeAll(batch)
    elapsed = time.perf_counter() - started
    print(f"{label:<28} {len(batch) / elapsed:>12,.0f} merges/s  ({changed} changed)")


def main(services: int = 10_000, hosts: int = 100) -> None:
    clock = Clock()
    clock.advance(1_700_000_000)
    state = ServicesState("bench-node", clock)
    now = state.now()
    fresh = records(services, hosts, now - 10 * SECOND)
    random.Random(1).shuffle(fresh)
    print(f"catalog of {services} services on {hosts} hosts")
    rate("new records", fresh, state)
    refreshed = [s.withStatus(s.status, now) for s in fresh]
    rate("refreshes (newer Updated)", refreshed, state)
    rate("duplicates (ignored)", refreshed, state)
    for label, render in (
        ("/api/state.json", lambda: dumps(stateDocument(state))),
        ("/api/services.json", lambda: dumps(servicesDocument(state, []), indent=2)),
    ):
        started = time.perf_counter()
        size = len(render())
        elapsed = time.perf_counter() - started
        print(f"render {label:<21} {elapsed * 1000:>10.1f} ms  ({size:,} bytes)")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"peak RSS                     {peak / 1024:>10.1f} MiB")
    state.stop()


if __name__ == "__main__":
    main(*(int(arg) for arg in sys.argv[1:3]))
