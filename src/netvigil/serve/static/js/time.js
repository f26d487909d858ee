// Times: stored and sent as UTC; shown as UTC with the reader's local time beside it.
import { current, t } from './i18n.js';

export function toTs(value) {
  if (value === null || value === undefined || value === '') return null;
  if (typeof value === 'number') return value;
  if (/^-?\d+(\.\d+)?$/.test(value)) return Number(value);
  const text = /[zZ]|[+-]\d\d:?\d\d$/.test(value) ? value : `${value}Z`;
  const ms = Date.parse(text);
  return Number.isNaN(ms) ? null : Math.floor(ms / 1000);
}

const pad = (n) => String(n).padStart(2, '0');

// 2022-01-05T10:40Z: the URL's form (short, sortable, unambiguous).
export function isoMinute(ts) {
  const d = new Date(ts * 1000);
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}T`
    + `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}Z`;
}

export function inputValue(ts) { return isoMinute(ts).slice(0, 16); }

export function fmtUtc(ts) { return `${isoMinute(ts).slice(0, 16).replace('T', ' ')} UTC`; }

export function fmtLocal(ts) {
  return new Intl.DateTimeFormat(current(), {
    year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit',
    timeZoneName: 'short',
  }).format(new Date(ts * 1000));
}

export function timeEl(ts) {
  const el = document.createElement('time');
  if (ts === null) return el;
  el.dateTime = new Date(ts * 1000).toISOString();
  el.className = 'v';
  el.textContent = fmtUtc(ts);
  const local = document.createElement('span');
  local.className = 'local v';
  local.textContent = ` (${fmtLocal(ts)})`;
  el.append(local);
  return el;
}

export function fmtDuration(seconds) {
  const h = Math.floor(seconds / 3600);
  const m = Math.round((seconds % 3600) / 60);
  if (h >= 48) return t('duration.days', { d: (seconds / 86400).toFixed(1) });
  return t('duration.hm', { h, m: pad(m) });
}
