// The model's per-residue predictions, and Δ log-probability after an edit.

const shade = (p) => `hsl(215 70% ${Math.round(97 - 55 * p)}%)`;
const diverging = (d) => (d < 0 ? `hsl(0 75% ${Math.round(97 - Math.min(1, -d / 3) * 50)}%)`
  : `hsl(140 55% ${Math.round(97 - Math.min(1, d / 3) * 50)}%)`);

export function drawPredictions(root, predictions) {
  root.replaceChildren(...predictions.map((res, i) => {
    const span = document.createElement('span');
    span.className = 'residue';
    span.textContent = res.residue === '<mask>' ? '?' : res.residue;
    span.style.background = shade(res.pActual);
    if (res.pActual > 0.55) span.style.color = 'white';
    const top = res.top.map(([t, p]) => `${t} ${(100 * p).toFixed(1)}%`).join(', ');
    span.title = `${i + 1} ${res.residue}: p = ${res.pActual.toFixed(3)}; top: ${top}`;
    return span;
  }));
}

export function drawDelta(root, sequence, delta) {
  if (!delta) { root.replaceChildren(); return; }
  root.replaceChildren(...delta.map((d, i) => {
    const span = document.createElement('span');
    span.className = 'residue delta';
    span.textContent = sequence[i];
    span.style.background = diverging(d);
    span.title = `${i + 1} ${sequence[i]}: Δ log p = ${d.toFixed(4)}`;
    span.dataset.delta = d;
    return span;
  }));
}
