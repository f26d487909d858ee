"""The accepted-measurement ledger: table ``ooni_measurements`` (migration 8).

Why a ledger and not per-import sums: an hour's OONI measurements arrive in several files
(late uploads in a later bucket, the collector's probe uploads beside an OONI import), and
a series value written from one import's sum would replace what an earlier import wrote.
So every distinct accepted measurement keeps one row of its verdict facts (keyed by
:func:`netvigil.sources.ooni.importer.identity`: ``measurement_uid``, else report + test +
input + start time, else the sha256 of its canonical JSON), and the hours a write touches
are derived again from *all* rows of those hours
(:func:`netvigil.sources.ooni.ledger.derive`): the series are a function of the set of
measurements ever accepted, whatever the order and batching. The cost: ~100 bytes of store
per measurement and one read of the touched hours' rows per import.

Only SQL lives here (the store tier); what the rows mean is the sources' business. The
methods satisfy :class:`netvigil.sources.ooni.ledger.Ledger`, so the OONI derivation never
imports the store (the ``sources-never-store`` contract).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from netvigil.store.duck import Store

TABLE = "ooni_measurements"
#: the columns callers hand to :meth:`OoniLedger.insert` (``source`` and ``accepted_at``
#: are set here)
COLUMNS = ("key", "hour", "time", "cc", "asn", "network", "test_name", "platform",
           "outcome", "mechanisms", "tls_ms", "speed")

Columns = dict[str, npt.NDArray[Any]]


class OoniLedger:
    """The ledger of one store. Writes join the caller's transaction (``store.transaction``)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.con = store.connection

    def insert(self, rows: Mapping[str, npt.NDArray[Any]], source: str) -> Columns:
        """Insert the rows whose key is not stored yet (the first of equal keys); returns
        those rows (columns, in the given order)."""
        n = len(rows["key"])
        if n == 0:
            return {c: np.asarray(rows[c]) for c in COLUMNS}
        stage = {c: np.asarray(rows[c]) for c in COLUMNS}
        # only the key and the row's position go to DuckDB for the anti-join (a numpy
        # object column converts at ~1 us a value: all twelve columns cost more than the
        # join); the inserted rows are taken from the stage by position
        _ooni_stage_keys = {"key": stage["key"], "i": np.arange(n, dtype=np.int64)}  # noqa: F841
        with self.store.transaction():
            got = self.con.execute(
                "SELECT min(s.i) AS i FROM _ooni_stage_keys s "
                f"ANTI JOIN {TABLE} m ON m.key = s.key GROUP BY s.key").fetchnumpy()
            idx = np.sort(np.asarray(got["i"], dtype=np.int64))
            out = {c: stage[c][idx] for c in COLUMNS}
            _ooni_new = out  # noqa: F841 (read by name in the SQL below)
            self.con.execute(
                f"INSERT INTO {TABLE} SELECT {', '.join(COLUMNS)}, ?, ? FROM _ooni_new",
                [source, int(time.time())])
            del _ooni_new, _ooni_stage_keys
        return out

    def _fetch(self, sql: str, params: Sequence[Any] | None = None) -> Columns:
        got = self.con.execute(sql, params or []).fetchnumpy()
        return {c: _plain(got[c]) for c in COLUMNS}

    def rows_in_hours(self, hours: npt.NDArray[np.int64]) -> Columns:
        """Every stored row of the given hours (all countries)."""
        _ooni_hour_list = {"hour": np.unique(np.asarray(hours, dtype=np.int64))}  # noqa: F841
        with self.store.transaction():
            self.con.execute("CREATE OR REPLACE TEMP TABLE _ooni_hours AS "
                             "SELECT * FROM _ooni_hour_list")
            del _ooni_hour_list
            out = self._fetch(f"SELECT {', '.join(COLUMNS)} FROM {TABLE} "
                              "SEMI JOIN _ooni_hours h USING (hour) ORDER BY key")
            self.con.execute("DROP TABLE _ooni_hours")
        return out

    def last_hours(self) -> dict[str, int]:
        """Per country, the last hour with a stored measurement."""
        return {str(cc): int(h) for cc, h in self.con.execute(
            f"SELECT cc, max(hour) FROM {TABLE} GROUP BY cc").fetchall()}

    def mechanisms(self) -> dict[str, set[str]]:
        """Per platform, every blocking mechanism any stored measurement named."""
        out: dict[str, set[str]] = {}
        for plat, mechs in self.con.execute(
                f"SELECT DISTINCT platform, mechanisms FROM {TABLE} "
                "WHERE platform IS NOT NULL AND mechanisms <> ''").fetchall():
            out.setdefault(str(plat), set()).update(str(mechs).split(","))
        return out

    def tested_hours(self, platforms: Sequence[str]) -> npt.NDArray[np.int64]:
        """Hours in which any of ``platforms`` has a stored measurement."""
        if not platforms:
            return np.empty(0, np.int64)
        got = self.con.execute(
            f"SELECT DISTINCT hour FROM {TABLE} WHERE list_contains(?, platform)",
            [list(platforms)]).fetchnumpy()
        return np.asarray(got["hour"], dtype=np.int64)

    def hour_counts(self, lo: int, hi: int, ccs: Sequence[str],
                    asns: Sequence[int]) -> list[tuple[str, int, int, int]]:
        """``(cc, asn, hour, measurements)`` in ``[lo, hi]`` of the columns of the given
        countries or ASes (every test name: ``ooni-volume``)."""
        return [(str(c), int(a), int(h), int(n)) for c, a, h, n in self.con.execute(
            f"SELECT cc, asn, hour, count(*) FROM {TABLE} WHERE hour BETWEEN ? AND ? "
            "AND (list_contains(?, cc) OR list_contains(?, asn)) GROUP BY ALL ORDER BY ALL",
            [lo, hi, list(ccs), [int(a) for a in asns]]).fetchall()]

    def count(self) -> int:
        row = self.con.execute(f"SELECT count(*) FROM {TABLE}").fetchone()
        return int(row[0]) if row else 0


