// The studio's one script: line charts on <canvas>, a run page fed by server-sent events, the comparison's
// overlaid curves. No library, nothing loaded from elsewhere; every name is set as text, never as HTML.
"use strict";

const COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"];

function niceNumber(value) {
  if (!Number.isFinite(value)) return "";
  const a = Math.abs(value);
  if (a !== 0 && (a < 1e-3 || a >= 1e5)) return value.toExponential(1);
  return String(Number(value.toPrecision(3)));
}

// series: [{name, points: [[x, y], ...]}]; draws axes, lines and a legend.
function drawChart(canvas, series, xLabel) {
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height, left = 56, right = 10, top = 10, bottom = 34;
  ctx.clearRect(0, 0, w, h);
  const all = series.flatMap(s => s.points).filter(p => Number.isFinite(p[0]) && Number.isFinite(p[1]));
  ctx.font = "11px sans-serif";
  ctx.fillStyle = "#444";
  if (all.length === 0) {
    ctx.fillText("no points yet", left, h / 2);
    canvas.dataset.points = "0";
    return;
  }
  let [x0, x1] = [Math.min(...all.map(p => p[0])), Math.max(...all.map(p => p[0]))];
  let [y0, y1] = [Math.min(...all.map(p => p[1])), Math.max(...all.map(p => p[1]))];
  if (x0 === x1) { x0 -= 1; x1 += 1; }
  if (y0 === y1) { y0 -= Math.abs(y0) * 0.1 + 1e-9; y1 += Math.abs(y1) * 0.1 + 1e-9; }
  const X = x => left + (x - x0) / (x1 - x0) * (w - left - right);
  const Y = y => top + (1 - (y - y0) / (y1 - y0)) * (h - top - bottom);
  ctx.strokeStyle = "#999";
  ctx.beginPath(); ctx.moveTo(left, top); ctx.lineTo(left, h - bottom); ctx.lineTo(w - right, h - bottom); ctx.stroke();
  for (let i = 0; i <= 4; i++) {
    const y = y0 + (y1 - y0) * i / 4, x = x0 + (x1 - x0) * i / 4;
    ctx.fillText(niceNumber(y), 2, Y(y) + 4);
    ctx.fillText(niceNumber(x), X(x) - 10, h - bottom + 14);
  }
  ctx.fillText(xLabel, w / 2 - 10, h - 4);
  series.forEach((s, i) => {
    const points = s.points.filter(p => Number.isFinite(p[0]) && Number.isFinite(p[1]));
    ctx.strokeStyle = COLOURS[i % COLOURS.length];
    ctx.fillStyle = ctx.strokeStyle;
    ctx.beginPath();
    points.forEach((p, j) => (j ? ctx.lineTo(X(p[0]), Y(p[1])) : ctx.moveTo(X(p[0]), Y(p[1]))));
    ctx.stroke();
    if (points.length === 1) ctx.fillRect(X(points[0][0]) - 2, Y(points[0][1]) - 2, 4, 4);
    ctx.fillText(s.name, left + 8, top + 12 + 13 * i);
  });
  canvas.dataset.points = String(all.length);
}

function epochSeries(rows) {
  const keys = new Set();
  rows.forEach(r => Object.keys(r).forEach(k => { if (k !== "epoch" && k !== "step") keys.add(k); }));
  return [...keys].filter(k => k.startsWith("val/") || k === "train/loss")
    .map(k => ({name: k, points: rows.map(r => [r.epoch, r[k]])}));
}

// The system figures (system/* of each epoch: CPU, memory, GPU), one small chart each: their scales differ.
function drawSystem(holder, rows) {
  if (!holder) return;
  const keys = new Set();
  rows.forEach(r => Object.keys(r).forEach(k => { if (k.startsWith("system/")) keys.add(k); }));
  keys.forEach(key => {
    let canvas = holder.querySelector(`canvas[data-metric="${CSS.escape(key)}"]`);
    if (!canvas) {
      const figure = document.createElement("figure");
      const caption = document.createElement("figcaption");
      caption.textContent = key;
      canvas = document.createElement("canvas");
      canvas.width = 360; canvas.height = 180;
      canvas.dataset.metric = key;
      figure.append(caption, canvas);
      holder.append(figure);
    }
    drawChart(canvas, [{name: key, points: rows.map(r => [r.epoch, r[key]])}], "epoch");
  });
}

