"""The one-row view of BGP data: :class:`BgpElem`, and its two text forms.

``psv`` is byte-compatible with ``bgpdump -m`` (RIPE NCC libbgpdump): 15 pipe-separated fields
for announcements and RIB entries, 6 for withdrawals, 7 for state changes, with the ``_AP``
labels and extra path-id field for ADD-PATH records (RFC 7911/8050). ``json`` is one object per
element with typed fields.
"""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass
from typing import Any

from netvigil.sources.bgp.mrt.attributes import INADDR_NONE, Nlri, PathAttributes, format_ip


@dataclass(slots=True)
class BgpElem:
    """One announcement (A), withdrawal (W), RIB entry (B) or peer state change (STATE)."""

    #: bgpdump's record label: TABLE_DUMP, TABLE_DUMP2[_AP], BGP4MP[_ET][_LOCAL][_AP], BGP
    record: str
    timestamp: int
    microseconds: int | None
    kind: str  # "A" | "W" | "B" | "STATE"
    peer_ip: bytes
    peer_asn: int
    nlri: Nlri | None = None
    attrs: PathAttributes | None = None
    next_hop: bytes | None = None  # per NLRI family: NEXT_HOP or the MP_REACH next hop
    old_state: int = 0
    new_state: int = 0
    addpath: bool = False

    @property
    def time(self) -> float:
        return self.timestamp + (self.microseconds or 0) / 1e6


def _time_str(e: BgpElem) -> str:
    if e.microseconds is not None:
        return f"{e.timestamp}.{e.microseconds:06d}"
    return str(e.timestamp)


def to_psv(e: BgpElem) -> str:
    """The ``bgpdump -m`` line for this element (without the newline)."""
    head = f"{e.record}|{_time_str(e)}|{e.kind}|{format_ip(e.peer_ip)}|{e.peer_asn}|"
    if e.kind == "STATE":
        return f"{head}{e.old_state}|{e.new_state}"
    assert e.nlri is not None
    pid = f"|{e.nlri.path_id}" if e.addpath else ""
    if e.kind == "W":
        return f"{head}{e.nlri}{pid}"
    a = e.attrs
    assert a is not None
    nh = e.next_hop if e.next_hop is not None else INADDR_NONE
    lp = a.local_pref if a.local_pref is not None else 0
    med = a.med if a.med is not None else 0
    ag = "AG" if a.atomic_aggregate else "NAG"
    return (
        f"{head}{e.nlri}{pid}|{a.as_path_str}|{a.origin_str}|{format_ip(nh)}|{lp}|{med}|"
        f"{a.communities_str}|{ag}|{a.aggregator_str}|"
    )


def to_dict(e: BgpElem) -> dict[str, Any]:
    """A JSON-ready dict; absent attributes are null, not bgpdump's zeros."""
    out: dict[str, Any] = {
        "record": e.record,
        "time": e.time if e.microseconds is not None else e.timestamp,
        "type": e.kind,
        "peer_ip": format_ip(e.peer_ip),
        "peer_asn": e.peer_asn,
    }
    if e.kind == "STATE":
        out["old_state"] = e.old_state
        out["new_state"] = e.new_state
        return out
    out["prefix"] = str(e.nlri)
    if e.addpath and e.nlri is not None:
        out["path_id"] = e.nlri.path_id
    a = e.attrs
    if e.kind == "W" or a is None:
        return out
    agg = None
    if a.aggregator_addr is not None and a.aggregator_addr != INADDR_NONE:
        agg = {"asn": a.aggregator_as, "ip": socket.inet_ntoa(a.aggregator_addr)}
    out.update(
        as_path=a.as_path_str,
        origin_asns=list(a.origin_asns()),
        origin=a.origin_str if a.origin >= 0 else None,
        next_hop=format_ip(e.next_hop) if e.next_hop is not None else None,
        local_pref=a.local_pref,
        med=a.med,
        communities=a.communities_str.split() if a.communities else [],
        large_communities=[f"{x}:{y}:{z}" for x, y, z in a.large_communities or []],
        atomic_aggregate=a.atomic_aggregate,
        aggregator=agg,
    )
    return out


def to_json(e: BgpElem) -> str:
    return json.dumps(to_dict(e), separators=(",", ":"))
