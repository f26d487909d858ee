// The page's only way to data: the JSON API (/api/v1, docs/api.md) plus three small read-only
// routes of the dashboard's router (/ui/span, /ui/countries, /ui/regions/XX). Every answer is
// turned into one shape here, so views never see wire formats.
import { toTs } from './time.js';

const MAX_POINTS = 600; // about one point per 1.5 px of a 900 px chart

export function ref(type, code) { return { type, code, key: `${type}/${code}` }; }

// Answers are reused for FRESH_MS: switching language or chart mode re-renders a view without
// asking again, while a store that `netvigil run` feeds (one bin every few minutes) still
// shows new data on the next view after that.
const FRESH_MS = 30_000;
const answers = new Map();

async function fetchJson(address) {
  const resp = await fetch(address);
  const body = await resp.json();
  if (!resp.ok) throw new Error((body.error && body.error.message) || `${resp.status} ${address}`);
  return body;
}

function get(path, params = {}) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== null && v !== undefined && v !== '') q.set(k, v);
  const address = `${path}${q.toString() ? `?${q}` : ''}`;
  const now = Date.now();
  const kept = answers.get(address);
  if (kept && now - kept.at < FRESH_MS) return kept.body;
  const body = fetchJson(address);
  answers.set(address, { at: now, body });
  body.catch(() => answers.delete(address));
  return body;
}

function countryOf(ent) {
  if (ent.type === 'country') return ent.code;
  if (ent.type === 'region') return ent.code.split('-')[0];
  return null;
}

function event(raw) {
  const ent = ref(raw.entity_type, raw.entity_code);
  const sev = raw.severity || {};
  return {
    id: raw.id, entity: ent, name: raw.entity_name, country: countryOf(ent),
    start: toTs(raw.start), end: toTs(raw.end), kind: raw.kind, scope: raw.scope,
    status: raw.status, confidence: raw.confidence, rules: raw.rules || [],
    severity: sev.id || 'severity.none',
    ratio: sev.connectivity_ratio ?? null,
    signals: (raw.signals || []).map((s) => ({
      signal: s.signal, start: toTs(s.start), end: toTs(s.end), minRatio: s.min_ratio,
      level: s.worst_level,
    })),
  };
}

export async function span() {
  return get('/ui/span');
}

export async function countries(from, until) {
  return (await get('/ui/countries', { from, until })).countries;
}

export async function regions(country) {
  return (await get(`/ui/regions/${encodeURIComponent(country)}`)).regions
    .map((r) => ({ ...ref('region', r.code), name: r.name }));
}

// filters: {from, until, entity, entityType, kind, scope}
export async function events({ from, until, entity = null, entityType = null, kind = '', scope = '' }) {
  const body = await get('/api/v1/events', {
    from, until, kind, scope,
    entity_type: entity ? entity.type : entityType,
    entity_code: entity ? entity.code : null,
  });
  return body.events.map(event);
}

// One event by id: first within the given range (a permalink carries it), else anywhere.
export async function eventById(id, from, until) {
  let found = (await events({ from, until })).find((e) => e.id === id);
  if (!found) found = (await events({})).find((e) => e.id === id);
  if (found && !found.country) found.country = (await entity(found.entity)).parent?.code || null;
  return found || null;
}

export async function entity(ent) {
  const body = await get(`/api/v1/entities/${ent.type}/${encodeURIComponent(ent.code)}`);
  const parentKey = body.entity.parent;
  const parent = parentKey ? ref(...parentKey.split('/')) : null;
  let name = body.entity.name;
  if (!name && ent.type === 'region') {
    name = ((await regions(countryOf(ent))).find((r) => r.code === ent.code) || {}).name || '';
  }
  return {
    name, parent,
    asns: (body.asns || []).map((a) => ({ ...ref('asn', a.code), name: a.name })),
  };
}

// -> [{signal, points: [[ts, value|null]]}]; normalised values as ratios (1 = ordinary)
export async function signals(ent, from, until, normalised) {
  const body = await get(`/api/v1/signals/${ent.type}/${encodeURIComponent(ent.code)}`, {
    from, until, max_points: MAX_POINTS, normalise: normalised ? 'true' : 'false',
  });
  // connectivity first (probing, then the rest), platform tests last: the reading order of a report
  const rank = (name) => (name === 'probing' ? 0 : name.startsWith('platform:') ? 2 : 1);
  const ordered = [...body.series].sort((x, y) => rank(x.signal) - rank(y.signal) || x.signal.localeCompare(y.signal));
  return ordered.map((s) => {
    const t0 = toTs(s.from);
    return {
      signal: s.signal,
      points: s.values.map((v, i) => [t0 + i * s.step, v === null ? null : (normalised ? v / 100 : v)]),
    };
  });
}
