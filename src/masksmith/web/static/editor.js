// The mask editor: the photo with its class-value mask as a coloured layer on one canvas; brush, eraser,
// polygon, fill, undo/redo, zoom and pan, opacity, a class picker (number keys), "accept as is" and save.
// The mask is a Uint8Array of class values (0 background, 1..N classes, 255 void), one per photo pixel; the
// save posts it as a PNG whose R = G = B = the value (the server checks its size and values). No build step.
// In an instance data set (data-objects="1") the photo holds objects: state.objects is a Uint8Array of object
// ids (0 none, 1..255) and state.objectClass maps an id to its class value; state.labels is kept as the class
// of each pixel's object, so drawing and colouring are the same code. Select (V) picks objects (Shift adds),
// Delete removes them, M merges them into one, X splits one into its connected parts, C gives them the picked
// class; brush, polygon and fill paint the selected object when it is of the picked class, else a new object of
// that class (the eraser clears any object).
"use strict";

const UNDO_LIMIT = 40;

// Unsaved edits are kept in IndexedDB after every finished stroke (a typed array is stored as it is), so a
// crash or a closed tab loses at most the stroke under way; a save removes the draft.
const drafts = {
  open() {
    return new Promise((ok, bad) => {
      const request = indexedDB.open("masksmith-editor", 1);
      request.onupgradeneeded = () => request.result.createObjectStore("drafts");
      request.onsuccess = () => ok(request.result);
      request.onerror = () => bad(request.error);
    });
  },
  async run(mode, action) {
    const db = await this.open();
    return new Promise((ok, bad) => {
      const tx = db.transaction("drafts", mode), request = action(tx.objectStore("drafts"));
      tx.oncomplete = () => { db.close(); ok(request.result); };
      tx.onerror = () => { db.close(); bad(tx.error); };
    });
  },
  get(key) { return this.run("readonly", store => store.get(key)); },
  put(key, value) { return this.run("readwrite", store => store.put(value, key)); },
  drop(key) { return this.run("readwrite", store => store.delete(key)); },
};

// one editor per page: its elements and state
let root, W, H, view, ctx, classes, palette, layer, lctx, photo, state, draftKey;
let frame = 0, keeping = 0, stroke = null, panning = null, spaceDown = false;
// a zoomed-out view draws the photo and the layer from copies at the view's scale, so a frame costs the
// view's pixels, not the photo's (a 12-megapixel photo); a stroke updates its box of the layer's copy
let shrunk = null, shrinking = 0;
// a stroke redraws only the view's rectangle over the boxes it recoloured (`dirty`, photo pixels): a whole-view
// frame costs milliseconds of rasterising in software and is paid once per frame; anything else that changes
// the picture (zoom, pan, opacity, undo, selection) asks for a whole frame (`whole`)
let dirty = null, whole = true, drawnAt = "";
const MAX_OBJECTS = 255;  // object ids are one byte

function setupEditor() {
  root = $("#editor");
  W = Number(root.dataset.width); H = Number(root.dataset.height);
  view = $("#view"); ctx = view.getContext("2d");
  classes = JSON.parse($("#class-colors").textContent);
  palette = new Uint8Array(256 * 4);  // RGBA of each value; background and void transparent
  classes.forEach(c => palette.set([c.color[0], c.color[1], c.color[2], 255], 4 * c.value));
  layer = document.createElement("canvas");  // the mask in colour, at the photo's size
  layer.width = W; layer.height = H;
  lctx = layer.getContext("2d");
  photo = new Image();
  state = { labels: new Uint8Array(W * H), tool: "brush", value: classes.length ? classes[0].value : 1,
    size: 12, opacity: 0.55, scale: 1, ox: 0, oy: 0, undo: [], redo: [], polygon: [], dirty: false,
    saved: 0, loaded: false, draft: "", snap: false, superpixels: null, toScreen,
    instance: root.dataset.objects === "1", objects: null, objectClass: {}, selected: new Set() };
  if (state.instance) state.objects = new Uint8Array(W * H);
  draftKey = location.pathname.split("?")[0] + "|" + W + "x" + H;
  window.editor = state;  // tests and the console read the state
  bindPointer();
  bindControls();
  bindKeys();
  load().catch(e => say(e.message));
}

