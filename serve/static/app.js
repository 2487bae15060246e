// tinct serve: the interactive page. Plain JS, no build step, no network beyond this server.
"use strict";

const $ = (id) => document.getElementById(id);
const S = {
  sid: null, kind: "hints", width: 0, height: 0, pw: 0, ph: 0, file: null, fileName: "",
  hints: [], selected: -1, undo: [], redo: [],
  seq: 0, shownSeq: -1, inflight: false, pending: false,
  color: null, gray: null, // at the preview size: the last result and the gray input (canvases)
  engines: [], engine: null,
  brush: 1, brushColor: null, // new hints' patch side (cells of the model's 112x112 grid); a stroke's colour
  gesture: null, pointers: new Map(), // the pointer gesture in progress (tap, drag, stroke, pan, pinch)
  folder: null, folderIndex: -1, edited: false, // tinct serve --folder: the list, the photo shown, unsaved edits
  ws: null, wsBusy: false, wsSeq: 0, wsT0: 0, via: null, // the update socket; how the last update came
  rtts: [], // round trips of the last updates (ms, request sent -> image drawn), newest last
  served: [], // the same updates' server-side timings (ms: model, post, update = both and the rest, encode)
};
window.tinct = S; // read by the browser test; nothing on the page depends on it

// The preview's wire format: the raw RGBA display buffer on the machine that serves the page (exact, nothing to
// encode or decode), JPEG (quality 95, no chroma subsampling, ~45 dB, ~20x fewer bytes) across a network. Both
// come over the session's WebSocket (below). ?preview=rgba|jpeg|png overrides.
const LOCAL = ["127.0.0.1", "localhost", "[::1]", "::1"].includes(location.hostname);
const WIRE = new URLSearchParams(location.search).get("preview") || (LOCAL ? "rgba" : "jpeg");

// ------------------------------------------------------------------ helpers
const snapshot = () => JSON.stringify(S.hints);
const same = (a, b) => a === b;
function status(msg, ok = false) {
  if (!msg && S.notice && performance.now() < S.notice.until) { msg = S.notice.text; ok = false; } // a resync stays 5 s
  $("status").textContent = msg || ""; $("status").className = ok ? "ok" : "";
}
function busy() { document.body.dataset.state = (S.inflight || S.pending || S.picking || S.hold) ? "busy" : "idle"; }
function hex(r, g, b) { return "#" + [r, g, b].map((v) => v.toString(16).padStart(2, "0")).join(""); }
async function errorOf(resp) {
  try { const j = await resp.json(); return j.error || JSON.stringify(j); } catch { return resp.status + " " + resp.statusText; }
}
function canvas(w, h) { const c = document.createElement("canvas"); c.width = w; c.height = h; return c; }

// ------------------------------------------------------------------ engines and samples
async function loadEngines() {
  const r = await fetch("/api/engines");
  const j = await r.json();
  S.engines = j.engines; S.engine = j.default; S.browserModels = j.browser || [];
  const sel = $("engine");
  sel.innerHTML = "";
  for (const e of j.engines) {
    const o = document.createElement("option");
    o.value = e.id; o.textContent = e.id + (e.kind === "exemplar" ? " (reference photo)" : "");
    sel.appendChild(o);
  }
  S.browserModels.forEach((m, i) => { // the page's own engine: the model runs on this computer's CPU
    const o = document.createElement("option");
    o.value = "browser:" + i; o.textContent = m.id + " (your CPU)";
    sel.appendChild(o);
  });
  sel.value = S.engine;
}
async function loadSamples() {
  const j = await (await fetch("/api/samples")).json();
  for (const name of j.samples) {
    const o = document.createElement("option"); o.value = name; o.textContent = name; $("samples").appendChild(o);
  }
}
const engineInfo = (id) => S.engines.find((e) => e.id === id) || {};

// ------------------------------------------------------------------ opening a photo
async function openPhoto(blob, name, folderIndex = -1) {
  status((folderIndex >= 0 ? "opening " : "uploading ") + name + "…", true);
  const fd = new FormData();
  if (folderIndex < 0) fd.append("image", blob, name); // a folder's photo is read by the server from its folder
  fd.append("engine", S.engine);
  fd.append("preview", await displaySide(blob));
  const r = await fetch(folderIndex >= 0 ? `/api/folder/${folderIndex}/session` : "/api/sessions", { method: "POST", body: fd });
  if (!r.ok) { status(await errorOf(r)); return; }
  const j = await r.json();
  if (S.sid) fetch("/api/sessions/" + S.sid, { method: "DELETE" }); // the previous photo's session
  Object.assign(S, { sid: j.id, kind: j.kind, width: j.width, height: j.height, pw: j.preview.width,
                     ph: j.preview.height, file: blob, fileName: name, hints: [], selected: -1, undo: [], redo: [],
                     seq: 0, shownSeq: -1, color: null, folderIndex, edited: false });
  openSocket();
  resetZoom();
  await makeGray(blob);
  const view = $("view");
  view.width = S.pw; view.height = S.ph;
  $("drop").hidden = true; $("frame").hidden = false;
  $("hint-tools").hidden = S.kind !== "hints";
  $("exemplar-tools").hidden = S.kind !== "exemplar";
  $("ref-thumb").hidden = true;
  for (const id of ["save-hints", "download", "load-hints-label"]) $(id).classList.remove("disabled");
  $("save-hints").href = "/api/sessions/" + S.sid + "/hints";
  $("download").href = "/api/sessions/" + S.sid + "/image";
  $("engine-info").textContent = `${j.width}×${j.height}, shown at ${S.pw}×${S.ph} · ${j.engine.id}`;
  $("gates-box").hidden = true;
  draw(); renderMarkers(); toolbar(); renderRecent(); folderBar();
  S.opened = (S.opened || 0) + 1; // photos opened by this page (the browser tests wait on it)
  status(S.kind === "hints" ? "click the photo to add a hint" : "drop a reference photo", true);
  if (S.local) await localPhoto();
  if (j.saved_hints && j.saved_hints.length && S.kind === "hints") { // the hints saved beside a folder's photo
    S.hints = j.saved_hints; renderMarkers(); toolbar(); update();
    status(`${j.saved_hints.length} saved hints loaded`, true);
  }
}
async function displaySide(blob) { // the longer side the photo gets on this screen: the server renders no more
  const bmp = await createImageBitmap(blob, { imageOrientation: "from-image" });
  const st = $("stage"), dpr = window.devicePixelRatio || 1;
  const availW = st.clientWidth - 20, availH = st.clientHeight - 20;
  const w = bmp.width, h = bmp.height;
  bmp.close();
  const scale = Math.min(availW / w, availH / h, 1);
  return Math.max(64, Math.round(Math.max(w, h) * scale * dpr));
}
async function makeGray(blob) {
  const bmp = await createImageBitmap(blob, { imageOrientation: "from-image" });
  const c = canvas(S.pw, S.ph), ctx = c.getContext("2d");
  ctx.drawImage(bmp, 0, 0, S.pw, S.ph);
  const d = ctx.getImageData(0, 0, S.pw, S.ph), p = d.data;
  for (let i = 0; i < p.length; i += 4) {
    const y = Math.round(0.299 * p[i] + 0.587 * p[i + 1] + 0.114 * p[i + 2]);
    p[i] = p[i + 1] = p[i + 2] = y;
  }
  ctx.putImageData(d, 0, 0);
  S.gray = c;
}

