"""The plausibility rules every series file passes at the import boundary (issue 12, defect 10).

One table (:data:`RULES`, stable ids) names each rule, the skip category it counts under and
its bounds; the CSV path (DuckDB SQL in :mod:`netvigil.series.csv_format`) and the IODA JSON
path (:mod:`netvigil.series.ioda_format`) both read their predicates from here, so a bound
changes in one place. Why refuse rather than store: an unknown code or a negative count is a
broken file, and once stored it silently shapes baselines and detections (issue 12 found
``XX``, ``KZ-99`` and ``bgp = -5`` accepted with exit 0).

* Codes are checked against the entity registry (ISO 3166-1/-2 through pycountry,
  :mod:`netvigil.geo.entities`), plus the user-assigned codes in :data:`USER_ASSIGNED`
  (``XK``: Kosovo, used by the EU, IODA and RIRs though ISO leaves it unassigned).
* Count signals are those whose unit counts things (:data:`COUNT_UNITS` over
  :data:`netvigil.model.signals.KNOWN_SIGNALS`): a count below zero is impossible.
* Times and values must be ASCII: DuckDB and Python both accept other scripts' digits
  (``١٦٤١…``, fullwidth ``１２``), which hides a mis-encoded file.
* Names and signals must be free of control characters (C0, DEL, C1) and of the Unicode line
  and paragraph separators (U+2028/9): all of them split lines somewhere downstream
  (``str.splitlines``, terminals, CSV exports).
* Signal names are bounded (:data:`MAX_SIGNAL_LEN`); JSON nesting is bounded
  (:data:`MAX_JSON_DEPTH`) and JSON integers longer than :data:`MAX_INT_DIGITS` digits are read
  as floats (so ``10**4300`` becomes ``inf`` and is refused by the range rules, never a
  Python ``ValueError``).
* Bounds shared with the parsers of other tiers (MRT, RIS Live) live in
  :mod:`netvigil.model.bounds`, with the reasons for each number: times in 1990..2100 (rule
  ``time-range``; 0 = 1970 is the classic corrupt value, no source starts before 1999),
  entity names up to ``MAX_NAME_LEN`` characters (``name-length``), CSV lines and RIS Live
  frames up to ``MAX_LINE_BYTES`` (``line-length``), JSON strings up to
  ``MAX_JSON_TOKEN_BYTES`` (``json-token-length``), and gzip/bzip2 input refused once it
  inflates past ``MAX_INFLATION`` x its compressed size beyond ``INFLATION_FLOOR``
  (``decompression-bound``: the series scan pass, both MRT decoders).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from netvigil.geo.entities import default_registry
from netvigil.model import EntityType, bounds, make_ref
from netvigil.model.signals import KNOWN_SIGNALS


@dataclass(frozen=True)
class Rule:
    id: str
    category: str  # the skip-report category (and the error's prefix)
    text: str  # the error detail's start


RULES: dict[str, Rule] = {r.id: r for r in (
    Rule("code-registry", "unknown entity code",
         "code is not in the ISO 3166 registry (nor a documented user-assigned code)"),
    Rule("count-nonnegative", "negative count", "a count signal cannot be negative"),
    Rule("ascii-time", "non-ASCII time", "time must be written in ASCII digits"),
    Rule("ascii-value", "non-ASCII value", "value must be written in ASCII digits"),
    Rule("control-name", "control character", "entity name contains a control character"),
    Rule("control-signal", "control character", "signal name contains a control character"),
    Rule("signal-length", "signal name too long", "signal name is longer than the bound"),
    Rule("json-depth", "JSON too deep", "JSON nesting deeper than the bound"),
    Rule("time-range", "time out of range",
         f"time must lie in {bounds.TIME_RANGE_TEXT} ({bounds.MIN_TIME}.."
         f"{bounds.MAX_TIME - 1} unix seconds)"),
    Rule("name-length", "entity name too long",
         f"entity name is longer than {bounds.MAX_NAME_LEN} characters"),
    Rule("line-length", "line too long",
         f"line is longer than {bounds.MAX_LINE_BYTES} bytes"),
    Rule("json-token-length", "JSON value too long",
         f"a JSON string or number is longer than {bounds.MAX_JSON_TOKEN_BYTES} bytes"),
    Rule("decompression-bound", "decompression bomb", "compressed input inflates too far"),
)}

USER_ASSIGNED = frozenset({"XK"})
COUNT_UNITS = frozenset({"visible /24s", "visible /48s", "up /24s", "unique source IPs"})
COUNT_SIGNALS = frozenset(n for n, k in KNOWN_SIGNALS.items() if k.unit in COUNT_UNITS)
MAX_SIGNAL_LEN = 100
MAX_JSON_DEPTH = 64
MAX_INT_DIGITS = 40
#: Code point ranges refused in names and signals (C0, DEL + C1, U+2028/U+2029).
CONTROL_RANGES = ((0x00, 0x1F), (0x7F, 0x9F), (0x2028, 0x2029))

CONTROL_RE = re.compile("[" + "".join(f"\\u{a:04x}-\\u{b:04x}" for a, b in CONTROL_RANGES)
                        + "]")
#: The same class in RE2 syntax (DuckDB's regexp functions).
CONTROL_RE2 = "[" + "".join(f"\\x{{{a:x}}}-\\x{{{b:x}}}" for a, b in CONTROL_RANGES) + "]"


def rule_error(rule_id: str, got: str) -> tuple[str, str]:
    """(category, detail) of a broken rule, the offending text shortened."""
    r = RULES[rule_id]
    return r.category, f"{r.text}, got {shorten(got)}"


def shorten(text: str, limit: int = 60) -> str:
    """repr() of at most ``limit`` characters (error lines stay one short line)."""
    return repr(text) if len(text) <= limit else repr(text[:limit]) + f"... ({len(text)} chars)"


@lru_cache(maxsize=4096)
def known_code(entity_type: str, code: str) -> bool:
    """Is a country or region code in the registry (or user-assigned)? ASNs always pass
    (their range is checked by the format)."""
    if entity_type == EntityType.COUNTRY.value and code in USER_ASSIGNED:
        return True
    if entity_type == EntityType.REGION.value and code.split("-", 1)[0] in USER_ASSIGNED:
        return True
    if entity_type not in (EntityType.COUNTRY.value, EntityType.REGION.value):
        return True
    return default_registry().get(make_ref(entity_type, code)) is not None


def signal_problem(signal: str) -> tuple[str, str] | None:
    if len(signal) > MAX_SIGNAL_LEN:
        return rule_error("signal-length", f"{len(signal)} > {MAX_SIGNAL_LEN} characters")
    if CONTROL_RE.search(signal):
        return rule_error("control-signal", signal)
    return None
