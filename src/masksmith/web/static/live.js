// masksmith web app: the live run page (its one clock, the charts, the connection banner). Needs app.js.
"use strict";

// ------------------------------------------------------------------------------------------ the live run page
const PALETTE = ["#1f6feb", "#e8590c", "#2f9e44", "#ae3ec9"];

function drawChart(svg, series, opts) {
  const W = 460, H = 220, L = 44, R = 12, T = 12, B = 46;
  const points = series.flatMap(s => s.values.filter(v => v[1] !== undefined && v[1] === v[1]));
  const ns = "http://www.w3.org/2000/svg";
  svg.innerHTML = "";
  function el(name, attrs, text) {
    const e = document.createElementNS(ns, name);
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    svg.appendChild(e); return e;
  }
  if (!points.length) { el("text", { x: W / 2, y: H / 2, "text-anchor": "middle" }, "the first point appears after the first epoch"); return; }
  const xs = points.map(p => p[0]);
  const x0 = Math.min(...xs, 1), x1 = Math.max(...xs, 2);
  let y0 = opts.min !== undefined ? opts.min : Math.min(...points.map(p => p[1]));
  let y1 = opts.max !== undefined ? opts.max : Math.max(...points.map(p => p[1]));
  if (y1 - y0 < 1e-6) { y1 += 0.5; y0 = Math.max(opts.min !== undefined ? opts.min : -Infinity, y0 - 0.5); }
  const sx = x => L + (x - x0) / (x1 - x0) * (W - L - R), sy = y => H - B - (y - y0) / (y1 - y0) * (H - T - B);
  for (let k = 0; k <= 4; k++) {
    const y = y0 + (y1 - y0) * k / 4;
    el("line", { x1: L, x2: W - R, y1: sy(y), y2: sy(y), class: "grid" });
    el("text", { x: L - 6, y: sy(y) + 4, "text-anchor": "end" }, y.toFixed(y1 - y0 < 0.1 ? 3 : 2));
  }
  el("line", { x1: L, x2: W - R, y1: H - B, y2: H - B, class: "axis" });
  el("text", { x: W - R, y: H - B + 28, "text-anchor": "end" }, "epoch");
  const step = Math.max(1, Math.ceil((x1 - x0) / 8));
  for (let x = Math.ceil(x0); x <= x1; x += step) el("text", { x: sx(x), y: H - B + 14, "text-anchor": "middle" }, x);
  let lx = L;
  series.forEach((s, k) => {
    const vals = s.values.filter(v => v[1] !== undefined && v[1] === v[1]);
    const color = PALETTE[k % PALETTE.length];
    if (vals.length) {
      el("polyline", { points: vals.map(v => sx(v[0]) + "," + sy(v[1])).join(" "), stroke: color });
      vals.forEach(v => el("circle", { cx: sx(v[0]), cy: sy(v[1]), r: 3.5, fill: color, class: "point" }));
    }
    el("rect", { x: lx, y: H - 11, width: 10, height: 10, fill: color });
    el("text", { x: lx + 14, y: H - 2 }, s.name);
    lx += 24 + s.name.length * 6.5;
  });
}

function formatDuration(seconds) {  // as masksmith.core.durations.format_duration: "45s", "4m 10s", "1h 05m"
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return s + "s";
  if (s < 3600) return Math.floor(s / 60) + "m " + String(s % 60).padStart(2, "0") + "s";
  return Math.floor(s / 3600) + "h " + String(Math.floor(s % 3600 / 60)).padStart(2, "0") + "m";
}

// the connection banner: "connection lost, reconnecting", then "reconnected" for a few seconds
const connection = {
  lost() {
    const box = $("#connection");
    if (!box) return;
    box.hidden = false; box.className = "banner lost";
    box.textContent = "Connection to the masksmith server lost; reconnecting… (training goes on without this page)";
    this.down = true;
  },
  back() {
    if (!this.down) return;
    this.down = false;
    const box = $("#connection");
    box.hidden = false; box.className = "banner back";
    box.textContent = "Reconnected to the masksmith server.";
    clearTimeout(this.timer);
    this.timer = setTimeout(() => { box.hidden = true; }, 6000);
  },
};

