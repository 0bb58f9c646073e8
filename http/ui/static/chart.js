// Small SVG charts: time series with optional bands and shaded spans, and
// horizontal bars. No dependencies.

const NS = 'http://www.w3.org/2000/svg';
const W = 900, PAD = { l: 60, r: 14, t: 10, b: 30 };

function svg(tag, attrs = {}, text) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

// niceTicks returns about n round values covering [lo, hi].
export function niceTicks(lo, hi, n = 5) {
  if (!(hi > lo)) { hi = lo + 1; }
  const raw = (hi - lo) / n, mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map(m => m * mag).find(s => s >= raw);
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(+v.toPrecision(12));
  return out;
}

function label(v) {
  const a = Math.abs(v);
  if (a >= 1e6) return (v / 1e6).toFixed(1) + 'M';
  if (a >= 1e4) return (v / 1e3).toFixed(0) + 'k';
  return String(+v.toPrecision(4));
}

const HOUR = 3600e3;

// timeTicks returns UTC-aligned ticks (whole hours or days) inside [x0, x1],
// at most about 7.
function timeTicks(x0, x1) {
  const step = [1, 2, 3, 6, 12, 24, 48, 96, 168, 336, 720].map(h => h * HOUR).find(s => (x1 - x0) / s <= 7) || 720 * HOUR;
  const out = [];
  for (let x = Math.ceil(x0 / step) * step; x <= x1; x += step) out.push(x);
  return out;
}

function timeLabel(ms, spanMs) {
  const iso = new Date(ms).toISOString();
  return spanMs > 3 * 86400e3 ? iso.slice(5, 10) : iso.slice(5, 16).replace('T', ' ');
}

function legend(container, items) {
  const lg = document.createElement('div');
  lg.className = 'legend';
  for (const it of items) {
    const s = document.createElement('span');
    const i = document.createElement('i');
    i.style.background = it.color; if (it.opacity) i.style.opacity = it.opacity;
    s.append(i, it.name);
    lg.append(s);
  }
  container.append(lg);
}

// timeChart draws series ({name, color, points: [[ms, y]]}), bands
// ({name, color, opacity, points: [[ms, lo, hi]]}) and shaded spans
// ({from, to, color}) into container, replacing what was there.
export function timeChart(container, { series = [], bands = [], shades = [], height = 260, zeroLine = false, markers = [] }) {
  container.replaceChildren();
  const xs = [], ys = [];
  for (const s of series) for (const [x, y] of s.points) { if (y !== null && Number.isFinite(y)) { xs.push(x); ys.push(y); } }
  for (const b of bands) for (const [x, lo, hi] of b.points) { xs.push(x); ys.push(lo, hi); }
  if (!xs.length) { container.textContent = 'No data in this window.'; return; }
  let x0 = Math.min(...xs), x1 = Math.max(...xs);
  if (x1 === x0) { x0 -= 1800e3; x1 += 1800e3; }
  let y0 = Math.min(...ys), y1 = Math.max(...ys);
  if (zeroLine) { y0 = Math.min(y0, 0); y1 = Math.max(y1, 0); }
  const yt = niceTicks(y0, y1); y0 = Math.min(y0, yt[0]); y1 = Math.max(y1, yt[yt.length - 1]);
  if (y1 === y0) y1 = y0 + 1;
  const H = height, X = x => PAD.l + (x - x0) / (x1 - x0) * (W - PAD.l - PAD.r), Y = y => H - PAD.b - (y - y0) / (y1 - y0) * (H - PAD.t - PAD.b);
  const root = svg('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img' });
  for (const s of shades) {
    const a = Math.max(X(s.from), PAD.l), b = Math.min(X(s.to), W - PAD.r);
    if (b >= a) root.append(svg('rect', { x: a, y: PAD.t, width: Math.max(b - a, 2), height: H - PAD.t - PAD.b, fill: s.color || '#f5b7b1', opacity: .45, class: 'shade' }));
  }
  for (const t of yt) {
    root.append(svg('line', { x1: PAD.l, x2: W - PAD.r, y1: Y(t), y2: Y(t), class: 'grid' }));
    root.append(svg('text', { x: PAD.l - 6, y: Y(t) + 4, 'text-anchor': 'end' }, label(t)));
  }
  const span = x1 - x0;
  for (const x of timeTicks(x0, x1)) {
    root.append(svg('line', { x1: X(x), x2: X(x), y1: H - PAD.b, y2: H - PAD.b + 4, class: 'axis' }));
    root.append(svg('text', { x: X(x), y: H - 10, 'text-anchor': 'middle' }, timeLabel(x, span)));
  }
  root.append(svg('line', { x1: PAD.l, x2: PAD.l, y1: PAD.t, y2: H - PAD.b, class: 'axis' }));
  root.append(svg('line', { x1: PAD.l, x2: W - PAD.r, y1: H - PAD.b, y2: H - PAD.b, class: 'axis' }));
  if (zeroLine && y0 < 0) root.append(svg('line', { x1: PAD.l, x2: W - PAD.r, y1: Y(0), y2: Y(0), class: 'axis' }));
  for (const b of bands) {
    if (!b.points.length) continue;
    const top = b.points.map(([x, , hi]) => `${X(x).toFixed(1)},${Y(hi).toFixed(1)}`);
    const bot = b.points.slice().reverse().map(([x, lo]) => `${X(x).toFixed(1)},${Y(lo).toFixed(1)}`);
    root.append(svg('polygon', { points: top.concat(bot).join(' '), fill: b.color, opacity: b.opacity ?? .25, class: 'band' }));
  }
  for (const s of series) {
    let d = '', pen = false;
    for (const [x, y] of s.points) {
      if (y === null || !Number.isFinite(y)) { pen = false; continue; }
      d += (pen ? 'L' : 'M') + X(x).toFixed(1) + ',' + Y(y).toFixed(1);
      pen = true;
    }
    if (s.dots) for (const [x, y] of s.points) if (Number.isFinite(y)) root.append(svg('circle', { cx: X(x), cy: Y(y), r: 2, fill: s.color }));
    root.append(svg('path', { d, fill: 'none', stroke: s.color, 'stroke-width': s.width || 1.3, 'stroke-dasharray': s.dash || '', class: 'series' }));
  }
  for (const m of markers) {
    root.append(svg('circle', { cx: X(m.x), cy: Y(m.y), r: 5, fill: 'none', stroke: m.color || '#a32020', 'stroke-width': 2 }));
    root.append(svg('text', { x: X(m.x) + 7, y: Y(m.y) - 7 }, m.label || ''));
  }
  container.append(root);
  legend(container, [...series.map(s => ({ name: s.name, color: s.color })), ...bands.map(b => ({ name: b.name, color: b.color, opacity: b.opacity ?? .25 })),
    ...(shades.length ? [{ name: 'anomaly episode', color: '#f5b7b1' }] : [])]);
}

