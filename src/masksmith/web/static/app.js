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
  if (!response.ok) {
    const error = new Error((data && data.error) || ("the server answered " + response.status + "."));
    error.help = data && data.help;
    throw error;
  }
  return data;
}

function busy(button, on, text) {
  if (!button) return;
  if (on) { button.dataset.label = button.textContent; button.textContent = text || "Working…"; button.disabled = true; }
  else { button.textContent = button.dataset.label || button.textContent; button.disabled = false; }
}

function setupDrop(label, input, onFiles) {
  label.addEventListener("click", () => input.click());
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
    } catch (e) { failed(e); status.textContent = ""; busy(button, false); }
  });
  $("#folder-add").addEventListener("click", async () => {
    const button = $("#folder-add");
    busy(button, true, "Checking…"); say("");
    try {
      const made = await api("POST", "/api/datasets/folder", { path: $("#folder-path").value, name: $("#folder-name").value });
      location.href = made.url;
    } catch (e) { failed(e); busy(button, false); }
  });
  function failed(e) {
    say(e.message);
    if (e.help === "layout") { const box = $("#layouts"); box.open = true; box.scrollIntoView({ block: "nearest" }); }
  }
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

// the data set page's "label photos": add photos without annotations, the ranked "label next" list, and
// "continue training" (fine-tune the chosen model on the data set as it is now)
function setupLabelling() {
  const card = $("#labelling");
  if (!card) return;
  const id = card.dataset.id, model = $("#label-model"), list = $("#label-next");
  async function refresh() {
    const query = model.value ? "?model=" + model.value : "";
    list.innerHTML = "<li class='hint'>Ranking the unlabelled photos…</li>";
    try {
      const next = await api("GET", "/api/datasets/" + id + "/next" + query);
      list.innerHTML = "";
      if (!next.photos.length) list.innerHTML = "<li class='empty'>No unlabelled photos.</li>";
      next.photos.forEach(p => {
        const li = document.createElement("li"), a = document.createElement("a"), img = document.createElement("img");
        a.href = p.edit; img.src = p.thumb; img.alt = "proposed mask of " + p.name; img.loading = "lazy";
        a.appendChild(img);
        a.appendChild(document.createTextNode(p.name + (p.score === null ? "" : " · unsure " + (100 * p.score).toFixed(0) + " %")));
        li.appendChild(a); list.appendChild(li);
      });
      const counts = $("#label-counts");
      if (counts) counts.innerHTML = "<b>" + next.labelled + "</b> labelled, <b>" + next.unlabelled + "</b> unlabelled photos.";
    } catch (e) { list.innerHTML = ""; say(e.message); }
  }
  $("#photo-files").addEventListener("change", async ev => {
    const files = Array.from(ev.target.files);
    say("Adding " + files.length + " photo(s)…", "info");
    try {
      for (const f of files) await api("POST", "/api/datasets/" + id + "/photos?name=" + encodeURIComponent(f.name), undefined, f);
      say("Added " + files.length + " photo(s).", "info");
      location.reload();
    } catch (e) { say(e.message); }
  });
  model.addEventListener("change", refresh);
  const objects = $("#label-objects");
  if (objects) objects.addEventListener("click", async () => {
    busy(objects, true, "Making it an instance data set…");
    try { await api("POST", "/api/datasets/" + id + "/objects"); location.reload(); }
    catch (e) { say(e.message); busy(objects, false); }
  });
  const go = $("#continue-training");
  if (go) go.addEventListener("click", async () => {
    if (!model.value) { say("Choose the model to continue from."); return; }
    busy(go, true, "Starting…");
    try {
      const run = await api("POST", "/api/models/" + model.value + "/continue", { dataset: Number(id), minutes: Number($("#continue-minutes").value) });
      location.href = run.url;
    } catch (e) { say(e.message); busy(go, false); }
  });
  refresh();
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
  // how long to train: the data set's need and this machine's measured speed (masksmith.service.suggest_budget)
  let budget = null, asked = 0;
  async function suggest() {
    const ticket = ++asked, text = $("#suggestion-text");
    budget = null; showExpect();
    $("#suggestion-actions").hidden = true;
    text.textContent = "Measuring this machine's speed on this data set (the first time takes a moment)…";
    const task = $("input[name=task]:checked").value;
    try {
      const b = await api("GET", "/api/datasets/" + $("#dataset").value + "/budget?task=" + task + "&model=" + encodeURIComponent(model.value));
      if (ticket !== asked) return;
      budget = b;
      text.textContent = "This data set (" + b.train_images + " training photos at " + b.size + " px) needs about " +
        b.good_minutes + " min on this machine for a good model, " + b.usable_minutes + " min for a usable one (" +
        b.images_per_second.toFixed(1) + " photos a second" + (b.measured ? ", measured here" : ", estimated") +
        "). Preparing and scoring add a little to the wait.";
      $("#good-minutes").textContent = b.good_minutes; $("#usable-minutes").textContent = b.usable_minutes;
      $("#suggestion-actions").hidden = false;
      showExpect();
    } catch (e) { if (ticket === asked) text.textContent = "No suggestion: " + e.message; }
  }
  function expectFor(minutes) {  // the library's tiers: from how many minutes each quality is reached
    if (!budget || !(minutes > 0)) return null;
    const tier = budget.tiers.find(t => minutes >= t.minutes) || budget.tiers[budget.tiers.length - 1];
    return { level: tier.level, words: tier.words, epochs: minutes * 60 * budget.images_per_second / Math.max(1, budget.train_images) };
  }
  function showExpect() {
    const box = $("#expect"), e = expectFor(Number($("#minutes").value));
    box.className = "expect" + (e ? " " + e.level : "");
    box.textContent = e ? "With " + $("#minutes").value + " min: " + e.words + " (about " + e.epochs.toFixed(0) + (e.epochs.toFixed(0) === "1" ? " pass" : " passes") + " over the photos)." : "";
  }
  $$("input[name=task]").forEach(r => r.addEventListener("change", () => { fillModels(); suggest(); }));
  model.addEventListener("change", suggest);
  $("#dataset").addEventListener("change", suggest);
  fillModels(); suggest();
  $("#use-good").addEventListener("click", () => { $("#minutes").value = budget.good_minutes; $("#epochs").value = ""; showExpect(); });
  $("#use-usable").addEventListener("click", () => { $("#minutes").value = budget.usable_minutes; $("#epochs").value = ""; showExpect(); });
  $("#epochs").addEventListener("input", () => { if ($("#epochs").value) $("#minutes").value = ""; showExpect(); });
  $("#minutes").addEventListener("input", () => { if ($("#minutes").value) $("#epochs").value = ""; showExpect(); });
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
