"""What the routes read, shared by ``/api/v1`` and ``/ioda/v2``: one reading per question.

Both APIs answer the same questions in two shapes; the questions (which entities, which
series downsampled how, which events in what order) are answered here once, the shapes in
api_v1.py and ioda_v2.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from netvigil.geo.entities import default_registry
from netvigil.model import Entity, EntityRef, EntityType, Event
from netvigil.model.alerts import Alert
from netvigil.model.series import Series
from netvigil.reports.chart import normalise
from netvigil.store.duck import Store

#: The ordinary level a normalised series is divided by: the median of the entity's present
#: values in the 7 days before the window (IODA's detectors use a 7-day history, anchors
#: §1.3; the demo chart's ``normalise`` takes the median before the event the same way).
ORDINARY_HISTORY_SECONDS = 7 * 86_400
DEFAULT_WINDOW_SECONDS = 7 * 86_400
REGISTRY_MATCHES = 500  # registry names searched per query (countries + regions: ~5,300)


class SeriesReader(Protocol):
    """What the chart and event routes read: :class:`~netvigil.store.duck.Store` or the
    in-memory :class:`~netvigil.serve.memory.SeriesSnapshot`, which answers alike."""

    def read_series(self, entity: EntityRef, signal: str, start: int | None = None,
                    until: int | None = None, *, grid: tuple[int, int] | None = None
                    ) -> Series: ...

    def read_events(self, entity: EntityRef | None = None, start: int | None = None,
                    until: int | None = None) -> list[Event]: ...

    def read_alerts(self, entity: EntityRef | None = None, start: int | None = None,
                    until: int | None = None) -> list[Alert]: ...


@dataclass(frozen=True)
class SeriesView:
    """One signal of one entity over a window, maybe downsampled and normalised."""

    entity: EntityRef
    signal: str
    start: int  # first bin start (inclusive)
    until: int  # end of the last bin (exclusive)
    step: int  # after downsampling
    native_step: int
    values: npt.NDArray[np.float64]
    ordinary: float | None  # the level 100% stands for (normalised views), else None


@dataclass(frozen=True)
class StoredSeries:
    """One row of the store's ``series`` table (bounds kept by every write)."""

    signal: str
    step: int
    origin: int
    first: int | None
    last: int | None


class Catalogue:
    """What the store knows about its entities and series, read in two statements.

    Every route used to ask the ``entities`` and ``series`` tables again (three to four
    small statements per request, ~3 ms each on a busy machine, as much as the points read
    itself after compaction). The catalogue is read once per store version
    (``cache.VersionedMemo`` in deps.py) and answers those lookups from dicts.
    """

    def __init__(self, store: Store) -> None:
        con = store.connection
        self.names: dict[EntityRef, tuple[str, EntityRef | None]] = {}
        for t, c, name, parent in con.execute(
                "SELECT type, code, name, parent FROM entities").fetchall():
            self.names[EntityRef(EntityType(t), c)] = (
                name or "", EntityRef.parse(parent) if parent else None)
        self.series: dict[EntityRef, list[StoredSeries]] = {}
        for t, c, sig, step, origin, first, last in con.execute(
                "SELECT entity_type, entity_code, signal, step, origin, first_time, last_time"
                " FROM series ORDER BY entity_type, entity_code, signal").fetchall():
            self.series.setdefault(EntityRef(EntityType(t), c), []).append(StoredSeries(
                str(sig), int(step), int(origin), None if first is None else int(first),
                None if last is None else int(last)))

    def signals(self, ref: EntityRef) -> list[StoredSeries]:
        return self.series.get(ref, [])

    def grid(self, ref: EntityRef, signal: str) -> tuple[int, int] | None:
        """(step, origin) of a stored series, as ``Store.series_grid`` reads it."""
        for s in self.signals(ref):
            if s.signal == signal:
                return s.step, s.origin
        return None


