// Shared by the benchmark page, its plmscope worker and the node drivers (browser.mjs,
// bench-page.mjs): the clock, the median and the suite's inputs.

/** Milliseconds one `await run()` takes. */
export async function timed(run) {
  const t0 = performance.now();
  await run();
  return performance.now() - t0;
}

/** The median of `xs` (the upper one of an even count, as peers.py and the CLI take it). */
export const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

/** Residue i of sequence b, as peers.py and `bench::tokens` make it: an index into ESM-2's amino
 * acids in token order (tokens 4..23, letters `LAGVSERTIDPKQNFYMHWC`). */
export const aminoAcid = (i, b) => (7 * i + 13 * b + Math.floor(i / 3)) % 20;
