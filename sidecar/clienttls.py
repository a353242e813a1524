"""
HTTP clients of a node's API (the C{sidecar} command, C{sidecar-haproxy})
that may talk HTTPS to a node whose certificate a private CA signed: the
server is verified (its name or IP, with service-identity) against that
CA instead of the system's roots.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.ssl import Certificate
from twisted.web.client import Agent, BrowserLikePolicyForHTTPS, HTTPConnectionPool


class TrustError(ValueError):
    """
    A CA file that cannot be read or is not a PEM certificate; one line
    naming the file.
    """


def trusting(caFile: str | None) -> BrowserLikePolicyForHTTPS:
    """
    How to verify HTTPS servers: against the certificate in C{caFile}, or
    against the system's roots when it is L{None}.

    @raise TrustError: when C{caFile} cannot be used.
    """
    if caFile is None:
        return BrowserLikePolicyForHTTPS()
    try:
        with open(caFile, "rb") as f:
            ca = Certificate.loadPEM(f.read())
    except OSError as e:
        raise TrustError(f"cannot read {caFile}: {e.strerror}") from None
    except Exception as e:
        raise TrustError(f"{caFile} is not a PEM certificate: {e}") from None
    return BrowserLikePolicyForHTTPS(trustRoot=ca)


def agentTrusting(reactor: Any, caFile: str | None) -> Agent:
    """
    An agent with no persistent connections that verifies HTTPS servers
    as L{trusting} says.

    @raise TrustError: when C{caFile} cannot be used.
    """
    pool = HTTPConnectionPool(reactor, persistent=False)
    return Agent(reactor, contextFactory=trusting(caFile), pool=pool)
