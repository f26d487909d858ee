"""``netvigil run``: the observatory as one long-running process.

Every bin (``bin_seconds`` of wall time, default 300 s) the loop

1. takes from each running source (prober, RIS Live) the facts up to its last consistent
   point, with the cursors that say how far it got (:class:`~.sources.QueueSink`);
2. opens the store (waiting, with a bounded backoff, while a reader holds DuckDB's lock);
3. writes those facts through the one :class:`~netvigil.pipeline.Pipeline` and their cursors
   in one transaction;
4. ingests every watched file that has arrived, each in its own transaction with its
   exactly-once key (:mod:`.watch`); a bad file is logged, recorded and moved aside;
5. runs detection (:func:`netvigil.events.runner.run_detection`: incremental, alerts and the
   events of every touched entity), records the bin under ``observatory:bin``;
6. closes the store, so ``netvigil events`` / ``series list`` / ``serve`` can open it
   read-only until the next bin.

**Single writer, store closed between bins.** DuckDB lets one process open a file
read-write, and a read-write open excludes read-only openers (and the reverse). Holding
the store open for the life of the process would lock every reader out; so the run loop
holds it only for the few hundred milliseconds of a bin write, and every command retries
opening on the lock error (``cli.common.open_store``). Readers see only committed bins:
DuckDB commits atomically and the file is checkpointed when the writer closes it.

**Stopping.** SIGTERM or SIGINT set a flag; the loop finishes the bin in progress (never
stops inside a transaction), stops the sources at their next safe point (a RIS Live poll,
a probing round boundary), writes one last bin with whatever they flushed, and exits 0.
``--duration`` does the same after that many seconds. A restart resumes from the cursors in
the ``state`` table: watched files by their keys, RIS Live by its per-session cursor, the
prober on the same aligned round grid; points are upserts keyed by time, so a bin written
twice is written identically and nothing is counted twice.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from netvigil.model import ErrorPolicy, StoreError
from netvigil.observatory.config import ObservatoryConfig
from netvigil.observatory.log import JsonLog
from netvigil.observatory.sources import SourceThread, probing_source, ris_live_source
from netvigil.observatory.watch import FileIngest, Watcher, ingest_files

if TYPE_CHECKING:
    from netvigil.pipeline import Pipeline
    from netvigil.store.duck import Store

BIN_KEY = "observatory:bin"
#: state keys a source never resumes from: not loaded into the sources' cursor snapshot
#: (``pipeline:`` holds the pipeline's checkpoints, megabytes at scale: never read here)
_NOT_CURSORS = ("detect/", "watch:", "pipeline:")
POLL_SECONDS = 0.1  # how often the loop looks at the watched folders and the stop flag

StoreOpener = Callable[..., "Store"]  # (path, *, read_only, wait, on_wait) -> Store


@dataclass
class RunTotals:
    bins: int = 0
    facts: int = 0
    files_done: int = 0
    files_failed: int = 0
    bins_skipped: int = 0  # the store stayed locked (bin.store_locked)
    events_written: int = 0
    source_errors: list[str] = field(default_factory=list)


class Observatory:
    """One run of the observatory: sources, watched folders, detection, every bin."""

    def __init__(self, config: ObservatoryConfig, store_path: Path, *, open_store: StoreOpener,
                 log: JsonLog, duration: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.store_path = store_path
        self.open_store = open_store
        self.log = log
        self.duration = duration
        self.clock = clock
        self.totals = RunTotals()
        self._stop_reason: str | None = None
        self._forced = False
        self._sources: list[SourceThread] = []
        self._pipeline: Pipeline | None = None
        self._file_pipeline: Pipeline | None = None
        self._bgp_ingester: Any = None
        self._skipped_since = 0  # bins skipped since the last one written
        self._restore_logged = False
        w = config.watch
        self.watcher = Watcher(w.dirs, w.settle_seconds) if w is not None else None
        self._alerts: Any = None
        if config.alerts is not None:  # validated at start: a bad alert config stops the run
            from netvigil.alerts import load_config as load_alerts

            self._alerts = load_alerts(config.alerts)

    # -------------------------------------------------------------- control
    def request_stop(self, reason: str) -> None:
        if self._stop_reason is None:
            self._stop_reason = reason

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if self._stop_reason is not None and not self._forced:
            # A second signal: the bin in progress is stuck (a huge file, a hung reader).
            # Leave now; the open transaction rolls back, nothing half-written is committed.
            self._forced = True
            raise SystemExit(128 + signum)
        self.request_stop(signal.Signals(signum).name)

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    # -------------------------------------------------------------- store access
    def _open(self) -> Store:
        waited = [0.0]

        def on_wait(delay: float) -> None:
            waited[0] += delay

        store = self.open_store(self.store_path, read_only=False,
                                wait=self.config.lock_wait_seconds, on_wait=on_wait)
        if waited[0] >= 1.0:
            self.log.info("store.lock_waited", seconds=round(waited[0], 2))
        return store

    def _read_cursors(self) -> dict[str, str]:
        store = self._open()
        try:
            where = " AND ".join("key NOT LIKE ?" for _ in _NOT_CURSORS)
            rows = store.connection.execute(f"SELECT key, value FROM state WHERE {where}",
                                            [f"{p}%" for p in _NOT_CURSORS]).fetchall()
            last = store.get_state(BIN_KEY)
        finally:
            store.close()
        if last:
            self.log.info("resume", last_bin=json.loads(last))
        return {str(k): str(v) for k, v in rows}

    # -------------------------------------------------------------- the loop
    def run(self) -> int:
        cfg = self.config
        self.log.info("start", config=str(cfg.path), store=str(self.store_path),
                      bin_seconds=cfg.bin_seconds, sources=list(cfg.sources),
                      duration=self.duration)
        cursors = self._read_cursors()
        if self.watcher is not None:
            self.watcher.ensure_dirs()
        try:
            self._start_sources(cursors)
        except BaseException:
            self._stop_sources()
            raise
        started = self.clock()
        deadline = None if self.duration is None else started + self.duration
        next_bin = started + cfg.bin_seconds
        try:
            while self._stop_reason is None:
                now = self.clock()
                if deadline is not None and now >= deadline:
                    self.request_stop("duration")
                    break
                if self.watcher is not None:
                    self.watcher.poll()
                if now >= next_bin:
                    self._bin()
                    next_bin += cfg.bin_seconds
                    if next_bin <= self.clock():  # fell behind: skip, do not burst
                        next_bin = self.clock() + cfg.bin_seconds
                    continue
                wake = min(next_bin, deadline if deadline is not None else next_bin)
                time.sleep(max(0.0, min(POLL_SECONDS, wake - self.clock())))
        finally:
            self.log.info("stopping", reason=self._stop_reason or "error", forced=self._forced)
            if not self._forced:
                self._stop_sources()
                if self.watcher is not None:
                    self.watcher.poll()
                self._bin(final=True)
            self.log.close()
        t = self.totals
        self.log.info("stopped", reason=self._stop_reason, bins=t.bins,
                      bins_skipped=t.bins_skipped, facts=t.facts,
                      files_done=t.files_done, files_failed=t.files_failed,
                      source_errors=t.source_errors)
        return 1 if t.source_errors else 0

    def _start_sources(self, cursors: dict[str, str]) -> None:
        cfg = self.config
        if cfg.probing is not None:
            self._sources.append(probing_source(cfg.probing, cursors))
        if cfg.bgp is not None:
            self._sources.append(ris_live_source(cfg.bgp, cursors))
        for src in self._sources:
            src.start()
            self.log.info("source.started", source=src.name)

    def _stop_sources(self) -> None:
        for src in self._sources:
            src.stop()
            self._check_source(src)

    def _check_source(self, src: SourceThread) -> None:
        if src.error is not None and not any(e.startswith(f"{src.name}:")
                                             for e in self.totals.source_errors):
            msg = f"{src.name}: {type(src.error).__name__}: {src.error}"
            self.totals.source_errors.append(msg)
            self.log.error("source.failed", source=src.name, error=msg)

    # -------------------------------------------------------------- one bin
    def _bin(self, final: bool = False) -> None:
        from netvigil.events.runner import run_detection

        t0 = self.clock()
        for src in self._sources:
            self._check_source(src)
        try:
            store = self._open()
        except StoreError as exc:  # still locked after lock_wait_seconds: try next bin
            self._store_locked(exc, final)
            return
        # taken only once the store is open: facts never leave their queue unwritten
        taken = [(src, *src.sink.take()) for src in self._sources]
        arrived = self.watcher.arrived() if self.watcher is not None else []
        try:
            pipeline = self._pipeline_for(store)
            facts = 0
            cursors: dict[str, str] = {}
            for _src, got, curs, _waiting in taken:
                for fact in got:
                    pipeline.emit(fact)
                facts += len(got)
                cursors.update(curs)
            if pipeline.restored is not None and not self._restore_logged:
                self._restore_logged = True
                self.log.info("pipeline.restored", state=pipeline.restored)
            before = pipeline.stats.points
            pipeline.flush(cursors)
            outcomes = self._ingest(store, arrived)
            det = run_detection(store)
            self._compact(store)
            self._prune_round_log(store)
            queued = self._enqueue_alerts(store)
            self.totals.bins += 1
            self.totals.facts += facts
            self.totals.events_written += det.events_written
            record = {"bin": self.totals.bins, "wall": int(time.time()), "facts": facts,
                      "final": final}
            store.set_state(BIN_KEY, json.dumps(record, sort_keys=True))
        finally:
            store.close()
        self._deliver_alerts(queued)  # after the store is closed: receivers never hold it
        secs = self.clock() - t0
        waiting = {src.name: w for src, _g, _c, w in taken}
        skipped, self._skipped_since = self._skipped_since, 0
        self.log.info("bin", bin=self.totals.bins, final=final, facts=facts,
                      skipped_before=skipped,
                      points=pipeline.stats.points - before, files=len(outcomes),
                      series_recomputed=det.series_recomputed, alerts=det.alerts_written,
                      entities=det.entities_touched, events=det.events_written,
                      waiting=waiting, seconds=round(secs, 3))
        pending = self.watcher.pending() if self.watcher is not None else 0
        self.log.progress(f"bin {self.totals.bins}: facts {self.totals.facts}, files "
                          f"{self.totals.files_done} ok / {self.totals.files_failed} failed, "
                          f"{pending} pending, events {det.events_written} ({secs:.2f} s)")

    def _compact(self, store: Store) -> None:
        """Cluster newly closed days of points by series (``Store.compact_points``: a no-op
        query until a day closes), so serve's and detection's per-series reads stay fast on
        a store that grows one bin of every series at a time (decision 33)."""
        if not self.config.compact:
            return
        t0 = self.clock()
        done = store.compact_points()
        if done.rows:
            self.log.info("store.compacted", rows=done.rows, start=done.start,
                          until=done.until, seconds=round(self.clock() - t0, 3))

    def _prune_round_log(self, store: Store) -> None:
        """Fold probe rounds older than ``round_log_keep_days`` into the round log's base
        (``pipeline.roundlog.prune_log``: reads nothing until the day turns), so the log and
        a late round's replay stop growing with the store's probing history."""
        keep = self.config.round_log_keep_days
        if keep <= 0:
            return
        from netvigil.pipeline.roundlog import prune_log

        t0 = self.clock()
        done = prune_log(store, keep * 86_400)
        if done.folded or done.stale:
            self.log.info("probing.round_log_pruned", before=done.before, folded=done.folded,
                          kept=done.kept, stale=done.stale, bytes_before=done.bytes_before,
                          bytes_after=done.bytes_after, seconds=round(self.clock() - t0, 3))

    def _enqueue_alerts(self, store: Store) -> int:
        """New transitions of the stored events into the alert outbox (durable, idempotent)."""
        if self._alerts is None:
            return 0
        from netvigil.alerts.dispatch import enqueue
        from netvigil.alerts.outbox import Outbox

        with Outbox(self._alerts.outbox) as outbox:
            return enqueue(self._alerts, outbox, store.read_events(), int(time.time()))

    def _deliver_alerts(self, queued: int) -> None:
        if self._alerts is None:
            return
        from netvigil.alerts.dispatch import deliver
        from netvigil.alerts.outbox import Outbox

        with Outbox(self._alerts.outbox) as outbox:
            sent, retried, failed = deliver(self._alerts, outbox, int(time.time()))
            pending = outbox.counts()["pending"]
        if queued or sent or retried or failed:
            self.log.info("alerts", queued=queued, delivered=sent, retried=retried,
                          failed=failed, pending=pending)

    def _store_locked(self, exc: StoreError, final: bool) -> None:
        """A bin skipped because another process held the store for longer than
        ``lock_wait_seconds``: nothing was taken from the sources or the folders, so the
        next bin writes it all (a final bin's facts stay unwritten and their cursors too, so
        a restart resumes before them)."""
        self.totals.bins_skipped += 1
        self._skipped_since += 1
        queued = {src.name: src.sink.waiting() for src in self._sources}
        pending = self.watcher.pending() if self.watcher is not None else 0
        self.log.error("bin.store_locked", final=final, skipped=self._skipped_since,
                       waited_seconds=self.config.lock_wait_seconds, queued_facts=queued,
                       pending_files=pending, error=str(exc))
        self.log.progress(f"bin skipped: store locked ({self._skipped_since} in a row); "
                          f"{sum(queued.values())} facts and {pending} files wait")

    def _pipeline_for(self, store: Store) -> Pipeline:
        from netvigil.pipeline import Pipeline

        if self._pipeline is None:
            self._pipeline = Pipeline(store)
        self._pipeline.store = store  # aggregator state lives on; the store is per bin
        return self._pipeline

    # -------------------------------------------------------------- watched files
    def _ingest(self, store: Store, arrived: list[Path]) -> list[Any]:
        if not arrived or self.config.watch is None:
            return []
        w = self.config.watch
        formats: dict[str, FileIngest[Store]] = {"csv": _import_series, "ioda": _import_series,
                                          "mrt": self._ingest_mrt}
        outcomes = ingest_files(store, arrived, formats, w.on_error, move_failed=w.move_failed,
                                on_failure=self._discard_file_facts)
        for o in outcomes:
            assert self.watcher is not None
            self.watcher.handled(o.path)
            if o.status == "done":
                self.totals.files_done += 1
                self.log.info("file.ingested", file=str(o.path), format=o.format, **o.detail)
            elif o.status == "already":
                self.log.info("file.already_ingested", file=str(o.path))
            else:
                self.totals.files_failed += 1
                self.log.error("file.failed", file=str(o.path), line=o.line, error=o.error,
                               format=o.format, moved_to=str(o.moved_to) if o.moved_to else None)
        return outcomes

    def _ingest_mrt(self, store: Store, path: Path, _fmt: str,
                    policy: ErrorPolicy) -> dict[str, Any]:
        """MRT archives through the BGP backfill, one long-lived ingester so that an updates
        file continues the routing state of the RIB dropped before it."""
        from netvigil.pipeline import Pipeline
        from netvigil.sources.bgp.ingest import BgpIngester, classify

        if self._file_pipeline is None:
            self._file_pipeline = Pipeline(store)
        self._file_pipeline.store = store
        if self._bgp_ingester is None:
            self._bgp_ingester = BgpIngester(self._file_pipeline, policy=policy)
        before = self._file_pipeline.stats.points
        rep = self._bgp_ingester.run([classify(path)])
        self._file_pipeline.flush()
        detail: dict[str, Any] = {"elements": rep.elements, "bins": rep.bins,
                                  "points": self._file_pipeline.stats.points - before,
                                  "problems": rep.problems[:3]}
        if rep.files == 0:
            # the ingester's own progress (bgp:ingest:done) already holds this archive
            detail["already_in_bgp_progress"] = True
        if rep.no_full_feed:
            # not a bad file, but nothing could be measured: say so (docs/bgp.md)
            detail.update(no_full_feed=True, largest_v4=rep.largest_v4,
                          threshold_v4=rep.threshold_v4, largest_v6=rep.largest_v6,
                          threshold_v6=rep.threshold_v6)
            self.log.warning("file.no_full_feed", file=str(path), bins=rep.bins,
                             largest_v4=rep.largest_v4, threshold_v4=rep.threshold_v4,
                             largest_v6=rep.largest_v6, threshold_v6=rep.threshold_v6,
                             rules=list(self._bgp_ingester.config.rule_ids()))
        return detail

    def _discard_file_facts(self) -> None:
        """After a failed file: forget the facts it emitted but did not flush, and the MRT
        ingester's state (rebuilt from the next RIB), so nothing of it reaches the store."""
        self._file_pipeline = None
        self._bgp_ingester = None


def _import_series(store: Store, path: Path, fmt: str, policy: ErrorPolicy) -> dict[str, Any]:
    from netvigil.pipeline import Pipeline
    from netvigil.series.importers import import_file

    # one pipeline per file: imported points carry no aggregation state, and a failed file's
    # unflushed batches die with it
    s = import_file(store, path, fmt, policy.value, sink=Pipeline(store))
    return {"rows": s.rows_read, "written": s.accepted, "skipped": s.skipped,
            "series": s.series_touched}
