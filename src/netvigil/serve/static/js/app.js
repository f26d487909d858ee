// The dashboard: views chosen by the URL fragment (url.js), data from the JSON API (api.js),
// every visible word from the message catalogues (i18n.js). Elements with class "v" hold
// data (names, codes, times, numbers), everything else is catalogue text.
import * as api from './api.js';
import { renderCharts } from './chart.js';
import { drawMap, geoFeatures, topoFeatures } from './geo.js';
import * as i18n from './i18n.js';
import { legend, level, worst } from './severity.js';
import { fmtDuration, inputValue, isoMinute, timeEl, toTs } from './time.js';
import * as url from './url.js';

const { t, plural } = i18n;
const DEFAULT_SPAN = 14 * 86400; // without from/until: the last 14 days the store holds
const PRESETS = { all: null, '7d': 7 * 86400, '1d': 86400 };
const view = () => document.getElementById('view');
const cache = {};

// ---- small DOM helpers -------------------------------------------------------------------
function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') node.className = v;
    else if (k === 'text') node.textContent = v;
    else if (k.startsWith('on')) node[k] = v;
    else node.setAttribute(k, v);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}
const val = (text) => h('span', { class: 'v', text: String(text) });
const a = (href, ...children) => h('a', { href }, ...children);

function countryName(code) {
  try {
    return new Intl.DisplayNames([i18n.current()], { type: 'region' }).of(code) || code;
  } catch { return code; }
}

export function entityLabel(ent, name) {
  if (ent.type === 'country') return countryName(ent.code);
  if (ent.type === 'asn') return `AS${ent.code}${name ? ` ${name}` : ''}`;
  return name ? `${name} (${ent.code})` : ent.code;
}

function entityHref(ent) {
  return ent.type === 'country' ? url.link(['country', ent.code]) : url.link(['entity', ent.type, ent.code]);
}

function badge(l) {
  return h('span', { class: 'sev', style: `--c:${l.colour}`, 'data-level': l.id, text: t(l.id) });
}

const severityBadge = (e) => badge(level(e.severity));

function depth(e) {
  if (e.ratio === null) {
    const names = e.signals.filter((s) => s.signal.startsWith('platform:')).map((s) => s.signal.slice(9));
    return t('event.platforms', { signals: names.join(', ') });
  }
  return t('event.fell', { pct: Math.round(e.ratio * 100) });
}

// ---- the time range ---------------------------------------------------------------------
async function resolveRange(params) {
  const span = cache.span || (cache.span = await api.span());
  let until = toTs(params.get('until'));
  let from = toTs(params.get('from'));
  if (until === null) until = span.last ?? Math.floor(Date.now() / 1000);
  if (from === null) from = Math.max(span.first ?? until - DEFAULT_SPAN, until - DEFAULT_SPAN);
  if (from >= until) from = until - 3600;
  return { from, until, span };
}

function syncRangeForm(range) {
  document.getElementById('range-from').value = inputValue(range.from);
  document.getElementById('range-until').value = inputValue(range.until);
  document.getElementById('range-preset').value = '';
}

function wireHeader() {
  document.getElementById('range').onsubmit = (ev) => {
    ev.preventDefault();
    const from = toTs(document.getElementById('range-from').value);
    const until = toTs(document.getElementById('range-until').value);
    if (from !== null && until !== null && from < until) {
      url.update({ from: isoMinute(from), until: isoMinute(until) });
    }
  };
  document.getElementById('range-preset').onchange = (ev) => {
    const span = cache.span;
    if (!ev.target.value || !span) return;
    const len = PRESETS[ev.target.value];
    const until = span.last;
    const from = len === null ? span.first : until - len;
    url.update({ from: isoMinute(from), until: isoMinute(until) });
  };
  document.getElementById('lang').onchange = (ev) => url.update({ lang: ev.target.value });
  window.addEventListener('hashchange', render);
}

