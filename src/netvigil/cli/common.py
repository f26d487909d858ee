"""Pieces every command shares: the --store option, time parsing, table output, error mapping.

The one error boundary (issue 12, item 2): every command's failure reaches the user as ONE
line ``error: <what> (<file>[:line])`` on stderr and an exit status that tells its class, so
scripts can tell "fix your input" from "free some disk" from "try again later". Tracebacks
only with the global ``netvigil --debug``. Classes, checked in this order
(:func:`classify`, walking the exception and its ``__cause__`` chain):

====  ==================  ===========================================================
exit  class               raised by
====  ==================  ===========================================================
0     ok
1     input               ``InputError`` and any other ``NetVigilError`` (bad file or row,
                          unknown entity, bad option value found by the command)
2     usage               click's own usage errors (unknown option, bad ``--at``)
3     store unusable      ``StoreError``: no store, truncated store (``Could not read
                          enough bytes``), foreign file (not DuckDB), newer schema
4     store locked        another process kept DuckDB's file lock past ``--wait``
5     disk full           ``ENOSPC`` / ``No space left on device`` (the write is rolled back)
6     permission          ``EACCES``/``EPERM``/``EROFS``: permission denied, read-only media
7     os error            any other ``OSError`` (missing file, I/O error)
8     database error      any other ``duckdb.Error`` (an internal DuckDB failure)
====  ==================  ===========================================================

Reading commands (``series list``, ``store info``, ``events``) open the store read-only, so
they work on read-only media and beside other readers, and all commands wait a bounded time
for a writer's lock: ``netvigil --wait SECONDS`` (env ``NETVIGIL_LOCK_WAIT``, default 60 s).
"""

from __future__ import annotations

import errno
import functools
import os
import re
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
import duckdb
import platformdirs

from netvigil.model.errors import InputError, NetVigilError, StoreError
from netvigil.model.times import iso_utc as iso_utc  # the one formatter, re-exported

if TYPE_CHECKING:
    from netvigil.store.duck import Store

F = TypeVar("F", bound=Callable[..., Any])

STORE_ENV = "NETVIGIL_STORE"
LOCK_WAIT_ENV = "NETVIGIL_LOCK_WAIT"
DEFAULT_LOCK_WAIT = 60.0  # seconds; a `netvigil run` bin write on 70k series takes a few
WAIT_KEY = "netvigil.wait"
DEBUG_KEY = "netvigil.debug"


def is_lock_error(exc: BaseException) -> bool:
    """DuckDB's "another process holds the file" error (read-write excludes everyone else,
    read-only openers exclude a writer); any other open failure is not retried."""
    text = str(exc)
    return "Could not set lock" in text or "Conflicting lock" in text


def lock_wait_seconds() -> float:
    """How long commands wait for a locked store: ``--wait``, ``NETVIGIL_LOCK_WAIT`` or 60 s.

    ``netvigil --wait SECONDS`` is kept in the root click context, so every open of one
    invocation sees the same budget without touching the process environment."""
    ctx = click.get_current_context(silent=True)
    given = None if ctx is None else ctx.find_root().meta.get(WAIT_KEY)
    if isinstance(given, float):
        return max(0.0, given)
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
                        f"long write or a second writer keeps it longer); retry, or wait "
                        f"longer with `netvigil --wait SECONDS` or {LOCK_WAIT_ENV}") from exc
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


EXIT_INPUT = 1
EXIT_USAGE = 2
EXIT_STORE = 3
EXIT_LOCKED = 4
EXIT_DISK_FULL = 5
EXIT_PERMISSION = 6
EXIT_OS = 7
EXIT_DATABASE = 8

#: (exit status, pattern over the message) for failures DuckDB reports only as text (it
#: raises ``duckdb.IOException`` with the OS message, not an ``OSError`` with an errno).
_TEXT_CLASSES: tuple[tuple[int, re.Pattern[str]], ...] = (
    (EXIT_LOCKED, re.compile(r"Could not set lock|Conflicting lock|stayed locked")),
    (EXIT_DISK_FULL, re.compile(r"No space left on device|Disk quota exceeded")),
    (EXIT_PERMISSION, re.compile(r"Permission denied|Read-only file system|"
                                 r"Operation not permitted")),
    (EXIT_STORE, re.compile(r"Could not read enough bytes|not a valid DuckDB database|"
                            r"[Cc]orrupt|[Cc]hecksum")),
)
_ERRNO_CLASSES = {errno.ENOSPC: EXIT_DISK_FULL, errno.EDQUOT: EXIT_DISK_FULL,
                  errno.EACCES: EXIT_PERMISSION, errno.EPERM: EXIT_PERMISSION,
                  errno.EROFS: EXIT_PERMISSION}
