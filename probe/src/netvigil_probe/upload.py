"""Uploads from the spool to a NetVigil collector, whenever it answers.

One submit call per item (``POST /api/v1/collector/measurements`` or ``…/rounds`` with
``{"format": "json", "content": …, "uploaded_at": …}``, the body of OONI's submit step
without the report open/close round trips: docs/probe.md). The sender is authenticated by
``Authorization: Bearer <token>``; the token is never logged or written anywhere.

Outcomes: 200 (stored, or already held: the collector deduplicates on the content hash) →
marked uploaded; 400/413/415/422 (the collector will never take it) → marked rejected with
its message, never retried; anything else (connection refused, timeout, 401/403, 429, 5xx)
→ retried with capped exponential backoff and jitter, both per item and for the collector
as a whole (a collector that does not answer is not hammered once per pending item).
"""

from __future__ import annotations

import http.client
import json
import logging
import random
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime

from netvigil_probe.spool import Item, Spool

log = logging.getLogger("netvigil_probe.upload")

PATHS = {"measurement": "/api/v1/collector/measurements", "round": "/api/v1/collector/rounds"}
NEVER_RETRY = frozenset({400, 413, 415, 422})


@dataclass(frozen=True)
class Backoff:
    base: float = 2.0
    cap: float = 600.0

    def delay(self, failures: int) -> float:
        """Seconds before the next try after ``failures`` consecutive failures (≥ 1)."""
        return float(min(self.cap, self.base * 2.0 ** max(0, failures - 1))
                     * random.uniform(0.5, 1.0))


@dataclass
class DrainReport:
    uploaded: int = 0
    duplicates: int = 0
    rejected: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


class Uploader:
    def __init__(self, spool: Spool, collector: str, token: str, *, timeout: float = 10.0,
                 backoff: Backoff | None = None) -> None:
        self.spool = spool
        self.collector = collector.rstrip("/")
        self._token = token
        self.timeout = timeout
        self.backoff = backoff or Backoff()
        self.failures = 0  # consecutive failures to reach the collector
        self.paused_until = 0.0

    def __repr__(self) -> str:  # never the token
        return f"Uploader({self.collector!r})"

    def _post(self, item: Item) -> tuple[int, str]:
        body = ('{"format":"json","content":' + item.body + ',"uploaded_at":'
                + json.dumps(datetime.now(UTC).isoformat(timespec="seconds")) + "}")
        req = urllib.request.Request(
            self.collector + PATHS[item.kind], data=body.encode("utf-8"), method="POST",
            headers={"Content-Type": "application/json",
                     "Authorization": f"Bearer {self._token}"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return int(resp.status), resp.read(65536).decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            return int(exc.code), exc.read(65536).decode("utf-8", "replace")

    def drain(self, now: float | None = None) -> DrainReport:
        """One pass over the items that are due; stops at the first unreachable collector."""
        rep = DrainReport()
        t = time.time() if now is None else now
        if t < self.paused_until:
            return rep
        for item in self.spool.due(t):
            try:
                status, text = self._post(item)
            except (OSError, ValueError, http.client.HTTPException) as exc:  # refused, reset…
                self._unreachable(item, f"{type(exc).__name__}: {exc}", rep)
                break
            if status == 200:
                self.failures = 0
                self.spool.mark_uploaded(item.uid, time.time())
                rep.uploaded += 1
                rep.duplicates += int('"duplicate":true' in text.replace(" ", ""))
            elif status in NEVER_RETRY:
                self.spool.mark_rejected(item.uid, f"{status}: {text[:500]}")
                rep.rejected += 1
                log.warning("collector rejected %s %s: %s %s", item.kind, item.uid[:16],
                            status, text[:200])
            else:
                self._unreachable(item, f"HTTP {status}: {text[:200]}", rep)
                break
        return rep

    def _unreachable(self, item: Item, error: str, rep: DrainReport) -> None:
        self.failures += 1
        delay = self.backoff.delay(self.failures)
        self.paused_until = time.time() + delay
        self.spool.mark_failed(item.uid, error, self.paused_until)
        rep.failed += 1
        rep.errors.append(error)
        log.info("collector not reachable (%s); next try in %.1f s", error, delay)
