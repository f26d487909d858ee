"""Stopping: a second SIGTERM leaves a stuck bin at once (status 143) without committing it.

The stuck bin is made real, not simulated in the loop: the store opener the loop is given
opens the real DuckDB store, begins the bin, then blocks the way a reader holding the lock
or a huge file would — inside the bin's transaction.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb

from test_observatory_support import log_records, wait_for

SCRIPT = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from netvigil.cli.common import open_store
    from netvigil.observatory.config import parse_config
    from netvigil.observatory.log import JsonLog
    from netvigil.observatory.run import Observatory

    base = Path(sys.argv[1])
    cfg = parse_config('bin_seconds = 1', base / "c.toml")
    opened = []

    def opener(path, **kw):
        store = open_store(path, **kw)
        opened.append(1)
        if len(opened) == 3:  # the second bin: write, then hang inside the transaction
            with store.transaction():
                store.set_state("stuck", "written but never committed")
                print("stuck", flush=True)
                time.sleep(600)
        return store

    log = JsonLog(open(base / "run.log", "a"))
    obs = Observatory(cfg, base / "s.duckdb", open_store=opener, log=log)
    obs.install_signal_handlers()
    sys.exit(obs.run())
""")


def test_a_second_sigterm_leaves_a_stuck_bin_without_committing_it(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "stuck"
        proc.send_signal(signal.SIGTERM)  # first: "stop at the next safe point"
        time.sleep(0.5)
        assert proc.poll() is None  # still stuck in the bin: the first signal waits for it
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, err
    recs = wait_for(lambda: log_records(tmp_path / "run.log"), 5, "the log")
    assert recs[-1]["event"] == "stopping" and recs[-1]["forced"] is True
    con = duckdb.connect(str(tmp_path / "s.duckdb"), read_only=True)
    stuck = con.execute("SELECT count(*) FROM state WHERE key = 'stuck'").fetchone()
    bins = con.execute("SELECT value FROM state WHERE key = 'observatory:bin'").fetchone()
    con.close()
    assert stuck == (0,)  # the stuck bin's write was rolled back
    assert bins is not None and '"bin": 1' in bins[0]  # the first bin stays committed
