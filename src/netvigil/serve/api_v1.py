"""``/api/v1``: NetVigil's own API (entities, signals, events, alerts, summary).

Shapes are NetVigil's (events as :mod:`netvigil.events.serialize` writes them, CODF as
:mod:`netvigil.events.codf` writes it: one serializer each, shared with ``netvigil events``);
docs/api.md describes every route and OpenAPI is at ``/openapi.json`` (``/docs``).
Times in responses are ISO 8601 UTC with a ``Z``; times in queries are unix seconds or
ISO 8601.
"""

from __future__ import annotations

import functools
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import Response

from netvigil.events.codf import to_codf
from netvigil.events.serialize import event_to_dict, events_to_csv
from netvigil.model import Entity, EntityRef, EntityType, EventKind, Scope
from netvigil.model.alerts import Level
from netvigil.model.entities import parse_entity_type
from netvigil.model.errors import InvalidEntity
from netvigil.model.times import iso_utc
from netvigil.serve import queries
from netvigil.serve.deps import SeriesSource, SourceCatalogue, StoreCatalogue, StoreReader
from netvigil.serve.params import JSONBody, entity_ref, time_range
from netvigil.serve.severity import connectivity_ratio, severity_of, worst

router = APIRouter(prefix="/api/v1", tags=["api v1"], default_response_class=JSONBody)

TimeParam = Annotated[str | None, Query(description="unix seconds or ISO 8601 (UTC default)",
                                        examples=["2022-01-04T00:00:00Z", "1641254400"])]
MAX_LIMIT = 100_000
#: iso_utc of a chart's bounds, kept: four per chart at ~4 us each, and dashboards ask the
#: same few windows again and again (bench_serve_load.py: 23 windows)
_iso_bound = functools.lru_cache(maxsize=4096)(iso_utc)


def entity_dict(e: Entity) -> dict[str, Any]:
    return {"type": e.type.value, "code": e.code, "fqid": e.ref.fqid, "name": e.name,
            "parent": e.parent.fqid if e.parent is not None else None}


def _lookup(cat: queries.Catalogue, entity_type: str, code: str) -> Entity:
    ref = entity_ref(entity_type, code)
    found = queries.find_entity(cat, ref)
    if found is None:
        raise HTTPException(404, f"no entity {ref.fqid} in the store")
    return found


@router.get("/entities", summary="Search entities by code or name")
def search_entities(
    store: StoreReader,
    q: Annotated[str | None, Query(max_length=100, description="substring of code or name")]
    = None,
    type: Annotated[EntityType | None, Query(description="entity type")] = None,  # noqa: A002
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
) -> Response:
    found = queries.search_entities(store, q, type, None, limit)
    return JSONBody({"count": len(found), "entities": [entity_dict(e) for e in found]})


@router.get("/entities/{entity_type}/{code}", summary="One entity and its related entities")
def get_entity(store: StoreReader, cat: StoreCatalogue, entity_type: str, code: str
               ) -> Response:
    """The entity, its parent, its child regions and ASes, and the signals stored for it."""
    ent = _lookup(cat, entity_type, code)
    parent = queries.find_entity(cat, ent.parent) if ent.parent is not None else None
    regions = queries.search_entities(store, None, EntityType.REGION, ent.ref, MAX_LIMIT)
    asns = queries.search_entities(store, None, EntityType.ASN, ent.ref, MAX_LIMIT)
    signals = [{"signal": s, "step": st, "first": iso_utc(f), "last": iso_utc(la)}
               for s, st, f, la in queries.entity_signals(cat, ent.ref)]
    return JSONBody({"entity": entity_dict(ent),
            "parent": entity_dict(parent) if parent is not None else None,
            "regions": [entity_dict(e) for e in regions],
            "asns": [entity_dict(e) for e in asns],
            "signals": signals})


@router.get("/signals/{entity_type}/{code}", summary="An entity's series over a time range")
def get_signals(
    store: SeriesSource, cat: SourceCatalogue, entity_type: str, code: str,
    from_: Annotated[str | None, Query(alias="from", description="unix s or ISO 8601; default: "
                                       "7 days before until")] = None,
    until: Annotated[str | None, Query(description="unix s or ISO 8601 (exclusive); default: "
                                       "the entity's last stored point")] = None,
    signal: Annotated[list[str] | None, Query(description="signal name(s); default: all")]
    = None,
    max_points: Annotated[int | None, Query(ge=2, le=MAX_LIMIT, description="downsample: "
                                            "mean of consecutive bins")] = None,
    normalise: Annotated[bool, Query(description="values as % of the ordinary level: the "
                                     "median of the 7 days before `from`")] = False,
) -> Response:
    ent = _lookup(cat, entity_type, code)
    start, end = queries.default_window(cat, ent.ref, *time_range(from_, until))
    stored = [s for s, _, _, _ in queries.entity_signals(cat, ent.ref)]
    wanted = signal or stored
    unknown = sorted(set(wanted) - set(stored))
    if unknown:
        raise HTTPException(404, f"no signal {', '.join(unknown)} for {ent.ref.fqid} "
                                 f"(stored: {', '.join(stored) or 'none'})")
    views = [queries.series_view(store, cat, ent.ref, s, start, end, max_points=max_points,
                                 normalised=normalise) for s in wanted]
    return JSONBody({"entity": entity_dict(ent), "from": _iso_bound(start),
            "until": _iso_bound(end),
            "unit": "percent of ordinary" if normalise else "signal units",
            "series": [{"signal": v.signal, "from": _iso_bound(v.start),
                        "until": _iso_bound(v.until),
                        "step": v.step, "native_step": v.native_step, "ordinary": v.ordinary,
                        "values": v.values} for v in views]})


