// The page's side of the in-browser engine (engine-worker.mjs): open a model, give it a photo's L planes, run
// updates, export at full resolution. Used by `tinct serve`'s page and by the static site of `tinct deploy web`.
import { IMG, lightness } from "./tinct-core.mjs";

export const MAX_EXPORT_PIXELS = 40e6; // a full-resolution export peaks at ~28 bytes per pixel in this tab (~1.1 GB at 40 MP)
export const MAX_DECODE_PIXELS = 100e6; // larger photos are not opened at all

export class LocalEngine {
  constructor(base) {
    this.worker = new Worker(new URL("engine-worker.mjs", base), { type: "module" });
    this.n = 0; this.waiting = new Map();
    this.worker.onmessage = (ev) => {
      const p = this.waiting.get(ev.data.id);
      if (!p) return;
      this.waiting.delete(ev.data.id);
      if (ev.data.ok) p.ok(ev.data); else p.fail(new Error(ev.data.error));
    };
    this.worker.onerror = (ev) => { // the worker itself failed (a script that did not load): every call fails
      const err = new Error("the in-browser engine stopped: " + (ev.message || "its script did not load"));
      for (const p of this.waiting.values()) p.fail(err);
      this.waiting.clear(); this.dead = err;
    };
  }
  call(op, msg = {}, transfer = []) {
    if (this.dead) return Promise.reject(this.dead);
    const id = ++this.n;
    return new Promise((ok, fail) => { this.waiting.set(id, { ok, fail }); this.worker.postMessage({ op, id, ...msg }, transfer); });
  }
  /** model: {url, sha256, model, gating}; base: the URL the worker and vendored files are under. */
  static async open(model, threads, base) {
    const e = new LocalEngine(base);
    try {
      e.info = await e.call("open", { url: new URL(model.url, base).href, sha256: model.sha256, threads });
    } catch (err) { e.close(); throw err; }
    e.model = model; e.threads = threads;
    return e;
  }
  photo(l224, width, height, lp, pw, ph) {
    return this.call("photo", { l224, width, height, lp, pw, ph });
  }
  async update(hints) {
    const r = await this.call("update", { hints });
    r.pixels = new ImageData(r.rgba, r.width, r.height);
    return r;
  }
  /** The last update at the photo's full resolution, as a PNG Blob (refused past MAX_EXPORT_PIXELS). */
  async exportPNG(blob) {
    const bmp = await createImageBitmap(blob, { imageOrientation: "from-image" });
    const w = bmp.width, h = bmp.height;
    if (w * h > MAX_EXPORT_PIXELS) {
      bmp.close();
      throw new Error(`this photo is ${(w * h / 1e6).toFixed(0)} MP: a full-resolution export in the browser is limited to ${MAX_EXPORT_PIXELS / 1e6} MP (the preview works; tinct colorize does any size)`);
    }
    const c = new OffscreenCanvas(w, h), ctx = c.getContext("2d", { willReadFrequently: true });
    ctx.drawImage(bmp, 0, 0); bmp.close();
    const l = lightness(ctx.getImageData(0, 0, w, h).data, w * h);
    const r = await this.call("full", { l, width: w, height: h }, [l.buffer]);
    ctx.putImageData(new ImageData(r.rgba, w, h), 0, 0);
    return c.convertToBlob({ type: "image/png" });
  }
  close() { this.worker.terminate(); }
}

/** The L planes the engine needs, from the browser's own decode (the static site has no server): the photo
 * resampled to 224x224 and to the preview size by the browser (not Pillow: previews differ slightly from tinct's),
 * and the preview's gray RGBA to show before the first update. */
export async function planesOf(blob, previewSide) {
  const probe = await createImageBitmap(blob, { imageOrientation: "from-image" });
  const width = probe.width, height = probe.height;
  probe.close();
  if (width * height > MAX_DECODE_PIXELS) throw new Error(`this photo is ${(width * height / 1e6).toFixed(0)} MP: too large to open in the browser (limit ${MAX_DECODE_PIXELS / 1e6} MP)`);
  const s = Math.min(1, previewSide / Math.max(width, height));
  const pw = Math.max(1, Math.round(width * s)), ph = Math.max(1, Math.round(height * s));
  const plane = async (w, h) => {
    const bmp = await createImageBitmap(blob, { imageOrientation: "from-image", resizeWidth: w, resizeHeight: h, resizeQuality: "high" });
    const c = new OffscreenCanvas(w, h), ctx = c.getContext("2d", { willReadFrequently: true });
    ctx.drawImage(bmp, 0, 0); bmp.close();
    const rgba = ctx.getImageData(0, 0, w, h).data;
    return { l: lightness(rgba, w * h), rgba };
  };
  const small = await plane(IMG, IMG), prev = await plane(pw, ph);
  const gray = prev.rgba; // what the model sees, for display before the first update (the photo's luma)
  for (let i = 0; i < gray.length; i += 4) gray[i] = gray[i + 1] = gray[i + 2] = Math.round(0.299 * gray[i] + 0.587 * gray[i + 1] + 0.114 * gray[i + 2]);
  return { width, height, pw, ph, l224: small.l, lp: prev.l, gray };
}

/** Offer ``blob`` as a download named ``name``. */
export function saveAs(blob, name) {
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob); a.download = name; document.body.appendChild(a); a.click(); a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
}
