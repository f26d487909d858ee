"""Pieces every command shares: the --store option, time parsing, table output, error mapping."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click
import platformdirs

from netvigil.model.errors import InputError, NetVigilError

F = TypeVar("F", bound=Callable[..., Any])

STORE_ENV = "NETVIGIL_STORE"


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


def iso_utc(ts: int | None) -> str | None:
    """Unix seconds -> ``2022-01-05T10:40:00Z``; None stays None."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


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