// ------------------------------------------------------------------------------------------ drawing
function paintLayer(x0, y0, x1, y1) {  // recolour the layer inside a box (inclusive-exclusive)
  const o = state.instance ? 2 : 0;  // a selected object's outline (two pixels wide) changes two pixels around
  x0 = Math.max(0, Math.floor(x0) - o); y0 = Math.max(0, Math.floor(y0) - o);
  x1 = Math.min(W, Math.ceil(x1) + o); y1 = Math.min(H, Math.ceil(y1) + o);
  if (x1 <= x0 || y1 <= y0) return;
  // a pixel more around it (the shrunk copy's smoothing reads them), in an ImageData of its own: a photo-sized
  // one would be copied whole at every dab, and so would the layer if it were drawn from while painted
  const ex0 = Math.max(0, x0 - 1), ey0 = Math.max(0, y0 - 1), ex1 = Math.min(W, x1 + 1), ey1 = Math.min(H, y1 + 1);
  const w = ex1 - ex0, h = ey1 - ey0, box = lctx.createImageData(w, h), d = box.data, L = state.labels;
  const O = state.instance && state.selected.size ? state.objects : null, sel = state.selected;
  for (let y = ey0; y < ey1; y++) {
    for (let x = ex0, i = y * W + ex0, o = 4 * (y - ey0) * w; x < ex1; x++, i++, o += 4) {
      const id = O && O[i];
      if (id && sel.has(id) && (x < 2 || y < 2 || x >= W - 2 || y >= H - 2 || O[i - 1] !== id || O[i + 1] !== id ||
          O[i - W] !== id || O[i + W] !== id || O[i - 2] !== id || O[i + 2] !== id || O[i - 2 * W] !== id || O[i + 2 * W] !== id)) {
        d[o] = 255; d[o + 1] = 255; d[o + 2] = 255; d[o + 3] = 255; continue;  // a selected object's outline
      }
      const p = 4 * L[i];
      d[o] = palette[p]; d[o + 1] = palette[p + 1]; d[o + 2] = palette[p + 2]; d[o + 3] = palette[p + 3];
    }
  }
  lctx.putImageData(box, ex0, ey0);
  dirty = dirty ? [Math.min(dirty[0], ex0), Math.min(dirty[1], ey0), Math.max(dirty[2], ex1), Math.max(dirty[3], ey1)]
    : [ex0, ey0, ex1, ey1];
  if (shrunk) {
    const k = shrunk.scale, scratch = shrunk.scratch;
    if (scratch.width < w || scratch.height < h) { scratch.width = Math.max(w, scratch.width); scratch.height = Math.max(h, scratch.height); }
    scratch.getContext("2d").putImageData(box, 0, 0);
    shrunk.lctx.clearRect(x0 * k, y0 * k, (x1 - x0) * k, (y1 - y0) * k);
    shrunk.lctx.drawImage(scratch, x0 - ex0, y0 - ey0, x1 - x0, y1 - y0, x0 * k, y0 * k, (x1 - x0) * k, (y1 - y0) * k);
  }
}
function shrink() {  // the copies at the current scale (below 1), made once the zoom has settled
  shrunk = null;
  if (state.scale >= 1 || !photo.complete) return;
  const k = state.scale, w = Math.max(1, Math.ceil(W * k)), h = Math.max(1, Math.ceil(H * k));
  const make = source => {
    const c = document.createElement("canvas");
    c.width = w; c.height = h;
    const g = c.getContext("2d");
    g.imageSmoothingQuality = "high";
    g.drawImage(source, 0, 0, W * k, H * k);
    return [c, g];
  };
  const [photoCopy] = make(photo), [layerCopy, layerCtx] = make(layer);
  shrunk = { scale: k, photo: photoCopy, layer: layerCopy, lctx: layerCtx, scratch: document.createElement("canvas") };
  later();
}
function render() {
  const r = view.getBoundingClientRect(), dpr = window.devicePixelRatio || 1;
  if (view.width !== Math.round(r.width * dpr) || view.height !== Math.round(r.height * dpr)) {
    view.width = Math.round(r.width * dpr); view.height = Math.round(r.height * dpr);
  }
  const copies = shrunk && shrunk.scale === state.scale;
  // the same view as the last frame (size, zoom, pan, copies): only the dirty rectangle needs drawing again
  const at = [view.width, view.height, dpr, state.scale, state.ox, state.oy, Boolean(copies), state.opacity].join();
  const box = !whole && at === drawnAt && dirty;
  whole = false; drawnAt = at; dirty = null;
  ctx.save();
  ctx.setTransform(1, 0, 0, 1, 0, 0);
  if (box) {
    const s = state.scale * dpr, x0 = Math.floor(state.ox * dpr + box[0] * s) - 2, y0 = Math.floor(state.oy * dpr + box[1] * s) - 2;
    ctx.beginPath();
    ctx.rect(x0, y0, Math.ceil(state.ox * dpr + box[2] * s) + 2 - x0, Math.ceil(state.oy * dpr + box[3] * s) + 2 - y0);
    ctx.clip();
  }
  ctx.fillStyle = "#222"; ctx.fillRect(0, 0, view.width, view.height);
  if (!copies && state.scale < 1) { clearTimeout(shrinking); shrinking = setTimeout(shrink, 150); }
  const k = copies ? 1 : state.scale;
  ctx.setTransform(k * dpr, 0, 0, k * dpr, state.ox * dpr, state.oy * dpr);
  ctx.imageSmoothingEnabled = state.scale < 1;
  if (photo.complete) copies ? ctx.drawImage(shrunk.photo, 0, 0) : ctx.drawImage(photo, 0, 0, W, H);
  ctx.globalAlpha = state.opacity;
  ctx.drawImage(copies ? shrunk.layer : layer, 0, 0);
  ctx.globalAlpha = 1;
  if (state.polygon.length) {
    ctx.setTransform(state.scale * dpr, 0, 0, state.scale * dpr, state.ox * dpr, state.oy * dpr);
    ctx.lineWidth = 2 / state.scale; ctx.strokeStyle = "#fff"; ctx.beginPath();
    state.polygon.forEach(([x, y], i) => i ? ctx.lineTo(x, y) : ctx.moveTo(x, y));
    ctx.stroke();
  }
  ctx.restore();
}
// the next frame: the whole view, or with `part` only what strokes recoloured since the last one
function later(part) {
  if (!part) whole = true;
  if (!frame) frame = requestAnimationFrame(() => { frame = 0; render(); });
}

