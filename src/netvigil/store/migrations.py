"""Ordered schema migrations for the DuckDB store.

Why migrations instead of ``CREATE TABLE IF NOT EXISTS``: a store is a user's long-lived
archive (months of series); a new NetVigil release must be able to open yesterday's file and
bring it forward without losing data, and an old release must refuse a file written by a newer
one rather than silently mis-reading it. Each migration is applied once, in order, inside one
transaction together with its row in ``schema_migrations``, so a store is never half-migrated.

Append new migrations at the end; never edit or reorder a released one.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from netvigil.model.errors import StoreError


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "entities, series, points, state",
        (
            """
            CREATE TABLE entities (
                type VARCHAR NOT NULL,
                code VARCHAR NOT NULL,
                name VARCHAR,
                parent VARCHAR,          -- fqid of the parent entity, e.g. country/KZ
                PRIMARY KEY (type, code)
            )
            """,
            """
            CREATE TABLE series (
                entity_type VARCHAR NOT NULL,
                entity_code VARCHAR NOT NULL,
                signal VARCHAR NOT NULL,
                step BIGINT NOT NULL,    -- grid step in seconds (see Store docstring)
                source VARCHAR NOT NULL, -- first writer, e.g. 'import:kz.csv' or 'ioda'
                PRIMARY KEY (entity_type, entity_code, signal)
            )
            """,
            """
            CREATE TABLE points (
                entity_type VARCHAR NOT NULL,
                entity_code VARCHAR NOT NULL,
                signal VARCHAR NOT NULL,
                time BIGINT NOT NULL,    -- unix seconds, bin start
                value DOUBLE,            -- NULL = missing (distinct from 0 = measured nothing)
                PRIMARY KEY (entity_type, entity_code, signal, time)
            )
            """,
            """
            CREATE TABLE state (
                key VARCHAR PRIMARY KEY,
                value VARCHAR NOT NULL
            )
            """,
        ),
    ),
    Migration(
        2,
        "alerts and events",
        (
            """
            CREATE TABLE alerts (
                entity_type VARCHAR NOT NULL,
                entity_code VARCHAR NOT NULL,
                signal VARCHAR NOT NULL,
                method VARCHAR NOT NULL,
                seq INTEGER NOT NULL,    -- position in the replaced batch: keeps order stable
                time BIGINT NOT NULL,
                level INTEGER NOT NULL,
                value DOUBLE,
                history_value DOUBLE,
                condition VARCHAR NOT NULL
            )
            """,
            """
            CREATE TABLE events (
                id VARCHAR NOT NULL,
                entity_type VARCHAR NOT NULL,
                entity_code VARCHAR NOT NULL,
                entity_name VARCHAR NOT NULL,
                start_time BIGINT NOT NULL,
                end_time BIGINT,         -- NULL while ongoing
                status VARCHAR NOT NULL,
                scope VARCHAR NOT NULL,
                kind VARCHAR NOT NULL,
                score DOUBLE,
                confidence DOUBLE,
                min_ratio DOUBLE,
                evidence VARCHAR NOT NULL, -- JSON list, one object per signal
                rules VARCHAR[] NOT NULL
            )
            """,
        ),
    ),
    Migration(
        3,
        "imports bookkeeping and step grid origin",
        (
            """
            CREATE TABLE imports (
                id BIGINT NOT NULL,
                file_name VARCHAR NOT NULL,
                sha256 VARCHAR NOT NULL,
                format VARCHAR NOT NULL,
                rows_read BIGINT NOT NULL,
                rows_written BIGINT NOT NULL,
                rows_skipped BIGINT NOT NULL,
                inserted BIGINT NOT NULL,
                updated BIGINT NOT NULL,
                unchanged BIGINT NOT NULL,
                source_names VARCHAR[] NOT NULL, -- wire names seen, e.g. ping-slash24
                imported_at BIGINT NOT NULL      -- unix seconds
            )
            """,
            # Grid origin (time modulo step of the first point) for series whose step was
            # inferred from data that is not aligned to multiples of the step.
            "ALTER TABLE series ADD COLUMN origin BIGINT NOT NULL DEFAULT 0",
            "ALTER TABLE series ADD COLUMN declared_step BIGINT",
        ),
    ),
    Migration(
        4,
        "series bounds kept on write; per-series detector state",
        (
            # Bounds and counts of each series, maintained set-based by every write so that
            # listing, step inference and detection never rescan the points table.
            "ALTER TABLE series ADD COLUMN first_time BIGINT",
            "ALTER TABLE series ADD COLUMN last_time BIGINT",
            "ALTER TABLE series ADD COLUMN n_points BIGINT NOT NULL DEFAULT 0",
            """
            UPDATE series SET first_time = p.first, last_time = p.last, n_points = p.n
            FROM (SELECT entity_type, entity_code, signal, min(time) AS first,
                         max(time) AS last, count(*) AS n
                  FROM points GROUP BY ALL) p
            WHERE series.entity_type = p.entity_type AND series.entity_code = p.entity_code
              AND series.signal = p.signal
            """,
            # One row per (detector, series): where the detector stopped (``cursor`` = the
            # last bin it consumed) and its serialised state (moving window, inpainting
            # buffer, pending alert), so a new bin costs O(series), not O(history).
            """
            CREATE TABLE detector_state (
                method VARCHAR NOT NULL,
                entity_type VARCHAR NOT NULL,
                entity_code VARCHAR NOT NULL,
                signal VARCHAR NOT NULL,
                config VARCHAR NOT NULL,  -- digest of the rule the state was built with
                cursor BIGINT NOT NULL,   -- last time consumed (unix seconds)
                state BLOB NOT NULL,
                PRIMARY KEY (method, entity_type, entity_code, signal)
            )
            """,
        ),
    ),
    Migration(
        5,
        "points without the primary-key index",
        (
            # Why: the ART index of the 4-column key cost more than everything else in a
            # bulk write (9.4 of 35 s for 5M imported rows) and grows with history in memory.
            # Uniqueness of (entity_type, entity_code, signal, time) is kept by
            # ``Store.write_points`` (the only writer): a key is inserted only when it is
            # outside its series' stored [first_time, last_time] or not found inside it
            # (tests/test_store_writes.py checks it). Rows are re-laid in time order so
            # zonemaps let time-bounded reads skip old row groups.
            """
            CREATE TABLE points_v5 (
                entity_type VARCHAR NOT NULL,
                entity_code VARCHAR NOT NULL,
                signal VARCHAR NOT NULL,
                time BIGINT NOT NULL,    -- unix seconds, bin start
                value DOUBLE             -- NULL = missing (distinct from 0 = measured nothing)
            )
            """,
            """
            INSERT INTO points_v5 SELECT entity_type, entity_code, signal, time, value
            FROM points ORDER BY time, entity_type, entity_code, signal
            """,
            "DROP TABLE points",
            "ALTER TABLE points_v5 RENAME TO points",
        ),
    ),
    Migration(
        6,
        "series rewrite counter",
        (
            # Incremented by every write that changes the value of a stored row of the
            # series: a detector that saved its state before such a write cannot trust it
            # (a corrected bin behind its cursor), so it recomputes that series.
            "ALTER TABLE series ADD COLUMN rewrites BIGINT NOT NULL DEFAULT 0",
        ),
    ),
    Migration(
        7,
        "event assessment",
        (
            # Fusion and classification of an event (issue 8), a JSON object.
            "ALTER TABLE events ADD COLUMN assessment VARCHAR NOT NULL DEFAULT '{}'",
        ),
    ),
    Migration(
        8,
        "accepted OONI measurements",
        (
            # One row per distinct accepted measurement (OONI import and the collector
            # alike), its verdict facts only: the platform series of an hour are derived
            # from these rows, so they are a function of the set of measurements ever
            # accepted, whatever the order and batching of the files
            # (netvigil.store.ooni_ledger, docs/ooni.md).
            """
            CREATE TABLE ooni_measurements (
                key VARCHAR PRIMARY KEY,  -- measurement_uid, report+test+input+time, or sha256
                hour BIGINT NOT NULL,     -- measurement_start_time truncated to the hour
                time BIGINT NOT NULL,     -- measurement_start_time, unix seconds
                cc VARCHAR NOT NULL,
                asn BIGINT NOT NULL,      -- 0 = withheld
                network VARCHAR NOT NULL,
                test_name VARCHAR NOT NULL,
                platform VARCHAR,         -- NULL: counts in ooni-volume only
                outcome VARCHAR,          -- ok|anomaly|confirmed|failure, NULL = no verdict
                mechanisms VARCHAR NOT NULL,  -- comma-separated, '' = none
                tls_ms DOUBLE,
                speed DOUBLE,             -- 100 x target/control speed (sni_throttling)
                source VARCHAR NOT NULL,  -- first accepted by: ooni | collector
                accepted_at BIGINT NOT NULL
            )
            """,
        ),
    ),
)

LATEST_VERSION = MIGRATIONS[-1].version


def _ensure_migrations_table(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        """
        CREATE TABLE IF NOT EXISTS schema_migrations (
            version INTEGER PRIMARY KEY,
            name VARCHAR NOT NULL,
            applied_at TIMESTAMP NOT NULL DEFAULT current_timestamp
        )
        """
    )


def current_version(con: duckdb.DuckDBPyConnection) -> int:
    """The highest applied migration, 0 for an empty database.

    One statement, a missing table caught: every store open asks, and asking
    ``information_schema.tables`` first cost 5-10 ms a time here (DuckDB builds that view
    from every catalog entry), against 1 ms for the read (0.6 ms for the miss).
    """
    try:
        row = con.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()
    except duckdb.CatalogException:
        return 0
    return int(row[0]) if row else 0


def migrate(con: duckdb.DuckDBPyConnection, target: int = LATEST_VERSION) -> int:
    """Apply pending migrations up to ``target``; returns the resulting version.

    Raises StoreError if the database was written by a newer NetVigil (unknown version).
    ``target`` below the latest exists so tests can build an old-format store.
    """
    version = current_version(con)
    if version > LATEST_VERSION:
        raise StoreError(
            f"store schema version {version} is newer than this NetVigil understands "
            f"({LATEST_VERSION}); upgrade NetVigil"
        )
    for mig in MIGRATIONS:
        if mig.version <= version or mig.version > target:
            continue
        con.execute("BEGIN TRANSACTION")
        try:
            _ensure_migrations_table(con)
            for stmt in mig.statements:
                con.execute(stmt)
            con.execute(
                "INSERT INTO schema_migrations (version, name) VALUES (?, ?)",
                [mig.version, mig.name],
            )
            con.execute("COMMIT")
        except duckdb.Error as exc:
            con.execute("ROLLBACK")
            raise StoreError(f"migration {mig.version} ({mig.name}) failed: {exc}") from exc
        version = mig.version
    return version
