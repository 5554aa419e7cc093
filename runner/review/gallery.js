"use strict";
// The gallery: draws window.RUNNER_GALLERY (gallery-data.js, see data.py) into
// #list, a screenful at a time. The list is a run of blocks (a prompt's header,
// then one block per grid row) between two spacers standing for the blocks not
// drawn; a block's height is estimated until it has been drawn once, then known.
// Every text from the data goes in with textContent: prompts are user text and
// reasons come from the network. The served gallery's controls (serve.js) work
// through window.RUNNER_VIEW, set at the end (see there).
(() => {
const $ = (s, r = document) => r.querySelector(s);
const $$ = (s, r = document) => Array.from(r.querySelectorAll(s));
const D = window.RUNNER_GALLERY;
if (!D || D.version !== 1) {
  $("#nodata").hidden = false;
  return;
}
const A = D.axes;
A[1].values = A[1].values || D.prompts.id; // data.py: status first, then prompt
for (const ax of A) { ax.chips = ax.chips || ax.values; ax.heads = ax.heads || ax.values; }
const IT = D.items;
const N = IT.n;
// an item's first image, relative to the job folder ("" if none)
const imageOf = (i) => (IT.image[i] ? IT.image_dir + IT.image[i] : "");
const STATUS = 0;
const OVERSCAN = 900; // px drawn beyond each edge of the window
const HEAD_EST = 110; // px, until a block is drawn: a one-line prompt
const ROW_EST = 248;
const MAX_COLS = 6; // the comparison keeps grid columns up to this many
const CARDS = 120; // comparison cards drawn at a time
const fmt = (n) => n.toLocaleString("en-US");
// served by `runner review --serve` (serve.py sets this in <head>): marks change
const SERVED = Boolean(window.RUNNER_SERVE);
const hooks = { cell: null }; // see RUNNER_VIEW at the end

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}
function value(a, i) {
  const column = IT.axis[a]; // the data's array: columns (below) is for filters
  return column ? column[i] : 0;
}
function head(a, i) {
  const v = value(a, i);
  return v < 0 ? A[a].missing : A[a].heads[v];
}
const statusOf = (i) => A[STATUS].values[value(STATUS, i)];
// a relative path as a URL: each segment percent-encoded (never a scheme)
const href = (path) => path.split("/").map(encodeURIComponent).join("/");
function thumbOf(i) {
  const t = IT.thumb[i];
  if (t === 0 || !IT.image[i]) return null;
  if (t !== 1) return t;
  const image = imageOf(i);
  const name = image.slice(image.lastIndexOf("/") + 1);
  const dot = name.lastIndexOf(".");
  return "thumbs/" + (dot > 0 ? name.slice(0, dot) : name) + ".jpg";
}

// -- prompts: their grids ---------------------------------------------------------
// Prompts are columns (data.py), read through these; what changes with the filters
// is kept in typed arrays indexed by prompt, by grid row (rowBase[p] + r) and by
// grid column (colBase[p] + c), so 100,000 prompts cost no object each.
const PR = D.prompts;
const P = PR.id.length;
const shapes = D.shapes.map((sh) => ({ ...sh, C: sh.columns.length }));
const shapeOf = (p) => shapes[PR.shape[p]];
const rowBase = new Int32Array(P + 1);
const colBase = new Int32Array(P + 1);
for (let p = 0; p < P; p++) {
  const C = shapeOf(p).C;
  rowBase[p + 1] = rowBase[p] + PR.cells[p].length / C;
  colBase[p + 1] = colBase[p] + C;
}
const rowsOf = (p) => rowBase[p + 1] - rowBase[p];
function cellAt(p, r, c) { // an item index, or -1
  const k = PR.cells[p][r * shapeOf(p).C + c];
  return k < 0 ? -1 : k + PR.first[p];
}
const headH = new Float32Array(P); // measured heights (0: not drawn yet)
const rowH = new Float32Array(rowBase[P]);
const rowShown = new Int32Array(rowBase[P]); // items a row shows under the filters
const colOn = new Uint8Array(colBase[P]);
const ncols = new Int32Array(P);
function entryLabel(p, i) {
  const sh = shapeOf(p);
  return (sh.col >= 0 ? [sh.col] : []).concat(sh.rows).map((a) => head(a, i)).join(" · ");
}
function rowLines(p, r) {
  const sh = shapeOf(p);
  let i = -1;
  for (let c = 0; c < sh.C && i < 0; c++) i = cellAt(p, r, c);
  const lines = sh.rows.map((a) => head(a, i));
  const dups = PR.dups[p];
  if (dups && dups[r] !== undefined) lines.push(dups[r]);
  return lines;
}
function promptFacts(p) { // status counts, tokens and items: when its header is drawn
  const counts = {};
  let tokens = 0;
  let items = 0;
  for (const k of PR.cells[p]) {
    if (k < 0) continue;
    const i = k + PR.first[p];
    const s = statusOf(i);
    counts[s] = (counts[s] || 0) + 1;
    if (IT.tokens[i] > 0) tokens += IT.tokens[i];
    items++;
  }
  return { counts, tokens, items };
}

// -- marks ----------------------------------------------------------------------
// D.marks: image -> {mark, note}. An item's mark, for the filter, is that of the
// image its cell shows (its first): markCol[i] is an index into MARKS.
const MARKS = ["star", "reject", "none"];
const MARK_CHIPS = ["★ starred", "✕ rejected", "unmarked"];
const markCol = new Uint8Array(N).fill(2);
const markCounts = [0, 0, N];
let itemByImage = null;
function itemOf(image) { // the item whose cell shows `image`, or -1
  if (!itemByImage) {
    itemByImage = new Map();
    for (let i = 0; i < N; i++) if (IT.image[i]) itemByImage.set(imageOf(i), i);
  }
  const i = itemByImage.get(image);
  return i === undefined ? -1 : i;
}
const markCode = (m) => (m && m.mark === "star" ? 0 : m && m.mark === "reject" ? 1 : 2);
function readMark(image) { // true when the item's filter value changed
  const i = itemOf(image);
  if (i < 0) return false;
  const v = markCode(D.marks[image]);
  if (markCol[i] === v) return false;
  markCounts[markCol[i]]--;
  markCounts[v]++;
  markCol[i] = v;
  return true;
}
for (const image of Object.keys(D.marks)) readMark(image);

// -- filters --------------------------------------------------------------------
const allowed = A.map((ax) => new Uint8Array(ax.values.length).fill(1));
const markAllowed = new Uint8Array(MARKS.length).fill(1);
const filterAxes = A.map((_, a) => a)
  .filter((a) => a === STATUS || A[a].values.length > 1);
const form = $("#filters");
for (const a of filterAxes) {
  const ax = A[a];
  const set = el("fieldset");
  set.append(el("legend", "", ax.title));
  if (a !== STATUS && ax.values.length > D.layout.chip_max) {
    const box = el("input", "find");
    box.type = "search";
    box.name = "q" + a;
    box.placeholder = `search ${fmt(ax.values.length)} values`;
    box.setAttribute("aria-label", ax.title + " contains");
    set.append(box);
  } else {
    ax.values.forEach((v, k) => {
      const chip = el("label", a === STATUS ? "chip s-" + v : "chip");
      const refs = ax.key === "references" ? D.references[v] : undefined;
      chip.title = (refs ? refs.join(", ") + "\n" : "") + "double-click: only this";
      const box = el("input");
      box.type = "checkbox";
      box.name = "f" + a;
      box.value = v;
      box.checked = true;
      box.dataset.k = k;
      const text = el("span", "", ax.chips[k] + " ");
      text.append(el("small", "", fmt(ax.counts[k])));
      chip.append(box, text);
      set.append(chip);
    });
  }
  $("#fsets").append(set);
}
// the filter by mark: on the served page, and on a static one with marks
const markBoxes = [];
if (SERVED || Object.keys(D.marks).length) {
  const set = el("fieldset");
  set.append(el("legend", "", "Mark"));
  MARKS.forEach((v, k) => {
    const chip = el("label", "chip m-" + v);
    chip.title = "double-click: only this";
    const box = el("input");
    box.type = "checkbox";
    box.name = "mk";
    box.value = v;
    box.checked = true;
    box.dataset.k = k;
    const text = el("span", "", MARK_CHIPS[k] + " ");
    text.append(el("small", "", fmt(markCounts[k])));
    chip.append(box, text);
    set.append(chip);
    markBoxes.push(box);
  });
  $("#fsets").append(set);
}
function countMarks() {
  markBoxes.forEach((b, k) => { $("small", b.parentElement).textContent = fmt(markCounts[k]); });
}
const boxes = $$("input[type=checkbox]", form);
const finds = $$("input.find", form);
const promptIndex = new Map(PR.id.map((id, p) => [id, p]));
function readFilters() {
  for (const b of boxes) {
    const into = b.name === "mk" ? markAllowed : allowed[+b.name.slice(1)];
    into[+b.dataset.k] = b.checked ? 1 : 0;
  }
  for (const f of finds) {
    const a = +f.name.slice(1);
    const q = f.value.trim().toLowerCase();
    if (!q) { allowed[a].fill(1); continue; }
    const texts = haystack(a);
    for (let k = 0; k < texts.length; k++) allowed[a][k] = texts[k].includes(q) ? 1 : 0;
  }
}
const haystacks = new Map();
function haystack(a) { // what a search box matches each value of its axis against
  if (!haystacks.has(a)) {
    haystacks.set(a, A[a].values.map((v, k) => {
      let text = A[a].chips[k];
      if (A[a].key === "prompt" && promptIndex.has(v)) {
        text += "\n" + PR.texts[promptIndex.get(v)].join("\n");
      }
      return text.toLowerCase();
    }));
  }
  return haystacks.get(a);
}
const on = new Uint8Array(N);
const columns = IT.axis.map((c) => (c ? Int32Array.from(c) : null));
function computeOn() {
  const cols = [];
  const yes = [];
  for (const a of filterAxes) {
    if (!allowed[a].includes(0)) continue;
    if (columns[a] === null && !allowed[a][0]) { on.fill(0); return 0; }
    if (columns[a] !== null) { cols.push(columns[a]); yes.push(allowed[a]); }
  }
  if (markBoxes.length && markAllowed.includes(0)) { cols.push(markCol); yes.push(markAllowed); }
  if (!cols.length) { on.fill(1); return N; }
  let count = 0;
  for (let i = 0; i < N; i++) {
    let ok = 1;
    for (let t = 0; t < cols.length; t++) {
      const v = cols[t][i];
      if (v >= 0 && yes[t][v] === 0) { ok = 0; break; }
    }
    on[i] = ok;
    count += ok;
  }
  return count;
}

// -- blocks and pages ---------------------------------------------------------
// Block k: prompt bP[k], grid row bR[k] (-1: the prompt's header); bF[k] flags
// LAST (the prompt's last row shown) and MORE (a header repeated atop a page).
// Page n is blocks pageStart[n] up to pageStart[n + 1].
const LAST = 1;
const MORE = 2;
const CAP = P + 2 * rowBase[P] + 1;
const bP = new Int32Array(CAP);
const bR = new Int32Array(CAP);
const bF = new Uint8Array(CAP);
let pageStart = [0, 0];
let pageItems = [0];
let page = 0;
function blockHeight(k) {
  return bR[k] < 0 ? headH[bP[k]] || HEAD_EST : rowH[rowBase[bP[k]] + bR[k]] || ROW_EST;
}
function layout() {
  let nb = 0;
  let height = 0;
  pageStart = [0];
  pageItems = [0];
  let headAt = -1; // the block of the current prompt's header
  const add = (p, r, flags, items) => {
    bP[nb] = p; bR[nb] = r; bF[nb] = flags;
    const h = blockHeight(nb);
    const start = pageStart[pageStart.length - 1];
    if (height + h > D.layout.page_px && nb > start) {
      pageItems.push(0);
      if (r >= 0 && headAt === nb - 1 && headAt > start) {
        pageStart.push(headAt); // a header alone at the bottom moves down with its row
        height = blockHeight(headAt);
      } else {
        pageStart.push(nb);
        height = 0;
        if (r >= 0) { add(p, -1, MORE, 0); add(p, r, flags, items); return; }
      }
    }
    pageItems[pageItems.length - 1] += items;
    height += h;
    nb++;
  };
  for (let p = 0; p < P; p++) {
    const C = shapeOf(p).C;
    const R = rowsOf(p);
    colOn.fill(0, colBase[p], colBase[p + 1]);
    let lastRow = -1;
    for (let r = 0; r < R; r++) {
      let any = 0;
      for (let c = 0; c < C; c++) {
        const i = cellAt(p, r, c);
        if (i >= 0 && on[i]) { any++; colOn[colBase[p] + c] = 1; }
      }
      rowShown[rowBase[p] + r] = any;
      if (any) lastRow = r;
    }
    if (lastRow < 0) continue;
    let n = 0;
    for (let c = colBase[p]; c < colBase[p + 1]; c++) n += colOn[c];
    ncols[p] = n;
    headAt = nb;
    add(p, -1, 0, 0);
    for (let r = 0; r <= lastRow; r++) {
      const shown = rowShown[rowBase[p] + r];
      if (shown) add(p, r, r === lastRow ? LAST : 0, shown);
    }
  }
  pageStart.push(nb);
}

// -- drawing a block ------------------------------------------------------------
function gridRow(p) {
  const row = el("div", "grow");
  row.style.gridTemplateColumns =
    (shapeOf(p).rows.length ? "var(--label) " : "") + `repeat(${ncols[p]}, var(--cell))`;
  return row;
}
function marked(text, names) {
  const out = el("p", "ptext");
  if (!names.length) { out.textContent = text; return out; }
  const escape = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const token = new RegExp("(\\{(?:" + names.map(escape).join("|") + ")\\})");
  text.split(token).forEach((part, k) => {
    if (part) out.append(k % 2 ? el("span", "var", part) : document.createTextNode(part));
  });
  return out;
}
function drawHead(k) {
  const p = bP[k];
  const sh = shapeOf(p);
  const facts = promptFacts(p);
  const blk = el("div", "blk head");
  blk.dataset.prompt = PR.id[p];
  const card = el("div", "part");
  const top = el("div", "phead");
  const title = el("div", "ptitle");
  title.append(el("h2", "", PR.id[p] + (bF[k] & MORE ? " (continued)" : "")));
  const texts = PR.texts[p];
  texts.slice(0, 3).forEach((t, n) => {
    const line = marked(t, sh.vars);
    if (n) line.classList.add("alt");
    title.append(line);
  });
  if (texts.length > 3) {
    title.append(el("p", "ptext alt", `… and ${fmt(texts.length - 3)} more wordings`));
  }
  const side = el("div", "pside");
  const counts = el("p", "pcounts");
  for (const s of A[STATUS].values) {
    if (!facts.counts[s]) continue;
    const span = el("span", "s-" + s);
    span.append(el("i", "dot"), `${fmt(facts.counts[s])} ${s}`);
    counts.append(span);
  }
  counts.append(el("span", "", `${fmt(facts.tokens)} tokens`));
  const act = el("div", "pact");
  const sheets = PR.sheets[p];
  if (sheets.length) {
    const links = el("span", "sheets", "contact sheet");
    sheets.forEach((rel, n) => {
      const a = el("a", "", sheets.length === 1 ? "PNG" : `PNG ${n + 1}`);
      a.href = href(rel); a.target = "_blank"; a.rel = "noopener";
      links.append(" ", a);
    });
    act.append(links);
  }
  const cmp = el("button", "cmp", `Compare ${fmt(facts.items)} side by side`);
  cmp.type = "button";
  cmp.dataset.compare = p;
  act.append(cmp);
  side.append(counts, act);
  top.append(title, side);
  card.append(top);
  if (sh.col >= 0 || sh.rows.length) {
    const heads = gridRow(p);
    heads.classList.add("heads");
    if (sh.rows.length) {
      heads.append(el("div", "corner", sh.rows.map((a) => A[a].title).join(" / ")));
    }
    for (let c = 0; c < sh.C; c++) {
      if (!colOn[colBase[p] + c]) continue;
      heads.append(el("div", "col", sh.col >= 0 ? A[sh.col].heads[sh.columns[c]] : ""));
    }
    card.append(heads);
  }
  blk.append(card);
  return blk;
}
function drawRow(k) {
  const p = bP[k];
  const r = bR[k];
  const sh = shapeOf(p);
  const blk = el("div", bF[k] & LAST ? "blk row last" : "blk row");
  blk.dataset.prompt = PR.id[p];
  const card = el("div", "part");
  const row = gridRow(p);
  if (sh.rows.length) {
    const label = el("div", "rl");
    if (LN && LN.parent && sh.rows.some((a) => A[a].key === "parent")) {
      label.append(parentThumb(p, r)); // a row of one parent's children: the parent
    }
    for (const line of rowLines(p, r)) label.append(el("span", "", line));
    row.append(label);
  }
  for (let c = 0; c < sh.C; c++) {
    if (!colOn[colBase[p] + c]) continue;
    const i = cellAt(p, r, c);
    if (i < 0) {
      const hole = el("div", "void");
      hole.append(el("div", "frame", "not in plan"));
      row.append(hole);
    } else {
      row.append(drawCell(p, i));
    }
  }
  card.append(row);
  blk.append(card);
  return blk;
}
function frameOf(i, label, full) {
  const image = imageOf(i);
  const thumb = thumbOf(i);
  if (thumb) {
    const a = el("a", "frame");
    a.href = href(image); a.target = "_blank"; a.rel = "noopener";
    const img = el("img");
    img.loading = "lazy"; img.decoding = "async"; img.alt = label;
    img.src = href(full ? image : thumb);
    a.append(img);
    return a;
  }
  const s = statusOf(i);
  const ph = el("div", "frame ph");
  ph.append(el("b", "", s === "succeeded" ? "no image" : s),
            el("span", "reason", IT.reasons[IT.reason[i]]));
  return ph;
}
function extras(i, into) {
  const s = statusOf(i);
  const cap = el("div", "cap");
  cap.append(el("span", "badge s-" + s, s));
  if (IT.simulated && IT.simulated[i]) {
    // a --simulate result is never mistaken for a real one (SPEC 5)
    const sim = el("span", "badge s-simulated", "simulated");
    sim.title = "made by --simulate, not the API";
    cap.append(sim);
  }
  const mark = IT.image[i] ? D.marks[imageOf(i)] : undefined;
  if (mark && (mark.mark === "star" || mark.mark === "reject")) {
    cap.append(el("span", "mark m-" + mark.mark, mark.mark === "star" ? "★ star" : "✕ reject"));
  }
  const n = IT.attempts[i];
  let meta = `${n} attempt${n === 1 ? "" : "s"}`;
  if (IT.tokens[i] >= 0) meta += ` · ${fmt(IT.tokens[i])} tok`;
  cap.append(el("span", "meta", meta));
  into.append(cap);
  if (mark && mark.note) into.append(el("p", "mnote", mark.note));
  const more = D.extra[i];
  if (more) {
    const box = el("div", "more");
    more.forEach((rel, k) => {
      const mark = D.marks[rel] ? D.marks[rel].mark : null;
      const sign = mark === "star" ? " ★" : mark === "reject" ? " ✕" : "";
      const a = el("a", "", `image ${k + 2}${sign}`);
      a.href = href(rel); a.target = "_blank"; a.rel = "noopener";
      box.append(a);
    });
    into.append(box);
  }
  const g = D.grounding[i];
  if (g) into.append(grounding(g));
  if (LN) lineage(i, into);
}
// -- lineage (SPEC 6): a derived item's parent, an image's children ------------------
// Other jobs' folders are siblings of this one: `../<job>/<path>`, from file:// and
// on the served page alike (it serves the folders of related jobs).
const LN = D.lineage;
const LINKS = 12; // children linked one by one per job; the rest via its gallery
const inJob = (job, path) => "../" + encodeURIComponent(job) + "/" + href(path);
function thumbRule(image) { // data.py's thumb_path: thumbs/<stem>.jpg
  const name = image.slice(image.lastIndexOf("/") + 1);
  const dot = name.lastIndexOf(".");
  return "thumbs/" + (dot > 0 ? name.slice(0, dot) : name) + ".jpg";
}
function link(text, url, title) {
  const a = el("a", "", text);
  a.href = url; a.target = "_blank"; a.rel = "noopener";
  if (title) a.title = title;
  return a;
}
function parentOf(i) { // [job, image] of item i's parent, or null
  const up = LN.parent;
  return up && up.job[i] >= 0 ? [LN.jobs[up.job[i]], up.image_dir + up.image[i]] : null;
}
function parentImg(job, image) {
  const img = el("img");
  img.alt = ""; img.loading = "lazy";
  img.onerror = () => img.remove(); // the parent's gallery was never built
  img.src = inJob(job, thumbRule(image));
  return img;
}
function parentThumb(p, r) { // a row label's picture of the row's parent
  const sh = shapeOf(p);
  let i = -1;
  for (let c = 0; c < sh.C && i < 0; c++) i = cellAt(p, r, c);
  const up = i >= 0 ? parentOf(i) : null;
  if (!up) return "";
  const a = link("", inJob(up[0], up[1]), `${up[0]}/${up[1]}`);
  a.className = "rlp";
  a.append(parentImg(up[0], up[1]));
  return a;
}
function lineage(i, into) {
  const up = parentOf(i);
  if (up) {
    const [job, image] = up;
    const mode = LN.modes[LN.parent.mode ? LN.parent.mode[i] : 0];
    const box = el("div", "lin up");
    const a = link("", inJob(job, image), `${mode} of ${job}/${image}`);
    a.append(parentImg(job, image), el("span", "", image.slice(image.lastIndexOf("/") + 1)));
    box.append(el("span", "lk", `${mode} of ${job}`), a);
    into.append(box);
  }
  const images = IT.image[i] ? [imageOf(i)].concat(D.extra[i] || []) : [];
  const byJob = new Map(); // job index -> [[mode, child image]]
  for (const image of images) {
    for (const [j, m, child] of LN.children[image] || []) {
      if (!byJob.has(j)) byJob.set(j, []);
      byJob.get(j).push([m, child]);
    }
  }
  for (const [j, kids] of byJob) {
    const job = LN.jobs[j];
    const box = el("div", "lin down");
    const modes = [...new Set(kids.map(([m]) => LN.modes[m]))].join(", ");
    box.append(el("span", "lk", "children in"),
               link(job, inJob(job, "index.html"), `the gallery of ${job}`),
               el("span", "lk", `(${modes}):`));
    kids.slice(0, LINKS).forEach(([, child], n) => {
      if (child) box.append(link(String(n + 1), inJob(job, child), `${job}/${child}`));
    });
    if (kids.length > LINKS) box.append(el("span", "lk", `+${fmt(kids.length - LINKS)}`));
    into.append(box);
  }
}
function markClass(i) {
  return markCol[i] < 2 ? " m-" + MARKS[markCol[i]] : "";
}
function drawCell(p, i) {
  const s = statusOf(i);
  const cell = el("div", (on[i] ? "cell s-" : "cell off s-") + s + markClass(i));
  cell.dataset.i = i;
  if (IT.image[i]) cell.dataset.image = imageOf(i); // what a mark names
  const label = entryLabel(p, i);
  cell.title = `${IT.texts[IT.text[i]]}\n${label}\nkey ${IT.key[i]}`;
  cell.append(frameOf(i, label, false));
  extras(i, cell);
  if (hooks.cell) hooks.cell(cell, i);
  return cell;
}
// A grounded image's sources, and Google's search suggestions shown exactly as
// given (Google's terms for grounding ask that they stay visible with the answer:
// ai.google.dev/gemini-api/docs/grounding/search-suggestions). The suggestions are
// markup from the network: they go in an iframe's srcdoc (data.py's document with
// its own Content-Security-Policy), sandboxed before the srcdoc is set: without
// allow-scripts nothing in it runs, without allow-same-origin it cannot reach this
// page; allow-popups(-to-escape-sandbox) lets a click open Google's results page
// in a new tab as an ordinary page.
function grounding(g) {
  const box = el("div", "ground");
  const links = g.sources.filter(([, uri]) => /^https?:\/\//i.test(uri));
  if (links.length) {
    const list = el("ol", "src");
    for (const [title, uri] of links) {
      const a = el("a", "", title);
      a.href = uri; a.target = "_blank"; a.rel = "noopener noreferrer";
      const li = el("li");
      li.append(a);
      list.append(li);
    }
    box.append(list);
  }
  if (g.suggestions !== null) {
    const frame = el("iframe", "gs");
    frame.title = "Google Search suggestions";
    frame.loading = "lazy";
    frame.setAttribute("sandbox", "allow-popups allow-popups-to-escape-sandbox");
    frame.srcdoc = g.suggestions;
    box.append(frame);
  } else if (g.queries.length) {
    box.append(el("p", "gq", "searched: " + g.queries.join(" · ")));
  }
  return box;
}

// -- the window -------------------------------------------------------------------
const list = $("#list");
const above = el("div", "spacer");
const below = el("div", "spacer");
list.append(above, below);
let offsets = new Float64Array(1);
let drawn = new Map(); // block index within the page -> element
let first = 0;
let end = 0;
// offsets[j]: the top of the page's block j (block pageStart[page] + j) in the list
const pageLength = () => pageStart[page + 1] - pageStart[page];
function measureAll() {
  const base = pageStart[page];
  const n = pageLength();
  offsets = new Float64Array(n + 1);
  for (let j = 0; j < n; j++) offsets[j + 1] = offsets[j] + blockHeight(base + j);
}
function firstAfter(y) { // the first block whose bottom edge is below y
  let lo = 0;
  let hi = pageLength();
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (offsets[mid + 1] > y) hi = mid; else lo = mid + 1;
  }
  return lo;
}
let queued = false;
let firstDrawn = false;
let listTop = null; // the list's top edge in the document; null: measure it again
function schedule() {
  if (!queued) { queued = true; requestAnimationFrame(draw); }
}
function draw() { // the blocks near the window drawn, those far from it removed
  queued = false;
  const base = pageStart[page];
  const n = pageLength();
  if (listTop === null) listTop = list.getBoundingClientRect().top + scrollY;
  const top = scrollY - listTop;
  const a = Math.min(firstAfter(top - OVERSCAN), n);
  const b = Math.max(a, Math.min(firstAfter(top + innerHeight + OVERSCAN) + 1, n));
  if (a === first && b === end && drawn.size) return;
  for (const [j, node] of drawn) {
    if (j < a || j >= b) { node.remove(); drawn.delete(j); }
  }
  let added = false;
  let next = below;
  for (let j = b - 1; j >= a; j--) {
    let node = drawn.get(j);
    if (!node) {
      node = bR[base + j] < 0 ? drawHead(base + j) : drawRow(base + j);
      list.insertBefore(node, next);
      drawn.set(j, node);
      added = true;
    }
    next = node;
  }
  first = a; end = b;
  if (!firstDrawn && added) {
    // when the first rows were drawn, and a frame later painted (benchmarks/)
    firstDrawn = true;
    performance.mark("gallery:rows");
    requestAnimationFrame(() => performance.mark("gallery:painted"));
  }
  above.style.height = offsets[a] + "px";
  below.style.height = offsets[n] - offsets[b] + "px";
  let changed = false;
  // every drawn block, not only the new ones: a narrower window rewraps text
  for (const [j, node] of drawn) { // one layout for all of them
    const k = base + j;
    const h = node.offsetHeight;
    if (Math.abs(h - blockHeight(k)) < 0.5) continue;
    if (bR[k] < 0) headH[bP[k]] = h; else rowH[rowBase[bP[k]] + bR[k]] = h;
    changed = true;
  }
  if (changed) {
    measureAll(); // blocks outside [a, b) are unchanged, so are the spacers
    schedule();
  }
}
function redraw() {
  for (const node of drawn.values()) node.remove();
  drawn = new Map();
  first = end = 0;
  listTop = null; // the pager or the no-match line above it may have changed
  measureAll();
  drawPager();
  draw(); // now, not at the next frame: a filter's answer is in the same frame
}
addEventListener("scroll", schedule, { passive: true });
addEventListener("resize", () => { first = end = -1; listTop = null; schedule(); });

// -- pages ------------------------------------------------------------------------
const pagers = $$("nav.pager");
function drawPager() {
  for (const nav of pagers) {
    const pages = pageStart.length - 1;
    nav.hidden = pages < 2;
    if (nav.hidden) continue;
    const prev = el("button", "prev", "‹ previous");
    const next = el("button", "next", "next ›");
    prev.type = next.type = "button";
    prev.disabled = page === 0;
    next.disabled = page === pages - 1;
    prev.onclick = () => go(page - 1);
    next.onclick = () => go(page + 1);
    const where = el("span", "where",
      `page ${page + 1} of ${pages} · ${fmt(pageItems[page])} items`);
    nav.replaceChildren(prev, where, next);
  }
}
function go(n) {
  page = Math.max(0, Math.min(n, pageStart.length - 2));
  // to the top of the new page, just under the sticky filter bar
  scrollTo(0, pagers[0].getBoundingClientRect().top + scrollY - form.offsetHeight - 8);
  redraw();
}

function apply() {
  readFilters();
  const count = computeOn();
  layout();
  page = Math.min(page, pageStart.length - 2);
  $("#shown").textContent = fmt(count);
  $("#nomatch").hidden = count > 0 || !N;
  redraw();
}
form.addEventListener("change", apply);
let typing = 0;
form.addEventListener("input", (e) => {
  if (!e.target.classList.contains("find")) return;
  clearTimeout(typing);
  typing = setTimeout(apply, 120);
});
// double-click a chip: keep only that value of its axis
form.addEventListener("dblclick", (e) => {
  const chip = e.target.closest("label.chip");
  if (!chip) return;
  const box = $("input", chip);
  for (const b of boxes) if (b.name === box.name) b.checked = b === box;
  apply();
});
$("#fold").addEventListener("click", (e) => {
  const folded = form.classList.toggle("folded");
  listTop = null;
  e.target.textContent = folded ? "show filters" : "hide filters";
  e.target.setAttribute("aria-expanded", String(!folded));
});
$("#reset").addEventListener("click", () => {
  for (const b of boxes) b.checked = true;
  for (const f of finds) f.value = "";
  apply();
});

// -- comparison -------------------------------------------------------------------
const overlay = $("#compare");
const cmpgrid = $("#cmpgrid");
let lastFocus = null;
let more = null;
// Same columns as the prompt's grid (an empty slot where a cell is missing or
// filtered out), so one column keeps one aspect ratio; free flow past MAX_COLS.
function openCompare(p) {
  const sh = shapeOf(p);
  const cols = [];
  for (let c = 0; c < sh.C; c++) if (colOn[colBase[p] + c]) cols.push(c);
  const aligned = cols.length <= MAX_COLS;
  const slots = [];
  let count = 0;
  for (let r = 0; r < rowsOf(p); r++) {
    if (!rowShown[rowBase[p] + r]) continue;
    for (const c of cols) {
      const i = cellAt(p, r, c);
      if (i >= 0 && on[i]) { slots.push(i); count++; } else if (aligned) slots.push(-1);
    }
  }
  cmpgrid.classList.toggle("free", !aligned);
  cmpgrid.style.setProperty("--cols", String(Math.max(1, cols.length)));
  cmpgrid.replaceChildren();
  if (!count) cmpgrid.append(el("p", "cmpnone", "No variant of this prompt passes the filters."));
  let done = 0;
  const sentinel = el("div", "cmpmore");
  const fill = () => {
    const part = slots.slice(done, done + CARDS).map((i) => (i < 0 ? el("div") : card(p, i)));
    done += part.length;
    sentinel.before(...part);
    if (done >= slots.length) { sentinel.remove(); more.disconnect(); }
  };
  if (more) more.disconnect();
  more = new IntersectionObserver((seen) => { if (seen.some((s) => s.isIntersecting)) fill(); },
                                  { root: overlay, rootMargin: "600px" });
  cmpgrid.append(sentinel);
  fill();
  if (done < slots.length) more.observe(sentinel);
  $("#cmpt").textContent = `${PR.id[p]} · ${count} shown`;
  $("#cmpx").textContent = PR.texts[p][0] || "";
  lastFocus = document.activeElement;
  overlay.hidden = false;
  document.body.classList.add("modal");
  $("#cmpclose").focus();
}
function card(p, i) {
  const fig = el("figure", "card s-" + statusOf(i) + markClass(i));
  fig.dataset.i = i;
  if (IT.image[i]) fig.dataset.image = imageOf(i);
  const label = entryLabel(p, i);
  fig.append(frameOf(i, label, true), el("figcaption", "lbl", label || "(single item)"));
  extras(i, fig);
  if (hooks.cell) hooks.cell(fig, i);
  return fig;
}
function closeCompare() {
  overlay.hidden = true;
  if (more) more.disconnect();
  cmpgrid.replaceChildren();
  document.body.classList.remove("modal");
  if (lastFocus) lastFocus.focus();
}
document.addEventListener("click", (e) => {
  const b = e.target.closest("button.cmp");
  if (b) openCompare(+b.dataset.compare);
});
$("#cmpclose").addEventListener("click", closeCompare);
document.addEventListener("keydown", (e) => {
  if (e.key === "Escape" && !overlay.hidden) closeCompare();
});

// -- for the served gallery's controls (serve.js) ------------------------------------
// Where an item is among the prompts' cells (lazily: only stepping needs it).
let where = null;
function locate() {
  if (!where) {
    where = { p: new Int32Array(N).fill(-1), at: new Int32Array(N) };
    for (let p = 0; p < P; p++) {
      const cells = PR.cells[p];
      for (let k = 0; k < cells.length; k++) {
        if (cells[k] >= 0) { where.p[cells[k] + PR.first[p]] = p; where.at[cells[k] + PR.first[p]] = k; }
      }
    }
  }
  return where;
}
// The next item after item i (step 1) or before it (step -1), in the order the
// page shows them, that the filters show and that has an image; -1: none. From
// the first (or last) when i is -1.
function step(i, dir) {
  const w = locate();
  let p = i >= 0 && w.p[i] >= 0 ? w.p[i] : dir > 0 ? 0 : P - 1;
  let k = i >= 0 && w.p[i] >= 0 ? w.at[i] : null;
  for (; p >= 0 && p < P; p += dir) {
    const cells = PR.cells[p];
    if (k === null) k = dir > 0 ? -1 : cells.length;
    for (k += dir; k >= 0 && k < cells.length; k += dir) {
      const j = cells[k] < 0 ? -1 : cells[k] + PR.first[p];
      if (j >= 0 && on[j] && IT.image[j]) return j;
    }
    k = null;
  }
  return -1;
}
function blockOf(i) { // the block (grid row) item i is drawn in, or -1
  const w = locate();
  const p = w.p[i];
  if (p < 0) return -1;
  const r = Math.floor(w.at[i] / shapeOf(p).C);
  const n = pageStart[pageStart.length - 1];
  let lo = 0;
  let hi = n;
  while (lo < hi) { const mid = (lo + hi) >> 1; if (bP[mid] < p) lo = mid + 1; else hi = mid; }
  for (let k = lo; k < n && bP[k] === p; k++) if (bR[k] === r) return k;
  return -1;
}
// Item i's cell drawn and scrolled into view below the filter bar (on its page);
// the cell, or null when the filters hide its row.
function reveal(i) {
  const k = blockOf(i);
  if (k < 0) return null;
  let n = 0;
  while (k >= pageStart[n + 1]) n++;
  if (n !== page) { page = n; redraw(); }
  const bar = form.getBoundingClientRect().bottom;
  if (listTop === null) listTop = list.getBoundingClientRect().top + scrollY;
  const j = k - pageStart[page];
  const top = listTop + offsets[j];
  const bottom = listTop + offsets[j + 1];
  if (top < scrollY + bar) scrollTo(scrollX, top - bar - 8);
  else if (bottom > scrollY + innerHeight) scrollTo(scrollX, bottom - innerHeight + 8);
  draw();
  const cell = $(`.cell[data-i="${i}"]`, list);
  if (!cell) return null;
  cell.scrollIntoView({ block: "nearest", inline: "nearest" });
  const r = cell.getBoundingClientRect();
  const under = form.getBoundingClientRect().bottom;
  if (r.top < under) scrollBy(0, r.top - under - 8);
  schedule();
  return cell;
}
function setMarks(all) { // every mark replaced (the store's, as the server read it)
  const before = Object.keys(D.marks);
  D.marks = {};
  for (const [image, m] of Object.entries(all)) if (m.mark || m.note) D.marks[image] = m;
  let changed = false;
  for (const image of before.concat(Object.keys(D.marks))) changed = readMark(image) || changed;
  marksChanged(changed);
}
function setMark(image, m) { // one image's mark and note
  if (m && (m.mark || m.note)) D.marks[image] = { mark: m.mark || null, note: m.note || null };
  else delete D.marks[image];
  marksChanged(readMark(image));
}
function marksChanged(changed) {
  if (!changed) return;
  countMarks();
  if (markAllowed.includes(0)) apply(); // the filter by mark shows what it should
}
// The served gallery's controls hook in here (serve.js): `hooks.cell(element, i)`
// is called for each cell and comparison card as it is drawn (before it is
// measured: what it adds counts in the row's height); `redraw` draws the rows
// again (after setting a hook); `step` and `reveal` walk the items the filters
// show however few rows are drawn; `setMark(s)` change D.marks, the Mark chips'
// counts and, when the filter by mark hides some, what is shown.
window.RUNNER_VIEW = {
  data: D, hooks, imageOf, thumbOf, step, reveal, setMark, setMarks,
  markOf: (image) => D.marks[image],
  redraw: () => { first = end = -1; redraw(); },
};

apply();
})();
