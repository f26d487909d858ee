"""Issue 12, deliverable 6: ``kill -9`` at random points, then a restart, equals one clean run.

Method (the hostile tester's probe of issue 12, made a test): for each writing command —
``netvigil series import``, ``netvigil bgp ingest`` and the observatory loop ``netvigil run`` —

1. run it once uninterrupted in a scratch folder, timing it from ``Popen`` to its end, and
   take a snapshot of every table of the store (the reference);
2. ``KILLS`` times, start it again on the same starting store, SIGKILL it at a time drawn
   (seeded, :data:`SEED`) from the k-th of ``KILLS`` equal slices of the measured run, so
   the kills spread over start-up, parsing, the write and the close;
3. look at the store as the kill left it (on a copy, so the restart sees the untouched
   files): for the all-or-nothing ``series import`` it must equal the store before or the
   reference, never anything in between;
4. restart the command (a re-run; for ``netvigil run`` until every dropped file is
   accounted for) and compare the snapshot with the reference: same points, series,
   entities, events, alerts, detector states, state cursors and import records.

Real subprocesses of the installed CLI, real DuckDB files, SIGKILL (no handler runs). The
inputs are sized so one run lasts about 1-2 s on two shared cores. Values that are wall
clock by design (``imports.imported_at``, the loop's own ``observatory:bin`` record, the
``at`` of a watched file's record) are left
out of the comparison; everything else must be equal.
"""

from __future__ import annotations

import json
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import duckdb

from test_observatory_support import log_records, wait_for

EXE = str(Path(sys.executable).with_name("netvigil"))
FIXTURES = Path(__file__).parent / "fixtures" / "mrt"
SEED = 12  # issue 12
KILLS = 3  # kill points per command
STEP = 300
T0 = 1_700_006_400  # 2023-11-15T00:00:00Z

#: table -> SELECT of its comparable columns (all but wall-clock ones)
TABLES = {
    "series": "SELECT * FROM series",
    "entities": "SELECT * FROM entities",
    "events": "SELECT * FROM events",
    "alerts": "SELECT * FROM alerts",
    "detector_state": "SELECT * FROM detector_state",
    "imports": "SELECT * EXCLUDE (imported_at) FROM imports",
    "state": "SELECT * FROM state WHERE key <> 'observatory:bin'",
}
#: points are many: compared by count, time range and an order-free sum of row hashes
POINTS = ("SELECT count(*), min(time), max(time), count(value), sum(hash(p)::HUGEINT)"
          " FROM points p")

Snapshot = dict[str, list[tuple[Any, ...]]]


def snapshot(store: Path) -> Snapshot:
    """Every table of a store, sorted, read from a copy of its files (DuckDB replays a WAL
    left by a kill on open; the copy keeps the original exactly as the kill left it)."""
    if not store.exists():
        return {}
    scratch = store.with_name("inspect-" + store.name)
    for suffix in ("", ".wal"):
        src = Path(str(store) + suffix)
        dst = Path(str(scratch) + suffix)
        dst.unlink(missing_ok=True)
        if src.exists():
            shutil.copyfile(src, dst)
    con = duckdb.connect(str(scratch))
    try:
        have = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables"
                                          ).fetchall()}
        snap = {t: con.execute(q + " ORDER BY ALL").fetchall()
                for t, q in TABLES.items() if t in have}
        # a watched file's record carries the wall time it was ingested at ("at")
        snap["state"] = [(k, _without_at(v) if k.startswith("watch:") else v)
                         for k, v in snap.get("state", [])]
        if "points" in have:
            snap["points"] = con.execute(POINTS).fetchall()
        return snap
    finally:
        con.close()
        for suffix in ("", ".wal"):
            Path(str(scratch) + suffix).unlink(missing_ok=True)


def _without_at(value: str) -> str:
    return json.dumps({k: v for k, v in json.loads(value).items() if k != "at"},
                      sort_keys=True)


def run_to_end(argv: list[str], timeout: float = 60) -> float:
    """Run a command to completion (exit 0); its wall time from Popen to exit."""
    t = time.monotonic()
    res = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0, res.stderr[-2000:]
    return time.monotonic() - t


def kill_at(argv: list[str], after: float) -> int | None:
    """Start ``argv``, SIGKILL it ``after`` seconds later; its exit status (None = killed,
    else it had already finished with that status)."""
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        proc.wait(timeout=after)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        # it may have exited on its own between the wait's timeout and the signal
        return None if proc.returncode == -signal.SIGKILL else proc.returncode
    return proc.returncode


