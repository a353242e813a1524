"""
The demo's two services, each a small C{twisted.web} server:

  - C{good}: good-svc, which answers every request with its instance's
    name, and whose C{/health} can be made to fail (C{POST /health/fail})
    and to pass again (C{POST /health/pass}) while it keeps serving;
  - C{awesome}: awesome-svc, which calls a URL (good-svc through the local
    HAProxy) one call after another, keeps a log of every call, and serves
    that log at C{/calls?after=N}.

Run one with C{python -m sidecar.demo.apps good|awesome --listen IP:PORT
...}.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Coroutine
from dataclasses import asdict, dataclass
from typing import Any

import treq
from twisted.internet import defer, endpoints, task
from twisted.logger import Logger, globalLogBeginner, textFileLogObserver
from twisted.python import usage
from twisted.web.client import HTTPConnectionPool
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

JSON_TYPE = b"application/json"


def _answer(request: Request, code: int, document: Any) -> bytes:
    request.setResponseCode(code)
    request.setHeader(b"Content-Type", JSON_TYPE)
    return json.dumps(document).encode() + b"\n"


class GoodService(Resource):
    """
    good-svc: C{GET /} names the instance; C{GET /health} is 200 while
    healthy and 503 once told to fail.
    """

    isLeaf = True

    def __init__(self, instance: str) -> None:
        super().__init__()
        self.instance = instance
        self.healthy = True

    def render_GET(self, request: Request) -> bytes:
        if request.path == b"/health":
            code = 200 if self.healthy else 503
            return _answer(request, code, {"Healthy": self.healthy})
        return _answer(request, 200, {"Instance": self.instance})

    def render_POST(self, request: Request) -> bytes:
        wanted = {b"/health/fail": False, b"/health/pass": True}.get(request.path)
        if wanted is None:
            return _answer(request, 404, {"Error": "POST /health/fail or /health/pass"})
        self.healthy = wanted
        return _answer(request, 200, {"Healthy": self.healthy})


@dataclass(frozen=True)
class Call:
    """
    One call: when it started (seconds since the epoch), how long it took,
    which instance answered, or why it failed.
    """

    started: float
    duration: float
    instance: str | None
    error: str | None


class Caller:
    """
    Calls C{url} one call after another, C{pause} seconds apart, and keeps
    every call in C{calls}.  A call fails if it does not answer 200 with an
    instance's name within C{timeout} seconds.
    """

    log = Logger()

    def __init__(
        self,
        reactor: Any,
        url: str,
        pause: float,
        timeout: float,
        now: Callable[[], float] = time.time,
    ) -> None:
        self._reactor = reactor
        self._url = url
        self._pause = pause
        self._timeout = timeout
        self._now = now
        # Keep-alive connections to HAProxy, as a real client would use.
        self._pool = HTTPConnectionPool(reactor, persistent=True)
        self._loop = task.LoopingCall(self._call)
        self._loop.clock = reactor
        self.calls: list[Call] = []

    def start(self) -> defer.Deferred[Any]:
        done = self._loop.start(self._pause)
        done.addErrback(lambda f: self.log.failure("the caller stopped", f))
        return done

    async def _callOnce(self) -> tuple[str | None, str | None]:
        try:
            response = await treq.get(
                self._url, pool=self._pool, timeout=self._timeout, reactor=self._reactor
            )
            body = await response.content()
        except Exception as e:
            return None, f"{type(e).__name__}: {e}"
        if response.code != 200:
            return None, f"HTTP {response.code}"
        try:
            return str(json.loads(body)["Instance"]), None
        except (ValueError, KeyError, TypeError):
            return None, f"not an instance's answer: {body[:80]!r}"

    async def _call(self) -> None:
        started = self._now()
        instance, error = await self._callOnce()
        self.calls.append(Call(started, self._now() - started, instance, error))


class AwesomeService(Resource):
    """
    awesome-svc: C{GET /health} is always 200; C{GET /calls?after=N} lists
    the calls from the Nth on, and C{Next}, the N to ask for next.
    """

    isLeaf = True

    def __init__(self, caller: Caller) -> None:
        super().__init__()
        self._caller = caller

    def render_GET(self, request: Request) -> bytes:
        if request.path == b"/health":
            return _answer(request, 200, {"Healthy": True})
        if request.path != b"/calls":
            return _answer(request, 404, {"Error": "GET /calls?after=N or /health"})
        raw = request.args.get(b"after", [b"0"])[0]  # type: ignore[union-attr]
        try:
            after = int(raw)
        except ValueError:
            return _answer(request, 400, {"Error": f"after={raw!r}: not a number"})
        calls = self._caller.calls
        return _answer(
            request,
            200,
            {"Next": len(calls), "Calls": [asdict(c) for c in calls[max(after, 0) :]]},
        )


class ServiceOptions(usage.Options):
    """
    Where a service listens.
    """

    optParameters = [["listen", None, None, "IP:PORT to serve on"]]

    def postOptions(self) -> None:
        if not self["listen"] or ":" not in self["listen"]:
            raise usage.UsageError("--listen IP:PORT is required")


class GoodOptions(ServiceOptions):
    """
    good-svc's command line.
    """

    optParameters = [["instance", None, "good-svc", "this instance's name"]]


class AwesomeOptions(ServiceOptions):
    """
    awesome-svc's command line.
    """

    optParameters: list[list[Any]] = [
        ["target", None, None, "the URL to call"],
        ["pause", None, 0.02, "seconds between two calls", float],
        ["timeout", None, 2.0, "seconds before a call fails", float],
    ]

    def postOptions(self) -> None:
        super().postOptions()
        if not self["target"]:
            raise usage.UsageError("--target URL is required")


class Options(usage.Options):
    """
    C{python -m sidecar.demo.apps}'s command line: which service.
    """

    subCommands = [
        ["good", None, GoodOptions, "run good-svc"],
        ["awesome", None, AwesomeOptions, "run awesome-svc"],
    ]

    def postOptions(self) -> None:
        if self.subCommand is None:
            raise usage.UsageError("say which service: good or awesome")


async def serve(reactor: Any, options: Options) -> None:
    globalLogBeginner.beginLoggingTo(
        [textFileLogObserver(sys.stderr)], redirectStandardIO=False
    )
    chosen = options.subOptions
    if options.subCommand == "good":
        resource: Resource = GoodService(chosen["instance"])
    else:
        caller = Caller(reactor, chosen["target"], chosen["pause"], chosen["timeout"])
        caller.start()
        resource = AwesomeService(caller)
    ip, port = chosen["listen"].rsplit(":", 1)
    endpoint = endpoints.TCP4ServerEndpoint(reactor, int(port), interface=ip)
    site = Site(resource)
    site.noisy = False
    await endpoint.listen(site)
    print(f"{options.subCommand} listening on http://{ip}:{port}/", flush=True)
    await defer.Deferred()  # until the process is stopped


def runProgram(
    options: usage.Options,
    argv: list[str] | None,
    program: Callable[[Any, Any], Coroutine[Any, Any, None]],
) -> None:
    """
    Parse C{argv} (default: the command line) into C{options}, or exit
    with the usage; then run C{program(reactor, options)} until it ends.
    """
    try:
        options.parseOptions(sys.argv[1:] if argv is None else argv)
    except usage.UsageError as e:
        raise SystemExit(f"{e}\n{options}") from None
    task.react(lambda reactor: defer.ensureDeferred(program(reactor, options)))


def main(argv: list[str] | None = None) -> None:
    runProgram(Options(), argv, serve)


if __name__ == "__main__":
    main()
