"""CSV long format: one point per row.

Header (any column order): ``time,entity_type,entity_code,signal,value`` required,
``entity_name,parent`` optional; any other column is an error (a typo such as ``vaule``
must not silently import nothing). Line numbers are 1-based with the header as line 1.

* ``time``: ISO 8601 (``Z``, an offset, or naive = UTC) or unix seconds; whole seconds only.
* ``entity_type``: country | region | asn; codes canonicalised (``kz`` -> ``KZ``,
  ``AS9198`` -> ``9198``).
* ``parent``: a country code; for a region it must equal the region's prefix (and defaults
  to it); countries take no parent.
* ``value``: a finite number, or empty for missing (stored as NULL, distinct from 0).
"""

from __future__ import annotations

import csv
import math
from datetime import UTC, datetime

from netvigil.model import EntityRef, EntityType, InputError, InvalidEntity, make_ref
from netvigil.series.batch import Batch, ErrorSink

REQUIRED = ("time", "entity_type", "entity_code", "signal", "value")
OPTIONAL = ("entity_name", "parent")
ALLOWED = REQUIRED + OPTIONAL
ENTITY_TYPES = (EntityType.COUNTRY, EntityType.REGION, EntityType.ASN)


class RowProblem(ValueError):
    """A bad field: ``category`` groups skip counts, the message is the detail."""

    def __init__(self, category: str, detail: str) -> None:
        super().__init__(detail)
        self.category = category


def parse_time(text: str) -> int:
    """ISO 8601 or unix seconds -> unix seconds; raises RowProblem."""
    raw = text.strip()
    if not raw:
        raise RowProblem("bad time", "empty time")
    try:
        num = float(raw) if "_" not in raw else None
    except ValueError:
        num = None
    if num is not None:
        if not math.isfinite(num) or num != int(num):
            raise RowProblem("bad time", f"unix time must be whole seconds, got {raw!r}")
        return int(num)
    try:
        dt = datetime.fromisoformat(raw.replace("z", "Z"))
    except ValueError:
        raise RowProblem(
            "bad time", f"expected ISO 8601 (e.g. 2022-01-05T10:40:00Z) or unix seconds, "
            f"got {raw!r}") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    if dt.microsecond:
        raise RowProblem("bad time", f"time must be whole seconds, got {raw!r}")
    return int(dt.timestamp())


def parse_value(text: str) -> float:
    raw = text.strip()
    if not raw:
        return math.nan
    try:
        if "_" in raw:
            raise ValueError
        v = float(raw)
    except ValueError:
        raise RowProblem("non-numeric value",
                         f"value must be a number or empty for missing, got {raw!r}") from None
    if not math.isfinite(v):
        raise RowProblem("non-finite value",
                         f"value must be finite (leave it empty for missing), got {raw!r}")
    return v


def parse_entity(etype: str, code: str, parent: str) -> tuple[EntityRef, EntityRef | None]:
    try:
        ref = make_ref(etype, code)
    except InvalidEntity as exc:
        cat = "bad entity type" if "entity type" in str(exc) else "bad entity code"
        raise RowProblem(cat, str(exc)) from None
    if ref.type not in ENTITY_TYPES:
        raise RowProblem("bad entity type",
                         f"entity type must be country, region or asn, got {etype!r}")
    par_raw = parent.strip()
    par: EntityRef | None = None
    if par_raw:
        if ref.type is EntityType.COUNTRY:
            raise RowProblem("bad parent", f"a country has no parent, got {par_raw!r}")
        try:
            par = make_ref(EntityType.COUNTRY, par_raw)
        except InvalidEntity as exc:
            raise RowProblem("bad parent", str(exc)) from None
    if ref.type is EntityType.REGION:
        prefix = make_ref(EntityType.COUNTRY, ref.code.split("-", 1)[0])
        if par is not None and par != prefix:
            raise RowProblem("bad parent",
                             f"region {ref.code} lies in {prefix.code}, not {par.code}")
        par = prefix
    return ref, par


def parse_csv(text: str, path: str, sink: ErrorSink) -> Batch:
    """Parse CSV text; row errors go to ``sink``, whole-file errors raise InputError."""
    reader = csv.reader(text.splitlines(keepends=True), strict=True)
    try:
        header = next(reader)
    except StopIteration:
        raise InputError(path, None, "empty file") from None
    except csv.Error as exc:
        raise InputError(path, 1, f"unreadable header: {exc}") from None
    names = [h.strip().lower() for h in header]
    unknown = [h for h in names if h not in ALLOWED]
    if unknown:
        raise InputError(path, 1, f"unknown column(s) {', '.join(map(repr, unknown))}; "
                                  f"allowed: {', '.join(ALLOWED)}")
    dups = sorted({h for h in names if names.count(h) > 1})
    if dups:
        raise InputError(path, 1, f"duplicate column(s) {', '.join(dups)}")
    missing = [h for h in REQUIRED if h not in names]
    if missing:
        raise InputError(path, 1, f"missing required column(s) {', '.join(missing)}; "
                                  f"required: {', '.join(REQUIRED)}")
    col = {h: i for i, h in enumerate(names)}
    batch = Batch()
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            batch.rows_read += 1
            sink.bad(reader.line_num, "malformed CSV", str(exc))
            continue
        line = reader.line_num
        if not row or (len(row) == 1 and not row[0].strip()):
            continue  # blank line
        batch.rows_read += 1
        if len(row) != len(names):
            sink.bad(line, "wrong field count",
                     f"expected {len(names)} fields, got {len(row)}")
            continue
        try:
            t = parse_time(row[col["time"]])
            ref, parent = parse_entity(row[col["entity_type"]], row[col["entity_code"]],
                                       row[col["parent"]] if "parent" in col else "")
            signal = row[col["signal"]].strip()
            if not signal:
                raise RowProblem("bad signal", "signal name is empty")
            value = parse_value(row[col["value"]])
        except RowProblem as exc:
            sink.bad(line, exc.category, str(exc))
            continue
        batch.add(ref, signal, t, value, f"line {line}", sink, line)
        name = row[col["entity_name"]].strip() if "entity_name" in col else ""
        if name:
            batch.names[ref] = name  # last non-empty name in the file wins
        if parent is not None:
            batch.parents[ref] = parent
    return batch
