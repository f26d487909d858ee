"""IODA API v2 ``signals/raw`` JSON (https://api.ioda.inetintel.cc.gatech.edu/v2/).

Envelope: ``{"type": ..., "metadata": ..., "data": [...], ...}`` where ``data`` is a list of
series or a list of lists of series (IODA groups by entity). Each series carries
``entityType, entityCode, entityName, datasource, from, until, step, values`` (``values``
may contain null = missing; point i is at ``from + i*step``).

IODA's wire names are translated here, once, so the rest of NetVigil speaks one vocabulary:
``ping-slash24*`` -> ``probing*``, ``merit-nt``/``ucsd-nt`` -> ``telescope``; other names
are kept. A non-empty ``subtype`` is appended as ``<signal>.<subtype>``. The original
datasource names are recorded in the imports table.

Streaming (issue 12, defect 11): the document is read as a stream of parse events
(``ijson``'s ``basic_parse`` over the yajl2 C backend: a well-kept incremental JSON parser,
~10x the speed of its pure-Python backend, without the quadratic "prefix" strings of its
``parse`` on deep documents), never as a whole. One series object is held at a time, its
values in a compact ``array('d')`` (8 bytes per value; the fields may come after the values,
so they cannot be judged earlier); points leave in chunks through a callback. Memory is
therefore bounded by the largest series, not the file: measured with
``benchmarks/bench_import_memory.py`` (see the module docstring of
:mod:`netvigil.series.importers`). Errors name the field path (``data[0][1].values[5]``) and
leave ``line`` None (a parse error names its byte offset).

Hostile numbers and shapes (issue 12): nesting beyond ``rules.MAX_JSON_DEPTH`` is a whole-file
error, found as the events arrive (no recursion anywhere); so is a number the parser cannot
represent (an integer beyond 64 bits, ``1e400``, a 4,301-digit integer: yajl's documented
limits, RFC 8259 section 6 lets a parser set them) and a string or number longer than
``bounds.MAX_JSON_TOKEN_BYTES`` (rule ``json-token-length``); codes, counts, names, signals and
times follow :mod:`netvigil.series.rules` like the CSV path. ``NaN``/``Infinity`` are not JSON
and are refused as such.
"""

from __future__ import annotations

import json
import math
import re
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import ijson  # type: ignore[import-untyped]
import numpy as np
import numpy.typing as npt

from netvigil.model import EntityRef, EntityType, InputError, InvalidEntity, bounds, make_ref
from netvigil.series import rules
from netvigil.series.batch import MAX_EXAMPLE_LINES, Batch, ErrorSink
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


_BACKEND = ijson.get_backend("yajl2_c") if "yajl2_c" in ijson.ALL_BACKENDS else ijson
_BUF = 1 << 16
_OPEN = ("start_map", "start_array")
_CLOSE = ("end_map", "end_array")