function fit() {
  const r = view.getBoundingClientRect();
  state.scale = Math.min(r.width / W, r.height / H) || 1;
  state.ox = (r.width - W * state.scale) / 2; state.oy = (r.height - H * state.scale) / 2;
  later();
}
function zoom(factor, cx, cy) {
  const r = view.getBoundingClientRect();
  cx = cx === undefined ? r.width / 2 : cx; cy = cy === undefined ? r.height / 2 : cy;
  const scale = Math.min(64, Math.max(0.02, state.scale * factor));
  state.ox = cx - (cx - state.ox) * scale / state.scale; state.oy = cy - (cy - state.oy) * scale / state.scale;
  state.scale = scale; later();
}
function toPhoto(ev) {  // event -> photo pixel coordinates (floating)
  const r = view.getBoundingClientRect();
  return [(ev.clientX - r.left - state.ox) / state.scale, (ev.clientY - r.top - state.oy) / state.scale];
}
function toScreen(x, y) {  // photo pixel -> page coordinates (for tests)
  const r = view.getBoundingClientRect();
  return [r.left + state.ox + (x + 0.5) * state.scale, r.top + state.oy + (y + 0.5) * state.scale];
}

// ------------------------------------------------------------------------------------------ edits
// an undo step: the class values, or in an instance data set the object ids and their classes
function snapshot() {
  return state.instance ? { ids: state.objects.slice(), classes: { ...state.objectClass } } : state.labels.slice();
}
function apply(snap) {
  if (!state.instance) { state.labels = snap; return; }
  state.objects = snap.ids; state.objectClass = snap.classes;
  state.selected = new Set([...state.selected].filter(id => id in state.objectClass));
  syncLabels();
}
function syncLabels() {  // each pixel's class from its object
  const O = state.objects, L = state.labels, lut = new Uint8Array(256);
  Object.entries(state.objectClass).forEach(([id, value]) => { lut[Number(id)] = value; });
  for (let i = 0; i < O.length; i++) L[i] = lut[O[i]];
}
function value(i) { return state.instance ? state.objects[i] : state.labels[i]; }  // what the tools edit
function put(i, v) {  // v: a class value, or in an instance data set an object id (0: none)
  if (state.instance) { state.objects[i] = v; state.labels[i] = v ? state.objectClass[v] : 0; }
  else state.labels[i] = v;
}
function remember() {
  state.undo.push(snapshot());
  if (state.undo.length > UNDO_LIMIT) state.undo.shift();
  state.redo = []; state.dirty = true; status("");
}
function restore(from, to) {
  if (!from.length) return;
  to.push(snapshot());
  apply(from.pop()); state.dirty = true;
  paintLayer(0, 0, W, H); later(); keep();
}
function keep() {  // the draft, a moment after the last finished edit
  clearTimeout(keeping);
  keeping = setTimeout(() => {
    const draft = state.instance ? { ...snapshot(), time: Date.now() } : { labels: state.labels.slice(), time: Date.now() };
    drafts.put(draftKey, draft).then(() => { state.draft = "kept"; })
      .catch(() => { state.draft = "unavailable"; });
  }, 150);
}

