"""``netvigil run`` with a watched folder, end to end through the real CLI in subprocesses.

(a) a national series and then its cut dropped into the folder while the observatory runs;
``netvigil series list`` and ``netvigil events`` are queried WHILE it runs (DuckDB's single
writer: the run loop closes the store between bins, commands retry on the lock); the cut is
an event within two bins. (d) SIGTERM then restart: no gap, no double count. (e) a bad file
is reported with file:line, recorded and moved aside, and the loop goes on.
"""

from __future__ import annotations

import json
import signal
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from test_observatory_support import (
    STEP,
    cli,
    log_records,
    series_csv,
    start_run,
    stop,
    wait_for,
    write_config,
)

T0 = 1_700_006_400  # 2023-11-15T00:00:00Z, on the 300 s grid
DAYS = 3
N_HISTORY = DAYS * 86400 // STEP
CUT = T0 + N_HISTORY * STEP + 3600  # one hour after the history ends
N_CUT = 24  # the cut file: two hours, the second of them cut
BIN = 1  # observatory bin (wall seconds) for test speed; data time drives the detector

CONFIG = f"""
store = "obs.duckdb"
bin_seconds = {BIN}
[watch]
dirs = ["incoming"]
settle_seconds = 0.3
"""


def _iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _bins_with(records: list[dict[str, object]], event: str, file_part: str) -> int:
    """The number of the first bin logged after the record ``event`` about ``file_part``."""
    seen = False
    for r in records:
        if r["event"] == event and file_part in str(r.get("file", "")):
            seen = True
        elif seen and r["event"] == "bin":
            return int(str(r["bin"]))
    raise AssertionError(f"no bin after {event} {file_part}")


def test_dropped_series_then_its_cut_become_an_event_while_readers_keep_working(
        tmp_path: Path) -> None:
    cfg = write_config(tmp_path, CONFIG)
    store, log, inbox = tmp_path / "obs.duckdb", tmp_path / "run.log", tmp_path / "incoming"
    proc = start_run(cfg, log, "--duration", "300")
    queried = {"series": 0, "events": 0}
    try:
        wait_for(lambda: any(r["event"] == "bin" for r in log_records(log)), 60, "first bin",
                 proc)
        series_csv(inbox / "xx-history.csv", "KZ", T0, N_HISTORY)

        def listed() -> bool:
            res = cli("series", "list", "--format", "json", "--store", str(store))
            assert res.returncode == 0, res.stderr  # never locked out for good
            queried["series"] += proc.poll() is None
            rows = json.loads(res.stdout)
            return any(r["entity_code"] == "KZ" and r["points"] == N_HISTORY for r in rows)

        wait_for(listed, 90, "the history in `series list`", proc)
        res = cli("events", "--format", "json", "--store", str(store))
        assert res.returncode == 0, res.stderr
        assert json.loads(res.stdout) == []  # normal history: no event
        queried["events"] += proc.poll() is None

        series_csv(inbox / "xx-cut.csv", "KZ", T0 + N_HISTORY * STEP, N_CUT, cut_at=CUT)

        def event() -> list[dict[str, object]]:
            res = cli("events", "--format", "json", "--entity", "country/KZ",
                      "--store", str(store))
            assert res.returncode == 0, res.stderr
            queried["events"] += proc.poll() is None
            return list(json.loads(res.stdout))

        found = wait_for(event, 90, "the cut as an event", proc)
        running = proc.poll() is None
    finally:
        code, _out, err = stop(proc)
    assert running, "the event must be visible while the observatory runs"
    assert code == 0, err
    assert queried["series"] >= 1 and queried["events"] >= 2
    (ev,) = found
    start = int(datetime.fromisoformat(str(ev["start"]).replace("Z", "+00:00")).timestamp())
    assert CUT <= start <= CUT + 2 * STEP, (_iso(CUT), ev["start"])  # within two data bins
    assert ev["scope"] == "national"
    recs = log_records(log)
    ingested = _bins_with(recs, "file.ingested", "xx-cut.csv")
    with_event = next(int(str(r["bin"])) for r in recs
                      if r["event"] == "bin" and int(str(r["events"])) > 0)
    assert with_event <= ingested + 1  # detection ran in the bin that ingested the cut
    assert recs[-1]["event"] == "stopped" and recs[-1]["reason"] == "SIGTERM"
    assert all({"time", "level", "event"} <= r.keys() for r in recs)


def _points(store: Path) -> list[tuple[object, ...]]:
    con = duckdb.connect(str(store), read_only=True)
    try:
        return con.execute("SELECT entity_code, time, value FROM points ORDER BY ALL").fetchall()
    finally:
        con.close()


