"""CSV long format, streamed: DuckDB reads and validates the file, points leave in chunks.

Header (any column order): ``time,entity_type,entity_code,signal,value`` required,
``entity_name,parent`` optional; any other column is an error (a typo such as ``vaule``
must not silently import nothing). Line numbers are 1-based with the header as line 1; a
record's line is the physical line it ends on (as ``csv.reader.line_num``).

* ``time``: ISO 8601 (``Z``, an offset, or naive = UTC) or unix seconds; whole seconds only,
  within [1990-01-01, 2100-01-01) (:data:`MIN_TIME`, :data:`MAX_TIME`, rule ``time-range``;
  why these years: :mod:`netvigil.model.bounds`).
* ``entity_type``: country | region | asn; codes canonicalised (``kz`` -> ``KZ``,
  ``AS9198`` -> ``9198``) by the same rules as :func:`netvigil.model.canonical_code`.
* ``parent``: a country code; for a region it must equal the region's prefix (and defaults
  to it); countries take no parent.
* ``value``: a finite number, or empty for missing (stored as NULL, distinct from 0).
* The same key twice with the same value is kept once; with another value the later row is
  a "conflicting duplicate" naming both lines.
* The plausibility rules of :mod:`netvigil.series.rules` (issue 12): registry codes, no
  negative counts, ASCII times and values, no control characters in names and signals,
  bounded signal names; each is a category of its own under ``skip``. Error details quote
  at most 60 characters of the offending field.
* Lines are split on ``\n`` / ``\r`` only (DuckDB's reader and :func:`parse_header`), never
  on U+2028, ``\x0b``, ``\x1c``... as ``str.splitlines`` does: those stay in their field.

Measured (1M rows, ``series import`` in a child process, 2 shared cores, two runs each):
2.26 / 2.19 s, 376 / 389 MB RSS with the rules against 2.27 / 2.03 s, 394 / 382 MB without.

Design (measured in ``benchmarks/bench_import.py``; 5M rows): the old row-by-row Python
parser ran at 73k rows/s with 4.16 GB peak. Candidates: (a) chunked ``csv.reader`` +
vectorised checks still tokenises in Python (the loop alone is ~1M rows/s before any check);
(b) ``pyarrow.csv`` streaming is not installed here and drops blank lines without telling,
like (c) DuckDB's parallel ``read_csv`` (~1.2M rows/s on this machine), which we use: it
splits the file into text columns (a streaming ``row_number()`` gives each row its ordinal,
mapped to a line by :class:`netvigil.series.scan.FileScan`), keeps rows it cannot split in
``store_rejects`` with their record number, and one SQL statement types and validates every
row into the temp table ``_val`` (canonical columns plus the first failing check as
``err``/``detail``). The whole file is validated before anything is written.

Write: the good rows never leave DuckDB. ``_good`` (a view over ``_val``) is handed by name
to the pipeline (:meth:`netvigil.pipeline.Pipeline.write_staged`), which writes it with
:meth:`netvigil.store.Store.write_staged_points`: the same upsert body as every emitted
``PointBatch`` (``write_points`` registers its numpy columns and calls that body), so there
is still one path for imported points, minus the numpy round trip. The series bookkeeping
(step, origin, first/last, n_points) is the store's one set-based pass over those rows.

Measured with ``benchmarks/bench_import.py`` (the CLI in a child process, 1,000 series of
5-minute points, 2 shared cores; import / re-import of the same file, which stays one
transaction):

=========================================  ==================  ==================  =======
design                                     5M rows             20M rows            RSS
=========================================  ==================  ==================  =======
points leave in 500k-row numpy chunks      8.5 s / 15.4 s      53.2 s / 111.6 s*   grows
                                           1.71 / 2.21 GB      5.70 / 5.76 GB
one set-based write from the staging       8.4 s / 8.4 s       33.2 s / 34.2 s     bounded
                                           0.92 / 1.15 GB      1.16 / 1.19 GB
DuckDB ``read_csv`` into a table (peer)    1.6 s, 0.25 GB      3.6 s, 0.42 GB
=========================================  ==================  ==================  =======

(*: this re-import ran while the change was being edited in: it may mix old and new code.)
Speed on 5M rows is the same (validation,
3.4 s, and the grid pass, 2.2 s, dominate); what the round trip cost was memory and time
proportional to the file.

Why the second is bounded although the import stays ONE transaction (so ``fail`` and a crash
write nothing): DuckDB writes the row groups of a large append to a persistent table into
the database file as they fill ("optimistic writes"), and the temp tables (``_val``, the
store's ``_stage``/``_hit`` on a re-import) live in its buffer manager, which spills to the
store's temp directory beyond the import's cap
(:data:`netvigil.series.importers.IMPORT_SETTINGS`, 128 MB; it was 1 GB here, which let the
peak grow to 929 MB at 4M rows); the peak is that cap plus the Python process. (The chunked
design's growth, 10 to 40 transaction-local writes of registered numpy columns, is DuckDB
holding each registered view's columns until the commit: issue 12, defect 11.) Staging in a
separate DuckDB file was not needed (and a DuckDB transaction writes to one attached
database only). The duplicate check sorts key hashes in numpy in hash-prefix parts of at most
:data:`HASH_PART` rows, so it is bounded too.
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
from dataclasses import dataclass, field
from typing import Any, Protocol

import duckdb
import numpy as np

from netvigil.model import Entity, InputError, bounds, make_ref
from netvigil.model.facts import FactSink
from netvigil.series import rules
from netvigil.series.batch import SkipReport
from netvigil.series.scan import FileScan

REQUIRED = ("time", "entity_type", "entity_code", "signal", "value")
OPTIONAL = ("entity_name", "parent")
ALLOWED = REQUIRED + OPTIONAL
MIN_TIME = bounds.MIN_TIME  # 1990-01-01T00:00:00Z
MAX_TIME = bounds.MAX_TIME  # 2100-01-01T00:00:00Z (exclusive)


@dataclass
class CsvOutcome:
    rows_read: int = 0
    accepted: int = 0
    skipped: int = 0
    series_touched: int = 0
    report: SkipReport = field(default_factory=SkipReport)


def parse_header(scan: FileScan) -> list[str]:
    """The header's column names (lower case); InputError for whole-file header problems."""
    head = scan.head.removeprefix("\ufeff")
    # split on \n / \r only: str.splitlines also splits on U+2028, \x0b, \x1c... (defect 9)
    reader = csv.reader(io.StringIO(head, newline=""), strict=True)
    path = scan.path
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
    return names


