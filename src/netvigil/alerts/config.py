"""Alert configuration (TOML): channels and the subscriptions that route transitions to them.

Example (the reference is docs/alerts.md)::

    outbox = "alerts.sqlite"          # relative to this file
    since = "2022-01-01T00:00:00Z"    # transitions before this are never sent ("all": none)

    [channel.ops]
    type = "webhook"
    url = "http://127.0.0.1:9000/netvigil"
    secret_env = "NETVIGIL_WEBHOOK_SECRET"   # the HMAC key is read from the environment

    [channel.team]
    type = "email"
    host = "127.0.0.1"
    port = 8025
    sender = "netvigil@localhost"
    to = ["desk@example.org"]

    [[subscription]]
    id = "kz-national"
    entity = "country/KZ"             # TYPE/CODE; "*" in CODE matches a prefix: region/KZ-*
    scope = ["national"]              # optional filters
    kind = ["outage", "platform-block"]
    channels = ["ops", "team"]

Secrets never live in the file: a channel names the environment variable that holds its HMAC
key or SMTP password, so the config can be committed and logged. An unknown key is an error
(a typo in a filter must not widen a subscription silently).
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from netvigil.model import InputError
from netvigil.model.events import Event, EventKind, Scope

_CHANNEL_KEYS = {
    "webhook": {"type", "url", "secret_env", "timeout", "max_attempts"},
    "email": {"type", "host", "port", "sender", "to", "username", "password_env", "starttls",
              "timeout", "max_attempts"},
}
_SUB_KEYS = {"id", "entity", "scope", "kind", "channels"}
_TOP_KEYS = {"outbox", "since", "channel", "subscription"}


@dataclass(frozen=True)
class Channel:
    name: str
    type: str  # "webhook" | "email"
    settings: dict[str, Any] = field(hash=False)

    def secret(self, key: str) -> str | None:
        """The value of the environment variable named by ``key`` (never stored, never logged)."""
        env = self.settings.get(key)
        return os.environ.get(env) if env else None

    @property
    def max_attempts(self) -> int:
        return int(self.settings.get("max_attempts", 8))

    def __repr__(self) -> str:  # settings hold no secret, but keep logs to the name anyway
        return f"Channel({self.name!r}, {self.type!r})"


@dataclass(frozen=True)
class Subscription:
    id: str
    entity: str | None  # "TYPE/CODE" pattern or None for every entity
    scopes: frozenset[Scope]
    kinds: frozenset[EventKind]
    channels: tuple[str, ...]

    def matches(self, event: Event) -> bool:
        if self.entity not in (None, "*") and not fnmatch.fnmatchcase(
                event.entity.fqid, self.entity):
            return False
        if self.scopes and event.scope not in self.scopes:
            return False
        return not self.kinds or event.kind in self.kinds


@dataclass(frozen=True)
class AlertConfig:
    outbox: Path
    since: int | None
    channels: dict[str, Channel]
    subscriptions: tuple[Subscription, ...]


def _fail(path: Path, where: str, why: str) -> InputError:
    return InputError(str(path), None, f"{where}: {why}")


def _unknown(path: Path, where: str, got: set[str], allowed: set[str]) -> None:
    extra = sorted(got - allowed)
    if extra:
        known = ", ".join(sorted(allowed))
        raise _fail(path, where, f"unknown key {extra[0]!r} (allowed: {known})")


def _channel(path: Path, name: str, raw: Any) -> Channel:
    if not isinstance(raw, dict) or raw.get("type") not in _CHANNEL_KEYS:
        raise _fail(path, f"channel.{name}", "needs type = \"webhook\" or \"email\"")
    _unknown(path, f"channel.{name}", set(raw), _CHANNEL_KEYS[raw["type"]])
    if raw["type"] == "webhook":
        url = raw.get("url", "")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise _fail(path, f"channel.{name}.url", "must be an http:// or https:// URL")
    else:
        for key in ("host", "sender", "to"):
            if not raw.get(key):
                raise _fail(path, f"channel.{name}.{key}", "is required")
        if not isinstance(raw["to"], list):
            raise _fail(path, f"channel.{name}.to", "must be a list of addresses")
    return Channel(name, raw["type"], dict(raw))


def _subscription(path: Path, i: int, raw: Any, channels: dict[str, Channel]) -> Subscription:
    where = f"subscription[{i}]"
    if not isinstance(raw, dict):
        raise _fail(path, where, "must be a table")
    _unknown(path, where, set(raw), _SUB_KEYS)
    try:
        scopes = frozenset(Scope(s) for s in raw.get("scope", []))
        kinds = frozenset(EventKind(k) for k in raw.get("kind", []))
    except ValueError as exc:
        raise _fail(path, where, str(exc)) from None
    names = tuple(raw.get("channels", ()))
    if not names:
        raise _fail(path, f"{where}.channels", "must name at least one channel")
    for name in names:
        if name not in channels:
            raise _fail(path, f"{where}.channels", f"no channel named {name!r}")
    entity = raw.get("entity")
    if entity is not None and entity != "*" and "/" not in entity:
        raise _fail(path, f"{where}.entity", "must be TYPE/CODE such as country/KZ")
    return Subscription(str(raw.get("id", f"sub{i}")), entity, scopes, kinds, names)


def _iso(text: str) -> int:
    when = dt.datetime.fromisoformat(text)
    return int((when if when.tzinfo else when.replace(tzinfo=dt.UTC)).timestamp())


def load_config(path: str | Path) -> AlertConfig:
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise InputError(str(path), getattr(exc, "lineno", None),
                         f"not valid TOML ({exc})") from None
    _unknown(path, "top level", set(raw), _TOP_KEYS)
    channels = {name: _channel(path, name, c) for name, c in raw.get("channel", {}).items()}
    subs = tuple(_subscription(path, i, s, channels)
                 for i, s in enumerate(raw.get("subscription", [])))
    since_raw = raw.get("since", "all")
    try:
        since = None if since_raw == "all" else _iso(str(since_raw))
    except ValueError:
        raise _fail(path, "since", "must be an ISO 8601 time or \"all\"") from None
    outbox = path.parent / raw.get("outbox", path.stem + ".outbox.sqlite")
    return AlertConfig(outbox, since, channels, subs)
