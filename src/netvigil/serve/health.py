"""``GET /health``: is the store readable, and how fresh is it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from netvigil import __version__
from netvigil.serve.deps import StoreReader

router = APIRouter(tags=["health"])


@router.get("/health")
def health(store: StoreReader) -> dict[str, Any]:
    """200 with the store's schema version and row counts when the store opens read-only;
    503 (JSON error) when it is missing, damaged or stays locked past the wait."""
    return {"status": "ok", "version": __version__, "schema_version": store.schema_version(),
            "counts": store.table_counts()}
