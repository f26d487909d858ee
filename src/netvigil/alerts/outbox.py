"""The alert outbox: one row per (transition, channel), in SQLite (WAL) beside the store.

Why a separate file and not the DuckDB store: delivery waits on networks (a webhook retried
with backoff for minutes), and the store admits one writer process at a time; the outbox lets
the observatory enqueue under the store's lock and deliver after releasing it. SQLite in WAL
mode with ``synchronous=FULL`` makes every enqueue and every "delivered" mark durable before the
call returns, so a crash or ``kill -9`` loses no accepted transition. The primary key
(transition, channel) makes enqueueing idempotent. A delivery interrupted after the receiver
got it but before it was marked is sent again after a restart with the same delivery id
(``X-NetVigil-Delivery`` header, e-mail ``Message-ID``), which receivers use to drop the repeat.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS deliveries (
    transition_id TEXT NOT NULL,
    channel TEXT NOT NULL,
    subscriptions TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at INTEGER NOT NULL,
    delivered_at INTEGER,
    failed_at INTEGER,
    last_error TEXT,
    PRIMARY KEY (transition_id, channel)
)
"""


@dataclass(frozen=True)
class Pending:
    transition_id: str
    channel: str
    payload: dict[str, Any]
    attempts: int


class Outbox:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._con = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        self._con.execute("PRAGMA journal_mode=WAL")
        self._con.execute("PRAGMA synchronous=FULL")
        self._con.execute(_SCHEMA)

    def close(self) -> None:
        self._con.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def enqueue(self, rows: Iterable[tuple[str, str, list[str], dict[str, Any]]],
                now: int) -> int:
        """Add (transition id, channel, subscription ids, payload) rows not yet present;
        returns how many were new. One transaction: all or nothing."""
        with self._con:
            before = self._count()
            self._con.execute("BEGIN IMMEDIATE")
            self._con.executemany(
                "INSERT OR IGNORE INTO deliveries (transition_id, channel, subscriptions,"
                " payload, created_at, next_at) VALUES (?, ?, ?, ?, ?, ?)",
                [(t, c, json.dumps(s), json.dumps(p, sort_keys=True), now, now)
                 for t, c, s, p in rows])
            self._con.execute("COMMIT")
        return self._count() - before

    def _count(self) -> int:
        return int(self._con.execute("SELECT count(*) FROM deliveries").fetchone()[0])

    def due(self, now: int) -> list[Pending]:
        rows = self._con.execute(
            "SELECT transition_id, channel, payload, attempts FROM deliveries"
            " WHERE delivered_at IS NULL AND failed_at IS NULL AND next_at <= ?"
            " ORDER BY created_at, transition_id, channel", (now,)).fetchall()
        return [Pending(t, c, json.loads(p), a) for t, c, p, a in rows]

    def delivered(self, p: Pending, now: int) -> None:
        self._con.execute(
            "UPDATE deliveries SET delivered_at = ?, attempts = attempts + 1, last_error = NULL"
            " WHERE transition_id = ? AND channel = ?", (now, p.transition_id, p.channel))

    def retry(self, p: Pending, now: int, error: str, *, max_attempts: int,
              base_delay: int = 30, max_delay: int = 3600) -> bool:
        """Record a failed attempt: exponential backoff (30 s, 60 s, ... capped at an hour);
        after ``max_attempts`` the delivery is marked failed (kept, with its error, for a
        person to look at). Returns True while it will be retried."""
        attempts = p.attempts + 1
        give_up = attempts >= max_attempts
        delay = min(base_delay * 2 ** (attempts - 1), max_delay)
        self._con.execute(
            "UPDATE deliveries SET attempts = ?, next_at = ?, last_error = ?, failed_at = ?"
            " WHERE transition_id = ? AND channel = ?",
            (attempts, now + delay, error[:500], now if give_up else None, p.transition_id,
             p.channel))
        return not give_up

    def counts(self) -> dict[str, int]:
        row = self._con.execute(
            "SELECT count(*) FILTER (WHERE delivered_at IS NOT NULL),"
            " count(*) FILTER (WHERE failed_at IS NOT NULL),"
            " count(*) FILTER (WHERE delivered_at IS NULL AND failed_at IS NULL)"
            " FROM deliveries").fetchone()
        return {"delivered": row[0], "failed": row[1], "pending": row[2]}
