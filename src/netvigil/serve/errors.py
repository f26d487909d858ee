"""One error shape for every route: ``{"error": {"status": int, "message": str}}``.

FastAPI's own shapes (``{"detail": ...}``) are replaced here, once, so clients parse one
thing. Project errors map to statuses by class (the HTTP twin of the CLI's exit table in
``netvigil.cli.common``): a locked store is 503 with ``Retry-After``, a damaged or missing
store 503, an unknown entity or bad input 400/404.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from netvigil.model.errors import NetVigilError, StoreError

log = logging.getLogger(__name__)
RETRY_AFTER_SECONDS = 5
#: path prefix -> error writer for APIs with their own error shape (the IODA envelope)
ENVELOPED_PREFIXES: dict[str, Callable[[Request, int, str], Response]] = {}


def error_response(status: int, message: str, headers: dict[str, str] | None = None,
                   request: Request | None = None) -> Response:
    if request is not None:
        for prefix, writer in ENVELOPED_PREFIXES.items():
            if request.url.path.startswith(prefix + "/"):
                response = writer(request, status, message)
                response.headers.update(headers or {})
                return response
    return JSONResponse({"error": {"status": status, "message": message}},
                        status_code=status, headers=headers)


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("query", "path"))
        parts.append(f"{where}: {err.get('msg', 'invalid')}" if where else err.get("msg", ""))
    return "; ".join(parts) or "invalid request"


async def _on_http(req: Request, exc: StarletteHTTPException) -> Response:
    return error_response(exc.status_code, str(exc.detail), getattr(exc, "headers", None),
                          req)


async def _on_validation(req: Request, exc: RequestValidationError) -> Response:
    return error_response(422, _validation_message(exc), request=req)


async def _on_netvigil(req: Request, exc: NetVigilError) -> Response:
    """A store that cannot be opened (missing, damaged, locked past the wait) is the
    service's state, 503 (locked: with Retry-After); anything else was the request's, 400."""
    if isinstance(exc, StoreError):
        locked = "lock" in str(exc).lower()
        headers = {"Retry-After": str(RETRY_AFTER_SECONDS)} if locked else None
        return error_response(503, str(exc), headers, req)
    return error_response(400, str(exc), request=req)


async def _on_unexpected(req: Request, exc: Exception) -> Response:
    """A bug or an internal DuckDB failure: 500 in the same JSON shape, the class only (the
    traceback goes to the server's log, never to the client)."""
    log.error("unhandled error on %s", req.url.path, exc_info=exc)
    return error_response(500, f"internal error ({type(exc).__name__})", request=req)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(StarletteHTTPException, _on_http)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _on_validation)  # type: ignore[arg-type]
    app.add_exception_handler(NetVigilError, _on_netvigil)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _on_unexpected)
