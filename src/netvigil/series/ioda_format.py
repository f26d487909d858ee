"""IODA API v2 ``signals/raw`` JSON (https://api.ioda.inetintel.cc.gatech.edu/v2/).

Envelope: ``{"type": ..., "metadata": ..., "data": [...], ...}`` where ``data`` is a list of
series or a list of lists of series (IODA groups by entity). Each series carries
``entityType, entityCode, entityName, datasource, from, until, step, values`` (``values``
may contain null = missing; point i is at ``from + i*step``).

IODA's wire names are translated here, once, so the rest of NetVigil speaks one vocabulary:
``ping-slash24*`` -> ``probing*``, ``merit-nt``/``ucsd-nt`` -> ``telescope``; other names
are kept. A non-empty ``subtype`` is appended as ``<signal>.<subtype>``. The original
datasource names are recorded in the imports table.

JSON has no useful line numbers through the stdlib parser, so errors name the field path
(``data[0][1].values[5]``) in the reason and leave ``line`` None.
"""

from __future__ import annotations

import json
import math
from typing import Any

from netvigil.model import EntityType, InputError, InvalidEntity, make_ref
from netvigil.series.batch import Batch, ErrorSink
from netvigil.series.csv_format import MAX_TIME, MIN_TIME

DATASOURCE_NAMES = {
    "ping-slash24": "probing",
    "ping-slash24-loss": "probing-loss",
    "ping-slash24-latency": "probing-latency",
    "merit-nt": "telescope",
    "ucsd-nt": "telescope",
    "bgp": "bgp",
}
ENTITY_TYPES = (EntityType.COUNTRY, EntityType.REGION, EntityType.ASN)


def signal_name(datasource: str, subtype: str | None = None) -> str:
    """NetVigil's name for an IODA datasource (and optional subtype)."""
    name = DATASOURCE_NAMES.get(datasource, datasource)
    return f"{name}.{subtype}" if subtype else name


def _int(v: Any) -> int | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return None


def _series_list(doc: Any, path: str) -> list[tuple[str, Any]]:
    if not isinstance(doc, dict):
        raise InputError(path, None, "expected a JSON object (IODA envelope) at top level")
    if "data" not in doc:
        raise InputError(path, None, "IODA envelope has no 'data' field")
    data = doc["data"]
    if not isinstance(data, list):
        raise InputError(path, None, "'data' must be a list of series (or of lists of series)")
    out: list[tuple[str, Any]] = []
    for i, item in enumerate(data):
        if isinstance(item, list):
            out.extend((f"data[{i}][{j}]", s) for j, s in enumerate(item))
        else:
            out.append((f"data[{i}]", item))
    return out


def parse_ioda(text: str, path: str, sink: ErrorSink) -> Batch:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(path, exc.lineno, f"invalid JSON: {exc.msg} (column {exc.colno})"
                         ) from None
    batch = Batch()
    for where, s in _series_list(doc, path):
        _parse_one(where, s, batch, sink)
    return batch


def _parse_one(where: str, s: Any, batch: Batch, sink: ErrorSink) -> None:
    if not isinstance(s, dict):
        batch.rows_read += 1
        sink.bad(None, "bad series", "expected an object", where=where)
        return
    values = s.get("values")
    n = len(values) if isinstance(values, list) else 1
    batch.rows_read += n
    for fld in ("entityType", "entityCode", "datasource", "from", "step", "values"):
        if fld not in s:
            sink.bad(None, "bad series", f"missing field {fld!r}", where=where, units=n)
            return
    if not isinstance(values, list):
        sink.bad(None, "bad series", "'values' must be a list", where=f"{where}.values",
                 units=n)
        return
    start, step = _int(s["from"]), _int(s["step"])
    if start is None:
        sink.bad(None, "bad series", f"'from' must be unix seconds, got {s['from']!r}",
                 where=f"{where}.from", units=n)
        return
    if step is None or step <= 0:
        sink.bad(None, "bad series", f"'step' must be a positive integer, got {s['step']!r}",
                 where=f"{where}.step", units=n)
        return
    last = start + (len(values) - 1) * step if values else start
    if start < MIN_TIME or last >= MAX_TIME:
        sink.bad(None, "time out of range",
                 f"times must lie in 1970-01-01..2100-01-01 ({MIN_TIME}..{MAX_TIME - 1} unix "
                 f"seconds), got from={start} to {last}", where=f"{where}.from", units=n)
        return
    try:
        etype = str(s["entityType"])
        ref = make_ref(etype, str(s["entityCode"]))
        if ref.type not in ENTITY_TYPES:
            raise InvalidEntity(f"entity type must be country, region or asn, got {etype!r}")
    except InvalidEntity as exc:
        sink.bad(None, "bad entity", str(exc), where=f"{where}.entityCode", units=n)
        return
    ds = s["datasource"]
    if not isinstance(ds, str) or not ds.strip():
        sink.bad(None, "bad series", f"'datasource' must be a non-empty string, got {ds!r}",
                 where=f"{where}.datasource", units=n)
        return
    subtype = s.get("subtype")
    signal = signal_name(ds.strip(), subtype.strip() if isinstance(subtype, str) else None)
    batch.source_names.add(ds.strip())
    name = s.get("entityName")
    if isinstance(name, str) and name.strip():
        batch.names[ref] = name.strip()
    if ref.type is EntityType.REGION:
        batch.parents[ref] = make_ref(EntityType.COUNTRY, ref.code.split("-", 1)[0])
    for i, v in enumerate(values):
        vw = f"{where}.values[{i}]"
        if v is None:
            value = math.nan
        elif isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v):
            value = float(v)
        else:
            sink.bad(None, "bad value", f"expected a finite number or null, got {v!r}",
                     where=vw)
            continue
        batch.add(ref, signal, start + i * step, value, vw, sink, None, step)
