// masksmith web app: a little plain JavaScript, no build step. Every action is a fetch to /api/...; errors come
// back as {"error": "one sentence"} and are shown at the top of the page.
"use strict";

function $(sel, root) { return (root || document).querySelector(sel); }
function $$(sel, root) { return Array.from((root || document).querySelectorAll(sel)); }

function say(text, kind) {
  const box = $("#message");
  if (!box) return;
  box.textContent = text;
  box.className = "message " + (kind || "error");
  box.hidden = !text;
  if (text) box.scrollIntoView({ block: "nearest" });
}

async function api(method, url, body, raw) {
  const options = { method, headers: {} };
  if (raw !== undefined) { options.body = raw; options.headers["Content-Type"] = "application/octet-stream"; }
  else if (body !== undefined) { options.body = JSON.stringify(body); options.headers["Content-Type"] = "application/json"; }
  let response;
  try { response = await fetch(url, options); }
  catch (e) { throw new Error("the masksmith server cannot be reached; is it still running?"); }
  let data = null;
  try { data = await response.json(); } catch (e) { data = null; }
  if (!response.ok) throw new Error((data && data.error) || ("the server answered " + response.status + "."));
  return data;
}

function busy(button, on, text) {
  if (!button) return;
  if (on) { button.dataset.label = button.textContent; button.textContent = text || "Working…"; button.disabled = true; }
  else { button.textContent = button.dataset.label || button.textContent; button.disabled = false; }
}

function setupDrop(label, input, onFiles) {
  ["dragenter", "dragover"].forEach(e => label.addEventListener(e, ev => { ev.preventDefault(); label.classList.add("over"); }));
  ["dragleave", "drop"].forEach(e => label.addEventListener(e, ev => { ev.preventDefault(); label.classList.remove("over"); }));
  label.addEventListener("drop", ev => { if (ev.dataTransfer.files.length) onFiles(ev.dataTransfer.files); });
  input.addEventListener("change", () => { if (input.files.length) onFiles(input.files); });
}

// ----------------------------------------------------------------------------------------------- data sets
function setupDatasetsPage() {
  let chosen = null;
  const input = $("#zip-file"), label = $("#zip-label"), status = $("#zip-status");
  setupDrop($("#zip-drop"), input, files => {
    chosen = files[0];
    label.textContent = chosen.name + " (" + (chosen.size / 1048576).toFixed(1) + " MB)";
    if (!$("#zip-name").value) $("#zip-name").value = chosen.name.replace(/\.zip$/i, "");
  });
  $("#zip-upload").addEventListener("click", async () => {
    if (!chosen) { say("Choose a .zip first."); return; }
    const button = $("#zip-upload");
    busy(button, true, "Uploading and checking…"); say("");
    status.textContent = "Uploading " + chosen.name + "…";
    try {
      const name = encodeURIComponent($("#zip-name").value || chosen.name);
      const made = await api("POST", "/api/datasets/upload?name=" + name, undefined, chosen);
      location.href = made.url;
    } catch (e) { say(e.message); status.textContent = ""; busy(button, false); }
  });
  $("#folder-add").addEventListener("click", async () => {
    const button = $("#folder-add");
    busy(button, true, "Checking…"); say("");
    try {
      const made = await api("POST", "/api/datasets/folder", { path: $("#folder-path").value, name: $("#folder-name").value });
      location.href = made.url;
    } catch (e) { say(e.message); busy(button, false); }
  });
}

function setupDatasetPage() {
  const save = $("#save-colors"), id = save.dataset.id;
  save.addEventListener("click", async () => {
    const colors = {};
    $$(".class-color").forEach(i => { colors[i.dataset.class] = i.value; });
    busy(save, true, "Saving…");
    try {
      await api("POST", "/api/datasets/" + id + "/colors", colors);
      $("#preview").src = "/datasets/" + id + "/preview.png?t=" + Date.now();
      say("Colours saved.", "info");
    } catch (e) { say(e.message); }
    busy(save, false);
  });
  $("#split").addEventListener("click", async ev => {
    const button = ev.target;
    busy(button, true, "Splitting…");
    try {
      const made = await api("POST", "/api/datasets/" + id + "/split",
        { val: $("#split-val").value, test: $("#split-test").value, seed: $("#split-seed").value });
      say("Made " + made.parts.map(p => p.name).join(", ") + ". Find them under Data sets.", "info");
    } catch (e) { say(e.message); }
    busy(button, false);
  });
  $("#delete-dataset").addEventListener("click", async ev => {
    const b = ev.target;
    if (!confirm("Delete the data set “" + b.dataset.name + "”? A folder on this machine is left as it is.")) return;
    try { await api("DELETE", "/api/datasets/" + b.dataset.id); location.href = "/datasets"; }
    catch (e) { say(e.message); }
  });
}

