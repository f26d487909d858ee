// The view's whole state lives in the URL fragment: #/<view>/<args>?from=..&until=..&norm=1&lang=ru
// so any address is a permalink and a reload restores the view (no server-side routes).
export function parse() {
  const raw = location.hash.replace(/^#/, '') || '/';
  const [path, query = ''] = raw.split('?');
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  return { parts, params: new URLSearchParams(query) };
}

export function build(parts, params) {
  const p = new URLSearchParams(params);
  for (const [k, v] of [...p.entries()]) if (v === '' || v === null) p.delete(k);
  const q = p.toString();
  return `#/${parts.map(encodeURIComponent).join('/')}${q ? `?${q}` : ''}`;
}

// A link to another view that keeps the shared state (range, language, normalisation).
export function link(parts, extra = {}) {
  const { params } = parse();
  const keep = new URLSearchParams();
  for (const k of ['from', 'until', 'lang', 'norm']) if (params.get(k)) keep.set(k, params.get(k));
  for (const [k, v] of Object.entries(extra)) keep.set(k, v);
  return build(parts, keep);
}

export function update(changes) {
  const { parts, params } = parse();
  for (const [k, v] of Object.entries(changes)) {
    if (v === null || v === undefined || v === '') params.delete(k); else params.set(k, v);
  }
  location.hash = build(parts, params);
}
