"""The web dashboard: one HTML page at ``/`` and its bundled assets under ``/ui/``.

Why a static single-page app over the JSON API and not server-rendered pages: every number
the page shows comes from the same ``/api/v1`` answers a script or an IODA client gets
(``docs/api.md``), so the dashboard cannot drift from the API; the server adds only files.
Why hand-written JavaScript and SVG (no npm build): the page needs a TopoJSON decoder
(~30 lines, Bostock's format spec), an equirectangular projection and line charts; a charting
library would add a build step, a licence to ship and ~200 KB for features the page does not
use, and the dashboard must work with no outside network (issue 10). The map data ships with
its licences in ``static/geo`` (see its README for sources and sha256).

State lives in the URL fragment (``#/country/KZ?from=...&until=...&norm=1&lang=ru``), so a
link is a permalink and a reload restores the view without any server-side routing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import FileResponse

from netvigil.model import EntityRef, EntityType, Event
from netvigil.model.times import iso_utc
from netvigil.serve.deps import StoreReader
from netvigil.serve.params import time_range
from netvigil.serve.severity import worst

STATIC_DIR = Path(__file__).parent / "static"

#: What ``/ui/`` serves, by suffix: the page's own files and the map data, never the build
#: script beside them. Licence files (no suffix) are served as text.
SERVED_TYPES: dict[str, str] = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".md": "text/plain; charset=utf-8",
    "": "text/plain; charset=utf-8",
}

router = APIRouter(tags=["dashboard"], include_in_schema=False)


def asset_path(relative: str) -> Path:
    """The file under :data:`STATIC_DIR` that ``relative`` names, or 404.

    Refuses anything resolving outside the folder (``..``, absolute paths, symlinks out) and
    any suffix not in :data:`SERVED_TYPES`.
    """
    root = STATIC_DIR.resolve()
    target = (root / relative).resolve()
    if (not target.is_relative_to(root) or not target.is_file()
            or target.suffix not in SERVED_TYPES):
        raise HTTPException(status_code=404, detail=f"no dashboard file {relative!r}")
    return target


@router.get("/")
def index() -> FileResponse:
    """The dashboard page (views are chosen by the URL fragment, in the browser)."""
    return FileResponse(STATIC_DIR / "index.html", media_type=SERVED_TYPES[".html"],
                        headers={"Cache-Control": "no-cache"})


@router.get("/ui/span")
def span(store: StoreReader) -> dict[str, int | None]:
    """The time span the store's series cover (``first``, ``last`` unix seconds, ``last``
    the end of the last bin; null when empty): the page's default range is the last days of
    data, not of the wall clock, so a store of past events (the 2022 demo) opens on them.
    One small query over the series table's bounds; the API has no such summary."""
    bounds = [(i.first, i.last + i.step) for i in store.list_series()
              if i.first is not None and i.last is not None]
    if not bounds:
        return {"first": None, "last": None}
    return {"first": min(b[0] for b in bounds), "last": max(b[1] for b in bounds)}


def country_of(ref: EntityRef, as_parents: dict[str, str]) -> str | None:
    """The country an event's entity belongs to: itself, a region's ISO 3166-2 prefix, an
    AS's registered country (its ``entities.parent``), else None."""
    if ref.type is EntityType.COUNTRY:
        return ref.code
    if ref.type is EntityType.REGION:
        return ref.code.split("-", 1)[0]
    return as_parents.get(ref.code) if ref.type is EntityType.ASN else None


def _severity(events: list[Event]) -> dict[str, Any] | None:
    rule, top = worst(events)
    return None if top is None else {"id": rule.id, "rank": rule.rank, "event_id": top.id}


def _ongoing_at(event: Event, when: int | None) -> bool:
    """Still on at ``when`` (the range's end; None: now, so only events without an end)."""
    return event.end is None or (when is not None and event.start < when < event.end)


@router.get("/ui/countries")
def countries(store: StoreReader,
              from_: Annotated[str | None, Query(alias="from")] = None,
              until: str | None = None) -> dict[str, Any]:
    """Countries with events in [from, until), with their regions' and networks' events
    counted in: the home page links every one of them (issue 10) and colours the map by the
    worst *national* event (severity rules of :mod:`netvigil.serve.severity`, the API's);
    ``ongoing`` is the worst event still on at ``until``, the "current" state.
    Why here: ``/api/v1/summary`` is per entity, and an AS event belongs to a country only
    through the AS's registered country, which the page would otherwise fetch AS by AS."""
    start, end = time_range(from_, until)
    parents = {e.ref.code: e.parent.code for e in store.read_entities(EntityType.ASN)
               if e.parent is not None and e.parent.type is EntityType.COUNTRY}
    by_country: dict[str, list[Event]] = {}
    for e in store.read_events(None, start, end):
        cc = country_of(e.entity, parents)
        if cc is not None:
            by_country.setdefault(cc, []).append(e)
    rows: list[dict[str, Any]] = []
    for cc, evs in by_country.items():
        national = [e for e in evs if e.entity.type is EntityType.COUNTRY]
        rows.append({"code": cc, "event_count": len(evs), "national_count": len(national),
                     "worst": _severity(evs), "national": _severity(national),
                     "ongoing": _severity([e for e in evs if _ongoing_at(e, end)]),
                     "latest_start": iso_utc(max(e.start for e in evs))})
    rows.sort(key=lambda r: (-r["worst"]["rank"], r["code"]))
    return {"count": len(rows), "countries": rows}


@router.get("/ui/regions/{country}")
def regions(store: StoreReader, country: str) -> dict[str, Any]:
    """The country's ISO 3166-2 regions that have stored series, named from the entity
    registry (pycountry): the store keeps series for regions but often no entities rows, so
    ``/api/v1/entities/country/XX`` may list none."""
    from netvigil.geo.entities import default_registry

    cc = country.upper()
    codes = sorted({i.entity.code for i in store.list_series()
                    if i.entity.type is EntityType.REGION and i.entity.code.startswith(f"{cc}-")})
    reg = default_registry()
    return {"country": cc, "regions": [
        {"type": "region", "code": c, "name": reg.name(EntityRef(EntityType.REGION, c))}
        for c in codes]}


@router.get("/ui/{relative:path}")
def asset(relative: str) -> FileResponse:
    """A bundled script, style sheet, message catalogue or map file."""
    target = asset_path(relative)
    return FileResponse(target, media_type=SERVED_TYPES[target.suffix],
                        headers={"Cache-Control": "no-cache"})
