"""The default detector on series shaped like the real ones issue 8 will be checked with,
driven exactly as the checker drives it: a CSV written by this test goes through
``netvigil series import`` -> ``netvigil detect`` (no ``--detector``: the default) ->
``netvigil events --format json``.

The series come from this file's own seeded generator (a cosine day in local time, a weekly
rest day, log-normal noise, Poisson draws for counts), never from the simulator or a
detector threshold; the truth is the cut intervals written here. Shapes:

* (a) Iran, November 2019: hourly series of 30 provinces (indices, and counts of up /24s
  for half of them) and **no national series**, all
  cut at one moment for ~5 days, then a partial restoration before the full one: a
  national event must come out of the roll-up, start and end within one bin, nothing before.
* (b) Myanmar 2021: a 5-minute diurnal series with 14 nightly curfews 01:00-09:00 local:
  every night caught, within a bin at both ends, no alarm on the days between.
* (c) a 40-day cut on a 5-minute and an hourly series: closed within one bin of the true
  restoration, although the series comes back a little below its old level.
* (d) 10-minute up-/24 counts with twice-weekly 4-hour exam cuts (Syria).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from netvigil.cli.main import cli

HOUR = 3600


def ts(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp())


def iso(t: int) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Shape:
    """An ordinary series: a cosine day (trough ``depth`` below the peak at 04:00 local), a
    rest day ``rest_drop`` lower, multiplicative log-normal noise ``noise``."""

    scale: float
    tz_hours: float
    depth: float
    noise: float
    rest_day: int = 4  # weekday (0 = Monday) of the weekly rest day; Friday in Iran
    rest_drop: float = 0.08
    counts: bool = False


def ordinary(times: np.ndarray, shape: Shape) -> np.ndarray:
    local = times / HOUR + shape.tz_hours
    hour = local % 24
    day = 1.0 - shape.depth * 0.5 * (1.0 + np.cos(2.0 * np.pi * (hour - 4.0) / 24.0))
    weekday = ((local // 24).astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday
    week = np.where(weekday == shape.rest_day, 1.0 - shape.rest_drop, 1.0)
    return shape.scale * day * week


def observe(times: np.ndarray, shape: Shape, share: np.ndarray,
            rng: np.random.Generator) -> np.ndarray:
    """The measured series: ordinary level x share still connected, with noise.

    ``share`` is the fraction of the bin's ordinary connectivity present (1 normal, 0.05 in
    a shutdown); a cut inside a bin averages over the bin, as a real aggregate does.
    """
    mean = ordinary(times, shape) * share
    noisy = mean * rng.lognormal(0.0, shape.noise, times.size)
    if shape.counts:
        return rng.poisson(noisy).astype(np.float64)
    return np.round(noisy, 3)


def share_in_bins(times: np.ndarray, step: int,
                  cuts: Sequence[tuple[int, int, float]]) -> np.ndarray:
    """Share of each bin ``[t, t + step)`` outside the cuts (a cut keeps ``level``)."""
    share = np.ones(times.size)
    for start, end, level in cuts:
        overlap = np.clip(np.minimum(times + step, end) - np.maximum(times, start), 0, step)
        share -= overlap / step * (1.0 - level)
    return share


Row = tuple[str, str, str, str, str]


def rows_of(kind: str, code: str, signal: str, times: np.ndarray,
            values: np.ndarray) -> Iterator[Row]:
    for t, v in zip(times.tolist(), values.tolist(), strict=True):
        yield iso(int(t)), kind, code, signal, (f"{v:.0f}" if float(v).is_integer()
                                                else f"{v:.3f}")


def run_contract(tmp_path: Path, rows: Iterator[Row]) -> list[dict[str, object]]:
    """Write the CSV, import it, detect with the default detector, read events as JSON."""
    src = tmp_path / "series.csv"
    with src.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["time", "entity_type", "entity_code", "signal", "value"])
        w.writerows(rows)
    store = str(tmp_path / "store.duckdb")
    runner = CliRunner()
    for args in (["series", "import", str(src)], ["detect"]):
        res = runner.invoke(cli, [*args, "--store", store], catch_exceptions=False)
        assert res.exit_code == 0, res.output
    res = runner.invoke(cli, ["events", "--format", "json", "--store", store],
                        catch_exceptions=False)
    assert res.exit_code == 0, res.output
    events: list[dict[str, object]] = json.loads(res.stdout)
    return events


def when(ev: dict[str, object], key: str) -> int | None:
    text = ev[key]
    return None if text is None else ts(str(text).replace("Z", ""))


def on(events: list[dict[str, object]], kind: str, code: str) -> list[dict[str, object]]:
    return sorted((e for e in events if e["entity_type"] == kind and e["entity_code"] == code
                   and e["kind"] != "platform-block"), key=lambda e: str(e["start"]))


def assert_matches(ev: dict[str, object], start: int, end: int, step: int) -> None:
    got_start, got_end = when(ev, "start"), when(ev, "end")
    assert got_start is not None and abs(got_start - start) <= step, (iso(start), ev["start"])
    assert got_end is not None and abs(got_end - end) <= step, (iso(end), ev["end"])


# -- (a) national event by roll-up from provinces only ---------------------------------
IR_FROM, IR_UNTIL = ts("2019-11-06T00:00"), ts("2019-11-26T00:00")
IR_CUT = ts("2019-11-16T12:30")  # 16:00 local, one moment for every province
IR_PARTIAL = ts("2019-11-21T06:20")  # fixed lines back first: 55 % of ordinary
IR_BACK = ts("2019-11-21T18:40")


def test_provinces_only_roll_up_to_one_national_event(tmp_path: Path) -> None:
    rng = np.random.default_rng(2019_11_16)
    times = np.arange(IR_FROM, IR_UNTIL, HOUR)
    cuts = [(IR_CUT, IR_PARTIAL, 0.05), (IR_PARTIAL, IR_BACK, 0.55)]
    share = share_in_bins(times, HOUR, cuts)
    codes = [f"IR-{i:02d}" for i in range(1, 31)]

    def provinces() -> Iterator[Row]:
        for i, code in enumerate(codes):  # odd provinces: counts (up /24s), others indices
            shape = Shape(scale=float(rng.uniform(300, 900)), tz_hours=3.5,
                          depth=float(rng.uniform(0.45, 0.65)), noise=0.04, counts=i % 2 == 1)
            yield from rows_of("region", code, "index", times,
                               observe(times, shape, share, rng))

    events = run_contract(tmp_path, provinces())
    national = on(events, "country", "IR")
    assert len(national) == 1, national
    assert national[0]["scope"] == "national"
    assert_matches(national[0], IR_CUT, IR_BACK, HOUR)
    for code in codes:
        mine = on(events, "region", code)
        assert len(mine) == 1, (code, mine)
        assert_matches(mine[0], IR_CUT, IR_BACK, HOUR)


# -- (b) nightly curfews ------------------------------------------------------------------
MM_FROM, MM_UNTIL = ts("2021-02-01T00:00"), ts("2021-03-08T00:00")
MM_TZ = 6.5
MM_FIRST_NIGHT = ts("2021-02-14T18:30")  # 01:00 local on 15 February


def test_every_curfew_night_caught_and_no_alarm_between(tmp_path: Path) -> None:
    rng = np.random.default_rng(2021_02_15)
    step = 300
    times = np.arange(MM_FROM, MM_UNTIL, step)
    nights = [(MM_FIRST_NIGHT + d * 86_400, MM_FIRST_NIGHT + d * 86_400 + 8 * HOUR, 0.14)
              for d in range(14)]
    shape = Shape(scale=5200.0, tz_hours=MM_TZ, depth=0.6, noise=0.02, rest_day=6,
                  counts=True)
    values = observe(times, shape, share_in_bins(times, step, nights), rng)

    events = on(run_contract(tmp_path, rows_of("country", "mm", "up-blocks", times, values)),
                "country", "MM")
    assert len(events) == len(nights), [(e["start"], e["end"]) for e in events]
    for ev, (start, end, _) in zip(events, nights, strict=True):
        assert_matches(ev, start, end, step)


# -- (c) a 40-day cut ---------------------------------------------------------------------
ET_FROM, ET_UNTIL = ts("2020-10-22T00:00"), ts("2020-12-21T00:00")
ET_CUT = ts("2020-11-04T03:17")
ET_BACK = ET_CUT + 40 * 86_400 + 6 * HOUR + 35 * 60


@pytest.mark.parametrize(("step", "kind", "code"), [(300, "country", "ET"),
                                                    (HOUR, "region", "ET-TI")])
def test_forty_day_cut_closes_on_the_day_it_ends(tmp_path: Path, step: int, kind: str,
                                                 code: str) -> None:
    rng = np.random.default_rng(2020_11_04 + step)
    times = np.arange(ET_FROM, ET_UNTIL, step)
    share = share_in_bins(times, step, [(ET_CUT, ET_BACK, 0.03)])
    share[times >= ET_BACK] *= 0.92  # comes back a little below its old level
    shape = Shape(scale=830.0, tz_hours=3.0, depth=0.5, noise=0.03, rest_day=6)
    events = on(run_contract(tmp_path, rows_of(kind, code, "index", times,
                                               observe(times, shape, share, rng))),
                kind, code)
    assert len(events) == 1, [(e["start"], e["end"]) for e in events]
    assert_matches(events[0], ET_CUT, ET_BACK, step)


# -- (d) 10-minute counts, exam cuts --------------------------------------------------------
SY_FROM, SY_UNTIL = ts("2022-05-15T00:00"), ts("2022-06-12T00:00")
SY_EXAMS = [ts(d) for d in ("2022-05-29T02:00", "2022-06-01T02:00", "2022-06-05T02:00",
                             "2022-06-08T02:00")]  # 05:00 local, Sundays and Wednesdays


def test_ten_minute_exam_cuts(tmp_path: Path) -> None:
    rng = np.random.default_rng(2022_05_29)
    step = 600
    times = np.arange(SY_FROM, SY_UNTIL, step)
    cuts = [(t, t + 4 * HOUR, 0.03) for t in SY_EXAMS]
    shape = Shape(scale=1400.0, tz_hours=3.0, depth=0.4, noise=0.015, counts=True)
    values = observe(times, shape, share_in_bins(times, step, cuts), rng)
    values[rng.choice(times.size, 40, replace=False)] = np.nan  # missing bins: unknown

    def rows() -> Iterator[Row]:
        for row in rows_of("country", "SY", "probing", times, values):
            yield row if row[4] != "nan" else (*row[:4], "")

    events = on(run_contract(tmp_path, rows()), "country", "SY")
    assert len(events) == len(cuts), [(e["start"], e["end"]) for e in events]
    for ev, (start, end, _) in zip(events, cuts, strict=True):
        assert_matches(ev, start, end, step)