function rangeLine(range) {
  return h('p', { class: 'range-line' }, h('span', { text: t('range.showing') }), ' ',
    timeEl(range.from), ' – ', timeEl(range.until));
}

// ---- shared pieces ----------------------------------------------------------------------
function eventsTable(events, { showEntity = true } = {}) {
  if (!events.length) return h('p', { class: 'empty', text: t('events.none') });
  const head = h('tr', {}, ...[
    'events.col.start', 'events.col.end', showEntity ? 'events.col.entity' : null,
    'events.col.kind', 'events.col.scope', 'events.col.severity', 'events.col.depth',
    'events.col.duration', 'events.col.details',
  ].filter(Boolean).map((k) => h('th', { text: t(k) })));
  const rows = events.map((e) => h('tr', { 'data-event': e.id, 'data-entity': e.entity.key },
    h('td', {}, timeEl(e.start)),
    h('td', {}, e.end === null ? h('span', { text: t('event.ongoing') }) : timeEl(e.end)),
    showEntity ? h('td', {}, a(entityHref(e.entity), val(entityLabel(e.entity, e.name)))) : null,
    h('td', { text: t(`kind.${e.kind}`) }),
    h('td', { text: t(`scope.${e.scope}`) }),
    h('td', {}, severityBadge(e)),
    h('td', { text: depth(e) }),
    h('td', { text: e.end === null ? '' : fmtDuration(e.end - e.start) }),
    h('td', {}, a(url.link(['event', e.id]), h('span', { text: t('events.open') })))));
  return h('table', { class: 'events' }, h('thead', {}, head), h('tbody', {}, ...rows));
}

function normToggle(params) {
  const norm = params.get('norm') === '1';
  const mk = (on, key) => h('button', {
    type: 'button', class: `toggle${norm === on ? ' on' : ''}`, id: on ? 'norm-on' : 'norm-off',
    'aria-pressed': String(norm === on), text: t(key),
    onclick: () => url.update({ norm: on ? '1' : null }),
  });
  return h('div', { class: 'norm-toggle', role: 'group' },
    mk(false, 'chart.absolute'), mk(true, 'chart.normalised'));
}

async function chartsSection(ent, range, params, bands, stem) {
  const normalised = params.get('norm') === '1';
  const box = h('div', { class: 'charts', id: 'charts' });
  const section = h('section', {}, h('h2', { text: t('section.signals') }), normToggle(params),
    h('p', { class: 'note', text: normalised ? t('chart.normalised.note') : t('chart.absolute.note') }), box);
  const series = await api.signals(ent, range.from, range.until, normalised);
  renderCharts(box, series, { from: range.from, until: range.until, bands, normalised, stem });
  return section;
}

function legendEl() {
  return h('ul', { class: 'legend' }, ...legend().map((l) => h('li', {},
    h('span', { class: 'swatch', style: `background:${l.colour}` }), h('span', { text: t(l.id) }))));
}

async function json(path) {
  if (!cache[path]) cache[path] = fetch(path).then((r) => r.json());
  return cache[path];
}

