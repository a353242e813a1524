"""
Log output: text or one JSON object per line, filtered by level.
"""

from __future__ import annotations

from typing import IO

from twisted.logger import (
    FilteringLogObserver,
    ILogObserver,
    LogLevel,
    LogLevelFilterPredicate,
    jsonFileLogObserver,
    textFileLogObserver,
)

LEVELS = {
    "debug": LogLevel.debug,
    "info": LogLevel.info,
    "warn": LogLevel.warn,
    "error": LogLevel.error,
}


def makeLogObserver(level: str, format: str, stream: IO[str]) -> ILogObserver:
    """
    An observer that writes events of C{level} and above to C{stream}, as
    classic text lines (C{format="text"}) or as JSON lines (C{"json"}).
    """
    if format == "json":
        writer = jsonFileLogObserver(stream, recordSeparator="")
    else:
        writer = textFileLogObserver(stream)
    predicate = LogLevelFilterPredicate(defaultLogLevel=LEVELS[level])
    return FilteringLogObserver(writer, [predicate])