// ---------------------------------------------------------------------------------------------------- train
function setupTrainPage() {
  const form = $("#train-form");
  if (!form) return;
  const model = $("#model");
  function fillModels() {
    const task = $("input[name=task]:checked").value;
    model.innerHTML = "";
    model.dataset[task].split(",").forEach((name, k) => {
      const o = document.createElement("option");
      o.value = name; o.textContent = name + (k === 0 ? " (recommended)" : "");
      model.appendChild(o);
    });
  }
  $$("input[name=task]").forEach(r => r.addEventListener("change", fillModels));
  fillModels();
  $("#epochs").addEventListener("input", () => { if ($("#epochs").value) $("#minutes").value = ""; });
  $("#minutes").addEventListener("input", () => { if ($("#minutes").value) $("#epochs").value = ""; });
  function formBody() {
    return {
      dataset: $("#dataset").value, task: $("input[name=task]:checked").value, model: model.value,
      minutes: $("#minutes").value, epochs: $("#epochs").value, size: $("#size").value, shrink: $("#shrink").value,
      batch_size: $("#batch_size").value, lr: $("#lr").value, val_fraction: $("#val_fraction").value,
      flip: $("#flip").checked, pretrained: $("#pretrained").checked, name: $("#run-name").value,
    };
  }
  // the library's plan for this budget on this machine (masksmith.service.plan_summary): passes and finish
  $("#plan-button").addEventListener("click", async () => {
    const button = $("#plan-button");
    busy(button, true, "Measuring this machine…"); say("");
    try {
      const p = await api("POST", "/api/plan", formBody());
      $("#plan-headline").textContent = p.passes != null
        ? "About " + p.passes + " passes over your photos in " + p.train_text + " of training; finished by " +
          p.finish_text + (p.enough === false ? " (a longer budget would train better: see the plan)" : "") + "."
        : "Trained by epochs: no time budget to spend.";
      $("#plan-lines").textContent = p.lines.join("\n");
      $("#plan-summary").hidden = false;
    } catch (e) { say(e.message); }
    busy(button, false);
  });
  $("#start").addEventListener("click", async () => {
    const button = $("#start");
    const body = formBody();
    busy(button, true, "Starting…"); say("");
    try { const made = await api("POST", "/api/runs", body); location.href = made.url; }
    catch (e) { say(e.message); busy(button, false); }
  });
}

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

