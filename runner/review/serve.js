"use strict";
// The served gallery's controls (runner review --serve, SPEC 6): star, reject and
// note each image, keyboard shortcuts, and a side-by-side view of 2 to 4 chosen
// images with their settings. Only pages the server sends carry this script; each
// change is sent at once to the server, which writes it to the store (the page on
// disk stays read-only).
//
// How it hooks into the page (gallery.js; keep these when the page changes):
//   window.RUNNER_SERVE   {api, token, job}, set by the server in <head>; every
//                         API call sends the token as X-Runner-Token.
//   window.RUNNER_VIEW    the page's view (set by gallery.js): `hooks.cell(el, i)`
//                         is called for every cell and comparison card it draws
//                         (rows are drawn a screenful at a time, so a cell drawn
//                         after scrolling gets its controls too); `step(i, ±1)`
//                         and `reveal(i)` walk the items its filters show; marks
//                         live in its D.marks, changed through `setMark(s)`, which
//                         also updates its filter by mark.
//   [data-image] [data-i] a drawn cell's shown image (what marks name) and item.
//                         Controls go after its `.cap` child.
//   data-mk, .m-<mark>    set here on those elements: star, reject or none.
//   #compare              the page's own overlay: while open, keys are the page's.
//   html[data-mk-ready]   1 once the store's marks are shown; data-mk-pending:
//                         changes sent and not answered yet.
//   document events       `runner:mark` {image, mark, note} after each change.
(() => {
const CFG = window.RUNNER_SERVE;
const V = window.RUNNER_VIEW;
if (!CFG || !V) return;
const $ = (s, r = document) => r.querySelector(s);
const $$ = (s, r = document) => Array.from(r.querySelectorAll(s));
const MAX_PICK = 4;
const KEYS = [
  ["j  →", "next image"], ["k  ←", "previous image"], ["s", "star (again: unstar)"],
  ["x", "reject (again: clear)"], ["n", "write a note (Enter saves, Esc cancels)"],
  ["c", "add to or drop from the comparison (2 to 4)"], ["v", "compare them"],
  ["Esc", "close, or clear the choice"], ["?", "these keys"],
];
const picked = []; // items chosen for the comparison, in order
const latest = new Map(); // image -> the number of its latest change
let changes = 0;
let current = -1; // the item the keys act on
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
const markOf = (image) => V.markOf(image) || { mark: null, note: null };
const withImage = (image) => $$(`[data-image="${CSS.escape(image)}"]`);
const cmpOpen = () => !cmp.hidden;

// -- the bar under each image -------------------------------------------------------
function decorate(e) {
  if (!e.dataset.image || $(":scope > .mk", e)) return;
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
  const cap = $(":scope > .cap", e);
  if (cap) cap.after(bar); else e.append(bar);
  paintOne(e);
}
function paintOne(e) {
  const m = markOf(e.dataset.image);
  const mk = m.mark || "none";
  e.dataset.mk = mk;
  e.classList.remove("m-star", "m-reject", "m-none");
  e.classList.add("m-" + mk);
  const i = +e.dataset.i;
  const order = picked.indexOf(i);
  e.classList.toggle("mkpicked", order >= 0);
  e.style.setProperty("--pick", order >= 0 ? `"${order + 1}"` : "none");
  e.classList.toggle("mkcur", i === current);
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
const paintItem = (i) => { if (i >= 0) paint(V.imageOf(i)); };

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
  const number = ++changes;
  latest.set(image, number);
  V.setMark(image, { ...markOf(image), ...change }); // shown at once, filters too
  paint(image);
  busy(1);
  call("/marks", { image, ...change })
    .then((saved) => {
      // answers may come back in any order: only the latest change is kept
      if (latest.get(image) === number) V.setMark(image, saved);
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
    V.setMarks(data.marks);
    for (const e of $$("[data-image]")) paintOne(e);
    root.dataset.mkReady = "1"; // the store's marks are shown
  }).catch((err) => say(`marks not loaded: ${err.message}`, true));
}
function need() {
  if (current >= 0) return true;
  say("choose an image first: j or → (or click one)", true);
  return false;
}
function toggle(kind) {
  if (!need()) return;
  const image = V.imageOf(current);
  save(image, { mark: markOf(image).mark === kind ? null : kind });
}
function editNote() {
  if (!need()) return;
  const e = cmpOpen() ? cardOf(current) : V.reveal(current);
  const note = e && $(":scope > .mk .mkn", e);
  if (note) note.focus();
}

// -- moving between images ----------------------------------------------------------
const cmp = el("div", "mkover");
cmp.id = "mkcmp"; cmp.hidden = true;
cmp.setAttribute("role", "dialog"); cmp.setAttribute("aria-modal", "true");
const cardOf = (i) => $(`.mkcard[data-i="${i}"]`, cmp);
function choose(i, scroll) {
  const was = current;
  current = i;
  paintItem(was);
  paintItem(i);
  if (!scroll || i < 0) return;
  if (cmpOpen()) {
    const card = cardOf(i);
    if (card) card.scrollIntoView({ block: "nearest", inline: "nearest" });
  } else {
    V.reveal(i);
  }
}
function firstInView() { // the first image the window shows, below the filter bar
  const top = $("#filters").getBoundingClientRect().bottom;
  for (const e of $$("#list .cell[data-image]:not(.off)")) {
    const r = e.getBoundingClientRect();
    if (r.bottom > top && r.top < innerHeight) return +e.dataset.i;
  }
  return V.step(-1, 1);
}
function move(step) {
  if (cmpOpen()) {
    const at = picked.indexOf(current);
    const next = at < 0 ? 0 : at + step;
    if (next >= 0 && next < picked.length) choose(picked[next], true);
    return;
  }
  const next = current < 0 ? firstInView() : V.step(current, step);
  if (next >= 0) choose(next, true);
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
  paintItem(current);
  picked.forEach(paintItem); // the others' numbers may have moved
}
function clearPicks() {
  const was = picked.splice(0);
  showPicks();
  was.forEach(paintItem);
}
function showPicks() {
  const box = $("#mkpicks");
  box.replaceChildren();
  for (const i of picked) {
    const image = V.imageOf(i);
    const thumb = V.thumbOf(i);
    const chip = el("span", "mkpick");
    chip.title = image;
    if (thumb) {
      const img = el("img");
      img.src = fileUrl(thumb); img.alt = image;
      chip.append(img);
    } else {
      chip.append(el("span", "", image.split("/").pop()));
    }
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
  for (const i of picked) {
    const image = V.imageOf(i);
    const card = el("figure", "mkcard");
    card.dataset.image = image;
    card.dataset.i = i;
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
  const params = picked.map((i) => "image=" + encodeURIComponent(V.imageOf(i))).join("&");
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
  if (s.lineage) row("parent", `${s.lineage.mode} of ${s.lineage.job} · ${s.lineage.image}`);
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
  else if (cmpOpen()) closeCompare();
  else if (picked.length) clearPicks();
  else choose(-1, false);
}

// -- events -------------------------------------------------------------------------
const TYPED = "textarea, select, [contenteditable], input:not([type=checkbox])" +
  ":not([type=radio]):not([type=button]):not([type=submit]):not([type=reset])";
const typing = (t) => Boolean(t.matches && t.matches(TYPED));
document.addEventListener("click", (e) => {
  const t = e.target;
  if (t.closest("#mkclose")) return closeCompare();
  if (t.closest("#mkopen")) return openCompare();
  if (t.closest("#mkclear")) return clearPicks();
  if (t.closest("#mkkeys")) { help.hidden = !help.hidden; return; }
  const holder = t.closest("[data-image][data-i]");
  if (!holder) return;
  choose(+holder.dataset.i, false);
  const b = t.closest(".mk .mkb");
  if (!b) return;
  if (b.dataset.set === "pick") pick(); else toggle(b.dataset.set);
});
document.addEventListener("focusin", (e) => {
  const holder = e.target.closest && e.target.closest("[data-image][data-i]");
  if (holder && e.target.matches(".mkn")) choose(+holder.dataset.i, false);
});
document.addEventListener("change", (e) => {
  if (!e.target.matches(".mkn")) return;
  const image = e.target.closest("[data-image]").dataset.image;
  const note = e.target.value.trim() || null;
  if (note !== markOf(image).note) save(image, { note });
});
document.addEventListener("keydown", (e) => {
  if (e.defaultPrevented || e.ctrlKey || e.metaKey || e.altKey) return;
  const t = e.target;
  if (t.matches && t.matches(".mkn")) {
    if (e.key === "Enter") { t.blur(); e.preventDefault(); }
    if (e.key === "Escape") {
      t.value = markOf(t.closest("[data-image]").dataset.image).note || "";
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

document.body.append(tray, cmp, help);
V.hooks.cell = decorate;
V.redraw(); // the rows drawn before this script ran, again with their controls
showPicks();
load();
})();