def entity_signals(cat: Catalogue, ref: EntityRef
                   ) -> list[tuple[str, int, int | None, int | None]]:
    """(signal, step, first, last) of the entity's stored series, by signal."""
    return [(s.signal, s.step, s.first, s.last) for s in cat.signals(ref)]


def find_entity(cat: Catalogue, ref: EntityRef) -> Entity | None:
    """The stored entity, or a bare one when it has series but no entities row, else None."""
    row = cat.names.get(ref)
    if row is not None:
        return complete(Entity(ref, row[0], row[1]))
    return complete(Entity(ref, "")) if cat.signals(ref) else None


def complete(entity: Entity) -> Entity:
    """Fill a missing name or parent from the entity registry (ISO 3166 via pycountry, AS
    names from the shipped table): the pipeline stores region series without naming them."""
    if entity.name and (entity.parent is not None or entity.type is EntityType.COUNTRY):
        return entity
    reg = default_registry()
    known = reg.get(entity.ref) if entity.type is not EntityType.ASN else None
    name = entity.name or (known.name if known is not None else reg.name(entity.ref))
    parent = entity.parent or (known.parent if known is not None else None)
    return Entity(entity.ref, name, parent, entity.attrs)


#: Entities the store knows: its entities table, plus those that only have series (the
#: pipeline writes region and AS series before anyone names them).
_KNOWN = """WITH known AS (
    SELECT type, code, name, parent FROM entities
    UNION ALL
    SELECT DISTINCT s.entity_type, s.entity_code, NULL, NULL FROM series s
    WHERE NOT EXISTS (SELECT 1 FROM entities e
                      WHERE e.type = s.entity_type AND e.code = s.entity_code)
) """


def search_entities(store: Store, text: str | None, entity_type: EntityType | None,
                    related_to: EntityRef | None, limit: int, offset: int = 0) -> list[Entity]:
    """Entities whose code or name contains ``text`` (case-insensitive), by type and code;
    ``related_to`` keeps the children of that entity (its regions and ASes)."""
    sql = _KNOWN + "SELECT type, code, name, parent FROM known WHERE true"
    params: list[object] = []
    if entity_type is not None:
        sql += " AND type = ?"
        params.append(entity_type.value)
    if text:
        # stored names, plus registry names of countries and regions the store has unnamed
        sql += (" AND (code ILIKE ? ESCAPE '\\' OR name ILIKE ? ESCAPE '\\'"
                " OR list_contains(?, type || '/' || code))")
        pat = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        named = [e.ref.fqid for t in (EntityType.COUNTRY, EntityType.REGION)
                 if entity_type in (None, t)
                 for e in default_registry().search(text, t, limit=REGISTRY_MATCHES)]
        params += [pat, pat, named]
    if related_to is not None:
        # a region's parent may be unset (older stores); ISO 3166-2 codes name the country
        sql += " AND (parent = ? OR (parent IS NULL AND type = 'region' AND code LIKE ?))"
        params += [related_to.fqid, f"{related_to.code}-%"]
    sql += " ORDER BY type, code LIMIT ? OFFSET ?"
    params += [limit, offset]
    return [complete(Entity(EntityRef(EntityType(t), c), n or "",
                            EntityRef.parse(p) if p else None))
            for t, c, n, p in store.connection.execute(sql, params).fetchall()]


def default_window(cat: Catalogue, ref: EntityRef, start: int | None,
                   until: int | None) -> tuple[int, int]:
    """Missing bounds: ``until`` = the entity's last stored point (+1 s), ``from`` = 7 days
    before ``until``, so a bare request shows the latest week the store holds."""
    if until is None:
        lasts = [la for _, _, _, la in entity_signals(cat, ref) if la is not None]
        until = (max(lasts) + 1) if lasts else 0
        if start is not None and until <= start:
            until = start + DEFAULT_WINDOW_SECONDS
    if start is None:
        start = until - DEFAULT_WINDOW_SECONDS
    return start, until


