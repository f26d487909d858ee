// Message catalogues: static/i18n/<lang>.json, flat keys, {name} placeholders, plural forms as
// key.one / key.few / key.many / key.other chosen by Intl.PluralRules (Russian needs all four).
// A language is added by adding its catalogue and its code to LANGS.
export const LANGS = ['en', 'ru'];
let messages = {};
let lang = 'en';

export async function load(wanted) {
  const code = LANGS.includes(wanted) ? wanted : 'en';
  const resp = await fetch(`/ui/i18n/${code}.json`);
  messages = await resp.json();
  lang = code;
  document.documentElement.lang = code;
}

export function current() { return lang; }

export function t(key, vars = {}) {
  const text = messages[key];
  if (text === undefined) {
    console.warn(`netvigil: no message ${key} in ${lang}`);
    return key;
  }
  return text.replace(/\{(\w+)\}/g, (_, k) => (vars[k] ?? '').toString());
}

export function plural(key, n, vars = {}) {
  const form = new Intl.PluralRules(lang).select(n);
  const k = messages[`${key}.${form}`] !== undefined ? `${key}.${form}` : `${key}.other`;
  return t(k, { n, ...vars });
}

export function applyStatic(root = document) {
  root.querySelectorAll('[data-i18n]').forEach((el) => { el.textContent = t(el.dataset.i18n); });
}