// ---- views ------------------------------------------------------------------------------
async function homeView(range) {
  const [rows, national, topo] = await Promise.all([
    api.countries(range.from, range.until),
    api.events({ from: range.from, until: range.until, entityType: 'country' }),
    json('/ui/geo/world-110m.json'),
  ]);
  const byCountry = new Map(rows.map((r) => [r.code, r]));
  const features = topoFeatures(topo, 'countries').filter((f) => f.name !== 'Antarctica');
  const map = drawMap(features, {
    width: 960, height: 470,
    fill: (f) => level(byCountry.get(f.id)?.national?.id).colour,
    href: (f) => (byCountry.has(f.id) ? url.link(['country', f.id]) : null),
    title: (f) => `${f.id ? countryName(f.id) : f.name}: ${plural('count.events', byCountry.get(f.id)?.event_count || 0)}`,
  });
  map.id = 'world-map';
  map.setAttribute('role', 'img');
  map.setAttribute('aria-label', t('home.map.label'));
  for (const r of rows.filter((x) => x.ongoing)) {
    map.querySelectorAll(`a[data-code="${r.code}"] path`).forEach((p) => p.classList.add('now'));
  }
  const countries = h('table', { class: 'countries', id: 'countries' },
    h('thead', {}, h('tr', {}, ...['countries.col.country', 'countries.col.now', 'countries.col.worst',
      'countries.col.national', 'countries.col.events', 'countries.col.latest'].map((k) => h('th', { text: t(k) })))),
    h('tbody', {}, ...rows.map((r) => h('tr', { 'data-country': r.code },
      h('td', {}, a(url.link(['country', r.code]), val(countryName(r.code)), ' ', val(r.code))),
      h('td', {}, badge(level(r.ongoing?.id))),
      h('td', {}, badge(level(r.worst?.id))),
      h('td', {}, badge(level(r.national?.id))),
      h('td', {}, val(r.event_count)),
      h('td', {}, timeEl(toTs(r.latest_start)))))));
  national.sort((x, y) => y.start - x.start);
  return [
    h('h1', { text: t('home.title') }), rangeLine(range),
    h('p', { class: 'note', text: t('home.map.note') }),
    h('div', { class: 'map-box' }, map), legendEl(),
    h('h2', { text: t('home.countries') }),
    rows.length ? countries : h('p', { class: 'empty', text: t('home.nocountries') }),
    h('h2', { text: t('home.national') }), eventsTable(national.slice(0, 50)),
    h('p', {}, a(url.link(['events']), h('span', { text: t('home.allevents') }))),
  ];
}

async function countryView(range, params, code) {
  const ent = api.ref('country', code);
  const win = { from: range.from, until: range.until };
  const [own, regionEvents, asnEvents, info, regionList] = await Promise.all([
    api.events({ ...win, entity: ent }), api.events({ ...win, entityType: 'region' }),
    api.events({ ...win, entityType: 'asn' }), api.entity(ent), api.regions(code),
  ]);
  const asnCodes = new Set(info.asns.map((x) => x.code));
  const events = [...own, ...regionEvents.filter((e) => e.country === code),
    ...asnEvents.filter((e) => asnCodes.has(e.entity.code))];
  const byEntity = new Map();
  for (const e of events) {
    if (!byEntity.has(e.entity.key)) byEntity.set(e.entity.key, []);
    byEntity.get(e.entity.key).push(e);
  }
  const out = [
    h('p', { class: 'crumbs' }, a(url.link([]), h('span', { text: t('nav.map') }))),
    h('h1', {}, val(countryName(code)), ' ', val(code)), rangeLine(range),
    await chartsSection(ent, range, params, own, `netvigil_${code}`),
    h('h2', { text: t('section.events') }), eventsTable(own, { showEntity: false }),
    h('h2', { text: t('section.regions') }),
  ];
  const regionRows = regionList.map((r) => ({ ...r, list: byEntity.get(r.key) || [] }));
  if (code === 'KZ') {
    const fc = await json('/ui/geo/kz-adm1.json');
    const names = new Map(regionRows.map((r) => [r.code, r.name]));
    const regionMap = drawMap(geoFeatures(fc), {
      width: 760, height: 380,
      fill: (f) => worst(byEntity.get(api.ref('region', f.id).key) || []).colour,
      href: (f) => url.link(['entity', 'region', f.id]),
      title: (f) => `${names.get(f.id) || f.name} (${f.id}): ${plural('count.events', (byEntity.get(api.ref('region', f.id).key) || []).length)}`,
    });
    regionMap.id = 'region-map';
    regionMap.setAttribute('role', 'img');
    regionMap.setAttribute('aria-label', t('regions.map.label'));
    out.push(h('p', { class: 'note', text: t('regions.map.note') }), h('div', { class: 'map-box' }, regionMap), legendEl());
  }
  out.push(entityList(regionRows, 'regions'));
  out.push(h('h2', { text: t('section.networks') }));
  const nets = info.asns.map((r) => ({ ...r, list: byEntity.get(r.key) || [] }))
    .sort((x, y) => y.list.length - x.list.length || Number(x.code) - Number(y.code));
  const busy = nets.filter((r) => r.list.length);
  out.push(entityList(busy, 'networks'));
  if (nets.length > busy.length) {
    out.push(h('p', { class: 'note', text: plural('networks.quiet', nets.length - busy.length) }));
  }
  return out;
}

