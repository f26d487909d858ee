"""Snapshot answers without FastAPI's per-request machinery: same route functions, same
bytes, a tenth of the overhead.

Why: once a chart reads the in-memory snapshot (memory.py), computing it costs ~0.4 ms
(``api_v1.get_signals`` on a 7-day, 500-point chart), while FastAPI's dependency solving
and parameter validation, plus the hop to a worker thread and back, cost ~1 ms more per
request (cProfile of the ASGI app, docs/api.md "Load"). At 100 concurrent clients that
overhead is most of the CPU.

How: for a ``GET`` the answer cache has pinned to a snapshot (cache.py), :class:`FastPaths`
matches the path, parses a **narrow** subset of the query (the parameter names the route
declares; integers as plain ASCII digits inside the route's bounds; booleans spelled
``true``/``false``; one value per name except lists; no empty values) and calls the route
function itself (``api_v1.get_signals``, ``api_v1.get_events``, and IODA's
``signals_raw`` and ``outages_events``, whose envelopes are built per request anyway) with
the snapshot as its store, on the event loop (pure CPU on memory: no thread hop).
Anything outside that subset, and any error the route raises, goes to FastAPI unchanged,
which validates it and answers (or computes the error response) as always. So there is one
computation per answer; ``tests/test_serve_memory.py`` compares the answers of both paths
(bytes for /api/v1, IODA's envelope without its request times) on many URLs.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from fastapi import HTTPException, Request
from fastapi.responses import Response

from netvigil.model import EventKind, Scope
from netvigil.model.errors import NetVigilError
from netvigil.serve import api_v1, ioda_v2
from netvigil.serve.memory import SeriesSnapshot


class _Unsupported(Exception):
    """The request is outside the fast path's subset: FastAPI answers it."""


