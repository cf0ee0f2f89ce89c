// Shared by the benchmark page and its plmscope worker: the clock and the suite's inputs.

const median = (xs) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)];
export const repeatsFor = (b, r) => (b * r >= 1000 ? 3 : 7);

/** Median ms of `repeats` runs after one warm-up run. */
export async function time(run, repeats) {
  await run();
  const ms = [];
  for (let i = 0; i < repeats; i++) {
    const t0 = performance.now();
    await run();
    ms.push(performance.now() - t0);
  }
  return median(ms);
}

/** Residue i of sequence b, as peers.py and `bench::tokens` make it: an index into ESM-2's amino
 * acids in token order (tokens 4..23, letters `LAGVSERTIDPKQNFYMHWC`). */
export const aminoAcid = (i, b) => (7 * i + 13 * b + Math.floor(i / 3)) % 20;
