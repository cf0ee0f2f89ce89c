// What the page shows, mirrored in the URL so that a view can be shared.
// ?model=650M&sae=interprot&precision=f16&seq=…&record=…&layer=…&f=…&edits=ablate:17;clamp:42=0.8@3-10&down=…&tool=atlas&weights=random

import { DEFAULT_MODEL, MODELS } from './loader.js';

export const state = {
  // An ESM-2 size of loader.js's MODELS (?model=).
  model: DEFAULT_MODEL,
  // One of that model's SAE sets (?sae=), null for its first.
  saeSet: null,
  // How a GPU holds the model's dense weights (?precision=): one of PRECISIONS.
  precision: 'auto',
  fasta: null,
  record: 0,
  layer: 3,
  feature: null,
  edits: [],
  downstream: null,
  tool: null,
};

/** The precisions the engine takes (src/session: Session::set_precision). */
export const PRECISIONS = ['auto', 'f32', 'f16'];

/** The tools that open beside the workspace, by their panel's id. */
export const TOOLS = ['atlas', 'analysis', 'design'];

export function editToText(e) {
  const op = e.op === 'ablate' ? `ablate:${e.feature}` : `${e.op}:${e.feature}=${e.value}`;
  return e.positions ? `${op}@${compactPositions(e.positions)}` : op;
}

// The edit grammar is Rust's (src/intervene.rs, Edit::from_str; src/analysis/generate.rs,
// parse_steer), mirrored here step by step so that the URL reads before the worker is up;
// tests/reference/edit_grammar.json holds the strings both are tested on.
const UNSIGNED = /^\+?\d{1,15}$/; // Rust's usize, within the integers a JS number holds exactly
const FLOAT = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/; // Rust's f32, less inf and NaN (refused anyway)

function splitOnce(text, sep) {
  const i = text.indexOf(sep);
  return i < 0 ? null : [text.slice(0, i), text.slice(i + sep.length)];
}

/** `ablate:17`, `clamp:42=0.8`, `scale:7=2.0`, each optionally with `@3-10,15`; throws on anything else. */
export function parseEdit(text) {
  const bad = () => new Error(`edit "${text}" is not one of ablate:F, clamp:F=VALUE, scale:F=FACTOR (optionally @RESIDUES, e.g. @3-10)`);
  const at = splitOnce(text, '@');
  const [body, positions] = at ? [at[0], parsePositions(at[1])] : [text, null];
  const parts = splitOnce(body, ':');
  if (!parts) throw bad();
  const eq = splitOnce(parts[1], '=');
  const [feature, value] = eq ? [eq[0].trim(), eq[1].trim()] : [parts[1].trim(), undefined];
  if (!UNSIGNED.test(feature) || (value !== undefined && !FLOAT.test(value))) throw bad();
  const op = parts[0].trim();
  if (!(op === 'ablate' ? value === undefined : (op === 'clamp' || op === 'scale') && value !== undefined)) throw bad();
  return { feature: Number(feature), op, value: value === undefined ? undefined : Number(value), positions };
}

/** The edit, or null where `parseEdit` throws (for the URL, where a bad part is dropped). */
export function editFromText(text) {
  try {
    return parseEdit(text);
  } catch {
    return null;
  }
}

/** The longest sequence ESM-2 reads: no residue lies past it (src/alphabet.rs MAX_RESIDUES). */
export const MAX_RESIDUES = 1022;

/** "3-5,9" → [3, 4, 5, 9] (1-based, inclusive, at most MAX_RESIDUES in all); throws on anything else. */
export function parsePositions(text) {
  const bad = () => new Error(`positions "${text}" are not residue numbers or ranges such as 3-10,15`);
  const residue = (t) => {
    if (!UNSIGNED.test(t) || Number(t) < 1 || Number(t) > MAX_RESIDUES) throw bad();
    return Number(t);
  };
  const out = [];
  for (const part of text.split(',').map((s) => s.trim())) {
    const range = splitOnce(part, '-');
    const [from, to] = range ? [residue(range[0].trim()), residue(range[1].trim())] : [residue(part), residue(part)];
    if (to < from || out.length + (to - from) >= MAX_RESIDUES) throw bad();
    for (let i = from; i <= to; i++) out.push(i);
  }
  return out;
}