// ------------------------------------------------------------------------------------------ objects
function newObject(classValue) {  // a new object id of class `classValue` (null when 255 are in use)
  for (let id = 1; id <= MAX_OBJECTS; id++) if (!(id in state.objectClass)) { state.objectClass[id] = classValue; return id; }
  say("a photo holds at most " + MAX_OBJECTS + " objects: merge or delete some first.");
  return null;
}
function target() {  // what a tool paints: the class value, or the selected object when it is of the picked
  if (!state.instance) return state.value;  // class (else a new object of that class, then selected)
  const one = state.selected.size === 1 && [...state.selected][0];
  if (one && state.objectClass[one] === state.value) return one;
  const id = newObject(state.value);
  if (id !== null) select([id]);
  return id;
}
function select(ids, add) {
  const next = add ? new Set(state.selected) : new Set();
  ids.forEach(id => { if (add && next.has(id)) next.delete(id); else if (id) next.add(id); });
  state.selected = next;
  paintLayer(0, 0, W, H); later();
  const names = [...next].map(id => "#" + id + " " + className(state.objectClass[id]));
  status(next.size ? "Selected " + names.join(", ") + "." : "");
}
function className(v) { const c = classes.find(c => c.value === v); return c ? c.name : "?"; }
function objectsIn(ids) {  // pixels of the objects `ids`, and their box
  const O = state.objects, out = [];
  let x0 = W, y0 = H, x1 = -1, y1 = -1;
  for (let i = 0; i < O.length; i++) if (ids.has(O[i])) {
    out.push(i);
    const x = i % W, y = (i - x) / W;
    if (x < x0) x0 = x; if (x > x1) x1 = x; if (y < y0) y0 = y; if (y > y1) y1 = y;
  }
  return { pixels: out, box: [x0, y0, x1 + 1, y1 + 1] };
}
function classifySelected() {  // the selected objects take the picked class
  if (!state.instance || !state.selected.size) return;
  remember();
  state.selected.forEach(id => { state.objectClass[id] = state.value; });
  syncLabels(); paintLayer(0, 0, W, H); later(); keep();
  status("The selected object" + (state.selected.size > 1 ? "s are " : " is ") + className(state.value) + " now.");
}
function deleteSelected() {
  if (!state.instance || !state.selected.size) return;
  remember();
  const { pixels } = objectsIn(state.selected);
  pixels.forEach(i => put(i, 0));
  state.selected.forEach(id => delete state.objectClass[id]);
  const n = state.selected.size;
  state.selected = new Set(); paintLayer(0, 0, W, H); later(); keep();
  status("Deleted " + n + " object" + (n > 1 ? "s" : "") + ".");
}
function mergeSelected() {
  if (!state.instance) return;
  if (state.selected.size < 2) { status("Select two objects or more to merge (Shift+click adds one)."); return; }
  remember();
  const ids = [...state.selected].sort((a, b) => a - b), into = ids[0];
  objectsIn(state.selected).pixels.forEach(i => put(i, into));
  ids.slice(1).forEach(id => delete state.objectClass[id]);
  select([into]); keep();
  status("Merged " + ids.length + " objects into #" + into + " " + className(state.objectClass[into]) + ".");
}
function splitSelected() {  // the selected object's 4-connected parts: the largest keeps its id, each other a new one
  if (!state.instance) return;
  if (state.selected.size !== 1) { status("Select one object to split."); return; }
  const id = [...state.selected][0], O = state.objects, { pixels } = objectsIn(state.selected);
  const part = new Int32Array(W * H).fill(-1), parts = [];
  pixels.forEach(start => {
    if (part[start] >= 0) return;
    const members = [start], k = parts.length;
    part[start] = k;
    for (let n = 0; n < members.length; n++) {
      const i = members[n], x = i % W;
      for (const j of [x > 0 ? i - 1 : -1, x < W - 1 ? i + 1 : -1, i - W, i + W]) {
        if (j >= 0 && j < W * H && O[j] === id && part[j] < 0) { part[j] = k; members.push(j); }
      }
    }
    parts.push(members);
  });
  if (parts.length < 2) { status("The object is in one piece: erase a line across it first, then split (X)."); return; }
  remember();
  parts.sort((a, b) => b.length - a.length);
  const made = [id];
  for (const members of parts.slice(1)) {
    const fresh = newObject(state.objectClass[id]);
    if (fresh === null) break;
    members.forEach(i => put(i, fresh)); made.push(fresh);
  }
  select(made); keep();
  status("Split #" + id + " into " + made.length + " objects.");
}
function dab(x, y, value) {
  const r = state.size / 2, r2 = r * r;
  const x0 = Math.max(0, Math.floor(x - r)), x1 = Math.min(W - 1, Math.ceil(x + r));
  const y0 = Math.max(0, Math.floor(y - r)), y1 = Math.min(H - 1, Math.ceil(y + r));
  for (let py = y0; py <= y1; py++) {
    for (let px = x0; px <= x1; px++) {
      const dx = px + 0.5 - x, dy = py + 0.5 - y;
      if (dx * dx + dy * dy <= Math.max(r2, 0.5)) {
        put(py * W + px, value);
        if (stroke && stroke.covered) stroke.covered[py * W + px] = 1;
      }
    }
  }
  paintLayer(x0, y0, x1 + 1, y1 + 1);
}
function line(a, b, value) {
  const steps = Math.max(1, Math.ceil(Math.hypot(b[0] - a[0], b[1] - a[1]) / Math.max(0.5, state.size / 4)));
  for (let k = 1; k <= steps; k++) dab(a[0] + (b[0] - a[0]) * k / steps, a[1] + (b[1] - a[1]) * k / steps, value);
}
// snap to edges: the stroke grows to every superpixel it covers at least half of, and gives back the pixels
// of superpixels it barely touched (their values before the stroke)
async function loadSuperpixels() {
  if (state.superpixels) return state.superpixels;
  const image = new Image();
  await new Promise((ok, bad) => { image.onload = ok; image.onerror = () => bad(new Error("the photo's edges cannot be found.")); image.src = root.dataset.superpixels; });
  const c = document.createElement("canvas");
  c.width = W; c.height = H;
  const g = c.getContext("2d", { willReadFrequently: true });
  g.drawImage(image, 0, 0);
  const d = g.getImageData(0, 0, W, H).data, ids = new Int32Array(W * H);
  let top = 0;
  for (let i = 0; i < W * H; i++) { ids[i] = d[4 * i] + 256 * d[4 * i + 1] + 65536 * d[4 * i + 2]; if (ids[i] > top) top = ids[i]; }
  const total = new Int32Array(top + 1), box = new Int32Array(4 * (top + 1)).fill(-1);
  for (let i = 0; i < W * H; i++) {
    const id = ids[i], x = i % W, y = (i - x) / W, b = 4 * id;
    total[id]++;
    if (box[b] < 0) { box[b] = x; box[b + 1] = y; box[b + 2] = x; box[b + 3] = y; }
    else { if (x < box[b]) box[b] = x; if (x > box[b + 2]) box[b + 2] = x; if (y > box[b + 3]) box[b + 3] = y; }
  }
  state.superpixels = { ids, total, box };
  return state.superpixels;
}
function snapStroke(done) {
  const sp = state.superpixels, last = state.undo[state.undo.length - 1];
  if (!sp || !last) return;
  const before = state.instance ? last.ids : last;
  const covered = new Map();
  for (let i = 0; i < W * H; i++) if (done.covered[i]) covered.set(sp.ids[i], (covered.get(sp.ids[i]) || 0) + 1);
  covered.forEach((n, id) => {
    const grow = n * 2 >= sp.total[id], b = 4 * id;
    for (let y = sp.box[b + 1]; y <= sp.box[b + 3]; y++) for (let x = sp.box[b]; x <= sp.box[b + 2]; x++) {
      const i = y * W + x;
      if (sp.ids[i] !== id) continue;
      if (grow) put(i, done.value); else if (done.covered[i]) put(i, before[i]);
    }
    paintLayer(sp.box[b], sp.box[b + 1], sp.box[b + 2] + 1, sp.box[b + 3] + 1);
  });
  later();
}
function setSnap(on) {
  state.snap = on; $("#snap").checked = on;
  if (on) loadSuperpixels().then(() => status("Strokes snap to the photo's edges.")).catch(e => { say(e.message); setSnap(false); });
}

