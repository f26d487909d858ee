// Map drawing: a TopoJSON decoder (the format's spec: github.com/topojson/topojson-specification,
// delta-encoded quantised arcs, negative index = reversed arc) and an equirectangular
// projection fitted to the features' box. Hand-written: ~60 lines against d3-geo + topojson-client.
const SVG = 'http://www.w3.org/2000/svg';

function decodeArcs(topo) {
  const [sx, sy] = topo.transform ? topo.transform.scale : [1, 1];
  const [tx, ty] = topo.transform ? topo.transform.translate : [0, 0];
  return topo.arcs.map((arc) => {
    let x = 0; let y = 0;
    return arc.map(([dx, dy]) => { x += dx; y += dy; return [x * sx + tx, y * sy + ty]; });
  });
}

function ring(arcs, indexes) {
  const out = [];
  for (const i of indexes) {
    const pts = i < 0 ? arcs[~i].slice().reverse() : arcs[i];
    out.push(...(out.length ? pts.slice(1) : pts));
  }
  return out;
}

// TopoJSON object -> [{id, name, polygons: [[ring, ...], ...]}]
export function topoFeatures(topo, objectName) {
  const arcs = decodeArcs(topo);
  return topo.objects[objectName].geometries.map((g) => {
    const polys = g.type === 'Polygon' ? [g.arcs] : g.type === 'MultiPolygon' ? g.arcs : [];
    return {
      id: g.id || '', name: (g.properties || {}).name || '',
      polygons: polys.map((p) => p.map((r) => ring(arcs, r))),
    };
  });
}

// GeoJSON FeatureCollection (Polygon / MultiPolygon) -> the same shape as topoFeatures.
export function geoFeatures(fc) {
  return fc.features.map((f) => ({
    id: f.properties.code, name: f.properties.name, props: f.properties,
    polygons: f.geometry.type === 'Polygon' ? [f.geometry.coordinates] : f.geometry.coordinates,
  }));
}

function bounds(features) {
  let [x0, y0, x1, y1] = [Infinity, Infinity, -Infinity, -Infinity];
  for (const f of features) for (const p of f.polygons) for (const r of p) for (const [x, y] of r) {
    x0 = Math.min(x0, x); x1 = Math.max(x1, x); y0 = Math.min(y0, y); y1 = Math.max(y1, y);
  }
  return [x0, y0, x1, y1];
}

// Equirectangular with cos(mid-latitude) x-scaling, fitted to width x height.
export function drawMap(features, { width, height, fill, href, title, clipLat = -58 }) {
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
  svg.setAttribute('class', 'map');
  const [x0, y0raw, x1, y1] = bounds(features);
  const y0 = Math.max(y0raw, clipLat);
  const k = Math.cos(((y0 + y1) / 2) * Math.PI / 180);
  const scale = Math.min(width / ((x1 - x0) * k), height / (y1 - y0));
  const ox = (width - (x1 - x0) * k * scale) / 2;
  const oy = (height - (y1 - y0) * scale) / 2;
  const px = ([x, y]) => `${(ox + (x - x0) * k * scale).toFixed(1)},${(oy + (y1 - y) * scale).toFixed(1)}`;
  // A ring crossing the antimeridian (Russia, Fiji) is broken where longitude jumps by more
  // than 180 degrees instead of drawing a line across the whole map.
  const ringPath = (r) => r.map((pt, i) => {
    const jump = i > 0 && Math.abs(pt[0] - r[i - 1][0]) > 180;
    return `${i === 0 || jump ? 'M' : 'L'}${px(pt)}`;
  }).join('') + 'Z';
  for (const f of features) {
    const d = f.polygons.map((p) => p.map(ringPath).join('')).join('');
    const path = document.createElementNS(SVG, 'path');
    path.setAttribute('d', d);
    path.setAttribute('fill', fill(f));
    path.dataset.code = f.id;
    const tip = document.createElementNS(SVG, 'title');
    tip.textContent = title(f);
    path.append(tip);
    const target = href(f);
    if (target) {
      const a = document.createElementNS(SVG, 'a');
      a.setAttribute('href', target);
      a.dataset.code = f.id;
      a.append(path);
      svg.append(a);
    } else {
      svg.append(path);
    }
  }
  return svg;
}