def test_sigterm_then_restart_resumes_without_gaps_or_double_counts(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, CONFIG)
    store, inbox = tmp_path / "obs.duckdb", tmp_path / "incoming"
    inbox.mkdir()
    # four files, each one day of a different country; the first two before the stop
    days = [("AT", 0), ("AT", 1), ("BB", 0), ("BB", 1)]
    log1 = tmp_path / "run1.log"
    proc = start_run(cfg, log1, "--duration", "300")
    try:
        for code, day in days[:2]:
            series_csv(inbox / f"{code}-{day}.csv", code, T0 + day * 86400, 288)
        wait_for(lambda: sum(r["event"] == "file.ingested" for r in log_records(log1)) == 2,
                 90, "two files ingested", proc)
        series_csv(inbox / "BB-0.csv", "BB", T0, 288)  # dropped just before the stop
    finally:
        code1, _o, err1 = stop(proc, signal.SIGTERM)
    assert code1 == 0, err1
    recs1 = log_records(log1)
    assert recs1[-1]["event"] == "stopped" and recs1[-1]["reason"] == "SIGTERM"
    assert recs1[-2]["event"] == "bin" and recs1[-2]["final"] is True

    series_csv(inbox / "BB-1.csv", "BB", T0 + 86400, 288)  # dropped while it was down
    log2 = tmp_path / "run2.log"
    proc = start_run(cfg, log2, "--duration", "300")
    try:
        wait_for(lambda: {"BB-0.csv", "BB-1.csv"} <= {
            Path(str(r.get("file"))).name for r in log_records(log2)
            if r["event"] == "file.ingested"}, 90, "the rest ingested", proc)
    finally:
        code2, _o, err2 = stop(proc, signal.SIGINT)
    assert code2 == 0, err2
    recs2 = log_records(log2)
    assert recs2[0]["event"] == "start" and any(r["event"] == "resume" for r in recs2)
    again = [Path(str(r["file"])).name for r in recs2 if r["event"] == "file.ingested"]
    assert sorted(again) == sorted(set(again))  # each once
    assert not {"AT-0.csv", "AT-1.csv"} & set(again)  # not ingested twice across runs
    assert sum(r["event"] == "file.already_ingested" for r in recs2) >= 2

    # every file's points exactly once, no gap: one 300 s grid over both days per country
    got = _points(store)
    for code in ("AT", "BB"):
        times = [t for c, t, _v in got if c == code]
        assert times == [T0 + i * STEP for i in range(2 * 288)], code
    con = duckdb.connect(str(store), read_only=True)
    imports = con.execute("SELECT file_name, count(*) FROM imports GROUP BY 1").fetchall()
    keys = con.execute("SELECT count(*) FROM state WHERE key LIKE 'watch:%'").fetchone()
    con.close()
    assert all(n == 1 for _f, n in imports) and len(imports) == 4
    assert keys == (4,)

    # the same files in one uninterrupted run give the very same points
    other = tmp_path / "one"
    (other / "incoming").mkdir(parents=True)
    for code, day in days:
        series_csv(other / "incoming" / f"{code}-{day}.csv", code, T0 + day * 86400, 288)
    ocfg = write_config(other, CONFIG)
    olog = other / "run.log"
    proc = start_run(ocfg, olog, "--duration", "300")
    try:
        wait_for(lambda: sum(r["event"] == "file.ingested" for r in log_records(olog)) == 4,
                 90, "all four", proc)
    finally:
        stop(proc)
    assert _points(other / "obs.duckdb") == got


def test_a_bad_file_is_reported_moved_aside_and_the_loop_goes_on(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, CONFIG)
    store, log, inbox = tmp_path / "obs.duckdb", tmp_path / "run.log", tmp_path / "incoming"
    inbox.mkdir()
    bad = inbox / "bad.csv"
    bad.write_text("time,entity_type,entity_code,signal,value\n"
                   f"{T0},country,KZ,bgp,1\n"
                   f"{T0 + STEP},country,KZ,bgp,not-a-number\n", encoding="utf-8")
    (inbox / "notes.txt").write_text("hello\n", encoding="utf-8")
    proc = start_run(cfg, log, "--duration", "300")
    try:
        wait_for(lambda: sum(r["event"] == "file.failed" for r in log_records(log)) == 2, 60,
                 "two failures", proc)
        series_csv(inbox / "good.csv", "KZ", T0, 12)
        wait_for(lambda: any(r["event"] == "file.ingested" for r in log_records(log)), 60,
                 "the good file after the bad ones", proc)
    finally:
        code, _o, err = stop(proc)
    assert code == 0, err
    failed = {Path(str(r["file"])).name: r for r in log_records(log) if r["event"] == "file.failed"}
    assert failed["bad.csv"]["line"] == 3 and f"{bad}:3:" in str(failed["bad.csv"]["error"])
    assert "not a format" in str(failed["notes.txt"]["error"])
    assert (inbox / "failed" / "bad.csv").exists() and not bad.exists()
    con = duckdb.connect(str(store), read_only=True)
    n_bad = con.execute("SELECT count(*) FROM points WHERE time = ?", [T0 + STEP]).fetchone()
    states = [json.loads(v)["status"] for (v,) in con.execute(
        "SELECT value FROM state WHERE key LIKE 'watch:%' ORDER BY key").fetchall()]
    con.close()
    assert n_bad == (1,)  # from good.csv only: the bad file wrote nothing
    assert sorted(states) == ["done", "failed", "failed"]
