// The feature atlas (docs/atlas.md): what each feature means, as a card. An atlas comes from a
// URL (?atlas=URL, or atlas/layer_N/ beside the page for the hub's default SAE of layer N when
// one is published there), a dropped zip, the seed explorer's top examples (its features JSON,
// read as atlases of its SAE), or is built here over proteins on this device; a built one is
// kept in the Cache API for the model, SAE and layer it was built on. One atlas per layer is
// open at a time. Everything from an atlas is shown as text.

import { CAPS, checkSize, fetchCapped, linkUrl, parseJson } from '../hosts.js';
import { fetchCached } from '../loader.js';
import { uniprotSearch } from './analysis.js';
import { download } from '../download.js';

const $ = (id) => document.getElementById(id);
const el = (tag, text, cls) => Object.assign(document.createElement(tag), { textContent: text ?? '', className: cls ?? '' });
const SVG = 'http://www.w3.org/2000/svg';
const SCHEMA = 'plmscope-atlas/1';
const CACHE = 'plmscope-atlases-v1';
const STEP = 4; // proteins a build step: a step answers within a second or so on the CPU build

/** Where a built atlas is kept: one per model, SAE and layer. */
const cacheKey = (model, sae, layer) => new URL(`plmscope-atlas/${model}/${sae}/${layer}.zip`, location.origin).href;