// ------------------------------------------------------------------ drawing
function draw() {
  const ctx = $("view").getContext("2d");
  ctx.drawImage(S.color || S.gray, 0, 0);
  const split = +$("split").value;
  if (split > 0 && S.color) {
    const w = Math.round(S.pw * split / 100);
    ctx.drawImage(S.gray, 0, 0, w, S.ph, 0, 0, w, S.ph);
    ctx.fillStyle = "#fff"; ctx.fillRect(w - 1, 0, 2, S.ph);
  }
}
function renderMarkers() {
  const box = $("markers");
  box.innerHTML = "";
  S.hints.forEach((h, i) => {
    const m = document.createElement("div");
    const size = h.size || 1;
    m.className = "marker" + (i === S.selected ? " selected" : "") + (size > 1 ? " sized" : "");
    m.style.left = ((h.x + 0.5) / S.width * 100) + "%";
    m.style.top = ((h.y + 0.5) / S.height * 100) + "%";
    if (size > 1) { // the patch the hint covers: size cells of 1/112 of the photo's side each
      const w = size / 112 * 100;
      Object.assign(m.style, { width: w + "%", height: w * S.width / S.height + "%", minWidth: "14px", minHeight: "14px",
                               transform: "translate(-50%, -50%)", margin: "0" });
    }
    m.style.background = h.color;
    m.dataset.index = i;
    m.tabIndex = 0; m.setAttribute("role", "button");
    m.title = `(${h.x}, ${h.y}) ${h.color}` + (size > 1 ? ` · brush ${size}` : "");
    m.setAttribute("aria-label", "hint " + m.title);
    m.addEventListener("pointerdown", (ev) => startDrag(ev, i));
    m.addEventListener("contextmenu", (ev) => { ev.preventDefault(); removeHint(i); });
    m.addEventListener("focus", () => { if (S.selected !== i) { S.selected = i; renderMarkers(); focusMarker(i); } });
    box.appendChild(m);
  });
  $("hint-count").textContent = S.hints.length;
  const sel = S.hints[S.selected];
  $("color").disabled = !sel;
  if (sel) $("color").value = sel.color;
  $("hint-info").textContent = sel ? `hint at (${sel.x}, ${sel.y})` + (sel.size > 1 ? `, brush ${sel.size}` : "")
    : "no hint selected";
  colorPanel(sel);
}
function focusMarker(i) { const m = $("markers").children[i]; if (m && document.activeElement !== m) m.focus({ preventScroll: true }); }

