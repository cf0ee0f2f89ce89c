// Residues along x, the sequence's top features along y; hover for values, click to select.

const CELL_W = 7;
const CELL_H = 12;
const LABEL_W = 56;

/** Dense [residues][features] values of `features` (sparse rows) for the listed feature ids. */
export function matrix(sparseRows, ids) {
  const index = new Map(ids.map((f, i) => [f, i]));
  return sparseRows.map((row) => {
    const out = new Float32Array(ids.length);
    for (const [f, v] of row) if (index.has(f)) out[index.get(f)] = v;
    return out;
  });
}

export function drawHeatmap(canvas, tooltip, { sequence, rows, ids, onSelect, onHover = () => {} }) {
  const values = matrix(rows, ids);
  const max = Math.max(1e-9, ...values.flatMap((r) => Array.from(r)));
  canvas.width = LABEL_W + sequence.length * CELL_W;
  canvas.height = ids.length * CELL_H + 14;
  const g = canvas.getContext('2d');
  // The theme's colours (style.css): a canvas does not inherit them.
  const css = getComputedStyle(canvas);
  const ink = css.color;
  g.fillStyle = css.getPropertyValue('--panel').trim() || 'white';
  g.fillRect(0, 0, canvas.width, canvas.height);
  g.font = '10px ui-monospace, monospace';
  g.fillStyle = ink;
  ids.forEach((f, y) => g.fillText(`F${f}`, 2, y * CELL_H + 10));
  values.forEach((row, x) => {
    row.forEach((v, y) => {
      if (v <= 0) return;
      g.fillStyle = `hsl(20 90% ${Math.round(95 - 50 * (v / max))}%)`;
      g.fillRect(LABEL_W + x * CELL_W, y * CELL_H, CELL_W - 1, CELL_H - 1);
    });
  });
  g.fillStyle = ink;
  for (let x = 0; x < sequence.length; x += 10) g.fillText(String(x + 1), LABEL_W + x * CELL_W, ids.length * CELL_H + 11);

  const cellAt = (e) => {
    const r = canvas.getBoundingClientRect();
    const x = Math.floor((e.clientX - r.left - LABEL_W) / CELL_W);
    const y = Math.floor((e.clientY - r.top) / CELL_H);
    return x >= 0 && x < sequence.length && y >= 0 && y < ids.length ? { x, y } : null;
  };
  canvas.onmousemove = (e) => {
    const c = cellAt(e);
    tooltip.hidden = !c;
    onHover(c ? c.x : null);
    if (!c) return;
    tooltip.textContent = `residue ${c.x + 1} ${sequence[c.x]} · feature ${ids[c.y]} = ${values[c.x][c.y].toFixed(3)}`;
    tooltip.style.left = `${e.offsetX + 12}px`;
    tooltip.style.top = `${e.offsetY + 12}px`;
  };
  canvas.onmouseleave = () => { tooltip.hidden = true; onHover(null); };
  canvas.onclick = (e) => { const c = cellAt(e); if (c) onSelect(ids[c.y]); };
}