export function createAtlas({ engine, current, openSequence, onFeature, seedFeatures }) {
  const atlases = new Map(); // layer → { name, manifest, block(b) → Promise<block>, zip? }
  const here = () => atlases.get(current().layer) ?? null;
  let building = false;
  let linked = false; // the ?atlas= link is opened once
  let cancelWanted = false;
  const say = (text) => { $('atlas-status').textContent = text; };
  const error = (e) => { $('atlas-error').textContent = e ? e.message ?? String(e) : ''; };

  /** Opens an atlas whose files `read(path)` gives as parsed JSON; `quiet` keeps the card as it is. */
  async function open(name, read, zip, quiet) {
    const manifest = await read('manifest.json');
    if (manifest?.schema !== SCHEMA) throw new Error(`${name}: manifest.json is not a ${SCHEMA} manifest`);
    const blocks = new Map();
    const block = (b) => {
      if (!blocks.has(b)) blocks.set(b, read(`blocks/${String(b).padStart(4, '0')}.json`));
      return blocks.get(b);
    };
    atlases.set(manifest.subject.layer, { name, manifest, block, zip });
    if (!quiet) await show();
  }

  const fromFiles = (name, files, zip, quiet) => open(name, async (path) => {
    if (!(path in files)) throw new Error(`${name} has no ${path}`);
    return JSON.parse(files[path]);
  }, zip, quiet);

  /** What the open atlases are, the viewer's layer's first. */
  function describe() {
    const a = here();
    const others = [...atlases.keys()].filter((l) => l !== current().layer);
    const more = others.length ? ` (atlases of layer${others.length > 1 ? 's' : ''} ${others.join(', ')} are open too)` : '';
    if (!a) { say(atlases.size ? `No atlas of layer ${current().layer} is open${more}.` : ''); return; }
    const m = a.manifest, s = m.subject;
    const what = m.features
      ? `the top examples of ${m.features.length} features of ${s.sae.name} (${s.model.name}), without corpus counts`
      : `${s.dSae} features over ${m.proteins} proteins (${s.corpus.name}); ${m.dead.length} never fire${m.concepts?.length ? `; ${m.concepts.length} concepts` : ''}`;
    say(`Atlas: ${a.name} — layer ${s.layer}, ${what}${more}`);
    $('atlas-save').disabled = !a.zip;
    $('atlas-concepts').replaceChildren(...(m.concepts ?? []).map((c) => Object.assign(document.createElement('option'), { value: c.name })));
  }

  /** The seed explorer's features files (beside its graphs) as atlases, one per layer. */
  async function fromSeed() {
    const found = [];
    for (const [name, fetchFile] of seedFeatures()) {
      const text = new TextDecoder().decode((await fetchFile()).bytes);
      const { result } = await engine.request('atlas-open-explorer', { name, text });
      for (const [layer, files] of result) {
        // The TM file's atlas of a layer is kept over the SP file's: one atlas per layer.
        if (found.includes(layer)) continue;
        await fromFiles(`the seed explorer's ${name}`, files.files, files.zip, true);
        found.push(layer);
      }
    }
    return found;
  }

  async function fromUrl(base) {
    const url = new URL(base.replace(/\/?$/, '/'));
    await open(url.href, async (path) => parseJson(await fetchCapped(new URL(path, url), { name: path, cap: CAPS.json }), path));
  }

  async function fromZip(name, bytes) {
    const { result } = await engine.request('atlas-open-zip', { bytes });
    await fromFiles(name, result.files, bytes);
  }

  /** The card of the viewer's feature, or why there is none. */
  async function show() {
    const { layer, feature, sae } = current();
    const card = $('atlas-card');
    describe();
    const atlas = here();
    if (!atlas) {
      card.replaceChildren(el('p', `No atlas of layer ${layer} is open. Drop an atlas zip, open a link with ?atlas=URL, open the seed explorer's examples, or build one below over proteins of your own.`, 'muted'));
      return;
    }
    const m = atlas.manifest;
    $('atlas-go').value = feature ?? '';
    if (feature === null) { card.replaceChildren(el('p', 'Select a feature to see its card.', 'muted')); return; }
    const index = m.features ? m.features.indexOf(feature) : feature;
    if (m.features && index < 0) {
      const some = m.features.slice(0, 12).join(', ') + (m.features.length > 12 ? ', …' : '');
      card.replaceChildren(el('p', `The atlas holds the examples of ${m.features.length} features of layer ${m.subject.layer} only (${some}).`, 'muted'));
      return;
    }
    if (!(feature >= 0 && feature < m.subject.dSae)) { card.replaceChildren(el('p', `The atlas has features 0–${m.subject.dSae - 1}.`, 'muted')); return; }
    try {
      const b = Math.floor(index / m.blockSize);
      const block = await atlas.block(b);
      const c = block.features.find((x) => x.feature === feature);
      if (!c) throw new Error(`block ${b} does not hold feature ${feature}`);
      const parts = [summary(c, m)];
      if (m.features) parts.unshift(el('p', `These are the seed explorer's own top examples for its SAE (${m.subject.model.name}); the SAE loaded here at layer ${layer} numbers its features differently.`, 'note'));
      else if (sae && sae !== m.subject.sae.sha256) parts.unshift(el('p', `This atlas is of another SAE (${m.subject.sae.name}) than the one loaded at layer ${layer}: its numbers name other features here.`, 'note'));
      if (c.residueHist) parts.push(histogram(c, m));
      parts.push(concepts(c, m));
      parts.push(effect(c, m));
      if (c.top.some((e) => e.mask || e.behavior)) parts.push(legend());
      parts.push(examples('Top proteins', c.top, c, block.proteins));
      for (const q of c.quantiles) {
        if (q.examples.length) parts.push(examples(`${q.from.toFixed(1)}–${q.to.toFixed(1)} of its max`, q.examples, c, block.proteins));
      }
      card.replaceChildren(...parts);
    } catch (e) {
      card.replaceChildren(el('p', `${atlas.name}: ${e.message}`, 'error'));
    }
  }

  function summary(c, m) {
    const pct = (x) => `${Number((100 * x).toPrecision(2))}%`;
    const best = c.concepts?.[0];
    const concept = best ? `; best concept ${best.concept} (F1 ${best.f1.toFixed(2)})` : '';
    let text;
    if (c.activeProteins === undefined) text = `Feature ${c.feature}: ${c.top.length} top examples; max ${c.max.toPrecision(3)}`;
    else if (c.activeProteins === 0) text = `Feature ${c.feature} never fires on the ${m.proteins} proteins of this atlas.`;
    else text = `Feature ${c.feature}: fires on ${pct(c.residueFrequency)} of residues and ${pct(c.proteinFrequency)} of proteins; max ${c.max.toPrecision(3)}${concept}`;
    return el('h4', text);
  }

  /** Its best concepts in the corpus's annotations, as a table. */
  function concepts(c, m) {
    if (!m.concepts?.length) return el('p');
    if (!c.concepts?.length) return el('p', `It matches none of the corpus's ${m.concepts.length} annotated concepts.`, 'muted');
    const table = el('table', '', 'atlas-concepts');
    const head = el('tr');
    ['concept', 'F1', 'precision', 'recall', 'at', 'R²'].forEach((h) => head.append(el('th', h)));
    table.append(el('caption', m.conceptNote, 'muted'), head);
    for (const s of c.concepts) {
      const row = el('tr');
      [s.concept, s.f1.toFixed(3), s.precision.toFixed(3), s.recall.toFixed(3), `${s.threshold} × max`, s.logisticR2.toFixed(3)].forEach((v) => row.append(el('td', v)));
      table.append(row);
    }
    return table;
  }

  /** The seed explorer's legend for its sequence viewer. */
  function legend() {
    const p = el('p', '', 'atlas-legend');
    p.append(el('span', 'behavior', 'behavior'), el('span', 'feature mask', 'mask'), el('span', 'both', 'mask behavior'), el('span', 'top position', 'fires top'));
    return p;
  }

  /** The nonzero activations by log-spaced bin, as bars (counts on a log scale). */
  function histogram(c, m) {
    const h = m.histogram;
    const used = c.residueHist.map((n, b) => [n, b]).filter(([n]) => n > 0);
    const figure = el('figure');
    if (!used.length) return figure;
    const [lo, hi] = [used[0][1], used.at(-1)[1]];
    const w = 360, ht = 80, n = hi - lo + 1, bw = w / n;
    const top = Math.log10(1 + Math.max(...c.residueHist));
    const svg = document.createElementNS(SVG, 'svg');
    svg.setAttribute('viewBox', `0 0 ${w} ${ht + 14}`);
    svg.setAttribute('class', 'atlas-hist');
    svg.setAttribute('role', 'img');
    const edge = (b) => 10 ** (h.lowestDecade + (b - 1) / h.binsPerDecade);
    svg.setAttribute('aria-label', `activations from ${edge(lo).toPrecision(2)} to ${edge(hi + 1).toPrecision(2)}`);
    for (let b = lo; b <= hi; b++) {
      const r = document.createElementNS(SVG, 'rect');
      const y = (ht * Math.log10(1 + c.residueHist[b])) / top;
      Object.entries({ x: (b - lo) * bw, y: ht - y, width: Math.max(bw - 1, 1), height: y }).forEach(([k, v]) => r.setAttribute(k, v));
      const t = document.createElementNS(SVG, 'title');
      t.textContent = `${edge(b).toPrecision(2)}–${edge(b + 1).toPrecision(2)}: ${c.residueHist[b]} residues`;
      r.append(t);
      svg.append(r);
    }
    for (const [b, anchor] of [[lo, 'start'], [hi + 1, 'end']]) {
      const t = document.createElementNS(SVG, 'text');
      Object.entries({ x: b === lo ? 0 : w, y: ht + 12, 'text-anchor': anchor }).forEach(([k, v]) => t.setAttribute(k, v));
      t.textContent = edge(b).toPrecision(2);
      svg.append(t);
    }
    figure.append(svg, el('figcaption', `Its ${c.activeResidues} nonzero activations by size (log-spaced bins; counts on a log scale)`, 'muted'));
    return figure;
  }

  function effect(c) {
    if (!c.effect) return el('p');
    const list = (xs) => xs.map(([aa, d]) => `${aa} ${d >= 0 ? '+' : ''}${d.toFixed(3)}`).join(', ') || 'none';
    return el('p', `Direct effect on the predictions (Δ log p; the direct path only, without the layers after this one): promotes ${list(c.effect.promotes)}; suppresses ${list(c.effect.suppresses)}`);
  }

  /** Example proteins as sequences, the residues where the feature fires shaded by its value. */
  function examples(title, list, c, proteins) {
    const section = el('div', '', 'atlas-examples');
    section.append(el('h5', title));
    for (const e of list) {
      const p = proteins[e.protein];
      if (!p) continue;
      const row = el('div', '', 'atlas-example');
      const acts = new Map(e.acts.map(([r, q]) => [r, q]));
      const peak = e.acts.reduce((best, a) => (a[1] > best[1] ? a : best), [0, 0])[0];
      const within = (segments, i) => (segments ?? []).some(([a, b]) => a <= i && i <= b);
      const seq = el('span', '', 'atlas-seq');
      [...p.sequence].forEach((aa, i) => {
        const s = el('span', aa);
        const q = acts.get(i);
        const marks = [within(e.mask, i) && 'mask', within(e.behavior, i) && 'behavior'].filter(Boolean);
        // The explorer's examples shade by mask and behavior and mark their top positions;
        // an atlas built here shades every active residue by its value.
        if (q !== undefined && !e.mask) {
          s.className = i === peak ? 'fires top' : 'fires';
          s.style.setProperty('--q', String(q / 255));
        } else {
          s.className = [...marks, i === peak && q !== undefined ? 'fires top' : ''].join(' ').trim();
        }
        const value = q !== undefined ? `: ${((q / 255) * c.max).toPrecision(3)}` : '';
        if (q !== undefined || marks.length) s.title = `${i + 1} ${aa}${value}${marks.length ? ` (${marks.join(', ')})` : ''}`;
        seq.append(s);
      });
      const go = el('button', 'open');
      go.type = 'button';
      go.title = `Run ${p.id} in the viewer`;
      go.onclick = () => openSequence(`>${p.id}\n${p.sequence}\n`, c.feature);
      row.append(el('span', `${p.id} · max ${e.max.toPrecision(3)}`, 'atlas-id'), go, seq);
      section.append(row);
    }
    return section;
  }

  async function corpus() {
    const from = $('atlas-source').value;
    const max = Number($('atlas-max').value) || 50;
    if (from === 'input') return { text: $('sequence').value, description: 'the proteins in the input box' };
    if (from === 'file') {
      const file = $('atlas-file').files[0];
      if (!file) throw new Error('choose a FASTA or UniProt JSON file');
      return { text: await checkSize(file, CAPS.json).text(), description: file.name };
    }
    const query = $('atlas-query').value.trim();
    if (!query) throw new Error('type a UniProt query, e.g. reviewed:true AND length:[50 TO 300]');
    const bytes = await fetchCached(uniprotSearch(query, max), { name: 'UniProt\'s answer', cap: CAPS.json, onProgress: (l) => say(`Fetching from UniProt: ${(l / 1e3).toFixed(0)} kB`) });
    return { text: new TextDecoder().decode(bytes), description: `UniProt: ${query}` };
  }

  async function build() {
    error();
    const { layer, model, sae } = current();
    building = true;
    cancelWanted = false;
    $('atlas-build').disabled = true;
    $('atlas-cancel').disabled = false;
    const bar = $('atlas-progress');
    try {
      const { text, description } = await corpus();
      const t0 = performance.now();
      let { result: p } = await engine.request('atlas-start', { corpus: text, request: { layer, description, shard: [0, 1] } });
      bar.hidden = false;
      bar.max = Math.max(p.total, 1);
      const skipped = p.skipped.length ? ` (skipped ${p.skipped.length}: ${p.skipped.slice(0, 2).join('; ')})` : '';
      while (p.done < p.total) {
        if (cancelWanted) throw new Error(`cancelled after ${p.done} of ${p.total} proteins`);
        ({ result: p } = await engine.request('atlas-step', { n: STEP }));
        bar.value = p.done;
        say(`Building the atlas of layer ${layer}: ${p.done} of ${p.total} proteins${skipped}`);
      }
      const { result } = await engine.request('atlas-finish', {});
      if ('caches' in self) {
        const cache = await caches.open(CACHE).catch(() => null);
        await cache?.put(cacheKey(model, sae, layer), new Response(result.zip)).catch(() => {});
      }
      await fromFiles(`built here over ${description}`, result.files, result.zip);
      const seconds = (performance.now() - t0) / 1e3;
      say(`${$('atlas-status').textContent} · built in ${seconds.toFixed(1)} s (${(p.total / seconds).toFixed(1)} proteins/s)`);
    } catch (e) {
      error(e);
    } finally {
      building = false;
      bar.hidden = true;
      $('atlas-build').disabled = false;
      $('atlas-cancel').disabled = true;
    }
  }

  $('atlas-source').addEventListener('change', () => {
    $('atlas-file').hidden = $('atlas-source').value !== 'file';
    $('atlas-query').hidden = $('atlas-source').value !== 'uniprot';
  });
  $('atlas-build').addEventListener('click', build);
  $('atlas-cancel').addEventListener('click', () => { cancelWanted = true; });
  $('atlas-save').addEventListener('click', () => {
    const atlas = here();
    if (!atlas?.zip) return;
    download(`plmscope-atlas-layer${atlas.manifest.subject.layer}.zip`, new Blob([atlas.zip], { type: 'application/zip' }));
  });
  $('atlas-seed').addEventListener('click', async () => {
    error();
    $('atlas-seed').disabled = true;
    try {
      const layers = await fromSeed();
      await show();
      if (!layers.includes(current().layer)) say(`The seed explorer's examples are of layers ${layers.join(' and ')}: pick one of those, or a node of its graph.`);
    } catch (e) {
      error(new Error(`the seed explorer's examples: ${e.message}`));
    } finally {
      $('atlas-seed').disabled = false;
    }
  });
  $('atlas-drop').addEventListener('change', async (e) => {
    const file = e.target.files[0];
    if (!file) return;
    error();
    try {
      await fromZip(file.name, new Uint8Array(await checkSize(file, CAPS.weights).arrayBuffer()));
    } catch (err) {
      error(new Error(`${file.name}: ${err.message}`));
    }
  });
  // Through the features the atlas holds: every one, or the explorer's listed ones.
  const step = (d) => {
    const atlas = here();
    const f = current().feature;
    if (!atlas || f === null) return;
    const m = atlas.manifest;
    if (!m.features) { onFeature(Math.min(Math.max(0, f + d), m.subject.dSae - 1)); return; }
    const next = d > 0 ? m.features.find((x) => x > f) : m.features.findLast((x) => x < f);
    if (next !== undefined) onFeature(next);
  };
  // A concept by name (or part of one): its best features, as buttons. The input's own change on
  // blur (a click on one of those buttons) must not rebuild them under the click.
  let searched = null;
  $('atlas-concept').addEventListener('change', (e) => {
    const found = $('atlas-found');
    const query = e.target.value.trim().toLowerCase();
    if (query === searched) return;
    searched = query;
    const list = here()?.manifest.concepts ?? [];
    if (!query) { found.replaceChildren(); return; }
    const exact = list.filter((c) => c.name.toLowerCase() === query);
    const matches = exact.length ? exact : list.filter((c) => c.name.toLowerCase().includes(query)).slice(0, 5);
    if (!matches.length) {
      found.replaceChildren(el('p', list.length ? `No concept of this atlas matches "${e.target.value}".` : 'This atlas has no concepts: build one over UniProt JSON (with annotations) to get them.', 'muted'));
      return;
    }
    found.replaceChildren(...matches.map((c) => {
      const p = el('p', `${c.name} (${c.domains} domains, ${c.residues} residues): `);
      if (!c.features.length) p.append('no feature matches it.');
      for (const [f, f1] of c.features) {
        const b = el('button', `${f} · F1 ${f1.toFixed(2)}`);
        b.type = 'button';
        b.onclick = () => onFeature(f);
        p.append(b);
      }
      return p;
    }));
  });
  $('atlas-prev').addEventListener('click', () => step(-1));
  $('atlas-next').addEventListener('click', () => step(1));
  $('atlas-go').addEventListener('change', (e) => { if (e.target.value !== '') onFeature(Number(e.target.value)); });

  return {
    show,
    /** The atlas a link names, else a kept or published one for the SAE now at `layer`. */
    async find({ link, layer, model, sae, hubDefault }) {
      if (building) return;
      try {
        if (link !== null) {
          const url = linkUrl('atlas', link);
          if (url instanceof Error) throw url;
          if (!linked) { linked = true; await fromUrl(url.href); }
          return;
        }
        if (atlases.has(layer)) return;
        const cache = 'caches' in self ? await caches.open(CACHE).catch(() => null) : null;
        const kept = await cache?.match(cacheKey(model, sae, layer));
        if (kept) { await fromZip('built here before (from the cache)', new Uint8Array(await kept.arrayBuffer())); return; }
        if (hubDefault) await fromUrl(new URL(`atlas/layer_${layer}/`, document.baseURI).href).catch(() => {});
      } catch (e) {
        error(new Error(`atlas: ${e.message}`));
      } finally {
        await show();
      }
    },
  };
}