// ------------------------------------------------------------------ the colour a hint can have (the server's Lab)
// A hint gives only ab: its lightness is the photo's. The server says, for the selected hint's point, which ab
// exist at that lightness (the gamut panel), what the hint's colour becomes there (snapped, same hue), and which
// colours the model predicts around it; every pick goes through it, and the snapped colour is what is sent.
async function colorInfo(h, color) {
  const q = `x=${h.x}&y=${h.y}` + (color ? "&color=" + encodeURIComponent(color) : "") + (S.local ? "&suggest=false" : "");
  const r = await fetch("/api/sessions/" + S.sid + "/color?" + q);
  if (!r.ok) { status(await errorOf(r)); return null; }
  return r.json();
}
async function colorPanel(sel) {
  if (S.gesture && S.gesture.kind === "drag") return; // asked again when the drag ends
  const key = sel ? `${S.sid} ${sel.x} ${sel.y}` : "";
  if (key === S.panelKey) return;
  S.panelKey = key;
  $("gamut").hidden = !sel; $("suggested").textContent = ""; $("color-note").textContent = "";
  if (!sel || S.kind !== "hints") return;
  // A hint just added: its suggestions come from the picture before it (the hint's own first colour would pin
  // the model's output there), so its update waits for this answer (one small request, no model run).
  const fresh = S.fresh === sel;
  if (fresh) { S.fresh = null; S.hold = true; busy(); }
  let j;
  try { j = await colorInfo(sel, null); } finally { if (fresh) release(); }
  if (!j || S.panelKey !== key) return;
  S.gamut = j.gamut;
  const img = new Image();
  img.src = j.gamut.png; await img.decode();
  const c = $("gamut"), ctx = c.getContext("2d");
  S.gamutPixels = canvas(img.width, img.height);
  S.gamutPixels.getContext("2d").drawImage(img, 0, 0);
  ctx.imageSmoothingEnabled = false;
  ctx.clearRect(0, 0, c.width, c.height); ctx.drawImage(img, 0, 0, c.width, c.height);
  $("color-note").textContent = `lightness here L ${j.l.toFixed(0)}: only these colours exist`;
  for (const hexc of j.suggested) {
    const b = document.createElement("button");
    b.style.background = hexc; b.title = "suggested " + hexc; b.dataset.color = hexc;
    b.onclick = () => pick(hexc);
    $("suggested").appendChild(b);
  }
}
async function pick(color) { // any pick (gamut, suggestion, the native picker): snapped by the server, then sent
  const h = S.hints[S.selected];
  if (!h) return;
  S.picking = (S.picking || 0) + 1; busy();
  let j;
  try { j = await colorInfo(h, color); } finally { S.picking -= 1; busy(); }
  if (!j || !S.hints.includes(h)) return; // the hint it was picked for, selected or not by now
  if (j.color !== h.color) edit(() => { h.color = j.color; });
  remember(j.color);
  if (S.hints[S.selected] !== h) return;
  $("color").value = j.color;
  $("color-note").textContent = j.in_gamut ? `L ${j.l.toFixed(0)}: ${j.color}`
    : `${color} cannot exist at this lightness (L ${j.l.toFixed(0)}): it shows as ${j.color}`;
}
function gamutPick(col, row) {
  const g = S.gamutPixels; if (!g) return;
  const n = g.width;
  col = Math.min(n - 1, Math.max(0, col)); row = Math.min(n - 1, Math.max(0, row));
  S.gamutCursor = [col, row];
  const d = g.getContext("2d").getImageData(col, row, 1, 1).data;
  if (d[3] === 0) { $("color-note").textContent = "that colour does not exist at this lightness"; return; }
  pick(hex(d[0], d[1], d[2]));
}
$("gamut").addEventListener("click", (ev) => {
  const r = $("gamut").getBoundingClientRect(), n = S.gamutPixels ? S.gamutPixels.width : 1;
  gamutPick(Math.floor((ev.clientX - r.left) / r.width * n), Math.floor((ev.clientY - r.top) / r.height * n));
});
$("gamut").addEventListener("keydown", (ev) => { // arrows move through the ab plane, Enter picks
  const n = S.gamutPixels ? S.gamutPixels.width : 1, [c, r] = S.gamutCursor || [n >> 1, n >> 1];
  const d = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] }[ev.key];
  if (d) { ev.preventDefault(); ev.stopPropagation(); S.gamutCursor = [c + d[0], r + d[1]];
           $("color-note").textContent = `a ${(S.gamutCursor[0] - (n >> 1)) * S.gamut.step}, b ${((n >> 1) - S.gamutCursor[1]) * S.gamut.step}: Enter picks`; }
  if (ev.key === "Enter") { ev.preventDefault(); gamutPick(c, r); }
});
function toolbar() {
  $("undo").disabled = !S.undo.length; $("redo").disabled = !S.redo.length; $("clear").disabled = !S.hints.length;
}

// ------------------------------------------------------------------ coordinates and the model's colour
function imagePoint(ev) {
  const r = $("view").getBoundingClientRect();
  const x = Math.floor((ev.clientX - r.left) / r.width * S.width);
  const y = Math.floor((ev.clientY - r.top) / r.height * S.height);
  return [Math.min(Math.max(x, 0), S.width - 1), Math.min(Math.max(y, 0), S.height - 1)];
}
function predicted(x, y) { // the colour the model currently shows there (the gray input before any update)
  const px = Math.min(S.pw - 1, Math.floor((x + 0.5) * S.pw / S.width));
  const py = Math.min(S.ph - 1, Math.floor((y + 0.5) * S.ph / S.height));
  const d = (S.color || S.gray).getContext("2d").getImageData(px, py, 1, 1).data;
  return hex(d[0], d[1], d[2]);
}
const at = (x, y) => S.hints.findIndex((h) => h.x === x && h.y === y);