function fill(x, y) {  // the 4-connected region of the clicked value (or object) takes the tool's target
  x = Math.floor(x); y = Math.floor(y);
  if (x < 0 || y < 0 || x >= W || y >= H) return;
  const from = value(y * W + x);
  if (state.instance && state.selected.size !== 1 && from) { select([from]); return; }  // a click on an object selects it
  const undoAt = state.undo.length;
  remember();
  const to = target();
  if (to === null || from === to) { state.undo.length = undoAt; return; }
  const stack = [y * W + x];
  let x0 = x, x1 = x, y0 = y, y1 = y;
  while (stack.length) {
    const i = stack.pop();
    if (value(i) !== from) continue;
    put(i, to);
    const px = i % W, py = (i - px) / W;
    if (px < x0) x0 = px; if (px > x1) x1 = px; if (py < y0) y0 = py; if (py > y1) y1 = py;
    if (px > 0) stack.push(i - 1); if (px < W - 1) stack.push(i + 1);
    if (py > 0) stack.push(i - W); if (py < H - 1) stack.push(i + W);
  }
  paintLayer(x0, y0, x1 + 1, y1 + 1); later(); keep();
}
function closePolygon() {
  const pts = state.polygon;
  state.polygon = [];
  if (pts.length < 3) { later(); return; }
  const xs = pts.map(p => p[0]), ys = pts.map(p => p[1]);
  const x0 = Math.max(0, Math.floor(Math.min(...xs))), x1 = Math.min(W, Math.ceil(Math.max(...xs)) + 1);
  const y0 = Math.max(0, Math.floor(Math.min(...ys))), y1 = Math.min(H, Math.ceil(Math.max(...ys)) + 1);
  if (x1 <= x0 || y1 <= y0) { later(); return; }
  const c = document.createElement("canvas");
  c.width = x1 - x0; c.height = y1 - y0;
  const g = c.getContext("2d");
  g.fillStyle = "#fff"; g.beginPath();
  pts.forEach(([x, y], k) => k ? g.lineTo(x - x0, y - y0) : g.moveTo(x - x0, y - y0));
  g.closePath(); g.fill();
  const a = g.getImageData(0, 0, c.width, c.height).data;
  remember();
  const to = target();
  if (to === null) return;
  for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) {
    if (a[4 * ((y - y0) * c.width + (x - x0)) + 3] >= 128) put(y * W + x, to);
  }
  paintLayer(x0, y0, x1, y1); later(); keep();
}

