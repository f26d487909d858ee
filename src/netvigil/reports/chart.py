"""PNG chart of an entity's signals, normalised to their ordinary level, with event bands.

Why normalise: the signals count different things (/24s up, /24s visible, % of tests), so
like IODA's "normalised" toggle (anchors §1.8) each is divided by its median before the
events — 1.0 is "ordinary" and 0.02 reads as NetBlocks' "2% of ordinary levels" (§3.3).
Bands shade each event's evidence intervals by family, so a platform block that precedes
the blackout is visible as such. A label (e.g. 'RECONSTRUCTION — not measured data') is
stamped on the plot area, where a cropped screenshot still carries it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from netvigil.model import Event, Series, SourceFamily, signal_kind  # noqa: E402

_BAND = {
    SourceFamily.PROBING: "#d62728", SourceFamily.BGP: "#1f77b4",
    SourceFamily.PLATFORM: "#9467bd", SourceFamily.TELESCOPE: "#8c564b",
}
_LINE = {"probing": "#d62728", "bgp": "#1f77b4"}


def normalise(series: Series, until: int) -> np.ndarray:
    """Values divided by the median of the present values before ``until`` (NaN stays NaN)."""
    head = series.values[series.times < until]
    head = head[~np.isnan(head)]
    base = float(np.median(head)) if head.size else float("nan")
    if not base or base != base:
        return np.full(len(series), np.nan)
    return np.asarray(series.values / base, dtype=np.float64)


def _dt(ts: np.ndarray) -> np.ndarray:
    """Unix seconds -> numpy datetime64 (matplotlib's date converter takes them as is)."""
    return np.asarray(ts, dtype="datetime64[s]")


def render(series: Sequence[Series], events: Sequence[Event], path: str | Path, *,
           title: str, label: str, baseline_until: int) -> Path:
    """Draw ``series`` (one entity) normalised to their median before ``baseline_until``."""
    out = Path(path)
    fig, ax = plt.subplots(figsize=(13, 5.5), dpi=110)
    end = max((s.end for s in series), default=baseline_until)
    for ev in events:
        for evi in ev.signals:
            fam = signal_kind(evi.signal).family
            a = datetime.fromtimestamp(evi.start, tz=UTC)
            b = datetime.fromtimestamp(evi.end if evi.end is not None else end, tz=UTC)
            ax.axvspan(a, b, color=_BAND.get(fam, "#7f7f7f"), alpha=0.08, lw=0)  # type: ignore[arg-type]
    for s in sorted(series, key=lambda x: x.signal):
        y = normalise(s, baseline_until)
        style = "-" if s.signal in _LINE else "--"
        ax.plot(_dt(s.times), y, style, lw=1.1 if s.signal in _LINE else 0.9,
                color=_LINE.get(s.signal), label=f"{s.signal} ({signal_kind(s.signal).unit})")
    ax.axhline(1.0, color="#555555", lw=0.6, ls=":")
    ax.set_ylim(-0.03, 1.25)
    ax.set_ylabel("share of ordinary level (median before the events)")
    ax.set_title(title)
    # ticks chosen for the span (hours of a cut, days of a shutdown, years of a backfilled
    # archive); a fixed 2-day locator asked matplotlib for 3,336 ticks on a 2000-2016 event
    # and spent 11 s drawing them
    locator = mdates.AutoDateLocator(minticks=4, maxticks=10)  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_locator(locator)
    # day ticks name their month ("25 Dec", "01 Jan"): a shutdown often spans a month's end
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(  # type: ignore[no-untyped-call]
        locator, formats=["%Y", "%b", "%d %b", "%H:%M", "%H:%M", "%S.%f"],
        zero_formats=["", "%Y", "%d %b", "%d %b", "%H:%M", "%H:%M"],
        offset_formats=["", "%Y", "%Y", "%Y", "%d %b %Y", "%d %b %Y"]))
    ax.grid(alpha=0.25)
    ax.legend(loc="lower left", fontsize=8, framealpha=0.9)
    ax.text(0.5, 0.5, label, transform=ax.transAxes, ha="center", va="center", fontsize=22,
            color="#b00000", alpha=0.18, rotation=12, weight="bold")
    ax.text(0.995, 0.985, label, transform=ax.transAxes, ha="right", va="top", fontsize=9,
            color="#b00000", weight="bold",
            bbox={"facecolor": "white", "edgecolor": "#b00000", "alpha": 0.9})
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png")
    plt.close(fig)
    return out