def _int(lo: int, hi: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        if not (text.isascii() and text.isdigit()) or not lo <= int(text) <= hi:
            raise _Unsupported
        return int(text)
    return parse


def _bool(text: str) -> bool:
    if text not in ("true", "false"):
        raise _Unsupported
    return text == "true"


def _choice(*allowed: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in allowed:
            raise _Unsupported
        return text
    return parse


def _enum(kind: Any) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            return kind(text)
        except ValueError:
            raise _Unsupported from None
    return parse


def _text(text: str) -> str:
    return text


#: (query name, route argument, parser, repeated?) of each fast route; the bounds are the
#: route's own (api_v1.MAX_LIMIT and the Query(ge=..., le=...) declarations)
SIGNALS_QUERY = (("from", "from_", _text, False), ("until", "until", _text, False),
                 ("signal", "signal", _text, True),
                 ("max_points", "max_points", _int(2, api_v1.MAX_LIMIT), False),
                 ("normalise", "normalise", _bool, False))
EVENTS_QUERY = (("entity_type", "entity_type", _text, False),
                ("entity_code", "entity_code", _text, False),
                ("kind", "kind", _enum(EventKind), False), ("scope", "scope", _enum(Scope), False),
                ("from", "from_", _text, False), ("until", "until", _text, False),
                ("order", "order", _text, False),
                ("limit", "limit", _int(1, api_v1.MAX_LIMIT), False),
                ("format", "format", _choice("json", "csv", "codf"), False))
IODA_SIGNALS_QUERY = (("from", "from_", _text, False), ("until", "until", _text, False),
                      ("datasource", "datasource_", _text, False),
                      ("sourceParams", "sourceParams", _text, False),
                      ("maxPoints", "maxPoints", _int(1, 100_000), False))
IODA_EVENTS_QUERY = (("from", "from_", _text, False), ("until", "until", _text, False),
                     ("entityType", "entityType", _text, False),
                     ("entityCode", "entityCode", _text, False),
                     ("datasource", "datasource_", _text, False),
                     ("includeAlerts", "includeAlerts", _bool, False),
                     ("format", "format", _text, False), ("orderBy", "orderBy", _text, False),
                     ("limit", "limit", _int(1, 100_000), False),
                     ("page", "page", _int(0, 10**12), False))
Spec = tuple[tuple[str, str, Callable[[str], Any], bool], ...]


def _pairs(query: str) -> list[tuple[str, str]]:
    """``parse_qsl(query, keep_blank_values=True)``; a query with nothing to unquote (no
    ``%`` or ``+``, as every dashboard chart's) is split directly, at a fifth of the cost."""
    if "%" in query or "+" in query:
        return parse_qsl(query, keep_blank_values=True)
    return [(name, value) for name, _, value in
            (part.partition("=") for part in query.split("&") if part)]


def _arguments(query: str, spec: Spec) -> dict[str, Any]:
    known = {name: (arg, parse, many) for name, arg, parse, many in spec}
    out: dict[str, Any] = {}
    for name, value in _pairs(query):
        if name not in known or value == "":
            raise _Unsupported
        arg, parse, many = known[name]
        if many:
            out.setdefault(arg, []).append(parse(value))
        elif arg in out:
            raise _Unsupported
        else:
            out[arg] = parse(value)
    return out


@dataclass(frozen=True)
class FastRoute:
    """One route answered from a snapshot: ``template`` is the FastAPI path (metrics label)."""

    template: str
    pattern: re.Pattern[str]
    spec: Spec
    call: Callable[[SeriesSnapshot, Any, tuple[str, ...], dict[str, Any]], Response]


def _signals(snap: SeriesSnapshot, scope: Any, path: tuple[str, ...], args: dict[str, Any]
             ) -> Response:
    return api_v1.get_signals(snap, snap.catalogue, path[0], path[1], **args)


def _events(snap: SeriesSnapshot, scope: Any, path: tuple[str, ...], args: dict[str, Any]
            ) -> Response:
    if "entity_code" not in args:  # one entity's list only: a whole-store list or CSV
        raise _Unsupported          # export may be long, and the thread pool keeps the loop free
    return api_v1.get_events(snap, **args)


def _ioda_signals(snap: SeriesSnapshot, scope: Any, path: tuple[str, ...],
                  args: dict[str, Any]) -> Response:
    return ioda_v2.signals_raw(Request(scope), snap, snap.catalogue, path[0], path[1], **args)


def _ioda_events(snap: SeriesSnapshot, scope: Any, path: tuple[str, ...],
                 args: dict[str, Any]) -> Response:
    if "entityCode" not in args:  # as _events
        raise _Unsupported
    return ioda_v2.outages_events(Request(scope), snap, snap.catalogue, **args)


ROUTES = (
    FastRoute("/api/v1/signals/{entity_type}/{code}",
              re.compile(r"/api/v1/signals/([^/]+)/([^/]+)"), SIGNALS_QUERY, _signals),
    FastRoute("/api/v1/events", re.compile(r"/api/v1/events"), EVENTS_QUERY, _events),
    FastRoute("/ioda/v2/signals/raw/{entityType}/{entityCode}",
              re.compile(r"/ioda/v2/signals/raw/([^/]+)/([^/]+)"), IODA_SIGNALS_QUERY,
              _ioda_signals),
    FastRoute("/ioda/v2/outages/events", re.compile(r"/ioda/v2/outages/events"),
              IODA_EVENTS_QUERY, _ioda_events),
)


class FastPaths:
    """The fast routes and, once the app has its routes, the route objects they stand for
    (``scope["route"]``, so metrics label a fast answer like any other)."""

    def __init__(self, routes: Iterable[FastRoute] = ROUTES) -> None:
        self.routes = tuple(routes)
        self.route_objects: dict[str, Any] = {}
        self.answered = 0  # requests answered here (the rest went to FastAPI)

    def bind(self, app_routes: Iterable[Any]) -> None:
        by_path = {getattr(r, "path", None): r for r in app_routes}
        self.route_objects = {fr.template: by_path.get(fr.template) for fr in self.routes}

    def answer(self, snap: SeriesSnapshot, scope: dict[str, Any] | Any) -> Response | None:
        """The route's response for this request from ``snap``, or None (FastAPI's turn)."""
        path = scope.get("path", "")
        for fr in self.routes:
            m = fr.pattern.fullmatch(path)
            if m is None:
                continue
            try:
                args = _arguments(bytes(scope.get("query_string", b"")).decode("latin-1"),
                                  fr.spec)
                response = fr.call(snap, scope, m.groups(), args)
            except (_Unsupported, HTTPException, NetVigilError, ValueError,
                    UnicodeDecodeError):
                return None
            scope["route"] = self.route_objects.get(fr.template)
            self.answered += 1
            return response
        return None
