"""
The reactor's thread in another network namespace for the rest of a test.

A thread's network namespace is its own (C{setns} and C{unshare} change
only the calling thread's), and a socket keeps the namespace it was made
in: a test that moves the reactor's thread makes its own sockets, its
in-process nodes' and its children's there, and at cleanup (after every
later cleanup has run) the thread returns to the namespace it came from.
Needs root.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import socket
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from twisted.trial.unittest import TestCase

_CLONE_NEWNET = 0x40000000
_SIOCGIFFLAGS, _SIOCSIFFLAGS, _IFF_UP = 0x8913, 0x8914, 0x1


def _libc() -> Any:
    return ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def _loopbackUp() -> None:
    """
    Bring up C{lo} in the calling thread's network namespace.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        request = struct.pack("16sH", b"lo", 0)
        flags = struct.unpack("16sH", fcntl.ioctl(s, _SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(s, _SIOCSIFFLAGS, struct.pack("16sH", b"lo", flags | _IFF_UP))


def _returnAtCleanup(case: TestCase) -> Any:
    """
    Register, as C{case}'s cleanup, the calling thread's return to the
    network namespace it is in now; return libc.
    """
    libc = _libc()
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)

    def back() -> None:
        try:
            _check(libc.setns(own, _CLONE_NEWNET), "setns back")
        finally:
            os.close(own)

    case.addCleanup(back)
    return libc


def newNetwork(case: TestCase) -> None:
    """
    Move the calling (reactor) thread into a new network namespace with
    only C{lo}, up, for the rest of C{case}.
    """
    libc = _returnAtCleanup(case)
    _check(libc.unshare(_CLONE_NEWNET), "unshare(CLONE_NEWNET)")
    _loopbackUp()


def enterNetwork(case: TestCase, namespace: str) -> None:
    """
    Move the calling (reactor) thread into the network namespace of the
    file C{namespace} (for example C{/proc/<pid>/ns/net}) for the rest of
    C{case}.
    """
    libc = _returnAtCleanup(case)
    there = os.open(namespace, os.O_RDONLY)
    try:
        _check(libc.setns(there, _CLONE_NEWNET), f"setns({namespace})")
    finally:
        os.close(there)


@contextmanager
def inNetwork(namespace: str) -> Iterator[None]:
    """
    Run the block with the calling (reactor) thread in the network
    namespace of the file C{namespace}: sockets made there (a server
    listening on that namespace's address) stay there.
    """
    libc = _libc()
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    theirs = os.open(namespace, os.O_RDONLY)
    try:
        _check(libc.setns(theirs, _CLONE_NEWNET), f"setns({namespace})")
        try:
            yield
        finally:
            _check(libc.setns(own, _CLONE_NEWNET), "setns back")
    finally:
        os.close(theirs)
        os.close(own)