_WHAT = {EXIT_STORE: "store truncated or damaged", EXIT_LOCKED: "store locked",
         EXIT_DISK_FULL: "disk full", EXIT_PERMISSION: "permission denied",
         EXIT_OS: "OS error", EXIT_DATABASE: "database error"}


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception and its causes, outermost first (bounded against cycles)."""
    out: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and cur not in out and len(out) < 16:
        out.append(cur)
        cur = cur.__cause__ or cur.__context__
    return out


def classify(exc: BaseException) -> int | None:
    """The exit status of a failure (table in the module docstring); None = not ours (a bug:
    the traceback is the useful report then)."""
    chain = _chain(exc)
    for e in chain:
        if isinstance(e, OSError) and e.errno in _ERRNO_CLASSES:
            return _ERRNO_CLASSES[e.errno]
    if isinstance(exc, InputError):
        return EXIT_INPUT
    # only store and OS messages are read: an input error may well say "corrupt"
    text = " ".join(str(e) for e in chain if isinstance(e, (duckdb.Error, StoreError, OSError)))
    for status, pattern in _TEXT_CLASSES:
        if pattern.search(text):
            return status
    if isinstance(exc, StoreError):
        return EXIT_STORE
    if isinstance(exc, NetVigilError):
        return EXIT_INPUT
    if isinstance(exc, duckdb.Error):
        return EXIT_DATABASE
    if isinstance(exc, OSError):
        return EXIT_OS
    return None


def _where(exc: BaseException, default_file: Path | None) -> str | None:
    """``file[:line]`` of a failure: the input's, else the OS error's, else the store's."""
    for e in _chain(exc):
        if isinstance(e, InputError):
            return e.path if e.line is None else f"{e.path}:{e.line}"
        if isinstance(e, OSError) and e.filename is not None:
            return str(e.filename)
        path = getattr(e, "path", None)  # e.g. an MRT error: the archive, not the store
        if isinstance(e, NetVigilError) and isinstance(path, str) and path:
            return None if str(e).startswith(path) else path
    return None if default_file is None else str(default_file)


def error_line(exc: BaseException, status: int, default_file: Path | None = None) -> str:
    """``error: <what> (<file>[:line])`` on one line, whatever DuckDB put in its message."""
    if isinstance(exc, InputError):  # already "file:line: reason", the form tests and
        return f"error: {' '.join(str(exc).split())}"  # the watch log match on
    if isinstance(exc, OSError) and exc.strerror:
        what = exc.strerror
    else:
        what = str(exc) or type(exc).__name__
    prefix = _WHAT.get(status, "")
    if prefix and not isinstance(exc, NetVigilError) and prefix not in what.lower():
        what = f"{prefix}: {what}"
    what = " ".join(what.split())  # DuckDB messages can span lines
    where = _where(exc, default_file)
    return f"error: {what} ({where})" if where else f"error: {what}"


def debug_enabled() -> bool:
    """True under ``netvigil --debug``: failures then raise with their traceback."""
    ctx = click.get_current_context(silent=True)
    return bool(ctx is not None and ctx.find_root().meta.get(DEBUG_KEY, False))



def report(exc: BaseException, default_file: Path | None = None) -> None:
    """Print the one line for ``exc`` and exit with its class, or re-raise if not ours or
    under ``--debug``. The one place failures are mapped (handle_errors and the group)."""
    status = classify(exc)
    if status is None or debug_enabled():
        raise exc
    click.echo(error_line(exc, status, default_file), err=True)
    sys.exit(status)


def handle_errors(func: F) -> F:
    """Run a command inside the error boundary (:func:`report`); the store path, when the
    command has one, names the file of a store failure."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (NetVigilError, duckdb.Error, OSError) as exc:
            store = kwargs.get("store_path")
            report(exc, store if isinstance(store, Path) else None)

    return wrapper  # type: ignore[return-value]


def env_flag(name: str) -> bool:
    return os.environ.get(name, "").lower() in {"1", "true", "yes"}
