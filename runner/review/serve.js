"use strict";
// The served gallery's controls (runner review --serve, SPEC 6): star, reject and
// note each image, keyboard shortcuts, a filter by mark, and a side-by-side view
// of 2 to 4 chosen images with their settings. Only pages the server sends carry
// this script; each change is sent at once to the server, which writes it to the
// store (the page on disk stays read-only).
//
// How it hooks into the page (keep these when the page changes):
//   window.RUNNER_SERVE   {api, token, job}, set by the server before this script;
//                         every API call sends the token as X-Runner-Token.
//   [data-image]          every element that shows an image carries the image's
//                         path in the job folder (what marks name). Controls go
//                         after its `.cap` child (or at its end), for the elements
//                         there now and any the page draws later (a
//                         MutationObserver), so a page that draws rows lazily works.
//   data-mk, .m-<mark>    this script sets them on those elements: star, reject or
//                         none; the page styles and filters on them.
//   #filters              if it has the attribute data-mk-filter (the page filters
//                         cells by their data-mk) and no checkboxes name=mk yet, a
//                         "Mark" fieldset of them is added before its `.fstat`;
//                         after a change, `change` is dispatched on #filters so
//                         the page filters again.
//   .off, .gone, hidden   a cell the page's filters hide: skipped by j/k.
//   #compare              the page's own overlay: while open, keys are the page's.
//   document events       `runner:mark` {image, mark, note} after each change.
(() => {
const CFG = window.RUNNER_SERVE;
if (!CFG) return;
const $ = (s, r = document) => r.querySelector(s);
const $$ = (s, r = document) => Array.from(r.querySelectorAll(s));
const MAX_PICK = 4;
const LABELS = { star: "★ starred", reject: "✕ rejected", none: "unmarked" };
const KEYS = [
  ["j  →", "next image"], ["k  ←", "previous image"], ["s", "star (again: unstar)"],
  ["x", "reject (again: clear)"], ["n", "write a note (Enter saves, Esc cancels)"],
  ["c", "add to or drop from the comparison (2 to 4)"], ["v", "compare them"],
  ["Esc", "close, or clear the choice"], ["?", "these keys"],
];
const marks = new Map(); // image -> {mark, note}
const picked = []; // images chosen for the comparison, in order
let current = null; // the image the keys act on
let pending = 0; // changes sent and not answered yet
const root = document.documentElement;
root.classList.add("served");
root.dataset.mkPending = "0";

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}
function call(path, body) {
  const headers = { "X-Runner-Token": CFG.token };
  if (body) headers["Content-Type"] = "application/json";
  return fetch(CFG.api + path, {
    method: body ? "POST" : "GET", headers, cache: "no-store",
    body: body ? JSON.stringify(body) : undefined,
  }).then(async (r) => {
    const data = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(data.error || `the server answered ${r.status}`);
    return data;
  });
}
const fileUrl = (image) => image.split("/").map(encodeURIComponent).join("/");
const markOf = (image) => (marks.get(image) || {}).mark || null;
const inOverlay = (e) => e.closest("#mkcmp");
const cells = () => $$("[data-image]").filter((e) => !inOverlay(e));
const visible = (e) => !e.classList.contains("off") &&
  !e.classList.contains("gone") && e.getClientRects().length > 0;
const withImage = (image) => $$(`[data-image="${CSS.escape(image)}"]`);

// -- the bar under each image -------------------------------------------------------
function decorate(cell) {
  if ($(":scope > .mk", cell)) return;
  const bar = el("div", "mk");
  const button = (set, text, title) => {
    const b = el("button", "mkb", text);
    b.type = "button"; b.dataset.set = set; b.title = title;
    b.setAttribute("aria-label", title);
    return b;
  };
  const note = el("input", "mkn");
  note.type = "text"; note.maxLength = 2000; note.placeholder = "note (n)";
  note.setAttribute("aria-label", "Note");
  bar.append(
    button("star", "★", "Star (s)"), button("reject", "✕", "Reject (x)"), note,
    button("pick", "+", "Add to the comparison (c)"),
  );
  const cap = $(":scope > .cap", cell);
  if (cap) cap.after(bar); else cell.append(bar);
  paintOne(cell);
}
function paintOne(e) {
  const m = marks.get(e.dataset.image) || {};
  const mk = m.mark || "none";
  e.dataset.mk = mk;
  e.classList.remove("m-star", "m-reject", "m-none");
  e.classList.add("m-" + mk);
  const order = picked.indexOf(e.dataset.image);
  e.classList.toggle("mkpicked", order >= 0);
  e.style.setProperty("--pick", order >= 0 ? `"${order + 1}"` : "none");
  e.classList.toggle("mkcur", e.dataset.image === current);
  for (const b of $$(":scope > .mk .mkb", e)) {
    const on = b.dataset.set === "pick" ? order >= 0 : b.dataset.set === m.mark;
    b.setAttribute("aria-pressed", String(on));
    if (b.dataset.set === "pick") b.textContent = on ? String(order + 1) : "+";
  }
  const note = $(":scope > .mk .mkn", e);
  if (note && document.activeElement !== note) note.value = m.note || "";
}
function paint(image) {
  for (const e of withImage(image)) paintOne(e);
}

// -- the filter by mark -------------------------------------------------------------
function markFilter() {
  const form = $("#filters");
  if (!form || !form.hasAttribute("data-mk-filter") || $("input[name=mk]", form)) {
    return;
  }
  const set = el("fieldset");
  set.append(el("legend", "", "Mark"));
  for (const [value, label] of Object.entries(LABELS)) {
    const chip = el("label", "chip m-" + value);
    chip.title = "double-click: only this";
    const box = el("input");
    box.type = "checkbox"; box.name = "mk"; box.value = value; box.checked = true;
    const span = el("span", "", label + " ");
    span.append(el("small", "", "0"));
    chip.append(box, span);
    set.append(chip);
  }
  form.insertBefore(set, $(".fstat", form));
}
function recount() {
  const counts = { star: 0, reject: 0, none: 0 };
  for (const e of $$("[data-mk]")) {
    if (!inOverlay(e)) counts[e.dataset.mk] = (counts[e.dataset.mk] || 0) + 1;
  }
  for (const box of $$("#filters input[name=mk]")) {
    const small = $("small", box.parentElement);
    if (small) small.textContent = (counts[box.value] || 0).toLocaleString("en-US");
  }
}
function refilter() {
  recount();
  const form = $("#filters");
  if (form) form.dispatchEvent(new Event("change", { bubbles: true }));
}

// -- changing a mark ----------------------------------------------------------------
function say(text, bad) {
  const msg = $("#mkmsg");
  msg.textContent = text;
  msg.classList.toggle("bad", Boolean(bad));
}
function busy(step) {
  pending += step;
  root.dataset.mkPending = String(pending);
  if (pending) say("saving…");
}
function save(image, change) {
  const before = marks.get(image) || { mark: null, note: null };
  const after = { ...before, ...change };
  marks.set(image, after);
  paint(image);
  refilter();
  busy(1);
  call("/marks", { image, ...change })
    .then((saved) => {
      // answers may come back in any order: only the latest change is painted
      const now = marks.get(image);
      if (now === after) marks.set(image, { mark: saved.mark, note: saved.note });
      paint(image);
      document.dispatchEvent(new CustomEvent("runner:mark", { detail: saved }));
      busy(-1);
      if (!pending) say("saved");
    })
    .catch((err) => {
      busy(-1);
      say(`not saved: ${err.message}`, true);
      load(); // show what the store holds
    });
}
function load() {
  return call("/marks").then((data) => {
    marks.clear();
    for (const [image, m] of Object.entries(data.marks)) marks.set(image, m);
    for (const e of $$("[data-image]")) paintOne(e);
    refilter();
    root.dataset.mkReady = "1"; // the store's marks are shown
  }).catch((err) => say(`marks not loaded: ${err.message}`, true));
}
function need() {
  if (current) return true;
  say("choose an image first: j or → (or click one)", true);
  return false;
}
function toggle(kind) {
  if (!need()) return;
  save(current, { mark: markOf(current) === kind ? null : kind });
}
function editNote() {
  if (!need()) return;
  const e = scope().find((c) => c.dataset.image === current);
  const note = e && $(":scope > .mk .mkn", e);
  if (note) note.focus();
}

// -- moving between images ----------------------------------------------------------
const cmp = el("div", "mkover");
cmp.id = "mkcmp"; cmp.hidden = true;
cmp.setAttribute("role", "dialog"); cmp.setAttribute("aria-modal", "true");
function scope() {
  return cmp.hidden ? cells() : $$(".mkcard[data-image]", cmp);
}
function choose(image, scroll) {
  const was = current;
  current = image;
  if (was) paint(was);
  if (image) paint(image);
  const e = image && scope().find((c) => c.dataset.image === image);
  if (e && scroll) e.scrollIntoView({ block: "nearest", inline: "nearest" });
}
function move(step) {
  const list = scope();
  let i = list.findIndex((c) => c.dataset.image === current);
  if (i < 0) i = step > 0 ? -1 : list.length;
  for (let j = i + step; j >= 0 && j < list.length; j += step) {
    if (visible(list[j])) return choose(list[j].dataset.image, true);
  }
}

// -- the comparison -----------------------------------------------------------------
const tray = el("div", "mktray");
tray.id = "mkbar";
tray.innerHTML = "<span id=mkmsg role=status aria-live=polite></span>" +
  "<span id=mkpicks></span>" +
  "<button type=button id=mkopen>Compare (v)</button>" +
  "<button type=button id=mkclear>Clear</button>" +
  "<button type=button id=mkkeys title='Keyboard shortcuts (?)'>?</button>";
const help = el("div", "mkover mkhelp");
help.hidden = true;
help.setAttribute("role", "dialog");
help.append(el("h2", "", "Keys"));
const keyList = el("dl");
for (const [key, what] of KEYS) keyList.append(el("dt", "", key), el("dd", "", what));
help.append(keyList);
function pick() {
  if (!need()) return;
  const at = picked.indexOf(current);
  if (at >= 0) picked.splice(at, 1);
  else if (picked.length >= MAX_PICK) {
    say(`the comparison holds ${MAX_PICK} images: press c on one to drop it`, true);
    return;
  } else picked.push(current);
  showPicks();
  paint(current);
  picked.forEach(paint); // the others' numbers may have moved
}
function showPicks() {
  const box = $("#mkpicks");
  box.replaceChildren();
  for (const image of picked) {
    const cell = cells().find((c) => c.dataset.image === image);
    const thumb = cell && $("img", cell);
    const chip = el("span", "mkpick");
    chip.title = image;
    chip.append(thumb ? thumb.cloneNode() : el("span", "", image.split("/").pop()));
    box.append(chip);
  }
  $("#mkopen").disabled = picked.length < 2;
  $("#mkclear").disabled = !picked.length;
  $("#mkopen").textContent = `Compare ${picked.length}/${MAX_PICK} (v)`;
}
function openCompare() {
  if (picked.length < 2) {
    say("choose 2 to 4 images with c first", true);
    return;
  }
  const grid = el("div", "mkgrid");
  grid.style.setProperty("--n", String(picked.length));
  for (const image of picked) {
    const card = el("figure", "mkcard");
    card.dataset.image = image;
    const link = el("a", "mkimg");
    link.href = fileUrl(image); link.target = "_blank"; link.rel = "noopener";
    const img = el("img");
    img.src = fileUrl(image); img.alt = image;
    link.append(img);
    const cap = el("figcaption", "cap", image.split("/").pop());
    card.append(link, cap, el("dl", "mkset"));
    grid.append(card);
    decorate(card);
  }
  const head = el("div", "ohead");
  const title = el("h2", "", `${picked.length} images side by side`);
  const close = el("button", "", "Close ✕");
  close.type = "button"; close.id = "mkclose";
  head.append(title, close);
  cmp.replaceChildren(head, grid);
  cmp.hidden = false;
  document.body.classList.add("modal");
  const params = picked.map((i) => "image=" + encodeURIComponent(i)).join("&");
  call("/images?" + params).then((data) => {
    for (const card of $$(".mkcard", cmp)) {
      settings($(".mkset", card), data.images[card.dataset.image]);
    }
  }).catch((err) => say(`settings not loaded: ${err.message}`, true));
  choose(picked.includes(current) ? current : picked[0], false);
}
function settings(list, s) {
  if (!s) return;
  const row = (name, value) => {
    if (value === undefined || value === null || value === "") value = "—";
    list.append(el("dt", "", name), el("dd", "", String(value)));
  };
  const set = s.settings || {};
  const gen = set.generation || {};
  const usage = s.usage || {};
  const n = (v) => (v === undefined || v === null ? "—" : v.toLocaleString("en-US"));
  row("prompt", s.prompt);
  row("model", set.model);
  row("ratio", set.aspect_ratio);
  row("size", set.image_size || "default");
  row("references", (set.references || []).map((r) => r.path).join(", ") || "none");
  row("sample", s.sample + (gen.seed !== undefined ? ` · seed ${gen.seed}` : ""));
  const extra = Object.entries(gen).filter(([k]) => k !== "seed");
  if (extra.length) row("generation", extra.map(([k, v]) => `${k} ${JSON.stringify(v)}`).join(" · "));
  row("usage", s.usage ? `${n(usage.totalTokenCount)} tokens · ${n(usage.promptTokenCount)} in · ${n(usage.candidatesTokenCount)} out` : "");
  row("status", s.simulated ? `${s.status} (simulated)` : s.status);
  if (s.lineage) row("parent", `${s.lineage.job} · ${s.lineage.image}`);
  row("key", (s.key || "").slice(0, 12));
}
function closeCompare() {
  cmp.hidden = true;
  cmp.replaceChildren();
  document.body.classList.remove("modal");
  choose(current, true);
}
function escape() {
  if (!help.hidden) help.hidden = true;
  else if (!cmp.hidden) closeCompare();
  else if (picked.length) { const was = picked.splice(0); showPicks(); was.forEach(paint); }
  else choose(null, false);
}

// -- events -------------------------------------------------------------------------
const TYPED = "textarea, select, [contenteditable], input:not([type=checkbox])" +
  ":not([type=radio]):not([type=button]):not([type=submit]):not([type=reset])";
const typing = (t) => Boolean(t.matches && t.matches(TYPED));
document.addEventListener("click", (e) => {
  const t = e.target;
  if (t.closest("#mkclose")) return closeCompare();
  if (t.closest("#mkopen")) return openCompare();
  if (t.closest("#mkclear")) { picked.splice(0).forEach(paint); return showPicks(); }
  if (t.closest("#mkkeys")) { help.hidden = !help.hidden; return; }
  const holder = t.closest("[data-image]");
  if (!holder) return;
  choose(holder.dataset.image, false);
  const b = t.closest(".mk .mkb");
  if (!b) return;
  if (b.dataset.set === "pick") pick(); else toggle(b.dataset.set);
});
document.addEventListener("focusin", (e) => {
  const holder = e.target.closest && e.target.closest("[data-image]");
  if (holder && e.target.matches(".mkn")) choose(holder.dataset.image, false);
});
document.addEventListener("change", (e) => {
  if (!e.target.matches(".mkn")) return;
  const image = e.target.closest("[data-image]").dataset.image;
  const note = e.target.value.trim() || null;
  if (note !== ((marks.get(image) || {}).note || null)) save(image, { note });
});
document.addEventListener("keydown", (e) => {
  if (e.defaultPrevented || e.ctrlKey || e.metaKey || e.altKey) return;
  const t = e.target;
  if (t.matches && t.matches(".mkn")) {
    if (e.key === "Enter") { t.blur(); e.preventDefault(); }
    if (e.key === "Escape") {
      t.value = (marks.get(t.closest("[data-image]").dataset.image) || {}).note || "";
      t.blur();
      e.preventDefault();
    }
    return;
  }
  if (typing(t)) return;
  const own = $("#compare");
  if (own && !own.hidden) return; // the page's own comparison has the keys
  const act = {
    j: () => move(1), ArrowRight: () => move(1),
    k: () => move(-1), ArrowLeft: () => move(-1),
    s: () => toggle("star"), x: () => toggle("reject"), n: editNote,
    c: pick, v: openCompare, Escape: escape, "?": () => { help.hidden = !help.hidden; },
  }[e.key];
  if (!act) return;
  e.preventDefault();
  act();
});
new MutationObserver((changes) => {
  for (const change of changes) {
    for (const node of change.addedNodes) {
      if (node.nodeType !== 1 || inOverlay(node)) continue;
      if (node.matches("[data-image]")) decorate(node);
      for (const inner of $$("[data-image]", node)) decorate(inner);
    }
  }
}).observe(document.body, { childList: true, subtree: true });

markFilter();
document.body.append(tray, cmp, help);
for (const cell of cells()) decorate(cell);
showPicks();
load();
})();