function formatSeconds(s) {
  if (s === null || s === undefined || !Number.isFinite(s)) return "–";
  if (s < 90) return Math.round(s) + " s";
  if (s < 5400) return Math.round(s / 60) + " min";
  return (s / 3600).toFixed(1) + " h";
}

function watchRun(data) {
  const steps = [], metrics = [];
  const byId = id => document.getElementById(id);
  const figures = byId("figures"), shown = {};
  function redraw() {
    document.querySelectorAll("canvas[data-source=steps]").forEach(c =>
      drawChart(c, [{name: c.dataset.series, points: steps.map(r => [r.step, r[c.dataset.series]])}], "step"));
    drawChart(byId("chart-epochs"), epochSeries(metrics), "epoch");
    drawSystem(byId("system-charts"), metrics);
    byId("points").textContent = String(steps.length);
    byId("epochs").textContent = String(metrics.length);
  }
  function showFigures(versions) {
    Object.entries(versions || {}).forEach(([name, version]) => {
      let img = shown[name];
      if (!img) {
        const figure = document.createElement("figure");
        img = document.createElement("img");
        img.alt = name;
        const caption = document.createElement("figcaption");
        caption.textContent = name;
        figure.append(img, caption);
        figures.append(figure);
        shown[name] = img;
      }
      const src = data.files + "/" + name.split("/").map(encodeURIComponent).join("/") + "?v=" + version;
      if (img.getAttribute("src") !== src) img.setAttribute("src", src);
    });
  }
  const source = new EventSource(data.events);
  source.onopen = () => { byId("connection").textContent = "live"; };
  source.onerror = () => { byId("connection").textContent = "reconnecting…"; };
  source.addEventListener("end", () => { byId("connection").textContent = "ended"; source.close(); });
  source.onmessage = event => {
    const update = JSON.parse(event.data);
    if (update.problem) { byId("connection").textContent = update.problem; return; }
    if (update.reset) { steps.length = 0; metrics.length = 0; }
    steps.push(...update.steps);
    metrics.push(...update.metrics);
    byId("status").textContent = update.status_text;
    byId("status").dataset.status = update.status;
    byId("eta").textContent = formatSeconds(update.eta_seconds);
    const log = byId("log");
    const atEnd = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
    log.textContent = (update.log || []).join("\n");
    if (atEnd) log.scrollTop = log.scrollHeight;  // follow the tail, unless the reader scrolled up
    showFigures(update.figures);
    redraw();
  };
  redraw();
}

function compareRuns(curves) {
  const holder = document.getElementById("compare-charts");
  const runs = Object.keys(curves);
  const keys = new Set();
  runs.forEach(r => curves[r].metrics.forEach(row => Object.keys(row).forEach(k => {
    if (k !== "epoch" && k !== "step") keys.add(k);
  })));
  const charts = [["train/loss (steps)", r => curves[r].steps.map(s => [s.step, s["train/loss"]]), "step"],
    ...[...keys].map(k => [k, r => curves[r].metrics.map(m => [m.epoch, m[k]]), "epoch"])];
  charts.forEach(([title, points, xLabel]) => {
    const figure = document.createElement("figure");
    const caption = document.createElement("figcaption");
    caption.textContent = title;
    const canvas = document.createElement("canvas");
    canvas.width = 560; canvas.height = 260;
    canvas.dataset.metric = title;
    figure.append(caption, canvas);
    holder.append(figure);
    drawChart(canvas, runs.map(r => ({name: r, points: points(r)})), xLabel);
  });
}

// The queue page follows its jobs: while one is queued, running or stopping, it reloads every few seconds.
function followQueue(table) {
  if (table.querySelector("tr[data-state=queued], tr[data-state=running], tr[data-state=cancelling]")) {
    setTimeout(() => window.location.reload(), 3000);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  const jobs = document.getElementById("jobs");
  if (jobs) followQueue(jobs);
  const run = document.getElementById("run-data");
  if (run) watchRun(JSON.parse(run.textContent));
  const compared = document.getElementById("compare-data");
  if (compared) compareRuns(JSON.parse(compared.textContent));
});