/** "3:clamp:17=8 5:scale:3=2" → [{layer: 3, edits: […]}, {layer: 5, edits: […]}]; throws on a bad part. */
export function parseSteers(text) {
  const byLayer = new Map();
  for (const part of text.split(/[\s;]+/).filter(Boolean)) {
    let layer, edit;
    try {
      [layer, edit] = parseSteer(part);
    } catch {
      throw new Error(`"${part}" is not LAYER:EDIT, e.g. 3:clamp:17=8, 3:scale:5=2 or 3:ablate:9`);
    }
    if (!byLayer.has(layer)) byLayer.set(layer, []);
    byLayer.get(layer).push(edit);
  }
  return [...byLayer].sort(([a], [b]) => a - b).map(([layer, edits]) => ({ layer, edits }));
}

/** `LAYER:EDIT` → [layer, edit]; throws on anything else. */
export function parseSteer(text) {
  const parts = splitOnce(text, ':');
  if (!parts) throw new Error(`"${text}" is not LAYER:EDIT, e.g. 3:clamp:17=8, 3:scale:5=2 or 3:ablate:9`);
  if (!UNSIGNED.test(parts[0].trim())) throw new Error(`"${parts[0]}" is not a layer number`);
  return [Number(parts[0].trim()), parseEdit(parts[1])];
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

// Bounds on what a link may hold: a FASTA of a few long proteins, a layer of the deepest ESM-2 (48),
// a feature of any SAE, as many edits as anyone clicks. A value out of bounds is dropped.
const MAX_SEQ_PARAM = 100_000;
const MAX_LAYER = 48;
const MAX_EDITS = 256;

/** The integer `text` holds within min..=max, or null. */
function intIn(text, min, max) {
  if (text === null || !UNSIGNED.test(text.trim())) return null;
  const n = Number(text.trim());
  return n >= min && n <= max ? n : null;
}

export function readUrl() {
  const p = new URLSearchParams(location.search);
  // Own keys only: ?model=constructor is no model.
  if (Object.hasOwn(MODELS, p.get('model') ?? '')) state.model = p.get('model');
  if (MODELS[state.model].saes.some((s) => s.id === p.get('sae'))) state.saeSet = p.get('sae');
  if (PRECISIONS.includes(p.get('precision'))) state.precision = p.get('precision');
  if (p.has('seq') && p.get('seq').length <= MAX_SEQ_PARAM) state.fasta = p.get('seq');
  state.record = intIn(p.get('record'), 0, MAX_SEQ_PARAM) ?? 0;
  // Clamped to the model's layers once it has loaded.
  state.layer = intIn(p.get('layer'), 1, MAX_LAYER) ?? state.layer;
  state.feature = intIn(p.get('f'), 0, Number.MAX_SAFE_INTEGER);
  if (p.has('edits')) state.edits = p.get('edits').split(';', MAX_EDITS).map(editFromText).filter(Boolean);
  state.downstream = intIn(p.get('down'), 1, MAX_LAYER);
  state.tool = TOOLS.includes(p.get('tool')) ? p.get('tool') : null;
  return p;
}

export function writeUrl() {
  const p = new URLSearchParams(location.search);
  const set = (k, v) => (v === null || v === undefined || v === '' ? p.delete(k) : p.set(k, v));
  set('model', state.model === DEFAULT_MODEL ? null : state.model);
  set('sae', state.saeSet);
  set('precision', state.precision === 'auto' ? null : state.precision);
  set('seq', state.fasta);
  set('record', state.record || null);
  set('layer', state.layer);
  set('f', state.feature);
  set('edits', state.edits.map(editToText).join(';') || null);
  set('down', state.downstream);
  set('tool', state.tool);
  history.replaceState(null, '', `${location.pathname}?${p}`);
}
