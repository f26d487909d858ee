"""The exception hierarchy, drawn once.

    NetVigilError
    ├── InvalidEntity          a code or entity type that does not parse
    ├── InputError             malformed user input; carries file, line and reason
    ├── StoreError             the store cannot be opened or migrated
    └── GeoDataError           reference data for a lookup is missing or corrupt

Surfaces (CLI, API) map these to exit codes / HTTP statuses in one place each.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorPolicy(StrEnum):
    """What a reader does with a record it cannot use: the one vocabulary of every
    ``--on-error`` option (MRT, series import, RIS Live, OONI), chosen by the caller as in
    ripe-atlas-sagan."""

    #: Count the record, keep the first few as evidence, carry on with the rest.
    SKIP = "skip"
    #: Stop at the first bad record with its file and line (or byte offset); write nothing.
    FAIL = "fail"


class NetVigilError(Exception):
    """Base class of every error NetVigil raises on purpose."""


class InvalidEntity(NetVigilError, ValueError):
    pass


class InputError(NetVigilError):
    """Malformed input. ``line`` is 1-based (the header is line 1) or None for whole-file errors."""

    def __init__(self, path: str, line: int | None, reason: str) -> None:
        self.path = path
        self.line = line
        self.reason = reason
        where = f"{path}:{line}" if line is not None else path
        super().__init__(f"{where}: {reason}")


class StoreError(NetVigilError):
    pass


class GeoDataError(NetVigilError):
    pass
