"""Atom feeds of outage transitions (issue 10, alerts): ``/feeds/events.atom`` (every
entity) and ``/feeds/country/{CC}.atom`` (a country and its regions). Built from the stored
events on each request by :func:`netvigil.alerts.feeds.atom_feed` (no state to lose)."""

from __future__ import annotations

import time

from fastapi import APIRouter, HTTPException, Request, Response

from netvigil.alerts.feeds import atom_feed, in_country
from netvigil.serve.deps import StoreReader

router = APIRouter(prefix="/feeds", tags=["feeds"])
ATOM_TYPE = "application/atom+xml; charset=utf-8"


@router.get("/events.atom", response_class=Response)
def global_feed(request: Request, store: StoreReader) -> Response:
    body = atom_feed(store.read_events(), title="NetVigil: outage transitions",
                     feed_id="urn:netvigil:feed:global", self_url=str(request.url),
                     now=int(time.time()))
    return Response(body, media_type=ATOM_TYPE)


@router.get("/country/{country}.atom", response_class=Response)
def country_feed(country: str, request: Request, store: StoreReader) -> Response:
    cc = country.upper()
    if len(cc) != 2 or not cc.isascii() or not cc.isalpha():
        raise HTTPException(422, f"country must be an ISO 3166-1 alpha-2 code, got {country!r}")
    events = [e for e in store.read_events() if in_country(e, cc)]
    body = atom_feed(events, title=f"NetVigil: outage transitions in {cc}",
                     feed_id=f"urn:netvigil:feed:country:{cc}", self_url=str(request.url),
                     now=int(time.time()))
    return Response(body, media_type=ATOM_TYPE)
