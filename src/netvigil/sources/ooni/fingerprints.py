"""OONI's blockpage fingerprints: a DNS answer or an HTTP response that *confirms* blocking.

Data: ``netvigil/data/ooni/fingerprints_{dns,http}.json.gz``, the 150 DNS and 1,699 HTTP
fingerprints of ooni/backend's fastpath test data (provenance in that folder's README), kept
with the fields the match needs. The fastpath rule (anchors §4.1): a match gives
``confirmed`` when the measurement's country is one of the fingerprint's
``expected_countries`` and its scope is national or ISP (:data:`CONFIRM_SCOPES`); other
scopes (commercial products, institutions, known false positives) are not confirmations.

Matching (``location_found``): ``dns`` compares answer IPs (``full``); ``body`` and
``header.<name>`` compare text by ``pattern_type`` ``contains`` / ``prefix`` / ``full`` /
``regexp``. Fingerprints are indexed by country once, so a measurement is checked against
its own country's few dozen patterns, not all 1,849.
"""

from __future__ import annotations

import gzip
import json
import re
from collections import defaultdict
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

CONFIRM_SCOPES = frozenset({"nat", "isp"})
DATA_PACKAGE = "netvigil.data"


@dataclass(frozen=True, slots=True)
class Fingerprint:
    name: str
    location: str  # "dns", "body" or "header.<lower-case name>"
    pattern_type: str
    pattern: str
    regex: re.Pattern[str] | None = None

    def matches(self, text: str) -> bool:
        if self.pattern_type == "contains":
            return self.pattern in text
        if self.pattern_type == "prefix":
            return text.startswith(self.pattern)
        if self.pattern_type == "full":
            return text == self.pattern
        return self.regex is not None and self.regex.search(text) is not None


@dataclass(frozen=True)
class FingerprintIndex:
    """Confirming fingerprints per country: DNS answer IP -> name, and HTTP patterns."""

    dns: dict[str, dict[str, str]]  # cc -> ip -> fingerprint name
    http: dict[str, tuple[Fingerprint, ...]]  # cc -> body/header fingerprints

    def match_dns(self, cc: str, ips: list[str]) -> str | None:
        table = self.dns.get(cc)
        if not table:
            return None
        for ip in ips:
            if ip in table:
                return table[ip]
        return None

    def match_http(self, cc: str, body: str | None, headers: dict[str, str]) -> str | None:
        for fp in self.http.get(cc, ()):
            if fp.location == "body":
                if body and fp.matches(body):
                    return fp.name
            elif (value := headers.get(fp.location[7:])) is not None and fp.matches(value):
                return fp.name
        return None


def _load(kind: str) -> list[dict[str, Any]]:
    raw = (resources.files(DATA_PACKAGE) / "ooni" / f"fingerprints_{kind}.json.gz").read_bytes()
    rows: list[dict[str, Any]] = json.loads(gzip.decompress(raw))
    return rows


def _countries(row: dict[str, Any]) -> list[str]:
    return [c.strip().upper() for c in str(row.get("expected_countries", "")).split(",")
            if c.strip()]


def build_index(dns_rows: list[dict[str, Any]],
                http_rows: list[dict[str, Any]]) -> FingerprintIndex:
    dns: dict[str, dict[str, str]] = defaultdict(dict)
    for row in dns_rows:
        if row.get("scope") in CONFIRM_SCOPES:
            for cc in _countries(row):
                dns[cc].setdefault(str(row["pattern"]), str(row["name"]))
    http: dict[str, list[Fingerprint]] = defaultdict(list)
    for row in http_rows:
        loc = str(row.get("location_found", ""))
        if row.get("scope") not in CONFIRM_SCOPES or not (loc == "body"
                                                          or loc.startswith("header.")):
            continue
        ptype = str(row.get("pattern_type", "contains"))
        regex = re.compile(str(row["pattern"])) if ptype == "regexp" else None
        fp = Fingerprint(str(row["name"]), loc.lower(), ptype, str(row["pattern"]), regex)
        for cc in _countries(row):
            http[cc].append(fp)
    return FingerprintIndex(dict(dns), {cc: tuple(v) for cc, v in http.items()})


@cache
def default_index() -> FingerprintIndex:
    """The shipped fingerprints (loaded once per process)."""
    return build_index(_load("dns"), _load("http"))