// ------------------------------------------------------------------------------------------ pointer
function bindPointer() {
  view.addEventListener("pointerdown", ev => {
    view.focus();
    const [x, y] = toPhoto(ev);
    if (state.tool === "pan" || spaceDown || ev.button === 1 || ev.button === 2) {
      panning = [ev.clientX, ev.clientY, state.ox, state.oy]; view.setPointerCapture(ev.pointerId); return;
    }
    if (ev.button !== 0) return;
    if (state.tool === "select") {
      const inside = x >= 0 && y >= 0 && x < W && y < H;
      select(inside ? [state.objects[Math.floor(y) * W + Math.floor(x)]] : [], ev.shiftKey);
      return;
    }
    if (state.tool === "fill") { fill(x, y); return; }
    if (state.tool === "polygon") {
      const first = state.polygon[0];
      if (first && state.polygon.length > 2 && Math.hypot(first[0] - x, first[1] - y) * state.scale < 8) closePolygon();
      else { state.polygon.push([x, y]); later(); }
      return;
    }
    remember();
    const to = state.tool === "eraser" ? 0 : target();
    if (to === null) return;
    stroke = { last: [x, y], value: to,
      covered: state.snap && state.superpixels ? new Uint8Array(W * H) : null };
    dab(x, y, stroke.value); later(true);
    view.setPointerCapture(ev.pointerId);
  });
  view.addEventListener("pointermove", ev => {
    if (panning) {
      state.ox = panning[2] + ev.clientX - panning[0]; state.oy = panning[3] + ev.clientY - panning[1]; later(); return;
    }
    if (!stroke) return;
    const p = toPhoto(ev);
    line(stroke.last, p, stroke.value); stroke.last = p; later(true);
  });
  const end = () => {
    if (stroke && stroke.covered) snapStroke(stroke);
    if (stroke) keep();
    stroke = null; panning = null;
  };
  view.addEventListener("pointerup", end);
  view.addEventListener("pointercancel", end);
  view.addEventListener("contextmenu", ev => ev.preventDefault());
  view.addEventListener("dblclick", () => { if (state.tool === "polygon") closePolygon(); });
  view.addEventListener("wheel", ev => {
    ev.preventDefault();
    const r = view.getBoundingClientRect();
    zoom(ev.deltaY < 0 ? 1.2 : 1 / 1.2, ev.clientX - r.left, ev.clientY - r.top);
  }, { passive: false });
}

// ------------------------------------------------------------------------------------------ controls
function setTool(tool) {
  if (state.tool === "polygon" && tool !== "polygon") { state.polygon = []; later(); }
  state.tool = tool;
  $$("[data-tool]").forEach(b => b.setAttribute("aria-pressed", String(b.dataset.tool === tool)));
}
function setClass(value) {
  if (!classes.some(c => c.value === value)) return;
  state.value = value;
  $$(".class-pick").forEach(b => b.setAttribute("aria-pressed", String(Number(b.dataset.value) === value)));
  if (state.tool === "eraser" || state.tool === "pan") setTool("brush");
}
function setSize(size) {
  state.size = Math.max(1, Math.min(200, Math.round(size)));
  $("#brush-size").value = state.size; $("#size-value").textContent = state.size;
}
function status(text) { $("#status").textContent = text; }

