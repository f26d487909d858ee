"""Per-mechanism verdicts of one target, from the rows the probe recorded.

Labels are OONI's ontology (ooni/data ``docs/ontology.md`` §12, anchors §4.4):
``<layer>.<action>[.<qualifier>]``. Each layer is judged on its own evidence:

* **dns** compares the system resolver (what a user gets) with the chosen resolver:
  ``dns.nxdomain`` / ``dns.timeout`` when only the system resolver fails; when both answer
  with disjoint addresses, ``dns.injection.other`` unless a system-resolved address completed
  a TLS handshake with a certificate valid for the name (OONI's ``tls_consistent_answer``:
  a CDN, not an injection). Both failing is ``dns.failure``: no verdict, not blocking.
* **tcp**, **tls** and **http** are measured against the *trusted* addresses (the chosen
  resolver's, the system's if it failed), so a DNS injection does not hide a block further
  down: any success is ok (OONI's IM tests: blocked only if every endpoint fails); else the
  first failure's label (``tcp.reset``, ``tcp.refused``, ``tcp.timeout``, ``tls.reset.sni``
  for a reset after a completed TCP connect — the SNI-filtering signature —, ``tls.timeout``,
  ``tls.mitm`` for a certificate that does not verify, ``http.error``, ``http.timeout``).
* **http** also matches the response against OONI's blockpage fingerprints
  (``data/fingerprints_http.json.gz``, from ooni/backend, BSD-3-Clause) → ``http.blockpage``.

The measurement-level keys follow web_connectivity: ``blocking`` ∈ {dns, tcp_ip,
http-failure, http-diff, false, null}, ``accessible``, ``x_blocking_flags`` (1 DNS, 2 TCP,
4 TLS, 8 HTTP failure, 16 HTTP diff, 32 success); ``null`` when the controls say the network
itself is down.
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from importlib import resources
from typing import Any

OK = "ok"

#: first failure string of a layer → label (stable ids; "" = the layer's own fallback)
FAILURE_LABELS: dict[str, dict[str, str]] = {
    "tcp": {"connection_reset": "tcp.reset", "connection_refused": "tcp.refused",
            "generic_timeout_error": "tcp.timeout", "": "tcp.error"},
    "tls": {"connection_reset": "tls.reset.sni", "eof_error": "tls.reset.other",
            "generic_timeout_error": "tls.timeout", "ssl_invalid_hostname": "tls.mitm",
            "ssl_unknown_authority": "tls.mitm", "ssl_invalid_certificate": "tls.mitm",
            "": "tls.error"},
    "http": {"generic_timeout_error": "http.timeout", "": "http.error"},
}
#: mechanism label prefix → (web_connectivity ``blocking`` value, ``x_blocking_flags`` bit)
BLOCKING_OF: tuple[tuple[str, str, int], ...] = (
    ("dns.", "dns", 1), ("tcp.", "tcp_ip", 2), ("tls.", "http-failure", 4),
    ("http.blockpage", "http-diff", 16), ("http.", "http-failure", 8))
NO_VERDICT = ("dns.failure",)  # a layer that could not be judged (both resolvers failed)


def layer_label(layer: str, failures: Sequence[str | None]) -> str | None:
    """ok if any attempt succeeded, the first failure's label otherwise, None if no data."""
    if not failures:
        return None
    if any(f is None for f in failures):
        return OK
    table = FAILURE_LABELS[layer]
    first = str(failures[0])
    return table.get(first, table[""])


def dns_label(system: Mapping[str, Any], chosen: Mapping[str, Any],
              tls_valid_on_system_addr: bool) -> str:
    sys_addrs, ctl_addrs = set(system["addrs"]), set(chosen["addrs"])
    if system["failure"] and chosen["failure"]:
        return "dns.failure"
    if system["failure"]:
        return "dns.timeout" if system["failure"] == "generic_timeout_error" else "dns.nxdomain"
    if chosen["failure"] or sys_addrs & ctl_addrs or tls_valid_on_system_addr:
        return OK
    return "dns.injection.other"


@lru_cache(maxsize=1)
def fingerprints() -> tuple[tuple[str, str, str, str], ...]:
    """(name, location, pattern type, pattern) of OONI's HTTP blockpage fingerprints."""
    raw = resources.files("netvigil_probe").joinpath(
        "data/fingerprints_http.json.gz").read_bytes()
    return tuple((f["name"], f["location_found"], f["pattern_type"], f["pattern"])
                 for f in json.loads(gzip.decompress(raw)))


def _matches(kind: str, pattern: str, text: str) -> bool:
    if kind == "contains":
        return pattern in text
    if kind == "prefix":
        return text.startswith(pattern)
    if kind == "full":
        return text == pattern
    try:
        return re.search(pattern, text) is not None
    except re.error:
        return False


def blockpage(response: Mapping[str, Any]) -> str | None:
    """The name of the first fingerprint the response matches (body or a header), or None."""
    body = response.get("body") or ""
    headers = {str(k).lower(): str(v) for k, v in (response.get("headers") or {}).items()}
    for name, where, kind, pattern in fingerprints():
        if where == "body":
            text: str | None = body
        else:
            text = headers.get(where.partition(".")[2].lower())
        if text and _matches(kind, pattern, text):
            return name
    return None


def summarize(mechanisms: Mapping[str, str | None], network_up: bool) -> dict[str, Any]:
    """web_connectivity's verdict keys from the per-layer labels."""
    bad = [m for m in mechanisms.values() if m and m != OK and m not in NO_VERDICT]
    if not network_up or (not bad and any(m in NO_VERDICT for m in mechanisms.values())):
        return {"blocking": None, "accessible": None, "x_blocking_flags": 0}
    if not bad:
        return {"blocking": False, "accessible": True, "x_blocking_flags": 32}
    flags, blocking = 0, None
    for label in bad:
        for prefix, value, bit in BLOCKING_OF:
            if label.startswith(prefix):
                flags |= bit
                blocking = blocking or value
                break
    return {"blocking": blocking, "accessible": False, "x_blocking_flags": flags}
