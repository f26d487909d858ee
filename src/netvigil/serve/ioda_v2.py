"""``/ioda/v2``: the subset of IODA's API v2 that dashboards and scripts use, in IODA's shapes.

Every response is IODA's envelope (ioda-api ``src/Response/Envelope.php``):
``{type, metadata: {requestTime, responseTime}, requestParameters, error, perf, data,
copyright}``; on a bad request ``error`` is the message, ``data`` null and the status 400,
as IODA's controllers answer (``$this->json($env, 400)``). Where each ``data`` field comes
from is in docs/api.md ("IODA v2 subset"); in short:

* ``entities/query`` → ``[{code, name, type, attrs}]`` (``MetadataEntityNormalizer``);
* ``signals/raw/{type}/{code}`` → ``[[{entityType, entityCode, entityName, entityFqid,
  datasource, subtype, from, until, step, nativeStep, values}]]``, one inner list per
  entity (``TimeSeriesNormalizer``, ``SignalsController::lookup``; ``step`` widens to fit
  ``maxPoints``);
* ``outages/alerts`` → ``[{datasource, entity, time, level, condition, value,
  historyValue, method}]`` (``OutagesAlertNormalizer``);
* ``outages/events`` → CODF records by default (``format=codf``; :mod:`netvigil.events.codf`,
  the one CODF writer) or ``format=ioda`` ``{entity, from, until, score, datasource, method,
  alerts?}`` (``OutagesEventNormalizer``);
* ``outages/summary`` → ``[{scores: {overall, "<datasource>.<method>": sum}, event_cnt,
  entity}]`` (``OutagesEventsService::computeSummaryScores``).

Datasource names are IODA's where one exists (``probing`` is ``ping-slash24``, ``telescope``
``merit-nt``: the inverse of :data:`netvigil.series.ioda_format.DATASOURCE_NAMES`, the
importer's table), NetVigil's otherwise (``platform:whatsapp``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, HTTPException, Query, Request

from netvigil.events.codf import to_codf
from netvigil.model import Entity, EntityRef, EntityType, Event
from netvigil.model.alerts import Alert
from netvigil.model.entities import parse_entity_type
from netvigil.model.errors import InvalidEntity
from netvigil.model.times import iso_utc
from netvigil.series.ioda_format import DATASOURCE_NAMES
from netvigil.serve import queries
from netvigil.serve.cache import CACHE_HEADER, CachedAnswer, ResponseCache
from netvigil.serve.deps import SeriesSource, SourceCatalogue, StoreCatalogue, StoreReader
from netvigil.serve.errors import ENVELOPED_PREFIXES
from netvigil.serve.memory import SeriesSnapshot
from netvigil.serve.params import JSONBody, entity_ref, parse_when

router = APIRouter(prefix="/ioda/v2", tags=["ioda v2"], default_response_class=JSONBody)

COPYRIGHT = "NetVigil data (Apache-2.0 software); see docs/api.md for sources and caveats."
#: NetVigil signal -> IODA datasource: the first IODA name the importer maps to each signal.
IODA_DATASOURCE: dict[str, str] = {}
for _ioda, _ours in DATASOURCE_NAMES.items():
    IODA_DATASOURCE.setdefault(_ours, _ioda)
OUR_SIGNAL = {v: k for k, v in IODA_DATASOURCE.items()}
DEFAULT_LIMIT = 500  # IODA's outages default
MAX_ENTITIES = 10_000  # entities/query without a limit


def datasource(signal: str) -> str:
    return IODA_DATASOURCE.get(signal, signal)


def signal_of(ds: str) -> str:
    return OUR_SIGNAL.get(ds, DATASOURCE_NAMES.get(ds, ds))


class IodaError(Exception):
    """A bad request answered inside the envelope (IODA's 400 with ``error`` set)."""


def envelope(request: Request, kind: str, params: dict[str, Any],
             body: Callable[[], Any], source: Any = None) -> JSONBody:
    """Run ``body`` and wrap its result (or its failure) in IODA's envelope.

    When ``source`` is the in-memory snapshot (memory.py), ``data`` is kept serialised per
    (snapshot, URL) and reused: the envelope itself carries request times, so it is built
    for every request around the kept bytes (``orjson.Fragment``); ``x-netvigil-cache``
    says hit or miss as for /api/v1 (cache.py)."""
    t0 = time.time()
    started = time.perf_counter()
    error: str | None = None
    data: Any = None
    status = 200
    kept: str | None = None
    try:
        if isinstance(source, SeriesSnapshot):
            data, kept = _kept_data(request, source, body)
        else:
            data = body()
    except (IodaError, InvalidEntity) as exc:
        error, status = str(exc), 400
    except HTTPException as exc:
        error, status = str(exc.detail), exc.status_code
    return JSONBody({
        "type": kind,
        "metadata": {"requestTime": _gm(t0), "responseTime": _gm(time.time())},
        "requestParameters": params,
        "error": error,
        "perf": {"seconds": round(time.perf_counter() - started, 6)},
        "data": None if error else data,
        "copyright": COPYRIGHT,
    }, status_code=status, headers={CACHE_HEADER.decode(): kept} if kept else None)


def _kept_data(request: Request, snap: SeriesSnapshot, body: Callable[[], Any]
               ) -> tuple[orjson.Fragment, str]:
    cache: ResponseCache = request.app.state.ioda_data_cache
    version = ("snapshot", snap.serial)
    key = (request.scope["path"], bytes(request.scope.get("query_string", b"")))
    found = cache.get(version, key)
    if found is not None:
        cache.hits += 1
        return orjson.Fragment(found.body), "hit"
    cache.misses += 1
    raw = orjson.dumps(body(), option=orjson.OPT_SERIALIZE_NUMPY)
    cache.put(version, key, CachedAnswer(200, (), raw, None))
    return orjson.Fragment(raw), "miss"


def error_envelope(request: Request, status: int, message: str) -> JSONBody:
    """IODA's envelope for errors found before a route runs (validation, 404)."""
    now = _gm(time.time())
    return JSONBody({"type": "error", "metadata": {"requestTime": now, "responseTime": now},
                     "requestParameters": dict(request.query_params), "error": message,
                     "perf": None, "data": None, "copyright": COPYRIGHT}, status_code=status)


ENVELOPED_PREFIXES[router.prefix] = error_envelope


_gm_last: tuple[int, str] = (-1, "")  # the last second formatted: two per envelope


def _gm(ts: float) -> str:
    """PHP ``gmdate('c')``: ``2022-01-05T10:40:00+00:00``. Whole seconds, so the text of
    the current second is kept (one tuple swapped whole: safe across threads) instead of
    formatted twice per request."""
    global _gm_last
    second = int(ts)
    last = _gm_last
    if last[0] != second:
        last = _gm_last = (second, str(iso_utc(second)).replace("Z", "+00:00"))
    return last[1]


def _required_time(value: str | None, name: str) -> int:
    if value is None or value == "":
        raise IodaError(f"Missing required request parameter '{name}'")
    parsed = parse_when(value, name)
    assert parsed is not None
    return parsed


def _window(from_: str | None, until: str | None) -> tuple[int, int]:
    start, end = _required_time(from_, "from"), _required_time(until, "until")
    if start > end:
        raise IodaError(f"from ({start}) must be earlier than until ({end})")
    return start, end


def ioda_entity(e: Entity) -> dict[str, Any]:
    attrs = dict(e.attrs)
    if e.parent is not None:
        attrs.setdefault(f"{e.parent.type.value}_code", e.parent.code)
    return {"code": e.code, "name": e.name, "type": e.type.value, "attrs": attrs}


def _entity_for(cat: queries.Catalogue, ref: EntityRef, names: dict[EntityRef, Entity]
                ) -> Entity:
    if ref not in names:
        names[ref] = queries.find_entity(cat, ref) or Entity(ref, "")
    return names[ref]


def _filters(entity_type: str | None, entity_code: str | None
             ) -> tuple[EntityRef | None, EntityType | None]:
    if entity_type is None:
        if entity_code is not None:
            raise IodaError("entityCode needs entityType")
        return None, None
    if entity_code is None:
        return None, parse_entity_type(entity_type)
    ref = entity_ref(entity_type, entity_code)
    return ref, ref.type


# ---------------------------------------------------------------------- entities
@router.get("/entities/query", summary="IODA: search entities")
def entities_query(
    request: Request, store: StoreReader, cat: StoreCatalogue,
    entityType: str | None = None,  # noqa: N803 (IODA's parameter names)
    entityCode: str | None = None,  # noqa: N803
    relatedTo: Annotated[str | None, Query(description="type[/code]")] = None,  # noqa: N803
    search: str | None = None,
    limit: Annotated[int | None, Query(ge=1, le=10_000)] = None,
    page: Annotated[int, Query(ge=0)] = 0,
) -> JSONBody:
    params = {"entityType": entityType, "entityCode": entityCode, "relatedTo": relatedTo,
              "search": search, "limit": limit, "page": page}

    def body() -> list[dict[str, Any]]:
        etype = parse_entity_type(entityType) if entityType else None
        if entityCode is not None:
            if etype is None:
                raise IodaError("entityCode needs entityType")
            found = queries.find_entity(cat, entity_ref(etype.value, entityCode))
            return [ioda_entity(found)] if found is not None else []
        related = None
        if relatedTo:
            rtype, _, rcode = relatedTo.partition("/")
            if not rcode:
                raise IodaError("relatedTo needs type/code, e.g. country/KZ")
            related = entity_ref(rtype, rcode)
        n = limit or MAX_ENTITIES
        found_all = queries.search_entities(store, search, etype, related, n, offset=n * page)
        return [ioda_entity(e) for e in found_all]

    return envelope(request, "entities", params, body)


# ---------------------------------------------------------------------- signals
@router.get("/signals/raw/{entityType}/{entityCode}", summary="IODA: raw signals")
def signals_raw(
    request: Request, store: SeriesSource, cat: SourceCatalogue,
    entityType: str, entityCode: str,  # noqa: N803
    from_: Annotated[str | None, Query(alias="from", description="unix seconds")] = None,
    until: Annotated[str | None, Query(description="unix seconds")] = None,
    datasource_: Annotated[str | None, Query(alias="datasource")] = None,
    sourceParams: str | None = None,  # noqa: N803 (accepted, unused: no per-source options)
    maxPoints: Annotated[int | None, Query(ge=1, le=100_000)] = None,  # noqa: N803
) -> JSONBody:
    params = {"from": from_, "until": until, "datasource": datasource_,
              "sourceParams": sourceParams, "maxPoints": maxPoints}

    def body() -> list[list[dict[str, Any]]]:
        start, end = _window(from_, until)
        out = []
        for code in entityCode.split(","):  # IODA: comma-separated codes
            ref = entity_ref(entityType, code)
            ent = queries.find_entity(cat, ref)
            if ent is None:
                raise IodaError(f"cannot find corresponding metadata entity {ref.fqid}")
            stored = [s for s, _, _, _ in queries.entity_signals(cat, ref)]
            wanted = stored
            if datasource_:
                wanted = [s for s in stored if s == signal_of(datasource_)]
                if not wanted:
                    raise IodaError(f"invalid datasource {datasource_} (must be one of the "
                                    f"following [{', '.join(datasource(s) for s in stored)}])")
            out.append([_ioda_series(store, cat, ent, s, start, end, maxPoints)
                        for s in wanted])
        return out

    return envelope(request, "signals", params, body, store)


def _ioda_series(store: queries.SeriesReader, cat: queries.Catalogue, ent: Entity,
                 signal: str, start: int, end: int, max_points: int | None) -> dict[str, Any]:
    view = queries.series_view(store, cat, ent.ref, signal, start, end,
                               max_points=max_points, normalised=False)
    return {"entityType": ent.type.value, "entityCode": ent.code, "entityName": ent.name,
            "entityFqid": ent.ref.fqid, "datasource": datasource(signal), "subtype": "",
            "from": view.start, "until": view.until, "step": view.step,
            "nativeStep": view.native_step, "values": view.values}


# ---------------------------------------------------------------------- outages
@router.get("/outages/alerts", summary="IODA: alerts")
def outages_alerts(
    request: Request, store: StoreReader, cat: StoreCatalogue,
    from_: Annotated[str | None, Query(alias="from")] = None,
    until: str | None = None,
    entityType: str | None = None,  # noqa: N803
    entityCode: str | None = None,  # noqa: N803
    datasource_: Annotated[str | None, Query(alias="datasource")] = None,
    limit: Annotated[int, Query(ge=1, le=100_000)] = DEFAULT_LIMIT,
    page: Annotated[int, Query(ge=0)] = 0,
) -> JSONBody:
    params = {"from": from_, "until": until, "entityType": entityType,
              "entityCode": entityCode, "datasource": datasource_, "limit": limit, "page": page}

    def body() -> list[dict[str, Any]]:
        start, end = _window(from_, until)
        ref, etype = _filters(entityType, entityCode)
        found = [a for a in store.read_alerts(ref, start, end)
                 if (etype is None or a.entity.type is etype)
                 and (not datasource_ or a.signal == signal_of(datasource_))]
        found.sort(key=lambda a: (a.time, a.entity, a.signal))
        names: dict[EntityRef, Entity] = {}
        return [_ioda_alert(a, _entity_for(cat, a.entity, names))
                for a in found[limit * page: limit * (page + 1)]]

    return envelope(request, "outages.alerts", params, body)


def _ioda_alert(a: Alert, ent: Entity) -> dict[str, Any]:
    return {"datasource": datasource(a.signal), "entity": ioda_entity(ent), "time": a.time,
            "level": a.level.label, "condition": a.condition, "value": a.value,
            "historyValue": a.history_value, "method": a.method}


@router.get("/outages/events", summary="IODA: events (CODF by default)")
def outages_events(
    request: Request, store: SeriesSource, cat: SourceCatalogue,
    from_: Annotated[str | None, Query(alias="from")] = None,
    until: str | None = None,
    entityType: str | None = None,  # noqa: N803
    entityCode: str | None = None,  # noqa: N803
    datasource_: Annotated[str | None, Query(alias="datasource")] = None,
    includeAlerts: bool = False,  # noqa: N803
    format: str = "codf",  # noqa: A002
    orderBy: str = "time/asc",  # noqa: N803
    limit: Annotated[int, Query(ge=1, le=100_000)] = DEFAULT_LIMIT,
    page: Annotated[int, Query(ge=0)] = 0,
) -> JSONBody:
    params = {"from": from_, "until": until, "entityType": entityType,
              "entityCode": entityCode, "datasource": datasource_,
              "includeAlerts": includeAlerts, "format": format, "orderBy": orderBy,
              "limit": limit, "page": page}

    def body() -> list[dict[str, Any]]:
        if format not in ("codf", "ioda"):
            raise IodaError(f"format must be codf or ioda, got {format!r}")
        start, end = _window(from_, until)
        events = _events(store, start, end, entityType, entityCode, datasource_)
        try:
            events = queries.order_events(events, orderBy)
        except ValueError as exc:
            raise IodaError(str(exc)) from None
        events = events[limit * page: limit * (page + 1)]
        if format == "codf":
            return [to_codf(e, until=end) for e in events]
        names: dict[EntityRef, Entity] = {}
        return [_ioda_event(store, cat, e, end, includeAlerts, names) for e in events]

    return envelope(request, "outages.events", params, body, store)


def _events(store: queries.SeriesReader, start: int, end: int, entity_type: str | None,
            entity_code: str | None, ds: str | None) -> list[Event]:
    ref, etype = _filters(entity_type, entity_code)
    found = queries.read_events(store, entity=ref, entity_type=etype, start=start, until=end)
    if ds:
        sig = signal_of(ds)
        found = [e for e in found if any(s.signal == sig for s in e.signals)]
    return found


def _ioda_event(store: queries.SeriesReader, cat: queries.Catalogue, e: Event, end: int,
                include_alerts: bool, names: dict[EntityRef, Entity]) -> dict[str, Any]:
    ent = _entity_for(cat, e.entity, names)
    sources = sorted({datasource(s.signal) for s in e.signals})
    methods = sorted({s.method for s in e.signals})
    out: dict[str, Any] = {
        "entity": ioda_entity(ent), "from": e.start,
        "until": e.end if e.end is not None else end, "score": e.score,
        # OutagesEvent: one source's name, or "overall" when alerts of several were merged
        "datasource": sources[0] if len(sources) == 1 else "overall",
        "method": methods[0] if len(methods) == 1 else "multiple",
    }
    if include_alerts:
        stop = e.end if e.end is not None else end
        alerts = [a for a in store.read_alerts(e.entity, e.start, stop + 1)
                  if any(a.signal == s.signal for s in e.signals)]
        out["alerts"] = [_ioda_alert(a, ent) for a in alerts]
    return out


@router.get("/outages/summary", summary="IODA: per-entity summary scores")
def outages_summary(
    request: Request, store: StoreReader, cat: StoreCatalogue,
    from_: Annotated[str | None, Query(alias="from")] = None,
    until: str | None = None,
    entityType: str | None = None,  # noqa: N803
    entityCode: str | None = None,  # noqa: N803
    orderBy: str = "score/desc",  # noqa: N803
    limit: Annotated[int | None, Query(ge=1, le=100_000)] = None,
    page: Annotated[int, Query(ge=0)] = 0,
) -> JSONBody:
    params = {"from": from_, "until": until, "entityType": entityType,
              "entityCode": entityCode, "orderBy": orderBy, "limit": limit, "page": page}

    def body() -> list[dict[str, Any]]:
        start, end = _window(from_, until)
        by_entity: dict[EntityRef, list[Event]] = {}
        for e in _events(store, start, end, entityType, entityCode, None):
            by_entity.setdefault(e.entity, []).append(e)
        names: dict[EntityRef, Entity] = {}
        rows = [_summary_row(_entity_for(cat, ref, names), evs)
                for ref, evs in by_entity.items()]
        key, _, direction = orderBy.partition("/")
        if key not in ("score", "name", "time") or direction not in ("", "asc", "desc"):
            raise IodaError(f"orderBy must be score|name with /asc or /desc, got {orderBy!r}")
        if key == "name":
            rows.sort(key=lambda r: str(r["entity"]["name"]))
        else:  # IODA orders "time" summaries by score too
            rows.sort(key=lambda r: float(r["scores"]["overall"]))
        if direction == "desc" or (direction == "" and key != "name"):
            rows.reverse()
        if limit:
            rows = rows[limit * page: limit * (page + 1)]
        return rows

    return envelope(request, "outages.summary", params, body)


def _summary_row(ent: Entity, events: list[Event]) -> dict[str, Any]:
    """Per-source sums of the per-signal scores keyed ``datasource.method`` and ``overall``
    the sum of the merged events' products (computeSummaryScores); ``event_cnt`` counts the
    per-source events, as IODA counts them before merging."""
    scores: dict[str, float] = {}
    count = 0
    for e in events:
        for s in e.signals:
            k = f"{datasource(s.signal)}.{s.method}"
            scores[k] = scores.get(k, 0.0) + (s.score if s.score == s.score else 0.0)
            count += 1
    scores["overall"] = sum(e.score for e in events if e.score == e.score)
    return {"scores": scores, "event_cnt": count, "entity": ioda_entity(ent)}