function bindControls() {
  $$("[data-tool]").forEach(b => b.addEventListener("click", () => setTool(b.dataset.tool)));
  $$(".class-pick").forEach(b => b.addEventListener("click", () => setClass(Number(b.dataset.value))));
  $("#brush-size").addEventListener("input", ev => setSize(Number(ev.target.value)));
  $("#snap").addEventListener("change", ev => setSnap(ev.target.checked));
  $("#opacity").addEventListener("input", ev => { state.opacity = Number(ev.target.value) / 100; later(); });
  $("#undo").addEventListener("click", () => restore(state.undo, state.redo));
  $("#redo").addEventListener("click", () => restore(state.redo, state.undo));
  $("#zoom-in").addEventListener("click", () => zoom(1.25));
  $("#zoom-out").addEventListener("click", () => zoom(0.8));
  $("#zoom-fit").addEventListener("click", fit);
  $("#save").addEventListener("click", () => save());
  $("#accept").addEventListener("click", () => save(true));
  $("#next").addEventListener("click", () => next());
  if (state.instance) {
    $("#delete-objects").addEventListener("click", deleteSelected);
    $("#merge-objects").addEventListener("click", mergeSelected);
    $("#split-objects").addEventListener("click", splitSelected);
    $("#classify-objects").addEventListener("click", classifySelected);
  }
}

function bindKeys() {
  document.addEventListener("keydown", ev => {
    if (ev.target.matches("input, select, textarea")) return;
    const key = ev.key.toLowerCase(), mod = ev.ctrlKey || ev.metaKey;
    if (mod && key === "z") { ev.preventDefault(); ev.shiftKey ? restore(state.redo, state.undo) : restore(state.undo, state.redo); }
    else if (mod && key === "y") { ev.preventDefault(); restore(state.redo, state.undo); }
    else if (mod && key === "s") { ev.preventDefault(); save(); }
    else if (mod) return;
    else if (key === " ") { spaceDown = true; ev.preventDefault(); }
    else if (key === "b") setTool("brush");
    else if (key === "e") setTool("eraser");
    else if (key === "p") setTool("polygon");
    else if (key === "f") setTool("fill");
    else if (key === "h") setTool("pan");
    else if (key === "v" && state.instance) setTool("select");
    else if ((key === "delete" || key === "backspace") && state.instance) { ev.preventDefault(); deleteSelected(); }
    else if (key === "m" && state.instance) mergeSelected();
    else if (key === "x" && state.instance) splitSelected();
    else if (key === "c" && state.instance) classifySelected();
    else if (key === "s") setSnap(!state.snap);
    else if (key === "enter" && state.tool === "polygon") closePolygon();
    else if (key === "escape") { state.polygon = []; if (state.instance && state.selected.size) select([]); later(); }
    else if (key === "[") setSize(state.size / 1.25);
    else if (key === "]") setSize(state.size * 1.25 + 1);
    else if (key === "+" || key === "=") zoom(1.25);
    else if (key === "-") zoom(0.8);
    else if (key === "0") fit();
    else if (key === "o") { state.opacity = state.opacity > 0.8 ? 0.25 : state.opacity + 0.25; $("#opacity").value = 100 * state.opacity; later(); }
    else if (key === "a") save(true);
    else if (key === "n") next();
    else if (/^[1-9]$/.test(key) && Number(key) <= classes.length) setClass(classes[Number(key) - 1].value);
  });
  document.addEventListener("keyup", ev => { if (ev.key === " ") spaceDown = false; });
  window.addEventListener("resize", fit);
  window.addEventListener("beforeunload", ev => { if (state.dirty && state.draft !== "kept") { ev.preventDefault(); ev.returnValue = ""; } });
}

