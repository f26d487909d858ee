# Two entry points for a fresh machine with Python 3.11+ and make:
#   make demo   - create the environment, install, replay the (reconstructed) Kazakhstan 2022 shutdown
#   make test   - create the environment, run lint, import contracts, types and the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test check lint imports types audit unit bench bench-scaling bench-scaling-ioda clean lock fuzz

# The environment is the LOCKED set (requirements/lock.txt: every package, build backends
# included, pinned with sha256 hashes; pip refuses anything else), then our own two packages
# without resolving anything. `make lock` re-resolves after a dependency edit in pyproject.toml.
LOCK := requirements/lock.txt

$(STAMP): pyproject.toml probe/pyproject.toml $(LOCK)
	$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --require-hashes --no-deps -r $(LOCK)
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e . -e ./probe
	$(BIN)/pip check
	# An editable install compiles nothing, and with PYTHONDONTWRITEBYTECODE set (as on our
	# machines) every `netvigil` process would compile ~100 modules again: 0.25 CPU s a start.
	$(BIN)/python -m compileall -q src probe/src >/dev/null
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/netvigil demo

test: lint imports types audit unit

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks probe

# Import rules (tiers, no cycles, no test harness in the runtime): [tool.importlinter] in pyproject.toml.
imports: $(STAMP)
	$(BIN)/lint-imports --no-cache

types: $(STAMP)
	$(BIN)/mypy

# Known vulnerabilities in the locked set (pip-audit; skipped with a message when offline).
audit: $(STAMP)
	BIN=$(BIN) $(BIN)/python .ci/audit.py

# Its own small venv, so a stale lock (the one thing it fixes) never stands in its way.
lock:
	test -x .lockvenv/bin/pip-compile || { $(PYTHON) -m venv .lockvenv && .lockvenv/bin/pip install --quiet pip-tools; }
	.lockvenv/bin/pip-compile --quiet --all-extras --all-build-deps --generate-hashes --allow-unsafe \
	  --strip-extras --no-emit-index-url --no-emit-find-links -o $(LOCK) pyproject.toml

# The suite runs on TEST_WORKERS processes (pytest-xdist; 2 = the CI machine's cores). Much of
# it waits on real time (observatory rounds, namespaces, subprocesses), so two processes halve
# the wall time; every test builds its own namespaces, ports and folders, so they do not meet.
TEST_WORKERS ?= 2
unit: $(STAMP)
	$(BIN)/pytest -n $(TEST_WORKERS) --dist worksteal

bench: $(STAMP)
	command -v wrk >/dev/null || apt-get install -y wrk  # bench_serve_load's load generator
	$(BIN)/python benchmarks/bench_geo_bulk.py
	$(BIN)/python benchmarks/bench_probing_belief.py
	$(BIN)/python benchmarks/bench_probing_scale.py
	$(BIN)/python benchmarks/bench_probing_rate.py
	$(BIN)/python benchmarks/bench_probing_pipeline.py
	$(BIN)/python benchmarks/bench_geo_regions.py
	$(BIN)/python benchmarks/bench_store.py
	$(BIN)/python benchmarks/bench_import.py
	$(BIN)/python benchmarks/bench_detect.py
	$(BIN)/python benchmarks/bench_observatory_lock.py
	$(BIN)/python benchmarks/bench_serve_load.py
	$(BIN)/python benchmarks/bench_collector.py
	bash benchmarks/setup_bgp_peers.sh
	$(BIN)/python benchmarks/bench_bgp_parse.py
	$(BIN)/python benchmarks/bench_bgp_ingest.py
	$(BIN)/python benchmarks/bench_bgp_updates.py
	$(BIN)/python benchmarks/bench_rislive.py
	$(MAKE) bench-scaling

# Issue 11's scaling figure (docs/scaling.md): the distributed phase alone with 1 and 2 Dask
# workers (ratio of median walls of three repeats; detection also at 41.5 M points, where
# the phase is seconds, not one), then the commands end to end: single process, `local:1`,
# `local:2` and a standing 2-worker cluster. `--plain`: the same OONI chunks and detection
# shards as plain processes (no Dask) and the machine's reference pairs, the ceiling the
# 2-worker figure is read against (benchmarks/pairs.py). About 12 min on 2 cores.
bench-scaling: $(STAMP)
	$(BIN)/python benchmarks/bench_dask.py --phase workers --repeat 3 --plain
	$(BIN)/python benchmarks/bench_dask.py --phase workers --repeat 3 --rows detect --entities 4800 --plain
	$(BIN)/python benchmarks/bench_dask.py --phase e2e --standing

# Detection at IODA's series count (70,000 series x 8 days = 161 M points; docs/scaling.md,
# "At IODA's series count"): the worker phase, then the CLI end to end. Not in `bench`: the
# store takes about 4 min to write (kept in BENCH_CACHE for the next run) and the runs 7 min.
BENCH_CACHE ?= /tmp/netvigil-bench-cache
bench-scaling-ioda: $(STAMP)
	$(BIN)/python benchmarks/bench_dask.py --phase workers --repeat 3 --rows detect --entities 70000 --days 8 --detect-cache $(BENCH_CACHE)
	$(BIN)/python benchmarks/bench_dask.py --phase e2e --standing --rows detect --entities 70000 --days 8 --detect-cache $(BENCH_CACHE)

# Coverage-guided fuzzing of every parser (atheris): >= 1M inputs per target, 0 crashes, 0 hangs
# is the goal; a summary table at the end (docs/fuzzing.md). FUZZ_ARGS e.g. --max-time 60 mrt-elems
fuzz: $(STAMP)
	$(BIN)/python -m fuzz.runner $(FUZZ_ARGS)

clean:
	rm -rf $(VENV) .lockvenv build *.egg-info src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
