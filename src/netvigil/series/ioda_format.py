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

Hostile numbers and shapes (issue 12): integers longer than ``rules.MAX_INT_DIGITS`` digits
are read as floats (``inf`` beyond 1e308) so Python's 4,300-digit conversion limit never
raises; nesting beyond ``rules.MAX_JSON_DEPTH`` is a whole-file error (checked without
recursion, and a RecursionError of the stdlib parser is turned into the same error); codes,
counts, names and signals follow :mod:`netvigil.series.rules` like the CSV path.
"""

from __future__ import annotations

import json
import math
from typing import Any

from netvigil.model import EntityType, InputError, InvalidEntity, bounds, make_ref
from netvigil.series import rules
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


def _parse_int(digits: str) -> int | float:
    """JSON integers beyond :data:`~netvigil.series.rules.MAX_INT_DIGITS` digits become
    floats (``inf`` past 1e308): Python refuses to convert more than 4,300 digits with a
    ValueError, and no time or value that long is plausible; the range rules refuse it."""
    return int(digits) if len(digits) <= rules.MAX_INT_DIGITS else float(digits)


def _depth_exceeds(doc: Any, bound: int) -> bool:
    """Is any container nested deeper than ``bound``? (Iterative: no recursion limit.)"""
    stack: list[tuple[Any, int]] = [(doc, 1)]
    while stack:
        node, d = stack.pop()
        if d > bound:
            return True
        if isinstance(node, dict):
            stack.extend((v, d + 1) for v in node.values() if isinstance(v, dict | list))
        elif isinstance(node, list):
            stack.extend((v, d + 1) for v in node if isinstance(v, dict | list))
    return False


def _load(text: str, path: str) -> Any:
    """The JSON document; InputError for invalid JSON and for nesting beyond
    :data:`~netvigil.series.rules.MAX_JSON_DEPTH` (rule ``json-depth``), whole-file errors
    whatever the policy (an envelope that cannot be read has no "rest" to import)."""
    deep = rules.RULES["json-depth"]
    try:
        doc = json.loads(text, parse_int=_parse_int)
    except json.JSONDecodeError as exc:
        raise InputError(path, exc.lineno, f"invalid JSON: {exc.msg} (column {exc.colno})"
                         ) from None
    except RecursionError:
        doc = None
        too_deep = True
    else:
        too_deep = _depth_exceeds(doc, rules.MAX_JSON_DEPTH)
    if too_deep:
        raise InputError(path, None, f"{deep.category}: {deep.text} "
                                     f"({rules.MAX_JSON_DEPTH} levels)")
    return doc


def parse_ioda(text: str, path: str, sink: ErrorSink) -> Batch:
    doc = _load(text, path)
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
        sink.bad(None, "bad series", f"'from' must be unix seconds, got {_show(s['from'])}",
                 where=f"{where}.from", units=n)
        return
    if step is None or step <= 0:
        sink.bad(None, "bad series", f"'step' must be a positive integer, got {_show(s['step'])}",
                 where=f"{where}.step", units=n)
        return
    last = start + (len(values) - 1) * step if values else start
    if start < MIN_TIME or last >= MAX_TIME:
        sink.bad(None, "time out of range",
                 f"{rules.RULES['time-range'].text}, got from={start} to {last}",
                 where=f"{where}.from", units=n)
        return
    try:
        etype = str(s["entityType"])
        ref = make_ref(etype, str(s["entityCode"]))
        if ref.type not in ENTITY_TYPES:
            raise InvalidEntity(f"entity type must be country, region or asn, got {etype!r}")
    except InvalidEntity as exc:
        sink.bad(None, "bad entity", str(exc), where=f"{where}.entityCode", units=n)
        return
    if not rules.known_code(ref.type.value, ref.code):
        sink.bad(None, *rules.rule_error("code-registry", ref.code),
                 where=f"{where}.entityCode", units=n)
        return
    ds = s["datasource"]
    if not isinstance(ds, str) or not ds.strip():
        sink.bad(None, "bad series", f"'datasource' must be a non-empty string, got {ds!r}",
                 where=f"{where}.datasource", units=n)
        return
    subtype = s.get("subtype")
    signal = signal_name(ds.strip(), subtype.strip() if isinstance(subtype, str) else None)
    problem = rules.signal_problem(signal)
    if problem is not None:
        sink.bad(None, *problem, where=f"{where}.datasource", units=n)
        return
    batch.source_names.add(ds.strip())
    name = s.get("entityName")
    if isinstance(name, str) and rules.CONTROL_RE.search(name):
        sink.bad(None, *rules.rule_error("control-name", rules.CONTROL_RE.sub("\ufffd", name)),
                 where=f"{where}.entityName", units=n)
        return
    if isinstance(name, str) and len(name.strip()) > bounds.MAX_NAME_LEN:
        sink.bad(None, *rules.rule_error("name-length", f"{len(name.strip())} characters"),
                 where=f"{where}.entityName", units=n)
        return
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
            sink.bad(None, "bad value", f"expected a finite number or null, got {_show(v)}",
                     where=vw)
            continue
        if value < 0 and signal in rules.COUNT_SIGNALS:
            sink.bad(None, *rules.rule_error("count-nonnegative", f"{value!r} for {signal}"),
                     where=vw)
            continue
        batch.add(ref, signal, start + i * step, value, vw, sink, None, step)


def _show(v: Any) -> str:
    """A short repr of a JSON value for an error line (never the whole of a huge list)."""
    if isinstance(v, float) and math.isinf(v):
        return f"{v!r} (a number beyond the float range, about 1.8e308)"
    return rules.shorten(json.dumps(v) if isinstance(v, list | dict) else repr(v))
