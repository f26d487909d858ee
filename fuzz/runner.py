"""``make fuzz``: run every fuzz target under atheris/libFuzzer and print one summary table.

    python -m fuzz.runner [--runs 1000000] [--max-time 390] [--jobs 2] [TARGET ...]

Per target, in ``build/fuzz/<target>/``: ``seeds/`` (cut from tests/fixtures by
:mod:`fuzz.seeds`, rewritten each run), ``corpus/`` (the inputs libFuzzer found new coverage
with; kept between runs, so later runs start where earlier ones stopped), ``artifacts/``
(``crash-*``, ``timeout-*``, ``oom-*``: the inputs to turn into regression tests; ``stall-*``)
and ``log.N``. ``fuzz/regressions/<target>/`` is read as a corpus too.

libFuzzer stops a target at ``--runs`` inputs, after ``--max-time`` seconds, or at the first
crash (an exception outside the parser's documented errors, see :mod:`fuzz.targets`), hang
(one input over ``--timeout`` seconds) or out-of-memory (RSS over ``--rss-mb``); after a
finding the runner starts it again with the remaining inputs and time (:class:`Slot`). A
timeout is replayed for CPU time first and kept as a hang only if it needs more than
``--timeout`` CPU seconds (else ``stall-*``: libFuzzer's clock is wall time). Targets run
``--jobs`` at a time, longest first. The figures come from libFuzzer's own final stats
(``-print_final_stats=1``), never from our counting. Exit status 0 only when every target
executed ``--runs`` inputs with no crash, hang or out-of-memory.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from fuzz.seeds import ROOT, SEEDS, write_seeds

#: per target: -max_len (bytes), longest-running first (the schedule's order)
MAX_LEN = {
    "mrt-fastrib": 2048,
    "mrt-elems": 2048,
    "ris-live": 8192,
    "ooni": 16384,
    "series-csv": 4096,
    "series-ioda": 8192,
    "tor-userstats": 4096,
}
#: opt-in targets (name them on the command line): too slow per input for the 1M goal
EXTRA_MAX_LEN = {"series-csv-import": 2048}
GOAL_RUNS = 1_000_000
_STAT = re.compile(r"^stat::(\w+):\s+(\d+)", re.M)
_PROGRESS = re.compile(r"^#(\d+)\s", re.M)


@dataclass
class Result:
    target: str
    runs: int = 0
    seconds: float = 0.0
    crashes: int = 0
    hangs: int = 0
    ooms: int = 0
    stalls: int = 0  # libFuzzer timeouts whose replay took less CPU than the limit
    corpus: int = 0
    peak_rss_mb: int = 0
    returncode: int = 0
    artifacts: tuple[str, ...] = ()

    @property
    def failed(self) -> bool:
        return bool(self.crashes or self.hangs or self.ooms) or self.returncode not in (0,)

    def ok(self, goal: int) -> bool:
        return not self.failed and self.runs >= goal


def command(target: str, work: Path, runs: int, max_time: int, timeout: int,
            rss_mb: int) -> list[str]:
    d = work / target
    max_len = {**MAX_LEN, **EXTRA_MAX_LEN}[target]
    regress = ROOT / "fuzz" / "regressions" / target
    dirs = [d / "corpus", d / "seeds"] + ([regress] if regress.is_dir() else [])
    return [
        sys.executable, "-m", "fuzz.run_target", target,
        f"-runs={runs}", f"-max_total_time={max_time}", f"-max_len={max_len}",
        f"-timeout={timeout}", f"-rss_limit_mb={rss_mb}", "-print_final_stats=1",
        f"-artifact_prefix={d / 'artifacts'}/", *map(str, dirs),
    ]


def prepare(target: str, work: Path) -> None:
    d = work / target
    shutil.rmtree(d / "seeds", ignore_errors=True)
    write_seeds(target, d / "seeds")
    (d / "corpus").mkdir(parents=True, exist_ok=True)
    (d / "artifacts").mkdir(parents=True, exist_ok=True)
    for old in (d / "artifacts").iterdir():  # this run's findings only
        old.unlink()
    for old in d.glob("log.*"):
        old.unlink()


def parse(log: str) -> tuple[int, int]:
    """(inputs executed, peak RSS MB) from libFuzzer's final stats, or from the last ``#N``
    progress line if it died before printing them."""
    stats = {k: int(v) for k, v in _STAT.findall(log)}
    progress = [int(x) for x in _PROGRESS.findall(log)]
    return (stats.get("number_of_executed_units", max(progress, default=0)),
            stats.get("peak_rss_mb", 0))


def finish(r: Result, work: Path) -> Result:
    """Count the artifacts libFuzzer wrote (one per finding) and the corpus."""
    d = work / r.target
    arts = sorted(a for a in (d / "artifacts").iterdir()
                  if not a.name.startswith(("slow-unit-", "confirmed-")))
    names = [a.name for a in arts]
    r.crashes = sum(n.startswith("crash-") for n in names)
    r.hangs = sum(n.startswith("timeout-") for n in names)
    r.ooms = sum(n.startswith("oom-") for n in names)
    r.stalls = sum(n.startswith("stall-") for n in names)
    r.corpus = sum(1 for _ in (d / "corpus").iterdir())
    r.artifacts = tuple(str(a) for a in arts if not a.name.startswith("stall-"))
    return r


class Slot:
    """One target's runs: after a finding libFuzzer exits, and the target is started again
    (same corpus, the remaining inputs and time) so one crash does not end its campaign."""

    def __init__(self, target: str, work: Path, runs: int, max_time: int, timeout: int,
                 rss_mb: int) -> None:
        self.r = Result(target)
        self.work, self.goal, self.budget = work, runs, max_time
        self.timeout, self.rss_mb = timeout, rss_mb
        self.t0 = time.monotonic()
        self.launches = 0
        self.proc: subprocess.Popen[bytes] | None = None
        prepare(target, work)
        self._launch()

    def _launch(self) -> None:
        left = max(1, int(self.budget - (time.monotonic() - self.t0)))
        logp = self.work / self.r.target / f"log.{self.launches}"
        self.launches += 1
        cmd = command(self.r.target, self.work, self.goal - self.r.runs, left, self.timeout,
                      self.rss_mb)
        with open(logp, "wb") as fh:
            self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT)
        self.log = logp
        print(f"fuzz: {self.r.target} started (pid {self.proc.pid}, log {logp})", flush=True)

    def poll(self) -> bool:
        """True when the target is done."""
        assert self.proc is not None
        rc = self.proc.poll()
        if rc is None:
            return False
        runs, rss = parse(self.log.read_text(errors="replace"))
        self._confirm_timeouts()
        self.r.runs += runs
        self.r.peak_rss_mb = max(self.r.peak_rss_mb, rss)
        self.r.seconds = time.monotonic() - self.t0
        finish(self.r, self.work)
        found = self.r.crashes + self.r.hangs + self.r.ooms + self.r.stalls
        if rc != 0 and found < self.launches:  # exited without a finding: a runner problem
            self.r.returncode = rc
        left = self.budget - self.r.seconds
        if rc != 0 and found >= self.launches and left > 30 and self.r.runs < self.goal:
            self._launch()
            return False
        return True

    def _confirm_timeouts(self) -> None:
        """libFuzzer's ``-timeout`` is wall time; replay each timeout input alone and keep
        it as a hang only if it needs more than ``timeout`` CPU seconds (or does not finish
        within a generous wall guard), else rename it ``stall-*`` (machine load)."""
        arts = self.work / self.r.target / "artifacts"
        for a in sorted(arts.glob("timeout-*")):
            if (arts / f"confirmed-{a.name}").exists():
                continue
            try:
                out = subprocess.run(
                    [sys.executable, "-m", "fuzz.replay", self.r.target, str(a)], cwd=ROOT,
                    capture_output=True, text=True, timeout=max(300, 20 * self.timeout))
                m = re.search(r"cpu_seconds=([\d.]+)", out.stdout)
                cpu = float(m.group(1)) if m else float("inf")
            except subprocess.TimeoutExpired:
                cpu = float("inf")
            if cpu < self.timeout:
                a.rename(arts / f"stall-{a.name.removeprefix('timeout-')}")
                print(f"fuzz: {self.r.target}: {a.name} took {cpu:.3f} CPU s on replay: "
                      "a stall of the machine, not a hang", flush=True)
            else:
                (arts / f"confirmed-{a.name}").touch()


def run_all(targets: list[str], work: Path, runs: int, max_time: int, jobs: int,
            timeout: int, rss_mb: int) -> list[Result]:
    order = [*MAX_LEN, *EXTRA_MAX_LEN]
    pending = [t for t in order if t in targets]
    running: list[Slot] = []
    done: list[Result] = []
    while pending or running:
        while pending and len(running) < jobs:
            running.append(Slot(pending.pop(0), work, runs, max_time, timeout, rss_mb))
        time.sleep(0.5)
        for slot in list(running):
            if slot.poll():
                running.remove(slot)
                r = slot.r
                done.append(r)
                print(f"fuzz: {r.target} finished: {r.runs:,} inputs, {r.crashes} crashes, "
                      f"{r.hangs} hangs, {r.ooms} out-of-memory in {r.seconds:.0f} s",
                      flush=True)
    return sorted(done, key=lambda r: order.index(r.target))


def table(results: list[Result], goal: int) -> str:
    head = (f"{'target':<13} {'inputs':>11} {'crashes':>7} {'hangs':>5} {'oom':>3} "
            f"{'stalls':>6} {'exec/s':>7} {'secs':>5} {'corpus':>6} {'rss MB':>6}  goal")
    rows = [head, "-" * len(head)]
    for r in results:
        rate = r.runs / r.seconds if r.seconds else 0.0
        verdict = "met" if r.ok(goal) else ("FAILED" if r.failed else "short")
        rows.append(f"{r.target:<13} {r.runs:>11,} {r.crashes:>7} {r.hangs:>5} {r.ooms:>3} "
                    f"{r.stalls:>6} {rate:>7.0f} {r.seconds:>5.0f} {r.corpus:>6} "
                    f"{r.peak_rss_mb:>6}  {verdict}")
    rows.append(f"goal: >= {goal:,} inputs per target, 0 crashes, 0 hangs, 0 out-of-memory "
                "(stalls: libFuzzer wall-clock timeouts that replayed in under the limit's CPU "
                "time; the target was restarted)")
    for r in results:
        rows.extend(f"  finding: {a}" for a in r.artifacts)
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("targets", nargs="*", help=f"default: {', '.join(MAX_LEN)}; opt-in: "
                                               f"{', '.join(EXTRA_MAX_LEN)}")
    ap.add_argument("--runs", type=int, default=GOAL_RUNS)
    ap.add_argument("--max-time", type=int, default=390, help="seconds per target")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--timeout", type=int, default=5, help="seconds per input (a hang)")
    ap.add_argument("--rss-mb", type=int, default=1024)
    ap.add_argument("--work", type=Path, default=ROOT / "build" / "fuzz")
    a = ap.parse_args(argv)
    targets = a.targets or list(MAX_LEN)
    unknown = sorted(set(targets) - set(SEEDS))
    if unknown:
        ap.error(f"unknown target(s) {', '.join(unknown)}; known: {', '.join(MAX_LEN)}")
    t0 = time.monotonic()
    results = run_all(targets, a.work, a.runs, a.max_time, a.jobs, a.timeout, a.rss_mb)
    out = table(results, a.runs)
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    out += (f"\n{stamp}, wall {time.monotonic() - t0:.0f} s, --jobs {a.jobs}, --max-time "
            f"{a.max_time}, --timeout {a.timeout}, --rss-mb {a.rss_mb}")
    print(out)
    (a.work / "summary.txt").write_text(out + "\n")
    return 0 if all(r.ok(a.runs) for r in results) and len(results) == len(targets) else 1


if __name__ == "__main__":
    raise SystemExit(main())