def _plain(a: Any) -> npt.NDArray[Any]:
    """A fetched column as a plain array: masked (NULL) entries become None/NaN."""
    if isinstance(a, np.ma.MaskedArray):
        if a.dtype.kind == "f":
            return np.asarray(a.filled(np.nan))
        out = np.asarray(a.data, dtype=object)
        out[np.ma.getmaskarray(a)] = None
        return out
    return np.asarray(a)


def reassess_platform_blocks(store: Store, countries: Sequence[str]) -> list[str]:
    """Make the next detection run rebuild the platform-block events of the ASes of
    ``countries`` (rule ``evidence.circumvention-surge`` reads the country's Tor series,
    which an import just changed). Detection rebuilds an entity's events when one of its
    series is recomputed, and a series is recomputed when it has no detector state; so the
    states of those ASes' ``platform:*`` series are deleted (every detector's). Their
    alerts are recomputed from the same points, so only the assessment can change. The
    countries themselves need nothing: their Tor series changed, which already rebuilds
    them. Returns the AS codes marked."""
    if not countries:
        return []
    parents = [f"country/{c}" for c in countries]
    with store.transaction():
        rows = store.connection.execute(
            """
            SELECT DISTINCT e.code FROM entities e
            JOIN events v ON v.entity_type = 'asn' AND v.entity_code = e.code
            WHERE e.type = 'asn' AND list_contains(?, e.parent)
              AND v.kind = 'platform-block'
            ORDER BY 1
            """, [parents]).fetchall()
        codes = [str(r[0]) for r in rows]
        if codes:
            store.connection.execute(
                "DELETE FROM detector_state WHERE entity_type = 'asn' "
                "AND list_contains(?, entity_code) AND starts_with(signal, 'platform:')",
                [codes])
    return codes
