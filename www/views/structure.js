// The protein's 3-D structure (3Dmol.js, loaded on first use): an AlphaFold DB model found through
// its API, a dropped PDB or mmCIF file, or an ESMFold prediction the visitor asked for. Residues are
// coloured by the selected feature's activation or by Δ log-probability after an edit, and hover and
// click go both ways with the track below the heatmap.

import { CAPS, fetchCapped, parseJson } from '../hosts.js';

export const ALPHAFOLD_API = 'https://alphafold.ebi.ac.uk/api/prediction/';
export const ESMFOLD_API = 'https://api.esmatlas.com/foldSequence/v1/pdb/';
export const ESMFOLD_MAX = 400;

const THREE = {
  ALA: 'A', ARG: 'R', ASN: 'N', ASP: 'D', CYS: 'C', GLN: 'Q', GLU: 'E', GLY: 'G', HIS: 'H', ILE: 'I', LEU: 'L', LYS: 'K',
  MET: 'M', PHE: 'F', PRO: 'P', SER: 'S', THR: 'T', TRP: 'W', TYR: 'Y', VAL: 'V', SEC: 'U', PYL: 'O', MSE: 'M',
};
const OUTSIDE = '#9aa0a6';

/** The UniProt accession in a FASTA header such as `sp|P69905|HBA_HUMAN …`, or in a bare one. */
export function accessionOf(header) {
  const m = /^(?:sp|tr)\|([A-Z0-9]{6,10})\|/.exec(header ?? '') ?? /^([OPQ][0-9][A-Z0-9]{3}[0-9]|[A-NR-Z][0-9](?:[A-Z][A-Z0-9]{2}[0-9]){1,2})\b/.exec(header ?? '');
  return m ? m[1] : null;
}

/**
 * Where each residue of `shown` (one letter each) sits among the structure's `residues`
 * ([{ resi, chain, letter }] in chain order): the shown sequence as a stretch of the modelled
 * one (the seed explorer's examples are a protein's first 70 residues), else position by position
 * with the number of residues that differ. `offset` is the first shown residue's index in the model.
 */
export function mapResidues(shown, residues) {
  const modelled = residues.map((r) => r.letter).join('');
  const at = modelled.indexOf(shown);
  if (at >= 0) return { offset: at, exact: true, mismatches: 0 };
  let mismatches = 0;
  for (let i = 0; i < shown.length; i++) if (shown[i] !== modelled[i]) mismatches++;
  return { offset: 0, exact: false, mismatches };
}

/** A white → orange scale for activations of at most `max`. */
const activationColor = (v, max) => mix([255, 255, 255], [230, 110, 20], Math.min(1, Math.max(0, v / max)));
/** Red where the edit lowered log p of the actual residue, blue where it raised it. */
const deltaColor = (d, max) => (d < 0 ? mix([255, 255, 255], [200, 30, 40], Math.min(1, -d / max)) : mix([255, 255, 255], [40, 90, 210], Math.min(1, d / max)));
function mix(a, b, t) {
  return `#${a.map((x, i) => Math.round(x + (b[i] - x) * t).toString(16).padStart(2, '0')).join('')}`;
}

/** The structure text's format for 3Dmol: mmCIF when it opens with a data block, else PDB. */
export const formatOf = (name, text) => (/\.(cif|mmcif)$/i.test(name) || /^\s*data_/.test(text) ? 'cif' : 'pdb');

