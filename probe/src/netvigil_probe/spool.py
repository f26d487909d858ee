"""The durable outbox: every measurement is on disk before anything else happens.

SQLite in WAL mode with ``synchronous=FULL``: a row is committed (and fsynced) by
:meth:`Spool.put` before the agent measures the next target or tries any upload, so a
``kill -9`` at any point loses at most the measurement being made, never a recorded one.
The primary key is the content hash (:func:`netvigil_probe.measurement.content_hash`), so
recording the same content twice is a no-op, and the collector deduplicates on the same key:
an upload whose answer was lost (killed after the collector stored it, before the row was
marked) is simply sent again and acknowledged as a duplicate — exactly once end to end.

OONI's probe keeps the same two things (anchors §4.3): a measurement table with upload
state and a network table with the last known country and AS.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from netvigil_probe.measurement import Network, content_hash

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS outbox (
        uid TEXT PRIMARY KEY,          -- SHA-256 of the canonical content
        kind TEXT NOT NULL,            -- 'measurement' | 'round'
        body TEXT NOT NULL,            -- the canonical JSON content
        created_at REAL NOT NULL,      -- unix seconds, when recorded
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt REAL NOT NULL DEFAULT 0,
        last_error TEXT,
        uploaded_at REAL,              -- when the collector acknowledged it
        rejected TEXT                  -- the collector's 4xx message: never retried
    )""",
    "CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (uploaded_at, rejected, next_attempt)",
    """CREATE TABLE IF NOT EXISTS network (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        probe_cc TEXT NOT NULL, probe_asn TEXT NOT NULL, probe_ip TEXT NOT NULL,
        network_name TEXT NOT NULL, looked_up_at REAL NOT NULL
    )""",
)


@dataclass(frozen=True)
class Item:
    uid: str
    kind: str
    body: str
    attempts: int


class Spool:
    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / "spool.sqlite"
        self.con = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        self.con.execute("PRAGMA journal_mode=WAL")
        self.con.execute("PRAGMA synchronous=FULL")
        for stmt in SCHEMA:
            self.con.execute(stmt)

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        self.con.execute("BEGIN IMMEDIATE")
        try:
            yield self.con
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        self.con.execute("COMMIT")

    def put(self, kind: str, content: dict[str, Any]) -> str:
        """Record ``content`` durably; its uid (the same content twice is one row)."""
        uid = content_hash(content)
        body = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        with self._tx() as con:
            con.execute("INSERT OR IGNORE INTO outbox (uid, kind, body, created_at) "
                        "VALUES (?, ?, ?, ?)", (uid, kind, body, time.time()))
        return uid

    def due(self, now: float, limit: int = 100) -> list[Item]:
        rows = self.con.execute(
            "SELECT uid, kind, body, attempts FROM outbox WHERE uploaded_at IS NULL AND "
            "rejected IS NULL AND next_attempt <= ? ORDER BY created_at, uid LIMIT ?",
            (now, limit)).fetchall()
        return [Item(*r) for r in rows]

    def next_due(self) -> float | None:
        row = self.con.execute("SELECT min(next_attempt) FROM outbox WHERE uploaded_at IS NULL "
                               "AND rejected IS NULL").fetchone()
        return None if row is None or row[0] is None else float(row[0])

    def mark_uploaded(self, uid: str, at: float) -> None:
        with self._tx() as con:
            con.execute("UPDATE outbox SET uploaded_at = ?, last_error = NULL WHERE uid = ?",
                        (at, uid))

    def mark_failed(self, uid: str, error: str, next_attempt: float) -> None:
        with self._tx() as con:
            con.execute("UPDATE outbox SET attempts = attempts + 1, last_error = ?, "
                        "next_attempt = ? WHERE uid = ?", (error, next_attempt, uid))

    def mark_rejected(self, uid: str, message: str) -> None:
        with self._tx() as con:
            con.execute("UPDATE outbox SET rejected = ?, attempts = attempts + 1 WHERE uid = ?",
                        (message, uid))

    def counts(self) -> dict[str, int]:
        row = self.con.execute(
            "SELECT count(*), count(uploaded_at), count(rejected) FROM outbox").fetchone()
        total, up, rej = (int(x) for x in row)
        return {"total": total, "uploaded": up, "rejected": rej, "pending": total - up - rej}

    # -- where the probe is ------------------------------------------------------------
    def network(self) -> tuple[Network, float | None]:
        row = self.con.execute("SELECT probe_cc, probe_asn, probe_ip, network_name, "
                               "looked_up_at FROM network WHERE id = 1").fetchone()
        if row is None:
            return Network(), None
        return Network(row[0], row[1], row[2], row[3]), float(row[4])

    def save_network(self, net: Network, at: float) -> None:
        with self._tx() as con:
            con.execute("INSERT OR REPLACE INTO network VALUES (1, ?, ?, ?, ?, ?)",
                        (net.probe_cc, net.probe_asn, net.probe_ip, net.network_name, at))
