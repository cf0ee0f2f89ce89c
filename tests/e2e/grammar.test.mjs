// The page's edit grammar (www/state.js) against the cases Rust's parser is tested on
// (tests/reference/edit_grammar.json, read by tests/analysis.rs too): the same edits, the same refusals.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { editFromText, parseSteer } from '../../www/state.js';

const cases = JSON.parse(readFileSync(new URL('../reference/edit_grammar.json', import.meta.url), 'utf8'));

/** An edit as JSON writes it, `value` only where the op has one, numbers at f32 precision. */
const plain = (e) => e && JSON.parse(JSON.stringify({ ...e, value: e.value === undefined ? undefined : Math.fround(e.value) }));
const want = (e) => e && plain(e);

test('edits read as Rust reads them', () => {
  for (const [text, edit] of cases.edits) assert.deepEqual(plain(editFromText(text)), want(edit), text);
});

test('steers read as Rust reads them', () => {
  for (const [text, steer] of cases.steers) {
    let got = null;
    try { const [layer, edit] = parseSteer(text); got = [layer, plain(edit)]; } catch { got = null; }
    assert.deepEqual(got, steer && [steer[0], want(steer[1])], text);
  }
});
