"""Atom feeds of transitions (RFC 4287): global and per country.

A feed is computed from the stored events on request (no state): each transition is one entry
whose id (``urn:netvigil:<event id>:<opened|ended>``) never changes, so feed readers show each
transition once. Written with ``xml.etree`` (stdlib): the format is small and fixed, and a feed
library would add a dependency for four elements.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable

from netvigil.alerts.messages import headline
from netvigil.alerts.transitions import transitions_of
from netvigil.model.entities import EntityType
from netvigil.model.events import Event
from netvigil.model.times import iso_utc

ATOM = "http://www.w3.org/2005/Atom"
MAX_ENTRIES = 200


def _iso(ts: int) -> str:
    return str(iso_utc(ts))


def in_country(event: Event, country: str) -> bool:
    """Events of the country itself and of its regions (ISO 3166-2 ``CC-...``); ASes are in a
    country's feed when their code is recorded under it by the caller's filter."""
    e = event.entity
    return (e.type is EntityType.COUNTRY and e.code == country) or (
        e.type is EntityType.REGION and e.code.startswith(country + "-"))


def atom_feed(events: Iterable[Event], *, title: str, feed_id: str, self_url: str,
              now: int) -> bytes:
    ET.register_namespace("", ATOM)
    feed = ET.Element(f"{{{ATOM}}}feed")
    trans = transitions_of(events)[::-1][:MAX_ENTRIES]
    ET.SubElement(feed, f"{{{ATOM}}}title").text = title
    ET.SubElement(feed, f"{{{ATOM}}}id").text = feed_id
    ET.SubElement(feed, f"{{{ATOM}}}updated").text = _iso(trans[0].at if trans else now)
    ET.SubElement(feed, f"{{{ATOM}}}link", rel="self", href=self_url)
    author = ET.SubElement(feed, f"{{{ATOM}}}author")
    ET.SubElement(author, f"{{{ATOM}}}name").text = "NetVigil"
    for t in trans:
        entry = ET.SubElement(feed, f"{{{ATOM}}}entry")
        ET.SubElement(entry, f"{{{ATOM}}}id").text = f"urn:netvigil:{t.id}"
        ET.SubElement(entry, f"{{{ATOM}}}title").text = headline(t)
        ET.SubElement(entry, f"{{{ATOM}}}updated").text = _iso(t.at)
        ET.SubElement(entry, f"{{{ATOM}}}category", term=t.event.kind.value)
        ev = t.event
        ET.SubElement(entry, f"{{{ATOM}}}summary").text = (
            f"{headline(t)}. Event {ev.id}: {ev.scope.value} {ev.kind.value}, start "
            f"{_iso(ev.start)}, end {_iso(ev.end) if ev.end is not None else 'ongoing'}, "
            f"confidence {ev.confidence:.2f}.")
    return bytes(ET.tostring(feed, encoding="utf-8", xml_declaration=True))