def _q(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _read_sql(scan: FileScan, names: list[str]) -> str:
    cols = "{" + ", ".join(f"{_q(n)}: 'VARCHAR'" for n in names) + "}"
    return f"""read_csv(
            {_q(scan.path)}, columns = {cols}, header = true, auto_detect = false,
            delim = ',', quote = '"', escape = '"', strict_mode = true,
            null_padding = false, compression = {_q('gzip' if scan.gzip else 'none')},
            max_line_size = {bounds.MAX_LINE_BYTES},
            store_rejects = true, rejects_table = '_rej', rejects_scan = '_rejs')"""


def _rep(expr: str) -> str:
    """SQL spelling of Python's repr() of a str (for the error details), at most 60
    characters of it (a 4,301-digit number must not make a 4,301-character error line),
    control characters shown as U+FFFD (the error stays one line on a terminal)."""
    shown = f"regexp_replace(left({expr}, 60), {_q(rules.CONTROL_RE2)}, '\ufffd', 'g')"
    return (f"'''' || {shown} || '''' || CASE WHEN length({expr}) > 60 "
            f"THEN '... (' || length({expr}) || ' chars)' ELSE '' END")


def _rule(rule_id: str, expr: str) -> tuple[str, str]:
    """(category, detail) SQL of a rule from :data:`netvigil.series.rules.RULES`."""
    r = rules.RULES[rule_id]
    return _q(r.category), f"{_q(r.text + ', got ')} || {_rep(expr)}"


def _validate_sql(scan: FileScan, names: list[str]) -> str:
    """One scan of the file → ``_val``: canonical columns and the first failing check.

    Checks run in the order of the old row parser (time, entity, parent, signal, value), so
    the category of a row with several problems is unchanged. Codes follow
    ``model.canonical_code``; times outside [MIN_TIME, MAX_TIME) are "time out of range".
    """
    name = "trim(coalesce(entity_name, ''))" if "entity_name" in names else "''"
    parent = "upper(trim(coalesce(parent, '')))" if "parent" in names else "''"
    rng = rules.RULES["time-range"].text + ", got "
    at, av = _rule("ascii-time", "traw"), _rule("ascii-value", "vraw")
    ctrl = _q(rules.CONTROL_RE2)
    cs, cn = _rule("control-signal", "sig"), _rule("control-name", "ename")
    nl = _rule("name-length", "ename")
    sl, nc = _rule("signal-length", "sig"), _rule("count-nonnegative", "vraw")
    counts = ", ".join(_q(c) for c in sorted(rules.COUNT_SIGNALS))
    return f"""
    CREATE OR REPLACE TEMP TABLE _val AS
    WITH r AS (
        -- a streaming row_number keeps file order: k = the row's ordinal among the rows
        -- DuckDB returned (FileScan maps it to a line)
        SELECT row_number() OVER () - 1 AS k,
               trim(coalesce("time", '')) AS traw,
               trim(coalesce(entity_type, '')) AS etraw,
               lower(trim(coalesce(entity_type, ''))) AS et,
               trim(coalesce(entity_code, '')) AS craw,
               upper(trim(coalesce(entity_code, ''))) AS cu,
               trim(coalesce(signal, '')) AS sig,
               trim(coalesce(value, '')) AS vraw,
               {name} AS ename, {parent} AS par
        FROM {_read_sql(scan, names)}
    ), p AS (
        SELECT *,
            -- 'YYYY-' is ISO; skip the (slow, failing) number cast for those
            CASE WHEN substr(traw, 5, 1) <> '-' AND NOT contains(traw, '_')
                 THEN try_cast(traw AS DOUBLE) END AS tnum,
            CASE WHEN tnum IS NULL AND traw <> ''
                 THEN try_cast(CASE WHEN suffix(traw, 'z') THEN left(traw, -1) || 'Z'
                                    ELSE traw END AS TIMESTAMPTZ) END AS ts,
            CASE WHEN tnum IS NOT NULL AND isfinite(tnum) AND tnum = floor(tnum)
                      AND tnum > -1e15 AND tnum < 1e15 THEN tnum::BIGINT
                 WHEN ts IS NOT NULL AND isfinite(ts) AND epoch_us(ts) % 1000000 = 0
                      THEN epoch_us(ts) // 1000000 END AS t,
            CASE et
              WHEN 'country' THEN CASE WHEN regexp_full_match(cu, '[A-Z]{{2}}') THEN cu END
              WHEN 'region' THEN
                CASE WHEN regexp_full_match(cu, '[A-Z]{{2}}-[A-Z0-9]+') THEN cu END
              WHEN 'asn' THEN
                CASE WHEN regexp_full_match(cu, '(AS)?[0-9]+')
                     THEN try_cast(regexp_replace(cu, '^AS', '') AS HUGEINT) END::VARCHAR
            END AS code,
            CASE WHEN vraw <> '' AND NOT contains(vraw, '_')
                 THEN try_cast(vraw AS DOUBLE) END AS v
        FROM r
    )
    SELECT k, et, code, sig, t, hash(et, code, sig, t) AS h,
        CASE WHEN v IS NULL OR isfinite(v) THEN v END AS v,
        nullif(ename, '') AS ename,
        CASE WHEN et = 'region' THEN left(code, 2) WHEN par <> '' THEN par END AS par,
        CASE
          WHEN traw = '' THEN 'bad time'
          WHEN NOT regexp_full_match(traw, '[\x20-\x7e]*') THEN {at[0]}
          WHEN tnum IS NOT NULL AND t IS NULL AND isfinite(tnum) AND tnum = floor(tnum)
            THEN 'time out of range'
          WHEN t IS NULL THEN 'bad time'
          WHEN t < {MIN_TIME} OR t >= {MAX_TIME} THEN 'time out of range'
          WHEN et NOT IN ('country', 'region', 'asn') THEN 'bad entity type'
          WHEN code IS NULL OR (et = 'asn' AND (code::HUGEINT < 1
                                                OR code::HUGEINT >= 4294967296))
            THEN 'bad entity code'
          WHEN par <> '' AND et = 'country' THEN 'bad parent'
          WHEN par <> '' AND NOT regexp_full_match(par, '[A-Z]{{2}}') THEN 'bad parent'
          WHEN par <> '' AND et = 'region' AND par <> left(code, 2) THEN 'bad parent'
          WHEN sig = '' THEN 'bad signal'
          WHEN length(sig) > {rules.MAX_SIGNAL_LEN} THEN {sl[0]}
          WHEN regexp_matches(sig, {ctrl}) THEN {cs[0]}
          WHEN regexp_matches(ename, {ctrl}) THEN {cn[0]}
          WHEN length(ename) > {bounds.MAX_NAME_LEN} THEN {nl[0]}
          WHEN NOT regexp_full_match(vraw, '[\x20-\x7e]*') THEN {av[0]}
          WHEN vraw <> '' AND v IS NULL THEN 'non-numeric value'
          WHEN v IS NOT NULL AND NOT isfinite(v) THEN 'non-finite value'
          WHEN v < 0 AND sig IN ({counts}) THEN {nc[0]}
        END AS err,
        CASE WHEN err IS NULL THEN NULL
          WHEN traw = '' THEN 'empty time'
          WHEN NOT regexp_full_match(traw, '[\x20-\x7e]*') THEN {at[1]}
          WHEN tnum IS NOT NULL AND (NOT isfinite(tnum) OR tnum <> floor(tnum))
            THEN 'unix time must be whole seconds, got ' || {_rep('traw')}
          WHEN tnum IS NOT NULL AND (t IS NULL OR t < {MIN_TIME} OR t >= {MAX_TIME})
            THEN {_q(rng)} || {_rep('traw')}
          WHEN tnum IS NULL AND ts IS NULL
            THEN 'expected ISO 8601 (e.g. 2022-01-05T10:40:00Z) or unix seconds, got '
                 || {_rep('traw')}
          WHEN t IS NULL THEN 'time must be whole seconds, got ' || {_rep('traw')}
          WHEN t < {MIN_TIME} OR t >= {MAX_TIME} THEN {_q(rng)} || {_rep('traw')}
          WHEN et NOT IN ('country', 'region', 'asn')
            THEN 'entity type must be country, region or asn, got '
                 || {_rep('etraw')}
          WHEN code IS NULL AND et = 'country'
            THEN 'country code must be ISO 3166-1 alpha-2 (e.g. KZ), got ' || {_rep('craw')}
          WHEN code IS NULL AND et = 'region'
            THEN 'region code must be ISO 3166-2 (e.g. KZ-75), got ' || {_rep('craw')}
          WHEN code IS NULL
            THEN 'ASN must be a number such as 9198 or AS9198, got ' || {_rep('craw')}
          WHEN et = 'asn' AND (code::HUGEINT < 1 OR code::HUGEINT >= 4294967296)
            THEN 'ASN out of range 1..4294967295: ' || {_rep('craw')}
          WHEN par <> '' AND et = 'country' THEN 'a country has no parent, got ' || {_rep('par')}
          WHEN par <> '' AND NOT regexp_full_match(par, '[A-Z]{{2}}')
            THEN 'country code must be ISO 3166-1 alpha-2 (e.g. KZ), got ' || {_rep('par')}
          WHEN par <> '' AND et = 'region' AND par <> left(code, 2)
            THEN 'region ' || code || ' lies in ' || left(code, 2) || ', not ' || par
          WHEN sig = '' THEN 'signal name is empty'
          WHEN length(sig) > {rules.MAX_SIGNAL_LEN}
            THEN {_q(rules.RULES['signal-length'].text)} || ' (' || length(sig) || ' > '
                 || {rules.MAX_SIGNAL_LEN} || ' characters)'
          WHEN regexp_matches(sig, {ctrl}) THEN {cs[1]}
          WHEN regexp_matches(ename, {ctrl}) THEN {cn[1]}
          WHEN length(ename) > {bounds.MAX_NAME_LEN}
            THEN {_q(rules.RULES['name-length'].text + ', got ')} || length(ename)
                 || ' characters'
          WHEN NOT regexp_full_match(vraw, '[\x20-\x7e]*') THEN {av[1]}
          WHEN vraw <> '' AND v IS NULL
            THEN 'value must be a number or empty for missing, got ' || {_rep('vraw')}
          WHEN v IS NOT NULL AND NOT isfinite(v)
            THEN 'value must be finite (leave it empty for missing), got ' || {_rep('vraw')}
          WHEN v < 0 AND sig IN ({counts}) THEN {nc[1]} || ' for ' || sig
        END AS detail
    FROM p
    """


#: DuckDB reject types -> our categories (a row DuckDB cannot split into the header's fields)
_FIELD_COUNT = ("MISSING COLUMNS", "TOO MANY COLUMNS")
_LINE_SIZE = "LINE SIZE OVER MAXIMUM"

_REJECTS_SQL = """
    SELECT line, arg_min(error_type, coalesce(column_idx, 0)),
           arg_min(error_message, coalesce(column_idx, 0))
    FROM _rej GROUP BY line ORDER BY line
"""

#: Most key hashes sorted in one numpy pass (8 bytes each, ~8 MB with the sort's copy): the
#: duplicate check's memory bound (4M, 64 MB, was the peak of a 4M-row import: issue 12 d11).
HASH_PART = 500_000


def _has_repeated_hash(con: duckdb.DuckDBPyConnection, n_rows: int) -> bool:
    """Any two good rows with the same key hash? (Equal keys hash equal, so False proves
    there is no repeated key.) The hashes are sorted in numpy, ``HASH_PART`` at a time: rows
    are split by the top bits of their hash into ``P = 2**b >= n_rows / HASH_PART`` parts
    (equal hashes fall in the same part), one column scan each, so memory stays bounded
    whatever the file size. Measured: a 5M-group DuckDB aggregate under the staging memory
    cap spills and costs seconds; sorting 5M hashes costs ~0.4 s."""
    bits = max(0, math.ceil(math.log2(max(n_rows, 1) / HASH_PART)))
    for part in range(1 << bits):
        where = f" AND h >> {64 - bits} = {part}" if bits else ""
        h = con.execute(f"SELECT h FROM _val WHERE err IS NULL{where}").fetchnumpy()["h"]
        h = np.sort(np.asarray(h, dtype=np.uint64))
        if h.size > 1 and np.any(h[1:] == h[:-1]):
            return True
    return False


_DUPS_SQL = """
    CREATE OR REPLACE TEMP TABLE _dup AS
    WITH d AS (
        SELECT et, code, sig, t FROM _val WHERE err IS NULL
        GROUP BY ALL HAVING count(*) > 1
    ), f AS (
        SELECT v.k, v.et, v.code, v.sig, v.t, v.v,
               first_value(v.k) OVER w AS k0, first_value(v.v) OVER w AS v0
        FROM _val v SEMI JOIN d USING (et, code, sig, t)
        WHERE v.err IS NULL
        WINDOW w AS (PARTITION BY v.et, v.code, v.sig, v.t ORDER BY v.k)
    )
    SELECT k, k0, v, v0, et, code, sig, t, v IS NOT DISTINCT FROM v0 AS same
    FROM f WHERE k <> k0
"""


class _Lines:
    """Row ordinals and DuckDB record numbers → physical line numbers."""

    def __init__(self, scan: FileScan, rejected: list[int]) -> None:
        self.scan = scan
        self.rejected = np.asarray(rejected, dtype=np.int64)

    def of_rows(self, ks: list[int]) -> list[int]:
        recs = self.scan.record_of_row(np.asarray(ks, dtype=np.int64), self.rejected)
        return [int(x) for x in self.scan.line_of_record(recs)]

    def of_records(self, recs: list[int]) -> list[int]:
        return [int(x) for x in self.scan.line_of_record(np.asarray(recs, dtype=np.int64))]


def _fmt_value(v: float | None) -> str:
    return repr(math.nan if v is None else float(v))


class StagedSink(FactSink, Protocol):
    """A FactSink that also writes points already staged in its store's connection
    (``netvigil.pipeline.Pipeline.write_staged``: the same store upsert as emitted points)."""

    def write_staged(self, relation: str, *, source: str, step: int | None = None,
                     unique_keys: bool = False) -> None: ...


def import_csv(con: duckdb.DuckDBPyConnection, scan: FileScan, sink: StagedSink,
               source: str, on_error: str) -> tuple[CsvOutcome, list[Entity]]:
    """Stage, validate and write one CSV file; the caller holds the store transaction.

    Returns the outcome and the entities (names, parents) the file carries. Raises InputError
    for the first bad line (by line number) under ``fail``; under ``skip`` the bad rows are
    counted per category with their first line numbers. The caller sets DuckDB's memory cap
    for the whole import (:func:`netvigil.series.importers.import_budget`), beyond which the
    staging and the write spill to disk.
    """
    names = parse_header(scan)
    out = CsvOutcome()
    saved = con.execute("SELECT current_setting('TimeZone')").fetchone()
    assert saved is not None
    con.execute("SET TimeZone = 'UTC'")  # naive ISO times are UTC
    try:
        _stage_file(con, scan, names, on_error, out)
        entities = _entities(con)
        _write(con, sink, source, out)
    finally:
        with contextlib.suppress(duckdb.Error):  # settings are per connection, not per txn
            con.execute(f"SET TimeZone = {_q(str(saved[0]))}")
    con.execute("DROP VIEW IF EXISTS _good")
    for table in ("_val", "_dup", "_rej", "_rejs"):
        con.execute(f"DROP TABLE IF EXISTS {table}")
    return out, entities


def _stage_file(con: duckdb.DuckDBPyConnection, scan: FileScan, names: list[str],
                on_error: str, out: CsvOutcome) -> None:
    try:
        con.execute(_validate_sql(scan, names))
    except duckdb.Error as exc:
        raise InputError(scan.path, None, f"unreadable CSV: {exc}") from None
    _check_codes(con)
    row = con.execute("SELECT count(*), count(*) FILTER (WHERE err IS NULL) FROM _val"
                      ).fetchone()
    n_val, n_good = (int(row[0]), int(row[1])) if row else (0, 0)
    if _has_repeated_hash(con, n_good):
        con.execute(_DUPS_SQL)
    else:
        con.execute("CREATE OR REPLACE TEMP TABLE _dup (k BIGINT, k0 BIGINT, v DOUBLE,"
                    " v0 DOUBLE, et VARCHAR, code VARCHAR, sig VARCHAR, t BIGINT,"
                    " same BOOLEAN)")
    rejects = con.execute(_REJECTS_SQL).fetchall()
    lines = _Lines(scan, [int(r[0]) for r in rejects])
    out.rows_read = n_val + len(rejects)
    _collect_errors(con, scan, rejects, lines, on_error, out)


def _check_codes(con: duckdb.DuckDBPyConnection) -> None:
    """Rule ``code-registry``: country and region codes of otherwise good rows must be in the
    entity registry (:func:`netvigil.series.rules.known_code`). The distinct codes are few,
    so they are checked in Python and the unknown ones marked in ``_val`` in one UPDATE."""
    codes = con.execute("SELECT DISTINCT et, code FROM _val WHERE err IS NULL"
                        " AND et IN ('country', 'region')").fetchall()
    bad = [f"{et}:{code}" for et, code in codes if not rules.known_code(str(et), str(code))]
    r = rules.RULES["code-registry"]
    if bad:
        con.execute(
            "UPDATE _val SET err = $1, detail = $2 || ', got ' || chr(39) || code || chr(39)"
            " WHERE err IS NULL AND et || ':' || code IN (SELECT unnest($3::VARCHAR[]))",
            [r.category, r.text, bad])
    # an AS's declared parent country follows the same rule (a region's is its prefix)
    pars = con.execute("SELECT DISTINCT par FROM _val WHERE err IS NULL AND et = 'asn'"
                       " AND par IS NOT NULL").fetchall()
    bad = [str(p) for (p,) in pars if not rules.known_code("country", str(p))]
    if bad:
        con.execute(
            "UPDATE _val SET err = $1, detail = $2 || ', got parent ' || chr(39) || par"
            " || chr(39) WHERE err IS NULL AND et = 'asn' AND par IN"
            " (SELECT unnest($3::VARCHAR[]))", [r.category, r.text, bad])


def _reject_reason(kind: str, message: str, n_fields: int) -> tuple[str, str]:
    if kind in _FIELD_COUNT:
        found = message.rsplit("Found:", 1)[-1].strip()
        return "wrong field count", f"expected {n_fields} fields, got {found}"
    if kind == _LINE_SIZE:  # rule line-length (DuckDB's max_line_size, set from the bound)
        r = rules.RULES["line-length"]
        return r.category, f"{r.text}, got {message.rsplit('Actual Size:', 1)[-1].strip()}"
    return "malformed CSV", message


def _collect_errors(con: duckdb.DuckDBPyConnection, scan: FileScan,
                    rejects: list[tuple[Any, ...]],
                    lines: _Lines, on_error: str, out: CsvOutcome) -> None:
    n_fields = len(parse_header(scan))
    if on_error == "fail":
        first = con.execute(
            "SELECT k, err, detail FROM _val WHERE err IS NOT NULL ORDER BY k LIMIT 1"
        ).fetchone()
        dup = con.execute(
            "SELECT k, k0, v, v0, et, code, sig, t FROM _dup WHERE NOT same ORDER BY k LIMIT 1"
        ).fetchone()
        cands: list[tuple[int, str]] = []
        if first is not None:
            cands.append((lines.of_rows([int(first[0])])[0], f"{first[1]}: {first[2]}"))
        if dup is not None:
            ln, l0 = lines.of_rows([int(dup[0]), int(dup[1])])
            cands.append((ln, f"conflicting duplicate: {dup[4]}/{dup[5]} {dup[6]} at {dup[7]} "
                              f"is {_fmt_value(dup[3])} at line {l0} but "
                              f"{_fmt_value(dup[2])} at line {ln}"))
        if rejects:
            rec, kind, msg = rejects[0]
            cat, detail = _reject_reason(str(kind), str(msg), n_fields)
            cands.append((lines.of_records([int(rec)])[0], f"{cat}: {detail}"))
        if cands:
            line, reason = min(cands)
            raise InputError(scan.path, line, reason)
        return
    report = out.report
    per_cat: dict[str, list[int]] = {}
    counts: dict[str, int] = {}
    for cat, n, ks in con.execute(
        "SELECT err, count(*), min(k, 5) FROM _val WHERE err IS NOT NULL GROUP BY err"
    ).fetchall():
        counts[cat] = counts.get(cat, 0) + int(n)
        per_cat.setdefault(cat, []).extend(lines.of_rows([int(k) for k in ks]))
    drow = con.execute("SELECT count(*), min(k, 5) FROM _dup WHERE NOT same").fetchone()
    if drow is not None and drow[0]:
        counts["conflicting duplicate"] = int(drow[0])
        per_cat["conflicting duplicate"] = lines.of_rows([int(k) for k in drow[1]])
    for rec, kind, msg in rejects:
        cat, _ = _reject_reason(str(kind), str(msg), n_fields)
        counts[cat] = counts.get(cat, 0) + 1
        if len(per_cat.setdefault(cat, [])) < 5 * 2:
            per_cat[cat].extend(lines.of_records([int(rec)]))
    for cat, n in counts.items():
        report.counts[cat] = n
        report.examples[cat] = [str(x) for x in sorted(per_cat.get(cat, []))[:5]]
    out.skipped = sum(counts.values())


def _entities(con: duckdb.DuckDBPyConnection) -> list[Entity]:
    """Last non-empty name and parent per entity among the good rows (file order)."""
    rows = con.execute(
        """
        SELECT et, code, arg_max(ename, k) FILTER (WHERE ename IS NOT NULL),
               arg_max(par, k) FILTER (WHERE par IS NOT NULL)
        FROM _val WHERE err IS NULL AND (ename IS NOT NULL OR par IS NOT NULL)
        GROUP BY et, code ORDER BY et, code
        """
    ).fetchall()
    return [
        Entity(make_ref(et, code), name or "",
               make_ref("country", par) if par is not None else None)
        for et, code, name, par in rows
    ]


def _write(con: duckdb.DuckDBPyConnection, sink: StagedSink, source: str,
           out: CsvOutcome) -> None:
    """The good rows (first of each repeated key) go to the store in one set-based write:
    ``_good`` is a view over ``_val``, handed to the pipeline by name, so no row leaves DuckDB
    (the caller's transaction makes the write part of the all-or-nothing import)."""
    has_dups = bool(con.execute("SELECT count(*) FROM _dup").fetchone()[0])  # type: ignore[index]
    drop = "ANTI JOIN _dup USING (k)" if has_dups else ""
    con.execute(
        "CREATE OR REPLACE TEMP VIEW _good AS SELECT et AS entity_type, code AS entity_code,"
        f" sig AS signal, t AS time, v AS value, k AS idx FROM _val {drop} WHERE err IS NULL"
    )
    row = con.execute("SELECT count(*), count(DISTINCT (entity_type, entity_code, signal))"
                      " FROM _good").fetchone()
    out.accepted, out.series_touched = (int(row[0]), int(row[1])) if row else (0, 0)
    if out.accepted:
        sink.write_staged("_good", source=source, unique_keys=True)
