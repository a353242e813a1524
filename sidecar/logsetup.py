"""
Log output: text lines or one JSON object per line, filtered by level.

Both forms are for people and pipelines rather than for Twisted: the time
to the millisecond, the level by name, the message rendered.  A JSON line
is C{time}, C{level}, C{logger}, C{message}, then the event's own fields
flat, without twisted.logger's C{log_*} bookkeeping.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import IO, Any

from twisted.logger import (
    FileLogObserver,
    FilteringLogObserver,
    ILogObserver,
    LogEvent,
    LogLevel,
    LogLevelFilterPredicate,
    formatEvent,
    formatEventAsClassicLogText,
)

LEVELS = {
    "debug": LogLevel.debug,
    "info": LogLevel.info,
    "warn": LogLevel.warn,
    "error": LogLevel.error,
}

# Keys of events from twisted.python.log (Twisted's own legacy callers):
# their content is already in the rendered message or in the head fields.
_LEGACY_KEYS = frozenset(
    {"message", "format", "time", "system", "isError", "why", "failure"}
)


def formatTime(when: float | None) -> str:
    """
    C{when} as RFC 3339 local time to the millisecond, with its offset.
    """
    if when is None:
        return "-"
    return datetime.fromtimestamp(when).astimezone().isoformat(timespec="milliseconds")


def _logger(event: LogEvent) -> str:
    namespace = event.get("log_namespace", "-")
    if namespace == "log_legacy":
        return str(event.get("log_system", "-"))
    return str(namespace)


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    return str(value)


def eventAsJSON(event: LogEvent) -> str:
    """
    One log event as one line of JSON: the head fields, then the event's
    own, each once; a failure adds C{error} and C{traceback}.
    """
    record: dict[str, Any] = {
        "time": formatTime(event.get("log_time")),
        "level": getattr(event.get("log_level"), "name", "info"),
        "logger": _logger(event),
        "message": formatEvent(event),
    }
    failure = event.get("log_failure")
    if failure is not None:
        record["error"] = failure.getErrorMessage()
        record["traceback"] = failure.getTraceback()
    for key, value in event.items():
        if key.startswith("log_") or key in _LEGACY_KEYS or key in record:
            continue
        record[key] = _jsonable(value)
    return json.dumps(record, ensure_ascii=False) + "\n"


def eventAsText(event: LogEvent) -> str | None:
    """
    One log event as a classic Twisted text line, timed to the millisecond.
    """
    return formatEventAsClassicLogText(event, formatTime=formatTime)


def makeLogObserver(level: str, format: str, stream: IO[str]) -> ILogObserver:
    """
    An observer that writes events of C{level} and above to C{stream}, as
    text lines (C{format="text"}) or as JSON lines (C{"json"}).
    """
    formatter = eventAsJSON if format == "json" else eventAsText
    writer = FileLogObserver(stream, formatter)
    predicate = LogLevelFilterPredicate(defaultLogLevel=LEVELS[level])
    return FilteringLogObserver(writer, [predicate])
