// A training curve: one series of numbers against the step, drawn on a canvas with its range.

export function drawCurve(canvas, label, steps, values, format = (v) => v.toPrecision(3)) {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth || 260;
  const h = canvas.clientHeight || 120;
  canvas.width = w * dpr;
  canvas.height = h * dpr;
  const g = canvas.getContext('2d');
  g.scale(dpr, dpr);
  g.clearRect(0, 0, w, h);
  g.font = '11px system-ui, sans-serif';
  g.fillStyle = '#333';
  const last = values.at(-1);
  g.fillText(last === undefined ? label : `${label}: ${format(last)}`, 4, 12);
  const finite = values.filter(Number.isFinite);
  if (finite.length < 2) return;
  let lo = Math.min(...finite);
  let hi = Math.max(...finite);
  if (hi === lo) { hi += 0.5; lo -= 0.5; }
  const [x0, x1, y0, y1] = [4, w - 4, h - 14, 18];
  const first = steps[0];
  const span = Math.max(1, steps.at(-1) - first);
  g.fillStyle = '#888';
  g.fillText(format(hi), x0, y1 + 9);
  g.fillText(format(lo), x0, y0 - 2);
  g.fillText(`step ${steps.at(-1)}`, x1 - 60, h - 2);
  g.strokeStyle = '#2a6fb0';
  g.lineWidth = 1.5;
  g.beginPath();
  values.forEach((v, i) => {
    if (!Number.isFinite(v)) return;
    const x = x0 + ((steps[i] - first) / span) * (x1 - x0);
    const y = y0 - ((v - lo) / (hi - lo)) * (y0 - y1);
    if (i === 0) g.moveTo(x, y); else g.lineTo(x, y);
  });
  g.stroke();
}
