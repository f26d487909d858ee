"""What every format parser produces: validated columnar points plus a record of skipped rows.

Parsers validate everything before the store is touched, so ``--on-error fail`` can promise
that nothing is written: the store only ever sees a complete, clean batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from netvigil.model import EntityRef, ErrorPolicy, InputError

ON_ERROR_POLICIES = tuple(p.value for p in ErrorPolicy)
MAX_EXAMPLE_LINES = 5


@dataclass
class SkipReport:
    """Skipped rows per reason category, with the first few line numbers (or paths) of each."""

    counts: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def add(self, category: str, where: str) -> None:
        self.counts[category] = self.counts.get(category, 0) + 1
        ex = self.examples.setdefault(category, [])
        if len(ex) < MAX_EXAMPLE_LINES:
            ex.append(where)

    def lines(self) -> list[str]:
        return [
            f"  {cat}: {n} (first at {', '.join(self.examples[cat])})"
            for cat, n in sorted(self.counts.items())
        ]


class ErrorSink:
    """Applies the --on-error policy: raise at the first bad row, or count and carry on.

    ``units`` lets one bad JSON series count for all of its points.
    """

    def __init__(self, path: str, policy: str) -> None:
        if policy not in ON_ERROR_POLICIES:
            raise ValueError(f"on_error must be one of {ON_ERROR_POLICIES}, got {policy!r}")
        self.path = path
        self.policy = policy
        self.report = SkipReport()
        self.skipped = 0

    def bad(self, line: int | None, category: str, detail: str, *, where: str = "",
            units: int = 1) -> None:
        reason = f"{where}: {category}: {detail}" if where else f"{category}: {detail}"
        if self.policy == "fail":
            raise InputError(self.path, line, reason)
        self.report.add(category, str(line) if line is not None else where or "?")
        self.skipped += units

    def more(self, category: str, count: int) -> None:
        """``count`` more bad items of a category whose first ones went through :meth:`bad`
        (their places are not listed: a streaming parser keeps only the first few)."""
        if count > 0:
            self.report.counts[category] = self.report.counts.get(category, 0) + count
            self.skipped += count


@dataclass
class Batch:
    """Accepted points, columnar, plus entity metadata seen in the file."""

    entity_types: list[str] = field(default_factory=list)
    entity_codes: list[str] = field(default_factory=list)
    signals: list[str] = field(default_factory=list)
    times: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    steps: list[int | None] = field(default_factory=list)  # declared step per point
    names: dict[EntityRef, str] = field(default_factory=dict)
    parents: dict[EntityRef, EntityRef] = field(default_factory=dict)
    source_names: set[str] = field(default_factory=set)
    rows_read: int = 0
    # (type, code, signal, time) -> (value, where) for duplicate detection
    _seen: dict[tuple[str, str, str, int], tuple[float, str]] = field(default_factory=dict)

    def add(self, ref: EntityRef, signal: str, time: int, value: float, where: str,
            sink: ErrorSink, line: int | None, step: int | None = None) -> None:
        """Append one point; same key twice with the same value is dropped silently,
        with a different value it is an error naming both places (the later one is skipped
        under the skip policy)."""
        key = (ref.type.value, ref.code, signal, time)
        prev = self._seen.get(key)
        if prev is not None:
            pv, pwhere = prev
            if pv == value or (math.isnan(pv) and math.isnan(value)):
                return
            sink.bad(line, "conflicting duplicate",
                     f"{ref.fqid} {signal} at {time} is {pv!r} at {pwhere} "
                     f"but {value!r} at {where}")
            return
        self._seen[key] = (value, where)
        self.entity_types.append(key[0])
        self.entity_codes.append(key[1])
        self.signals.append(signal)
        self.times.append(time)
        self.values.append(value)
        self.steps.append(step)

    def __len__(self) -> int:
        return len(self.times)
