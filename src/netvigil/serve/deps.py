"""How a router reaches the store: FastAPI dependencies, one open per request.

Use them as::

    from netvigil.serve.deps import StoreReader, StoreWriter

    @router.get("/things")
    def things(store: StoreReader) -> ...:          # read-only, closed after the request
        ...

    @router.post("/upload")
    def upload(store: StoreWriter) -> ...:          # read-write, one transaction is yours
        with store.transaction():
            ...

**Why per request.** DuckDB admits one read-write process or any number of read-only ones
per file (duckdb.org/docs/connect/concurrency), and a process holding the file excludes the
other kind entirely. ``netvigil run`` opens the store only while it writes a bin; if serve
kept the file open, the observatory could never write. So every request opens the store
through the :class:`StoreGate`, which waits a bounded time for a writer's lock with the
CLI's one retry loop (``netvigil.cli.common.open_store``, injected by the caller because
``cli`` sits beside ``serve`` and imports it), and closes it when the request ends. A lock
that outlasts the wait becomes HTTP 503 with ``Retry-After``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request

if TYPE_CHECKING:
    from netvigil.store.duck import Store

#: ``(path, *, read_only, wait) -> Store``: the lock-aware opener (cli.common.open_store).
StoreOpener = Callable[..., "Store"]

DEFAULT_REQUEST_WAIT = 10.0  # seconds a request waits for a writer's lock before 503


@dataclass
class StoreGate:
    """The app's one way to the store file: where it is, how to open it, how long to wait."""

    path: Path
    open_store: StoreOpener
    wait: float = DEFAULT_REQUEST_WAIT

    def reader(self) -> Store:
        return self.open_store(self.path, read_only=True, wait=self.wait)

    def writer(self) -> Store:
        return self.open_store(self.path, read_only=False, wait=self.wait)


def gate_of(request: Request) -> StoreGate:
    gate = request.app.state.store_gate
    assert isinstance(gate, StoreGate)
    return gate


def store_reader(request: Request) -> Iterator[Store]:
    """A read-only store for the request's duration (closed when the request ends)."""
    store = gate_of(request).reader()
    try:
        yield store
    finally:
        store.close()


def store_writer(request: Request) -> Iterator[Store]:
    """A read-write store for the request's duration; wrap writes in ``store.transaction()``."""
    store = gate_of(request).writer()
    try:
        yield store
    finally:
        store.close()


StoreReader = Annotated["Store", Depends(store_reader)]
StoreWriter = Annotated["Store", Depends(store_writer)]
