// masksmith web app: try a model on photos (found parts, the apps, the legend). Needs app.js.
"use strict";

// --------------------------------------------------------------------------------------------------- try it
function setupTryPage(runId) {
  const slider = $("#opacity"), shownOpacity = $("#opacity-value"), status = $("#try-status");
  const sure = $("#min-confidence"), sureValue = $("#min-confidence-value");
  let highlighted = null;
  function applyOpacity() {
    shownOpacity.textContent = Number(slider.value).toFixed(2);
    $$(".result").forEach(card => {
      $(".mask", card).style.opacity = slider.value;
      $(".dl-overlay", card).href = card.dataset.overlay + "?opacity=" + slider.value;
    });
  }
  slider.addEventListener("input", applyOpacity);
  sure.addEventListener("input", () => {
    sureValue.textContent = Math.round(sure.value * 100) + " %";
    $$(".result").forEach(card => card.refresh());
  });
  // a click on a legend entry shows that part alone on every photo; a second click shows them all again
  $$(".legend-item").forEach(item => item.addEventListener("click", () => {
    highlighted = highlighted === item.dataset.class ? null : item.dataset.class;
    $$(".legend-item").forEach(i => i.setAttribute("aria-pressed", String(i.dataset.class === highlighted)));
    $$(".result").forEach(card => {
      $(".mask", card).src = card.dataset.layer + (highlighted ? "?only=" + encodeURIComponent(highlighted) : "");
    });
  }));
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
  function plural(n, word) { return n + " " + word + (n === 1 ? "" : "s"); }
  function addResult(r) {
    const card = $("#result-template").content.firstElementChild.cloneNode(true);
    card.dataset.token = r.token; card.dataset.overlay = r.overlay;
    card.dataset.layer = "/results/" + r.token + "/layer.png";
    $(".result-name", card).textContent = r.filename + " (" + r.size[0] + "×" + r.size[1] + ")";
    $(".photo", card).src = r.urls.photo;
    $(".mask", card).src = card.dataset.layer + (highlighted ? "?only=" + encodeURIComponent(highlighted) : "");
    const links = { ".dl-mask": r.urls.mask, ".dl-color": r.urls.color, ".dl-zip": r.zip };
    for (const k in links) $(k, card).href = links[k];
    const cut = $(".cutouts", card);
    const cutouts = Object.keys(r.urls).filter(k => k.startsWith("cutout_"));
    cutouts.slice(0, 24).forEach(k => {
      const a = document.createElement("a"); a.href = r.urls[k]; a.download = "";
      const img = document.createElement("img"); img.src = r.urls[k]; img.alt = "cut-out " + k.slice(7); a.appendChild(img); cut.appendChild(a);
    });
    $(".cutouts-box", card).hidden = !cutouts.length;
    // a part counts as found above the area and the confidence asked; the rest is listed apart, with why, and
    // the apps are offered only on found parts (the reason shows when none can be used)
    function why(part) {
      if (!part) return "not found in this photo";
      if (part.share < r.min_share) return "only " + part.pixels + " pixels: too small to work on";
      if (part.confidence < Number(sure.value)) return "found with " + Math.round(100 * part.confidence) + " % confidence, below the " + Math.round(100 * sure.value) + " % asked";
      return null;
    }
    card.refresh = () => {
      const parts = Object.fromEntries(r.parts.map(p => [p.name, p]));
      const found = r.parts.filter(p => !why(p)), apart = r.parts.filter(p => why(p));
      card.dataset.found = found.map(p => p.name).join(",");
      $(".found", card).textContent = found.length ? "Found: " + found.map(p => p.name + " (" + plural(p.objects, "object") + ", " + Math.round(100 * p.confidence) + " % sure)").join(", ") + "." : "The model found none of its parts surely enough here.";
      $(".not-counted", card).textContent = apart.length ? "Not counted: " + apart.map(p => p.name + " (" + why(p) + ")").join("; ") + "." : "";
      [["recolor", "Recolour"], ["wheels", "New wheels"]].forEach(([kind, label]) => {
        const select = $("." + kind + "-class", card), button = $("." + kind + "-go", card), note = $("." + kind + "-why", card);
        $$("option", select).forEach(o => {
          const reason = why(parts[o.value]);
          o.disabled = !!reason; o.textContent = o.value + (reason ? " (" + reason + ")" : "");
        });
        if (!select.selectedOptions[0] || select.selectedOptions[0].disabled) {
          const first = $$("option", select).find(o => !o.disabled);
          if (first) select.value = first.value;
        }
        const none = !$$("option", select).some(o => !o.disabled);
        button.disabled = none;
        note.hidden = !none;
        note.textContent = none ? label + " needs a part the model found surely enough; none is in this photo at this confidence." : "";
      });
    };
    card.refresh();
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
        $(".what", fig).textContent = caption + (made.notes && made.notes.length ? " (" + made.notes.join("; ") + ")" : "");
        if (color) { const i = document.createElement("i"); i.className = "swatch"; i.style.background = color; $(".what", fig).prepend(i); }
        const a = $("a.download", fig); a.href = made.url; a.download = made.file;
        const img = $("img", fig); img.src = made.url; img.alt = caption;
        fig.scrollIntoView({ block: "nearest" });
      } catch (e) { say(e.message); }
      busy(button, false);
      card.refresh();
    }
    const rb = $(".recolor-go", card), wb = $(".wheels-go", card);
    rb.addEventListener("click", () => {
      const part = $(".recolor-class", card).value, color = $(".recolor-color", card).value;
      const grow = $(".recolor-grow", card).checked;
      runApp("recolor", { class: part, color, grow }, rb, "The " + part + " recoloured to " + color, color);
    });
    wb.addEventListener("click", () => {
      const part = $(".wheels-class", card).value;
      runApp("wheels", { class: part }, wb, "New wheels on every " + part);
    });
    $("#results").prepend(card);
  }
  setupDrop($("#photo-drop"), $("#photos"), tryFiles);
}