def _entity_filter(entity_type: str | None, entity_code: str | None
                   ) -> tuple[EntityRef | None, EntityType | None]:
    if entity_code is not None and entity_type is None:
        raise HTTPException(422, "entity_code needs entity_type")
    if entity_type is None:
        return None, None
    if entity_code is None:
        try:
            return None, parse_entity_type(entity_type)
        except InvalidEntity as exc:
            raise HTTPException(400, str(exc)) from None
    ref = entity_ref(entity_type, entity_code)
    return ref, ref.type


@router.get("/events", summary="Events with filters, ordering and three formats")
def get_events(
    store: SeriesSource,
    entity_type: Annotated[str | None, Query(description="country, region, asn, block")]
    = None,
    entity_code: Annotated[str | None, Query(description="needs entity_type")] = None,
    kind: Annotated[EventKind | None, Query()] = None,
    scope: Annotated[Scope | None, Query()] = None,
    from_: Annotated[TimeParam, Query(alias="from")] = None,
    until: TimeParam = None,
    order: Annotated[str, Query(description="time|score|name, optional /asc or /desc")]
    = "time",
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 10_000,
    format: Annotated[Literal["json", "csv", "codf"], Query()] = "json",  # noqa: A002
) -> Response:
    """Events overlapping [from, until) (ongoing ones extend to now). ``codf`` is IODA's
    CODF record list; ``csv`` the flat fields of ``netvigil events --format csv``."""
    ref, etype = _entity_filter(entity_type, entity_code)
    start, end = time_range(from_, until)
    found = queries.read_events(store, entity=ref, entity_type=etype, start=start, until=end)
    found = [e for e in found if (kind is None or e.kind is kind)
             and (scope is None or e.scope is scope)]
    try:
        found = queries.order_events(found, order)[:limit]
    except ValueError as exc:
        raise HTTPException(422, f"order: {exc}") from None
    if format == "csv":
        return Response(events_to_csv(found), media_type="text/csv; charset=utf-8")
    if format == "codf":
        return JSONBody([to_codf(e, until=end) for e in found])
    return JSONBody({"count": len(found), "events": [_event_out(e) for e in found]})


def _event_out(e: Any) -> dict[str, Any]:
    out = event_to_dict(e)
    rule = severity_of(e)
    out["severity"] = {"id": rule.id, "label": rule.label,
                       "connectivity_ratio": connectivity_ratio(e)}
    return out


@router.get("/alerts", summary="Detector alerts (level transitions per signal)")
def get_alerts(
    store: StoreReader,
    entity_type: str | None = None,
    entity_code: str | None = None,
    signal: str | None = None,
    level: Annotated[Literal["normal", "warning", "critical"] | None, Query()] = None,
    from_: Annotated[TimeParam, Query(alias="from")] = None,
    until: TimeParam = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 10_000,
) -> Response:
    ref, etype = _entity_filter(entity_type, entity_code)
    start, end = time_range(from_, until)
    found = store.read_alerts(ref, start, end)
    found = [a for a in found if (etype is None or a.entity.type is etype)
             and (signal is None or a.signal == signal)
             and (level is None or a.level is Level[level.upper()])][:limit]
    return JSONBody({"count": len(found), "alerts": [
        {"entity_type": a.entity.type.value, "entity_code": a.entity.code,
         "signal": a.signal, "method": a.method, "time": iso_utc(a.time),
         "level": a.level.label, "condition": a.condition, "value": a.value,
         "history_value": a.history_value} for a in found]})


@router.get("/summary", summary="Per-entity scores and a readable severity")
def get_summary(
    store: StoreReader,
    from_: Annotated[TimeParam, Query(alias="from")] = None,
    until: TimeParam = None,
    entity_type: str | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 1_000,
) -> Response:
    """One row per entity with events in [from, until): the worst event's severity (how far
    connectivity fell, severity.py), the number of events, and IODA's scores (the sum of the
    events' cross-signal products as ``overall``, for ordering and IODA parity only)."""
    _, etype = _entity_filter(entity_type, None)
    start, end = time_range(from_, until)
    rows = summarise(queries.read_events(store, entity=None, entity_type=etype, start=start,
                                         until=end))
    return JSONBody({"count": len(rows[:limit]), "from": iso_utc(start), "until": iso_utc(end),
            "entities": rows[:limit]})


def summarise(events: list[Any]) -> list[dict[str, Any]]:
    by_entity: dict[EntityRef, list[Any]] = {}
    for e in events:
        by_entity.setdefault(e.entity, []).append(e)
    keyed: list[tuple[tuple[int, float, float], dict[str, Any]]] = []
    for ref, evs in by_entity.items():
        rule, top = worst(evs)
        assert top is not None
        ratio = connectivity_ratio(top)
        overall = sum(e.score for e in evs if e.score == e.score)
        key = (-rule.rank, ratio if ratio is not None else 1.0, -overall)
        keyed.append((key, {
            "entity": {"type": ref.type.value, "code": ref.code, "fqid": ref.fqid,
                       "name": top.entity_name},
            "severity": {"id": rule.id, "rank": rule.rank, "label": rule.label,
                         "connectivity_percent": None if ratio is None else
                         round(ratio * 100.0, 1),
                         "event_id": top.id},
            "event_count": len(evs),
            "ongoing": any(e.end is None for e in evs),
            "score": {"overall": overall,
                      "max": max((e.score for e in evs if e.score == e.score), default=None)},
        }))
    keyed.sort(key=lambda kr: kr[0])
    return [row for _, row in keyed]