function entityList(rows, id) {
  if (!rows.length) return h('p', { class: 'empty', text: t('entities.none') });
  return h('table', { class: 'entities', id },
    h('thead', {}, h('tr', {}, ...['entities.col.entity', 'countries.col.worst', 'countries.col.events']
      .map((k) => h('th', { text: t(k) })))),
    h('tbody', {}, ...rows.map((r) => h('tr', { 'data-entity': r.key },
      h('td', {}, a(entityHref(r), val(entityLabel(r, r.name)))),
      h('td', {}, badge(worst(r.list))),
      h('td', {}, val(r.list.length))))));
}

async function entityView(range, params, type, code) {
  const ent = api.ref(type, code);
  const [info, events] = await Promise.all([
    api.entity(ent), api.events({ from: range.from, until: range.until, entity: ent }),
  ]);
  const country = type === 'region' ? code.split('-')[0] : info.parent && info.parent.code;
  return [
    h('p', { class: 'crumbs' }, a(url.link([]), h('span', { text: t('nav.map') })),
      country ? ' › ' : null, country ? a(url.link(['country', country]), val(countryName(country))) : null),
    h('h1', {}, val(entityLabel(ent, info.name))),
    h('p', { text: t(`entity.type.${type}`) }), rangeLine(range),
    h('h2', { text: t('section.events') }), eventsTable(events, { showEntity: false }),
    await chartsSection(ent, range, params, events, `netvigil_${type}_${code}`),
  ];
}

// The same filters as the table, as the API's CSV (one serializer: netvigil events --format csv).
function eventsCsvHref(range, kind, scope) {
  const q = new URLSearchParams({ format: 'csv', from: range.from, until: range.until });
  if (kind) q.set('kind', kind);
  if (scope) q.set('scope', scope);
  return `/api/v1/events?${q}`;
}

async function eventsView(range, params) {
  const kind = params.get('kind') || '';
  const scope = params.get('scope') || '';
  const events = (await api.events({ from: range.from, until: range.until, kind, scope }))
    .sort((x, y) => x.start - y.start);
  const select = (name, options, current) => h('label', {}, h('span', { text: t(`filter.${name}`) }), ' ',
    h('select', { id: `filter-${name}`, onchange: (ev) => url.update({ [name]: ev.target.value }) },
      ...['', ...options].map((o) => {
        const opt = h('option', { value: o, text: o ? t(`${name}.${o}`) : t('filter.any') });
        if (o === current) opt.selected = true;
        return opt;
      })));
  return [
    h('h1', { text: t('events.title') }), rangeLine(range),
    h('div', { class: 'filters' },
      select('kind', ['outage', 'routing', 'platform-block', 'degradation'], kind),
      select('scope', ['national', 'regional', 'network'], scope)),
    h('p', {}, h('span', { text: plural('count.events', events.length) }), ' ',
      h('a', { id: 'events-csv', href: eventsCsvHref(range, kind, scope), download: 'netvigil_events.csv', text: t('events.csv') })),
    eventsTable(events),
  ];
}

