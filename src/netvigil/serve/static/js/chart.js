// Signal charts: one SVG panel per signal (signals have unrelated units), event bands behind the
// lines, UTC ticks, CSV and PNG export. Styles are SVG attributes, not CSS, so the PNG export
// (SVG -> <img> -> <canvas>) looks like the page.
import { t } from './i18n.js';
import { fmtUtc, isoMinute } from './time.js';

const SVG = 'http://www.w3.org/2000/svg';
const W = 900; const H = 170;
const M = { l: 64, r: 12, t: 22, b: 24 };
export const BAND_COLOURS = {
  outage: '#d7301f', routing: '#7b3294', 'platform-block': '#2c7fb8', degradation: '#fdae61',
};

function el(name, attrs = {}, text = null) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== null) node.textContent = text;
  return node;
}

export function signalLabel(signal) {
  if (signal.startsWith('platform:')) return t('signal.platform', { name: signal.slice(9) });
  const key = `signal.${signal}`;
  const text = t(key);
  return text === key ? signal : text;
}

function ticks(from, until) {
  const span = until - from;
  const step = [3600, 6 * 3600, 86400, 2 * 86400, 7 * 86400, 30 * 86400]
    .find((s) => span / s <= 9) || 90 * 86400;
  const out = [];
  for (let x = Math.ceil(from / step) * step; x <= until; x += step) out.push(x);
  return { out, step };
}

function fmtTick(ts, step) {
  const iso = isoMinute(ts);
  return step >= 86400 ? iso.slice(5, 10) : iso.slice(5, 16).replace('T', ' ');
}

// The smallest 1, 2, 2.5 or 5 x 10^k at or above v: round axis labels.
function niceTop(v) {
  const p = 10 ** Math.floor(Math.log10(v));
  return [1, 2, 2.5, 5, 10].map((m) => m * p).find((x) => x >= v * (1 - 1e-9));
}

function fmtValue(v, normalised) {
  if (normalised) return `${Math.round(v * 100)}%`;
  if (Math.abs(v) >= 1e6) return `${(v / 1e6).toFixed(1)}M`;
  if (Math.abs(v) >= 1e4) return `${(v / 1e3).toFixed(0)}k`;
  return Number.isInteger(v) ? String(v) : v.toFixed(2);
}

function panel(s, { from, until, bands, normalised }) {
  const svg = el('svg', {
    viewBox: `0 0 ${W} ${H}`, width: W, height: H, xmlns: SVG, class: 'chart',
    'data-signal': s.signal, 'font-family': 'sans-serif', 'font-size': '11',
  });
  svg.append(el('rect', { x: 0, y: 0, width: W, height: H, fill: '#ffffff' }));
  const vals = s.points.map((p) => p[1]).filter((v) => v !== null && Number.isFinite(v));
  const top = normalised ? Math.max(1.1, ...vals) : niceTop(Math.max(...vals, 1e-9));
  const x = (ts) => M.l + ((ts - from) / Math.max(1, until - from)) * (W - M.l - M.r);
  const y = (v) => H - M.b - (v / top) * (H - M.t - M.b);
  for (const b of bands) {
    const x0 = x(Math.max(b.start, from));
    const x1 = x(Math.min(b.end ?? until, until));
    if (x1 <= x0) continue;
    const r = el('rect', {
      x: x0.toFixed(1), y: M.t, width: (x1 - x0).toFixed(1), height: H - M.t - M.b,
      fill: BAND_COLOURS[b.kind] || '#999', 'fill-opacity': '0.15', class: 'band',
      'data-event': b.id,
    });
    r.append(el('title', {}, `${t(`kind.${b.kind}`)}: ${fmtUtc(b.start)} – ${b.end ? fmtUtc(b.end) : t('event.ongoing')}`));
    svg.append(r);
  }
  const { out, step } = ticks(from, until);
  for (const tk of out.filter((x0) => x(x0) < W - M.r - 16)) {
    svg.append(el('line', { x1: x(tk), x2: x(tk), y1: M.t, y2: H - M.b, stroke: '#e5e5e5' }));
    svg.append(el('text', { x: x(tk), y: H - 8, 'text-anchor': 'middle', fill: '#555' }, fmtTick(tk, step)));
  }
  for (const v of normalised ? [0, 0.5, 1] : [0, top / 4, top / 2, (3 * top) / 4, top]) {
    svg.append(el('line', { x1: M.l, x2: W - M.r, y1: y(v), y2: y(v), stroke: '#eeeeee' }));
    svg.append(el('text', { x: M.l - 6, y: y(v) + 4, 'text-anchor': 'end', fill: '#555' }, fmtValue(v, normalised)));
  }
  let d = ''; let pen = false;
  for (const [ts, v] of s.points) {
    if (v === null || !Number.isFinite(v) || ts < from || ts > until) { pen = false; continue; }
    d += `${pen ? 'L' : 'M'}${x(ts).toFixed(1)},${y(v).toFixed(1)}`;
    pen = true;
  }
  svg.append(el('path', { d, fill: 'none', stroke: '#1b4f72', 'stroke-width': '1.4', class: 'line' }));
  const mode = normalised ? t('chart.normalised') : t('chart.absolute');
  const caption = `${signalLabel(s.signal)} · ${mode} · UTC`;
  svg.setAttribute('role', 'img');
  svg.setAttribute('aria-label', caption);
  svg.append(el('text', { x: M.l, y: 14, fill: '#222', 'font-weight': 'bold' }, caption));
  return svg;
}

