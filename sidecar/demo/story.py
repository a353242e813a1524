"""
The demo's story, step by step, with what each step changed and when:
start three nodes; make a good-svc instance unhealthy and healthy again;
SIGKILL node 3 and bring it back; drain an instance and undrain it.  Each
step watches node 1, where awesome-svc calls good-svc through node 1's
HAProxy without pause, and records the moment each expected change
happened, and every call awesome-svc made meanwhile.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from twisted.internet import defer, reactor, task

from ..catalog.service import Status
from ..cli import requestJSON
from ..gossip.profiles import PROFILES, detectionBound
from .apps import Call
from .cluster import AWESOME, GOOD, GOOD_SERVICE_PORT, HOSTS, PROFILE, Host, Layout

# How often the conditions of a step are looked at, and the call log read.
POLL_INTERVAL = 0.05
# A step expects its changes within this many seconds, unless it says.
STEP_TIMEOUT = 30.0
# awesome-svc has stopped calling an instance once no call went there for
# this long (it calls about 50 times a second).
QUIET = 1.0
BOTH = f"node-1's HAProxy sends {GOOD} to node-2 and node-3"

# A probe, given the moment of a step's action: when (time.time()) the
# change it looks for happened, or None if it has not yet.
Probe = Callable[[float], Awaitable[float | None]]


@dataclass(frozen=True)
class Event:
    """
    A change a step saw, C{after} seconds after its action; C{notBefore},
    when the last look that had not seen it began: a change seen by
    polling happened between the two.
    """

    key: str
    after: float
    what: str
    notBefore: float = 0.0


@dataclass
class Step:
    """
    One step: its action at C{began}, the changes it saw by C{ended}, and
    awesome-svc's calls from the end of the previous step to its end.
    """

    key: str
    title: str
    began: float
    ended: float = 0.0
    events: list[Event] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)

    def event(self, key: str) -> Event:
        for event in self.events:
            if event.key == key:
                return event
        raise KeyError(f"step {self.key!r} saw no {key!r}")

    def time(self, key: str) -> float:
        """
        Seconds from the action to the event C{key}.
        """
        return self.event(key).after

    @property
    def failures(self) -> list[Call]:
        return [call for call in self.calls if call.error is not None]


class CallLog:
    """
    awesome-svc's calls, read from its C{/calls} as they happen.
    """

    def __init__(self, url: str) -> None:
        self._url = url
        self.calls: list[Call] = []
        self._next = 0

    async def read(self) -> None:
        body = await requestJSON("GET", f"{self._url}/calls?after={self._next}", 5)
        self.calls += [Call(**call) for call in body["Calls"]]
        self._next = body["Next"]

    def between(self, start: float, end: float) -> list[Call]:
        return [c for c in self.calls if start <= c.started < end]

    async def through(self, moment: float) -> None:
        """
        Read until the log holds a call that started after C{moment}:
        awesome-svc calls one call at a time, so every call that started
        before it has ended and is in the log.
        """
        deadline = time.time() + STEP_TIMEOUT
        while not self.calls or self.calls[-1].started <= moment:
            if time.time() > deadline:
                raise TimeoutError(f"{AWESOME} made no call for {STEP_TIMEOUT} s")
            await self.read()
            await task.deferLater(reactor, POLL_INTERVAL)  # type: ignore[arg-type]


class Demo:
    """
    The story on C{layout}, its files in C{directory}; C{say} is told each
    step's results as they come.
    """

    def __init__(
        self,
        layout: Layout,
        directory: Path,
        say: Callable[[str], None],
    ) -> None:
        self.layout = layout
        self.directory = directory
        self.say = say
        self.hosts = {n: Host(layout, n, directory / f"node-{n}") for n in HOSTS}
        self.log = CallLog(layout.awesomeURL())
        self.steps: list[Step] = []
        self.bound = detectionBound(PROFILES[PROFILE], len(HOSTS))

    # --- what the steps look at ---------------------------------------

    def _server(self, number: int) -> str:
        return f"{self.layout.address(number)}:{self.layout.goodPort}"

    def rotationIs(self, numbers: set[int]) -> Probe:
        """
        When node 1's HAProxy sends good-svc to the nodes C{numbers} only.
        """
        wanted = {self._server(n) for n in numbers}

        async def probe(began: float) -> float | None:
            return time.time() if await self.hosts[1].rotation() == wanted else None

        return probe

    def statusIs(self, number: int, status: Status) -> Probe:
        """
        When node 1's catalog has good-svc on node C{number} in C{status}.
        """

        async def probe(began: float) -> float | None:
            body = await self.hosts[1].get(f"/services/{GOOD}.json")
            records = body.get("Services", {}).get(GOOD, [])
            mine = [r for r in records if r["Hostname"] == f"node-{number}"]
            if any(r["Status"] == status.value for r in mine):
                return time.time()
            return None

        return probe

    def memberIs(self, number: int, state: str) -> Probe:
        """
        When node 1 sees node C{number} in C{state}.
        """

        async def probe(began: float) -> float | None:
            body = await self.hosts[1].get("/members.json")
            states = {m["Name"]: m["State"] for m in body["Members"]}
            return time.time() if states.get(f"node-{number}") == state else None

        return probe

    def callsReach(self, number: int) -> Probe:
        """
        When awesome-svc's first call since the action reached the instance
        on node C{number}.
        """
        instance = self.layout.instance(number)

        async def probe(began: float) -> float | None:
            since = self.log.between(began, float("inf"))
            return min(
                (c.started for c in since if c.instance == instance), default=None
            )

        return probe

    def callsAvoid(self, number: int) -> Probe:
        """
        When awesome-svc's last call to the instance on node C{number}
        started (or the action, if none did), once none has gone there for
        L{QUIET} seconds.
        """
        instance = self.layout.instance(number)

        async def probe(began: float) -> float | None:
            since = self.log.between(began, float("inf"))
            last = max(
                (c.started for c in since if c.instance == instance), default=began
            )
            return last if any(c.started > last + QUIET for c in since) else None

        return probe

    # --- running a step -------------------------------------------------

    async def step(
        self,
        key: str,
        title: str,
        action: Callable[[], Awaitable[Any]],
        expected: dict[str, tuple[str, Probe]],
        timeout: float = STEP_TIMEOUT,
        note: str = "",
    ) -> Step:
        """
        Take C{action}, then wait until every probe of C{expected} (key:
        what it means, probe) has seen its change; report the step.
        """
        self.say(f"\n== {len(self.steps) + 1}. {title}")
        if note:
            self.say(f"   ({note})")
        windowStart = self.steps[-1].ended if self.steps else time.time()
        step = Step(key, title, time.time())
        await action()
        pending = dict(expected)
        # A probe may fail while what it asks is starting or gone (a node's
        # API, its HAProxy's socket): that is "not yet", and the last such
        # error is told if the change never comes.
        errors: dict[str, str] = {}
        notBefore = dict.fromkeys(expected, step.began)
        while pending:
            await self.log.read()
            for name, (what, probe) in list(pending.items()):
                asked = time.time()
                try:
                    seen = await probe(step.began)
                except Exception as e:
                    errors[name] = f"{type(e).__name__}: {e}"
                    seen = None
                if seen is None:
                    notBefore[name] = asked
                    continue
                after = max(0.0, seen - step.began)
                earliest = min(after, notBefore[name] - step.began)
                step.events.append(Event(name, after, what, earliest))
                del pending[name]
            if pending and time.time() > step.began + timeout:
                missing = "; ".join(
                    what + (f" (last error: {errors[name]})" if name in errors else "")
                    for name, (what, _) in pending.items()
                )
                raise TimeoutError(f"{title}: not seen within {timeout:g} s: {missing}")
            await task.deferLater(reactor, POLL_INTERVAL)  # type: ignore[arg-type]
        step.ended = time.time()
        await self.log.through(step.ended)
        step.calls = self.log.between(windowStart, step.ended)
        self.steps.append(step)
        self._report(step)
        return step

    def _report(self, step: Step) -> None:
        for event in sorted(step.events, key=lambda e: e.after):
            self.say(f"   +{event.after:6.2f} s  {event.what}")
        failures = step.failures
        self.say(
            f"   {AWESOME}: {len(step.calls)} calls, {len(failures)} failed; "
            f"the step took {step.ended - step.began:.2f} s"
        )
        byError: dict[str, list[float]] = {}
        for call in failures:
            byError.setdefault(str(call.error), []).append(call.started - step.began)
        for error, moments in byError.items():
            self.say(
                f"     {len(moments)} x {error} "
                f"(+{min(moments):.2f} s to +{max(moments):.2f} s)"
            )

    # --- the story ------------------------------------------------------

    async def play(self) -> list[Step]:
        """
        Play every step; return them.
        """
        layout, hosts = self.layout, self.hosts
        self.say(
            f"{len(HOSTS)} nodes on 127.0.1.1-{len(HOSTS)} (gossip port "
            f"{layout.gossipPort}, API port {layout.apiPort}), each with its "
            f"HAProxy on 127.0.2.N. {GOOD} (ServicePort {GOOD_SERVICE_PORT}) "
            f"runs on node-2 and node-3; {AWESOME} on node-1 calls "
            f"{layout.goodThroughProxy(1)} 50 times a second.\n"
            f"Files and logs: {self.directory}"
        )

        async def startAll() -> None:
            for host in hosts.values():
                await host.start()

        await self.step(
            "start",
            "start three nodes, each with its HAProxy and its service",
            startAll,
            {
                "member": ("node-1 sees node-3 alive", self.memberIs(3, "alive")),
                "proxy": (BOTH, self.rotationIs({2, 3})),
                "reach-2": (f"{AWESOME}'s calls reach node-2", self.callsReach(2)),
                "reach-3": (f"{AWESOME}'s calls reach node-3", self.callsReach(3)),
            },
            timeout=2 * STEP_TIMEOUT,
            note=f"{AWESOME} calls from the start: until node-1's HAProxy has a "
            f"{GOOD} server, its calls fail",
        )
        await self._unhealthy()
        await self._killed()
        await self._drained()
        return self.steps

    def _leaving(
        self, number: int, status: Status, calls: bool = True
    ) -> dict[str, tuple[str, Probe]]:
        """
        What a step expects when node C{number}'s good-svc takes C{status}:
        node 1 sees it, and sends good-svc to the other node only (and,
        with C{calls}, awesome-svc's calls stop going there).
        """
        [other] = {2, 3} - {number}  # the other good-svc host
        expected = {
            "catalog": (
                f"node-1's catalog: {GOOD} on node-{number} is {status.name}",
                self.statusIs(number, status),
            ),
            "proxy": (
                f"node-1's HAProxy sends {GOOD} to node-{other} only",
                self.rotationIs({other}),
            ),
        }
        if calls:
            expected["routed"] = (
                f"{AWESOME}'s last call to node-{number}",
                self.callsAvoid(number),
            )
        return expected

    def _returning(self, number: int) -> dict[str, tuple[str, Probe]]:
        """
        What a step expects when node C{number}'s good-svc is ALIVE again:
        node 1 sees it, sends good-svc to both nodes, and awesome-svc's
        calls reach it.
        """
        return {
            "catalog": (
                f"node-1's catalog: {GOOD} on node-{number} is ALIVE",
                self.statusIs(number, Status.ALIVE),
            ),
            "proxy": (f"{BOTH} again", self.rotationIs({2, 3})),
            "routed": (
                f"{AWESOME}'s first call to node-{number} again",
                self.callsReach(number),
            ),
        }

    async def _unhealthy(self) -> None:
        sick = self.layout.goodURL(3)
        await self.step(
            "unhealthy",
            f"{GOOD} on node-3 fails its health check (it still answers calls)",
            lambda: requestJSON("POST", f"{sick}/health/fail", 5),
            self._leaving(3, Status.UNHEALTHY),
        )
        await self.step(
            "healthy",
            f"{GOOD} on node-3 passes its health check again",
            lambda: requestJSON("POST", f"{sick}/health/pass", 5),
            self._returning(3),
        )

    async def _killed(self) -> None:
        node3 = self.hosts[3]
        await self.step(
            "killed",
            "node-3 dies: SIGKILL to its node, its HAProxy and its "
            f"{GOOD} (failure-detection bound: {self.bound:g} s)",
            node3.crash,
            {
                "member": ("node-1 declares node-3 failed", self.memberIs(3, "failed")),
                **self._leaving(3, Status.TOMBSTONE, calls=False),
            },
            timeout=self.bound + STEP_TIMEOUT,
        )
        await self.step(
            "back",
            f"node-3 comes back: its {GOOD}, then its node",
            node3.start,
            {
                "member": ("node-1 sees node-3 alive", self.memberIs(3, "alive")),
                **self._returning(3),
            },
        )

    async def _drained(self) -> None:
        node2 = self.hosts[2]
        state = await node2.get("/state.json")
        [serviceID] = [
            s["ID"]
            for server in state["Servers"].values()
            for s in server["Services"].values()
            if s["Name"] == GOOD and s["Hostname"] == "node-2"
        ]
        drain = f"{self.layout.api(2)}/services/{serviceID}/drain"
        await self.step(
            "drained",
            f"drain {GOOD} on node-2 (POST /api/services/{serviceID}/drain "
            "on node-2, as `sidecar drain` does)",
            lambda: requestJSON("POST", drain, 5),
            self._leaving(2, Status.DRAINING),
        )
        await self.step(
            "undrained",
            f"undrain {GOOD} on node-2 (DELETE on the same URL)",
            lambda: requestJSON("DELETE", drain, 5),
            self._returning(2),
        )

    def summary(self) -> str:
        """
        How many calls awesome-svc made, and in which steps any failed.
        """
        calls = self.log.calls
        failed = sum(c.error is not None for c in calls)
        where = [
            f"{len(step.failures)} in step {number}"
            for number, step in enumerate(self.steps, start=1)
            if step.failures
        ]
        detail = f" ({', '.join(where)})" if where else ""
        return f"{AWESOME} made {len(calls)} calls in all; {failed} failed{detail}."

    async def cleanUp(self) -> None:
        """
        Stop every process (SIGTERM; SIGKILL to what still runs after
        L{STEP_TIMEOUT}).
        """
        for host in self.hosts.values():
            try:
                await defer.ensureDeferred(host.stop()).addTimeout(
                    STEP_TIMEOUT, reactor
                )
            except Exception:
                await host.crash()

    def keepLogs(self) -> None:
        """
        Write each process's output beside its files.
        """
        for host in self.hosts.values():
            for name, text in host.logs().items():
                (host.directory / name).write_bytes(text)

    def removeFiles(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)
