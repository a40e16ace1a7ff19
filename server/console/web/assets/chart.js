// chart.js: small SVG charts (no dependency). Colours come from CSS classes (series-0 …
// series-7); nothing is styled inline, so the strict style-src policy holds.

import { s, h, fmtInt } from './dom.js';

const W = 720, H = 240, L = 48, R = 12, T = 12, B = 28;

// niceMax is the top of a y axis of TICKS equal integer steps (1, 2 or 5 times a power of ten)
// that holds v.
const TICKS = 5;
function niceMax(v) {
  for (let p = 1; ; p *= 10) {
    for (const m of [1, 2, 5]) if (m * p * TICKS >= v) return m * p * TICKS;
  }
}

function timeLabel(ms, spanMs) {
  const d = new Date(ms);
  const iso = d.toISOString();
  return spanMs <= 36 * 3600e3 ? iso.slice(11, 16) : iso.slice(5, 10);
}

function axes(start, end, ymax) {
  const span = end - start || 1;
  const x = (t) => L + ((t - start) / span) * (W - L - R);
  const y = (v) => T + (1 - v / ymax) * (H - T - B);
  const g = s('g', { class: 'axes' });
  for (let i = 0; i <= TICKS; i++) {
    const v = (ymax * i) / TICKS;
    g.append(s('line', { x1: L, x2: W - R, y1: y(v), y2: y(v), class: 'grid' }),
      s('text', { x: L - 6, y: y(v) + 4, 'text-anchor': 'end' }, fmtInt(Math.round(v))));
  }
  for (let i = 0; i <= 6; i++) {
    const t = start + (span * i) / 6;
    g.append(s('text', { x: x(t), y: H - 8, 'text-anchor': 'middle' }, timeLabel(t, span)));
  }
  g.append(s('line', { x1: L, x2: L, y1: T, y2: H - B, class: 'axis' }),
    s('line', { x1: L, x2: W - R, y1: H - B, y2: H - B, class: 'axis' }));
  return { g, x, y };
}

// lineChart draws one line per series ({label, points:[{time, value}]}) between start and end
// (RFC 3339). It returns a <figure> with the chart, a legend giving each series' total, and
// the grand total.
export function lineChart({ title, start, end, series, unit = 'reveals', id }) {
  const t0 = Date.parse(start), t1 = Date.parse(end);
  let max = 0, grand = 0;
  const totals = series.map((sr) => {
    let sum = 0;
    for (const p of sr.points) { max = Math.max(max, p.value); sum += p.value; }
    grand += sum;
    return sum;
  });
  const ymax = niceMax(max);
  const { g, x, y } = axes(t0, t1, ymax);
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img', 'aria-label': `${title}: ${fmtInt(grand)} ${unit} in total` }, g);
  series.forEach((sr, i) => {
    const pts = sr.points.map((p) => `${x(Date.parse(p.time)).toFixed(1)},${y(p.value).toFixed(1)}`).join(' ');
    const cls = 'series-' + (i % 8);
    if (sr.points.length === 1) {
      const p = sr.points[0];
      svg.append(s('circle', { cx: x(Date.parse(p.time)), cy: y(p.value), r: 3, class: cls + ' dot' }, s('title', {}, `${sr.label}: ${p.value}`)));
    } else {
      svg.append(s('polyline', { points: pts, class: cls + ' line' }, s('title', {}, sr.label)));
    }
    for (const p of sr.points) {
      if (p.value > 0) svg.append(s('circle', { cx: x(Date.parse(p.time)), cy: y(p.value), r: 2.5, class: cls + ' dot' }, s('title', {}, `${sr.label} ${p.time}: ${p.value}`)));
    }
  });
  const legend = h('ul', { class: 'legend', 'aria-label': 'Series' }, series.map((sr, i) =>
    h('li', { dataset: { total: String(totals[i]) } }, h('span', { class: 'swatch series-' + (i % 8), 'aria-hidden': 'true' }), sr.label + ': ', h('strong', {}, fmtInt(totals[i])))));
  return h('figure', { class: 'chart-figure', id },
    h('figcaption', {}, title + ' — total ', h('strong', { class: 'chart-total', dataset: { total: String(grand) } }, fmtInt(grand))),
    series.length ? svg : h('p', { class: 'empty' }, 'No ' + unit + ' in this window.'),
    legend);
}

// barChart draws counts ({time, count}) as bars between start and end; bucketSeconds wide.
export function barChart({ title, start, end, points, bucketSeconds, cls = 'series-1', id }) {
  const t0 = Date.parse(start), t1 = Date.parse(end);
  let max = 0, sum = 0;
  for (const p of points) { max = Math.max(max, p.count); sum += p.count; }
  const ymax = niceMax(max);
  const { g, x, y } = axes(t0, t1, ymax);
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img', 'aria-label': `${title}: ${fmtInt(sum)} in total` }, g);
  const bw = Math.max(2, x(t0 + (bucketSeconds || 3600) * 1000) - x(t0) - 1);
  for (const p of points) {
    if (!p.count) continue;
    const bx = x(Date.parse(p.time));
    svg.append(s('rect', { x: bx, y: y(p.count), width: bw, height: Math.max(0, y(0) - y(p.count)), class: cls + ' bar' }, s('title', {}, `${p.time}: ${p.count}`)));
  }
  return h('figure', { class: 'chart-figure', id },
    h('figcaption', {}, title + ' — total ', h('strong', { class: 'chart-total', dataset: { total: String(sum) } }, fmtInt(sum))),
    svg);
}
