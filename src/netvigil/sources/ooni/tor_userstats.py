"""Tor Metrics' per-country user estimates -> ``tor-users`` / ``tor-bridge-users`` points.

Format (metrics.torproject.org ``userstats-relay-country.csv`` and
``userstats-bridge-country.csv``, written by the metrics website's ``graphs.R``): optional
``#`` comment lines, then a header ``date,country,users,lower,upper,frac`` (relay users) or
``date,country,users,frac`` (bridge users; no confidence interval); ``date`` YYYY-MM-DD,
``country`` a lower-case ISO code, empty for all countries, ``??`` / ``a1`` / ``a2`` /
``o1`` / ``ap`` / ``eu`` for unknown and pseudo-locations; ``users`` the estimated mean daily
users (empty = no estimate). Which series a file feeds is read from its header.

Rows without a country (the global total, pseudo-locations) are *ignored with a count*, not
errors. Malformed rows (wrong column count, bad date, bad or negative number, a code not in
the registry) follow the caller's :class:`~netvigil.model.ErrorPolicy` with ``file:line``.
Points are daily (step 86400) per country.

Direction (docs/ooni.md): a **surge** of Tor users during platform blocks is evidence of
blocking (demand for circumvention, as VPN sign-ups in Kazakhstan 2022); a **collapse**
together with the data-plane signals is evidence of a shutdown. The series are declared
higher-is-better so the level-drop detector judges the collapse; the surge is for the
event classification to read.
"""

from __future__ import annotations

import csv
import io
import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from isal import igzip, isal_zlib

from netvigil.model import ErrorPolicy, InputError
from netvigil.model.facts import PointBatch
from netvigil.sources.ooni.meta import known_country

SIGNAL_RELAY = "tor-users"
SIGNAL_BRIDGE = "tor-bridge-users"
DAY = 86400
RELAY_COLUMNS = ("date", "country", "users", "lower", "upper", "frac")
BRIDGE_COLUMNS = ("date", "country", "users", "frac")
PSEUDO = frozenset({"", "??", "a1", "a2", "o1", "ap", "eu"})
MAX_FILE_BYTES = 512 << 20  # decompressed; the full relay CSV since 2011 is ~25 MB


@dataclass
class TorImport:
    path: str
    signal: str
    batch: PointBatch
    rows_read: int = 0
    ignored: int = 0  # global totals and pseudo-locations
    malformed: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[int]] = field(default_factory=dict)

    @property
    def skipped(self) -> int:
        return sum(self.malformed.values())

    def text(self) -> str:
        return (f"{self.path}: {self.rows_read} rows read, {len(self.batch)} {self.signal} "
                f"points, {self.ignored} without a country (totals, pseudo-locations), "
                f"{self.skipped} malformed")


def _read_text(path: Path) -> str:
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            with igzip.IGzipFile(fileobj=io.BytesIO(raw)) as g:  # type: ignore[no-untyped-call]
                raw = g.read(MAX_FILE_BYTES + 1)
        if len(raw) > MAX_FILE_BYTES:
            raise InputError(str(path), None, f"larger than {MAX_FILE_BYTES} bytes")
        return raw.decode("utf-8-sig")
    # isal_zlib.error (IsalError: damaged deflate data) is no OSError (fuzz); its stub
    # declares it an instance, hence the ignore
    except (OSError, EOFError, isal_zlib.error) as exc:  # type: ignore[misc]
        raise InputError(str(path), None, f"cannot read file: {exc}") from None
    except UnicodeDecodeError as exc:
        raise InputError(str(path), None, f"not UTF-8 ({exc.reason})") from None


def parse_userstats(path: str | Path, policy: ErrorPolicy | str = ErrorPolicy.FAIL, *,
                    source: str = "tor-metrics") -> TorImport:
    """Parse one userstats CSV (module docstring) into one :class:`PointBatch`."""
    p = Path(path)
    pol = ErrorPolicy(policy)
    lines = _read_text(p).splitlines()
    header_at = next((i for i, ln in enumerate(lines) if ln.strip()
                      and not ln.lstrip().startswith("#")), None)
    if header_at is None:
        raise InputError(str(p), None, "no header line (date,country,users,...)")
    header = tuple(h.strip().lower() for h in lines[header_at].split(","))
    if header == RELAY_COLUMNS:
        signal = SIGNAL_RELAY
    elif header == BRIDGE_COLUMNS:
        signal = SIGNAL_BRIDGE
    else:
        raise InputError(str(p), header_at + 1,
                         f"header must be {','.join(RELAY_COLUMNS)} or "
                         f"{','.join(BRIDGE_COLUMNS)}")
    out = TorImport(str(p), signal, PointBatch(*(np.empty(0, dtype=object),) * 3,
                                               np.empty(0, np.int64), np.empty(0), source, DAY))
    codes: list[str] = []
    times: list[int] = []
    values: list[float] = []
    seen: set[tuple[str, int]] = set()
    for k, row in enumerate(csv.reader(lines[header_at + 1:]), start=header_at + 2):
        if not row or (len(row) == 1 and not row[0].strip()) or row[0].startswith("#"):
            continue
        out.rows_read += 1
        try:
            cc, t, v = _row(row, len(header))
        except ValueError as exc:
            if pol is ErrorPolicy.FAIL:
                raise InputError(str(p), k, str(exc)) from None
            cat = str(exc).split(":")[0]
            out.malformed[cat] += 1
            out.examples.setdefault(cat, [])
            if len(out.examples[cat]) < 5:
                out.examples[cat].append(k)
            continue
        if cc is None:
            out.ignored += 1
            continue
        if (cc, t) in seen:
            if pol is ErrorPolicy.FAIL:
                raise InputError(str(p), k, f"duplicate row for {cc} on {row[0]}")
            out.malformed["duplicate row"] += 1
            continue
        seen.add((cc, t))
        codes.append(cc)
        times.append(t)
        values.append(v)
    n = len(codes)
    out.batch = PointBatch(np.full(n, "country", dtype=object), np.asarray(codes, dtype=object),
                           np.full(n, signal, dtype=object), np.asarray(times, np.int64),
                           np.asarray(values, np.float64), source, DAY)
    return out


def _row(row: list[str], width: int) -> tuple[str | None, int, float]:
    """(country or None for totals/pseudo-locations, day start, users or NaN)."""
    if len(row) != width:
        raise ValueError(f"wrong number of columns: {len(row)} instead of {width}")
    date, country, users = row[0].strip(), row[1].strip().lower(), row[2].strip()
    try:
        day = datetime.strptime(date, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        raise ValueError(f"bad date: {date[:20]!r} (YYYY-MM-DD)") from None
    if not 2000 <= day.year < 2100:
        raise ValueError(f"bad date: {date!r} outside 2000..2099")
    if country in PSEUDO:
        return None, 0, math.nan
    cc = country.upper()
    if len(cc) != 2 or not cc.isascii() or not known_country(cc):
        raise ValueError(f"unknown country: {country[:20]!r}")
    if not users:
        return cc, int(day.timestamp()), math.nan
    if not users.isascii():
        raise ValueError(f"bad number: users {users[:20]!r} (ASCII digits)")
    try:
        value = float(users)
    except ValueError:
        raise ValueError(f"bad number: users {users[:20]!r}") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"bad number: users {users[:20]!r} (finite, >= 0)")
    return cc, int(day.timestamp()), value
