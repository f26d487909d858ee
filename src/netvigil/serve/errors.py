"""One error shape for every route: ``{"error": {"status": int, "message": str}}``.

FastAPI's own shapes (``{"detail": ...}``) are replaced here, once, so clients parse one
thing. Project errors map to statuses by class (the HTTP twin of the CLI's exit table in
``netvigil.cli.common``): a locked store is 503 with ``Retry-After``, a damaged or missing
store 503, an unknown entity or bad input 400/404.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from netvigil.model.errors import InvalidEntity, NetVigilError, StoreError

RETRY_AFTER_SECONDS = 5


def error_response(status: int, message: str,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"status": status, "message": message}},
                        status_code=status, headers=headers)


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("query", "path"))
        parts.append(f"{where}: {err.get('msg', 'invalid')}" if where else err.get("msg", ""))
    return "; ".join(parts) or "invalid request"


async def _on_http(_req: Request, exc: StarletteHTTPException) -> JSONResponse:
    return error_response(exc.status_code, str(exc.detail), getattr(exc, "headers", None))


async def _on_validation(_req: Request, exc: RequestValidationError) -> JSONResponse:
    return error_response(422, _validation_message(exc))


async def _on_netvigil(_req: Request, exc: NetVigilError) -> JSONResponse:
    if isinstance(exc, StoreError):
        locked = "locked" in str(exc) or "lock" in str(exc).lower()
        headers = {"Retry-After": str(RETRY_AFTER_SECONDS)} if locked else None
        return error_response(503, str(exc), headers)
    if isinstance(exc, InvalidEntity):
        return error_response(400, str(exc))
    return error_response(400, str(exc))


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(StarletteHTTPException, _on_http)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _on_validation)  # type: ignore[arg-type]
    app.add_exception_handler(NetVigilError, _on_netvigil)  # type: ignore[arg-type]
