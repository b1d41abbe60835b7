// Charts: sparklines (a small inline SVG, no library) and full time-series charts (uPlot, with
// drag-to-zoom and the alarm threshold drawn as a second series).

import {h, svg, visible} from './dom.js';

// points: [{t, v}] -> an <svg> polyline, scaled to its own range (0..100 for percentages).
export function sparkline(points, {width = 120, height = 24, max} = {}) {
  const el = svg('svg', {width, height, viewBox: `0 0 ${width} ${height}`, class: 'spark',
                         role: 'img'});
  if (!points || points.length === 0) {
    el.setAttribute('aria-label', 'no data');
    return el;
  }
  const t0 = Date.parse(points[0].t);
  const t1 = Date.parse(points[points.length - 1].t);
  let hi = max ?? Math.max(...points.map((p) => p.v));
  if (!(hi > 0)) hi = 1;
  const span = Math.max(1, t1 - t0);
  const xy = points.map((p) => {
    const x = ((Date.parse(p.t) - t0) / span) * (width - 2) + 1;
    const y = height - 1 - (Math.max(0, Math.min(p.v, hi)) / hi) * (height - 2);
    return x.toFixed(1) + ',' + y.toFixed(1);
  });
  el.appendChild(svg('polyline', {points: xy.join(' '), fill: 'none', class: 'spark-line'}));
  el.setAttribute('aria-label', `last ${points.length} points, latest ${points[points.length - 1].v.toFixed(1)}`);
  return el;
}

// A uPlot chart of points [{t, v}] with optional threshold and incident span
// ({from, to} in ms). Drag across the chart to zoom into a time range; double-click resets.
export function timeChart(parent, {title, points, threshold, comparison, span, width, height = 220,
                                  unit = ''}) {
  title = visible(title);  // a metric name is an agent's text
  const box = h('div', {class: 'chart', 'data-chart': title});
  parent.appendChild(box);
  if (typeof window.uPlot !== 'function') {
    box.appendChild(h('p', {class: 'error'}, 'Charts are unavailable (uPlot did not load).'));
    return null;
  }
  const xs = points.map((p) => Date.parse(p.t) / 1000);
  const ys = points.map((p) => p.v);
  const data = [xs, ys];
  const series = [{}, {label: title, stroke: '#2a6fdb', width: 1.5,
                       value: (u, v) => v == null ? '—' : v.toFixed(2) + unit}];
  if (typeof threshold === 'number') {
    data.push(xs.map(() => threshold));
    series.push({label: 'threshold ' + (comparison || '') + ' ' + threshold, stroke: '#d33',
                 dash: [6, 4], width: 1, points: {show: false}});
  }
  const opts = {
    title,
    width: width || Math.max(320, Math.min(1100, parent.clientWidth - 20)),
    height,
    series,
    // One point, or points within a second: a minute either side instead of uPlot's years.
    scales: {x: {time: true, range: (u, min, max) => (max - min < 1 ? [min - 60, max + 60] : [min, max])}},
    cursor: {drag: {x: true, y: false}},
    axes: [{}, {size: 60}],
    hooks: span ? {
      drawClear: [(u) => {
        const from = u.valToPos(span.from / 1000, 'x', true);
        const to = u.valToPos((span.to ?? Date.now()) / 1000, 'x', true);
        const ctx = u.ctx;
        ctx.save();
        ctx.fillStyle = 'rgba(255, 170, 0, 0.15)';
        ctx.fillRect(from, u.bbox.top, Math.max(1, to - from), u.bbox.height);
        ctx.restore();
      }],
    } : {},
  };
  const chart = new window.uPlot(opts, data, box);
  box.addEventListener('dblclick', () => chart.setScale('x', {min: xs[0], max: xs[xs.length - 1]}));
  return chart;
}
