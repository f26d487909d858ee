"""Answers kept per store version: a repeated dashboard query costs a dict lookup.

A dashboard asks the same questions again and again (a country page's chart and event list,
every viewer, every refresh) while the store changes once per bin at most (``netvigil run``
writes one 5-minute bin per transaction). So serve keeps whole ``/api/v1`` answers, and the
store's metadata (entities and series bounds, :class:`netvigil.serve.queries.Catalogue`),
keyed by the **store version** and forgets them all when the version moves.

The store version (:meth:`netvigil.serve.gate.StoreGate.version`) is read without opening
the store, so a cached answer is served without DuckDB at all:

* the ``(inode, size, mtime_ns)`` of the store file and of its write-ahead log
  (``<store>.wal``): every DuckDB commit writes one of the two (the WAL, or the file itself
  at a checkpoint), and DuckDB admits no writer while serve holds the file, so the version
  cannot move while a request reads;
* the count of read-write closes of the file heard by the gate's inotify watcher (a writer
  process finishing, Linux), which also catches two writes inside one mtime tick;
* the count of writes made through this app (:meth:`StoreGate.writer`).

An answer is kept only if the version was the same when the request began and when its
answer was complete, so an answer computed across a write is never kept. Only ``GET``
answers with status 200 of :data:`CACHED_PREFIXES` are kept (none of them depends on the
clock or on request headers: IODA's envelope carries request times, so ``/ioda/v2`` is not
kept whole; it shares the catalogue). The size is bounded (:data:`MAX_BYTES`, least recently
used first out); a plain ``OrderedDict`` does it in a dozen lines, which is why no cache
library is added.

Routes answered from serve's in-memory snapshot (:data:`SNAPSHOT_PREFIXES`, memory.py) are
keyed by the **snapshot's serial** instead, in a cache of their own: the middleware pins the
current snapshot into the request's scope (``deps.series_source`` reads it), so the answer
kept is the one computed from that snapshot, and a snapshot never changes. A miss of such a
route is computed by fastpath.py when its query is in the fast path's subset, else by
FastAPI; IODA's snapshot routes (:data:`UNCACHED_SNAPSHOT_PREFIXES`) take the fast path too
but are not kept whole (ioda_v2.py keeps their ``data``).
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable, MutableMapping, Sequence
from pathlib import Path
from typing import Any, Generic, NamedTuple, TypeVar

#: Routes whose whole answers are kept (they depend only on the URL and the store).
CACHED_PREFIXES: tuple[str, ...] = ("/api/v1/signals/", "/api/v1/events", "/api/v1/entities",
                                    "/api/v1/alerts", "/api/v1/summary")
MAX_BYTES = 64 * 2**20  # response bytes kept (about 10,000 seven-day charts)
MAX_BODY = 4 * 2**20  # a larger answer is not kept (a whole-store CSV export)
#: Routes answered from the in-memory snapshot when one is ready (memory.py).
SNAPSHOT_PREFIXES: tuple[str, ...] = ("/api/v1/signals/", "/api/v1/events")
#: Routes answered from the snapshot but not kept whole (their data part is: ioda_v2.py).
UNCACHED_SNAPSHOT_PREFIXES: tuple[str, ...] = ("/ioda/v2/signals/raw/",
                                               "/ioda/v2/outages/events")
SNAPSHOT_STATE = "netvigil_snapshot"  # scope["state"] key of the pinned snapshot
CACHE_HEADER = b"x-netvigil-cache"  # "hit" or "miss": lets tests and operators see it

Version = tuple[Hashable, ...]
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
T = TypeVar("T")


def file_signature(path: Path) -> Version:
    """``(inode, size, mtime_ns)`` of the store file and its WAL (``None`` when absent)."""
    out: list[Hashable] = []
    for p in (path, path.with_name(path.name + ".wal")):
        try:
            st = os.stat(p)
        except OSError:
            out.append(None)
            continue
        out.append((st.st_ino, st.st_size, st.st_mtime_ns))
    return tuple(out)


class CachedAnswer(NamedTuple):
    """A kept answer. :class:`ResponseCache` stores it as a plain tuple of ints, bytes and
    strings (headers a tuple of tuples): CPython stops tracking such a tuple (an exact
    tuple, not a named one) in the first collection that finds its items untracked (the
    headers in one, the entry in the next), so thousands of kept answers add nothing to a
    full collection's pause. Tracked, they cost ~1 us each: with
    8,000 kept answers and their header lists a full collection took 82-98 ms, and there
    were several per 8 s at 100 clients (docs/api.md "Load")."""

    status: int
    headers: Sequence[tuple[bytes, bytes]]
    body: bytes
    route: str | None  # the answering route's path template (metrics label on a hit)


BODY = CachedAnswer._fields.index("body")


class ResponseCache:
    """Whole answers by (version, path, query), least recently used out past ``max_bytes``.

    Thread-safe; the version is part of each entry, and entries of an older version are
    dropped all at once when a newer one is stored."""

    def __init__(self, max_bytes: int = MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._version: Version | None = None
        #: plain tuples (CachedAnswer's fields): see CachedAnswer
        self._entries: OrderedDict[tuple[str, bytes], tuple[Any, ...]] = OrderedDict()
        self._bytes = 0
        self.hits = 0  # requests answered from the cache (the middleware counts)
        self.misses = 0  # requests whose answer was computed

    def get(self, version: Version, key: tuple[str, bytes]) -> CachedAnswer | None:
        with self._lock:
            found = self._entries.get(key) if version == self._version else None
            if found is None:
                return None
            self._entries.move_to_end(key)
        return CachedAnswer._make(found)

    def put(self, version: Version, key: tuple[str, bytes], answer: CachedAnswer) -> None:
        size = len(answer.body)
        if size > min(MAX_BODY, self.max_bytes):
            return
        with self._lock:
            if version != self._version:
                self._entries.clear()
                self._bytes = 0
                self._version = version
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= len(old[BODY])
            self._entries[key] = (answer.status, tuple(answer.headers), answer.body,
                                  answer.route)
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, gone = self._entries.popitem(last=False)
                self._bytes -= len(gone[BODY])

    def __len__(self) -> int:
        return len(self._entries)


class VersionedMemo(Generic[T]):
    """One value per store version (the catalogue): built once per version, thread-safe;
    concurrent first requests of a version build it once."""

    def __init__(self, build: Callable[..., T]) -> None:
        self._build = build
        self._lock = threading.Lock()
        self._version: Version | None = None
        self._value: T | None = None
        self.builds = 0

    def get(self, version: Version, *args: Any) -> T:
        with self._lock:
            if self._value is None or version != self._version:
                self._value = self._build(*args)
                self._version = version
                self.builds += 1
            return self._value


class ResponseCacheMiddleware:
    """Pure ASGI: answer a ``GET`` of :data:`CACHED_PREFIXES` from the cache when the store
    version is unchanged, else run the app and keep a 200 answer computed at one version."""

    def __init__(self, app: ASGIApp, cache: ResponseCache,
                 version: Callable[[], Version],
                 snapshot: Callable[[], Any] | None = None,
                 snapshot_cache: ResponseCache | None = None, fast: Any = None) -> None:
        self.app = app
        self.cache = cache
        self.version = version
        #: the current in-memory snapshot (memory.py) or None; answers of
        #: :data:`SNAPSHOT_PREFIXES` computed from it are kept in ``snapshot_cache`` under
        #: its serial (it never changes under a request, so no second version check)
        self.snapshot = snapshot
        self.snapshot_cache = snapshot_cache or ResponseCache()
        #: fastpath.FastPaths: a miss pinned to a snapshot is computed by the route function
        #: without FastAPI's machinery when the request is in its narrow subset
        self.fast = fast
        #: misses being computed, by (version, key): a request for the same URL waits for
        #: that answer instead of computing it again (after each write every viewer of a
        #: page misses at once; the first load of the benchmark computed 454 answers for
        #: 249 URLs). Only touched from the event loop, so a plain dict suffices.
        self._computing: dict[tuple[Version, tuple[str, bytes]], asyncio.Event] = {}
        #: route objects by path template: a hit sets ``scope["route"]`` from its answer's
        #: template (CachedAnswer keeps the string, not the object: see its docstring)
        self._routes: dict[str, Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or scope.get("method") != "GET":
            await self.app(scope, receive, send)
            return
        if path.startswith(UNCACHED_SNAPSHOT_PREFIXES):
            await self._uncached(scope, receive, send)
            return
        if not path.startswith(CACHED_PREFIXES):
            await self.app(scope, receive, send)
            return
        key = (path, bytes(scope.get("query_string", b"")))
        cache, before, current = self._pick(scope, path)
        found = cache.get(before, key)
        leader = self._computing.get((before, key))
        if found is None and leader is not None:
            await leader.wait()  # the same question is being answered: take its answer
            found = cache.get(before, key)
        if found is not None:
            self.cache.hits += 1  # the event loop's thread only
            scope["route"] = self._routes.get(found.route) if found.route else None
            await send({"type": "http.response.start", "status": found.status,
                        "headers": [*found.headers, (CACHE_HEADER, b"hit")]})
            await send({"type": "http.response.body", "body": found.body})
            return
        if leader is None:
            done = self._computing[(before, key)] = asyncio.Event()
            try:
                await self._compute(scope, receive, send, key, (cache, before, current))
            finally:
                del self._computing[(before, key)]
                done.set()
        else:  # the leader's answer was not kept (an error, or the store moved)
            await self._compute(scope, receive, send, key, (cache, before, current))

    async def _uncached(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A snapshot route whose whole answer is not kept (IODA's envelope carries request
        times; ioda_v2 keeps its data part): the fast path when it can, FastAPI else."""
        snap = self.snapshot() if self.snapshot is not None else None
        if snap is not None:
            scope.setdefault("state", {})[SNAPSHOT_STATE] = snap
            response = self.fast.answer(snap, scope) if self.fast is not None else None
            if response is not None:
                await send({"type": "http.response.start", "status": response.status_code,
                            "headers": response.raw_headers})
                await send({"type": "http.response.body", "body": response.body})
                return
        await self.app(scope, receive, send)

    def _pick(self, scope: Scope, path: str
              ) -> tuple[ResponseCache, Version, Callable[[], Version]]:
        """The cache, version and version reader for this request: a snapshot route with a
        snapshot ready is pinned to it (``scope["state"]``, read by deps.series_source)."""
        snap = self.snapshot() if self.snapshot is not None else None
        if snap is None or not path.startswith(SNAPSHOT_PREFIXES):
            return self.cache, self.version(), self.version
        scope.setdefault("state", {})[SNAPSHOT_STATE] = snap
        pinned: Version = ("snapshot", snap.serial)
        return self.snapshot_cache, pinned, lambda: pinned

    async def _compute(self, scope: Scope, receive: Receive, send: Send,
                       key: tuple[str, bytes],
                       picked: tuple[ResponseCache, Version, Callable[[], Version]]) -> None:
        cache, before, current = picked
        self.cache.misses += 1
        start: Message = {}
        chunks: list[bytes] = []

        async def keep(message: Message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
                message = {**message, "headers": [*message.get("headers", []),
                                                   (CACHE_HEADER, b"miss")]}
            elif message["type"] == "http.response.body":
                chunks.append(bytes(message.get("body", b"")))
            await send(message)

        snap = scope.get("state", {}).get(SNAPSHOT_STATE)
        response = (self.fast.answer(snap, scope)
                    if snap is not None and self.fast is not None else None)
        if response is not None:
            await keep({"type": "http.response.start", "status": response.status_code,
                        "headers": response.raw_headers})
            await keep({"type": "http.response.body", "body": response.body})
        else:
            await self.app(scope, receive, keep)
        if start.get("status") == 200 and current() == before:
            route = scope.get("route")
            path = getattr(route, "path", None)
            if isinstance(path, str):
                self._routes.setdefault(path, route)
            cache.put(before, key, CachedAnswer(
                200, tuple((bytes(k), bytes(v)) for k, v in start.get("headers", [])),
                b"".join(chunks), path if isinstance(path, str) else None))