class _Nested:
    """The value of a field that is a list or an object (shown in errors, never kept)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def __repr__(self) -> str:
        return "a list" if self.kind == "start_array" else "an object"


@dataclass
class RawSeries:
    """One series object as read: scalar fields, values (NaN where null or bad), bad values
    (index, shown) and whether ``values`` was a list (None: missing)."""

    where: str
    fields: dict[str, Any] = field(default_factory=dict)
    values: array[float] = field(default_factory=lambda: array("d"))
    bad_idx: array[int] = field(default_factory=lambda: array("q"))
    examples: list[tuple[int, str]] = field(default_factory=list)  # the first few bad
    values_kind: str | None = None


#: A JSON string, or a number token yajl may refuse (19+ integer digits: beyond int64; a
#: 3-digit exponent: beyond the double range), not preceded by a number character.
_RISKY = re.compile(rb'"(?:[^"\\]|\\.)*"'
                    rb"|(?<![\d.eE+\-])-?\d{19,}(?:\.\d*)?(?:[eE][+-]?\d+)?"
                    rb"|(?<![\d.eE+\-])-?\d+(?:\.\d*)?[eE][+-]?\d{3,}")
_NUMBER_CHARS = frozenset(b"0123456789.eE+-")
_BEYOND = "<number beyond the float range: "
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')
_CANDIDATE = re.compile(rb"\d{19}|[eE][+-]?\d{3}")  # cheap pre-check for _RISKY numbers


class SafeNumbers:
    """A byte stream that rewrites the numbers yajl cannot represent before it sees them,
    so that they are judged per value under the policy (as the stdlib parser's were) rather
    than failing the whole file: an integer beyond 64 bits becomes the float literal of the
    same number (``10**19`` -> ``1e+19``: "time out of range" for a ``from``), a number beyond
    the double range becomes the string ``"<number beyond the float range: 1e400>"`` (a
    "bad value"). Strings pass unchanged. Blocks without a long digit run or a 3-digit
    exponent are passed through after one C-speed regex scan; a string or number cut by a
    block edge is carried into the next block."""

    def __init__(self, raw: Any) -> None:
        self._raw = raw
        self._carry = b""

    def read(self, n: int = -1) -> bytes:
        if n == 0:
            return b""
        while True:
            data = self._raw.read(n if n > 0 else -1)
            if not data:
                out, self._carry = self._carry, b""
                return _rewrite(out) if out else b""
            buf = self._carry + data
            cut = _safe_cut(buf)
            if not cut and len(buf) > bounds.MAX_JSON_TOKEN_BYTES:  # one huge token: the
                cut = len(buf)  # parser refuses it (rule json-token-length)
            self._carry = buf[cut:]
            if cut:
                return _rewrite(buf[:cut])


def _safe_cut(buf: bytes) -> int:
    """The end of the longest prefix of ``buf`` that ends outside a string and a number."""
    end = 0
    for m in _STRING.finditer(buf):
        end = m.end()
    q = buf.find(b'"', end)
    cut = q if q >= 0 else len(buf)
    while cut > end and buf[cut - 1] in _NUMBER_CHARS:
        cut -= 1
    return cut


def _rewrite(buf: bytes) -> bytes:
    if not _CANDIDATE.search(buf):  # the usual block: nothing to rewrite
        return buf

    def sub(m: re.Match[bytes]) -> bytes:
        tok = m.group(0)
        if tok[:1] == b'"':
            return tok
        text = tok.decode("ascii")
        try:
            x = float(text)
        except (ValueError, OverflowError):
            x = math.inf
        if math.isinf(x):
            shown = text if len(text) <= 40 else f"{text[:40]}... ({len(text)} chars)"
            return json.dumps(f"{_BEYOND}{shown}>").encode()
        if not any(c in text for c in ".eE") and not -2**63 <= int(text[:40]) < 2**63:
            return repr(x).encode()
        return tok
    return _RISKY.sub(sub, buf)


class _Walker:
    """Walks ``basic_parse`` events of an IODA envelope; ``on_series`` gets every series
    object, ``on_bad`` every element of ``data`` that is not one (where, shown)."""

    def __init__(self, fh: Any, path: str, on_series: Callable[[RawSeries], None],
                 on_bad: Callable[[str, str], None]) -> None:
        self.path = path
        self.events: Iterator[tuple[str, Any]] = _BACKEND.basic_parse(
            fh, use_float=True, buf_size=_BUF)
        self.on_series = on_series
        self.on_bad = on_bad

    def _next(self) -> tuple[str, Any]:
        try:
            ev, val = next(self.events)
        except StopIteration:
            raise InputError(self.path, None, "invalid JSON: the document ends early") from None
        except ijson.JSONError as exc:
            raise InputError(self.path, None, f"invalid JSON: {_first_line(exc)}") from None
        if (ev == "string" or ev == "map_key") and len(val) > bounds.MAX_JSON_TOKEN_BYTES:
            r = rules.RULES["json-token-length"]
            raise InputError(self.path, None, f"{r.category}: {r.text}")
        return ev, val

    def _deep(self, depth: int) -> None:
        if depth > rules.MAX_JSON_DEPTH:
            deep = rules.RULES["json-depth"]
            raise InputError(self.path, None, f"{deep.category}: {deep.text} "
                                              f"({rules.MAX_JSON_DEPTH} levels)")

    def _skip(self, ev: str, depth: int) -> None:
        """Skip the value that starts with ``ev`` at nesting ``depth`` (depth-checked)."""
        if ev not in _OPEN:
            return
        self._deep(depth)
        level = 1
        while level:
            ev, _ = self._next()
            if ev in _OPEN:
                level += 1
                self._deep(depth + level - 1)
            elif ev in _CLOSE:
                level -= 1

    def run(self) -> None:
        ev, _ = self._next()
        if ev != "start_map":
            raise InputError(self.path, None,
                             "expected a JSON object (IODA envelope) at top level")
        seen = False
        while True:
            ev, key = self._next()
            if ev == "end_map":
                break
            ev, _ = self._next()
            if key == "data":
                if ev != "start_array":
                    raise InputError(self.path, None,
                                     "'data' must be a list of series (or of lists of series)")
                seen = True
                self._data()
            else:
                self._skip(ev, 2)
        try:  # trailing content after the envelope is invalid JSON too
            for _ in self.events:
                pass
        except ijson.JSONError as exc:
            raise InputError(self.path, None, f"invalid JSON: {_first_line(exc)}") from None
        if not seen:
            raise InputError(self.path, None, "IODA envelope has no 'data' field")

    def _data(self) -> None:
        i = 0
        while True:
            ev, val = self._next()
            if ev == "end_array":
                return
            where = f"data[{i}]"
            if ev == "start_map":
                self._series(where, 3)
            elif ev == "start_array":
                self._deep(3)
                j = 0
                while True:
                    ev, val = self._next()
                    if ev == "end_array":
                        break
                    if ev == "start_map":
                        self._series(f"{where}[{j}]", 4)
                    else:  # depth first: a too-deep document is a whole-file error
                        self._skip(ev, 4)
                        self.on_bad(f"{where}[{j}]", _shown(ev, val))
                    j += 1
            else:
                self.on_bad(where, _shown(ev, val))
            i += 1

    def _series(self, where: str, depth: int) -> None:
        self._deep(depth)
        raw = RawSeries(where)
        while True:
            ev, key = self._next()
            if ev == "end_map":
                break
            ev, val = self._next()
            if key == "values" and ev == "start_array":
                self._deep(depth + 1)
                raw.values_kind = "list"
                raw.values = array("d")  # a repeated key: the last one counts, as in json
                raw.bad_idx, raw.examples = array("q"), []
                self._values(raw, depth + 1)
            elif key == "values":
                raw.values_kind = "other"
                raw.fields[key] = _Nested(ev) if ev in _OPEN else val
                self._skip(ev, depth + 1)
            elif ev in _OPEN:
                raw.fields[key] = _Nested(ev)
                self._skip(ev, depth + 1)
            else:
                raw.fields[key] = val
        self.on_series(raw)

    def _values(self, raw: RawSeries, depth: int) -> None:
        """The hot loop: one event per value."""
        vals = raw.values
        append = vals.append
        nan = math.nan
        events = self.events
        while True:
            try:  # the raw event iterator: one Python call less per value
                ev, val = next(events)
            except StopIteration:
                raise InputError(self.path, None, "invalid JSON: the document ends early"
                                 ) from None
            except ijson.JSONError as exc:
                raise InputError(self.path, None, f"invalid JSON: {_first_line(exc)}") from None
            if ev == "number":
                append(val)
            elif ev == "null":
                append(nan)
            elif ev == "end_array":
                return
            else:
                if ev == "string" and len(val) > bounds.MAX_JSON_TOKEN_BYTES:
                    r = rules.RULES["json-token-length"]
                    raise InputError(self.path, None, f"{r.category}: {r.text}")
                i = len(vals)
                append(nan)
                raw.bad_idx.append(i)
                if len(raw.examples) < MAX_EXAMPLE_LINES:
                    raw.examples.append((i, _shown(ev, val)))
                self._skip(ev, depth + 1)


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _shown(ev: str, val: Any) -> str:
    if ev in _OPEN:
        return repr(_Nested(ev))
    if ev == "string" and val.startswith(_BEYOND):  # put there by SafeNumbers
        return str(val)
    return _show(val)


#: (ref, signal, value indexes, times, values, step, where) of a series' accepted points
Emit = Callable[[EntityRef, str, "npt.NDArray[np.int64]", "npt.NDArray[np.int64]",
                 "npt.NDArray[np.float64]", int, str], None]


@dataclass
class IodaOutcome:
    """What a file gave besides its points (the importer's imports row and entities)."""

    rows_read: int = 0
    names: dict[EntityRef, str] = field(default_factory=dict)
    parents: dict[EntityRef, EntityRef] = field(default_factory=dict)
    source_names: set[str] = field(default_factory=set)


def stream_ioda(fh: BinaryIO, path: str, sink: ErrorSink, emit: Emit) -> IodaOutcome:
    """Read an IODA envelope from a binary stream (UTF-8, no BOM) series by series; every
    series' accepted points go to ``emit``; bad ones to ``sink`` under its policy."""
    out = IodaOutcome()

    def bad_item(where: str, shown: str) -> None:
        out.rows_read += 1
        sink.bad(None, "bad series", f"expected an object, got {shown}", where=where)

    _Walker(SafeNumbers(fh), path, lambda raw: _accept(raw, out, sink, emit), bad_item).run()
    return out


def parse_ioda(text: str, path: str, sink: ErrorSink) -> Batch:
    """The whole document into a :class:`Batch` (in memory: tests and fuzz targets; the
    importer streams with :func:`stream_ioda`)."""
    import io

    batch = Batch()

    def emit(ref: EntityRef, signal: str, idx: npt.NDArray[np.int64],
             times: npt.NDArray[np.int64], values: npt.NDArray[np.float64], step: int,
             where: str) -> None:
        for i, t, v in zip(idx.tolist(), times.tolist(), values.tolist(), strict=True):
            batch.add(ref, signal, t, v, f"{where}.values[{i}]", sink, None, step)

    out = stream_ioda(io.BytesIO(text.removeprefix("\ufeff").encode("utf-8", "surrogatepass")),
                      path, sink, emit)
    batch.rows_read = out.rows_read
    batch.names, batch.parents, batch.source_names = out.names, out.parents, out.source_names
    return batch


def _accept(raw: RawSeries, out: IodaOutcome, sink: ErrorSink, emit: Emit) -> None:
    """Validate one series (the rules of the module docstring) and emit its good points."""
    where, s = raw.where, raw.fields
    n = len(raw.values) if raw.values_kind == "list" else 1
    out.rows_read += n
    for fld in ("entityType", "entityCode", "datasource", "from", "step", "values"):
        if fld not in s and not (fld == "values" and raw.values_kind is not None):
            sink.bad(None, "bad series", f"missing field {fld!r}", where=where, units=n)
            return
    if raw.values_kind != "list":
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
    last = start + (n - 1) * step if n else start
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
    name = s.get("entityName")
    if isinstance(name, str) and rules.CONTROL_RE.search(name):
        sink.bad(None, *rules.rule_error("control-name", rules.CONTROL_RE.sub("\ufffd", name)),
                 where=f"{where}.entityName", units=n)
        return
    if isinstance(name, str) and len(name.strip()) > bounds.MAX_NAME_LEN:
        sink.bad(None, *rules.rule_error("name-length", f"{len(name.strip())} characters"),
                 where=f"{where}.entityName", units=n)
        return
    out.source_names.add(ds.strip())
    if isinstance(name, str) and name.strip():
        out.names[ref] = name.strip()
    if ref.type is EntityType.REGION:
        out.parents[ref] = make_ref(EntityType.COUNTRY, ref.code.split("-", 1)[0])
    values = np.frombuffer(raw.values, dtype=np.float64) if n else np.zeros(0)
    ok = _value_errors(raw, values, signal, sink)
    idx = np.flatnonzero(ok)
    if idx.size:
        emit(ref, signal, idx, start + idx * step, values[idx], step, where)


def _value_errors(raw: RawSeries, values: npt.NDArray[np.float64], signal: str,
                  sink: ErrorSink) -> npt.NDArray[np.bool_]:
    """Bad values and negative counts, reported in index order (the first few of each with
    their path, the rest counted); returns the mask of good values."""
    ok = np.ones(values.size, dtype=bool)
    bad_idx = np.frombuffer(raw.bad_idx, dtype=np.int64)
    ok[bad_idx] = False
    neg = np.flatnonzero(ok & (values < 0)) if signal in rules.COUNT_SIGNALS else bad_idx[:0]
    ok[neg] = False
    errs: list[tuple[int, str, str]] = [
        (i, "bad value", f"expected a finite number or null, got {shown}")
        for i, shown in raw.examples]
    errs += [(int(i), *rules.rule_error("count-nonnegative", f"{values[i]!r} for {signal}"))
             for i in neg[:MAX_EXAMPLE_LINES]]
    for i, cat, detail in sorted(errs):
        sink.bad(None, cat, detail, where=f"{raw.where}.values[{i}]")
    sink.more("bad value", bad_idx.size - len(raw.examples))
    sink.more(rules.RULES["count-nonnegative"].category,
              int(neg.size) - min(int(neg.size), MAX_EXAMPLE_LINES))
    return ok


def _show(v: Any) -> str:
    """A short repr of a JSON value for an error line (never the whole of a huge list)."""
    if isinstance(v, float) and math.isinf(v):
        return f"{v!r} (a number beyond the float range, about 1.8e308)"
    return rules.shorten(json.dumps(v) if isinstance(v, list | dict) else repr(v))