function setupRunPage(runId, progress, monitor, headline) {
  const metric = monitor;
  function show(p) {
    const state = $("#state");
    state.textContent = p.state; state.dataset.state = p.state;
    $("#bar").style.width = ((p.fraction || 0) * 100).toFixed(1) + "%";
    $("#phase").textContent = p.phase;
    $("#epochs").textContent = " · " + p.epochs.length + " epoch(s)" + (p.max_epochs ? " of " + p.max_epochs : "");
    $("#left").textContent = (p.time_left && p.state === "running" ? " · " + p.time_left + " left" : "") +
      (p.finish && p.state === "running" ? " · finished by " + p.finish : "") +
      (p.planned_passes != null ? " · planned: " + p.planned_passes + " passes over the data" : "");
    const err = $("#run-error"); err.textContent = p.error || ""; err.hidden = !p.error;
    const epochs = p.epochs.map(r => r.epoch);
    drawChart($("#loss-chart"), [
      { name: "training loss", values: p.epochs.map(r => [r.epoch, r.train_loss]) },
      { name: "validation loss", values: p.epochs.map(r => [r.epoch, r.val_loss]) }], {});
    drawChart($("#metric-chart"), [{ name: headline, values: p.epochs.map(r => [r.epoch, r[metric]]) }],
      { min: 0, max: 1 });
    if (p.preview) {
      const img = $("#preview"), src = "/runs/" + runId + "/previews/" + p.preview;
      if (img.dataset.shown !== p.preview) { img.src = src; img.dataset.shown = p.preview; }
      $("#no-preview").hidden = true;
    }
    const active = ["queued", "running", "stopping"].includes(p.state);
    $("#stop").hidden = !active;
    $("#resume").hidden = active || p.state === "finished";
    $("#longer").hidden = $("#more").parentElement.hidden = active;
    $("#open-model").hidden = !p.model;
    return epochs;
  }
  show(progress);
  let source = null;
  function listen() {
    if (source) source.close();
    source = new EventSource("/runs/" + runId + "/events");
    source.onmessage = ev => {
      const p = JSON.parse(ev.data);
      show(p);
      if (!["queued", "running", "stopping"].includes(p.state)) { source.close(); source = null; }
    };
    source.onerror = () => { /* the browser reconnects by itself */ };
  }
  if (["queued", "running", "stopping"].includes(progress.state)) listen();
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

// --------------------------------------------------------------------------------------------------- models
function setupModelPage() {
  const del = $("#delete-model");
  if (del) del.addEventListener("click", async () => {
    if (!confirm("Delete the model “" + del.dataset.name + "” and its run folder?")) return;
    try { await api("DELETE", "/api/models/" + del.dataset.id); location.href = "/models"; }
    catch (e) { say(e.message); }
  });
  const ev = $("#evaluate");
  if (ev) ev.addEventListener("click", async () => {
    busy(ev, true, "Evaluating…"); $("#eval-status").textContent = "this takes a moment per image";
    try { await api("POST", "/api/models/" + ev.dataset.id + "/evaluate", { dataset: $("#eval-dataset").value }); location.reload(); }
    catch (e) { say(e.message); busy(ev, false); $("#eval-status").textContent = ""; }
  });
}

// --------------------------------------------------------------------------------------------------- try it
function setupTryPage(runId) {
  const slider = $("#opacity"), shown = $("#opacity-value"), status = $("#try-status");
  function applyOpacity() {
    shown.textContent = Number(slider.value).toFixed(2);
    $$(".result").forEach(card => {
      $(".mask", card).style.opacity = slider.value;
      $(".dl-overlay", card).href = card.dataset.overlay + "?opacity=" + slider.value;
    });
  }
  slider.addEventListener("input", applyOpacity);
  async function tryFiles(files) {
    say("");
    for (const file of Array.from(files)) {
      status.textContent = "Predicting " + file.name + "…";
      try {
        const r = await api("POST", "/api/models/" + runId + "/try?filename=" + encodeURIComponent(file.name), undefined, file);
        addResult(r);
      } catch (e) { say(file.name + ": " + e.message); }
    }
    status.textContent = "";
    applyOpacity();
  }
  function addResult(r) {
    const card = $("#result-template").content.firstElementChild.cloneNode(true);
    card.dataset.token = r.token; card.dataset.overlay = r.overlay;
    $(".result-name", card).textContent = r.filename + " (" + r.size[0] + "×" + r.size[1] + ")";
    $(".photo", card).src = r.urls.photo;
    $(".mask", card).src = r.urls.color;
    $(".found", card).textContent = r.found.length ? "Found: " + r.found.join(", ") + " (" + r.objects + " object(s))." : "The model found nothing of its classes here.";
    const links = { ".dl-mask": r.urls.mask, ".dl-color": r.urls.color, ".dl-zip": r.zip };
    for (const k in links) $(k, card).href = links[k];
    const cut = $(".cutouts", card);
    const cutouts = Object.keys(r.urls).filter(k => k.startsWith("cutout_"));
    cutouts.slice(0, 24).forEach(k => {
      const a = document.createElement("a"); a.href = r.urls[k]; a.download = "";
      const img = document.createElement("img"); img.src = r.urls[k]; img.alt = "cut-out"; a.appendChild(img); cut.appendChild(a);
    });
    $(".cutouts-box", card).hidden = !cutouts.length;
    // the parts the model did not find in this photo cannot be recoloured: say so in the lists, and start on a
    // part it did find (the wheel list keeps its wheel class when there is one)
    ["recolor-class", "wheels-class"].forEach(cls => {
      const select = $("." + cls, card);
      $$("option", select).forEach(o => {
        if (!r.found.includes(o.value)) { o.disabled = true; o.textContent = o.value + " (not found here)"; }
      });
      if (select.selectedOptions[0] && select.selectedOptions[0].disabled) {
        const first = $$("option", select).find(o => !o.disabled);
        if (first) select.value = first.value;
      }
    });
    async function runApp(kind, body, button, caption, color) {
      busy(button, true);
      try {
        const made = await api("POST", "/api/results/" + r.token + "/" + kind, body);
        // one picture per app: a second recolour replaces the first, the new wheels stay beside it
        let fig = $(".app-result." + kind, card);
        if (!fig) {
          fig = document.createElement("figure"); fig.className = "app-result " + kind;
          fig.innerHTML = '<figcaption><span class="what"></span> <a class="button small primary download" download>Download</a></figcaption><img>';
          $(".app-results", card).appendChild(fig);
        }
        $(".what", fig).textContent = caption;
        if (color) { const i = document.createElement("i"); i.className = "swatch"; i.style.background = color; $(".what", fig).prepend(i); }
        const a = $("a.download", fig); a.href = made.url; a.download = made.file;
        const img = $("img", fig); img.src = made.url; img.alt = caption;
        fig.scrollIntoView({ block: "nearest" });
      } catch (e) { say(e.message); }
      busy(button, false);
    }
    const rb = $(".recolor-go", card), wb = $(".wheels-go", card);
    rb.addEventListener("click", () => {
      const part = $(".recolor-class", card).value, color = $(".recolor-color", card).value;
      runApp("recolor", { class: part, color }, rb, "The " + part + " recoloured to " + color, color);
    });
    wb.addEventListener("click", () => {
      const part = $(".wheels-class", card).value;
      runApp("wheels", { class: part }, wb, "New wheels on every " + part);
    });
    $("#results").prepend(card);
  }
  setupDrop($("#photo-drop"), $("#photos"), tryFiles);
}
