// The feature atlas (docs/atlas.md): what each feature means, as a card. An atlas comes from a
// URL (?atlas=URL, or atlas/layer_N/ beside the page for the hub's default SAE of layer N when
// one is published there), a dropped zip, or is built here over proteins on this device; a
// built one is kept in the Cache API for the model, SAE and layer it was built on.
// Everything from an atlas is shown as text.

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

export function createAtlas({ engine, current, openSequence, onFeature }) {
  let atlas = null; // { name, manifest, block(b) → Promise<block>, zip? }
  let building = false;
  let cancelWanted = false;
  const say = (text) => { $('atlas-status').textContent = text; };
  const error = (e) => { $('atlas-error').textContent = e ? e.message ?? String(e) : ''; };

  /** Opens an atlas whose files `read(path)` gives as parsed JSON. */
  async function open(name, read, zip) {
    const manifest = await read('manifest.json');
    if (manifest?.schema !== SCHEMA) throw new Error(`${name}: manifest.json is not a ${SCHEMA} manifest`);
    const blocks = new Map();
    const block = (b) => {
      if (!blocks.has(b)) blocks.set(b, read(`blocks/${String(b).padStart(4, '0')}.json`));
      return blocks.get(b);
    };
    atlas = { name, manifest, block, zip };
    const s = manifest.subject;
    say(`Atlas: ${name} — layer ${s.layer}, ${s.dSae} features over ${manifest.proteins} proteins (${s.corpus.name}); ${manifest.dead.length} never fire`);
    $('atlas-save').disabled = !zip;
    await show();
  }

  const fromFiles = (name, files, zip) => open(name, async (path) => {
    if (!(path in files)) throw new Error(`${name} has no ${path}`);
    return JSON.parse(files[path]);
  }, zip);

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
    if (!atlas) {
      card.replaceChildren(el('p', 'No atlas is loaded. Drop an atlas zip, open a link with ?atlas=URL, or build one below over proteins of your own.', 'muted'));
      return;
    }
    const m = atlas.manifest;
    $('atlas-go').value = feature ?? '';
    if (feature === null) { card.replaceChildren(el('p', 'Select a feature to see its card.', 'muted')); return; }
    if (layer !== m.subject.layer) { card.replaceChildren(el('p', `The atlas is of layer ${m.subject.layer}; the viewer shows layer ${layer}.`, 'muted')); return; }
    if (!(feature >= 0 && feature < m.subject.dSae)) { card.replaceChildren(el('p', `The atlas has features 0–${m.subject.dSae - 1}.`, 'muted')); return; }
    try {
      const block = await atlas.block(Math.floor(feature / m.blockSize));
      const c = block.features[feature - block.first];
      if (c?.feature !== feature) throw new Error(`block ${Math.floor(feature / m.blockSize)} does not hold feature ${feature}`);
      const parts = [summary(c, m)];
      if (sae && sae !== m.subject.sae.sha256) parts.unshift(el('p', `This atlas is of another SAE (${m.subject.sae.name}) than the one loaded at layer ${layer}: its numbers name other features here.`, 'note'));
      parts.push(histogram(c, m));
      parts.push(effect(c, m));
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
    const text = c.activeProteins === 0
      ? `Feature ${c.feature} never fires on the ${m.proteins} proteins of this atlas.`
      : `Feature ${c.feature}: fires on ${pct(c.residueFrequency)} of residues and ${pct(c.proteinFrequency)} of proteins; max ${c.max.toPrecision(3)}`;
    return el('h4', text);
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
      const seq = el('span', '', 'atlas-seq');
      [...p.sequence].forEach((aa, i) => {
        const s = el('span', aa);
        const q = acts.get(i);
        if (q !== undefined) {
          s.className = i === peak ? 'fires top' : 'fires';
          s.style.setProperty('--q', String(q / 255));
          s.title = `${i + 1} ${aa}: ${((q / 255) * c.max).toPrecision(3)}`;
        }
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
    const m = atlas.manifest;
    download(`plmscope-atlas-layer${m.subject.layer}.zip`, new Blob([atlas.zip], { type: 'application/zip' }));
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
  const step = (d) => {
    const f = current().feature;
    if (atlas && f !== null) onFeature(Math.min(Math.max(0, f + d), atlas.manifest.subject.dSae - 1));
  };
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
          if (!atlas) await fromUrl(url.href);
          return;
        }
        if (atlas && atlas.manifest.subject.layer === layer) return;
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
