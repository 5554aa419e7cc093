"use strict";
(() => {
const $ = (s, r = document) => r.querySelector(s);
const $$ = (s, r = document) => Array.from(r.querySelectorAll(s));
// read at each use: the served page adds its filter by mark (serve.js)
const checkboxes = () => $$("#filters input[type=checkbox]");
const shown = $("#shown");
const sections = $$("section.prompt").map((sec) => ({
  sec,
  heads: $$("thead th.col", sec),
  rows: $$("tbody tr", sec).map((tr) => ({ tr, cells: $$("td", tr) })),
}));
function apply() {
  const allowed = new Map();
  for (const b of checkboxes()) {
    if (!allowed.has(b.name)) allowed.set(b.name, new Set());
    if (b.checked) allowed.get(b.name).add(b.value);
  }
  const axes = [...allowed];
  let count = 0;
  for (const s of sections) {
    const colOn = s.heads.map(() => false);
    let secOn = false;
    for (const r of s.rows) {
      let rowOn = false;
      r.cells.forEach((td, i) => {
        if (!td.classList.contains("cell")) return;
        let ok = true;
        for (const [axis, set] of axes) {
          const v = td.dataset[axis];
          if (v !== undefined && !set.has(v)) { ok = false; break; }
        }
        td.classList.toggle("off", !ok);
        if (ok) { rowOn = true; colOn[i] = true; count++; }
      });
      r.tr.hidden = !rowOn;
      if (rowOn) secOn = true;
    }
    s.heads.forEach((th, i) => th.classList.toggle("gone", !colOn[i]));
    for (const r of s.rows) {
      r.cells.forEach((td, i) => td.classList.toggle("gone", !colOn[i]));
    }
    s.sec.hidden = !secOn;
  }
  shown.textContent = count.toLocaleString("en-US");
  $("#nomatch").hidden = count > 0 || !sections.length;
}
$("#filters").addEventListener("change", apply);
// double-click a chip: keep only that value of its axis
$("#filters").addEventListener("dblclick", (e) => {
  const chip = e.target.closest("label.chip");
  if (!chip) return;
  const box = $("input", chip);
  for (const b of checkboxes()) if (b.name === box.name) b.checked = b === box;
  apply();
});
$("#fold").addEventListener("click", (e) => {
  const folded = $("#filters").classList.toggle("folded");
  e.target.textContent = folded ? "show filters" : "hide filters";
  e.target.setAttribute("aria-expanded", String(!folded));
});
$("#reset").addEventListener("click", () => {
  for (const b of checkboxes()) b.checked = true;
  apply();
});
const overlay = $("#compare");
const grid = $("#cmpgrid");
let lastFocus = null;
// Same columns as the prompt's grid (an empty slot where a cell is missing or
// filtered out), so one column keeps one aspect ratio; free flow past MAX_COLS.
const MAX_COLS = 6;
function openCompare(id) {
  const sec = document.getElementById("p-" + id);
  if (!sec) return;
  const cols = $$("thead th.col", sec).map((th) => !th.classList.contains("gone"));
  const width = cols.filter(Boolean).length;
  const aligned = width <= MAX_COLS;
  const slots = [];
  let count = 0;
  for (const tr of $$("tbody tr", sec)) {
    if (tr.hidden) continue;
    $$("td", tr).forEach((td, i) => {
      if (!cols[i]) return;
      if (td.classList.contains("cell") && !td.classList.contains("off")) {
        slots.push(card(td));
        count++;
      } else if (aligned) {
        slots.push(document.createElement("div"));
      }
    });
  }
  if (!count) {
    const none = document.createElement("p");
    none.className = "cmpnone";
    none.textContent = "No variant of this prompt passes the filters.";
    slots.push(none);
  }
  grid.classList.toggle("free", !aligned);
  grid.style.setProperty("--cols", String(Math.max(1, width)));
  grid.replaceChildren(...slots);
  $("#cmpt").textContent = id + " · " + count + " shown";
  $("#cmpx").textContent = $(".ptext", sec).textContent;
  lastFocus = document.activeElement;
  overlay.hidden = false;
  document.body.classList.add("modal");
  $("#cmpclose").focus();
}
function card(td) {
  const fig = document.createElement("figure");
  fig.className = "card " + [...td.classList].filter((c) => c.startsWith("s-"))
    .join(" ");
  if (td.dataset.full) {
    const a = document.createElement("a");
    a.href = td.dataset.full; a.target = "_blank"; a.rel = "noopener";
    const img = document.createElement("img");
    img.src = td.dataset.full; img.alt = td.dataset.label;
    img.loading = "lazy"; img.decoding = "async";
    a.append(img);
    fig.append(a);
  } else {
    fig.append($(".frame", td).cloneNode(true));
  }
  const label = document.createElement("figcaption");
  label.className = "lbl";
  label.textContent = td.dataset.label || "(single item)";
  fig.append(label, $(".cap", td).cloneNode(true));
  for (const extra of [$(".more", td), $(".ground", td)]) {
    if (extra) fig.append(extra.cloneNode(true));
  }
  return fig;
}
function closeCompare() {
  overlay.hidden = true;
  grid.replaceChildren();
  document.body.classList.remove("modal");
  if (lastFocus) lastFocus.focus();
}
document.addEventListener("click", (e) => {
  const b = e.target.closest("button.cmp");
  if (b) openCompare(b.dataset.compare);
});
$("#cmpclose").addEventListener("click", closeCompare);
document.addEventListener("keydown", (e) => {
  if (e.key === "Escape" && !overlay.hidden) closeCompare();
});
})();
