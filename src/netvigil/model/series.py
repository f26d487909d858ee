"""Time series on a regular grid where a missing point is NaN, never zero.

A zero means "we measured and saw nothing" (a blackout); NaN means "we have no
measurement" (a collector outage, a late upload). Detectors must keep the two apart.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from netvigil.model.entities import EntityRef

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, eq=False)
class Series:
    entity: EntityRef
    signal: str
    start: int  # unix seconds of the first bin (bin start)
    step: int  # seconds
    values: FloatArray  # NaN = missing

    def __post_init__(self) -> None:
        if self.step <= 0:
            raise ValueError("step must be positive")

    def __len__(self) -> int:
        return int(self.values.shape[0])

    @property
    def times(self) -> npt.NDArray[np.int64]:
        return self.start + self.step * np.arange(len(self), dtype=np.int64)

    @property
    def end(self) -> int:
        """Exclusive end of the last bin."""
        return self.start + self.step * len(self)

    @property
    def present(self) -> int:
        return int(np.count_nonzero(~np.isnan(self.values)))

    @classmethod
    def from_points(
        cls, entity: EntityRef, signal: str, times: npt.ArrayLike, values: npt.ArrayLike,
        step: int, origin: int = 0,
    ) -> Series:
        """Place irregular points on the grid (bin start = origin + floor((t-origin)/step)*step);
        gaps become NaN. ``origin`` is the series' grid phase (the store keeps one per series).

        Several points in one bin: the last one wins (points are facts already binned upstream).
        The span is the first to the last point's bin, never padded.
        """
        t = np.asarray(times, dtype=np.int64)
        v = np.asarray(values, dtype=np.float64)
        if t.size == 0:
            return cls(entity, signal, 0, step, np.empty(0, dtype=np.float64))
        bins = (t - origin) // step
        first = int(bins.min())
        out = np.full(int(bins.max()) - first + 1, np.nan)
        order = np.argsort(t, kind="stable")
        out[bins[order] - first] = v[order]
        return cls(entity, signal, first * step + origin, step, out)


@dataclass(frozen=True, eq=False)
class Observed:
    """The observed bins of one signal: bin starts (ascending, on the series' grid) and their
    values (NaN = a stored missing point), without the empty bins between them.

    Why not a :class:`Series` for event building: a grid series spans first to last point,
    so two archive years ingested into one store (points in 2002 and in 2016, 5-minute bins)
    make 1.7 million bins for 32 points, and assessing events on it cost seconds per series
    in ``np.full`` and ``arange`` alone (``detect`` on 22,383 points of 2000-2016 RIS and
    RouteViews files: 10 s). Everything events need of a signal (the alert-area score, a
    window's observed share, mean and sum) reads only observed bins, so this costs what
    the points cost.
    """

    times: npt.NDArray[np.int64]
    values: FloatArray
    step: int

    def __len__(self) -> int:
        return int(self.times.shape[0])

    def between(self, lo: int, hi: int | None = None) -> FloatArray:
        """Values of the observed bins with ``lo <= bin start < hi`` (``hi`` None: to the
        end); what ``Series.values`` holds at those bins, NaN gaps left out."""
        a = int(np.searchsorted(self.times, lo, side="left"))
        b = len(self) if hi is None else int(np.searchsorted(self.times, hi, side="left"))
        return self.values[a:max(a, b)]

    @classmethod
    def of(cls, series: Series) -> Observed:
        """The bins of a grid series, its empty (NaN) bins dropped."""
        keep = ~np.isnan(series.values)
        return cls(series.times[keep], series.values[keep], series.step)
