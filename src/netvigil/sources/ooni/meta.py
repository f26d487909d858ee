"""The base keys every OONI measurement carries, normalised across data-format versions.

ooni/spec ``df-000-base`` (anchors §4.2): ``test_name``, ``measurement_start_time``
("YYYY-MM-DD hh:mm:ss", UTC), ``probe_cc`` ("ZZ" if unknown), ``probe_asn`` ("AS0" if
withheld). Old reports converted from YAML (2014-2017) spell times with a ``T``/``Z`` or give
unix seconds, give the ASN as an integer, or leave the country out; a tolerant reader takes
all of them (the strict ``oonidata`` loader fails on these, PROVENANCE notes). What cannot be
read at all — no test name, no start time, a country that is not two letters — is a
malformed measurement with a reason (:class:`MetaError`).

A measurement with country ``ZZ`` or without a country is *valid but unattributed*: counted
and reported, never placed in a country's series (OONI's collector discards AS0/ZZ too).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import cache
from typing import Any

from netvigil.geo.entities import default_registry
from netvigil.model.entities import EntityRef, EntityType

UNKNOWN_CC = "ZZ"
_CC = re.compile(r"^[A-Za-z]{2}$")
_ASN = re.compile(r"^(?:AS)?(\d{1,10})$", re.IGNORECASE)
#: measurement times outside [2012, 2100) are malformed (OONI started in 2012)
MIN_TIME = 1_325_376_000
MAX_TIME = 4_102_444_800


#: base keys of ooni/spec ``df-000-base``: in a legacy YAML entry everything else is the
#: test's own keys, moved under ``test_keys`` (what OONI's pipeline did converting them)
BASE_KEYS = frozenset({
    "annotations", "backend_version", "data_format_version", "id", "input", "input_hashes",
    "measurement_start_time", "options", "probe_asn", "probe_cc", "probe_city", "probe_ip",
    "report_id", "software_name", "software_version", "test_helpers", "test_name",
    "test_runtime", "test_start_time", "test_version"})


def _plain(value: Any) -> Any:
    """A YAML value as JSON would carry it: ``!!binary`` as text (UTF-8, else Latin-1, the
    encodings ooniprobe 1.x wrote), ``!!set`` as a sorted list, YAML timestamps as ISO text."""
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return value.decode("latin-1")
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted((_plain(v) for v in value), key=repr)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def legacy_measurement(header: dict[str, Any], entry: dict[str, Any]) -> dict[str, Any]:
    """One entry of a legacy YAML report (before 2016) as a data-format-0.2.0 measurement.

    The header document carries the base keys (``probe_cc``, ``probe_asn``, ``test_name``,
    ``start_time``...), each entry the test's keys; as OONI's pipeline converted them:
    base keys from the entry, else the header; ``measurement_start_time`` = the entry's
    ``test_start_time``, else the header's ``start_time`` (unix seconds: :func:`parse_time`
    reads them like every other spelling); the rest of the entry under ``test_keys``. The
    values are then judged by :func:`read_meta` and the verdicts exactly as JSON ones are.
    """
    head, item = _plain(header), _plain(entry)
    doc = {k: v for k, v in head.items() if k in BASE_KEYS}
    doc.update((k, v) for k, v in item.items() if k in BASE_KEYS)
    doc["test_start_time"] = head.get("start_time", doc.get("test_start_time"))
    doc["measurement_start_time"] = item.get(
        "measurement_start_time", item.get("test_start_time", head.get("start_time")))
    doc["test_keys"] = {k: v for k, v in item.items() if k not in BASE_KEYS}
    return doc


class MetaError(ValueError):
    """A measurement whose base keys cannot be read (a malformed record)."""


@dataclass(frozen=True, slots=True)
class Meta:
    test_name: str
    time: int  # measurement_start_time, unix seconds
    cc: str  # upper-case ISO 3166-1 alpha-2, or "ZZ"
    asn: int  # 0 = withheld
    network_name: str


def parse_time(value: Any) -> int:
    """``measurement_start_time`` in the spellings OONI has used, as unix seconds."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        t = int(value)
    elif isinstance(value, str) and value:
        text = value.strip().replace("T", " ").removesuffix("Z")
        try:
            dt = datetime.fromisoformat(text)
        except ValueError:
            raise MetaError(f"measurement_start_time {value[:40]!r} is not a time") from None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        t = int(dt.timestamp())
    else:
        raise MetaError("measurement_start_time missing")
    if not MIN_TIME <= t < MAX_TIME:
        raise MetaError(f"measurement_start_time {value!r} outside 2012..2099")
    return t


def parse_asn(value: Any) -> int:
    if value is None or value == "":
        return 0
    if isinstance(value, int) and not isinstance(value, bool):
        n = value
    elif isinstance(value, str) and (m := _ASN.match(value.strip())):
        n = int(m.group(1))
    else:
        raise MetaError(f"probe_asn {str(value)[:40]!r} is not an AS number")
    if not 0 <= n < 2**32:
        raise MetaError(f"probe_asn {value!r} out of range")
    return n


#: user-assigned codes in use for real countries (OONI and the series rules: Kosovo)
USER_ASSIGNED = frozenset({"XK"})


@cache
def known_country(cc: str) -> bool:
    """Is ``cc`` (upper case) an ISO 3166-1 country of the entity registry (or XK)?"""
    return cc in USER_ASSIGNED or default_registry().get(
        EntityRef(EntityType.COUNTRY, cc)) is not None


def parse_cc(value: Any) -> str:
    """``probe_cc`` upper-cased; missing or ``ZZ`` = unknown; anything else must be a
    country of the registry (a hostile or corrupt code never becomes an entity)."""
    if value is None or value == "":
        return UNKNOWN_CC
    if not isinstance(value, str) or not _CC.match(value):
        raise MetaError(f"probe_cc {str(value)[:40]!r} is not a two-letter country code")
    cc = value.upper()
    if cc != UNKNOWN_CC and not known_country(cc):
        raise MetaError(f"probe_cc {value!r} is not an ISO 3166-1 country")
    return cc


def read_meta(doc: dict[str, Any]) -> Meta:
    """The base keys of one measurement, or :class:`MetaError`."""
    name = doc.get("test_name")
    if not isinstance(name, str) or not name or len(name) > 100:
        raise MetaError("test_name missing or not a short string")
    net = doc.get("probe_network_name")
    return Meta(name, parse_time(doc.get("measurement_start_time")),
                parse_cc(doc.get("probe_cc")), parse_asn(doc.get("probe_asn")),
                net if isinstance(net, str) else "")