def downsample(values: npt.NDArray[np.float64], factor: int) -> npt.NDArray[np.float64]:
    """Mean of each run of ``factor`` bins, ignoring missing (NaN) ones; a run with no value
    stays NaN. IODA widens ``step`` the same way to fit ``maxPoints`` (anchors §1.7)."""
    if factor <= 1 or values.size == 0:
        return values
    n = math.ceil(values.size / factor)
    padded = np.full(n * factor, np.nan)
    padded[:values.size] = values
    blocks = padded.reshape(n, factor)
    present = ~np.isnan(blocks)
    counts = present.sum(axis=1)
    sums = np.where(present, blocks, 0.0).sum(axis=1)
    out = np.full(n, np.nan)
    np.divide(sums, counts, out=out, where=counts > 0)
    return out


def series_view(store: SeriesReader, cat: Catalogue, ref: EntityRef, signal: str, start: int,
                until: int, *, max_points: int | None, normalised: bool) -> SeriesView:
    """The signal's bins in [start, until), aligned to the series grid, padded with NaN to
    the window, downsampled to at most ``max_points`` and, when ``normalised``, divided by
    the ordinary level (:data:`ORDINARY_HISTORY_SECONDS`) × 100 (percent of ordinary)."""
    read_from = start - ORDINARY_HISTORY_SECONDS if normalised else start
    grid = cat.grid(ref, signal)
    raw = store.read_series(ref, signal, read_from, until, grid=grid)
    step = raw.step
    if len(raw):
        origin = raw.start % step  # read_series aligns to the series' grid
    else:
        origin = grid[1] if grid is not None else 0
    first = start + ((origin - start) % step)  # the first grid time >= start
    n = max(0, math.ceil((until - first) / step))
    window = np.full(n, np.nan)
    ordinary: float | None = None
    if len(raw):
        vals = raw.values
        if normalised:
            ratio = normalise(raw, start)
            if np.all(np.isnan(ratio)):  # no history before the window: its own median
                ratio = normalise(raw, until)
            present = ~np.isnan(ratio) & ~np.isnan(vals) & (ratio != 0)
            ordinary = float(np.median(vals[present] / ratio[present])) if present.any() else None
            vals = ratio * 100.0
        # a Series is contiguous on its grid: its bin k is the window's bin i0 + k (one
        # slice; the index arrays it replaces cost ~8x more per chart, bench_serve_load.py)
        i0 = (raw.start - first) // step
        lo, hi = max(0, -i0), min(len(raw), n - i0)
        if hi > lo:
            window[i0 + lo:i0 + hi] = vals[lo:hi]
    factor = 1 if not max_points or n <= max_points else math.ceil(n / max_points)
    return SeriesView(ref, signal, first, first + n * step, step * factor, step,
                      downsample(window, factor), ordinary)


ORDERS = ("time", "score", "name")


def order_events(events: list[Event], order: str) -> list[Event]:
    """IODA's ``orderBy``: ``time|score|name`` with an optional ``/asc`` or ``/desc``
    (default ascending for time and name, descending for score)."""
    key, _, direction = order.partition("/")
    if key not in ORDERS or direction not in ("", "asc", "desc"):
        raise ValueError(f"order must be one of {', '.join(ORDERS)} with optional /asc or "
                         f"/desc, got {order!r}")
    desc = direction == "desc" or (direction == "" and key == "score")
    if key == "time":
        out = sorted(events, key=lambda e: (e.start, e.entity, e.id))
    elif key == "score":
        out = sorted(events, key=lambda e: (e.score if e.score == e.score else -1.0, -e.start))
    else:
        out = sorted(events, key=lambda e: ((e.entity_name or e.entity.code).lower(), e.start))
    return out[::-1] if desc else out


def read_events(store: SeriesReader, *, entity: EntityRef | None, entity_type: EntityType | None,
                start: int | None, until: int | None) -> list[Event]:
    found = store.read_events(entity, start, until)
    if entity is None and entity_type is not None:
        found = [e for e in found if e.entity.type is entity_type]
    return found

