"""
What C{twistd -n sidecar --config=FILE} runs: the command line, the
configuration's one-line errors, log output, and C{SIGHUP}.
"""

from __future__ import annotations

import signal
import sys
from typing import Any

from twisted.application.service import MultiService
from twisted.internet.error import CannotListenError
from twisted.logger import ILogObserver, Logger
from twisted.python import usage
from twisted.python.components import Componentized

from sidecar.config import ConfigError, loadConfig
from sidecar.logsetup import makeLogObserver
from sidecar.service import makeService as makeNode


class Options(usage.Options):
    """
    C{twistd sidecar} options.
    """

    synopsis = "--config=FILE"
    longdesc = (
        "Run a sidecar node: service discovery, gossip and the status API. "
        "Environment variables of the Go Sidecar (SIDECAR_SEEDS, ...) "
        "override the file."
    )
    optParameters = [
        ["config", "c", None, "The TOML configuration file (default: none)."],
    ]


class TwistdNode(MultiService):
    """
    A L{SidecarNode} (or the HAProxy companion) as twistd runs it: logs go
    where the configuration says,
    C{SIGHUP} re-reads the static file, and a port that cannot be bound
    stops the start with one line instead of a traceback.
    """

    log = Logger()

    def __init__(self, node: Any, observer: ILogObserver) -> None:
        super().__init__()
        self.node = node
        self._observer = observer
        node.setServiceParent(self)

    def setServiceParent(self, parent: Any) -> None:
        # twistd asks the application for an ILogObserver before it starts
        # logging; this is the one place a plugin can give it one.
        if isinstance(parent, Componentized):
            if parent.getComponent(ILogObserver, None) is None:
                parent.setComponent(ILogObserver, self._observer)
        super().setServiceParent(parent)

    def privilegedStartService(self) -> None:
        try:
            super().privilegedStartService()
        except CannotListenError as e:
            raise SystemExit(
                f"sidecar: cannot listen on {e.interface or '*'}:{e.port}: "
                f"{e.socketError}"
            ) from None

    def startService(self) -> None:
        super().startService()
        from twisted.internet import reactor

        signal.signal(
            signal.SIGHUP,
            lambda signum, frame: reactor.callFromThread(  # type: ignore[attr-defined]
                self._reload
            ),
        )

    def stopService(self):  # type: ignore[no-untyped-def]
        signal.signal(signal.SIGHUP, signal.SIG_DFL)
        return super().stopService()

    def _reload(self) -> None:
        self.log.info("SIGHUP: re-reading what can be re-read")
        self.node.reload()


def makeService(options: Options) -> TwistdNode:
    """
    Build the node for twistd.  A bad configuration exits at once with one
    line naming the file, the key and the problem.
    """
    try:
        config = loadConfig(options["config"])
        node = makeNode(config)
    except ConfigError as e:
        raise SystemExit(f"sidecar: {e}") from None
    observer = makeLogObserver(config.log.level, config.log.format, sys.stdout)
    return TwistdNode(node, observer)
