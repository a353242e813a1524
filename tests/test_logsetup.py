"""
Log output as configured: level filtering, text lines or JSON lines.
"""

from __future__ import annotations

import io
import json

from twisted.logger import Logger
from twisted.trial.unittest import SynchronousTestCase

from sidecar.logsetup import makeLogObserver


class LogObserverTests(SynchronousTestCase):
    def emit(self, level: str, format: str) -> str:
        stream = io.StringIO()
        log = Logger(
            namespace="sidecar.test", observer=makeLogObserver(level, format, stream)
        )
        log.debug("debug {n}", n=1)
        log.info("service {name} is {status}", name="web", status="Alive")
        log.warn("warn {n}", n=3)
        return stream.getvalue()

    def test_textAtInfoDropsDebug(self) -> None:
        text = self.emit("info", "text")
        self.assertIn("[sidecar.test#info] service web is Alive", text)
        self.assertIn("warn 3", text)
        self.assertNotIn("debug 1", text)

    def test_warnLevelKeepsOnlyWarningsAndAbove(self) -> None:
        text = self.emit("warn", "text")
        self.assertNotIn("service web", text)
        self.assertIn("warn 3", text)

    def test_jsonIsOneObjectPerLineWithStructuredFields(self) -> None:
        lines = self.emit("debug", "json").splitlines()
        events = [json.loads(line) for line in lines]
        self.assertEqual(len(events), 3)
        info = events[1]
        self.assertEqual(info["log_format"], "service {name} is {status}")
        self.assertEqual((info["name"], info["status"]), ("web", "Alive"))
        self.assertEqual(info["log_namespace"], "sidecar.test")
