// Steered generation and SAE training: the page's side. The worker generates and trains; this
// module reads the controls, shows progress, the generated sequences and the training curves.

import { editToText, parseSteers } from '../state.js';
import { drawCurve } from './curves.js';
import { download } from '../download.js';
import { CAPS, checkSize } from '../hosts.js';

const $ = (id) => document.getElementById(id);
const el = (tag, text) => Object.assign(document.createElement(tag), { textContent: text ?? '' });
const CURVES = [
  ['curve-loss', 'loss', (m) => m.loss],
  ['curve-fve', 'variance explained', (m) => m.fractionVarianceExplained],
  ['curve-l0', 'L0', (m) => m.l0],
  ['curve-dead', 'dead fraction', (m) => m.deadFraction],
];

/** `n` random proteins of 100–300 residues from a seeded generator (the offline demo's data). */
function randomProteins(n, seed) {
  let s = seed >>> 0 || 1;
  const next = () => { s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0; return s / 2 ** 32; };
  const aa = 'ACDEFGHIKLMNPQRSTVWY';
  return Array.from({ length: n }, (_, i) => {
    const len = 100 + Math.floor(next() * 201);
    return `>random${i + 1}\n${Array.from({ length: len }, () => aa[Math.floor(next() * 20)]).join('')}\n`;
  }).join('');
}

