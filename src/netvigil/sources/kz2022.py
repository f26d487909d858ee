"""Kazakhstan, January 2022: a seeded RECONSTRUCTION at the source level (not measured data).

Why generate *source-level facts* and not ready-made series: the demo must exercise the same
aggregation path real data takes (anchors §2.1 Trinocular beliefs, §1.2 the >50%-of-full-feed
BGP rule, §4.1 OONI IM test outcomes). So this module plays three sources over the real KZ
address universe (country-ip-blocks 2022-01-04, CC0) and the real AS split (ip-location-db,
CC BY 4.0; 2026 data as the best available split) and emits what each would log, per bin, as
numpy arrays:

* active probing, 600 s rounds: per /24 the ever-responsive set size |E(b)|, the census
  availability A(E(b)), and per round the probes sent and replies received by a
  Trinocular-style prober (1 periodic + up to 14 adaptive probes until the belief resolves);
* BGP, 300 s bins: per collector peer its IPv4 table size, and per real KZ prefix a bitmask of
  the peers carrying it (session resets and flaps as noise; no withdrawal at the blackout, only
  churn — RIPE Labs, Kentik, anchors §8.1);
* platform tests, 3600 s bins: per AS and platform (whatsapp, telegram, signal) the number of
  OONI-style tests that reached the service and the number that were blocked.

The timeline lives in ``data/kz2022/scenario.toml`` (every row cites anchors §8.1). The same
data yields :class:`TruthEvent` s, so tests can check detection against the reconstruction's own
truth. Same seed, same arrays: every random draw comes from one ``numpy.random.Generator``
in a fixed order.
"""

from __future__ import annotations

import csv
import ipaddress
import re
import tomllib
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from importlib import resources
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from netvigil.model import EntityRef, EntityType, EventKind, Scope

CLASSES: Final[tuple[str, ...]] = ("fixed", "mobile", "datacentre")
FIXED, MOBILE, DATACENTRE = 0, 1, 2

U8 = npt.NDArray[np.uint8]
U16 = npt.NDArray[np.uint16]
U32 = npt.NDArray[np.uint32]
I8 = npt.NDArray[np.int8]
I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]
F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]


# ---------------------------------------------------------------------------------------------
# Scenario (the timeline as data)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Phase:
    """One row of the timeline: class levels and/or platform levels over [start, end)."""

    id: str
    what: str
    start: int
    end: int
    levels: dict[str, float]
    platforms: dict[str, float]
    source: str
    assumed: bool


@dataclass(frozen=True)
class AsClass:
    asn: int
    cls: str
    name: str
    source: str


@dataclass(frozen=True)
class Scenario:
    """The parsed ``scenario.toml``; ``raw`` keeps every section for the generator's knobs."""

    id: str
    title: str
    label: str
    country: str
    country_name: str
    start: int
    end: int
    geo_date: date
    utc_offset_hours: int
    seed: int
    phases: tuple[Phase, ...]
    as_classes: tuple[AsClass, ...]
    raw: dict[str, Any]
    data_dir: Path

    @property
    def geo_when(self) -> int:
        """Unix seconds of the geolocation date (00:00 UTC)."""
        return _ts(datetime(self.geo_date.year, self.geo_date.month, self.geo_date.day,
                            tzinfo=UTC))

    def section(self, name: str) -> dict[str, Any]:
        value = self.raw[name]
        assert isinstance(value, dict)
        return value


def _ts(value: object) -> int:
    if not isinstance(value, datetime):
        raise ValueError(f"scenario times must be TOML datetimes with offset, got {value!r}")
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp())


def data_dir() -> Path:
    """The packaged ``netvigil/data/kz2022`` folder."""
    return Path(str(resources.files("netvigil") / "data" / "kz2022"))


