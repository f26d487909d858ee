"""Structured logs (one JSON object per line) and a progress line for interactive terminals.

Each record is ``{"time": ISO 8601 UTC, "level": ..., "event": ..., <fields>}``: the shape
log shippers (journald, Loki, jq) take without a parser, and the one ``jq`` pipelines in
docs/observatory.md rely on. Written with the standard library (``json`` + a lock) rather
than ``logging``: the run loop has one writer and a fixed record shape, and the progress line
must be cleared before a record is printed on the same terminal, which a ``logging``
handler would need to be taught anyway.

The progress line is drawn only when the stream is a terminal (``isatty()``), so files, pipes
and test subprocesses get clean JSON lines only.
"""

from __future__ import annotations

import json
import math
import threading
import time
from typing import Any, TextIO

from netvigil.model.times import iso_utc

LEVELS = ("debug", "info", "warning", "error")


def _jsonable(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return repr(x)
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, str | int | float | bool) or x is None:
        return x
    return str(x)


class JsonLog:
    """Append JSON-line records to ``stream``; optionally show a progress line on ``tty``."""

    def __init__(self, stream: TextIO, *, tty: TextIO | None = None,
                 clock: Any = time.time) -> None:
        self.stream = stream
        self.tty = tty if tty is not None and tty.isatty() else None
        self._clock = clock
        self._lock = threading.Lock()
        self._progress = ""

    def log(self, level: str, event: str, **fields: Any) -> None:
        if level not in LEVELS:
            raise ValueError(f"unknown log level {level!r}")
        rec = {"time": iso_utc(self._clock(), millis=True), "level": level,
               "event": event, **_jsonable(fields)}
        line = json.dumps(rec, separators=(",", ":"))
        with self._lock:
            self._clear()
            self.stream.write(line + "\n")
            self.stream.flush()
            self._draw()

    def info(self, event: str, **fields: Any) -> None:
        self.log("info", event, **fields)

    def warning(self, event: str, **fields: Any) -> None:
        self.log("warning", event, **fields)

    def error(self, event: str, **fields: Any) -> None:
        self.log("error", event, **fields)

    def progress(self, text: str) -> None:
        """Replace the progress line (terminals only; a no-op otherwise)."""
        if self.tty is None:
            return
        with self._lock:
            self._clear()
            self._progress = text
            self._draw()

    def close(self) -> None:
        with self._lock:
            self._clear()
            self._progress = ""

    def _clear(self) -> None:
        if self.tty is not None and self._progress:
            self.tty.write("\r\x1b[2K")
            self.tty.flush()

    def _draw(self) -> None:
        if self.tty is not None and self._progress:
            self.tty.write(self._progress[:200])
            self.tty.flush()
