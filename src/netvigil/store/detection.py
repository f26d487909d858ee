"""Set-based reads and writes for detection: new points of many series, detector state,
alerts and events in bulk (one statement per batch, never one call per series).

A mixin of :class:`netvigil.store.duck.Store`; it uses only ``self._con``,
``self.transaction()`` and the Store's row helpers. Series are passed as key columns
(``entity_type``, ``entity_code``, ``signal``) plus an ``idx`` the caller chooses; results
come back as numpy columns keyed by that ``idx``, ordered by ``idx`` then time.

Why registered numpy columns: DuckDB joins a registered 70,000-row key table against the
points table in one scan, and zone maps on ``points.time`` (points are appended in time
order) let a literal ``time > lower bound`` skip every row group older than the oldest
cursor, so reading one new bin does not read history.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from netvigil.model import (
    Alert,
    EntityRef,
    EntityType,
    Event,
    EventKind,
    EventStatus,
    Level,
    Scope,
    SignalEvidence,
)
from netvigil.store.grouping import by_series

if TYPE_CHECKING:
    import duckdb

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
Obj = npt.NDArray[np.object_]
_NEG = -(2**62)


@dataclass(frozen=True, eq=False)
class SeriesKeys:
    """Key columns of many series (object arrays of str) with the caller's index."""

    entity_type: Obj
    entity_code: Obj
    signal: Obj

    def __len__(self) -> int:
        return len(self.signal)

    def take(self, idx: npt.NDArray[np.intp] | I64) -> SeriesKeys:
        return SeriesKeys(self.entity_type[idx], self.entity_code[idx], self.signal[idx])


@dataclass(frozen=True, eq=False)
class DetectionView:
    """Every stored series with its grid, bounds and (if any) its detector state."""

    keys: SeriesKeys
    step: I64
    origin: I64
    n_points: I64
    last_time: I64  # _NEG when the series has no point
    rewrites: I64  # writes that changed a stored value (series.rewrites)
    has_state: npt.NDArray[np.bool_]
    config: Obj  # str or None
    cursor: I64  # _NEG without state
    state: Obj  # bytes or None


@dataclass(frozen=True, eq=False)
class PointColumns:
    idx: I64
    time: I64
    value: F64  # NaN = missing


def _nan_filled(column: Any) -> F64:
    """A fetched float column with NULLs as NaN, written into the fetched array itself
    when it is a float64 one (``np.ma.filled`` copies it: 332 MB of fresh pages per
    41.5 M-point read)."""
    data = np.ma.getdata(column)
    mask = np.ma.getmask(column)
    if data.dtype != np.float64 or not data.flags.writeable:
        return np.asarray(np.ma.filled(np.ma.asarray(column, dtype=np.float64), np.nan))
    if mask is not np.ma.nomask:
        np.copyto(data, np.nan, where=mask)
    return np.asarray(data)


def _obj(values: Sequence[Any] | npt.NDArray[Any]) -> Obj:
    out = np.empty(len(values), dtype=object)
    out[:] = list(values) if not isinstance(values, np.ndarray) else values
    return out


class _LazyJson(Mapping[str, Any]):
    """A stored JSON object parsed on first access: an incremental event rebuild reads the
    events of every touched entity but looks into the assessment of few of them (the
    rest keep their rows), and parsing it is most of the read's cost."""

    __slots__ = ("_text", "_value")

    def __init__(self, text: str) -> None:
        self._text = text
        self._value: dict[str, Any] | None = None

    def _get(self) -> dict[str, Any]:
        if self._value is None:
            self._value = json.loads(self._text)
        return self._value

    def __getitem__(self, key: str) -> Any:
        return self._get()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._get())

    def __len__(self) -> int:
        return len(self._get())


