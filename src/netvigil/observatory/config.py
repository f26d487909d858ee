"""The observatory's TOML configuration: which sources run, where the store is, the bin length.

Parsed with :mod:`tomllib` and validated against :data:`SCHEMA` (the keys, their types and
defaults as data, one row per key), so an error always reads ``file: key: reason`` and an
unknown key is an error rather than a silently ignored typo. Relative paths are resolved
against the directory of the config file, not the working directory, so a config can be
moved with its folders. Every section is optional: a config with only ``store`` runs detection
every bin over whatever other commands write into the store.

Example (the reference is docs/observatory.md)::

    store = "observatory.duckdb"
    bin_seconds = 300
    [watch]
    dirs = ["incoming"]
    [probing]
    targets = "targets.csv"
    round_seconds = 600
    rate = 8000
    [bgp]
    ris_live = "wss://ris-live.ripe.net/v1/ws/"
    [alerts]
    config = "alerts.toml"   # subscriptions and channels (docs/alerts.md)
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from netvigil.model import ErrorPolicy, InputError

#: (type, default, check) per key; a check returns a reason string when the value is bad.
Check = Callable[[Any], str | None]


def _positive(x: Any) -> str | None:
    return None if x > 0 else "must be > 0"


def _non_negative(x: Any) -> str | None:
    return None if x >= 0 else "must be >= 0"


def _policy(x: Any) -> str | None:
    allowed = sorted(p.value for p in ErrorPolicy)
    return None if x in allowed else f"must be one of {', '.join(allowed)}"


def _ws_url(x: Any) -> str | None:
    return None if x.startswith(("ws://", "wss://")) else "must start with ws:// or wss://"


def _non_empty(x: Any) -> str | None:
    return None if x else "must not be empty"


def _ok(_x: Any) -> str | None:
    return None


_REQUIRED = object()
_PATH = "path"  # marker type: a string resolved against the config file's directory
_PATHS = "paths"

SCHEMA: dict[str, dict[str, tuple[Any, Any, Check]]] = {
    "": {
        "store": (_PATH, None, _non_empty),
        "bin_seconds": (int, 300, _positive),
        "lock_wait_seconds": (float, 30.0, _non_negative),
        "compact": (bool, True, _ok),
        "round_log_keep_days": (int, 7, _non_negative),
    },
    "watch": {
        "dirs": (_PATHS, _REQUIRED, _non_empty),
        "settle_seconds": (float, 2.0, _non_negative),
        "on_error": (str, "fail", _policy),
        "move_failed": (bool, True, _ok),
    },
    "probing": {
        "targets": (_PATH, _REQUIRED, _non_empty),
        "round_seconds": (int, 600, _positive),
        "rate": (float, 8000.0, _positive),
        "vantage": (str, None, _non_empty),
        "timeout": (float, None, _positive),
        "min_addresses": (int, 15, _positive),
        "min_availability": (float, 0.1, _non_negative),
    },
    "bgp": {
        "ris_live": (str, _REQUIRED, _ws_url),
        "host": (str, None, _non_empty),
        "full_feed_v4": (int, None, _non_negative),
        "full_feed_v6": (int, None, _non_negative),
    },
    "alerts": {
        "config": (_PATH, _REQUIRED, _non_empty),
    },
}


@dataclass(frozen=True)
class WatchConfig:
    dirs: tuple[Path, ...]
    settle_seconds: float = 2.0
    on_error: ErrorPolicy = ErrorPolicy.FAIL
    move_failed: bool = True


@dataclass(frozen=True)
class ProbingConfig:
    targets: Path
    round_seconds: int = 600
    rate: float = 8000.0
    vantage: str | None = None
    timeout: float | None = None
    min_addresses: int = 15
    min_availability: float = 0.1


@dataclass(frozen=True)
class BgpConfig:
    ris_live: str
    host: str | None = None
    full_feed_v4: int | None = None  # absolute full-feed thresholds (default: era rules)
    full_feed_v6: int | None = None


@dataclass(frozen=True)
class ObservatoryConfig:
    path: Path  # the config file
    store: Path | None = None
    bin_seconds: int = 300
    lock_wait_seconds: float = 30.0
    #: cluster closed days of points by series once they close (Store.compact_points)
    compact: bool = True
    #: days of the probe round log kept behind its newest round; older rounds are folded
    #: into the log's base (pipeline.roundlog.prune_log), 0 = never prune
    round_log_keep_days: int = 7
    watch: WatchConfig | None = None
    probing: ProbingConfig | None = None
    bgp: BgpConfig | None = None
    sources: tuple[str, ...] = field(default=())
    alerts: Path | None = None  # alert configuration (netvigil.alerts.config), if any


def _type_name(t: Any) -> str:
    return {_PATH: "a string path", _PATHS: "a list of string paths", int: "an integer",
            float: "a number", bool: "true or false", str: "a string"}[t]


def _coerce(t: Any, value: Any, base: Path) -> tuple[Any, bool]:
    """(converted value, ok). TOML ints are accepted where a float is wanted; bools are not
    numbers here (``rate = true`` is a mistake, not 1)."""
    if t is _PATH:
        return ((base / value) if isinstance(value, str) else None), isinstance(value, str)
    if t is _PATHS:
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
        return (tuple(base / v for v in value) if ok else None), ok
    if isinstance(value, bool):
        return value, t is bool
    if t is float and isinstance(value, int | float):
        return float(value), True
    return value, isinstance(value, t)


def _section(file: str, name: str, raw: Mapping[str, Any], base: Path) -> dict[str, Any]:
    schema = SCHEMA[name]
    where = f"{name}." if name else ""
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if name == "" and key in SCHEMA and key:
            continue  # a section, handled by the caller
        if key not in schema:
            known = ", ".join(sorted(k for k in schema if k))
            raise InputError(file, None, f"{where}{key}: unknown key (known: {known})")
        t, _default, check = schema[key]
        conv, ok = _coerce(t, value, base)
        if not ok:
            raise InputError(file, None, f"{where}{key}: must be {_type_name(t)}, "
                                         f"got {value!r}")
        reason = check(value)
        if reason:
            raise InputError(file, None, f"{where}{key}: {reason}")
        out[key] = conv
    for key, (_t, default, _check) in schema.items():
        if key not in out:
            if default is _REQUIRED:
                raise InputError(file, None, f"{where}{key}: required in [{name}]")
            out[key] = default
    return out


def parse_config(text: str, path: Path) -> ObservatoryConfig:
    """Validate ``text`` (the contents of ``path``) into an :class:`ObservatoryConfig`."""
    file = str(path)
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # Python 3.11's tomllib puts the position only in the message: "(at line 2, column 7)"
        m = re.search(r"\(at line (\d+), column (\d+)\)", str(exc))
        line = int(m.group(1)) if m else None
        reason = re.sub(r"\s*\(at line \d+, column (\d+)\)", r" (column \1)", str(exc))
        raise InputError(file, line, f"not valid TOML: {reason}") from None
    base = path.resolve().parent
    for key, value in raw.items():
        if key in SCHEMA and key and not isinstance(value, dict):
            raise InputError(file, None, f"{key}: must be a [{key}] table")
    top = _section(file, "", raw, base)
    sections: dict[str, dict[str, Any]] = {
        name: _section(file, name, raw[name], base) for name in SCHEMA if name and name in raw
    }
    watch = probing = bgp = None
    if "watch" in sections:
        w = sections["watch"]
        watch = WatchConfig(w["dirs"], w["settle_seconds"], ErrorPolicy(w["on_error"]),
                            w["move_failed"])
    if "probing" in sections:
        probing = ProbingConfig(**sections["probing"])
    if "bgp" in sections:
        bgp = BgpConfig(**sections["bgp"])
    return ObservatoryConfig(path=path, store=top["store"], bin_seconds=top["bin_seconds"],
                             lock_wait_seconds=top["lock_wait_seconds"],
                             compact=top["compact"],
                             round_log_keep_days=top["round_log_keep_days"], watch=watch,
                             probing=probing, bgp=bgp,
                             sources=tuple(sorted(n for n in sections if n != "alerts")),
                             alerts=sections["alerts"]["config"] if "alerts" in sections
                             else None)


def load_config(path: Path) -> ObservatoryConfig:
    """Read and validate a config file; unreadable or non-UTF-8 files are input errors."""
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise InputError(str(path), None, f"cannot read config: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise InputError(str(path), None, f"config must be UTF-8: {exc.reason}") from None
    return parse_config(text, path)
