"""
L{XDSServer}: the aggregated discovery service (ADS, xDS v3) over gRPC, as
a Twisted service.

gRPC's asyncio server runs on its own event loop in one thread of its
own, beside the reactor, so that any number of streams cost no thread
each and nothing gRPC does can block the reactor.  The two threads share
only immutable values: the reactor hands each new L{Snapshot} over with
C{call_soon_threadsafe}, and the gRPC thread reports clients, ACKs and
NACKs back with C{callFromThread}; everything the API reads lives in the
reactor thread.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import grpc.aio
from envoy.service.discovery.v3 import ads_pb2_grpc
from twisted.application.service import Service
from twisted.internet.defer import Deferred, fail, succeed
from twisted.logger import Logger

from sidecar.problems import XDS, Problems
from sidecar.ratelimit import RateLimitedLog

from .snapshot import EMPTY, Snapshot
from .streams import DeltaStream, Nack, SotwStream, TooManyNames, UnknownType

# How long streams may take to end when the server stops.
GRACE = 1.0
# Requests of one stream read ahead of those answered: a client that sends
# without reading its responses is held back by gRPC's flow control, not
# queued without bound.
READ_AHEAD = 16
_END = object()
_UPDATE = object()


class _Unreadable:
    """
    What a stream's reader found instead of a request.
    """

    def __init__(self, problem: str) -> None:
        self.problem = problem


_OPTIONS = [
    # A port another server holds is an error, not a shared port.
    ("grpc.so_reuseport", 0),
    ("grpc.max_receive_message_length", 4 * 1024 * 1024),
]


class XDSListenError(Exception):
    """
    The xDS server cannot listen where it is told to.
    """


class XDSServer(Service):
    """
    Serves the last published snapshot to every ADS client, state of the
    world and incremental, while running.

    @ivar snapshot: the snapshot served.
    @ivar port: the bound port while listening, else L{None}.
    @ivar clients: each connected stream's L{status<SotwStream.status>}
        with its C{Peer}, by stream number.
    @ivar nacks: responses refused by clients since the start.
    @ivar lastNack: the last of them, as JSON, or L{None}.
    """

    log = Logger()

    def __init__(
        self,
        reactor: Any,
        host: str,
        port: int,
        grace: float = GRACE,
        problems: Problems | None = None,
    ):
        """
        @param problems: where a port it cannot have, and a client's
            refusal (until that client accepts a later version, or
            leaves), are shown.
        """
        self.snapshot: Snapshot = EMPTY
        self._problems = Problems(reactor) if problems is None else problems
        self.port: int | None = None
        self.clients: dict[int, dict[str, Any]] = {}
        self.nacks = 0
        self.lastNack: dict[str, Any] | None = None
        self._reactor = reactor
        self._host = host
        self._portNumber = port
        self._grace = grace
        self._core: _Core | None = None
        self._listenResult: int | Exception | None = None
        self._listenWaiters: list[Deferred[int]] = []
        self._stopWaiters: list[Deferred[None]] | None = None
        self._nackLog = RateLimitedLog(self.log, reactor)
        self._refusals = RateLimitedLog(self.log, reactor)

    def startService(self) -> None:
        super().startService()
        self._listenResult = None
        self._stopWaiters = []
        self._core = _Core(self, self.snapshot)
        threading.Thread(target=self._core.run, name="sidecar-xds", daemon=True).start()

    def stopService(self) -> Deferred[None]:
        super().stopService()
        core, self._core = self._core, None
        if core is None or self._stopWaiters is None:
            return succeed(None)  # never started, or its thread has ended
        stopped: Deferred[None] = Deferred()
        self._stopWaiters.append(stopped)
        core.stop()
        return stopped

    def whenListening(self) -> Deferred[int]:
        """
        @return: a L{Deferred} that fires with the bound port, or fails
            with L{XDSListenError}.
        """
        if isinstance(self._listenResult, Exception):
            return fail(self._listenResult)
        if self._listenResult is not None:
            return succeed(self._listenResult)
        waiter: Deferred[int] = Deferred()
        self._listenWaiters.append(waiter)
        return waiter

    def publish(self, snapshot: Snapshot) -> None:
        """
        Serve C{snapshot} to every client from now on.
        """
        self.snapshot = snapshot
        if self._core is not None:
            self._core.publish(snapshot)

    def status(self) -> dict[str, Any]:
        """
        The server, its snapshot's versions and its clients, as JSON.
        """
        return {
            "Listen": f"{self._host}:{self.port or self._portNumber}",
            "Snapshot": self.snapshot.serial,
            "Versions": self.snapshot.versions(),
            "Clients": [self.clients[n] for n in sorted(self.clients)],
            "Nacks": self.nacks,
            "LastNack": self.lastNack,
        }

    # -- reports from the gRPC thread, run in the reactor ---------------------

    def _listened(self, result: int | Exception) -> None:
        self._listenResult = result
        where = f"{self._host}:{self._portNumber}"
        if isinstance(result, Exception):
            self.log.error("{problem}", problem=str(result))
            self._problems.raise_(XDS, where, str(result))
        else:
            self._problems.clear(XDS, where)
            self.port = result
            self.log.info(
                "xDS (ADS, v3) on {host}:{port}", host=self._host, port=result
            )
        waiters, self._listenWaiters = self._listenWaiters, []
        for waiter in waiters:
            if isinstance(result, Exception):
                waiter.errback(result)
            else:
                waiter.callback(result)

    def _ended(self) -> None:
        self.port = None
        self.clients.clear()
        waiters, self._stopWaiters = self._stopWaiters or [], None
        for waiter in waiters:
            waiter.callback(None)

    def _clientChanged(self, number: int, peer: str, status: dict[str, Any]) -> None:
        self.clients[number] = {"Peer": peer, **status}
        for kind, state in status["Types"].items():
            if state["Acked"] and state["Acked"] == state["Sent"]:
                self._problems.clear(XDS, _nackSubject(status["Node"], peer, kind))

    def _clientGone(self, number: int) -> None:
        gone = self.clients.pop(number, None)
        if gone is not None:
            for kind in gone["Types"]:
                self._problems.clear(
                    XDS, _nackSubject(gone["Node"], gone["Peer"], kind)
                )

    def _nacked(self, peer: str, node: str, nack: Nack) -> None:
        self.nacks += 1
        self.lastNack = {
            "Peer": peer,
            "Node": node,
            **nack.asJSON(),
            "At": self._reactor.seconds(),
        }
        self._problems.raise_(
            XDS,
            _nackSubject(node, peer, nack.type),
            f"refused {nack.type} version {nack.version}: {nack.message}",
        )
        self._nackLog.warn(
            "xDS client {node} at {peer} refused {type} version {version}: "
            "{message}; it keeps what it last accepted",
            node=node,
            peer=peer,
            type=nack.type,
            version=nack.version,
            message=nack.message,
        )

    def _streamRefused(self, peer: str, problem: str) -> None:
        self._refusals.warn(
            "xDS client at {peer}: {problem}; its stream is ended",
            peer=peer,
            problem=problem,
        )

    def _unknownType(self, peer: str, typeURL: str) -> None:
        self._refusals.warn(
            "xDS client at {peer} asked for {type}, which is not served "
            "(only v3 listeners, routes, clusters and endpoints)",
            peer=peer,
            type=typeURL[:200],
        )


def _nackSubject(node: str, peer: str, kind: str) -> str:
    """
    The subject of a client's refusal of a type: C{<node> <type>}, or its
    address when it gave no node ID.
    """
    return f"{node or peer} {kind}"


class _Core:
    """
    The part of L{XDSServer} that lives in the gRPC thread: the asyncio
    loop, the gRPC server, and each stream's queue.
    """

    def __init__(self, owner: XDSServer, snapshot: Snapshot) -> None:
        self._owner = owner
        self._snapshot = snapshot
        self._loop = asyncio.new_event_loop()
        # Bound to the loop at its first use, in the gRPC thread.
        self._stopping = asyncio.Event()
        self._queues: dict[int, asyncio.Queue[object]] = {}
        self._updating: set[int] = set()
        self._numbers = itertools.count(1)

    def _post(self, f: Callable[..., None], *args: object) -> None:
        self._owner._reactor.callFromThread(f, *args)

    # -- called from the reactor thread ---------------------------------------

    def publish(self, snapshot: Snapshot) -> None:
        self._call(self._publish, snapshot)

    def stop(self) -> None:
        self._call(self._stopping.set)

    def _call(self, f: Callable[..., None], *args: object) -> None:
        try:
            self._loop.call_soon_threadsafe(f, *args)
        except RuntimeError:
            pass  # the loop has ended (it could not listen): nothing to do

    # -- the gRPC thread ------------------------------------------------------

    def run(self) -> None:
        try:
            self._loop.run_until_complete(self._serve())
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
        finally:
            self._loop.close()
            self._post(self._owner._ended)

    async def _serve(self) -> None:
        owner = self._owner
        server = grpc.aio.server(options=_OPTIONS)
        ads_pb2_grpc.add_AggregatedDiscoveryServiceServicer_to_server(
            _ADS(self), server
        )
        where = f"{owner._host}:{owner._portNumber}"
        try:
            port = server.add_insecure_port(where)
        except RuntimeError as e:
            self._post(
                owner._listened,
                XDSListenError(f"xDS: cannot listen on {where}: {e}"),
            )
            return
        await server.start()
        self._post(owner._listened, port)
        await self._stopping.wait()
        await server.stop(owner._grace)
        # What gRPC leaves of the streams' tasks ends before the loop.
        rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in rest:
            task.cancel()
        await asyncio.gather(*rest, return_exceptions=True)

    def _publish(self, snapshot: Snapshot) -> None:
        self._snapshot = snapshot
        for number, queue in self._queues.items():
            if number not in self._updating:
                self._updating.add(number)
                queue.put_nowait(_UPDATE)

    async def stream(
        self,
        stream: SotwStream | DeltaStream,
        requests: Any,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[Any]:
        """
        Serve one ADS stream: its requests and every new snapshot, in
        order, until the client goes or the server stops; a request that
        cannot be read ends the stream with C{INVALID_ARGUMENT}.
        """
        peer = context.peer()
        number = next(self._numbers)
        queue: asyncio.Queue[object] = asyncio.Queue()
        room = asyncio.Semaphore(READ_AHEAD)
        self._queues[number] = queue
        reader = asyncio.ensure_future(_read(requests, queue, room))
        stream.snapshot = self._snapshot
        reported: dict[str, Any] = {}
        try:
            while True:
                item = await queue.get()
                if item is _END:
                    return
                if isinstance(item, _Unreadable):
                    problem = f"unreadable request: {item.problem}"
                    self._post(self._owner._streamRefused, peer, problem)
                    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, problem)
                if item is _UPDATE:
                    self._updating.discard(number)
                    responses = stream.update(self._snapshot)
                else:
                    room.release()
                    try:
                        responses, nack = stream.request(item)  # type: ignore[arg-type]
                    except UnknownType as e:
                        self._post(self._owner._unknownType, peer, str(e))
                        continue
                    except TooManyNames as e:
                        self._post(self._owner._streamRefused, peer, str(e))
                        await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(e))
                    if nack is not None:
                        self._post(self._owner._nacked, peer, stream.node, nack)
                status = stream.status()
                if status != reported:
                    # A client that repeats itself costs the reactor nothing.
                    reported = status
                    self._post(self._owner._clientChanged, number, peer, status)
                for response in responses:
                    yield response
        finally:
            reader.cancel()
            del self._queues[number]
            self._updating.discard(number)
            self._post(self._owner._clientGone, number)


async def _read(
    requests: Any, queue: asyncio.Queue[object], room: asyncio.Semaphore
) -> None:
    """
    Put every request of a stream on C{queue}, each when there is C{room}
    for it, then C{_END}.
    """
    try:
        async for request in requests:
            await room.acquire()
            queue.put_nowait(request)
    except asyncio.CancelledError:
        pass  # the stream has ended
    except Exception as e:
        # Not a request, or the connection broke: the stream ends.
        queue.put_nowait(_Unreadable(f"{type(e).__name__}: {e}"[:200]))
    finally:
        queue.put_nowait(_END)


class _ADS(ads_pb2_grpc.AggregatedDiscoveryServiceServicer):  # type: ignore[misc]
    """
    The generated service's two methods, each one kind of stream.
    """

    def __init__(self, core: _Core) -> None:
        self._core = core

    async def StreamAggregatedResources(
        self, requests: Any, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[Any]:
        stream = SotwStream(self._core._snapshot)
        async for response in self._core.stream(stream, requests, context):
            yield response

    async def DeltaAggregatedResources(
        self, requests: Any, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[Any]:
        stream = DeltaStream(self._core._snapshot)
        async for response in self._core.stream(stream, requests, context):
            yield response
