"""
What C{twistd -n sidecar-haproxy --sidecar=URL [--config=FILE]} runs: a
HAProxy that follows a Sidecar's catalog from outside, through its
C{/api/watch} stream, so that the Sidecar can be redeployed without
touching HAProxy, and one HAProxy can follow a Sidecar on another host.
The C{[haproxy]} and C{[log]} sections of the configuration apply.
"""

from __future__ import annotations

import sys
from typing import Any
from urllib.parse import urlsplit

from twisted.application.service import MultiService
from twisted.internet.defer import Deferred
from twisted.python import usage

from sidecar.clienttls import TrustError, trusting
from sidecar.config import Config, ConfigError, loadConfig
from sidecar.logsetup import makeLogObserver
from sidecar.proxy.build import makeProxy
from sidecar.proxy.follower import ProxyFollower
from sidecar.proxy.remote import RemoteCatalog
from sidecar.tap import TwistdNode
from sidecar.web.watchclient import WatchClient


class Options(usage.Options):
    """
    C{twistd sidecar-haproxy} options.
    """

    synopsis = "--sidecar=URL [--config=FILE]"
    longdesc = (
        "Drive a local HAProxy from a Sidecar's /api/watch stream. The "
        "[haproxy] section of the configuration file applies."
    )
    optParameters = [
        ["sidecar", "s", None, "The Sidecar to follow, e.g. http://127.0.0.1:7777"],
        ["config", "c", None, "The TOML configuration file (default: none)."],
        [
            "ca-file",
            None,
            None,
            "The CA certificate (PEM) an https Sidecar's is from"
            " (default: the system's).",
        ],
    ]

    def postOptions(self) -> None:
        url = self["sidecar"]
        if not url:
            raise usage.UsageError("--sidecar=URL is required")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise usage.UsageError(f"--sidecar: not an http(s) URL: {url!r}")


class HAProxyCompanion(MultiService):
    """
    The watch client, the remote catalog it fills, and the proxy that
    follows it.  Until the first catalog arrives, HAProxy is left alone;
    when the Sidecar goes away, HAProxy keeps what it last had.
    """

    def __init__(
        self,
        config: Config,
        sidecarURL: str,
        reactor: Any,
        caFile: str | None = None,
    ) -> None:
        """
        @param caFile: the CA an https Sidecar's certificate is verified
            against; the system's roots when L{None}.
        @raise TrustError: when C{caFile} cannot be used.
        """
        super().__init__()
        self.catalog = RemoteCatalog(reactor)
        firstDocument: Deferred[object] = Deferred()

        def received(document: Any) -> None:
            self.catalog.received(document)
            if not firstDocument.called and self.catalog.documents:
                firstDocument.callback(None)

        url = sidecarURL.rstrip("/") + "/api/watch?by_service=false"
        self.watch = WatchClient(reactor, url, received, trusting(caFile))
        self.proxy: ProxyFollower = makeProxy(
            config, self.catalog, None, reactor, ready=firstDocument
        )
        self.proxy.setServiceParent(self)
        self.watch.setServiceParent(self)

    def reload(self) -> None:
        self.proxy.refresh()


def makeCompanion(
    config: Config, sidecarURL: str, reactor: Any = None, caFile: str | None = None
) -> HAProxyCompanion:
    if reactor is None:
        from twisted.internet import reactor as globalReactor

        reactor = globalReactor
    return HAProxyCompanion(config, sidecarURL, reactor, caFile)


def makeService(options: Options) -> TwistdNode:
    try:
        config = loadConfig(options["config"])
        companion = makeCompanion(config, options["sidecar"], caFile=options["ca-file"])
    except ConfigError as e:
        raise SystemExit(f"sidecar-haproxy: {e}") from None
    except TrustError as e:
        raise SystemExit(f"sidecar-haproxy: --ca-file: {e}") from None
    observer = makeLogObserver(config.log.level, config.log.format, sys.stdout)
    return TwistdNode(companion, observer)