def kill_times(seed: str, duration: float) -> list[float]:
    """One seeded kill time in each of ``KILLS`` equal slices of ``duration``."""
    rng = random.Random(f"{SEED}:{seed}")
    return [duration * (k + rng.random()) / KILLS for k in range(KILLS)]


def diff(got: Snapshot, want: Snapshot) -> str:
    """The tables that differ and how (the assertion message)."""
    out = []
    for t in sorted(set(got) | set(want)):
        a, b = got.get(t, []), want.get(t, [])
        if a != b:
            sa, sb = set(a), set(b)
            out.append(f"{t}: {len(a)} vs {len(b)} rows, {len(sa - sb)} extra "
                       f"(e.g. {sorted(sa - sb, key=repr)[:2]}), {len(sb - sa)} missing "
                       f"(e.g. {sorted(sb - sa, key=repr)[:2]})")
    return "; ".join(out)


# ---- series import ---------------------------------------------------------------------

N_SERIES = 200  # country/region series of the second file
N_BINS = 400  # 80k rows, ~3 MB: the import takes about as long as the start-up


def _series_csv(path: Path, bins: int, offset: float) -> Path:
    """A CSV of ``N_SERIES`` Kazakh regions/ASes x ``bins`` 5-minute bins (values from the
    row index only: the importer shares nothing with this generator)."""
    regions = ["KZ-10", "KZ-11", "KZ-15", "KZ-19", "KZ-23", "KZ-27", "KZ-31", "KZ-33",
               "KZ-35", "KZ-39", "KZ-43", "KZ-47", "KZ-55", "KZ-59", "KZ-61", "KZ-62",
               "KZ-63", "KZ-71", "KZ-75", "KZ-79"]
    lines = ["time,entity_type,entity_code,signal,value,entity_name"]
    ents = [("region", r) for r in regions] + [("asn", str(9198 + i))
                                               for i in range(N_SERIES - len(regions))]
    for b in range(bins):
        t = T0 + b * STEP
        for i, (et, code) in enumerate(ents):
            v = "" if (b * 7 + i) % 97 == 0 else f"{100 + (b * 13 + i * 7) % 50 + offset:g}"
            lines.append(f"{t},{et},{code},bgp,{v},{'AS ' + code if et == 'asn' else ''}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_kill_9_during_series_import_then_rerun_equals_one_clean_import(tmp_path: Path
                                                                       ) -> None:
    work = tmp_path / "work"
    work.mkdir()
    store = work / "nv.duckdb"
    base = tmp_path / "base"
    base.mkdir()
    # the store already holds a file; the second one overlaps it (updates) and extends it
    first = _series_csv(tmp_path / "first.csv", N_BINS // 4, 0.0)
    second = _series_csv(tmp_path / "second.csv", N_BINS, 0.5)
    run_to_end([EXE, "series", "import", str(first), "--store", str(store)])
    for f in work.iterdir():
        shutil.copy(f, base / f.name)
    before = snapshot(store)
    argv = [EXE, "series", "import", str(second), "--store", str(store)]
    took = run_to_end(argv)
    want = snapshot(store)
    assert want["points"][0][0] == N_SERIES * N_BINS and want != before
    n_rows = N_SERIES * N_BINS

    def restore() -> None:
        for f in work.iterdir():
            f.unlink()
        for f in base.iterdir():
            shutil.copy(f, work / f.name)

    outcomes = []
    for at in kill_times("series", took):
        restore()
        status = kill_at(argv, at)
        after_kill = snapshot(store)
        # all or nothing: the store as before, or the whole file with its import record
        committed = after_kill == want
        assert committed or after_kill == before, (at, diff(after_kill, before))
        outcomes.append("committed" if committed else "nothing")
        assert status in (None, 0)
        run_to_end(argv)
        got = snapshot(store)
        if committed:  # the re-run is a re-import: logged, every point unchanged
            rerun = got["imports"].pop()
            assert rerun[1:] == (str(second), want["imports"][-1][2], "csv", n_rows, n_rows,
                                 0, 0, 0, n_rows, []), rerun
            assert rerun[0] == want["imports"][-1][0] + 1
        assert got == want, (at, diff(got, want))
    print(f"series import: run {took:.2f} s, kills at "
          f"{', '.join(f'{t:.2f}' for t in kill_times('series', took))} s: {outcomes}")


# ---- bgp ingest --------------------------------------------------------------------------

BGP_FILES = ["rrc00_2000.01_updates.20000102.2014.gz", "rrc00_2000.03_updates.20000325.0345.gz"]


def test_kill_9_during_bgp_ingest_then_resume_equals_one_clean_ingest(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    store = work / "nv.duckdb"
    files = [str(FIXTURES / f) for f in BGP_FILES]
    argv = [EXE, "bgp", "ingest", *files, "--collector", "rrc00", "--ff-v4", "0",
            "--on-error", "skip", "--store", str(store)]
    took = run_to_end(argv)
    want = snapshot(store)
    assert want["points"][0][0] and any(k == "bgp:ingest:done" for k, _v in want["state"])

    done_at_kill = []
    for at in kill_times("bgp", took):
        shutil.rmtree(work)
        work.mkdir()
        kill_at(argv, at)
        cursors: dict[str, str] = dict(snapshot(store).get("state", []))
        done_at_kill.append(len(json.loads(cursors.get("bgp:ingest:done", "[]"))))
        run_to_end(argv)
        got = snapshot(store)
        assert got == want, (at, diff(got, want))
    print(f"bgp ingest: run {took:.2f} s, kills at "
          f"{', '.join(f'{t:.2f}' for t in kill_times('bgp', took))} s: files done at the "
          f"kill {done_at_kill}")


# ---- netvigil run ------------------------------------------------------------------------

RUN_CONFIG = """
store = "obs.duckdb"
bin_seconds = 1
[watch]
dirs = ["incoming"]
settle_seconds = 0
"""
RUN_FILES = 3  # one country each; the third is cut in its last hours (an event)
RUN_BINS = 864  # three days of 5-minute bins per file


def _run_inbox(folder: Path) -> None:
    """Three national series; the last one falls to 2 % for its last 3 hours."""
    folder.mkdir(parents=True)
    for n, code in enumerate(("AT", "BB", "KZ")):
        lines = ["time,entity_type,entity_code,signal,value"]
        for i in range(RUN_BINS):
            v = 1000 * (1 + 0.01 * ((i * 7) % 5 - 2) / 2)
            if n == RUN_FILES - 1 and i >= RUN_BINS - 36:
                v = 20
            lines.append(f"{T0 + i * STEP},country,{code},bgp,{v:g}")
        (folder / f"{code}.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _accounted(log: Path) -> bool:
    """Every dropped file ingested (now or by an earlier run) and a bin logged after."""
    seen: set[str] = set()
    after = False
    for r in log_records(log):
        if r["event"] in ("file.ingested", "file.already_ingested"):
            seen.add(Path(str(r["file"])).name)
            after = False
        elif r["event"] == "bin" and len(seen) == RUN_FILES:
            after = True
    return after


def _run_until_done(work: Path, log: Path) -> float:
    """``netvigil run`` until every file is accounted for, then SIGTERM; its wall time."""
    log.unlink(missing_ok=True)
    t = time.monotonic()
    proc = subprocess.Popen([EXE, "run", "--config", str(work / "observatory.toml"),
                             "--log", str(log), "--duration", "120"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: _accounted(log), 60, "every file accounted for", proc)
        took = time.monotonic() - t
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-2000:]
    return took


def test_kill_9_during_the_observatory_loop_then_restart_equals_one_clean_run(
        tmp_path: Path) -> None:
    work = tmp_path / "work"

    def fresh() -> None:
        if work.exists():
            shutil.rmtree(work)
        _run_inbox(work / "incoming")
        (work / "observatory.toml").write_text(RUN_CONFIG, encoding="utf-8")

    fresh()
    log = tmp_path / "run.log"
    took = _run_until_done(work, log)
    want = snapshot(work / "obs.duckdb")
    assert want["points"][0][0] == RUN_FILES * RUN_BINS and want["events"]
    assert sum(k.startswith("watch:") for k, _v in want["state"]) == RUN_FILES

    argv = [EXE, "run", "--config", str(work / "observatory.toml"), "--log",
            str(tmp_path / "killed.log"), "--duration", "120"]
    done_at_kill = []
    for at in kill_times("run", took):
        fresh()
        assert kill_at(argv, at) is None
        done_at_kill.append(sum(k.startswith("watch:")
                                for k, _v in snapshot(work / "obs.duckdb").get("state", [])))
        _run_until_done(work, log)
        got = snapshot(work / "obs.duckdb")
        assert got == want, (at, diff(got, want))
        recs = log_records(log)
        ingested = [r["file"] for r in recs if r["event"] == "file.ingested"]
        assert len(ingested) == len(set(ingested))
    print(f"netvigil run: {took:.2f} s to ingest and detect, kills at "
          f"{', '.join(f'{t:.2f}' for t in kill_times('run', took))} s: files done at the "
          f"kill {done_at_kill}")

