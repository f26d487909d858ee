"""Pieces every command shares: the --store option, time parsing, table output, error mapping."""

from __future__ import annotations

import functools
import os
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
import platformdirs

from netvigil.model.errors import InputError, NetVigilError, StoreError
from netvigil.model.times import iso_utc as iso_utc  # the one formatter, re-exported

if TYPE_CHECKING:
    from netvigil.store.duck import Store

F = TypeVar("F", bound=Callable[..., Any])

STORE_ENV = "NETVIGIL_STORE"
LOCK_WAIT_ENV = "NETVIGIL_LOCK_WAIT"
DEFAULT_LOCK_WAIT = 60.0  # seconds; a `netvigil run` bin write on 70k series takes a few


def is_lock_error(exc: BaseException) -> bool:
    """DuckDB's "another process holds the file" error (read-write excludes everyone else,
    read-only openers exclude a writer); any other open failure is not retried."""
    text = str(exc)
    return "Could not set lock" in text or "Conflicting lock" in text


def lock_wait_seconds() -> float:
    """How long commands wait for a locked store: ``NETVIGIL_LOCK_WAIT`` or 60 s."""
    raw = os.environ.get(LOCK_WAIT_ENV, "")
    try:
        return max(0.0, float(raw)) if raw else DEFAULT_LOCK_WAIT
    except ValueError:
        return DEFAULT_LOCK_WAIT


def open_store(path: Path, *, read_only: bool = False, wait: float | None = None,
               on_wait: Callable[[float], None] | None = None) -> Store:
    """Open the store, retrying while another process holds DuckDB's file lock.

    DuckDB admits one read-write process, or any number of read-only ones, per file
    (duckdb.org/docs/connect/concurrency). ``netvigil run`` holds the store only while it
    writes a bin and closes it between bins, so every command waits here, with a bounded
    exponential backoff (50 ms doubling to 1 s), for at most ``wait`` seconds (default
    ``NETVIGIL_LOCK_WAIT`` or 60 s), then fails with a message that says who to wait for.
    ``on_wait(delay)`` is told before each sleep (the run loop logs it).
    """
    from netvigil.store.duck import Store

    budget = lock_wait_seconds() if wait is None else wait
    deadline = time.monotonic() + budget
    delay = 0.05
    while True:
        try:
            return Store(path, read_only=read_only)
        except StoreError as exc:
            left = deadline - time.monotonic()
            if not is_lock_error(exc) or left <= 0:
                if is_lock_error(exc):
                    raise StoreError(
                        f"store {path} stayed locked by another process for {budget:g} s "
                        f"(a running `netvigil run` holds it while it writes a bin; a "
                        f"long write or a second writer keeps it longer); retry, or set "
                        f"{LOCK_WAIT_ENV} to wait longer") from exc
                raise
            pause = min(delay, left)
            if on_wait is not None:
                on_wait(pause)
            time.sleep(pause)
            delay = min(delay * 2, 1.0)


def default_store_path() -> Path:
    """The default store lives in the user's data directory (XDG on Linux)."""
    return Path(platformdirs.user_data_dir("netvigil")) / "netvigil.duckdb"


def store_option(func: F) -> F:
    """``--store PATH`` (env NETVIGIL_STORE), defaulting to the user's data directory."""
    return click.option(
        "--store",
        "store_path",
        type=click.Path(dir_okay=False, path_type=Path),
        envvar=STORE_ENV,
        default=default_store_path,
        show_default="$XDG_DATA_HOME/netvigil/netvigil.duckdb",
        help="DuckDB store file (also NETVIGIL_STORE).",
    )(func)


def parse_time(text: str) -> int:
    """ISO 8601 (UTC if no offset) or unix seconds -> unix seconds."""
    raw = text.strip()
    try:
        return int(float(raw)) if raw.lstrip("-").replace(".", "", 1).isdigit() else _iso(raw)
    except ValueError as exc:
        raise click.BadParameter(f"expected ISO 8601 or unix seconds, got {text!r}") from exc


def _iso(raw: str) -> int:
    dt = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp())


def render_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain fixed-width table; no dependency needed for this much."""
    cells = [[("" if c is None else str(c)) for c in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, c in enumerate(row):
            widths[i] = max(widths[i], len(c))
    line = "  ".join(h.ljust(widths[i]) for i, h in enumerate(headers))
    sep = "  ".join("-" * w for w in widths)
    body = ["  ".join(c.ljust(widths[i]) for i, c in enumerate(row)) for row in cells]
    return "\n".join([line, sep, *body])


def handle_errors(func: F) -> F:
    """Map NetVigilError to a one-line message on stderr and exit status 1 (usage errors: 2)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except InputError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)
        except NetVigilError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


def env_flag(name: str) -> bool:
    return os.environ.get(name, "").lower() in {"1", "true", "yes"}
