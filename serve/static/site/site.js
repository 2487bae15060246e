// The page of `tinct deploy web`: a colorizer with no server. The photo is decoded and resampled by this browser,
// the model runs in a Web Worker with ONNX Runtime Web on this computer's CPU, the result is exported here.
import { LocalEngine, planesOf, saveAs as save } from "./engine.mjs";
import { checkHints } from "./tinct-core.mjs";

const $ = (id) => document.getElementById(id);
const S = { engine: null, models: [], photo: null, file: null, name: "", hints: [], undo: [], seq: 0, shown: 0,
            busy: false, again: false, rtts: [], timings: [] };
window.tinct = S; // read by the browser test
const BASE = new URL(".", location.href);

function status(msg, ok = false) { $("status").textContent = msg || ""; $("status").className = ok ? "ok" : ""; }
function state() { document.body.dataset.state = S.busy || S.again || S.loading ? "busy" : "idle"; }
const ms = (v) => (v === undefined ? "–" : v.toFixed(1) + " ms");

async function loadModels() {
  const r = await fetch("models.json");
  if (!r.ok) throw new Error("models.json: " + r.status);
  S.models = (await r.json()).models;
  for (const [i, m] of S.models.entries()) {
    const o = document.createElement("option"); o.value = i; o.textContent = m.model; $("model").appendChild(o);
  }
  const want = new URLSearchParams(location.search).get("threads");
  if (want) $("threads").value = want;
  await openModel();
}
async function openModel() {
  const m = S.models[+$("model").value], threads = +$("threads").value;
  S.loading = true; state();
  status(`loading ${m.model} (${(m.bytes / 2 ** 20).toFixed(1)} MB, checked against its sha256)…`, true);
  const t0 = performance.now();
  try {
    const e = await LocalEngine.open(m, crossOriginIsolated ? threads : 1, BASE);
    if (S.engine) S.engine.close();
    S.engine = e; S.cold = { ...e.info.ms, total: performance.now() - t0 };
    $("t-cold").textContent = ms(S.cold.total);
    $("info").textContent = `${m.model} · ONNX Runtime Web (WebAssembly) · ${e.threads} thread(s)` +
      (crossOriginIsolated ? "" : " · not cross-origin isolated: one thread (the host must send COOP/COEP, see README.md)");
    status("", true);
    if (S.photo) { await S.engine.photo(S.photo.l224, S.photo.width, S.photo.height, S.photo.lp, S.photo.pw, S.photo.ph); update(); }
  } catch (err) {
    status(err.message); // the model is refused; whatever was open stays open
  } finally { S.loading = false; state(); }
}
$("model").onchange = openModel; $("threads").onchange = openModel;

async function openPhoto(file) {
  S.loading = true; state();
  try {
    const st = $("stage"), side = Math.max(64, Math.round(Math.min(st.clientWidth - 20, st.clientHeight - 20) * (window.devicePixelRatio || 1)));
    const p = await planesOf(file, side);
    S.photo = p; S.file = file; S.name = file.name || "photo"; S.hints = []; S.undo = []; S.shown = 0;
    const v = $("view"); v.width = p.pw; v.height = p.ph;
    v.getContext("2d").putImageData(new ImageData(p.gray, p.pw, p.ph), 0, 0);
    $("drop").hidden = true; $("frame").hidden = false;
    for (const id of ["download", "save-hints"]) $(id).disabled = false;
    markers();
    if (S.engine) await S.engine.photo(p.l224, p.width, p.height, p.lp, p.pw, p.ph);
    status(`${p.width}×${p.height}, shown at ${p.pw}×${p.ph}: click to add hints`, true);
    S.opened = (S.opened || 0) + 1;
  } catch (err) { status(err.message); } finally { S.loading = false; state(); }
}
$("file").onchange = () => { const f = $("file").files[0]; $("file").value = ""; if (f) openPhoto(f); };
$("stage").addEventListener("dragover", (ev) => ev.preventDefault());
$("stage").addEventListener("drop", (ev) => { ev.preventDefault(); const f = ev.dataTransfer.files[0]; if (f) openPhoto(f); });
document.querySelector("label.button").addEventListener("keydown", (ev) => { if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); $("file").click(); } });