async function eventView(range, params, id) {
  const e = await api.eventById(id, range.from, range.until);
  if (!e) return [h('h1', { text: t('event.missing') }), h('p', {}, val(id))];
  const pad = Math.max(86400, ((e.end ?? range.until) - e.start) / 2);
  const around = { from: e.start - pad, until: (e.end ?? e.start) + pad };
  const country = e.country;
  const facts = [
    ['event.entity', a(entityHref(e.entity), val(entityLabel(e.entity, e.name)))],
    ['events.col.kind', h('span', { text: t(`kind.${e.kind}`) })],
    ['events.col.scope', h('span', { text: t(`scope.${e.scope}`) })],
    ['events.col.severity', severityBadge(e)],
    ['events.col.depth', h('span', { text: depth(e) })],
    ['events.col.start', timeEl(e.start)],
    ['events.col.end', e.end === null ? h('span', { text: t('event.ongoing') }) : timeEl(e.end)],
    ['events.col.duration', h('span', { text: e.end === null ? '' : fmtDuration(e.end - e.start) })],
    ['event.confidence', val(`${Math.round(e.confidence * 100)}%`)],
    ['event.rules', val(e.rules.join(', '))],
    ['event.id', val(e.id)],
  ];
  const evidence = h('table', { class: 'evidence' },
    h('thead', {}, h('tr', {}, ...['evidence.signal', 'evidence.start', 'evidence.end', 'evidence.depth', 'evidence.level']
      .map((k) => h('th', { text: t(k) })))),
    h('tbody', {}, ...e.signals.map((s) => h('tr', {},
      h('td', {}, val(s.signal)), h('td', {}, timeEl(s.start)),
      h('td', {}, s.end === null ? h('span', { text: t('event.ongoing') }) : timeEl(s.end)),
      h('td', { text: t('event.fell', { pct: Math.round(s.minRatio * 100) }) }),
      h('td', { text: t(`level.${s.level}`) })))));
  return [
    h('p', { class: 'crumbs' }, a(url.link([]), h('span', { text: t('nav.map') })),
      country ? ' › ' : null, country ? a(url.link(['country', country]), val(countryName(country))) : null,
      ' › ', a(url.link(['events']), h('span', { text: t('nav.events') }))),
    h('h1', {}, h('span', { text: t(`kind.${e.kind}`) }), ': ', val(entityLabel(e.entity, e.name))),
    h('dl', { class: 'facts' }, ...facts.flatMap(([k, v]) => [h('dt', { text: t(k) }), h('dd', {}, v)])),
    h('h2', { text: t('section.evidence') }), evidence,
    await chartsSection(e.entity, around, params, [e], `netvigil_event_${e.id}`),
  ];
}

// ---- dispatch ---------------------------------------------------------------------------
// Renders may overlap (a click while a view loads): only the newest one may fill the page.
// main[data-hash] names the address the shown view belongs to (tests wait on it).
let generation = 0;

async function render() {
  const mine = ++generation;
  const hash = location.hash;
  const { parts, params } = url.parse();
  const lang = params.get('lang') || localStorage.getItem('netvigil.lang') || 'en';
  if (lang !== i18n.current() || !cache.i18n) {
    await i18n.load(lang);
    cache.i18n = true;
    localStorage.setItem('netvigil.lang', i18n.current());
  }
  i18n.applyStatic();
  document.title = t('app.title');
  document.getElementById('lang').value = i18n.current();
  const main = view();
  main.setAttribute('aria-busy', 'true');
  try {
    const range = await resolveRange(params);
    syncRangeForm(range);
    const [name, ...args] = parts;
    let content;
    if (name === 'country' && args[0]) content = await countryView(range, params, args[0].toUpperCase());
    else if (name === 'entity' && args.length === 2) content = await entityView(range, params, args[0], args[1]);
    else if (name === 'events') content = await eventsView(range, params);
    else if (name === 'event' && args[0]) content = await eventView(range, params, args[0]);
    else content = await homeView(range);
    if (mine !== generation) return;
    main.replaceChildren(...content);
    main.dataset.view = name || 'home';
  } catch (err) {
    if (mine !== generation) return;
    console.error(err);
    main.replaceChildren(h('h1', { text: t('error.title') }), h('p', {}, val(err.message)));
    main.dataset.view = 'error';
  }
  main.dataset.hash = hash;
  main.setAttribute('aria-busy', 'false');
}

wireHeader();
render();