// ------------------------------------------------------------------ edits (each one recolorizes)
function edit(mutate) {
  const before = snapshot();
  mutate();
  committed(before);
  renderMarkers(); toolbar(); update();
}
function committed(before) { // one undo step for whatever changed since `before`
  if (same(before, snapshot())) return;
  S.undo.push(before); S.redo = []; S.edited = true; toolbar();
}
function newHint(x, y, color) { return S.brush > 1 ? { x, y, color, size: S.brush } : { x, y, color }; }
function addHint(x, y) {
  const i = at(x, y);
  if (i >= 0) { S.selected = i; renderMarkers(); return; }
  const h = newHint(x, y, predicted(x, y));
  S.fresh = h;
  edit(() => { S.hints.push(h); S.selected = S.hints.length - 1; });
}
function release() { S.hold = false; if (S.pending && !S.inflight) { S.pending = false; update(); } busy(); }
function removeHint(i) {
  if (i < 0 || i >= S.hints.length) return;
  edit(() => { S.hints.splice(i, 1); S.selected = -1; });
}
// ------------------------------------------------------------------ pointer gestures: mouse, pen and touch alike
// mouse: click adds, drag a marker moves it, Shift+drag paints a stroke, middle-drag or Space+drag pans, wheel zooms;
// touch: tap adds, drag a marker moves it, long-press a marker removes it, one finger pans, two fingers pinch-zoom.
const LONG_PRESS_MS = 600, SLOP_PX = 8;
function startDrag(ev, i) {
  if (ev.pointerType === "mouse" && ev.button !== 0) return;
  ev.preventDefault(); ev.stopPropagation();
  S.pointers.set(ev.pointerId, [ev.clientX, ev.clientY]);
  S.selected = i; renderMarkers();
  const g = S.gesture = { kind: "drag", i, before: snapshot(), x0: ev.clientX, y0: ev.clientY, moved: false };
  if (ev.pointerType !== "mouse") {
    g.timer = setTimeout(() => { if (S.gesture === g && !g.moved) { endGesture(); removeHint(i); } }, LONG_PRESS_MS);
  }
}
$("stage").addEventListener("pointerdown", (ev) => {
  if (!S.sid || !$("frame").contains(ev.target) && ev.target !== $("stage")) return;
  S.pointers.set(ev.pointerId, [ev.clientX, ev.clientY]);
  if (S.pointers.size === 2) { // a second finger: pinch (whatever the first one was doing is dropped)
    const g = S.gesture;
    if (g && (g.kind === "stroke" || g.kind === "drag")) committed(g.before); // an edit so far stays undoable
    if (g && g.timer) clearTimeout(g.timer);
    S.gesture = { kind: "pinch", last: [...S.pointers.values()] };
    return;
  }
  const mouse = ev.pointerType === "mouse";
  if (mouse && (ev.button === 1 || S.space)) {
    ev.preventDefault(); S.gesture = { kind: "pan", last: [ev.clientX, ev.clientY] }; return;
  }
  if (mouse && ev.button !== 0 || ev.target === $("stage")) return;
  if (S.kind !== "hints") return;
  ev.preventDefault(); $("stage").focus({ preventScroll: true });
  const [x, y] = imagePoint(ev);
  if (ev.shiftKey) { startStroke(x, y); return; }
  if (mouse) { addHint(x, y); return; }
  S.gesture = { kind: "tap", x0: ev.clientX, y0: ev.clientY, point: [x, y], last: [ev.clientX, ev.clientY] };
});
window.addEventListener("pointermove", (ev) => {
  if (!S.pointers.has(ev.pointerId)) return;
  S.pointers.set(ev.pointerId, [ev.clientX, ev.clientY]);
  const g = S.gesture;
  if (!g) return;
  if (g.kind === "pinch") {
    const now = [...S.pointers.values()];
    if (now.length < 2) return;
    const d = (p) => Math.hypot(p[0][0] - p[1][0], p[0][1] - p[1][1]), mid = (p) => [(p[0][0] + p[1][0]) / 2, (p[0][1] + p[1][1]) / 2];
    const [m0, m1] = [mid(g.last), mid(now)];
    panBy(m1[0] - m0[0], m1[1] - m0[1]);
    if (d(g.last) > 0) zoomAt(d(now) / d(g.last), m1[0], m1[1]);
    g.last = now;
    return;
  }
  if (g.kind === "pan") { panBy(ev.clientX - g.last[0], ev.clientY - g.last[1]); g.last = [ev.clientX, ev.clientY]; return; }
  if (g.kind === "tap") { // a finger that moves is panning, not tapping
    if (Math.hypot(ev.clientX - g.x0, ev.clientY - g.y0) > SLOP_PX) { g.kind = "pan"; }
    if (g.kind === "pan") { panBy(ev.clientX - g.last[0], ev.clientY - g.last[1]); }
    g.last = [ev.clientX, ev.clientY];
    return;
  }
  if (g.kind === "stroke") { const [x, y] = imagePoint(ev); strokeTo(x, y); return; }
  if (g.kind === "drag") {
    if (!g.moved && Math.hypot(ev.clientX - g.x0, ev.clientY - g.y0) <= (ev.pointerType === "mouse" ? 0 : SLOP_PX)) return;
    const [x, y] = imagePoint(ev), h = S.hints[g.i];
    if (!h || (h.x === x && h.y === y) || at(x, y) >= 0) return;
    g.moved = true; if (g.timer) clearTimeout(g.timer);
    h.x = x; h.y = y;
    renderMarkers(); update(); // live while dragging; coalesced below
  }
});
function pointerUp(ev) {
  if (!S.pointers.delete(ev.pointerId)) return;
  const g = S.gesture;
  if (!g) return;
  if (g.kind === "pinch") { if (S.pointers.size === 0) S.gesture = null; return; }
  if (g.kind === "tap" && ev.type === "pointerup") { S.gesture = null; addHint(...g.point); return; }
  endGesture();
}
function endGesture() {
  const g = S.gesture;
  S.gesture = null;
  if (!g) return;
  if (g.timer) clearTimeout(g.timer);
  if (g.kind === "drag" || g.kind === "stroke") { committed(g.before); colorPanel(S.hints[S.selected]); }
}
window.addEventListener("pointerup", pointerUp);
window.addEventListener("pointercancel", pointerUp);

// strokes: hints spaced by the brush's patch along the pointer's path (one undo step for the whole stroke)
function startStroke(x, y) {
  S.gesture = { kind: "stroke", before: snapshot(), last: [x, y], color: S.brushColor || predicted(x, y) };
  S.selected = -1;
  strokeHint(x, y);
}
function strokeTo(x, y) {
  const g = S.gesture, cw = S.width / 112, ch = S.height / 112; // one cell of the model's hint grid, in photo pixels
  const [lx, ly] = g.last, dist = Math.hypot((x - lx) / cw, (y - ly) / ch); // in cells
  const n = Math.floor(dist / S.brush);
  for (let k = 1; k <= n; k++) {
    const f = k * S.brush / dist;
    strokeHint(Math.round(lx + (x - lx) * f), Math.round(ly + (y - ly) * f));
  }
  if (n > 0) { const f = n * S.brush / dist; g.last = [lx + (x - lx) * f, ly + (y - ly) * f]; }
}
function strokeHint(x, y) {
  x = Math.min(Math.max(x, 0), S.width - 1); y = Math.min(Math.max(y, 0), S.height - 1);
  if (at(x, y) >= 0) return;
  S.hints.push(newHint(x, y, S.gesture.color));
  renderMarkers(); update();
}

// ------------------------------------------------------------------ zoom and pan: the frame is scaled and moved in
// the stage; hints stay in photo coordinates (imagePoint reads the transformed box), so they land where clicked
const Z = { z: 1, tx: 0, ty: 0, max: 16 };
function applyZoom() {
  const f = $("frame"), w = f.offsetWidth, h = f.offsetHeight;
  Z.tx = Math.min(0, Math.max(w - w * Z.z, Z.tx)); Z.ty = Math.min(0, Math.max(h - h * Z.z, Z.ty)); // stay on the photo
  f.style.transform = Z.z === 1 ? "" : `translate(${Z.tx}px, ${Z.ty}px) scale(${Z.z})`;
  f.style.setProperty("--iz", 1 / Z.z);
  $("zoom-level").textContent = Math.round(Z.z * 100) + " %";
  document.body.dataset.zoom = Z.z.toFixed(3);
}
function zoomAt(factor, cx, cy) { // (cx, cy): the screen point that stays where it is
  const r = $("frame").getBoundingClientRect(), z = Math.min(Z.max, Math.max(1, Z.z * factor));
  const left = r.left - Z.tx, top = r.top - Z.ty; // the untransformed frame's corner
  const fx = (cx - r.left) / Z.z, fy = (cy - r.top) / Z.z;
  Z.tx = cx - left - fx * z; Z.ty = cy - top - fy * z; Z.z = z;
  applyZoom();
}
function zoomCentre(factor) { const r = $("frame").getBoundingClientRect(), s = $("stage").getBoundingClientRect();
  zoomAt(factor, Math.min(Math.max((s.left + s.right) / 2, r.left), r.right), Math.min(Math.max((s.top + s.bottom) / 2, r.top), r.bottom)); }
