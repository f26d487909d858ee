"""The ``Detector`` protocol: how the runner drives any detector, from scratch or resumed.

A detector judges series one by one, but the runner hands it many series at once so that
its work per new bin is one call, not one call per series (IODA runs ~70,000 series every
five minutes). The contract:

* ``configure(signal)`` -> the rule that judges that signal, or None: the signal is not
  judged (``ioda.median`` skips signals where higher is worse). A rule has a stable ``id``
  and a ``digest()`` of its parameters; a saved state built under another digest is
  discarded and the series recomputed from scratch.
* ``update(chunk, states)`` -> alerts and new states. ``chunk`` holds, for every series,
  the points after the series' state (time order; NaN = missing, which is not an outage);
  ``states[k]`` is the opaque ``bytes`` the detector returned last time, or None to start
  from scratch. Feeding a series in any number of chunks must give exactly the alerts of
  one chunk holding the whole series (the incremental property; see
  ``tests/test_detect_incremental.py``).
* ``detect(series)`` -> the alerts of one whole series, from scratch: the readable
  reference the incremental path is tested against.

Alerts of an update are the *new* alerts only; the runner appends them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from netvigil.model import Alert, EntityRef, Series


@dataclass(frozen=True, eq=False)
class PointChunk:
    """New points of many series, CSR: series ``k`` owns ``[offsets[k], offsets[k+1])``."""

    keys: Sequence[tuple[EntityRef, str]]
    offsets: npt.NDArray[np.int64]
    times: npt.NDArray[np.int64]
    values: npt.NDArray[np.float64]

    def __post_init__(self) -> None:
        if len(self.offsets) != len(self.keys) + 1:
            raise ValueError("PointChunk: offsets need one entry per series, plus one")
        if len(self.times) != len(self.values) or int(self.offsets[-1]) != len(self.times):
            raise ValueError("PointChunk: offsets, times and values disagree")

    @classmethod
    def from_series(cls, series: Sequence[Series]) -> PointChunk:
        """A chunk holding whole series (their grid times, NaN bins included)."""
        offsets = np.zeros(len(series) + 1, np.int64)
        np.cumsum([len(s) for s in series], out=offsets[1:])
        times = (np.concatenate([s.times for s in series]) if series
                 else np.empty(0, np.int64))
        values = (np.concatenate([s.values for s in series]) if series
                  else np.empty(0, np.float64))
        return cls([(s.entity, s.signal) for s in series], offsets,
                   times.astype(np.int64), values.astype(np.float64))


@dataclass(frozen=True, eq=False)
class DetectorUpdate:
    alerts: list[Alert]  # new alerts, grouped by series in chunk order, time order within
    states: list[bytes]  # one per series of the chunk
    #: True where the series had a non-normal level reported before this update: an event
    #: still open, whose evidence grows with the new points.
    open_before: npt.NDArray[np.bool_]


class DetectorRule(Protocol):
    @property
    def id(self) -> str: ...

    def digest(self) -> str: ...


class Detector(Protocol):
    method: str

    def configure(self, signal: str) -> DetectorRule | None: ...

    def update(self, chunk: PointChunk, states: Sequence[bytes | None]) -> DetectorUpdate: ...

    def detect(self, series: Series) -> list[Alert]: ...