function setupRunPage(runId, progress, monitor, headline) {
  const metric = monitor;
  // one clock that never runs backwards: for the same budget, the bar only grows and the time left only
  // shrinks, whatever a new estimate says (a longer budget starts a new count)
  const shown = { key: null, fraction: 0, left: Infinity, elapsed: 0, at: Date.now() };
  const ACTIVE = ["queued", "running", "stopping"];
  function clock(p) {
    if (p.budget_key !== shown.key) { shown.key = p.budget_key; shown.fraction = 0; shown.left = Infinity; }
    shown.fraction = Math.max(shown.fraction, p.fraction || 0);
    shown.elapsed = Math.max(shown.elapsed, p.elapsed || 0);
    shown.at = Date.now();
    if (p.left !== undefined && p.left !== null) shown.left = Math.min(shown.left, p.left);
    const bar = $("#bar"), box = $("#progress");
    bar.style.width = (shown.fraction * 100).toFixed(1) + "%";
    box.setAttribute("aria-valuenow", Math.round(shown.fraction * 100));
    $("#elapsed").textContent = formatDuration(shown.elapsed);
    $("#elapsed").dataset.seconds = shown.elapsed;
    const running = ACTIVE.includes(p.state) && isFinite(shown.left);
    $("#left").textContent = running ? " · about " + formatDuration(shown.left) + " left" : "";
  }
  function show(p) {
    const state = $("#state");
    state.textContent = p.state; state.dataset.state = p.state;
    clock(p);
    $("#phase").textContent = p.phase;
    $("#epochs").textContent = " · " + p.epochs.length + " epoch(s)" + (p.max_epochs ? " of " + p.max_epochs : "");
    $("#resumed").hidden = !p.resumed;
    if (p.resumed) $("#resumed").textContent = "Resumed from its checkpoint" + (p.resumed_at ? " after epoch " + p.resumed_at : "") + ": the clock counts every session since Start.";
    const err = $("#run-error"); err.textContent = p.error || ""; err.hidden = !p.error;
    drawChart($("#loss-chart"), [
      { name: "training loss", values: p.epochs.map(r => [r.epoch, r.train_loss]) },
      { name: "validation loss", values: p.epochs.map(r => [r.epoch, r.val_loss]) }], {});
    drawChart($("#metric-chart"), [{ name: headline, values: p.epochs.map(r => [r.epoch, r[metric]]) }],
      { min: 0, max: 1 });
    if (p.preview) {
      const img = $("#preview"), src = "/runs/" + runId + "/previews/" + p.preview;
      if (img.dataset.shown !== p.preview) { img.src = src; img.dataset.shown = p.preview; }
      img.hidden = false;
      $("#no-preview").hidden = true;
    }
    const active = ACTIVE.includes(p.state);
    $("#stop").hidden = !active;
    $("#resume").hidden = active || p.state === "finished";
    $("#longer").hidden = $("#more").parentElement.hidden = active;
    $("#open-model").hidden = !p.model;
  }
  show(progress);
  // between messages the clock ticks on by itself while the job runs
  setInterval(() => {
    if (!ACTIVE.includes($("#state").dataset.state) || connection.down) return;
    const now = Date.now(), dt = (now - shown.at) / 1000;
    shown.at = now;
    shown.elapsed += dt;
    $("#elapsed").textContent = formatDuration(shown.elapsed);
    if (isFinite(shown.left)) {
      shown.left = Math.max(0, shown.left - dt);
      $("#left").textContent = " · about " + formatDuration(shown.left) + " left";
    }
  }, 1000);
  let source = null;
  function listen() {
    if (source) source.close();
    source = new EventSource("/runs/" + runId + "/events");
    source.onopen = () => connection.back();
    source.onmessage = ev => {
      connection.back();
      const p = JSON.parse(ev.data);
      show(p);
      if (!ACTIVE.includes(p.state)) { source.close(); source = null; }
    };
    // the server stopped or cannot be reached: say so; the browser reconnects by itself every few seconds
    source.onerror = () => { if (source && source.readyState !== EventSource.CLOSED) connection.lost(); else if (source) { connection.lost(); setTimeout(listen, 3000); } };
  }
  if (ACTIVE.includes(progress.state)) listen();
  $("#stop").addEventListener("click", async () => {
    try { await api("POST", "/api/runs/" + runId + "/stop"); say("Stopping: the checkpoint and the best model so far are kept.", "info"); }
    catch (e) { say(e.message); }
  });
  async function resume(body) {
    try { await api("POST", "/api/runs/" + runId + "/resume", body); say(""); listen(); }
    catch (e) { say(e.message); }
  }
  $("#resume").addEventListener("click", () => resume({}));
  $("#longer").addEventListener("click", () => resume({ more_minutes: $("#more").value }));
}