function panBy(dx, dy) { Z.tx += dx; Z.ty += dy; applyZoom(); }
function resetZoom() { Z.z = 1; Z.tx = Z.ty = 0; applyZoom(); }
$("stage").addEventListener("wheel", (ev) => {
  if (!S.sid) return;
  ev.preventDefault();
  zoomAt(Math.exp(-ev.deltaY * (ev.deltaMode === 1 ? 0.05 : 0.002)), ev.clientX, ev.clientY);
}, { passive: false });
$("zoom-in").onclick = () => zoomCentre(1.5); $("zoom-out").onclick = () => zoomCentre(1 / 1.5);
$("zoom-fit").onclick = resetZoom;
function viewCentre() { // the photo pixel at the centre of what is visible
  const r = $("view").getBoundingClientRect(), s = $("stage").getBoundingClientRect();
  const cx = (Math.max(r.left, s.left) + Math.min(r.right, s.right)) / 2, cy = (Math.max(r.top, s.top) + Math.min(r.bottom, s.bottom)) / 2;
  return imagePoint({ clientX: cx, clientY: cy });
}

// ------------------------------------------------------------------ brush and palettes
function setBrush(n) {
  n = Math.min(16, Math.max(1, Math.round(n)));
  S.brush = n; $("brush").value = n; $("brush-size").textContent = n;
  const h = S.hints[S.selected];
  if (h && (h.size || 1) !== n) edit(() => { if (n > 1) h.size = n; else delete h.size; }); // the selected hint too
}
$("brush").addEventListener("change", () => setBrush(+$("brush").value));
$("brush").addEventListener("input", () => { $("brush-size").textContent = $("brush").value; });
const RECENT_MAX = 12, RECENT_ALL = "tinct.recent.all";
const recentKey = () => `tinct.recent.photo.${S.fileName}.${S.width}x${S.height}`;
function loadRecent(key) {
  try {
    const v = JSON.parse(localStorage.getItem(key) || "[]");
    return Array.isArray(v) ? v.filter((c) => /^#[0-9a-f]{6}$/.test(c)).slice(0, RECENT_MAX) : [];
  } catch { return []; } // storage off or a foreign value: no palette, never an error
}
function remember(color) { // every colour a hint really got goes first in both palettes (stored by the browser)
  S.brushColor = color; $("brush-color").style.background = color;
  for (const key of [recentKey(), RECENT_ALL]) {
    const list = [color, ...loadRecent(key).filter((c) => c !== color)].slice(0, RECENT_MAX);
    try { localStorage.setItem(key, JSON.stringify(list)); } catch { /* storage full or off: this page still works */ }
  }
  renderRecent();
}
function renderRecent() {
  for (const [id, key] of [["recent-photo", recentKey()], ["recent-all", RECENT_ALL]]) {
    const box = $(id); box.textContent = "";
    for (const c of loadRecent(key)) {
      const b = document.createElement("button");
      b.style.background = c; b.title = "recent " + c; b.dataset.color = c;
      b.onclick = () => (S.hints[S.selected] ? pick(c) : (S.brushColor = c, $("brush-color").style.background = c));
      box.appendChild(b);
    }
  }
}

$("color").addEventListener("change", () => pick($("color").value)); // the native picker: snapped like the rest
function undo() {
  if (!S.undo.length) return;
  S.redo.push(snapshot()); S.hints = JSON.parse(S.undo.pop()); S.selected = -1; S.edited = true;
  renderMarkers(); toolbar(); update();
}
function redo() {
  if (!S.redo.length) return;
  S.undo.push(snapshot()); S.hints = JSON.parse(S.redo.pop()); S.selected = -1; S.edited = true;
  renderMarkers(); toolbar(); update();
}
$("undo").onclick = undo; $("redo").onclick = redo;
$("clear").onclick = () => edit(() => { S.hints = []; S.selected = -1; });
document.addEventListener("keydown", (ev) => {
  const t = ev.target, type = (t.type || "").toLowerCase(), slider = t.tagName === "INPUT" && type === "range";
  const typing = t.tagName === "SELECT" || t.tagName === "TEXTAREA" ||
    t.tagName === "INPUT" && !["range", "color", "button", "checkbox", "radio", "file"].includes(type);
  const k = ev.key.toLowerCase(), mod = ev.ctrlKey || ev.metaKey;
  if (k === " " && !typing && !mod) { S.space = true; if (t === $("stage")) ev.preventDefault(); }
  if (mod && k === "z") { ev.preventDefault(); ev.shiftKey ? redo() : undo(); return; }
  if (mod && k === "y") { ev.preventDefault(); redo(); return; }
  if (mod && k === "s" && S.folder) { ev.preventDefault(); folderSave(true); return; }
  if (typing || mod || ev.altKey) return; // a focused field keeps its own keys (a select's letters, a text's)
  if (slider && /^(arrow|page|home|end)/.test(k)) return; // and a slider its arrows
  if (S.folder && (k === "pagedown" || k === "pageup")) { ev.preventDefault(); folderGo(S.folderIndex + (k === "pagedown" ? 1 : -1)); return; }
  if (!S.sid) return;
  if (k === "+" || k === "=") { ev.preventDefault(); zoomCentre(1.5); return; }
  if (k === "-" || k === "_") { ev.preventDefault(); zoomCentre(1 / 1.5); return; }
  if (k === "0") { ev.preventDefault(); resetZoom(); return; }
  if (k === "[" || k === "]") { ev.preventDefault(); setBrush(S.brush + (k === "]" ? 1 : -1)); return; }
  if (k === "a" && S.kind === "hints") { ev.preventDefault(); addHint(...viewCentre()); focusMarker(S.selected); return; }
  const step = ev.shiftKey ? 10 : 1;
  const d = { arrowleft: [-step, 0], arrowright: [step, 0], arrowup: [0, -step], arrowdown: [0, step] }[k];
  if (S.selected < 0) {
    if (k === "escape" && Z.z > 1) resetZoom();
    if (d && Z.z > 1) { ev.preventDefault(); panBy(-d[0] * 4, -d[1] * 4); }
    return;
  }
  if (k === "delete" || k === "backspace") { ev.preventDefault(); removeHint(S.selected); $("stage").focus(); return; }
  if (k === "escape") { S.selected = -1; renderMarkers(); $("stage").focus(); return; }
  if (!d) return;
  ev.preventDefault();
  const h = S.hints[S.selected];
  const x = Math.min(Math.max(h.x + d[0], 0), S.width - 1), y = Math.min(Math.max(h.y + d[1], 0), S.height - 1);
  if (at(x, y) < 0) { edit(() => { h.x = x; h.y = y; }); focusMarker(S.selected); }
});
document.addEventListener("keyup", (ev) => { if (ev.key === " ") S.space = false; });
$("split").addEventListener("input", draw);

// ------------------------------------------------------------------ updates: newest edit wins
// At most one request in flight; edits made meanwhile are folded into one follow-up request carrying the
// newest hints. Every request has a higher sequence number; a reply older than the image shown is dropped.
function update() {
  if (!S.sid || S.kind !== "hints") return;
  if (S.inflight || S.hold) { S.pending = true; busy(); return; }
  if (S.local) { localUpdate(); return; }
  const body = JSON.stringify({ hints: S.hints, seq: ++S.seq });
  if (S.ws && S.ws.readyState === WebSocket.OPEN) {
    S.inflight = true; S.wsBusy = true; busy();
    S.wsSeq = S.seq; S.wsT0 = performance.now();
    S.ws.send(body);
    return;
  }
  send("/api/sessions/" + S.sid + "/hints?image=" + WIRE, { method: "PUT", headers: { "Content-Type": "application/json" },
       body }, S.seq);
}
function settled() { // the update in flight is answered (or failed): send the edits made meanwhile
  S.inflight = false;
  if (S.pending) { S.pending = false; update(); }
  busy();
}
// Hint updates go over one WebSocket per session: in Chromium a 0.1 MB reply costs a third of a fetch's time
// there (measured, see the README). Until it is open, or if it closes, they go over HTTP PUT.
function openSocket() {
  if (S.ws) { S.ws.onclose = null; S.ws.close(); S.ws = null; }
  if (!window.WebSocket || WIRE === "png") return;
  const sid = S.sid, proto = location.protocol === "https:" ? "wss://" : "ws://";
  const ws = new WebSocket(proto + location.host + "/api/sessions/" + sid + "/ws?image=" + WIRE);
  ws.binaryType = "arraybuffer";
  ws.onopen = () => { if (S.sid === sid) S.ws = ws; else ws.close(); };
  ws.onmessage = received;
  ws.onclose = () => {
    if (S.ws !== ws) return;
    S.ws = null;
    if (S.wsBusy) { S.wsBusy = false; S.inflight = false; S.pending = true; update(); } // resent over HTTP
  };
}
async function received(ev) { // the answer to the one update in flight on the socket
  const seq = S.wsSeq, t0 = S.wsT0;
  try {
    if (typeof ev.data === "string") { const e = JSON.parse(ev.data); if (e.status === 409) await resync(); else status(e.error); return; }
    const buf = ev.data, n = new DataView(buf).getUint32(0);
    const j = JSON.parse(new TextDecoder().decode(new Uint8Array(buf, 4, n)));
    j.pixels = WIRE === "rgba" ? new ImageData(new Uint8ClampedArray(buf, 4 + n), j.width, j.height)
      : await createImageBitmap(new Blob([new Uint8Array(buf, 4 + n)], { type: "image/jpeg" }));
    S.via = "websocket";
    if (seq > S.shownSeq) await show(j, t0, seq);
    status("", true);
  } catch (e) {
    status("could not show the update: " + e);
  } finally {
    S.wsBusy = false;
    settled();
  }
}
async function send(url, init, seq) {
  S.inflight = true; busy();
  const t0 = performance.now();
  try {
    const r = await fetch(url, init);
    if (r.status === 409) { await resync(); return; } // the session moved on without this page
    if (!r.ok) { status(await errorOf(r)); return; }
    let j;
    const type = r.headers.get("content-type") || "";
    if (type.startsWith("application/octet-stream")) {
      // raw RGBA pixels, the update's JSON in a header: the body is the ImageData's buffer as it is
      j = JSON.parse(r.headers.get("X-Tinct-Update"));
      j.pixels = new ImageData(new Uint8ClampedArray(await r.arrayBuffer()), j.width, j.height);
    } else if (type.startsWith("image/jpeg")) {
      j = JSON.parse(r.headers.get("X-Tinct-Update"));
      j.pixels = await createImageBitmap(await r.blob()); // decoded off the main thread, drawn without a readback
    } else {
      j = await r.json();
    }
    S.via = "http";
    if ((j.image || j.pixels) && seq > S.shownSeq) await show(j, t0, seq);
    status("", true);
  } catch (e) {
    status("the server did not answer: " + e);
  } finally {
    settled();
  }
}
// This page sends one update at a time with rising numbers, so a 409 means the session was changed from
// elsewhere (another tab, a script): say so, take the session's state from the server and render it again.
async function resync() {
  const r = await fetch("/api/sessions/" + S.sid);
  if (!r.ok) { status(await errorOf(r)); return; }
  const j = await r.json();
  S.seq = Math.max(S.seq, j.seq);
  if (S.kind === "hints") { S.hints = j.hints; S.selected = -1; renderMarkers(); toolbar(); }
  S.pending = true; // settled() sends the server's hints again with a newer number
  S.notice = { text: `this session was changed elsewhere (update ${j.seq}): showing its current state`,
               until: performance.now() + 5000 };
  status(S.notice.text);
  S.resynced = (S.resynced || 0) + 1;
}
async function show(j, t0, seq) { // t0: when the request was sent
  let px = j.pixels; // ImageData (rgba), ImageBitmap (jpeg), or a PNG data URL to decode
  if (!px) { px = new Image(); px.src = j.image; await px.decode(); }
  if (seq <= S.shownSeq) { if (px.close) px.close(); return; }
  const c = S.color && S.color.width === j.width && S.color.height === j.height ? S.color : canvas(j.width, j.height);
  const ctx = c.getContext("2d");
  if (px instanceof ImageData) ctx.putImageData(px, 0, 0); else { ctx.drawImage(px, 0, 0); if (px.close) px.close(); }
  S.color = c; S.shownSeq = seq;
  draw();
  if (S.folder && S.edited) folderAutosave();
  const rtt = performance.now() - t0;
  S.rtts.push(rtt); if (S.rtts.length > 1000) S.rtts.shift();
  S.served.push(j.timings); if (S.served.length > 1000) S.served.shift();
  const t = j.timings, ms = (v) => v === undefined ? "–" : v.toFixed(1) + " ms";
  $("t-model").textContent = ms(t.model); $("t-post").textContent = ms(t.post);
  $("t-update").textContent = ms(t.update); $("t-rtt").textContent = ms(rtt);
  $("engine-info").textContent = `${S.width}×${S.height}, shown at ${j.width}×${j.height} · ${j.engine} · post ${j.kernel}`;
  const g = j.gates;
  S.lastGates = g || null;
  $("gates-box").hidden = !g;
  if (g) {
    const box = $("gates"); box.innerHTML = "";
    for (const part of [0, 1]) for (const blk of g) {
      const s = document.createElement("span"); s.className = blk[part] ? "on" : "";
      s.title = (part ? "MLP" : "attention") + (blk[part] ? " ran" : " skipped"); box.appendChild(s);
    }
    $("kept").textContent = `· kept ${(j.kept_ratio * 100).toFixed(0)} %`;
  }
}

// ------------------------------------------------------------------ the in-browser engine (ONNX Runtime Web)
// The model runs in a Web Worker on this computer's CPU (static/engine-worker.mjs); the server still holds the
// session for the photo's L planes (its own decode and resampling, so the preview equals the server's) and the
// colour panel (gamut and snapping; no suggestions: the server has not seen these updates).
const THREADS = Math.max(1, Math.min(+(new URLSearchParams(location.search).get("threads") || 2), navigator.hardwareConcurrency || 1, 8));
async function useBrowser(m) {
  if (!m) return;
  status(`loading ${m.model} into this browser (${(m.bytes / 2 ** 20).toFixed(1)} MB, checked against its sha256)…`, true);
  let engine;
  try {
    const mod = await import("/static/engine.mjs");
    engine = await mod.LocalEngine.open(m, THREADS, new URL("/static/", location.href));
    S.engineModule = mod;
  } catch (e) {
    status("the in-browser engine is not available: " + e.message);
    $("engine").value = S.engine; // the server's engine stays in use
    return;
  }
  if (S.local) S.local.close();
  S.local = engine; S.localModel = m;
  S.coldStart = engine.info.ms;
  if (S.sid && S.engine !== m.server_engine) { // the server session follows the same model (planes, colour panel)
    S.engine = m.server_engine;
    if (S.kind !== "hints") { await openPhoto(S.file, S.fileName); return; }
    await send("/api/sessions/" + S.sid + "/engine?image=none", { method: "PUT", headers: { "Content-Type": "application/json" },
               body: JSON.stringify({ engine: m.server_engine, seq: ++S.seq }) }, S.seq);
  }
  S.engine = m.server_engine;
  const ms = engine.info.ms;
  status(`${m.id}: ${engine.info.cached ? "from the browser's cache" : "downloaded"} in ${ms.download.toFixed(0)} ms, ` +
         `session ${ms.create.toFixed(0)} ms, ${THREADS} thread(s)`, true);
  if (S.sid) { await localPhoto(); update(); }
}
async function localPhoto() {
  const r = await fetch("/api/sessions/" + S.sid + "/planes");
  if (!r.ok) { status(await errorOf(r)); return; }
  const meta = JSON.parse(r.headers.get("X-Tinct-Planes")), buf = await r.arrayBuffer();
  const [mw, mh] = meta.model, [pw, ph] = meta.preview;
  const l224 = new Float32Array(buf, 0, mw * mh), lp = new Float32Array(buf, mw * mh * 4, pw * ph);
  await S.local.photo(l224, S.width, S.height, lp, pw, ph);
}
async function localUpdate() {
  const seq = ++S.seq, t0 = performance.now();
  S.inflight = true; busy();
  try {
    const r = await S.local.update(S.hints);
    S.via = "browser";
    const g = r.gates;
    const kept = g ? g.flat().filter(Boolean).length / (2 * g.length) : undefined;
    await show({ pixels: r.pixels, width: r.width, height: r.height, timings: r.timings, gates: g, kept_ratio: kept,
                 engine: S.localModel.id, kernel: "browser" }, t0, seq);
    status("", true);
  } catch (e) {
    status("the in-browser engine failed: " + e.message);
  } finally {
    settled();
  }
}
$("download").addEventListener("click", async (ev) => { // in-browser engine: the export is made here too
  if (!S.local) return;
  ev.preventDefault();
  try {
    status("exporting at full resolution in this browser…", true);
    const png = await S.local.exportPNG(S.file);
    S.engineModule.saveAs(png, S.fileName.replace(/\.[^.]*$/, "") + "-tinct.png");
    status("", true);
  } catch (e) { status(e.message); }
});
$("save-hints").addEventListener("click", (ev) => {
  if (!S.local) return;
  ev.preventDefault();
  S.engineModule.saveAs(new Blob([JSON.stringify(S.hints, null, 1)], { type: "application/json" }), S.fileName.replace(/\.[^.]*$/, "") + "-hints.json");
});

// ------------------------------------------------------------------ engine switch, exemplar, hint files
$("engine").addEventListener("change", async () => {
  const id = $("engine").value;
  if (id.startsWith("browser:")) { await useBrowser(S.browserModels[+id.slice(8)]); return; }
  if (S.local) { S.local.close(); S.local = null; }
  const info = engineInfo(id);
  S.engine = id;
  if (!S.sid) return;
  if (info.kind !== S.kind) { await openPhoto(S.file, S.fileName); return; }
  if (S.inflight) { await new Promise((ok) => setTimeout(ok, 50)); }
  await send("/api/sessions/" + S.sid + "/engine?image=" + WIRE, { method: "PUT", headers: { "Content-Type": "application/json" },
             body: JSON.stringify({ engine: id, seq: ++S.seq }) }, S.seq);
});
async function setReference(blob, name) {
  if (!S.sid || S.kind !== "exemplar") return;
  $("ref-thumb").src = URL.createObjectURL(blob); $("ref-thumb").hidden = false;
  const fd = new FormData();
  fd.append("reference", blob, name);
  fd.append("seq", ++S.seq);
  status("colorizing from " + name + "…", true);
  await send("/api/sessions/" + S.sid + "/reference?image=" + WIRE, { method: "PUT", body: fd }, S.seq);
}
$("load-hints").addEventListener("change", async () => {
  const f = $("load-hints").files[0];
  $("load-hints").value = "";
  if (!f || !S.sid) return;
  let data;
  try { data = JSON.parse(await f.text()); } catch (e) { status(f.name + ": not valid JSON (" + e.message + ")"); return; }
  const list = Array.isArray(data) ? data : data && data.hints;
  const t0 = performance.now();
  const r = await fetch("/api/sessions/" + S.sid + "/hints", { method: "PUT", headers: { "Content-Type": "application/json" },
                        body: JSON.stringify({ hints: list, seq: ++S.seq }) });
  if (!r.ok) { status(f.name + ": " + await errorOf(r)); return; }
  const j = await r.json();
  S.undo.push(snapshot()); S.redo = []; S.hints = j.hints; S.selected = -1; S.edited = true;
  renderMarkers(); toolbar(); await show(j, t0, S.seq);
  status("loaded " + j.hints.length + " hints from " + f.name, true);
});

// ------------------------------------------------------------------ files: picker, drop, samples
$("file").addEventListener("change", () => { const f = $("file").files[0]; if (f) openPhoto(f, f.name); $("file").value = ""; });
$("ref-file").addEventListener("change", () => { const f = $("ref-file").files[0]; if (f) setReference(f, f.name); $("ref-file").value = ""; });
$("samples").addEventListener("change", async () => {
  const name = $("samples").value;
  if (!name) return;
  const r = await fetch("/api/samples/" + encodeURIComponent(name));
  if (r.ok) await openPhoto(await r.blob(), name); else status(await errorOf(r));
});
for (const label of document.querySelectorAll("label.button")) { // file pickers open from the keyboard too
  label.addEventListener("keydown", (ev) => {
    if (ev.key !== "Enter" && ev.key !== " ") return;
    ev.preventDefault(); ev.stopPropagation(); label.querySelector("input").click();
  });
}
function dropTarget(el, onFile) {
  el.addEventListener("dragover", (ev) => { ev.preventDefault(); el.classList.add("over"); });
  el.addEventListener("dragleave", () => el.classList.remove("over"));
  el.addEventListener("drop", (ev) => {
    ev.preventDefault(); ev.stopPropagation(); el.classList.remove("over");
    const f = ev.dataTransfer.files[0];
    if (f) onFile(f, f.name);
  });
}
dropTarget($("stage"), (f, n) => (S.kind === "exemplar" && S.sid ? setReference(f, n) : openPhoto(f, n)));
dropTarget($("ref-drop"), setReference);

// ------------------------------------------------------------------ a folder to work through (tinct serve --folder)
// Hints are saved beside the photo after each update (the server writes the session's own hints); the result is
// written when the page moves to another photo or on Save (Ctrl+S), where `tinct batch` would write it.
async function loadFolder() {
  const r = await fetch("/api/folder");
  if (!r.ok) return; // no --folder: nothing to show
  S.folder = await r.json();
  $("folder-nav").hidden = false;
  const first = S.folder.photos.findIndex((p) => !p.result); // resume at the first photo without a result
  if (S.folder.photos.length) await folderGo(first >= 0 ? first : 0, false);
}
function folderBar() {
  if (!S.folder) return;
  const n = S.folder.photos.length, p = S.folder.photos[S.folderIndex];
  $("folder-pos").textContent = p ? `${S.folderIndex + 1} / ${n} · ${p.name}${p.result ? " ✓" : ""}` : `${n} photos`;
  $("prev").disabled = S.folderIndex <= 0; $("next").disabled = S.folderIndex >= n - 1;
}
async function folderSave(result) {
  if (!S.folder || S.folderIndex < 0 || !S.sid || S.kind !== "hints") return true;
  clearTimeout(S.autosave);
  while (S.inflight || S.pending) await new Promise((ok) => setTimeout(ok, 20)); // the newest hints applied first
  if (result) status("saving the result…", true);
  const r = await fetch(`/api/folder/${S.folderIndex}/save?sid=${S.sid}&result=${result}`, { method: "POST" });
  if (!r.ok) { status(await errorOf(r)); return false; }
  const j = await r.json();
  if (result) { S.folder.photos[S.folderIndex].result = true; S.edited = false; folderBar();
                status(`saved ${j.hints} hints beside the photo and the result: ${j.result}`, true); }
  S.folder.photos[S.folderIndex].hints = true;
  return true;
}
function folderAutosave() { clearTimeout(S.autosave); S.autosave = setTimeout(() => folderSave(false), 300); }
async function folderGo(i, save = true) {
  if (!S.folder || i < 0 || i >= S.folder.photos.length) return;
  const here = S.folder.photos[S.folderIndex]; // leaving a photo saves it when edited or never saved: every photo
  if (save && here && (S.edited || !here.result) && !(await folderSave(true))) return; // seen has hints and a result

  const r = await fetch(`/api/folder/${i}/photo`);
  if (!r.ok) { status(await errorOf(r)); return; }
  await openPhoto(await r.blob(), S.folder.photos[i].name, i);
}
$("prev").onclick = () => folderGo(S.folderIndex - 1); $("next").onclick = () => folderGo(S.folderIndex + 1);
$("save-result").onclick = () => folderSave(true);

busy(); renderRecent();
loadEngines().then(loadSamples).then(loadFolder).catch((e) => status("cannot reach the server: " + e));
