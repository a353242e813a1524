"""
IP addresses compared as a host sees them.

A dual-stack socket reports an IPv4 peer as IPv4-mapped IPv6
(C{::ffff:127.0.0.1}); gossip and the proxy both compare addresses, so
both unwrap it here rather than each in their own way.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

IP = ipaddress.IPv4Address | ipaddress.IPv6Address


def plainIP(address: str | bytes) -> IP:
    """
    The IP C{address} names (text, or packed bytes), an IPv4-mapped IPv6
    address as the IPv4 one it maps.

    @raise ValueError: when C{address} is not an IP literal.
    """
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


@lru_cache(maxsize=4096)
def hostIP(address: str | bytes) -> IP | None:
    """
    L{plainIP}, or C{None} for what is not an IP literal.  Cached: gossip
    asks it for the source of every packet.
    """
    try:
        return plainIP(address)
    except ValueError:
        return None
