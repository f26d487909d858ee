"""``netvigil bgp ingest --engine dask``: archives backfilled in RIB epochs on Dask workers.

Sharding, chosen by measurement (docs/distributed.md, "BGP backfill"): a profile of the
single-process ingest of a synthetic 2-hour, 2-collector archive (100k prefixes x 10 peers,
2.1 M elements) put 46 % of the time in the per-bin snapshot of the whole routing state,
21 % in reading RIBs and 21 % in parsing update files. Sharding by **prefix range** would
make every worker parse every file (42 % not divided: at most 1.4x on 2 workers); sharding
by **collector** divides parsing but not the snapshot, which needs every collector's peers
(per-bin coverage arrays shipped and summed). Sharding by **time** divides all of it:
:meth:`RoutingState.load_rib` *replaces* everything known about a collector's peers, so the
state after a RIB does not depend on anything before it. An **epoch** is ``[T_k, T_k+1)``
between consecutive RIB times (those every collector shares, :func:`boundaries`); its
worker replays, for every collector, from that collector's latest RIB at or before
``T_k`` (the rule :meth:`BgpIngester.plan` uses to resume) up to the next epoch's RIBs
and keeps only the facts of bins inside its epoch. Bins before ``T_k`` it computes while
replaying are dropped (another epoch owns them).

Workers emit **facts**, not points: :class:`~netvigil.pipeline.bgp.BgpAggregator` writes a
measured zero for an entity seen in *any* earlier bin, so the driver feeds every epoch's
facts, in time order, to the one pipeline — the points are then those of the single process
by construction of the path, and the tests check them value for value.

Each epoch's facts are one ``.npz`` file (atomic: temporary file, rename) named by the epoch
and the digest of its files: a re-run after an interruption reads finished epochs from disk
and only computes the others; a task lost with a worker is rerun by Dask.

Known differences from one process (documented, not hidden): a collector with no file in an
epoch is not listed as silent for that epoch's bins (its worker never hears of it), so the
``bgp:health:<collector>`` cursors can differ; points cannot (the aggregator does not read
``silent_collectors``). ``elements`` counts replayed elements once per epoch that replays
them.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from netvigil.distributed.engine import Echo, report_progress, roomy_malloc, task_key
from netvigil.model.facts import BgpVisibility, Fact
from netvigil.sources.bgp.ingest import ArchiveFile, BgpIngester
from netvigil.sources.bgp.mrt.errors import ErrorPolicy
from netvigil.sources.bgp.visibility import VisibilityConfig

if TYPE_CHECKING:
    from distributed import Client

    from netvigil.model.facts import FactSink

Epoch = tuple[int | None, int | None]  # [lo, hi): None = unbounded


def boundaries(files: Sequence[ArchiveFile], shared: bool = True) -> list[int]:
    """Epoch starts: the RIB times every collector has a RIB at (RIS dumps every collector
    at 00/08/16 UTC, RouteViews every 2 h: they share every 8 h), so no epoch replays a
    collector from an older RIB; without any shared time (or ``shared=False``), every distinct
