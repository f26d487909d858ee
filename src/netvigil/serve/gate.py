"""The store gate: many concurrent readers in this process, and room for one writer outside.

DuckDB admits one read-write process or any number of read-only ones per file, and a
process holding the file excludes the other kind entirely
(duckdb.org/docs/connect/concurrency). ``netvigil run`` opens the store read-write only to
write a bin (``observatory/run.py``) and retries opening with the CLI's bounded backoff
(``cli.common.open_store``: 50 ms doubling to 1 s). So serve must (a) never keep the file
open between requests and (b) let go of it promptly when a writer wants it, even under a
steady stream of requests that would otherwise keep the file open forever.

How, and why this way:

* **One anchor, pooled connections.** A cold read-only open costs ~90 ms here (the
  catalog is read from disk); a second ``duckdb.connect`` to a file this process already has
  open reuses DuckDB's cached database instance and costs ~4 ms (plus the store's schema
  check). The gate keeps one *anchor* store open while requests are in flight, and each
  request takes a :class:`~netvigil.store.duck.Store` of its own on the cached instance
  from a pool (opened on demand, one request at a time each), so requests never share a
  connection across threads and the pool closes with the anchor.
* **Idle means closed.** When the last in-flight request ends after a writer knocked (or,
  without inotify, after the anchor has been open longer than ``hold_seconds``), the anchor
  closes at once; otherwise the gate's thread closes it after ``IDLE_SECONDS`` without
  requests. So an idle serve never holds the file, and a busy one does not reopen it
  cold between requests.
* **A knocking writer is heard** (Linux). A writer's failed read-write open leaves an
  ``IN_CLOSE_WRITE`` inotify event on the file (its open is ``O_RDWR``; DuckDB's read-only
  opens are ``O_RDONLY`` and leave ``IN_CLOSE_NOWRITE``). On such an event while serve holds
  the file, the gate stops admitting requests, lets the in-flight ones finish, closes the
  anchor, and stays closed for up to ``yield_seconds`` (longer than the writer's 1 s
  backoff cap) or until the writer's own close says it is done. Requests that arrive
  meanwhile wait, then open the store with the shared retry loop, bounded by the request
  wait (503 after).
* **Without inotify** (other systems) the anchor is released every ``hold_seconds`` and the
  file left free for ``fallback_gap_seconds``, so a writer polling at 1 s finds a gap with
  high probability; this costs reader latency, which is why inotify is preferred.

Writes made by this process (``store_writer``, the collector's uploads) take the gate
exclusively: readers drain, the anchor closes, the write opens read-write with the same
retry loop, and readers resume when it closes.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from anyio import to_thread

from netvigil.model.errors import StoreError
from netvigil.serve.cache import file_signature

if TYPE_CHECKING:
    from netvigil.store.duck import Store

log = logging.getLogger(__name__)

#: ``(path, *, read_only, wait) -> Store``: the lock-aware opener (cli.common.open_store).
StoreOpener = Callable[..., "Store"]

HOLD_SECONDS = 1.0  # the anchor is closed when idle after this long, and re-opened on demand
YIELD_SECONDS = 2.5  # closed after a writer's knock: > the writer's 1 s retry cap, twice over
FALLBACK_GAP_SECONDS = 0.2  # without inotify: file left free this long after each hold
ADMIT_POLL_SECONDS = 0.005  # how often a waiting request looks at the gate again
IDLE_SECONDS = 0.5  # an anchor nobody used for this long is closed (the file is free)
TICK_SECONDS = 0.2  # how often the gate's thread looks for an idle anchor
#: DuckDB threads per query on serve's database instance. Requests already run side by side
#: (app.WORKER_THREADS); a chart reads a few row groups, so splitting one query across
#: threads only adds contention: at 100 clients on 2 shared cores, 1 thread gave 131.7 and
#: 103.3 charts/s (load average 9.8, 10.1) against 74.3 with DuckDB's default of one per
#: core (load 13.2; bench_serve_load.py, docs/api.md).
DUCKDB_THREADS = 1


class StoreGate:
    """Admission to the store file for the requests of one app (thread-safe)."""

    def __init__(self, path: Path, open_store: StoreOpener, wait: float, *,
                 hold_seconds: float = HOLD_SECONDS, yield_seconds: float = YIELD_SECONDS,
                 watch: bool = True) -> None:
        self.path = Path(path)
        self.open_store = open_store
        self.wait = wait
        self.hold_seconds = hold_seconds
        self.yield_seconds = yield_seconds
        self._cond = threading.Condition()
        self._anchor: Store | None = None
        self._opened_at = 0.0
        self._readers = 0
        self._opening = False  # a caller is opening the anchor; the others wait
        self._pool: list[Store] = []  # read-only stores on the anchor's instance, idle
        self._writing = False
        self._draining = False
        self._closed_until = 0.0  # monotonic; no admission before (a writer's turn)
        self._own_closes = 0  # read-write closes of ours the watcher must not take as knocks
        self.knocks = 0  # writer knocks heard (exported as a metric)
        self.writes = 0  # writes made through this gate (part of the store version)
        self.close_writes = 0  # outside read-write closes heard (part of the store version)
        self._last_leave = 0.0
        self._watcher = (_Watcher(self.path, self._on_close_write, self._close_if_idle)
                         if watch else None)

    # ------------------------------------------------------------------ readers
    @contextmanager
    def reader(self) -> Iterator[Store]:
        """A read-only store for one request; the file is free again once all are done.

        Stores are pooled while the anchor is open (one DuckDB connection each, used by one
        request at a time): opening one costs a connection plus the schema check, which is
        as much as a short query; the pool is closed with the anchor."""
        self._admit_reader()
        try:
            store = self._checkout()
        except BaseException:
            self._leave_reader(None)
            raise
        try:
            yield store
        finally:
            self._leave_reader(store)

    @asynccontextmanager
    async def async_reader(self) -> AsyncIterator[Store]:
        """:meth:`reader` for the event loop: waiting for admission never holds a worker
        thread, so readers queued behind a writer cannot starve the in-flight requests of
        the threads they need to finish (FastAPI runs sync dependencies' exits in the same
        small pool), which would deadlock the drain until the wait ran out."""
        deadline = time.monotonic() + self.wait
        while True:
            now = time.monotonic()
            with self._cond:
                state = self._try_admit(now)
            if state == "ok":
                break
            if state == "open":
                await to_thread.run_sync(self._open_anchor_admitted)
                break
            if now >= deadline:
                raise self._locked_error()
            await asyncio.sleep(ADMIT_POLL_SECONDS)
        try:
            pooled = self._pooled()
            store = pooled if pooled is not None else await to_thread.run_sync(self._open_reader)
        except BaseException:
            self._leave_reader(None)
            raise
        try:
            yield store
        finally:
            self._leave_reader(store)

    def _checkout(self) -> Store:
        pooled = self._pooled()
        return pooled if pooled is not None else self._open_reader()

    def _pooled(self) -> Store | None:
        with self._cond:
            return self._pool.pop() if self._pool else None

    def _open_reader(self) -> Store:
        return self.open_store(self.path, read_only=True, wait=self.wait)

    def _locked_error(self) -> StoreError:
        return StoreError(f"store {self.path} stayed locked by a writer for {self.wait:g} s")

    def _try_admit(self, now: float) -> str:
        """``ok`` (admitted), ``open`` (admitted once the caller opens the anchor) or
        ``wait`` (a writer's turn, a drain or another caller's open in progress); the
        lock is held."""
        self._maybe_give_gap(now)
        if (self._writing or self._draining or self._opening
                or now < self._closed_until):
            return "wait"
        if self._anchor is None:
            self._opening = True
            return "open"
        self._readers += 1
        return "ok"

    def _open_anchor_admitted(self) -> None:
        """Open the anchor (outside the lock: it may wait for an outside writer's lock)
        and count the caller in."""
        try:
            anchor = self._open_reader()
            anchor.connection.execute(f"SET threads = {DUCKDB_THREADS}")  # the instance's
        except BaseException:
            with self._cond:
                self._opening = False
                self._cond.notify_all()
            raise
        with self._cond:
            self._anchor = anchor
            self._opened_at = time.monotonic()
            self._opening = False
            self._readers += 1
            self._cond.notify_all()

    def _admit_reader(self) -> None:
        deadline = time.monotonic() + self.wait
        while True:
            with self._cond:
                now = time.monotonic()
                state = self._try_admit(now)
                if state == "wait":
                    if now >= deadline:
                        raise self._locked_error()
                    wake = min(deadline, max(self._closed_until, now + ADMIT_POLL_SECONDS))
                    self._cond.wait(timeout=wake - now)
                    continue
            if state == "open":
                self._open_anchor_admitted()
            return

    def _maybe_give_gap(self, now: float) -> None:
        """Without inotify, close the file for a moment after every hold (lock held)."""
        if (self._watcher is not None and self._watcher.active) or self._anchor is None:
            return
        if not self._draining and now - self._opened_at > self.hold_seconds:
            self._draining = True
            self._closed_until = now + FALLBACK_GAP_SECONDS
            if self._readers == 0:
                self._close_anchor()

    def _close_if_idle(self) -> None:
        """Close the anchor when no request has been in flight for ``IDLE_SECONDS``."""
        with self._cond:
            idle = time.monotonic() - self._last_leave
            if self._anchor is not None and self._readers == 0 and idle >= IDLE_SECONDS:
                self._close_anchor()

    def _leave_reader(self, store: Store | None) -> None:
        with self._cond:
            if store is not None:
                self._pool.append(store)
            self._readers -= 1
            self._last_leave = time.monotonic()
            held = time.monotonic() - self._opened_at
            # With an ear for writers the anchor stays while requests keep coming (a knock
            # drains it; the gate's thread closes it once idle): closing it after every
            # hold cost a cold open (~90 ms) and DuckDB's buffers to the next request.
            # Without one, it closes after each hold so a polling writer finds gaps.
            expired = held > self.hold_seconds and not self.watching
            if self._readers == 0 and (self._draining or expired):
                self._close_anchor()

    def _close_anchor(self) -> None:
        """Close the pool and the anchor (the lock is held, no reader in flight), so DuckDB
        closes the database instance and releases the file."""
        for store in self._pool:
            store.close()
        self._pool.clear()
        if self._anchor is not None:
            self._anchor.close()
            self._anchor = None
        self._draining = False
        self._cond.notify_all()

    # ------------------------------------------------------------------ writer
    @contextmanager
    def writer(self) -> Iterator[Store]:
        """The store read-write, exclusively in this process, for one request."""
        deadline = time.monotonic() + self.wait
        with self._cond:
            while self._writing:
                if not self._cond.wait(timeout=max(0.0, deadline - time.monotonic())):
                    raise StoreError(f"store {self.path} busy with another upload for "
                                     f"{self.wait:g} s")
            self._writing = True
            # A caller opening the anchor is not yet counted among the readers, but its
            # read-only open would make this process's read-write open fail ("different
            # configuration"): wait for it too.
            while self._readers or self._opening:
                self._cond.wait(timeout=0.05)
            self._close_anchor()
        try:
            store = self.open_store(self.path, read_only=False,
                                    wait=max(0.0, deadline - time.monotonic()))
            try:
                yield store
            finally:
                with self._cond:
                    self._own_closes += 1
                store.close()
        finally:
            with self._cond:
                self.writes += 1  # even a failed write may have committed part of a batch
                self._writing = False
                self._cond.notify_all()

    # ------------------------------------------------------------------ knocks
    def _on_close_write(self) -> None:
        """Someone closed the file after opening it for writing: a knock or a finished write."""
        with self._cond:
            if self._own_closes:
                self._own_closes -= 1
                return
            self.close_writes += 1
            now = time.monotonic()
            if self._anchor is not None:
                # A writer tried while we held the file: let it in.
                self.knocks += 1
                self._closed_until = now + self.yield_seconds
                self._draining = True
                if self._readers == 0:
                    self._close_anchor()
            elif now < self._closed_until:
                self._closed_until = now  # the writer is done: readers may come back
                self._cond.notify_all()

    def version(self) -> tuple[object, ...]:
        """The store's version as serve sees it, without opening the store (cache.py): the
        file's and WAL's signature, outside writers' closes heard, and this app's writes."""
        return (self.writes, self.close_writes, *file_signature(self.path))

    def close(self) -> None:
        if self._watcher is not None:
            self._watcher.stop()
        with self._cond:
            if self._readers == 0:
                self._close_anchor()

    @property
    def watching(self) -> bool:
        return self._watcher is not None and self._watcher.active


class _Watcher:
    """A daemon thread that hears writers and closes an idle anchor.

    On Linux it waits on inotify (``inotify_simple``, a thin ctypes wrapper) for
    ``IN_CLOSE_WRITE`` on the store file, watching the directory so a store created or
    replaced after start is still seen; elsewhere it only ticks. Every tick (at most
    ``TICK_SECONDS``) it calls ``on_tick`` so an anchor left open by the last request of a
    burst is closed once idle, without waiting for the next request.
    """

    def __init__(self, path: Path, on_close_write: Callable[[], None],
                 on_tick: Callable[[], None]) -> None:
        self.active = False  # inotify is listening
        self._stop = threading.Event()
        self._name = path.name
        self._callback = on_close_write
        self._tick = on_tick
        self._ino = None
        try:
            from inotify_simple import INotify, flags  # type: ignore[import-untyped]

            path.parent.mkdir(parents=True, exist_ok=True)
            ino = INotify()
            ino.add_watch(str(path.parent), flags.CLOSE_WRITE)
            self._ino = ino
            self.active = True
        except ImportError:  # not Linux: the gate gives writers periodic gaps instead
            pass
        except OSError as exc:
            log.warning("serve: no inotify on %s (%s); periodic gaps instead", path.parent, exc)
        self._thread = threading.Thread(target=self._run, name="netvigil-serve-gate",
                                        daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            if self._ino is not None:
                for event in self._ino.read(timeout=int(TICK_SECONDS * 1000)):
                    if event.name == self._name:
                        self._callback()
            else:
                self._stop.wait(TICK_SECONDS)
            self._tick()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)
        if self._ino is not None:
            self._ino.close()
            self._ino = None
        self.active = False
