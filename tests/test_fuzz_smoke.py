"""``make fuzz`` in miniature: every fuzz target runs under atheris/libFuzzer (all at once,
one process each, corpora seeded from tests/fixtures) for :data:`RUNS` inputs — its seeds,
then mutations: about a second each on an idle core, plus ~2 s of instrumented imports —
and none may crash, hang (an input over 5 s) or run out of memory (1 GiB RSS). An input
count, not a time, so a loaded machine runs the same inputs more slowly instead of fewer.
The long run that aims at 1M inputs per parser is ``make fuzz`` (docs/fuzzing.md)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from prereq import require

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from fuzz.runner import EXTRA_MAX_LEN, MAX_LEN, run_all  # noqa: E402
from fuzz.seeds import SEEDS  # noqa: E402
from fuzz.targets import TARGETS  # noqa: E402

RUNS = 1000  # inputs per target (the largest seed set, mrt-elems, has under 300)
GUARD = 300  # seconds per target before libFuzzer stops it anyway (not a timing check)
# A fresh clone's first fuzz process compiles the numba kernels it imports (no cache yet):
# fresh-clone CI saw mrt-fastrib at 1,338 MB RSS already at libFuzzer's INITED, 104 MB with a
# warm cache. The smoke cap allows that one-time spike; `make fuzz` keeps 1,024 MB and its
# 1M-input runs stayed at 85-118 MB (docs/fuzzing.md). Runaway memory still fails here.
SMOKE_RSS_MB = 2560


def test_every_parser_target_fuzzes_without_crash_hang_or_oom(tmp_path: Path) -> None:
    require(importlib.util.find_spec("atheris") is not None,
            "atheris (the dev extra) is needed for the fuzz targets")
    assert set(MAX_LEN) | set(EXTRA_MAX_LEN) == set(SEEDS) == set(TARGETS), (
        "each target needs seeds and a -max_len")
    results = run_all(list(MAX_LEN), tmp_path, runs=RUNS, max_time=GUARD,
                      jobs=len(MAX_LEN), timeout=5, rss_mb=SMOKE_RSS_MB)
    assert [r.target for r in results] == list(MAX_LEN)
    for r in results:
        found = "\n".join(f"{a}: {Path(a).read_bytes()[:200]!r}" for a in r.artifacts)
        assert (r.crashes, r.hangs, r.ooms, r.returncode) == (0, 0, 0, 0), (
            f"{r.target}: {r.crashes} crashes, {r.hangs} hangs, {r.ooms} out-of-memory, "
            f"exit {r.returncode}; log in {tmp_path / r.target}\n{found}")
        seeds = sum(1 for _ in (tmp_path / r.target / "seeds").iterdir())
        assert seeds < RUNS <= r.runs, f"{r.target}: {r.runs} of {RUNS} inputs ({seeds} seeds)"
