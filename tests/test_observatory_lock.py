"""A bin whose store stays locked is skipped, logged, and the next bin catches up.

Real parts: another process opens the DuckDB store read-write and holds its lock for longer
than ``lock_wait_seconds`` (0.5 s) — the way a long ``netvigil series import`` or a reader
left open would. Meanwhile a real source thread keeps emitting facts into the observatory's
:class:`~netvigil.observatory.sources.QueueSink` (one point per tick and its cursor, as the
prober does per round) and a series file is dropped into the watched folder. Every bin
that cannot open the store must be skipped with a ``bin.store_locked`` error that says what
waits; the first bin after the lock is released must write every queued fact and the file:
the ticks are stored without a gap up to the last cursor written.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb

from test_observatory_support import log_records, series_csv, stop, wait_for

T0 = 1_700_006_400
HOLD = 3.0  # seconds the other process holds the lock: > lock_wait_seconds, several bins

OBSERVATORY = textwrap.dedent("""
    import asyncio, sys
    from pathlib import Path
    import numpy as np
    from netvigil.cli.common import open_store
    from netvigil.model.facts import PointBatch
    from netvigil.observatory.config import parse_config
    from netvigil.observatory.log import JsonLog
    from netvigil.observatory.run import Observatory
    from netvigil.observatory.sources import QueueSink, SourceThread

    base, T0 = Path(sys.argv[1]), int(sys.argv[2])
    cfg = parse_config('bin_seconds = 1\\nlock_wait_seconds = 0.5\\n[watch]\\n'
                       'dirs = ["incoming"]\\nsettle_seconds = 0.2\\n', base / "c.toml")

    class WithTicks(Observatory):
        def _start_sources(self, cursors):
            sink = QueueSink("ticks", cursors)
            flag = {"stop": False}

            async def main():
                i = int(sink.cursor("ticks:next") or 0)
                while not flag["stop"]:
                    sink.emit(PointBatch(np.array(["country"], object),
                                         np.array(["ZZ"], object), np.array(["bgp"], object),
                                         np.array([T0 + 300 * i]), np.array([1000.0 + i]),
                                         "ticks", 300))
                    i += 1
                    sink.flush({"ticks:next": str(i)})
                    await asyncio.sleep(0.05)

            src = SourceThread("ticks", sink, main, request_stop=lambda: flag.update(stop=True))
            self._sources.append(src)
            src.start()

    log = JsonLog(open(base / "run.log", "a"))
    obs = WithTicks(cfg, base / "s.duckdb", open_store=open_store, log=log, duration=120)
    obs.install_signal_handlers()
    sys.exit(obs.run())
""")

LOCKER = textwrap.dedent("""
    import sys, time
    import duckdb
    while True:  # the observatory closes the store between bins: take it then
        try:
            con = duckdb.connect(sys.argv[1])
            break
        except duckdb.Error:
            time.sleep(0.01)
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
    con.close()
    print("released", flush=True)
""")


def test_a_locked_bin_is_skipped_and_logged_and_the_next_bin_catches_up(tmp_path: Path) -> None:
    log, store, inbox = tmp_path / "run.log", tmp_path / "s.duckdb", tmp_path / "incoming"
    proc = subprocess.Popen([sys.executable, "-c", OBSERVATORY, str(tmp_path), str(T0)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: sum(r["event"] == "bin" for r in log_records(log)) >= 2, 60,
                 "two bins", proc)
        holder = subprocess.Popen([sys.executable, "-c", LOCKER, str(store), str(HOLD)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        series_csv(inbox / "while-locked.csv", "KZ", T0, 12)
        rest, holder_err = holder.communicate(timeout=30)  # closes its pipes
        assert rest.strip() == "released" and holder.returncode == 0, holder_err
        n_locked = sum(r["event"] == "bin.store_locked" for r in log_records(log))

        def caught_up() -> bool:
            recs = log_records(log)
            return (any(r["event"] == "file.ingested" for r in recs)
                    and any(r["event"] == "bin" and int(str(r["skipped_before"])) > 0
                            for r in recs))

        wait_for(caught_up, 60, "the bin after the lock", proc)
    finally:
        code, _out, err = stop(proc, signal.SIGTERM)
    assert code == 0, err
    recs = log_records(log)
    locked = [r for r in recs if r["event"] == "bin.store_locked"]
    assert n_locked >= 2 and len(locked) == n_locked  # HOLD / (bin + wait): 2 or more
    for k, r in enumerate(locked, 1):
        assert r["level"] == "error" and r["final"] is False and r["skipped"] == k
        assert r["waited_seconds"] == 0.5 and "stayed locked" in str(r["error"])
        assert int(str(r["queued_facts"]["ticks"])) > 0  # facts wait in their queue
    assert any(int(str(r["pending_files"])) == 1 for r in locked)  # and so does the file
    i_last = recs.index(locked[-1])
    after = next(r for r in recs[i_last:] if r["event"] == "bin")
    assert after["skipped_before"] == n_locked
    # the catch-up bin wrote everything that queued up over the skipped bins
    normal = [int(str(r["facts"])) for r in recs[:recs.index(locked[0])] if r["event"] == "bin"]
    assert int(str(after["facts"])) > max(normal)
    assert recs[-1]["event"] == "stopped" and recs[-1]["bins_skipped"] == n_locked

    con = duckdb.connect(str(store), read_only=True)
    ticks = con.execute("SELECT time, value FROM points WHERE entity_code = 'ZZ' "
                        "ORDER BY time").fetchall()
    n_file = con.execute("SELECT count(*) FROM points WHERE entity_code = 'KZ'").fetchone()
    cursor = con.execute("SELECT value FROM state WHERE key = 'ticks:next'").fetchone()
    con.close()
    assert cursor is not None
    n = int(cursor[0])
    assert ticks == [(T0 + 300 * i, 1000.0 + i) for i in range(n)]  # no gap, none twice
    assert n_file == (12,)