RIB time (correct,
    but each epoch then replays the collectors whose RIB is older: 137 s on 1 worker against
    23 s in one process for 8 h of rrc00 + route-views2, benchmarks/bench_dask.py)."""
    by_coll: dict[str, set[int]] = {}
    for f in files:
        by_coll.setdefault(f.collector, set())
        if f.is_rib:
            by_coll[f.collector].add(f.time)
    sets = list(by_coll.values())
    common = set.intersection(*sets) if sets and shared else set()
    return sorted(common) if common else sorted(set.union(set(), *sets))


def epochs(files: Sequence[ArchiveFile], shared: bool = True) -> list[Epoch]:
    """``[None, T_1), [T_1, T_2), ..., [T_n, None)`` from :func:`boundaries`; the first is
    dropped when no file precedes the first boundary."""
    ribs = boundaries(files, shared)
    bounds: list[int | None] = [None, *ribs, None]
    out: list[Epoch] = list(zip(bounds[:-1], bounds[1:], strict=True))
    if ribs and not any(f.time < ribs[0] for f in files):
        out = out[1:]
        out[0] = (None, out[0][1])
    return out


def epoch_files(files: Sequence[ArchiveFile], epoch: Epoch) -> list[ArchiveFile]:
    """The files an epoch's worker reads: per collector, from its latest RIB at or before
    ``lo`` (or its first file) up to the RIBs at ``hi`` included — reaching them is what makes
    the ingester close (or carry forward) the bins before ``hi``'s bin as one process does;
    it loads them only if those bins are not closed yet (:meth:`BgpIngester.run`, ``end``) —
    and nothing later."""
    lo, hi = epoch
    ordered = sorted(files)
    out = []
    for coll in sorted({f.collector for f in ordered}):
        mine = [f for f in ordered if f.collector == coll
                and (hi is None or f.time < hi or (f.is_rib and f.time == hi))]
        if lo is not None:
            ribs = [i for i, f in enumerate(mine) if f.is_rib and f.time <= lo]
            mine = mine[ribs[-1]:] if ribs else mine
        out += mine
    return sorted(out)


class _Collect:
    """A FactSink keeping the BGP facts of the epoch's bins (workers write no store): from
    the bin holding ``lo`` (its value is the state after the RIB at ``lo``) to the bin
    before the one holding ``hi``."""

    def __init__(self, epoch: Epoch, step: int) -> None:
        lo, hi = epoch
        self.lo = None if lo is None else lo // step * step
        self.hi = None if hi is None else hi // step * step
        self.facts: list[BgpVisibility] = []

    def emit(self, fact: Fact) -> None:
        if isinstance(fact, BgpVisibility) and (self.lo is None or fact.time >= self.lo) \
                and (self.hi is None or fact.time < self.hi):
            self.facts.append(fact)

    def flush(self, cursors: Mapping[str, str] | None = None) -> None:
        return None

    def cursor(self, key: str) -> str | None:
        return None  # every file of the epoch is read: no resume inside an epoch


def _save(path: Path, facts: list[BgpVisibility], report: dict[str, Any]) -> None:
    meta = [{"time": f.time, "step": f.step, "ff4": f.full_feed_v4, "ff6": f.full_feed_v6,
             "v6_by_origin": [[int(k), int(v)] for k, v in f.v6_by_origin.items()],
             "silent": list(f.silent_collectors)} for f in facts]

    def cat(name: str, dtype: type) -> np.ndarray:
        arrs = [getattr(f, name) for f in facts]
        return np.concatenate(arrs).astype(dtype) if arrs else np.empty(0, dtype)

    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp.npz")
    try:
        np.savez(tmp, meta=np.asarray(json.dumps({"facts": meta, "report": report})),
                 v4_blocks=cat("v4_blocks", np.uint32), v4_origin=cat("v4_origin", np.uint32),
                 v4_n=np.asarray([f.v4_blocks.size for f in facts], np.int64),
                 v6_starts=cat("v6_starts", np.int64), v6_ends=cat("v6_ends", np.int64),
                 v6_n=np.asarray([f.v6_starts.size for f in facts], np.int64))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _load(path: Path) -> tuple[list[BgpVisibility], dict[str, Any]]:
    with np.load(path) as z:
        doc = json.loads(str(z["meta"]))
        o4 = np.concatenate([[0], np.cumsum(z["v4_n"])])
        o6 = np.concatenate([[0], np.cumsum(z["v6_n"])])
        b4, g4, s6, e6 = z["v4_blocks"], z["v4_origin"], z["v6_starts"], z["v6_ends"]
        facts = [BgpVisibility(
            time=m["time"], step=m["step"], full_feed_v4=m["ff4"], full_feed_v6=m["ff6"],
            v4_blocks=b4[o4[i]:o4[i + 1]], v4_origin=g4[o4[i]:o4[i + 1]],
            v6_starts=s6[o6[i]:o6[i + 1]], v6_ends=e6[o6[i]:o6[i + 1]],
            v6_by_origin={int(k): int(v) for k, v in m["v6_by_origin"]},
            silent_collectors=tuple(m["silent"])) for i, m in enumerate(doc["facts"])]
    return facts, doc["report"]


def ingest_epoch(files: list[ArchiveFile], epoch: Epoch, config: VisibilityConfig,
                 policy: str, target: str) -> str:
    """On a worker: run the one ingester over the epoch's files; save its bins' facts. The
    RIBs at ``hi`` are read only if the bins before ``hi``'s need them (``end``): the next
    epoch loads them (loading them here made the first of two epochs 9 % longer than the
    last, which has none: docs/scaling.md)."""
    sink = _Collect(epoch, config.step)
    with roomy_malloc():
        rep = BgpIngester(sink, config=config, policy=ErrorPolicy(policy)).run(files,
                                                                              end=epoch[1])
    _save(Path(target), sink.facts, {"elements": rep.elements, "problems": rep.problems})
    return target


def epoch_name(index: int, epoch: Epoch, files: Sequence[ArchiveFile]) -> str:
    text = json.dumps([epoch, [f"{f.key}:{f.path}" for f in files]])
    return f"epoch-{index:06d}-{hashlib.sha256(text.encode()).hexdigest()[:16]}.npz"


@dataclass
class DaskIngest:
    """What a distributed backfill did (the single-process report's figures)."""

    files: int = 0
    epochs: int = 0
    resumed: int = 0
    elements: int = 0
    bins: int = 0
    bins_without_full_feed: int = 0
    full_feed_v4: int = 0
    full_feed_v6: int = 0
    problems: list[str] = field(default_factory=list)


def ingest_dask(client: Client, files: Sequence[ArchiveFile], sink: FactSink,
                config: VisibilityConfig, policy: ErrorPolicy, work: Path, *,
                shared: bool = True, progress: Echo = None) -> DaskIngest:
    """Epochs on the workers (those not done in ``work``), facts into ``sink`` in time
    order, one flush at the end. The caller owns ``work`` (remove it once stored).
    ``progress`` gets a line as epochs finish (:func:`~netvigil.distributed.engine.
    report_progress`)."""
    from dataclasses import replace

    from distributed import wait

    # absolute paths: a worker on another host does not share this process's working
    # directory (a LocalCluster's workers do; docs/scaling.md section 5)
    files = [replace(f, path=f.path.absolute()) for f in files]
    work = work.absolute()
    work.mkdir(parents=True, exist_ok=True)
    eps = epochs(files, shared)
    plan = [(ep, epoch_files(files, ep)) for ep in eps]
    targets = [work / epoch_name(i, ep, fs) for i, (ep, fs) in enumerate(plan)]
    todo = [(ep, fs, t) for (ep, fs), t in zip(plan, targets, strict=True) if not t.is_file()]
    futures = [client.submit(ingest_epoch, fs, ep, config, policy.value, str(t),
                             key=task_key(f"bgp-{t.stem}"), pure=False) for ep, fs, t in todo]
    report_progress(futures, "bgp epochs", progress, resumed=len(plan) - len(todo))
    wait(futures)  # type: ignore[no-untyped-call]
    for f in futures:
        f.result()  # a worker's exception is raised here
    out = DaskIngest(files=len(files), epochs=len(eps), resumed=len(eps) - len(todo))
    for t in targets:
        facts, rep = _load(t)
        out.elements += int(rep["elements"])
        out.problems += [p for p in rep["problems"] if p not in out.problems]
        for fact in facts:
            sink.emit(fact)
            out.bins += 1
            if fact.full_feed_v4 == 0 and fact.full_feed_v6 == 0:
                out.bins_without_full_feed += 1
            out.full_feed_v4, out.full_feed_v6 = fact.full_feed_v4, fact.full_feed_v6
    sink.flush()
    return out


def ingest_dask_cli(files: Sequence[ArchiveFile], config: VisibilityConfig,
                    policy: ErrorPolicy, scheduler: str, store_path: Path) -> None:
    """``netvigil bgp ingest --engine dask``: the epochs, then the store through the one
    pipeline; the epoch folder beside the store is removed once the store has the points
    (kept after a failure, so a re-run resumes)."""
    import shutil

    import click

    from netvigil.distributed.engine import dask_client
    from netvigil.geo import GeoLookup
    from netvigil.model.errors import NetVigilError
    from netvigil.pipeline import Pipeline
    from netvigil.store.duck import Store

    digest = hashlib.sha256("\n".join(sorted(f"{f.key}:{f.path}" for f in files)).encode())
    work = store_path.parent / f".{store_path.name}.work" / f"bgp-{digest.hexdigest()[:16]}"
    with dask_client(scheduler) as client, Store(store_path) as store:
        pipeline = Pipeline(store, GeoLookup.default())
        rep = ingest_dask(client, files, pipeline, config, policy, work,
                          progress=lambda line: click.echo(line, err=True))
    shutil.rmtree(work, ignore_errors=True)
    click.echo(f"files {rep.files}, epochs {rep.epochs} (already done {rep.resumed}), "
               f"elements {rep.elements} (replays counted per epoch), bins {rep.bins}, "
               f"full-feed peers v4 {rep.full_feed_v4} v6 {rep.full_feed_v6} (last bin), "
               f"points written {pipeline.stats.points}")
    for p in rep.problems:
        click.echo(f"warning: {p}", err=True)
    if rep.bins and rep.bins_without_full_feed == rep.bins:
        raise NetVigilError(f"no full-feed peer in any of {rep.bins} bin(s), so no series "
                            "were written")
