// The in-browser engine: one Web Worker runs a hint model with ONNX Runtime Web (WebAssembly, on this computer's
// CPU) and does the update's other steps (hint encoding, upsampling, Lab -> RGB) with tinct-core.mjs, so the page's
// thread only draws. Messages (each answered with the same `id`):
//   {op: "open", id, url, sha256, threads}   -> {ok, ms: {download, create}, cached, inputs, outputs}
//   {op: "photo", id, l224, width, height, lp, pw, ph}  (L planes: the 224 model view and the preview)
//   {op: "update", id, hints}                -> {ok, rgba (transferred), width, height, timings, gates}
//   {op: "full", id, l, width, height}       -> {ok, rgba}: the last update at another size (a full-resolution export)
// Errors come back as {ok: false, error: "<one line>"}.
import * as ort from "./vendor/onnxruntime-web/ort.wasm.min.mjs";
import { Canvas, encode, IMG, sha256 } from "./tinct-core.mjs";

ort.env.wasm.wasmPaths = new URL("./vendor/onnxruntime-web/", import.meta.url).href;
ort.env.logLevel = "error";
const GATES = "gates"; // a dynamic A-ColViT's auxiliary output: which sub-layers ran (runtime/backends/base.py)
const CACHE = "tinct-models";
let session = null, photo = null, last = null, x = null;

async function download(url, want) { // the browser's cache first; either way the bytes must hash to the artifact's
  let cache = null, hit = null;
  try { cache = await caches.open(CACHE); hit = await cache.match(url); } catch { cache = null; } // no Cache API
  let buf = hit ? await hit.arrayBuffer() : null, cached = !!buf;
  if (buf && (await sha256(buf)) !== want) { await cache.delete(url); buf = null; cached = false; }
  if (!buf) {
    const r = await fetch(url, { cache: "no-store" });
    if (!r.ok) throw new Error(`the model download failed: ${r.status} ${r.statusText} (${url})`);
    buf = await r.arrayBuffer();
    const got = await sha256(buf);
    if (got !== want) throw new Error(`the model at ${url} is not the artifact it should be (sha256 ${got.slice(0, 12)}…, expected ${want.slice(0, 12)}…): refused`);
    if (cache) { try { await cache.put(url, new Response(buf.slice(0))); } catch { /* quota: works uncached */ } }
  }
  return { buf, cached };
}

const handlers = {
  async open({ url, sha256: want, threads }) {
    const t0 = performance.now();
    const { buf, cached } = await download(url, want);
    const t1 = performance.now();
    ort.env.wasm.numThreads = threads;
    session = await ort.InferenceSession.create(new Uint8Array(buf), { executionProviders: ["wasm"], graphOptimizationLevel: "all" });
    return { ms: { download: t1 - t0, create: performance.now() - t1 }, cached, inputs: session.inputNames, outputs: session.outputNames };
  },
  photo({ l224, width, height, lp, pw, ph }) {
    photo = { l224, width, height, preview: new Canvas(lp, pw, ph) };
    return {};
  },
  async update({ hints }) {
    if (!session || !photo) throw new Error("open a model and a photo first");
    const t0 = performance.now();
    x = encode(photo.l224, hints, photo.width, photo.height, x || undefined);
    const t1 = performance.now();
    const feeds = { [session.inputNames[0]]: new ort.Tensor("float32", x, [1, 4, IMG, IMG]) };
    const out = await session.run(feeds);
    const t2 = performance.now();
    const name = session.outputNames.find((n) => n !== GATES);
    const ab = out[name].data, n = out[name].dims[3];
    let gates = null;
    if (out[GATES]) {
      const g = out[GATES].data, depth = out[GATES].dims[1];
      gates = Array.from({ length: depth }, (_, i) => [!!g[2 * i], !!g[2 * i + 1]]);
    }
    last = { ab: ab.slice(), n };
    const rgba = photo.preview.render(ab, n).slice();
    const t3 = performance.now();
    return { rgba, width: photo.preview.width, height: photo.preview.height, gates,
             timings: { hints: t1 - t0, model: t2 - t1, post: t3 - t2, update: t3 - t0 }, transfer: [rgba.buffer] };
  },
  full({ l, width, height }) {
    if (!last) throw new Error("nothing to export yet: add a hint first");
    const rgba = new Canvas(l, width, height).render(last.ab, last.n);
    return { rgba, transfer: [rgba.buffer] };
  },
};

self.onmessage = async (ev) => {
  const { op, id } = ev.data;
  try {
    const r = await handlers[op](ev.data);
    const transfer = r.transfer || [];
    delete r.transfer;
    self.postMessage({ id, ok: true, ...r }, transfer);
  } catch (e) {
    self.postMessage({ id, ok: false, error: String(e && e.message || e).split("\n")[0] });
  }
};
