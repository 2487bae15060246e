// tinct serve: the interactive page. Plain JS, no build step, no network beyond this server.
"use strict";

const $ = (id) => document.getElementById(id);
const S = {
  sid: null, kind: "hints", width: 0, height: 0, pw: 0, ph: 0, file: null, fileName: "",
  hints: [], selected: -1, undo: [], redo: [],
  seq: 0, shownSeq: -1, inflight: false, pending: false,
  color: null, gray: null, // at the preview size: the last result and the gray input (canvases)
  drag: null, engines: [], engine: null,
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
function busy() { document.body.dataset.state = (S.inflight || S.pending || S.picking) ? "busy" : "idle"; }
function hex(r, g, b) { return "#" + [r, g, b].map((v) => v.toString(16).padStart(2, "0")).join(""); }
async function errorOf(resp) {
  try { const j = await resp.json(); return j.error || JSON.stringify(j); } catch { return resp.status + " " + resp.statusText; }
}
function canvas(w, h) { const c = document.createElement("canvas"); c.width = w; c.height = h; return c; }

// ------------------------------------------------------------------ engines and samples
async function loadEngines() {
  const r = await fetch("/api/engines");
  const j = await r.json();
  S.engines = j.engines; S.engine = j.default;
  const sel = $("engine");
  sel.innerHTML = "";
  for (const e of j.engines) {
    const o = document.createElement("option");
    o.value = e.id; o.textContent = e.id + (e.kind === "exemplar" ? " (reference photo)" : "");
    sel.appendChild(o);
  }
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
async function openPhoto(blob, name) {
  status("uploading " + name + "…", true);
  const fd = new FormData();
  fd.append("image", blob, name);
  fd.append("engine", S.engine);
  fd.append("preview", await displaySide(blob));
  const r = await fetch("/api/sessions", { method: "POST", body: fd });
  if (!r.ok) { status(await errorOf(r)); return; }
  const j = await r.json();
  if (S.sid) fetch("/api/sessions/" + S.sid, { method: "DELETE" }); // the previous photo's session
  Object.assign(S, { sid: j.id, kind: j.kind, width: j.width, height: j.height, pw: j.preview.width,
                     ph: j.preview.height, file: blob, fileName: name, hints: [], selected: -1, undo: [], redo: [],
                     seq: 0, shownSeq: -1, color: null });
  openSocket();
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
  draw(); renderMarkers(); toolbar();
  status(S.kind === "hints" ? "click the photo to add a hint" : "drop a reference photo", true);
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
    m.className = "marker" + (i === S.selected ? " selected" : "");
    m.style.left = ((h.x + 0.5) / S.width * 100) + "%";
    m.style.top = ((h.y + 0.5) / S.height * 100) + "%";
    m.style.background = h.color;
    m.dataset.index = i;
    m.title = `(${h.x}, ${h.y}) ${h.color}`;
    m.addEventListener("mousedown", (ev) => startDrag(ev, i));
    m.addEventListener("contextmenu", (ev) => { ev.preventDefault(); removeHint(i); });
    box.appendChild(m);
  });
  $("hint-count").textContent = S.hints.length;
  const sel = S.hints[S.selected];
  $("color").disabled = !sel;
  if (sel) $("color").value = sel.color;
  $("hint-info").textContent = sel ? `hint at (${sel.x}, ${sel.y})` : "no hint selected";
  colorPanel(sel);
}

