"""How a router reaches the store: FastAPI dependencies, one open per request.

Use them as::

    from netvigil.serve.deps import StoreReader, StoreWriter

    @router.get("/things")
    def things(store: StoreReader) -> ...:          # read-only, closed after the request
        ...

    @router.post("/upload")
    def upload(store: StoreWriter) -> ...:          # read-write, exclusive in this process
        with store.transaction():
            ...

Define such routes with plain ``def`` (not ``async def``): DuckDB calls block, and FastAPI
runs plain functions in its thread pool. Both dependencies go through the app's
:class:`~netvigil.serve.gate.StoreGate`, which never holds the file between requests and
yields it to a knocking writer such as ``netvigil run`` (gate.py docstring). A lock that
outlasts the request wait becomes HTTP 503 with ``Retry-After`` (errors.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Annotated

from anyio import to_thread
from fastapi import Depends, Request

from netvigil.serve.cache import SNAPSHOT_STATE, VersionedMemo
from netvigil.serve.gate import StoreGate
from netvigil.serve.memory import SeriesMemory, SeriesSnapshot
from netvigil.serve.queries import Catalogue

if TYPE_CHECKING:
    from netvigil.store.duck import Store

DEFAULT_REQUEST_WAIT = 10.0  # seconds a request waits for a writer's lock before 503


def gate_of(request: Request) -> StoreGate:
    gate = request.app.state.store_gate
    assert isinstance(gate, StoreGate)
    return gate


async def store_reader(request: Request) -> AsyncIterator[Store]:
    """A read-only store for the request's duration (returned when the request ends).
    Async so that waiting for admission holds no worker thread (gate.async_reader)."""
    async with gate_of(request).async_reader() as store:
        yield store


def store_writer(request: Request) -> Iterator[Store]:
    """A read-write store for the request's duration; wrap writes in ``store.transaction()``.
    Readers of this app wait while it is open: keep uploads short."""
    with gate_of(request).writer() as store:
        yield store


def catalogue_memo(request: Request) -> VersionedMemo[Catalogue]:
    memo = request.app.state.catalogue
    assert isinstance(memo, VersionedMemo)
    return memo


StoreReader = Annotated["Store", Depends(store_reader)]
StoreWriter = Annotated["Store", Depends(store_writer)]


def store_catalogue(request: Request, store: StoreReader) -> Catalogue:
    """The store's entities and series bounds (queries.Catalogue) for the request's store
    version, read once per version: the request holds the file, so no writer can move the
    version between this read and the request's own reads (cache.py)."""
    return catalogue_memo(request).get(gate_of(request).version(), store)


StoreCatalogue = Annotated[Catalogue, Depends(store_catalogue)]


def memory_of(request: Request) -> SeriesMemory:
    memory = request.app.state.memory
    assert isinstance(memory, SeriesMemory)
    return memory


async def series_source(request: Request) -> AsyncIterator[Store | SeriesSnapshot]:
    """Where a route reads series and events: the in-memory snapshot the answer cache pinned
    for this request (cache.py), else the app's current one, else the store itself (no
    snapshot yet, or the store is too large for one). Both answer ``read_series`` and
    ``read_events`` alike (memory.py), so the route code is the same."""
    snap = request.scope.get("state", {}).get(SNAPSHOT_STATE) or memory_of(request).serving()
    if isinstance(snap, SeriesSnapshot):
        yield snap
        return
    async with gate_of(request).async_reader() as store:
        yield store


SeriesSource = Annotated["Store | SeriesSnapshot", Depends(series_source)]


async def source_catalogue(request: Request, source: SeriesSource) -> Catalogue:
    """The catalogue of the source the request reads (the snapshot's own, or the store's
    for the current version, as :func:`store_catalogue`). Async: the snapshot's costs no
    hop to a worker thread (FastAPI runs a plain ``def`` dependency in one)."""
    if isinstance(source, SeriesSnapshot):
        return source.catalogue
    memo, version = catalogue_memo(request), gate_of(request).version()
    return await to_thread.run_sync(memo.get, version, source)


SourceCatalogue = Annotated[Catalogue, Depends(source_catalogue)]
