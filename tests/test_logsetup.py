"""
Log output as configured: level filtering, text lines or JSON lines.
"""

from __future__ import annotations

import io
import json
import re

from twisted.logger import Logger, LogPublisher
from twisted.logger._legacy import publishToNewObserver
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

    def test_textIsTimedToTheMillisecond(self) -> None:
        first = self.emit("info", "text").splitlines()[0]
        stamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d"
        self.assertRegex(first, rf"^{stamp} \[sidecar\.test#info\] service web")

    def test_warnLevelKeepsOnlyWarningsAndAbove(self) -> None:
        text = self.emit("warn", "text")
        self.assertNotIn("service web", text)
        self.assertIn("warn 3", text)

    def test_jsonIsOneFlatObjectPerLine(self) -> None:
        lines = self.emit("debug", "json").splitlines()
        events = [json.loads(line) for line in lines]
        self.assertEqual(len(events), 3)
        info = events[1]
        self.assertEqual(
            list(info), ["time", "level", "logger", "message", "name", "status"]
        )
        self.assertEqual(info["level"], "info")
        self.assertEqual(info["logger"], "sidecar.test")
        self.assertEqual(info["message"], "service web is Alive")
        self.assertEqual((info["name"], info["status"]), ("web", "Alive"))
        self.assertRegex(
            info["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d$"
        )
        self.assertEqual(events[2]["level"], "warn")

    def jsonOf(self, emit) -> dict:  # type: ignore[no-untyped-def,type-arg]
        stream = io.StringIO()
        emit(makeLogObserver("debug", "json", stream))
        [line] = stream.getvalue().splitlines()
        return json.loads(line)  # type: ignore[no-any-return]

    def test_jsonFailureHasItsErrorAndTraceback(self) -> None:
        def emit(observer) -> None:  # type: ignore[no-untyped-def]
            try:
                raise ZeroDivisionError("division by zero")
            except ZeroDivisionError:
                Logger(namespace="sidecar.test", observer=observer).failure(
                    "check of {name} crashed", name="web"
                )

        event = self.jsonOf(emit)
        self.assertEqual(event["level"], "critical")
        self.assertEqual(event["message"], "check of web crashed")
        self.assertEqual(event["error"], "division by zero")
        self.assertIn("ZeroDivisionError", event["traceback"])
        self.assertNotIn("failure", event)

    def test_jsonLegacyEventsAreRenderedOnce(self) -> None:
        def emit(observer) -> None:  # type: ignore[no-untyped-def]
            publisher = LogPublisher(observer)
            publishToNewObserver(
                publisher,
                {
                    "message": ("Main loop terminated.",),
                    "isError": 0,
                    "system": "-",
                    "time": 1.5,
                },
                lambda event: " ".join(event["message"]),
            )

        event = self.jsonOf(emit)
        self.assertEqual(event["message"], "Main loop terminated.")
        self.assertEqual(list(event), ["time", "level", "logger", "message"])
        self.assertEqual(event["logger"], "-")

    def test_jsonFieldsThatAreObjectsAreText(self) -> None:
        class Thing:
            def __str__(self) -> str:
                return "a thing"

        def emit(observer) -> None:  # type: ignore[no-untyped-def]
            Logger(namespace="t", observer=observer).info(
                "got {what}", what=Thing(), raw=b"bytes", pair=(1, Thing())
            )

        event = self.jsonOf(emit)
        self.assertEqual(event["what"], "a thing")
        self.assertEqual(event["raw"], "bytes")
        self.assertEqual(event["pair"], [1, "a thing"])
        self.assertFalse(re.search(r"0x[0-9a-f]{6,}", json.dumps(event)))