def load_scenario(path: str | Path | None = None) -> Scenario:
    """Parse the scenario file (default: the packaged one)."""
    base = data_dir() if path is None else Path(path).parent
    file = base / "scenario.toml" if path is None else Path(path)
    raw = tomllib.loads(file.read_text(encoding="utf-8"))
    sc = raw["scenario"]
    phases = tuple(
        Phase(
            id=str(p["id"]), what=str(p.get("what", "")), start=_ts(p["start"]),
            end=_ts(p["end"]), levels={k: float(v) for k, v in p.get("levels", {}).items()},
            platforms={k: float(v) for k, v in p.get("platforms", {}).items()},
            source=str(p["source"]), assumed=bool(p.get("assumed", False)),
        )
        for p in raw.get("phase", [])
    )
    for p in phases:
        unknown = set(p.levels) - set(CLASSES)
        if unknown:
            raise ValueError(f"phase {p.id}: unknown classes {sorted(unknown)}")
    as_classes = tuple(
        AsClass(int(a["asn"]), str(a["class"]), str(a.get("name", "")), str(a["source"]))
        for a in raw["classes"].get("asn", [])
    )
    geo_date = sc["geo_date"]
    if not isinstance(geo_date, date):
        raise ValueError("scenario.geo_date must be a TOML date")
    return Scenario(
        id=str(sc["id"]), title=str(sc["title"]), label=str(sc["label"]),
        country=str(sc["country"]), country_name=str(sc["country_name"]),
        start=_ts(sc["start"]), end=_ts(sc["end"]), geo_date=geo_date,
        utc_offset_hours=int(sc["utc_offset_hours"]), seed=int(sc["seed"]),
        phases=phases, as_classes=as_classes, raw=raw, data_dir=base,
    )


class LevelSchedule:
    """Piecewise-constant level per class (and per platform) derived from the phases.

    Later phases override earlier ones class by class; outside every phase the level is 1.
    Evaluation is vectorised: ``at(cls, times)`` is one ``searchsorted``.
    """

    def __init__(self, phases: tuple[Phase, ...], keys: tuple[str, ...], platform: bool) -> None:
        self._steps: dict[str, tuple[I64, F64]] = {}
        for key in keys:
            rows = [p for p in phases if key in (p.platforms if platform else p.levels)]
            cuts = sorted({t for p in rows for t in (p.start, p.end)})
            times = np.asarray(cuts, dtype=np.int64)
            values = np.ones(len(cuts), dtype=np.float64)
            for i, t in enumerate(cuts):
                for p in rows:  # later rows win
                    if p.start <= t < p.end:
                        values[i] = (p.platforms if platform else p.levels)[key]
            self._steps[key] = (times, values)

    def at(self, key: str, times: npt.ArrayLike) -> F64:
        cuts, values = self._steps[key]
        t = np.asarray(times, dtype=np.int64)
        if cuts.size == 0:
            return np.ones(t.shape, dtype=np.float64)
        idx = np.searchsorted(cuts, t, side="right") - 1
        out = np.where(idx >= 0, values[np.clip(idx, 0, None)], 1.0)
        return np.asarray(out, dtype=np.float64)

    def change_points(self, key: str) -> I64:
        return self._steps[key][0]


# ---------------------------------------------------------------------------------------------
# The address universe
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Universe:
    """The KZ /24s (2022-01-04), their AS (0 = none in the AS table) and scenario class."""

    block_starts: U32  # sorted /24 network addresses
    block_asn: I64
    block_class: I8  # index into CLASSES
    as_names: dict[int, str]
    as_class: dict[int, str]
    prefix_net: U32  # routed prefixes (from the AS table ranges), network address
    prefix_len: U8
    prefix_origin: I64