// ------------------------------------------------------------------ the colour a hint can have (the server's Lab)
// A hint gives only ab: its lightness is the photo's. The server says, for the selected hint's point, which ab
// exist at that lightness (the gamut panel), what the hint's colour becomes there (snapped, same hue), and which
// colours the model predicts around it; every pick goes through it, and the snapped colour is what is sent.
async function colorInfo(h, color) {
  const q = `x=${h.x}&y=${h.y}` + (color ? "&color=" + encodeURIComponent(color) : "");
  const r = await fetch("/api/sessions/" + S.sid + "/color?" + q);
  if (!r.ok) { status(await errorOf(r)); return null; }
  return r.json();
}
async function colorPanel(sel) {
  if (S.drag) return; // asked again when the drag ends
  const key = sel ? `${S.sid} ${sel.x} ${sel.y}` : "";
  if (key === S.panelKey) return;
  S.panelKey = key;
  $("gamut").hidden = !sel; $("suggested").textContent = ""; $("color-note").textContent = "";
  if (!sel || S.kind !== "hints") return;
  const j = await colorInfo(sel, null);
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
  if (!same(before, snapshot())) { S.undo.push(before); S.redo = []; }
  renderMarkers(); toolbar(); update();
}
function addHint(x, y) {
  const i = at(x, y);
  if (i >= 0) { S.selected = i; renderMarkers(); return; }
  edit(() => { S.hints.push({ x, y, color: predicted(x, y) }); S.selected = S.hints.length - 1; });
}
function removeHint(i) {
  if (i < 0 || i >= S.hints.length) return;
  edit(() => { S.hints.splice(i, 1); S.selected = -1; });
}
function startDrag(ev, i) {
  if (ev.button !== 0) return;
  ev.preventDefault(); ev.stopPropagation();
  S.selected = i; renderMarkers();
  S.drag = { i, before: snapshot() };
}
window.addEventListener("mousemove", (ev) => {
  if (!S.drag) return;
  const [x, y] = imagePoint(ev), h = S.hints[S.drag.i];
  if ((h.x === x && h.y === y) || at(x, y) >= 0) return;
  h.x = x; h.y = y;
  renderMarkers(); update(); // live while dragging; coalesced below
});
window.addEventListener("mouseup", () => {
  if (!S.drag) return;
  if (!same(S.drag.before, snapshot())) { S.undo.push(S.drag.before); S.redo = []; toolbar(); }
  S.drag = null;
  colorPanel(S.hints[S.selected]);
});
$("view").addEventListener("mousedown", (ev) => {
  if (ev.button !== 0 || !S.sid || S.kind !== "hints") return;
  const [x, y] = imagePoint(ev);
  addHint(x, y);
});
$("color").addEventListener("change", () => pick($("color").value)); // the native picker: snapped like the rest
function undo() {
  if (!S.undo.length) return;
  S.redo.push(snapshot()); S.hints = JSON.parse(S.undo.pop()); S.selected = -1;
  renderMarkers(); toolbar(); update();
}
function redo() {
  if (!S.redo.length) return;
  S.undo.push(snapshot()); S.hints = JSON.parse(S.redo.pop()); S.selected = -1;
  renderMarkers(); toolbar(); update();
}
$("undo").onclick = undo; $("redo").onclick = redo;
$("clear").onclick = () => edit(() => { S.hints = []; S.selected = -1; });
document.addEventListener("keydown", (ev) => {
  if (ev.target.tagName === "INPUT" && ev.target.type !== "range" && ev.target.type !== "color") return;
  const k = ev.key.toLowerCase();
  if ((ev.ctrlKey || ev.metaKey) && k === "z") { ev.preventDefault(); ev.shiftKey ? redo() : undo(); return; }
  if ((ev.ctrlKey || ev.metaKey) && k === "y") { ev.preventDefault(); redo(); return; }
  if (S.selected < 0) return;
  if (k === "delete" || k === "backspace") { ev.preventDefault(); removeHint(S.selected); return; }
  if (k === "escape") { S.selected = -1; renderMarkers(); return; }
  const step = ev.shiftKey ? 10 : 1;
  const d = { arrowleft: [-step, 0], arrowright: [step, 0], arrowup: [0, -step], arrowdown: [0, step] }[k];
  if (!d) return;
  ev.preventDefault();
  const h = S.hints[S.selected];
  const x = Math.min(Math.max(h.x + d[0], 0), S.width - 1), y = Math.min(Math.max(h.y + d[1], 0), S.height - 1);
  if (at(x, y) < 0) edit(() => { h.x = x; h.y = y; });
});
$("split").addEventListener("input", draw);

// ------------------------------------------------------------------ updates: newest edit wins
// At most one request in flight; edits made meanwhile are folded into one follow-up request carrying the
// newest hints. Every request has a higher sequence number; a reply older than the image shown is dropped.
function update() {
  if (!S.sid || S.kind !== "hints") return;
  if (S.inflight) { S.pending = true; busy(); return; }
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
  const rtt = performance.now() - t0;
  S.rtts.push(rtt); if (S.rtts.length > 1000) S.rtts.shift();
  S.served.push(j.timings); if (S.served.length > 1000) S.served.shift();
  const t = j.timings, ms = (v) => v === undefined ? "–" : v.toFixed(1) + " ms";
  $("t-model").textContent = ms(t.model); $("t-post").textContent = ms(t.post);
  $("t-update").textContent = ms(t.update); $("t-rtt").textContent = ms(rtt);
  $("engine-info").textContent = `${S.width}×${S.height}, shown at ${j.width}×${j.height} · ${j.engine} · post ${j.kernel}`;
  const g = j.gates;
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

// ------------------------------------------------------------------ engine switch, exemplar, hint files
$("engine").addEventListener("change", async () => {
  const id = $("engine").value, info = engineInfo(id);
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
  S.undo.push(snapshot()); S.redo = []; S.hints = j.hints; S.selected = -1;
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

busy();
loadEngines().then(loadSamples).catch((e) => status("cannot reach the server: " + e));
