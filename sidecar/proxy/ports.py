"""
Whether HAProxy could bind a ServicePort on the proxy IP: a port another
program (or this node: its gossip, its API) holds would pass C{haproxy -c}
and then fail every reload.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Callable

# What a bind answers that HAProxy's own bind would answer too.
_REFUSING = {errno.EADDRINUSE: "in use", errno.EACCES: "permission denied"}


def bindProbe(bindIP: str) -> Callable[[int], str | None]:
    """
    A function telling why a TCP port cannot be bound on C{bindIP}, or
    L{None} when it can (or when a bind cannot tell, as for an address
    this host does not have).

    The probe sets C{SO_REUSEPORT}, as HAProxy does on its listeners: a
    port HAProxy already serves passes, one held by anything else fails.
    """
    family = socket.AF_INET6 if ":" in bindIP else socket.AF_INET

    def probe(port: int) -> str | None:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            try:
                s.bind((bindIP, port))
            except OSError as e:
                return _REFUSING.get(e.errno or 0)
        return None

    return probe
