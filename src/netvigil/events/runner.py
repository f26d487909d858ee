"""Detection orchestration (the public entry point): series -> alerts -> events.

Incremental detection over a store: series -> alerts (``ioda.median``) -> events.

For every stored series the runner computes a **fingerprint** — number of points, first
and last time, step, a SHA-256 of the values (NaN canonicalised) and the digest of the
detector rule that applies — and keeps it with ``store.set_state``. A series whose
fingerprint is unchanged is skipped; a changed one is recomputed from scratch and its alerts
replaced (``store.replace_alerts``). The events of every touched entity are rebuilt from all
its stored alerts (``store.replace_events``), inside one ``store.transaction()`` per entity,
so a failure leaves that entity as it was and the state is only advanced with the results.
Re-running without new data changes nothing.

Partitioning. Alerts depend on one series only, and events on the alerts of one entity, so
the unit of work is the **entity**: partition key ``entity.fqid`` (entities are spread over
``count`` shards by ``crc32(fqid) % count``, see ``shard=``). Runs on different shards
touch disjoint alerts, events and state keys and can go in parallel. Across time, a window
``[t0, t1)`` can be processed independently if it is read with a look-back of
``history + maxduration`` (14 days for the 7-day rules) so MovingStat is warm and its
inpainting state is settled; events open at ``t1`` are flagged ``overlaps_window`` in CODF
and must be joined with the next window (the same as ioda-api's ``extendWindow``). The full
partition key is therefore ``(crc32(entity.fqid) % shards, window start)``; this runner
implements the entity axis and processes the whole stored history of each series.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from netvigil.detect.ioda_median import METHOD, IodaMedian, MedianRule
from netvigil.events.build import build_events
from netvigil.geo.entities import default_registry
from netvigil.model import EntityRef, Series
from netvigil.store.duck import Store

STATE_PREFIX = f"detect/{METHOD}/"


@dataclass(frozen=True)
class DetectionReport:
    series_examined: int
    series_recomputed: int
    series_unchanged: int
    series_skipped: int  # signals the reference detector does not judge (higher is worse)
    alerts_written: int
    entities_touched: int
    events_written: int


def state_key(entity: EntityRef, signal: str) -> str:
    return f"{STATE_PREFIX}{entity.fqid}/{signal}"


def fingerprint(series: Series, rule: MedianRule) -> str:
    """Points, first/last time, step, value checksum and rule digest, as a JSON string."""
    vals = np.ascontiguousarray(series.values, dtype=np.float64)
    vals = np.where(np.isnan(vals), np.nan, vals)  # one NaN bit pattern
    present = ~np.isnan(vals)
    idx = np.flatnonzero(present)
    last = None if idx.size == 0 else int(series.start + series.step * int(idx[-1]))
    first = None if idx.size == 0 else int(series.start + series.step * int(idx[0]))
    digest = hashlib.sha256(vals.tobytes()).hexdigest()[:24]
    return json.dumps({"points": int(idx.size), "first": first, "last": last,
                       "step": series.step, "values": digest, "rule": rule.id,
                       "rule_digest": rule.digest()}, sort_keys=True)


def in_shard(entity: EntityRef, shard: tuple[int, int] | None) -> bool:
    """Partition key on the entity axis: ``crc32(fqid) % count == index``."""
    if shard is None:
        return True
    index, count = shard
    return zlib.crc32(entity.fqid.encode()) % count == index


def run_detection(
    store: Store,
    entity: EntityRef | None = None,
    *,
    shard: tuple[int, int] | None = None,
    detector: IodaMedian | None = None,
) -> DetectionReport:
    """Detect on every changed series (optionally one entity / one shard); rebuild events."""
    det = detector or IodaMedian()
    by_entity: dict[EntityRef, list[str]] = defaultdict(list)
    for info in store.list_series():
        if (entity is None or info.entity == entity) and in_shard(info.entity, shard):
            by_entity[info.entity].append(info.signal)

    examined = recomputed = unchanged = skipped = alerts_written = touched = events_n = 0
    for ent in sorted(by_entity):
        series: dict[str, Series] = {}
        changed: list[tuple[Series, str]] = []
        for signal in sorted(set(by_entity[ent])):
            examined += 1
            s = store.read_series(ent, signal)
            series[signal] = s
            rule = det.rule_for(signal)
            if rule is None:
                skipped += 1
                continue
            fp = fingerprint(s, rule)
            if store.get_state(state_key(ent, signal)) == fp:
                unchanged += 1
            else:
                changed.append((s, fp))
        if not changed:
            continue
        touched += 1
        with store.transaction():
            for s, fp in changed:
                alerts = det.detect(s)
                store.replace_alerts(ent, s.signal, METHOD, alerts)
                store.set_state(state_key(ent, s.signal), fp)
                alerts_written += len(alerts)
                recomputed += 1
            name = store.entity_name(ent) or default_registry().name(ent)
            events = build_events(ent, store.read_alerts(ent), series, entity_name=name)
            store.replace_events(ent, events)
            events_n += len(events)
    return DetectionReport(examined, recomputed, unchanged, skipped, alerts_written, touched,
                           events_n)
