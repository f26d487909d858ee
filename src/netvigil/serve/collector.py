"""The collector: probe measurements and prober rounds over HTTP, into the one pipeline.

Routes (prefix ``/api/v1/collector``; docs/probe.md has the wire format):

* ``POST /measurements`` — one OONI-format measurement per call, body
  ``{"format": "json", "content": {…}, "uploaded_at": "…"}``: the body of OONI's submit
  step (``POST /report/{id}``, anchors §4.3) **without** the report open/close round trips.
  One call per measurement because the agent spools one measurement per row and a report
  id assigned by a server it cannot reach would be one more thing to lose offline (OONI
  settled on one file per measurement for the same reason, probe-cli PR #68).
* ``POST /rounds`` — one prober round of one remote vantage point, ``content`` =
  ``{"vantage", "round_start", "round_seconds", "lines": [<netvigil probe run JSONL
  lines>]}``: what ``netvigil probe collect`` merges from files, over the network.
* ``GET /status`` — cells waiting for derivation, the last derivation's counts.
* ``GET /whoami`` — the caller's address, country and AS (``netvigil.geo``), the agent's
  location lookup.

Every route authenticates the sender first: ``Authorization: Bearer <token>``, compared by
SHA-256 digest (constant time) with the senders of the collector configuration (a JSON
file named by ``NETVIGIL_COLLECTOR_CONFIG``; no file = no senders = every upload 401).
A sender may send only the kinds it is configured for, and a vantage point only rounds of
its own name (403). Tokens are never logged; the log names the sender.

Then, in this order, nothing is stored until every check passed: body cap (413, read in
chunks, the cap applies before parsing), JSON (400), shape and base keys (422, one line
saying which key). The accepted item is written **exactly once**: its identity is the
SHA-256 of its canonical JSON (sorted keys, no spaces, UTF-8 — the agent's
``content_hash``), it becomes a file named by that hash, created with ``link(2)`` from a
fsynced temporary file (an existing name = a duplicate, acknowledged with 200 and
``"duplicate": true``). Measurements are laid out as OONI's bucket tree
(``raw/YYYYMMDD/HH/CC/<testname>/<uid>.json``, by *measurement* hour, so ``netvigil ooni
import`` reads the archive as it reads OONI's) with ``measurement_uid``,
``x_received_at`` and ``x_uploaded_at`` added beside ``measurement_start_time``.

Facts: an accepted measurement enters the store's ledger of accepted OONI measurements
(``ooni_measurements``, :mod:`netvigil.sources.ooni.ledger`) with its verdict
(:func:`netvigil.sources.ooni.verdict.verdict`) under the key ``netvigil ooni import``
gives it (its ``measurement_uid``), and the hours it touches are derived again from every
stored measurement of those hours, whichever door brought them: probe uploads and OONI
imports of the same (country, AS, platform, hour) add up instead of overwriting each
other, and importing the collector's archive with ``netvigil ooni import --dir`` adds
nothing twice. That happens after the
answer, in a background :class:`Deriver` driven by durable per-measurement markers (its
docstring says why and how it survives a crash). A round becomes
:class:`~netvigil.model.facts.ProbeRound` facts (``facts_from_lines``) within its request,
folded into the probing checkpoint or, when it cannot continue it, replayed with every
logged round of every vantage point, a local prober's included (:func:`_derive_round`).
Both go through :class:`netvigil.pipeline.Pipeline`, then
:func:`netvigil.events.runner.run_detection` runs for the entities touched, which
recomputes any series whose write landed behind its cursor: late data re-runs detection for
the windows it touches. ``GET /status`` says how many cells wait and what the last
derivation did.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import math
import os
import re
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from starlette.concurrency import run_in_threadpool

from netvigil.serve.deps import gate_of

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/v1/collector", tags=["collector"])

CONFIG_ENV = "NETVIGIL_COLLECTOR_CONFIG"
DEFAULT_MAX_BODY = 2 << 20  # bytes: OONI web_connectivity measurements are rarely > 1 MiB
KINDS = ("measurement", "round")
HOUR = 3600
FUTURE_SLACK = 3600  # OONI's fastpath: a start time > 1 h in the future is not trusted
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_BASE_KEYS = ("data_format_version", "measurement_start_time", "probe_asn", "probe_cc",
              "software_name", "software_version", "test_name", "test_keys")
ROUND_MARKER = "collector.round."
SOURCE = "collector"  # the source name of the series the collector's measurements make
_WRITE_LOCK = threading.Lock()  # one writer at a time in this process (cells, pipeline)


# ---------------------------------------------------------------------------- configuration
@dataclass(frozen=True)
class Sender:
    name: str
    token_sha256: bytes
    kinds: frozenset[str]


@dataclass(frozen=True)
class CollectorConfig:
    """What ``NETVIGIL_COLLECTOR_CONFIG`` names (docs/probe.md, "Collector configuration")."""

    senders: tuple[Sender, ...] = ()
    archive: Path | None = None  # default: ``<store>.collector/`` beside the store
    max_body: int = DEFAULT_MAX_BODY
    targets: Path | None = None  # the prober target list rounds refer to
    round_seconds: int = 600


class ConfigError(ValueError):
    pass


def parse_config(d: Any, where: str) -> CollectorConfig:
    if not isinstance(d, dict):
        raise ConfigError(f"{where}: expected a JSON object")
    senders = []
    for name, s in (d.get("senders") or {}).items():
        digest = s.get("token_sha256") if isinstance(s, dict) else None
        kinds = frozenset(s.get("kinds", KINDS)) if isinstance(s, dict) else frozenset()
        if not _NAME.match(str(name)) or not isinstance(digest, str) or \
                not re.fullmatch(r"[0-9a-f]{64}", digest) or not kinds <= set(KINDS):
            raise ConfigError(f"{where}: sender {str(name)[:40]!r}: needs a name of "
                              "[A-Za-z0-9._-], token_sha256 (64 hex) and kinds from "
                              f"{list(KINDS)}")
        senders.append(Sender(str(name), bytes.fromhex(digest), kinds))
    base = Path(where).parent

    def path(key: str) -> Path | None:
        v = d.get(key)
        return None if v is None else (base / str(v))

    return CollectorConfig(tuple(senders), path("archive"),
                           int(d.get("max_body_bytes", DEFAULT_MAX_BODY)), path("targets"),
                           int(d.get("round_seconds", 600)))


_config_cache: dict[tuple[str, int], CollectorConfig] = {}


def current_config() -> CollectorConfig:
    """The configuration file named by the environment, re-read when it changes."""
    name = os.environ.get(CONFIG_ENV, "").strip()
    if not name:
        return CollectorConfig()
    try:
        mtime = os.stat(name).st_mtime_ns
    except OSError as exc:
        log.error("collector configuration unreadable: %s (%s)", exc.strerror, name)
        raise HTTPException(503, "collector configuration unreadable") from None
    key = (name, mtime)
    if key not in _config_cache:
        try:
            cfg = parse_config(json.loads(Path(name).read_text(encoding="utf-8")), name)
        except (OSError, ValueError) as exc:
            log.error("collector configuration invalid: %s", exc)
            raise HTTPException(503, "collector configuration invalid") from None
        _config_cache.clear()
        _config_cache[key] = cfg
    return _config_cache[key]


def token_digest(token: str) -> str:
    """What the configuration stores for a token (``token_sha256``)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def authenticate(request: Request, cfg: CollectorConfig, kind: str | None) -> Sender:
    """The sender behind the bearer token, or 401 (unknown) / 403 (kind not allowed)."""
    auth = request.headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        digest = hashlib.sha256(token.strip().encode("utf-8")).digest()
        for s in cfg.senders:
            if hmac.compare_digest(digest, s.token_sha256):
                if kind is not None and kind not in s.kinds:
                    raise HTTPException(403, f"sender {s.name} may not upload {kind}s")
                return s
    raise HTTPException(401, "a valid bearer token is required",
                        headers={"WWW-Authenticate": "Bearer"})


