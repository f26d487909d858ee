// Colours for the API's readable severity (netvigil.serve.severity: ids and ranks live there;
// the dashboard only paints them). Listed worst first, in the API's rank order (5 .. 0).
export const LEVELS = [
  { id: 'severity.near-total', colour: '#67000d' },
  { id: 'severity.major', colour: '#cb181d' },
  { id: 'severity.platform-block', colour: '#6baed6' },
  { id: 'severity.partial', colour: '#fb6a4a' },
  { id: 'severity.minor', colour: '#fcbba1' },
  { id: 'severity.none', colour: '#d9dee2' },
];
const NONE = LEVELS[LEVELS.length - 1];

export function level(id) { return LEVELS.find((l) => l.id === id) || NONE; }

export function worst(events) {
  let best = NONE;
  for (const e of events) {
    const l = level(e.severity);
    if (LEVELS.indexOf(l) < LEVELS.indexOf(best)) best = l;
  }
  return best;
}

export function legend() { return LEVELS; }
