// What the page shows, mirrored in the URL so that a view can be shared.
// ?seq=…&record=…&layer=…&f=…&edits=ablate:17;clamp:42=0.8@3-10&down=…&weights=random

export const state = {
  fasta: null,
  record: 0,
  layer: 3,
  feature: null,
  edits: [],
  downstream: null,
};

export function editToText(e) {
  const op = e.op === 'ablate' ? `ablate:${e.feature}` : `${e.op}:${e.feature}=${e.value}`;
  return e.positions ? `${op}@${compactPositions(e.positions)}` : op;
}

export function editFromText(text) {
  const m = /^(ablate|clamp|scale):(\d+)(?:=(-?[0-9.]+))?(?:@([0-9,-]+))?$/.exec(text);
  if (!m) return null;
  return { feature: Number(m[2]), op: m[1], value: m[3] === undefined ? undefined : Number(m[3]), positions: m[4] ? parsePositions(m[4]) : null };
}

/** "3-5,9" → [3, 4, 5, 9]; throws on anything else. */
export function parsePositions(text) {
  const out = [];
  for (const part of text.split(',').map((s) => s.trim()).filter(Boolean)) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part);
    if (!m) throw new Error(`"${part}" is not a residue number or range such as 3-10`);
    const a = Number(m[1]);
    const b = m[2] ? Number(m[2]) : a;
    if (a < 1 || b < a) throw new Error(`"${part}" is not a range of residues (1-based, start ≤ end)`);
    for (let i = a; i <= b; i++) out.push(i);
  }
  return out.length ? out : null;
}

function compactPositions(ps) {
  const parts = [];
  for (let i = 0; i < ps.length; i++) {
    let j = i;
    while (j + 1 < ps.length && ps[j + 1] === ps[j] + 1) j++;
    parts.push(i === j ? `${ps[i]}` : `${ps[i]}-${ps[j]}`);
    i = j;
  }
  return parts.join(',');
}

export function readUrl() {
  const p = new URLSearchParams(location.search);
  if (p.has('seq')) state.fasta = p.get('seq');
  if (p.has('record')) state.record = Number(p.get('record')) || 0;
  if (p.has('layer')) state.layer = Math.min(6, Math.max(1, Number(p.get('layer')) || 3));
  if (p.has('f')) state.feature = Number(p.get('f'));
  if (p.has('edits')) state.edits = p.get('edits').split(';').map(editFromText).filter(Boolean);
  if (p.has('down')) state.downstream = Number(p.get('down')) || null;
  return p;
}

export function writeUrl() {
  const p = new URLSearchParams(location.search);
  const set = (k, v) => (v === null || v === undefined || v === '' ? p.delete(k) : p.set(k, v));
  set('seq', state.fasta);
  set('record', state.record || null);
  set('layer', state.layer);
  set('f', state.feature);
  set('edits', state.edits.map(editToText).join(';') || null);
  set('down', state.downstream);
  history.replaceState(null, '', `${location.pathname}?${p}`);
}