def _read_universe(sc: Scenario) -> Universe:
    blocks: list[npt.NDArray[np.uint32]] = []
    for line in (sc.data_dir / sc.raw["scenario"]["universe"]).read_text().splitlines():
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        net = ipaddress.IPv4Network(text, strict=False)
        first = int(net.network_address) >> 8
        count = max(1, net.num_addresses // 256)
        blocks.append(np.arange(first, first + count, dtype=np.uint32) << np.uint32(8))
    block_starts = np.unique(np.concatenate(blocks)).astype(np.uint32)

    starts: list[int] = []
    ends: list[int] = []
    asns: list[int] = []
    names: dict[int, str] = {}
    with (sc.data_dir / sc.raw["scenario"]["as_table"]).open(newline="", encoding="utf-8") as fh:
        for row in csv.reader(fh):
            if len(row) < 3 or not row[2].isdigit():
                continue
            starts.append(int(ipaddress.IPv4Address(row[0])))
            ends.append(int(ipaddress.IPv4Address(row[1])))
            asns.append(int(row[2]))
            names.setdefault(int(row[2]), row[3] if len(row) > 3 else "")
    r_start = np.asarray(starts, dtype=np.int64)
    r_end = np.asarray(ends, dtype=np.int64)
    r_asn = np.asarray(asns, dtype=np.int64)
    order = np.argsort(r_start, kind="stable")
    r_start, r_end, r_asn = r_start[order], r_end[order], r_asn[order]
    b = block_starts.astype(np.int64)
    idx = np.searchsorted(r_start, b, side="right") - 1
    ok = (idx >= 0) & (b <= r_end[np.clip(idx, 0, None)])
    block_asn = np.where(ok, r_asn[np.clip(idx, 0, None)], 0).astype(np.int64)

    cls_of: dict[int, str] = {a.asn: a.cls for a in sc.as_classes}
    patterns = [p.lower() for p in sc.section("classes")["datacentre_name_patterns"]]
    for asn, name in names.items():
        if asn not in cls_of and any(p in name.lower() for p in patterns):
            cls_of[asn] = "datacentre"
    default = str(sc.section("classes")["default"])
    lut = {asn: CLASSES.index(cls_of.get(asn, default)) for asn in names}
    block_class = np.array([lut.get(int(a), CLASSES.index(default)) for a in block_asn],
                           dtype=np.int8)

    p_net: list[int] = []
    p_len: list[int] = []
    p_org: list[int] = []
    for s, e, a in zip(r_start.tolist(), r_end.tolist(), r_asn.tolist(), strict=True):
        for net in ipaddress.summarize_address_range(ipaddress.IPv4Address(s),
                                                     ipaddress.IPv4Address(e)):
            if net.prefixlen <= 24:  # longer than /24 is filtered by most peers
                p_net.append(int(net.network_address))
                p_len.append(net.prefixlen)
                p_org.append(a)
    return Universe(
        block_starts=block_starts, block_asn=block_asn, block_class=block_class,
        as_names=names, as_class={a: cls_of.get(a, default) for a in names},
        prefix_net=np.asarray(p_net, dtype=np.uint32),
        prefix_len=np.asarray(p_len, dtype=np.uint8),
        prefix_origin=np.asarray(p_org, dtype=np.int64),
    )


# ---------------------------------------------------------------------------------------------
# Facts
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class ProbingFacts:
    """What a Trinocular-style prober logs: per round × /24, probes sent and replies received.

    ``sent == 0`` means the block was not probed in that round (not selected, or no data):
    missing, not down. Rounds start at ``start + i * step``; block ``j`` is probed at offset
    ``offset[j]`` seconds into each round (trinarkular's 60 slices).
    """

    start: int
    step: int
    block_starts: U32
    ever_responsive: U16  # |E(b)|
    availability: F32  # A(E(b)), the census value the prober's belief model uses
    offset: I32
    sent: U8  # [rounds, blocks]
    replies: U8  # [rounds, blocks]
    max_probes: int
    loss: float
    initial_belief: float

    @property
    def n_rounds(self) -> int:
        return int(self.sent.shape[0])


@dataclass(frozen=True, eq=False)
class BgpFacts:
    """Per 300 s bin: each peer's IPv4 table size and, per prefix, a bitmask of carrying peers.

    Bit ``k`` of ``carried[i, p]`` is set when peer ``peer_asns[k]`` had a route to prefix ``p``
    at the end of bin ``i``. A table size of 0 means the session was down (no data from it).
    """

    start: int
    step: int
    peer_asns: I64
    table_size: I32  # [bins, peers]
    prefix_net: U32
    prefix_len: U8
    prefix_origin: I64
    carried: U32  # [bins, prefixes]

    @property
    def n_bins(self) -> int:
        return int(self.carried.shape[0])


@dataclass(frozen=True, eq=False)
class PlatformFacts:
    """Per hour × AS × platform: OONI-style IM tests that reached the service and that failed."""

    start: int
    step: int
    platforms: tuple[str, ...]
    asns: I64
    probe_cc: tuple[str, ...]  # per AS column
    ok: U16  # [hours, ases, platforms]
    blocked: U16

    @property
    def n_bins(self) -> int:
        return int(self.ok.shape[0])


@dataclass(frozen=True)
class TruthEvent:
    """An event the reconstruction contains by construction (derived from scenario.toml)."""

    entity: EntityRef
    scope: Scope
    kind: EventKind
    start: int
    end: int
    min_level: float  # expected share of ordinary at the deepest point
    signals: tuple[str, ...]  # signals expected to see it
    silent: tuple[str, ...]  # signals expected NOT to alert (e.g. bgp in a data-plane cut)
    phases: tuple[str, ...]


@dataclass(frozen=True, eq=False)
class Kz2022Facts:
    scenario: Scenario
    universe: Universe
    probing: ProbingFacts
    bgp: BgpFacts
    platform: PlatformFacts
    truth: tuple[TruthEvent, ...] = field(default=())


# ---------------------------------------------------------------------------------------------
# Generators
# ---------------------------------------------------------------------------------------------


def _night(times: npt.ArrayLike, utc_offset_hours: int, peak_local_hour: float) -> F64:
    """0..1 'how deep in the night' with the peak at ``peak_local_hour`` local time."""
    t = np.asarray(times, dtype=np.float64)
    hours = ((t / 3600.0) + utc_offset_hours) % 24.0
    return np.asarray(0.5 * (1.0 + np.cos(2.0 * np.pi * (hours - peak_local_hour) / 24.0)),
                      dtype=np.float64)


def _logit(p: float) -> float:
    return float(np.log(p / (1.0 - p)))


def _by_class(table: dict[str, Any], block_class: I8) -> F64:
    lut = np.array([float(table[c]) for c in CLASSES], dtype=np.float64)
    return np.asarray(lut[block_class], dtype=np.float64)


def _generate_probing(sc: Scenario, uni: Universe, sched: LevelSchedule,
                      rng: np.random.Generator) -> ProbingFacts:
    cfg = sc.section("probing")
    step = int(cfg["round_seconds"])
    n_rounds = (sc.end - sc.start) // step
    nb = uni.block_starts.size
    cls = uni.block_class

    probeable = rng.random(nb) < _by_class(cfg["probeable"], cls)
    lo = _by_class(cfg["availability_low"], cls)
    hi = _by_class(cfg["availability_high"], cls)
    avail = (lo + (hi - lo) * rng.random(nb)).astype(np.float32)
    ever = rng.integers(15, 257, nb).astype(np.uint16)
    # Blocks a prober cannot select: too few ever-responsive addresses or A < 0.1.
    ever[~probeable] = rng.integers(0, 15, int((~probeable).sum())).astype(np.uint16)
    selected = (ever >= int(cfg["min_ever_responsive"])) & (
        avail >= float(cfg["min_availability"]))
    deep = rng.random(nb) < _by_class(cfg["diurnal_share"], cls)
    depth = np.where(deep, 0.9 + 0.1 * rng.random(nb),
                     _by_class(cfg["shallow_depth"], cls) * rng.random(nb))
    slices = int(cfg["slices"])
    slice_of = rng.integers(0, slices, nb)
    offset = (slice_of * (step // slices)).astype(np.int32)
    slice_off = np.arange(slices, dtype=np.int64) * (step // slices)
    rank = rng.random(nb)  # a block passes packets while rank < level(class, t)

    loss = float(cfg["loss"])
    max_probes = int(cfg["max_probes"])
    a64 = avail.astype(np.float64)
    lpos = np.log(a64 / loss)
    lneg = np.log((1.0 - a64) / (1.0 - loss))
    l_up, l_down = _logit(float(cfg["up_threshold"])), _logit(float(cfg["down_threshold"]))
    l_min, l_max = _logit(float(cfg["belief_min"])), _logit(float(cfg["belief_max"]))
    belief = np.full(nb, _logit(float(cfg["initial_belief"])))
    bg_down = np.zeros(nb, dtype=bool)
    p_start, p_end = float(cfg["outage_start_per_round"]), float(cfg["outage_end_per_round"])
    peak = float(cfg["night_peak_local_hour"])

    sent = np.zeros((n_rounds, nb), dtype=np.uint8)
    replies = np.zeros((n_rounds, nb), dtype=np.uint8)
    sel_idx = np.flatnonzero(selected)
    cls64 = cls.astype(np.int64)
    for r in range(n_rounds):
        # Everything time-dependent is evaluated at the 60 slice times, then indexed per block.
        t_slices = sc.start + r * step + slice_off
        levels = np.stack([sched.at(name, t_slices) for name in CLASSES])
        connected = rank < levels[cls64, slice_of]
        flip = rng.random(nb)
        bg_down = np.where(bg_down, flip >= p_end, flip < p_start)
        night = _night(t_slices, sc.utc_offset_hours, peak)[slice_of]
        p_true = a64 * (1.0 - depth * night)
        p_true = np.where(connected & ~bg_down, p_true, 0.0)

        idx = sel_idx
        s_row = sent[r]
        r_row = replies[r]
        for _ in range(max_probes):
            if idx.size == 0:
                break
            got = rng.random(idx.size) < p_true[idx]
            s_row[idx] += 1
            r_row[idx] += got.astype(np.uint8)
            b = belief[idx] + np.where(got, lpos[idx], lneg[idx])
            belief[idx] = b
            resolved = (got & (b > l_up)) | (b < l_down)
            idx = idx[~resolved]
        np.clip(belief, l_min, l_max, out=belief)

    return ProbingFacts(
        start=sc.start, step=step, block_starts=uni.block_starts, ever_responsive=ever,
        availability=avail, offset=offset, sent=sent, replies=replies,
        max_probes=max_probes, loss=loss, initial_belief=float(cfg["initial_belief"]),
    )


def _generate_bgp(sc: Scenario, uni: Universe, rng: np.random.Generator) -> BgpFacts:
    cfg = sc.section("bgp")
    step = int(cfg["bin_seconds"])
    n_bins = (sc.end - sc.start) // step
    peers = np.asarray(cfg["peer_asns"], dtype=np.int64)
    n_peers = peers.size
    if n_peers > 32:
        raise ValueError("at most 32 peers fit the uint32 bitmask")
    n_ff = int(cfg["full_feed_peers"])
    n_pfx = uni.prefix_net.size
    bits = (np.uint32(1) << np.arange(n_peers, dtype=np.uint32)).astype(np.uint32)

    carry = np.empty((n_pfx, n_peers), dtype=bool)
    carry[:, :n_ff] = rng.random((n_pfx, n_ff)) >= float(cfg["static_filter"])
    carry[:, n_ff:] = rng.random((n_pfx, n_peers - n_ff)) < float(cfg["partial_carry"])
    base = (carry.astype(np.uint32) * bits).sum(axis=1, dtype=np.uint64).astype(np.uint32)

    # Session resets: a peer is gone for 1-3 bins.
    down = np.zeros((n_bins, n_peers), dtype=bool)
    starts = np.argwhere(rng.random((n_bins, n_peers)) < float(cfg["reset_per_bin"]))
    lengths = rng.integers(1, 4, len(starts))
    for (i, k), n in zip(starts.tolist(), lengths.tolist(), strict=True):
        down[i:i + n, k] = True
    down_mask = (down.astype(np.uint32) * bits).sum(axis=1, dtype=np.uint64).astype(np.uint32)

    table = np.where(np.arange(n_peers) < n_ff, int(cfg["full_feed_table"]),
                     int(cfg["partial_table"]))
    table_size = (table[None, :] + rng.integers(-2000, 2000, (n_bins, n_peers))).astype(np.int32)
    table_size[down] = 0

    # Flaps: a (bin, prefix, peer) route missing for one bin.
    withdrawn = np.zeros((n_bins, n_pfx), dtype=np.uint32)
    n_flaps = int(rng.poisson(float(cfg["churn_per_bin"]) * n_bins * n_pfx * n_peers))
    fb = rng.integers(0, n_bins, n_flaps)
    fp = rng.integers(0, n_pfx, n_flaps)
    fk = rng.integers(0, n_peers, n_flaps)
    np.bitwise_or.at(withdrawn, (fb, fp), bits[fk])
    # The blackout's update spike: churn at a few peers per prefix, never a withdrawal.
    churn = sc.section("bgp_churn")
    c0 = max(0, (_ts(churn["start"]) - sc.start) // step)
    c1 = min(n_bins, -(-(_ts(churn["end"]) - sc.start) // step))
    per = int(churn["peers_per_flap"])
    for i in range(c0, c1):
        pfx = np.flatnonzero(rng.random(n_pfx) < float(churn["prefix_share"]))
        for _ in range(per):
            withdrawn[i, pfx] |= bits[rng.integers(0, n_ff, pfx.size)]

    carried = (base[None, :] & ~withdrawn & ~down_mask[:, None]).astype(np.uint32)
    return BgpFacts(
        start=sc.start, step=step, peer_asns=peers, table_size=table_size,
        prefix_net=uni.prefix_net, prefix_len=uni.prefix_len,
        prefix_origin=uni.prefix_origin, carried=carried,
    )


def _generate_platform(sc: Scenario, uni: Universe, sched: LevelSchedule,
                       plat_sched: LevelSchedule, rng: np.random.Generator) -> PlatformFacts:
    cfg = sc.section("platform")
    step = int(cfg["bin_seconds"])
    n_bins = (sc.end - sc.start) // step
    platforms = tuple(str(p) for p in cfg["platforms"])
    asn_all, counts = np.unique(uni.block_asn[uni.block_asn > 0], return_counts=True)
    share = counts / counts.sum()
    rate = share * float(cfg["tests_per_hour"])
    keep = rate >= float(cfg["min_as_tests_per_hour"])
    asns = asn_all[keep]
    rate = rate[keep]
    mid = sc.start + step * np.arange(n_bins) + step // 2
    activity = 0.4 + 0.6 * (1.0 - _night(mid, sc.utc_offset_hours, 4.0))
    ok = np.zeros((n_bins, asns.size, len(platforms)), dtype=np.uint16)
    blocked = np.zeros_like(ok)
    ok_rate = float(cfg["ok_rate"])
    for j, asn in enumerate(asns.tolist()):
        conn = sched.at(uni.as_class.get(int(asn), "fixed"), mid)
        lam = rate[j] * activity * conn  # a shutdown silences probes: volume collapse (§4.4)
        for k, plat in enumerate(platforms):
            n = rng.poisson(lam)
            p_ok = ok_rate * plat_sched.at(plat, mid)
            good = rng.binomial(n, p_ok)
            ok[:, j, k] = good
            blocked[:, j, k] = n - good
    return PlatformFacts(
        start=sc.start, step=step, platforms=platforms, asns=asns.astype(np.int64),
        probe_cc=tuple(sc.country for _ in asns.tolist()), ok=ok, blocked=blocked,
    )


# ---------------------------------------------------------------------------------------------
# Truth
# ---------------------------------------------------------------------------------------------


def _intervals_below(cuts: I64, values: F64, threshold: float, end: int
                     ) -> list[tuple[int, int, float]]:
    """Maximal [start, end) runs of a step function below ``threshold``, with their minimum."""
    out: list[tuple[int, int, float]] = []
    cur: list[float] | None = None
    s = 0
    for i, (t, v) in enumerate(zip(cuts.tolist(), values.tolist(), strict=True)):
        nxt = int(cuts[i + 1]) if i + 1 < len(cuts) else end
        if v < threshold:
            if cur is None:
                cur, s = [v], int(t)
            else:
                cur.append(v)
        elif cur is not None:
            out.append((s, int(t), min(cur)))
            cur = None
        if nxt >= end:
            break
    if cur is not None:
        out.append((s, end, min(cur)))
    return out


def derive_truth(sc: Scenario, uni: Universe, probing: ProbingFacts) -> tuple[TruthEvent, ...]:
    """Truth events from scenario.toml: where an entity's expected level is under the threshold.

    National level = share-weighted mean of the class levels over the *probed* blocks (the
    signal can only see those); an AS's level is its class level. Platform truth is national.
    """
    thr = float(sc.section("truth")["threshold"])
    min_blocks = int(sc.section("truth")["min_blocks"])
    sched = LevelSchedule(sc.phases, CLASSES, platform=False)
    probed = probing.sent.any(axis=0)
    cls = uni.block_class[probed]
    weights = np.bincount(cls, minlength=len(CLASSES)) / max(1, cls.size)
    cuts = np.unique(np.concatenate([sched.change_points(c) for c in CLASSES]
                                    + [np.asarray([sc.start], dtype=np.int64)]))
    national = sum(weights[k] * sched.at(c, cuts) for k, c in enumerate(CLASSES))
    country = EntityRef(EntityType.COUNTRY, sc.country)

    def names_at(start: int, end: int, keys: tuple[str, ...] = CLASSES) -> tuple[str, ...]:
        return tuple(p.id for p in sc.phases if p.start < end and p.end > start
                     and any(k in p.levels for k in keys))

    truth: list[TruthEvent] = []
    for s, e, m in _intervals_below(cuts, np.asarray(national), thr, sc.end):
        truth.append(TruthEvent(country, Scope.NATIONAL, EventKind.OUTAGE, s, e, m,
                                ("probing",), ("bgp",), names_at(s, e)))
    asn_probed, n_probed = np.unique(uni.block_asn[probed], return_counts=True)
    for asn, n in zip(asn_probed.tolist(), n_probed.tolist(), strict=True):
        if asn == 0 or n < min_blocks:
            continue
        c = uni.as_class.get(int(asn), "fixed")
        ccuts = sched.change_points(c)
        if ccuts.size == 0:
            continue
        ccuts = np.concatenate([np.asarray([sc.start], dtype=np.int64), ccuts])
        for s, e, m in _intervals_below(ccuts, sched.at(c, ccuts), thr, sc.end):
            truth.append(TruthEvent(EntityRef(EntityType.ASN, str(asn)), Scope.NETWORK,
                                    EventKind.OUTAGE, s, e, m, ("probing",), ("bgp",),
                                    names_at(s, e, (c,))))
    plats = tuple(str(p) for p in sc.section("platform")["platforms"])
    psched = LevelSchedule(sc.phases, plats, platform=True)
    for plat in plats:
        pc = psched.change_points(plat)
        if pc.size == 0:
            continue
        pc = np.concatenate([np.asarray([sc.start], dtype=np.int64), pc])
        for s, e, m in _intervals_below(pc, psched.at(plat, pc), thr, sc.end):
            ids = tuple(p.id for p in sc.phases if plat in p.platforms and p.start < e
                        and p.end > s)
            truth.append(TruthEvent(country, Scope.NATIONAL, EventKind.PLATFORM_BLOCK, s, e, m,
                                    (f"platform:{plat}",), (), ids))
    return tuple(truth)


# ---------------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------------


def generate(seed: int | None = None, scenario: Scenario | None = None) -> Kz2022Facts:
    """Generate the whole reconstruction; deterministic in ``seed`` (default: the scenario's)."""
    sc = scenario or load_scenario()
    rng = np.random.default_rng(sc.seed if seed is None else seed)
    uni = _read_universe(sc)
    sched = LevelSchedule(sc.phases, CLASSES, platform=False)
    plats = tuple(str(p) for p in sc.section("platform")["platforms"])
    plat_sched = LevelSchedule(sc.phases, plats, platform=True)
    # One child generator per source, so a change in one source leaves the others' draws intact.
    r_probe, r_bgp, r_plat = rng.spawn(3)
    probing = _generate_probing(sc, uni, sched, r_probe)
    bgp = _generate_bgp(sc, uni, r_bgp)
    platform = _generate_platform(sc, uni, sched, plat_sched, r_plat)
    truth = derive_truth(sc, uni, probing)
    return Kz2022Facts(sc, uni, probing, bgp, platform, truth)


def as_display_name(asn: int, uni: Universe, sc: Scenario) -> str:
    """A short AS name: the scenario's curated name, else the AS table's org name."""
    for a in sc.as_classes:
        if a.asn == asn and a.name:
            return a.name
    name = uni.as_names.get(asn, "")
    return re.sub(r"\s+", " ", name).strip() or f"AS{asn}"