export function createStructure({ container, onHover, onClick }) {
  let viewer = null;
  let residues = [];
  let map = null;
  let shownLength = 0;
  let colors = [];
  let marked = null;

  async function ensureViewer() {
    if (viewer) return viewer;
    const mod = await import('3dmol');
    const $3Dmol = mod.createViewer ? mod : mod.default;
    viewer = $3Dmol.createViewer(container, { backgroundColor: 'white', backgroundAlpha: 0, antialias: true });
    if (!viewer) throw new Error('this browser gives the page no WebGL, which the structure view needs');
    return viewer;
  }

  /** Shows the structure in `text` (PDB or mmCIF) and returns its residue count; throws in words when it holds none. */
  async function show(text, name) {
    const v = await ensureViewer();
    v.clear();
    let model;
    try {
      model = v.addModel(text, formatOf(name, text));
    } catch (e) {
      throw new Error(`${name} is not a PDB or mmCIF file 3Dmol can read: ${e.message}`);
    }
    const seen = new Set();
    residues = [];
    for (const a of model.selectedAtoms({ atom: 'CA', hetflag: false })) {
      const key = `${a.chain}:${a.resi}`;
      if (seen.has(key) || !THREE[a.resn]) continue;
      seen.add(key);
      residues.push({ resi: a.resi, chain: a.chain, letter: THREE[a.resn] });
    }
    if (!residues.length) { v.clear(); v.render(); throw new Error(`${name} holds no amino-acid residues (no Cα atoms of the 20 residues)`); }
    v.setStyle({}, { cartoon: { color: OUTSIDE } });
    v.setHoverable({}, true, (atom) => hover(atom, true), (atom) => hover(atom, false));
    v.setClickable({}, true, (atom) => { const i = indexOf(atom); if (i !== null) onClick(i); });
    v.zoomTo();
    v.render();
    return residues.length;
  }

  const indexOf = (atom) => {
    if (!map) return null;
    const k = residues.findIndex((r) => r.resi === atom.resi && r.chain === atom.chain);
    const i = k - map.offset;
    return k >= 0 && i >= 0 && i < shownLength ? i : null;
  };
  function hover(atom, on) {
    const i = indexOf(atom);
    if (i !== null) onHover(on ? i : null);
  }

  return {
    show,
    get loaded() { return residues.length > 0; },
    /**
     * Colours the shown residues by `values` (one per residue of `sequence`): activations
     * (`kind` 'feature') or Δ log-probabilities ('delta'). Returns how the sequence maps onto
     * the model, in words.
     */
    color(sequence, values, kind) {
      if (!viewer || !residues.length) return '';
      map = mapResidues(sequence, residues);
      shownLength = sequence.length;
      const max = Math.max(1e-9, ...values.map(Math.abs));
      colors = residues.map(() => OUTSIDE);
      marked = null;
      values.forEach((v, i) => {
        const k = map.offset + i;
        if (k < residues.length) colors[k] = kind === 'delta' ? deltaColor(v, max) : activationColor(v, max);
      });
      viewer.setStyle({}, { cartoon: { color: OUTSIDE } });
      residues.forEach((r, k) => { if (colors[k] !== OUTSIDE) viewer.setStyle({ resi: r.resi, chain: r.chain }, { cartoon: { color: colors[k] } }); });
      viewer.render();
      // What is drawn, for a reader of the DOM (and the tests): each modelled residue's colour.
      container.dataset.colors = colors.join(' ');
      container.dataset.kind = kind;
      const first = residues[map.offset]?.resi;
      return map.exact
        ? `the shown ${sequence.length} residues are residues ${first}–${first + sequence.length - 1} of the model's ${residues.length}`
        : `the shown sequence is not a stretch of the model's (${map.mismatches} of ${sequence.length} residues differ): coloured by position`;
    },
    /** Marks shown residue `i` (null: none) as the track's hover does. */
    highlight(i) {
      if (!viewer || !map) return;
      viewer.removeAllLabels();
      if (marked !== null) viewer.setStyle({ resi: residues[marked].resi, chain: residues[marked].chain }, { cartoon: { color: colors[marked] } });
      marked = i === null || map.offset + i >= residues.length ? null : map.offset + i;
      const r = marked === null ? null : residues[marked];
      if (r) {
        viewer.addStyle({ resi: r.resi, chain: r.chain }, { stick: { radius: 0.25, color: colors[marked] } });
        viewer.addLabel(`${r.letter}${r.resi}`, { position: { resi: r.resi, chain: r.chain, atom: 'CA' }, fontSize: 12, backgroundOpacity: 0.7 });
      }
      viewer.render();
    },
  };
}

/** The AlphaFold DB model of `accession` as { text, name, version }: the file URL comes from the
 *  API's answer (the database's model version changes; built file names go stale). */
export async function fetchAlphaFold(accession) {
  const api = `${ALPHAFOLD_API}${encodeURIComponent(accession)}`;
  const entries = parseJson(await fetchCapped(api, { name: `AlphaFold DB entry of ${accession}`, cap: CAPS.json }), `AlphaFold DB's answer for ${accession}`);
  const entry = Array.isArray(entries) ? entries.find((e) => e && (typeof e.pdbUrl === 'string' || typeof e.cifUrl === 'string')) : null;
  if (!entry) throw new Error(`AlphaFold DB has no model of ${accession}`);
  const url = entry.pdbUrl ?? entry.cifUrl;
  const name = new URL(url).pathname.split('/').pop();
  const text = new TextDecoder().decode(await fetchCapped(url, { name, cap: CAPS.structure }));
  return { text, name, version: entry.latestVersion ?? null };
}

/** ESMFold's prediction of `sequence` as PDB text: the sequence leaves the device, so the caller asks first. */
export async function fetchEsmFold(sequence) {
  if (sequence.length > ESMFOLD_MAX) throw new Error(`ESMFold's API folds at most ${ESMFOLD_MAX} residues; this sequence has ${sequence.length}`);
  const bytes = await fetchCapped(ESMFOLD_API, { name: 'ESMFold prediction', cap: CAPS.structure, method: 'POST', body: sequence });
  return { text: new TextDecoder().decode(bytes), name: 'ESMFold prediction.pdb' };
}