// scatterChart draws points ([x, y]) with the line y = x, for actual
// against predicted.
export function scatterChart(container, points, { xName, yName, height = 320 }) {
  container.replaceChildren();
  if (!points.length) { container.textContent = 'No data in this window.'; return; }
  const vals = points.flat();
  const ticks = niceTicks(Math.min(...vals), Math.max(...vals));
  const lo = Math.min(ticks[0], ...vals), hi = Math.max(ticks[ticks.length - 1], ...vals);
  const H = height, w = H - PAD.t - PAD.b, L = PAD.l;
  const X = v => L + (v - lo) / (hi - lo || 1) * w, Y = v => H - PAD.b - (v - lo) / (hi - lo || 1) * w;
  const root = svg('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img' });
  for (const t of ticks) {
    root.append(svg('line', { x1: L, x2: L + w, y1: Y(t), y2: Y(t), class: 'grid' }));
    root.append(svg('text', { x: L - 6, y: Y(t) + 4, 'text-anchor': 'end' }, label(t)));
    root.append(svg('text', { x: X(t), y: H - 12, 'text-anchor': 'middle' }, label(t)));
  }
  root.append(svg('line', { x1: L, x2: L, y1: PAD.t, y2: H - PAD.b, class: 'axis' }));
  root.append(svg('line', { x1: L, x2: L + w, y1: H - PAD.b, y2: H - PAD.b, class: 'axis' }));
  root.append(svg('line', { x1: X(lo), y1: Y(lo), x2: X(hi), y2: Y(hi), stroke: '#c0661a', 'stroke-dasharray': '4 3', class: 'diagonal' }));
  let d = '';
  for (const [x, y] of points) d += `M${X(x).toFixed(1)},${Y(y).toFixed(1)}h0`;
  root.append(svg('path', { d, stroke: '#1f5fa8', 'stroke-width': 3, 'stroke-linecap': 'round', opacity: .5, class: 'points' }));
  root.append(svg('text', { x: L + w / 2, y: H - 0.5, 'text-anchor': 'middle' }, xName));
  root.append(svg('text', { x: L + w + 16, y: PAD.t + 10 }, `${yName} (vertical) against ${xName} (horizontal); dashed: equal`));
  root.append(svg('text', { x: L + w + 16, y: PAD.t + 28 }, `${points.length} hours`));
  container.append(root);
}

// barChart draws horizontal bars for items ({label, value}).
export function barChart(container, items) {
  container.replaceChildren();
  if (!items.length) { container.textContent = 'Nothing to show.'; return; }
  const rowH = 22, H = PAD.t + PAD.b + rowH * items.length, L = 200;
  let lo = Math.min(0, ...items.map(i => i.value)), hi = Math.max(0, ...items.map(i => i.value));
  if (hi === lo) hi = lo + 1;
  const X = v => L + (v - lo) / (hi - lo) * (W - L - PAD.r - 60);
  const root = svg('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img' });
  items.forEach((it, i) => {
    const y = PAD.t + i * rowH;
    root.append(svg('text', { x: L - 8, y: y + 15, 'text-anchor': 'end' }, it.label));
    const a = X(Math.min(0, it.value)), b = X(Math.max(0, it.value));
    root.append(svg('rect', { x: a, y: y + 3, width: Math.max(b - a, 1), height: rowH - 6, fill: it.value >= 0 ? '#1f5fa8' : '#c0661a', class: 'bar' }));
    root.append(svg('text', { x: b + 4, y: y + 15 }, label(it.value)));
  });
  root.append(svg('line', { x1: X(0), x2: X(0), y1: PAD.t, y2: H - PAD.b, class: 'axis' }));
  container.append(root);
}