export function createDesign({ engine, currentSteer, openSequence, onInstalled }) {
  let generated = [];
  let cancelWanted = false;
  let training = null; // {layer, total, batch, steps: [], metrics: [], ms: time spent stepping, pauseWanted}
  const error = (e) => { $('design-error').textContent = e ? e.message ?? String(e) : ''; };
  const num = (id) => Number($(id).value);

  // ------------------------------------------------------------------ generation
  $('gen-from-edits').addEventListener('click', () => {
    const { layer, edits } = currentSteer();
    $('gen-steers').value = edits.map((e) => `${layer}:${editToText({ ...e, positions: null })}`).join(' ');
  });

  $('gen-run').addEventListener('click', async () => {
    error();
    let steers;
    try {
      steers = parseSteers($('gen-steers').value);
    } catch (e) { error(e); return; }
    const options = {
      steers, start: $('gen-start').value.trim() || null, length: num('gen-length'), rounds: num('gen-rounds'),
      maskFraction: num('gen-mask'), temperature: num('gen-temperature'), topP: num('gen-top-p'), seed: num('gen-seed'),
    };
    $('gen-run').disabled = true;
    $('gen-cancel').disabled = false;
    cancelWanted = false;
    $('gen-status').textContent = 'Generating…';
    // One sample per request (steered and unsteered from its seed); a cancel is the next one not asked for.
    const samples = num('gen-samples');
    const bar = $('gen-progress');
    const t0 = performance.now();
    try {
      const out = [];
      for (let i = 0; i < samples; i++) {
        if (cancelWanted) throw new Error(`cancelled after ${i} of ${samples} samples`);
        out.push((await engine.request('generate', { options: { ...options, seed: options.seed + i } })).result);
        Object.assign(bar, { hidden: false, max: samples, value: i + 1 });
        $('gen-status').textContent = `Sample ${i + 1} of ${samples}`;
      }
      generated = out;
      $('gen-status').textContent = `${out.length} sequence${out.length === 1 ? '' : 's'}, each steered and unsteered from the same seed, in ${((performance.now() - t0) / 1000).toFixed(1)} s`;
      renderGenerated();
      $('gen-save').disabled = false;
    } catch (e) {
      $('gen-status').textContent = '';
      error(e);
    } finally {
      $('gen-run').disabled = false;
      $('gen-cancel').disabled = true;
      bar.hidden = true;
    }
  });
  $('gen-cancel').addEventListener('click', () => { cancelWanted = true; });
  $('gen-save').addEventListener('click', () => {
    const text = generated.map((g) => `>seed${g.seed} pll=${g.steered.pseudoLogLikelihood.toFixed(3)} ${activations(g.steered)}\n${g.steered.sequence}\n`).join('');
    download('plmscope-generated.fasta', new Blob([text], { type: 'text/plain' }));
  });

  const activations = (g) => g.steeredActivation.map(([l, f, a]) => `L${l}:F${f}=${a.toFixed(3)}`).join(' ');

  function renderGenerated() {
    const table = document.createElement('table');
    const head = document.createElement('tr');
    head.append(...['seed', 'sequence (steered)', 'PLL steered / unsteered', 'steered features, mean activation: steered → unsteered run', ''].map((h) => el('th', h)));
    table.append(head);
    for (const g of generated) {
      const tr = document.createElement('tr');
      const seq = el('td');
      seq.append(el('code', g.steered.sequence));
      seq.className = 'sequence';
      const moved = g.steered.steeredActivation.map(([l, f, a], i) => `L${l}:F${f} ${a.toFixed(3)} (unsteered ${g.baseline.steeredActivation[i][2].toFixed(3)})`).join('; ');
      const open = el('button', 'Open');
      open.title = 'Show this sequence\'s features per residue in the viewer above';
      open.addEventListener('click', () => openSequence(`>generated seed ${g.seed}\n${g.steered.sequence}`));
      const openCell = document.createElement('td');
      openCell.append(open);
      tr.append(el('td', String(g.seed)), seq,
        el('td', `${g.steered.pseudoLogLikelihood.toFixed(2)} / ${g.baseline.pseudoLogLikelihood.toFixed(2)}`), el('td', moved || '–'), openCell);
      table.append(tr);
    }
    $('gen-results').replaceChildren(table);
  }

  // ------------------------------------------------------------------ training
  $('train-source').addEventListener('change', () => { $('train-file').hidden = $('train-source').value !== 'file'; });
  $('train-recipe').addEventListener('change', () => {
    const topk = $('train-recipe').value === 'top-k';
    $('train-k-label').hidden = !topk;
    $('train-l1-label').hidden = topk;
  });

  async function trainingFasta() {
    const source = $('train-source').value;
    if (source === 'input') return $('sequence').value;
    if (source === 'random') return randomProteins(num('train-random-n'), num('train-seed'));
    const file = $('train-file').files[0];
    if (!file) throw new Error('choose a FASTA file to train on');
    return checkSize(file, CAPS.fasta).text();
  }

  function drawCurves() {
    for (const [id, label, pick] of CURVES) {
      drawCurve($(id), label, training.steps, training.metrics.map(pick), id === 'curve-l0' ? (v) => v.toFixed(1) : undefined);
    }
  }

  // The page asks for one chunk of steps at a time: a pause lands after the chunk in flight, and
  // the worker never runs ahead of the curves. Installing reads the trainer, so it waits for a
  // pause or the end.
  async function runSteps() {
    training.pauseWanted = false;
    // A new start while steps run would swap the trainer under this loop.
    $('train-start').disabled = true;
    $('train-pause').disabled = false;
    $('train-resume').disabled = true;
    $('train-install').disabled = true;
    const bar = Object.assign($('train-progress'), { hidden: false, max: training.total });
    try {
      let ended = false;
      while (!ended && !training.pauseWanted) {
        const { result: metrics, ms } = await engine.request('train-steps', { chunk: 5 });
        training.ms += ms;
        for (const m of metrics) { training.steps.push(m.step); training.metrics.push(m); }
        const done = training.steps.at(-1) ?? 0;
        ended = !metrics.length || done >= training.total;
        bar.value = done;
        $('train-status').textContent = `Step ${done} of ${training.total}`;
        drawCurves();
      }
      const done = training.steps.at(-1) ?? 0;
      if (ended) {
        const seconds = training.ms / 1000;
        await install(`Trained: ${done} steps in ${seconds.toFixed(1)} s (${Math.round((done * training.batch) / seconds)} tokens/s)`);
      } else {
        $('train-status').textContent = `Paused at step ${done} of ${training.total}`;
        $('train-resume').disabled = false;
        $('train-install').disabled = false;
      }
    } catch (e) {
      error(e);
      $('train-resume').disabled = false;
    } finally {
      $('train-start').disabled = false;
      $('train-pause').disabled = true;
      bar.hidden = true;
    }
  }

  async function install(what) {
    const { result: { info, files } } = await engine.request('train-install', {});
    training.files = files;
    onInstalled(info);
    $('train-save').disabled = false;
    $('train-status').textContent = `${what}; installed as the SAE of layer ${files.layer} for every view`;
  }

  $('train-start').addEventListener('click', async () => {
    error();
    const recipe = $('train-recipe').value === 'top-k' ? { kind: 'top-k', k: num('train-k') } : { kind: 'relu-l1', l1: num('train-l1') };
    const options = {
      recipe, dSae: num('train-d-sae'), layerNorm: $('train-layer-norm').checked, steps: num('train-steps'),
      batch: num('train-batch'), lr: num('train-lr'), seed: num('train-seed'),
    };
    const layer = num('train-layer');
    $('train-start').disabled = true;
    try {
      const fasta = await trainingFasta();
      $('train-status').textContent = 'Reading activations…';
      const trainedOn = { input: 'the sequence in the viewer', random: `${num('train-random-n')} random proteins (seed ${num('train-seed')})`, file: $('train-file').files[0]?.name }[$('train-source').value];
      const { result } = await engine.request('train-start', { fasta, trainedOn, layer, maxTokens: num('train-max-tokens'), options });
      training = { layer, total: options.steps, batch: options.batch, steps: [], metrics: [], ms: 0 };
      $('train-status').textContent = `${result.tokens} tokens of layer ${layer} from ${result.sequences} sequences; training…`;
      $('train-save').disabled = true;
      await runSteps();
    } catch (e) {
      $('train-status').textContent = '';
      error(e);
    } finally {
      $('train-start').disabled = false;
    }
  });
  $('train-pause').addEventListener('click', () => { training.pauseWanted = true; });
  $('train-resume').addEventListener('click', () => { error(); runSteps(); });
  $('train-install').addEventListener('click', async () => {
    try { await install(`Step ${training?.steps.at(-1) ?? 0}`); } catch (e) { error(e); }
  });
  $('train-save').addEventListener('click', () => {
    const { cfg, weights, layer } = training.files;
    download(`sae_layer${layer}_cfg.json`, new Blob([cfg], { type: 'application/json' }));
    download(`sae_layer${layer}_sae_weights.safetensors`, new Blob([weights]));
  });

  return {
    fillLayers(n) {
      $('train-layer').replaceChildren(...Array.from({ length: n }, (_, i) => Object.assign(el('option', String(i + 1)), { value: String(i + 1) })));
      $('train-layer').value = String(Math.min(3, n));
    },
    /** The harvest's progress, the one task that reports inside a request. */
    onProgress(d) {
      Object.assign($('train-progress'), { hidden: false, max: d.total, value: d.loaded });
      $('train-status').textContent = `Reading activations: sequence ${d.loaded} of ${d.total}`;
    },
  };
}