async def read_capped(request: Request, cap: int) -> bytes:
    """The body, or 413 as soon as it exceeds ``cap`` bytes (never buffered past it)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > cap:
        raise HTTPException(413, f"body of {declared} bytes exceeds the cap of {cap}")
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/json":
        raise HTTPException(415, "Content-Type must be application/json")
    parts: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > cap:
            raise HTTPException(413, f"body exceeds the cap of {cap} bytes")
        parts.append(chunk)
    return b"".join(parts)


# ---------------------------------------------------------------------------- validation
def canonical(content: dict[str, Any]) -> bytes:
    """The identity bytes (the agent's ``netvigil_probe.measurement.canonical``)."""
    return json.dumps(content, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode("utf-8")


def _reject(msg: str) -> HTTPException:
    return HTTPException(422, msg)


def envelope(raw: bytes) -> tuple[dict[str, Any], str | None]:
    """(content, uploaded_at) of a submit body; 400 if not JSON, 422 if not the shape."""
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise HTTPException(400, "body is not JSON") from None
    if not isinstance(body, dict):
        raise _reject("body must be a JSON object")
    if body.get("format", "json") != "json":
        raise _reject("format must be 'json'")
    content = body.get("content")
    if not isinstance(content, dict):
        raise _reject("content must be a JSON object")
    up = body.get("uploaded_at")
    if up is not None and (not isinstance(up, str) or len(up) > 40):
        raise _reject("uploaded_at must be an ISO 8601 string")
    return content, up


@dataclass(frozen=True)
class MeasurementMeta:
    time: int
    cc: str
    asn: int
    test_name: str


def validate_measurement(m: dict[str, Any], now: float) -> MeasurementMeta:
    """Base keys present and readable (data format 0.2.0, anchors §4.2), else 422."""
    from netvigil.sources.ooni.meta import MetaError, read_meta

    missing = [k for k in _BASE_KEYS if k not in m]
    if "input" not in m:
        missing.append("input")
    if missing:
        raise _reject(f"measurement lacks base keys: {', '.join(missing)}")
    if not isinstance(m["test_keys"], dict):
        raise _reject("test_keys must be an object")
    try:
        meta = read_meta(m)
    except MetaError as exc:
        raise _reject(str(exc)) from None
    if meta.time > now + FUTURE_SLACK:
        raise _reject("measurement_start_time is more than 1 h in the future")
    if not re.fullmatch(r"[A-Za-z0-9_]{1,64}", meta.test_name):
        raise _reject("test_name must be [A-Za-z0-9_], at most 64 characters")
    return MeasurementMeta(meta.time, meta.cc, meta.asn, meta.test_name)


# ---------------------------------------------------------------------------- the archive
def archive_of(request: Request, cfg: CollectorConfig) -> Path:
    if cfg.archive is not None:
        return cfg.archive
    store_path = Path(gate_of(request).path)
    return store_path.with_name(store_path.name + ".collector")


def write_once(path: Path, data: bytes) -> bool:
    """Create ``path`` with ``data`` unless it exists: True if created, False if it existed.

    Durable before it is visible: a fsynced temporary file is hard-linked to the final name
    (``link`` fails on an existing name, so two racing writers store one copy), then the
    directory is fsynced. A crash leaves at most a stray ``.tmp-*`` file, never a partial
    measurement under its final name.
    """
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
        return True
    finally:
        os.unlink(tmp)


def measurement_path(root: Path, meta: MeasurementMeta, uid: str) -> Path:
    t = datetime.fromtimestamp(meta.time, UTC)
    return (root / "raw" / f"{t:%Y%m%d}" / f"{t:%H}" / meta.cc /
            meta.test_name.replace("_", "") / f"{uid}.json")


def countries_of_hour(root: Path, hour: int) -> list[str]:
    """Every country with archived measurements in ``hour``."""
    day = datetime.fromtimestamp(hour, UTC)
    d = root / "raw" / f"{day:%Y%m%d}" / f"{day:%H}"
    return sorted(p.name for p in d.iterdir() if p.is_dir()) if d.is_dir() else []


def marked_measurements(root: Path, markers: list[Path]) -> Any:
    """The archived measurements the markers name, judged into a
    :class:`~netvigil.sources.ooni.facts.FactBuilder` with their identity
    (:func:`~netvigil.sources.ooni.importer.identity`: the ``measurement_uid`` the collector
    assigned), so they enter the store's ledger exactly as ``netvigil ooni import`` of the
    archive would put them there: the same key, the same verdict facts."""
    from netvigil.sources.ooni.facts import FactBuilder
    from netvigil.sources.ooni.importer import identity
    from netvigil.sources.ooni.meta import read_meta
    from netvigil.sources.ooni.verdict import verdict

    builder = FactBuilder(source=SOURCE)
    for m in markers:
        cc, hour, uid = m.name.split("-", 2)
        day = datetime.fromtimestamp(int(hour), UTC)
        for p in (root / "raw" / f"{day:%Y%m%d}" / f"{day:%H}" / cc).glob(f"*/{uid}.json"):
            doc = json.loads(p.read_bytes())
            builder.add(read_meta(doc), verdict(doc), identity(doc))  # validated on upload
    return builder


# ---------------------------------------------------------------------------- routes
@router.post("/measurements")
async def submit_measurement(request: Request) -> dict[str, Any]:
    cfg = current_config()
    sender = authenticate(request, cfg, "measurement")
    content, uploaded_at = envelope(await read_capped(request, cfg.max_body))
    received = time.time()
    meta = validate_measurement(content, received)
    uid = hashlib.sha256(canonical(content)).hexdigest()
    stored = dict(content)
    stored.update({"measurement_uid": uid, "x_uploaded_at": uploaded_at,
                   "x_received_at": datetime.fromtimestamp(received, UTC).isoformat(
                       timespec="milliseconds"), "x_sender": sender.name})
    root = archive_of(request, cfg)
    data = canonical(stored)
    deriver = deriver_of(request, root)

    def work() -> bool:
        created = write_once(measurement_path(root, meta, uid), data)
        deriver.mark(meta, uid)
        return created

    created = await run_in_threadpool(work)
    log.info("measurement %s from %s: %s", uid[:16], sender.name,
             "stored" if created else "duplicate")
    return {"measurement_uid": uid, "duplicate": not created}


@router.get("/status")
def status(request: Request) -> dict[str, Any]:
    """Cells waiting for derivation and what the last derivation did (any sender)."""
    cfg = current_config()
    authenticate(request, cfg, None)
    d = deriver_of(request, archive_of(request, cfg))
    return {"pending_cells": len(d.pending()), "cells_derived": d.cells_derived,
            "last_derivation": d.last, "last_error": d.last_error}


class Deriver:
    """Archived measurements → points, in the background, batched, crash-safe.

    Why not in the request: a derivation opens the store read-write, writes and runs
    detection (~0.3–0.5 s here), and the store may be held by ``netvigil run``; the agent
    only needs to know its measurement is durable. So an accepted measurement leaves a
    *marker* (``pending/<cc>-<hour>-<uid>``, created durably like the measurement) and
    wakes one thread, which reads every marked measurement from the archive, puts the new
    ones into the store's ledger and derives the hours they touch from every stored
    measurement of those hours (:func:`netvigil.sources.ooni.ledger.accept`), writes
    ledger rows and points in one transaction, runs incremental detection and only then
    deletes the markers it read. A crash anywhere leaves markers behind, which the next
    derivation (the thread starts with the collector's next request) picks up: a
    measurement already in the ledger is not counted again. Markers are named per
    measurement, so an upload arriving during a derivation is never lost
    with a marker deleted for an earlier read of its cell.
    """

    POLL = 1.0  # seconds between scans when nobody wakes the thread
    IDLE_EXIT = 30.0  # the thread ends after this long without work (restarted on demand)

    def __init__(self, root: Path, gate: Any) -> None:
        self.root = root
        self.gate = gate
        self.wake = threading.Event()
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None
        self.cells_derived = 0
        self.last: dict[str, Any] | None = None
        self.last_error: str | None = None

    @property
    def pending_dir(self) -> Path:
        return self.root / "pending"

    def pending(self) -> list[Path]:
        return sorted(self.pending_dir.glob("*-*-*")) if self.pending_dir.exists() else []

    def mark(self, meta: MeasurementMeta, uid: str) -> None:
        if meta.cc != "ZZ":  # no country: archived (OONI's volume), no series to place it in
            write_once(self.pending_dir / f"{meta.cc}-{meta.time - meta.time % HOUR}-{uid}",
                       b"")
        self.wake.set()  # before the check: a thread on its way out sees it and stays
        self.ensure_running()

    def ensure_running(self) -> None:
        with self.lock:
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self._run, daemon=True,
                                               name="collector-deriver")
                self.thread.start()

    def _run(self) -> None:
        idle_since = time.monotonic()
        while True:
            self.wake.wait(self.POLL)
            self.wake.clear()
            if self.derive_pending():
                idle_since = time.monotonic()
            elif time.monotonic() - idle_since > self.IDLE_EXIT:
                with self.lock:
                    if not self.wake.is_set():
                        self.thread = None
                        return

    def derive_pending(self) -> bool:
        """One batch: every marked measurement; True if there was work."""
        from netvigil.events.runner import run_detection
        from netvigil.pipeline import Pipeline
        from netvigil.sources.ooni.ledger import accept
        from netvigil.store.ooni_ledger import OoniLedger

        markers = self.pending()
        if not markers:
            return False
        try:
            with _WRITE_LOCK:
                builder = marked_measurements(self.root, markers)
                with self.gate.writer() as store:
                    pipe = Pipeline(store)
                    with store.transaction():  # ledger rows and their points together
                        accepted = accept(OoniLedger(store), builder.ledger_rows(), pipe,
                                          SOURCE)
                        pipe.flush()
                    # one incremental run: it judges only the series written since their
                    # cursor, recomputing those written behind it (late data)
                    report = run_detection(store)
        except Exception as exc:  # store locked, disk full: markers stay, retried later
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.warning("collector derivation failed, will retry: %s", self.last_error)
            time.sleep(self.POLL)
            return True
        cells = {m.name.rsplit("-", 1)[0] for m in markers}
        self.last = {"cells": len(cells), "measurements": len(markers), "new": accepted.new,
                     "known": accepted.known, "hours_derived": accepted.hours,
                     "points": pipe.stats.points,
                     "series_recomputed": report.series_recomputed,
                     "alerts_written": report.alerts_written,
                     "events_written": report.events_written}
        self.last_error = None
        self.cells_derived += len(cells)
        for m in markers:
            m.unlink(missing_ok=True)
        return True


_derivers: dict[Path, Deriver] = {}
_derivers_lock = threading.Lock()


def deriver_of(request: Request, root: Path) -> Deriver:
    with _derivers_lock:
        d = _derivers.get(root)
        gate = gate_of(request)
        if d is None or d.gate is not gate:
            d = _derivers[root] = Deriver(root, gate)
    d.ensure_running()
    return d


@router.post("/rounds")
async def submit_round(request: Request) -> dict[str, Any]:
    cfg = current_config()
    sender = authenticate(request, cfg, "round")
    content, uploaded_at = envelope(await read_capped(request, cfg.max_body))
    rows = validate_round(content, sender.name)
    if cfg.targets is None:
        raise HTTPException(503, "this collector has no prober target list configured")
    uid = hashlib.sha256(canonical(content)).hexdigest()
    received = datetime.now(UTC)
    stored = dict(content)
    stored.update({"uid": uid, "x_uploaded_at": uploaded_at, "x_sender": sender.name,
                   "x_received_at": received.isoformat(timespec="milliseconds")})
    start = datetime.fromtimestamp(float(content["round_start"]), UTC)
    path = (archive_of(request, cfg) / "rounds" / sender.name / f"{start:%Y%m%d}" /
            f"{uid}.json")

    def work() -> dict[str, Any]:
        from netvigil.pipeline.roundlog import RoundTooOld

        with _WRITE_LOCK:
            created = write_once(path, canonical(stored))
            try:
                facts = _derive_round(request, cfg, rows, sender.name, uid,
                                      received.timestamp())
            except RoundTooOld as exc:  # kept in the archive; the sender need not retry
                log.warning("round %s from %s: %s", uid[:16], sender.name, exc)
                return {"uid": uid, "duplicate": not created, "facts": 0,
                        "not_folded": str(exc)}
        return {"uid": uid, "duplicate": not created, "facts": facts}

    out = await run_in_threadpool(work)
    log.info("round %s from %s: %s", uid[:16], sender.name,
             "duplicate" if out["duplicate"] else "stored")
    return out


def validate_round(c: dict[str, Any], vantage: str) -> list[Any]:
    """The round's lines as :class:`BlockRound` rows, else 422 naming the first bad line."""
    from netvigil.sources.probing.signals import LABEL_STATES, BlockRound

    if c.get("vantage") != vantage:
        raise HTTPException(403, f"sender {vantage} may upload only its own rounds")
    from netvigil.sources.ooni.meta import MAX_TIME, MIN_TIME

    start = c.get("round_start")
    if not isinstance(start, int | float) or not MIN_TIME <= start < MAX_TIME or \
            not isinstance(c.get("round_seconds"), int) or not 1 <= c["round_seconds"] <= 86400:
        raise _reject("round_start (unix seconds, 2012..2099) and round_seconds "
                      "(integer 1..86400) are required")
    lines = c.get("lines")
    if not isinstance(lines, list) or not lines:
        raise _reject("lines must be a non-empty list")
    out = []
    for i, d in enumerate(lines):
        try:
            if not isinstance(d, dict) or d.get("vantage", vantage) != vantage:
                raise ValueError("not a line of this vantage point")
            if d.get("round_start") != start:
                raise ValueError("round_start differs from the round's")
            rtt = d.get("rtt_ms_median")
            out.append(BlockRound(
                vantage, float(d["round_start"]), str(d["block"]), LABEL_STATES[d["state"]],
                float(d["belief"]), int(d["probes_sent"]), int(d["replies"]),
                int(d.get("lost", 0)) + int(d.get("unreachable", 0)),
                float("nan") if rtt is None else float(rtt)))
        except (ValueError, KeyError, TypeError) as exc:
            raise _reject(f"lines[{i}]: bad round line: {exc!r}"[:300]) from None
    return out


_targets_cache: dict[tuple[str, int], Any] = {}


def _targets(path: Path) -> Any:
    from netvigil.sources.probing.targets import load_targets_csv

    key = (str(path), path.stat().st_mtime_ns)
    if key not in _targets_cache:
        _targets_cache.clear()
        _targets_cache[key] = load_targets_csv(path).targets
    return _targets_cache[key]


def _derive_round(request: Request, cfg: CollectorConfig, rows: list[Any], vantage: str,
                  uid: str, received: float) -> int:
    """Facts of one round through the pipeline, once: the round's marker (state key
    ``collector.round.<uid>``) is written in the transaction of its points, so a duplicate
    whose first upload crashed before that transaction is derived now, and any other
    duplicate is not fed twice into the belief chain.

    The result is one in-order run over the union of every round the store's probing series
    were made of: these remote rounds *and* a local prober's (``netvigil run``, ``netvigil
    probe run``) or a fleet merger's writing the same store. Every pipeline logs the rounds
    it folds (:mod:`netvigil.pipeline.roundlog`), so:

    * a round that continues its vantage point's chain and whose bin the checkpoint still
      keeps (:func:`~netvigil.pipeline.roundlog.folds_in_order`) is folded into the
      restored checkpoint: the usual case, one round's work;
    * any other (behind its own chain: a retry, a spool emptied out of order; or a bin older
      than the kept bins: a vantage point back after hours offline) replays the whole log
      plus this round in (round time, vantage point) order through a fresh aggregator
      (``ProbingOptions.start_over``: every chain from the initial belief, no restored
      bins), and the replay rewrites the logged bins from this
      round's on as one in-order run would, local vantage points' reports included (the
      bins before it cannot change), each once (:func:`_last_reports`). One pass over the
      log per such round (docs/probe.md gives its cost for a day of rounds).
    """
    from dataclasses import replace

    from netvigil.events.runner import run_detection
    from netvigil.pipeline import Pipeline
    from netvigil.pipeline.probing import ProbingOptions
    from netvigil.pipeline.roundlog import (
        check_not_pruned,
        folds_in_order,
        log_entries,
        read_log,
    )
    from netvigil.sources.probing.signals import facts_from_lines

    assert cfg.targets is not None
    targets = _targets(cfg.targets)
    marker = f"{ROUND_MARKER}{uid}"
    opts = ProbingOptions(block_series=False, source="probing-collector")
    with gate_of(request).writer() as store:
        if store.get_state(marker) is not None:
            return 0
        new = facts_from_lines(rows, targets, cfg.round_seconds)
        cursors = {marker: json.dumps({"vantage": vantage, "received_at": received})}
        late = not all(folds_in_order(store.get_state, f.vantage, f.round_start,
                                      f.round_seconds, opts.keep_bins) for f in new)
        if late:
            check_not_pruned(store.get_state, new)  # RoundTooOld: archived, not folded
            union = {(f.vantage, f.round_start): f for f in read_log(store.get_state)}
            union.update({(f.vantage, f.round_start): f for f in new})  # a re-sent round wins
            todo = sorted(union.values(), key=lambda f: (f.round_start, f.vantage))
            cursors.update(log_entries(new, store.get_state))  # the log has the others
            pipe = Pipeline(store, probing=replace(opts, log_rounds=False, start_over=True,
                                                   emit_only=_last_reports(todo, new)))
        else:
            todo = new
            pipe = Pipeline(store, probing=opts)
        for f in todo:
            pipe.emit(f)
        pipe.flush(cursors)
        run_detection(store)
    if late:
        log.info("round %s from %s cannot continue the checkpoint: %d logged rounds "
                 "replayed in order", uid[:16], vantage, len(todo))
    return len(new)


def _last_reports(todo: list[Any], new: list[Any]) -> frozenset[tuple[str, float]]:
    """The rounds whose fold emits points in a replay of ``todo`` (sorted): per bin at or
    after the first bin of ``new``, its last round. The bins before cannot change (the
    chains and reports before the late round are the ones already stored), and a bin emitted
    once per replay instead of once per report lets the pipeline write all of them in one
    store write (it starts a new write whenever a bin is emitted again)."""
    def bin_of(f: Any) -> int:
        return int(math.floor(f.round_start / f.round_seconds) * f.round_seconds)

    first = min(bin_of(f) for f in new)
    last: dict[int, tuple[str, float]] = {}
    for f in todo:
        if bin_of(f) >= first:
            last[bin_of(f)] = (f.vantage, float(f.round_start))
    return frozenset(last.values())


_geo: Any = None


@router.get("/whoami")
def whoami(request: Request) -> dict[str, Any]:
    """Where the caller's address is (country, AS) as NetVigil's geo tables say today."""
    global _geo
    authenticate(request, current_config(), None)
    from netvigil.geo.lookup import GeoLookup

    if _geo is None:
        _geo = GeoLookup.default()
    ip = request.client.host if request.client else ""
    try:
        cc, asn = _geo.country(ip), _geo.asn(ip)
    except ValueError:
        cc, asn = None, None
    return {"probe_ip": ip, "probe_cc": cc or "ZZ", "probe_asn": f"AS{asn or 0}"}
