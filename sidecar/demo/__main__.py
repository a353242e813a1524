"""
C{python -m sidecar.demo}: play the demo's story on this machine's loopback
addresses and print what each step changed and when.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from twisted.internet import defer
from twisted.python import usage

from .apps import runProgram
from .cluster import HOSTS, Layout
from .story import Demo


class Options(usage.Options):
    """
    C{python -m sidecar.demo}'s command line.
    """

    synopsis = "python -m sidecar.demo [--keep]"
    optFlags = [
        [
            "keep",
            None,
            "after the story, keep the cluster running until Ctrl-C, "
            "then keep its files and logs",
        ]
    ]
    optParameters = [
        ["gossip-port", None, 7946, "the gossip port of every node", int],
        ["api-port", None, 7777, "the API port of every node", int],
    ]


async def play(reactor: Any, options: Options) -> None:
    layout = Layout(gossipPort=options["gossip-port"], apiPort=options["api-port"])
    if shutil.which("haproxy") is None:
        raise SystemExit("the demo needs haproxy on the PATH (apt-get install haproxy)")
    unavailable = layout.unavailable()
    if unavailable:
        raise SystemExit(
            "the demo cannot listen where it needs to:\n  "
            + "\n  ".join(unavailable)
            + "\n(is another demo or node running?)"
        )
    directory = Path(tempfile.mkdtemp(prefix="sidecar-demo-"))
    try:
        demo = Demo(layout, directory, print)
    except ValueError as e:
        shutil.rmtree(directory)
        raise SystemExit(f"the demo cannot run: {e}") from None

    async def finish() -> None:
        print("\nstopping every process")
        await demo.cleanUp()
        if options["keep"]:
            demo.keepLogs()
            print(f"files and logs kept in {demo.directory}")
        else:
            demo.removeFiles()

    # Interrupted (Ctrl-C, SIGTERM), it stops the story and then what it
    # started, before the reactor stops.
    playing = defer.ensureDeferred(demo.play())
    interrupted: defer.Deferred[None] = defer.Deferred()
    finished: defer.Deferred[None] = defer.Deferred()

    def interrupt() -> defer.Deferred[None]:
        playing.cancel()
        if not interrupted.called:
            interrupted.callback(None)
        return finished

    reactor.addSystemEventTrigger("before", "shutdown", interrupt)
    status = 0
    try:
        await playing
        print(f"\n{demo.summary()}")
        if options["keep"]:
            print(f"\nthe cluster keeps running until Ctrl-C:\n{explore(layout)}")
            await interrupted
    except defer.CancelledError:
        print("\ninterrupted")
        status = 130
    except Exception as e:
        print(f"\nthe demo failed: {e}", file=sys.stderr)
        options["keep"] = True
        status = 1
    finally:
        try:
            await finish()
        finally:
            finished.callback(None)
    if status:
        raise SystemExit(status)


def explore(layout: Layout) -> str:
    """
    Where to look at the running cluster: each node's console and API, and
    good-svc through each host's HAProxy.
    """
    lines = []
    for number in HOSTS:
        lines.append(
            f"  node-{number}: {layout.api(number).removesuffix('/api')}/ui/ "
            f"(API {layout.api(number)}/), good-svc via its HAProxy: "
            f"{layout.goodThroughProxy(number)}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    runProgram(Options(), argv, play)


if __name__ == "__main__":
    main()