class DetectionTables:
    _con: duckdb.DuckDBPyConnection

    def transaction(self) -> AbstractContextManager[None]:  # provided by Store
        raise NotImplementedError

    @staticmethod
    def _evidence_json(signals: Sequence[SignalEvidence]) -> str:  # provided by Store
        raise NotImplementedError

    @staticmethod
    def _evidence_from_json(text: str) -> tuple[SignalEvidence, ...]:  # provided by Store
        raise NotImplementedError

    @contextmanager
    def _registered(self, name: str, cols: dict[str, Any]) -> Iterator[None]:
        self._con.register(name, cols)
        try:
            yield
        finally:
            self._con.unregister(name)

    @staticmethod
    def _key_cols(keys: SeriesKeys, **extra: Any) -> dict[str, Any]:
        return {"entity_type": keys.entity_type, "entity_code": keys.entity_code,
                "signal": keys.signal, "idx": np.arange(len(keys), dtype=np.int64), **extra}

    # -- reads ------------------------------------------------------------------------
    def detection_view(self, method: str, states: bool = True) -> DetectionView:
        """One statement: series rows joined with their ``method`` state. ``states=False``
        leaves the state bytes out (``state`` all None, ``has_state`` still true where a
        state is stored): a shard plan needs only cursors, and the bytes are 1.8 KB a
        series (126 MB at 70,000 series, 0.5-0.6 s to read)."""
        res = self._con.execute(
            f"""
            SELECT s.entity_type, s.entity_code, s.signal, s.step, s.origin, s.n_points,
                   s.last_time, s.rewrites, d.config, d.cursor,
                   {'d.state' if states else 'NULL::BLOB AS state'}
            FROM series s LEFT JOIN detector_state d
              ON d.method = ? AND d.entity_type = s.entity_type
             AND d.entity_code = s.entity_code AND d.signal = s.signal
            ORDER BY s.entity_type, s.entity_code, s.signal
            """,
            [method],
        ).fetchnumpy()

        def ints(name: str, fill: int) -> I64:
            col = np.ma.asarray(res[name])
            return np.asarray(np.ma.filled(col.astype(np.int64), fill), dtype=np.int64)

        state = _obj(np.ma.filled(np.ma.asarray(res["state"], dtype=object), None))
        config = _obj(np.ma.filled(np.ma.asarray(res["config"], dtype=object), None))
        keys = SeriesKeys(_obj(res["entity_type"]), _obj(res["entity_code"]),
                          _obj(res["signal"]))
        # cursor is NOT NULL in detector_state: NULL here means no state row
        has_state = ~np.ma.getmaskarray(np.ma.asarray(res["cursor"]))
        return DetectionView(
            keys, ints("step", 0), ints("origin", 0), ints("n_points", 0),
            ints("last_time", _NEG), ints("rewrites", 0), has_state,
            config, ints("cursor", _NEG), state)

    def read_points_after(self, keys: SeriesKeys, after: I64) -> PointColumns:
        """Rows (NULL values as NaN) of each series with ``time > after[idx]``, by idx, time.

        One statement. The smallest ``after`` is also given as a literal bound so DuckDB
        skips the row groups before it (pass ``-2**62`` to read whole series). Streamed
        (a relation, not a materialised result) and without ``ORDER BY``: the rows are put
        in order by :func:`netvigil.store.grouping.by_series`, a third of the fresh memory
        pages and CPU of DuckDB's sort at 41.5 M points (the module's docstring).
        """
        if len(keys) == 0:
            return PointColumns(np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0))
        after = np.ascontiguousarray(after, dtype=np.int64)
        lo = int(after.min())
        with self._registered("_det_q", self._key_cols(keys, after=after)):
            res = self._con.sql(
                f"""
                SELECT q.idx, p.time, p.value FROM points p
                JOIN _det_q q USING (entity_type, entity_code, signal)
                WHERE p.time > {lo} AND p.time > q.after
                """
            ).fetchnumpy()
        return PointColumns(*by_series(res["idx"], res["time"], _nan_filled(res["value"]),
                                       len(keys)))

    def read_alerts_of(self, entities: Sequence[EntityRef],
                       since: Sequence[int] | None = None) -> list[Alert]:
        """Alerts of these entities (one statement), by entity, signal, method, seq; with
        ``since``, only those of ``entities[i]`` at or after ``since[i]`` (the part of an
        entity's alerts an incremental event rebuild needs)."""
        if not entities:
            return []
        cols = {"entity_type": _obj([e.type.value for e in entities]),
                "entity_code": _obj([e.code for e in entities]),
                "since": np.asarray(since if since is not None else [_NEG] * len(entities),
                                    dtype=np.int64)}
        with self._registered("_det_e", cols):
            rows = self._con.execute(
                """
                SELECT a.entity_type, a.entity_code, a.signal, a.method, a.time, a.level,
                       a.value, a.history_value, a.condition FROM alerts a
                JOIN _det_e q USING (entity_type, entity_code)
                WHERE a.time >= q.since
                ORDER BY a.entity_type, a.entity_code, a.signal, a.method, a.seq
                """
            ).fetchall()
        nan = float("nan")
        return [
            Alert(EntityRef(EntityType(t), c), s, int(tm), Level(int(lv)),
                  nan if v is None else float(v), nan if h is None else float(h), m, cond)
            for t, c, s, m, tm, lv, v, h, cond in rows
        ]

    def read_events_of(self, entities: Sequence[EntityRef],
                       window: Sequence[tuple[int, int]] | None = None,
                       ) -> dict[EntityRef, list[Event]]:
        """The stored events of these entities (one statement), by start then id; with
        ``window``, only those of ``entities[i]`` that start at or after ``window[i][0]``,
        are ongoing or end after ``window[i][1]`` (what an incremental national roll-up
        needs of a country's untouched children, ``events/runner.py``).

        Why not ``read_events()``: an incremental rebuild needs the events of the touched
        entities and their siblings only, and parsing every stored event's JSON costs
        seconds per run at 100,000+ events."""
        out: dict[EntityRef, list[Event]] = {e: [] for e in entities}
        if not entities:
            return out
        lo, hi = (np.asarray([w[0] for w in window], np.int64),
                  np.asarray([w[1] for w in window], np.int64)) if window is not None else \
            (np.full(len(entities), _NEG, np.int64), np.full(len(entities), _NEG, np.int64))
        cols = {"entity_type": _obj([e.type.value for e in entities]),
                "entity_code": _obj([e.code for e in entities]), "lo": lo, "hi": hi}
        with self._registered("_det_v", cols):
            rows = self._con.execute(
                """
                SELECT id, entity_type, entity_code, entity_name, start_time, end_time, status,
                       scope, kind, score, confidence, min_ratio, evidence, rules, assessment
                FROM events JOIN _det_v q USING (entity_type, entity_code)
                WHERE start_time >= q.lo OR end_time IS NULL OR end_time > q.hi
                ORDER BY start_time, id
                """
            ).fetchall()
        def num(x: Any) -> float:
            return float("nan") if x is None else float(x)

        refs = {(e.type.value, e.code): e for e in entities}
        statuses = {m.value: m for m in EventStatus}
        scopes = {m.value: m for m in Scope}
        kinds = {m.value: m for m in EventKind}
        for (eid, t, c, name, st, en, status, scope, kind, score, conf, mr, ev, rules,
             assessment) in rows:
            ref = refs[(t, c)]
            out[ref].append(Event(
                id=eid, entity=ref, entity_name=name, start=int(st),
                end=None if en is None else int(en), status=statuses[status],
                scope=scopes[scope], kind=kinds[kind], score=num(score),
                confidence=num(conf), min_ratio=num(mr),
                signals=self._evidence_from_json(ev), rules=tuple(rules),
                assessment=_LazyJson(assessment)))
        return out

    def entity_parents(self) -> list[tuple[str, str, str]]:
        """(type, code, parent fqid) of every stored entity with a parent, one statement:
        the hierarchy a detection run rolls up, without building 75,000 ``Entity`` rows."""
        return [(str(t), str(c), str(p)) for t, c, p in self._con.execute(
            "SELECT type, code, parent FROM entities WHERE parent IS NOT NULL").fetchall()]

    def entity_names(self, entities: Sequence[EntityRef]) -> dict[EntityRef, str]:
        """Stored names of these entities (one statement); entities without one are absent."""
        if not entities:
            return {}
        cols = {"type": _obj([e.type.value for e in entities]),
                "code": _obj([e.code for e in entities])}
        with self._registered("_det_n", cols):
            rows = self._con.execute(
                "SELECT type, code, name FROM entities SEMI JOIN _det_n USING (type, code)"
                " WHERE name IS NOT NULL"
            ).fetchall()
        return {EntityRef(EntityType(t), c): str(n) for t, c, n in rows}

    # -- writes (each inside the caller's transaction or its own) ---------------------
    def write_detector_states(self, method: str, keys: SeriesKeys, config: Sequence[str],
                              cursor: I64, state: Sequence[bytes]) -> None:
        """Upsert one state row per series, in one statement."""
        if len(keys) == 0:
            return
        cols = self._key_cols(keys, config=_obj(config),
                              cursor=np.ascontiguousarray(cursor, dtype=np.int64),
                              state=_obj(state))
        with self.transaction(), self._registered("_det_s", cols):
            self._con.execute(
                """
                INSERT INTO detector_state
                SELECT ?, entity_type, entity_code, signal, config, cursor, state::BLOB
                FROM _det_s
                ON CONFLICT (method, entity_type, entity_code, signal) DO UPDATE SET
                    config = excluded.config, cursor = excluded.cursor,
                    state = excluded.state
                """,
                [method],
            )

    def append_alerts(self, method: str, alerts: Sequence[Alert],
                      replace: SeriesKeys | None = None) -> None:
        """Append alerts (``seq`` continues each series' stored order); first delete every
        ``method`` alert of the ``replace`` series (those recomputed from scratch)."""
        with self.transaction():
            if replace is not None and len(replace):
                with self._registered("_det_r", self._key_cols(replace)):
                    self._con.execute(
                        "DELETE FROM alerts WHERE method = ? AND (entity_type, entity_code,"
                        " signal) IN (SELECT (entity_type, entity_code, signal) FROM _det_r)",
                        [method],
                    )
            if not alerts:
                return
            for a in alerts:
                if a.method != method:
                    raise ValueError(f"alert of {a.method} passed to append_alerts({method})")
            nan = float("nan")
            cols = {
                "entity_type": _obj([a.entity.type.value for a in alerts]),
                "entity_code": _obj([a.entity.code for a in alerts]),
                "signal": _obj([a.signal for a in alerts]),
                "ord": np.arange(len(alerts), dtype=np.int64),
                "time": np.fromiter((a.time for a in alerts), np.int64, len(alerts)),
                "level": np.fromiter((int(a.level) for a in alerts), np.int64, len(alerts)),
                "value": np.fromiter((nan if a.value != a.value else a.value
                                      for a in alerts), np.float64, len(alerts)),
                "history_value": np.fromiter((a.history_value for a in alerts), np.float64,
                                             len(alerts)),
                "condition": _obj([a.condition for a in alerts]),
            }
            with self._registered("_det_a", cols):
                self._con.execute(
                    """
                    INSERT INTO alerts
                    SELECT n.entity_type, n.entity_code, n.signal, ?,
                           (coalesce(m.last_seq, -1) + row_number() OVER (
                               PARTITION BY n.entity_type, n.entity_code, n.signal
                               ORDER BY n.time, n.ord))::INTEGER,
                           n.time, n.level::INTEGER,
                           CASE WHEN isnan(n.value) THEN NULL ELSE n.value END,
                           CASE WHEN isnan(n.history_value) THEN NULL
                                ELSE n.history_value END,
                           n.condition
                    FROM _det_a n LEFT JOIN (
                        SELECT entity_type, entity_code, signal, max(seq) AS last_seq
                        FROM alerts WHERE method = ? GROUP BY ALL
                    ) m USING (entity_type, entity_code, signal)
                    """,
                    [method, method],
                )

    def replace_events_of(self, entities: Sequence[EntityRef], events: Sequence[Event],
                          keep: Sequence[str] = ()) -> None:
        """Replace all events of ``entities`` (and stored events with the same ids) by
        ``events``: one DELETE and one INSERT for all of them. Stored events whose id is in
        ``keep`` stay as they are (an incremental rebuild leaves settled events alone)."""
        if not entities:
            return
        wanted = set(entities)
        for e in events:
            if e.entity not in wanted:
                raise ValueError(f"event {e.id} of {e.entity} not among the replaced entities")
        ordered = sorted(events, key=lambda e: (e.entity, e.start, e.id))
        ents = {"entity_type": _obj([e.type.value for e in entities]),
                "entity_code": _obj([e.code for e in entities])}
        nan = float("nan")
        with self.transaction(), self._registered("_det_e", ents), \
                self._registered("_det_k", {"id": _obj(list(keep) or [""])}):
            self._con.execute(
                "DELETE FROM events WHERE (entity_type, entity_code) IN"
                " (SELECT (entity_type, entity_code) FROM _det_e)"
                " AND id NOT IN (SELECT id FROM _det_k)"
            )
            if not ordered:
                return
            ids = _obj([e.id for e in ordered])
            cols = {
                "id": ids,
                "entity_type": _obj([e.entity.type.value for e in ordered]),
                "entity_code": _obj([e.entity.code for e in ordered]),
                "entity_name": _obj([e.entity_name for e in ordered]),
                "start_time": np.fromiter((e.start for e in ordered), np.int64, len(ordered)),
                "end_time": np.fromiter((-1 if e.end is None else e.end for e in ordered),
                                        np.int64, len(ordered)),
                "status": _obj([e.status.value for e in ordered]),
                "scope": _obj([e.scope.value for e in ordered]),
                "kind": _obj([e.kind.value for e in ordered]),
                "score": np.array([e.score for e in ordered], dtype=np.float64),
                "confidence": np.array([e.confidence for e in ordered], dtype=np.float64),
                "min_ratio": np.array([nan if e.min_ratio != e.min_ratio else e.min_ratio
                                       for e in ordered], dtype=np.float64),
                "evidence": _obj([self._evidence_json(e.signals) for e in ordered]),
                "assessment": _obj([json.dumps(dict(e.assessment), allow_nan=False)
                                    for e in ordered]),
                "rules": _obj(["\x1f".join(e.rules) for e in ordered]),
                "has_end": np.array([e.end is not None for e in ordered]),
            }
            with self._registered("_det_v", cols):
                self._con.execute("DELETE FROM events WHERE id IN (SELECT id FROM _det_v)")
                self._con.execute(
                    """
                    INSERT INTO events
                    SELECT id, entity_type, entity_code, entity_name, start_time,
                           CASE WHEN has_end THEN end_time END, status, scope, kind,
                           CASE WHEN isnan(score) THEN NULL ELSE score END,
                           CASE WHEN isnan(confidence) THEN NULL ELSE confidence END,
                           CASE WHEN isnan(min_ratio) THEN NULL ELSE min_ratio END,
                           evidence,
                           CASE WHEN rules = '' THEN []::VARCHAR[]
                                ELSE string_split(rules, chr(31)) END,
                           assessment
                    FROM _det_v
                    """
                )
