// The page: wires the input to the model worker and draws per-residue predictions.
// Everything the visitor typed or loaded is shown as text, never parsed as HTML.

const $ = (id) => document.getElementById(id);
const worker = new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });

let nextId = 0;
const pending = new Map();

function setStatus(text) { $('status').textContent = text; }

function showWeightsNote(info) {
  const note = $('weights-note');
  note.hidden = !info.randomWeights;
  if (info.randomWeights) {
    note.textContent = `These are RANDOM weights of the esm2_t6_8M architecture (${info.source}). ` +
      'The predictions below only show that the model runs; they mean nothing about proteins.';
  }
}

worker.onmessage = ({ data }) => {
  switch (data.status) {
    case 'initiate':
      setStatus(data.note ?? 'Starting the model…');
      break;
    case 'progress': {
      const p = $('progress');
      p.hidden = false;
      p.max = data.total || data.loaded;
      p.value = data.loaded;
      const pct = data.total ? ` (${Math.round((100 * data.loaded) / data.total)}%)` : '';
      setStatus(`Downloading ${data.file}: ${(data.loaded / 1e6).toFixed(1)} MB${pct}`);
      break;
    }
    case 'ready':
      $('progress').hidden = true;
      $('backend').textContent = data.info.backend === 'webgpu' ? 'WebGPU' : 'CPU (WebAssembly)';
      $('backend').className = `badge ${data.info.backend}`;
      setStatus(`Model ready: ${data.info.nLayers} layers, d_model ${data.info.dModel} — ${data.info.source}`);
      showWeightsNote(data.info);
      $('run').disabled = false;
      break;
    case 'result':
      pending.get(data.id)?.resolve(data);
      pending.delete(data.id);
      break;
    case 'error':
      if (data.during === 'load' && data.source === 'hub') {
        load({ kind: 'random', reason: `the Hugging Face hub could not be reached: ${data.message}` });
      } else if (data.during === 'load') {
        setStatus(`Could not load the model: ${data.message}`);
      } else {
        pending.get(data.id)?.reject(new Error(data.message));
        pending.delete(data.id);
      }
      break;
  }
};

function load(source) {
  $('run').disabled = true;
  worker.postMessage({ type: 'load', source });
}

function predict(fasta) {
  const id = nextId++;
  return new Promise((resolve, reject) => {
    pending.set(id, { resolve, reject });
    worker.postMessage({ type: 'predict', id, fasta });
  });
}

// Probability of the actual residue, white (0) to blue (1).
function shade(p) {
  const l = Math.round(97 - 55 * p);
  return `hsl(215 70% ${l}%)`;
}

function render({ records, ms }) {
  const root = $('results');
  root.replaceChildren();
  for (const r of records) {
    const section = document.createElement('div');
    section.className = 'record';
    const h = document.createElement('h2');
    h.textContent = `${r.header || 'sequence'} — ${r.residues.length} residues, ${ms.toFixed(0)} ms`;
    const legend = document.createElement('p');
    legend.className = 'legend';
    legend.textContent = 'Colour: the model\'s probability of the residue that is there. Hover for the top predictions.';
    const row = document.createElement('div');
    row.className = 'residues';
    r.residues.forEach((res, i) => {
      const span = document.createElement('span');
      span.className = 'residue';
      span.textContent = res.residue === '<mask>' ? '?' : res.residue;
      span.style.background = shade(res.pActual);
      if (res.pActual > 0.55) span.style.color = 'white';
      const top = res.top.map(([t, p]) => `${t} ${(100 * p).toFixed(1)}%`).join(', ');
      span.title = `${i + 1} ${res.residue}: p = ${res.pActual.toFixed(3)}; top: ${top}`;
      row.append(span);
    });
    section.append(h, legend, row);
    root.append(section);
  }
}

$('run').addEventListener('click', async () => {
  $('run').disabled = true;
  $('input-error').textContent = '';
  try {
    render(await predict($('sequence').value));
  } catch (e) {
    // The previous result stays on screen.
    $('input-error').textContent = e.message;
  } finally {
    $('run').disabled = false;
  }
});

$('files').addEventListener('change', (e) => {
  const files = [...e.target.files];
  if (files.length) load({ kind: 'files', files });
});

const params = new URLSearchParams(location.search);
load(params.get('weights') === 'random'
  ? { kind: 'random', reason: 'asked for with ?weights=random' }
  : { kind: 'hub' });
