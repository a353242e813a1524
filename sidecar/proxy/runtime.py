"""
HAProxy's runtime API (its "stats socket" at level admin): one command per
connection, the answer is everything HAProxy writes before it closes.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.endpoints import UNIXClientEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.python.failure import Failure

# A runtime command that takes longer than this has failed.
COMMAND_TIMEOUT = 5.0


class RuntimeCommandError(Exception):
    """
    HAProxy refused a runtime command, or could not be reached; the
    message says which command and why.
    """


class _OneCommand(Protocol):
    def __init__(self, command: str) -> None:
        self._command = command
        self._received: list[bytes] = []
        self.answer: Deferred[str] = Deferred()

    def connectionMade(self) -> None:
        self.transport.write(self._command.encode("ascii") + b"\n")  # type: ignore[union-attr]

    def dataReceived(self, data: bytes) -> None:
        self._received.append(data)

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        if not self.answer.called:
            self.answer.callback(b"".join(self._received).decode("utf-8", "replace"))


class RuntimeAPI:
    """
    A client of one HAProxy admin socket.
    """

    def __init__(self, reactor: Any, socketPath: str) -> None:
        self._reactor = reactor
        self.socketPath = socketPath

    async def run(self, command: str) -> str:
        """
        Send C{command}; return HAProxy's answer, stripped.

        @raise RuntimeCommandError: when the socket cannot be reached or
            does not answer within L{COMMAND_TIMEOUT}.
        """
        endpoint = UNIXClientEndpoint(self._reactor, self.socketPath, timeout=5)
        factory = Factory.forProtocol(lambda: _OneCommand(command))
        factory.noisy = False
        try:
            protocol = await endpoint.connect(factory)
        except Exception as e:
            raise RuntimeCommandError(
                f"{command!r}: cannot reach {self.socketPath}: {e}"
            ) from None
        answer = protocol.answer
        answer.addTimeout(COMMAND_TIMEOUT, self._reactor)
        try:
            return (await answer).strip()
        except Exception as e:
            protocol.transport.abortConnection()
            raise RuntimeCommandError(f"{command!r}: no answer: {e!r}") from None

    async def expect(self, command: str, *accepted: str) -> str:
        """
        L{run} C{command}, and fail unless the answer is empty or starts
        with one of C{accepted}.

        @raise RuntimeCommandError: naming the command and HAProxy's answer.
        """
        answer = await self.run(command)
        if answer and not answer.startswith(accepted):
            raise RuntimeCommandError(f"{command!r}: {answer}")
        return answer
