"""``netvigil run`` with a ``[probing]`` section: real ICMP through network namespaces.

The observatory runs inside the lab's vantage namespace (``ip netns exec``) and probes 24
/24 blocks every 2 s, all counted for ``country/KZ`` (the targets' entity column); the test
then takes the links of 16 blocks down. The default detector (``netvigil.seasonal``) needs a
day of history before it judges (its warmup fills the time-of-day profile), so a day of
normal ``probing`` history is dropped into the watched folder first, on the same aligned
2 s grid the observatory's rounds use. The cut must show as an event that starts within two
rounds of the moment the links went down, seen by ``netvigil events`` while the run goes on.
"""

from __future__ import annotations

import base64
import json
import time
from datetime import datetime
from pathlib import Path

from netvigil.testing.netns import Lab, can_build
from prereq import requires
from test_observatory_support import cli, log_records, start_run, stop, wait_for, write_config

OK, WHY = can_build()
pytestmark = requires(OK, f"network namespaces: {WHY}")

BLOCKS, CUT_BLOCKS, ROUND = 24, 16, 2
HISTORY_S = 86_400 + 400  # > the one-day warmup of netvigil.seasonal, the default


def _history(path: Path, end: int) -> None:
    lines = ["time,entity_type,entity_code,signal,value"]
    lines += [f"{t},country,KZ,probing,{BLOCKS}" for t in range(end - HISTORY_S, end, ROUND)]
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    tmp.rename(path)


def test_probed_blocks_cut_in_namespaces_become_an_event(tmp_path: Path) -> None:
    with Lab(BLOCKS, hosts=4) as lab:
        targets = lab.targets_csv(tmp_path / "targets.csv", 0.8,
                                  {k: "country/KZ" for k in range(1, BLOCKS + 1)})
        cfg = write_config(tmp_path, f"""
store = "obs.duckdb"
bin_seconds = {ROUND}
[watch]
dirs = ["incoming"]
settle_seconds = 0.2
[probing]
targets = "{targets.name}"
round_seconds = {ROUND}
rate = 2000
min_addresses = 1
vantage = "lab"
""")
        store, log = tmp_path / "obs.duckdb", tmp_path / "run.log"
        (tmp_path / "incoming").mkdir()
        now = int(time.time()) // ROUND * ROUND
        _history(tmp_path / "incoming" / "history.csv", now)
        proc = start_run(cfg, log, "--duration", "400", argv_prefix=lab.exec_argv([]))
        try:
            def rounds_written() -> bool:
                recs = log_records(log)
                return (any(r["event"] == "file.ingested" for r in recs)
                        and sum(r["event"] == "bin" and int(str(r["facts"])) > 0
                                for r in recs) >= 3)

            wait_for(rounds_written, 120, "history ingested and three bins of rounds", proc)
            res = cli("events", "--format", "json", "--store", str(store))
            assert res.returncode == 0 and json.loads(res.stdout) == [], res.stdout
            cut_at = time.time()
            for k in range(1, CUT_BLOCKS + 1):
                lab.link_down(k)

            def event_written() -> bool:
                return any(r["event"] == "bin" and int(str(r["events"])) > 0
                           for r in log_records(log))

            # the detector's minimum duration is 60 s of data time: 30 rounds of 2 s. The
            # run's log is polled, not `netvigil events`: a CLI call every 0.2 s for that
            # minute cost the suite about 60 s of CPU.
            wait_for(event_written, 240, "a bin that writes an event", proc)
            res = cli("events", "--format", "json", "--entity", "country/KZ",
                      "--store", str(store))
            running = proc.poll() is None
            assert res.returncode == 0, res.stderr
            found = json.loads(res.stdout)
        finally:
            code, _o, err = stop(proc)
    assert running
    assert code == 0, err
    (ev,) = found
    start = datetime.fromisoformat(str(ev["start"]).replace("Z", "+00:00")).timestamp()
    assert cut_at - ROUND <= start <= cut_at + 2 * ROUND, (cut_at, ev)
    assert ev["scope"] == "national" and float(str(ev["min_ratio"])) < 0.5
    assert "probing" in [s["signal"] for s in ev["signals"]]
    recs = log_records(log)
    assert any(r["event"] == "source.started" and r["source"] == "probing" for r in recs)
    # the beliefs the rounds left are checkpointed with their points (docs/observatory.md)
    from netvigil.pipeline import PROBING_STATE_KEY
    from netvigil.pipeline.probing import ProbingAggregator
    from netvigil.store.duck import Store

    with Store(store, read_only=True) as st:
        saved = st.get_state(PROBING_STATE_KEY)
    assert saved is not None
    agg = ProbingAggregator(None)  # type: ignore[arg-type]  # restore needs no geo
    agg.restore(base64.b64decode(saved))
    blocks, beliefs = agg.beliefs("lab")
    assert blocks.size == BLOCKS and (beliefs[:CUT_BLOCKS] < 0.5).all()  # the cut ones: down
