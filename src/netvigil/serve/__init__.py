"""``netvigil serve``: the HTTP surface (issue 10, deliverables 1 and 6).

One ASGI app (:func:`netvigil.serve.app.create_app`) that reads the same DuckDB store
``netvigil run`` writes. Routers live in their own modules, listed in
:data:`netvigil.serve.app.ROUTER_MODULES`; they reach the store only through the
dependencies in :mod:`netvigil.serve.deps`, which open it for the request's duration and
never hold it between requests (decision "serve never holds the store" in
docs/architecture.md).
"""