function download(name, blob) {
  const a = document.createElement('a');
  a.href = URL.createObjectURL(blob);
  a.download = name;
  document.body.append(a);
  a.click();
  setTimeout(() => { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
}

export function toCsv(s, normalised) {
  const head = `time_utc,unix_seconds,signal,${normalised ? 'ratio_of_ordinary' : 'value'}\n`;
  return head + s.points.map(([ts, v]) => `${isoMinute(ts)},${ts},${s.signal},${v ?? ''}`).join('\n') + '\n';
}

export function toPng(svg) {
  return new Promise((resolve, reject) => {
    const text = new XMLSerializer().serializeToString(svg);
    const img = new Image();
    img.onload = () => {
      const canvas = document.createElement('canvas');
      canvas.width = W * 2; canvas.height = H * 2;
      const ctx = canvas.getContext('2d');
      ctx.scale(2, 2);
      ctx.drawImage(img, 0, 0, W, H);
      canvas.toBlob((b) => (b ? resolve(b) : reject(new Error('png'))), 'image/png');
    };
    img.onerror = reject;
    img.src = `data:image/svg+xml;charset=utf-8,${encodeURIComponent(text)}`;
  });
}

// series: [{signal, points: [[ts, value|null], ...]}]; bands: [{id, kind, start, end}]
export function renderCharts(container, series, opts) {
  container.replaceChildren();
  if (!series.length) {
    const p = document.createElement('p');
    p.className = 'empty';
    p.textContent = t('chart.nodata');
    container.append(p);
    return;
  }
  for (const s of series) {
    const fig = document.createElement('figure');
    fig.className = 'chart-panel';
    const svg = panel(s, opts);
    const bar = document.createElement('div');
    bar.className = 'chart-tools';
    const stem = `${opts.stem}_${s.signal.replace(/[^\w-]+/g, '-')}_${opts.normalised ? 'normalised' : 'absolute'}`;
    const csv = document.createElement('button');
    csv.type = 'button'; csv.className = 'export-csv'; csv.textContent = t('chart.csv');
    csv.onclick = () => download(`${stem}.csv`, new Blob([toCsv(s, opts.normalised)], { type: 'text/csv' }));
    const png = document.createElement('button');
    png.type = 'button'; png.className = 'export-png'; png.textContent = t('chart.png');
    png.onclick = async () => download(`${stem}.png`, await toPng(svg));
    bar.append(csv, png);
    fig.append(svg, bar);
    container.append(fig);
  }
}