function markers() {
  const box = $("markers"); box.textContent = "";
  S.hints.forEach((h, i) => {
    const m = document.createElement("div");
    m.className = "marker"; m.style.background = h.color; m.title = `(${h.x}, ${h.y}) ${h.color}`;
    m.style.left = ((h.x + 0.5) / S.photo.width * 100) + "%"; m.style.top = ((h.y + 0.5) / S.photo.height * 100) + "%";
    m.addEventListener("contextmenu", (ev) => { ev.preventDefault(); edit(() => S.hints.splice(i, 1)); });
    box.appendChild(m);
  });
  $("undo").disabled = !S.undo.length; $("clear").disabled = !S.hints.length;
}
function edit(change) { S.undo.push(JSON.stringify(S.hints)); change(); markers(); update(); }
$("view").addEventListener("pointerdown", (ev) => {
  if (ev.button !== 0 || !S.photo) return;
  const r = $("view").getBoundingClientRect();
  const x = Math.min(S.photo.width - 1, Math.max(0, Math.floor((ev.clientX - r.left) / r.width * S.photo.width)));
  const y = Math.min(S.photo.height - 1, Math.max(0, Math.floor((ev.clientY - r.top) / r.height * S.photo.height)));
  if (S.hints.some((h) => h.x === x && h.y === y)) return;
  const size = +$("brush").value;
  edit(() => S.hints.push(size > 1 ? { x, y, color: $("color").value, size } : { x, y, color: $("color").value }));
});
$("brush").oninput = () => { $("brush-size").textContent = $("brush").value; };
$("undo").onclick = () => { if (S.undo.length) { S.hints = JSON.parse(S.undo.pop()); markers(); update(); } };
$("clear").onclick = () => edit(() => { S.hints = []; });
document.addEventListener("keydown", (ev) => { if ((ev.ctrlKey || ev.metaKey) && ev.key.toLowerCase() === "z") { ev.preventDefault(); $("undo").onclick(); } });

// One update at a time; edits made meanwhile are folded into the next (the newest hints win).
async function update() {
  if (!S.engine || !S.photo) return;
  if (S.busy) { S.again = true; state(); return; }
  S.busy = true; state();
  const seq = ++S.seq, t0 = performance.now();
  try {
    checkHints(S.hints, S.photo.width, S.photo.height);
    const r = await S.engine.update(S.hints);
    $("view").getContext("2d").putImageData(r.pixels, 0, 0);
    S.shown = seq; S.rtts.push(performance.now() - t0); S.timings.push(r.timings); S.gates = r.gates;
    $("t-model").textContent = ms(r.timings.model); $("t-post").textContent = ms(r.timings.post);
    $("t-update").textContent = ms(r.timings.update);
    const g = $("gates"); g.hidden = !r.gates; g.textContent = "";
    if (r.gates) for (const part of [0, 1]) for (const blk of r.gates) { const s = document.createElement("span"); s.className = blk[part] ? "on" : ""; g.appendChild(s); }
    status("", true);
  } catch (err) { status(err.message); } finally {
    S.busy = false;
    if (S.again) { S.again = false; update(); }
    state();
  }
}

const stem = () => S.name.replace(/\.[^.]*$/, "");
$("save-hints").onclick = () => save(new Blob([JSON.stringify(S.hints, null, 1)], { type: "application/json" }), stem() + "-hints.json");
$("download").onclick = async () => {
  if (!S.engine || !S.shown) { status("add a hint first (or wait for the model)"); return; }
  S.loading = true; state(); status("exporting at full resolution…", true);
  try { save(await S.engine.exportPNG(S.file), stem() + "-tinct.png"); status("", true); }
  catch (err) { status(err.message); } finally { S.loading = false; state(); }
};

state();
loadModels().catch((err) => status("cannot start: " + err.message));