// ------------------------------------------------------------------------------------------ load and save
function maskBlob(values) {  // a grey PNG of `values` (class values, or object ids)
  const c = document.createElement("canvas");
  c.width = W; c.height = H;
  const g = c.getContext("2d"), out = g.createImageData(W, H), d = out.data, L = values || state.labels;
  for (let i = 0; i < L.length; i++) { const v = L[i]; d[4 * i] = v; d[4 * i + 1] = v; d[4 * i + 2] = v; d[4 * i + 3] = 255; }
  g.putImageData(out, 0, 0);
  return new Promise(resolve => c.toBlob(resolve, "image/png"));
}
async function save(accept) {
  if (!state.loaded) return;
  const button = accept ? $("#accept") : $("#save");
  busy(button, true, "Saving…");
  try {
    const saved = state.instance ? await api("POST", root.dataset.saveObjects, await objectsBody())
      : await api("POST", root.dataset.save, undefined, await maskBlob());
    state.dirty = false; state.saved = saved.version;
    clearTimeout(keeping);
    await drafts.drop(draftKey).catch(() => {});
    state.draft = "";
    status("Saved as version " + saved.version + (saved.kept ? " (the previous one is kept)" : "") + ". " +
           saved.labelled + " labelled, " + saved.unlabelled + " unlabelled photos.");
  } catch (e) { say(e.message); }
  busy(button, false);
}
async function objectsBody() {  // {"objects": {id: class name}, "png": the ids as a base64 grey PNG}
  const blob = await maskBlob(state.objects);
  const png = await new Promise((ok, bad) => {
    const reader = new FileReader();
    reader.onload = () => ok(String(reader.result).split(",")[1]); reader.onerror = () => bad(reader.error);
    reader.readAsDataURL(blob);
  });
  const objects = {};
  Object.entries(state.objectClass).forEach(([id, v]) => { objects[id] = className(v); });
  return { objects, png };
}
async function next() {
  try {
    const list = await api("GET", root.dataset.next);
    const other = list.photos.find(p => p.name !== root.dataset.name);
    if (other) location.href = other.edit; else status("No other unlabelled photo.");
  } catch (e) { say(e.message); }
}
async function load() {
  const mask = new Image(), shown = new Promise((ok, bad) => {
    photo.onload = ok; photo.onerror = () => bad(new Error("the photo cannot be shown.")); photo.src = root.dataset.photo;
  });
  const c = document.createElement("canvas");
  c.width = W; c.height = H;
  const g = c.getContext("2d", { willReadFrequently: true });
  if (state.instance) { await Promise.all([shown, loadObjects(g)]); return; }  // the objects hold the classes
  await Promise.all([shown,
    new Promise((ok, bad) => { mask.onload = ok; mask.onerror = () => bad(new Error("the mask cannot be read.")); mask.src = root.dataset.mask; }),
  ]);
  g.drawImage(mask, 0, 0);
  const d = g.getImageData(0, 0, W, H).data;
  for (let i = 0; i < W * H; i++) state.labels[i] = d[4 * i];
  const draft = await drafts.get(draftKey).catch(() => undefined);
  const same = draft && draft.labels && draft.labels.length === W * H && draft.labels.every((v, i) => v === state.labels[i]);
  if (same) drafts.drop(draftKey).catch(() => {});
  else if (draft && draft.labels && draft.labels.length === W * H) {
    state.undo.push(state.labels.slice());  // undo goes back to the saved mask
    state.labels = new Uint8Array(draft.labels); state.dirty = true; state.draft = "restored";
    status("Restored your unsaved edits of " + new Date(draft.time).toLocaleString() + " (Undo goes back to the saved mask).");
  }
  paintLayer(0, 0, W, H); fit(); state.loaded = true;
  root.dataset.ready = "1";
}
async function loadObjects(g) {  // the saved objects (else the proposal's parts), then a draft kept since
  // one request: the ids as a grey PNG, their classes in its X-Masksmith-Objects header (one proposal, not two)
  let response;
  try { response = await fetch(root.dataset.objectsPng); } catch (e) { throw new Error("the masksmith server cannot be reached; is it still running?"); }
  if (!response.ok) {
    const answer = await response.json().catch(() => null);
    throw new Error((answer && answer.error) || "the objects cannot be read.");
  }
  const table = { objects: JSON.parse(response.headers.get("X-Masksmith-Objects") || "{}") };
  const image = await createImageBitmap(await response.blob());
  const values = {};
  classes.forEach(c => { values[c.name] = c.value; });
  state.objectClass = {};
  Object.entries(table.objects).forEach(([id, name]) => { state.objectClass[Number(id)] = values[name] || 0; });
  g.clearRect(0, 0, W, H); g.drawImage(image, 0, 0);
  const d = g.getImageData(0, 0, W, H).data;
  for (let i = 0; i < W * H; i++) state.objects[i] = d[4 * i];
  syncLabels();
  const draft = await drafts.get(draftKey).catch(() => undefined);
  if (draft && draft.ids && draft.ids.length === W * H) {
    const same = draft.ids.every((v, i) => v === state.objects[i]) &&
      JSON.stringify(draft.classes) === JSON.stringify(state.objectClass);
    if (same) drafts.drop(draftKey).catch(() => {});
    else {
      state.undo.push(snapshot());
      apply({ ids: new Uint8Array(draft.ids), classes: draft.classes }); state.dirty = true; state.draft = "restored";
      status("Restored your unsaved edits of " + new Date(draft.time).toLocaleString() + " (Undo goes back to the saved objects).");
    }
  }
  paintLayer(0, 0, W, H); fit(); state.loaded = true;
  root.dataset.ready = "1";
}
