"""MRT reading errors and the caller-chosen error policy.

Every failure carries the byte offset of the record header in the *decompressed* stream, so a
"fail" run points at the bytes and a "skip" run can report what it dropped. Nothing is ever
silently wrong: a skipped record is counted in :class:`ReadStats` (style principle 4).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from netvigil.model.errors import ErrorPolicy, NetVigilError

__all__ = ["CorruptRecord", "ErrorPolicy", "MrtError", "ReadStats", "TruncatedRecord"]


class MrtError(NetVigilError):
    """A record that cannot be decoded. ``offset`` is the header's byte offset."""

    kind = "corrupt"

    def __init__(self, offset: int, reason: str, path: str | None = None) -> None:
        self.offset = offset
        self.reason = reason
        self.path = path
        where = f"{path}: " if path else ""
        super().__init__(f"{where}byte offset {offset}: {reason}")


class TruncatedRecord(MrtError):
    """The input ended inside a record header or body (RFC 6396 §2: Length counts the body)."""

    kind = "truncated"


class CorruptRecord(MrtError):
    """The record is framed but its body does not decode (bad lengths, overruns)."""

    kind = "corrupt"


@dataclass
class ReadStats:
    """Counts of one read; ``problems`` keeps the first few (offset, kind, reason) as evidence."""

    records: int = 0
    elements: int = 0
    skipped: int = 0
    truncated: int = 0
    unsupported: int = 0
    bytes_read: int = 0
    problems: list[tuple[int, str, str]] = field(default_factory=list)
    max_problems: int = 100

    def note(self, err: MrtError) -> None:
        if isinstance(err, TruncatedRecord):
            self.truncated += 1
        else:
            self.skipped += 1
        if len(self.problems) < self.max_problems:
            self.problems.append((err.offset, err.kind, err.reason))

    @property
    def ok(self) -> bool:
        return self.skipped == 0 and self.truncated == 0
