"""`netvigil run` clusters closed days of points by series (decision 33): after a watched file
brings four days, the store's clustering mark moves past the closed days, the points are the
same. (`compact = false` skips the step: config.py, a one-line branch.)"""

from __future__ import annotations

from pathlib import Path

from netvigil.store.duck import CLUSTERED_UNTIL_KEY, Store
from test_observatory_support import (
    log_records,
    series_csv,
    start_run,
    stop,
    wait_for,
    write_config,
)

DAY = 86_400
START = 1_640_995_200  # 2022-01-01T00:00:00Z


def test_run_compacts_closed_days(tmp_path: Path) -> None:
    compact = True
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    store = tmp_path / "obs.duckdb"
    cfg = write_config(tmp_path, f'store = "{store}"\nbin_seconds = 1\n'
                                 f'compact = {str(compact).lower()}\n'
                                 '[watch]\ndirs = ["incoming"]\nsettle_seconds = 0.2\n')
    series_csv(incoming / "kz.csv", "KZ", START, 4 * DAY // 300)
    log = tmp_path / "run.jsonl"
    proc = start_run(cfg, log)
    wait_for(lambda: any(r["event"] == "file.ingested" for r in log_records(log)), 90,
             "the file ingested", proc)
    wait_for(lambda: sum(r["event"] == "bin" for r in log_records(log)) >= 2, 60,
             "a bin after the file", proc)
    stop(proc)
    compacted = [r for r in log_records(log) if r["event"] == "store.compacted"]
    with Store(store, read_only=True) as s:
        mark = s.get_state(CLUSTERED_UNTIL_KEY)
        n = s.connection.execute("SELECT count(*), count(DISTINCT time) FROM points"
                                   ).fetchone()
    assert n == (4 * DAY // 300, 4 * DAY // 300)
    # newest day starts at START + 3 days; closed = everything a day before that
    assert mark == str(START + 2 * DAY)
    assert len(compacted) == 1 and compacted[0]["rows"] == 2 * DAY // 300
