// tinct's colour and hint specification in the browser: the same arithmetic as the Python runtime
// (runtime/color.py, runtime/hints.py, runtime/postprocess.py), golden-tested against it
// (tests/test_browser_engine.py). No DOM, no network: the page's worker and `tinct deploy web` import it.

export const IMG = 224, HINT = 2, GRID = IMG / HINT, AB_NORM = 110, L_CENT = 50, L_NORM = 100, MAX_HINT_SIZE = 16;
const RGB_TO_XYZ = [[0.412453, 0.357580, 0.180423], [0.212671, 0.715160, 0.072169], [0.019334, 0.119193, 0.950227]];
const XYZ_TO_RGB = [[3.24048134, -1.53715152, -0.49853633], [-0.96925495, 1.87599, 0.04155593],
                    [0.05564664, -0.20404134, 1.05731107]];
const WHITE = [0.95047, 1.0, 1.08883];
const GAMMA_N = 65536;

const LIN = new Float32Array(256); // sRGB byte -> linear light
for (let i = 0; i < 256; i++) { const v = i / 255; LIN[i] = v > 0.04045 ? ((v + 0.055) / 1.055) ** 2.4 : v / 12.92; }
const LIN_TO_U8 = new Uint8Array(GAMMA_N); // linear light (65536 bins) -> sRGB byte, rounded half to even
for (let i = 0; i < GAMMA_N; i++) {
  const lin = (i + 0.5) / GAMMA_N;
  const s = (lin > 0.0031308 ? 1.055 * lin ** (1 / 2.4) - 0.055 : 12.92 * lin) * 255;
  let r = Math.round(s);
  if (Math.abs(s - Math.trunc(s) - 0.5) < 1e-12 && r % 2) r -= 1; // numpy's rint
  LIN_TO_U8[i] = Math.min(255, Math.max(0, r));
}
LIN_TO_U8[0] = 0;
const f = (t) => (t > 0.008856 ? Math.cbrt(t) : 7.787 * t + 16 / 116);
const finv = (t) => (t > 0.2068966 ? t * t * t : (t - 16 / 116) / 7.787);

/** sRGB bytes -> [L, a, b] (the official rgb2lab). */
export function rgbToLab(r, g, b) {
  const c = [LIN[r], LIN[g], LIN[b]];
  const [x, y, z] = [0, 1, 2].map((k) => f((RGB_TO_XYZ[k][0] * c[0] + RGB_TO_XYZ[k][1] * c[1] + RGB_TO_XYZ[k][2] * c[2]) / WHITE[k]));
  return [116 * y - 16, 500 * (x - y), 200 * (y - z)];
}

/** CIE L (0..100) of each pixel of RGBA (or RGB with stride 3) bytes: Float32Array of n pixels. */
export function lightness(px, n, stride = 4) {
  const out = new Float32Array(n), w0 = RGB_TO_XYZ[1][0], w1 = RGB_TO_XYZ[1][1], w2 = RGB_TO_XYZ[1][2];
  for (let i = 0, j = 0; i < n; i++, j += stride) out[i] = 116 * f(LIN[px[j]] * w0 + LIN[px[j + 1]] * w1 + LIN[px[j + 2]] * w2) - 16;
  return out;
}

const hex = (c) => [1, 3, 5].map((i) => parseInt(c.slice(i, i + 2), 16));

/** Validate hints as the server does (one line naming the first problem), in photo pixels. */
export function checkHints(hints, width, height, max = 1024) {
  if (!Array.isArray(hints)) throw new Error("hints must be a list of {x, y, color}");
  if (hints.length > max) throw new Error(`too many hints: ${hints.length} > ${max}`);
  const seen = new Set();
  hints.forEach((h, i) => {
    if (!Number.isInteger(h.x) || h.x < 0 || h.x >= width) throw new Error(`hint ${i}: 'x'=${h.x} is outside the image (0..${width - 1})`);
    if (!Number.isInteger(h.y) || h.y < 0 || h.y >= height) throw new Error(`hint ${i}: 'y'=${h.y} is outside the image (0..${height - 1})`);
    if (typeof h.color !== "string" || !/^#[0-9a-fA-F]{6}$/.test(h.color)) throw new Error(`hint ${i}: colour ${h.color} is not '#rrggbb'`);
    const s = h.size ?? 1;
    if (!Number.isInteger(s) || s < 1 || s > MAX_HINT_SIZE) throw new Error(`hint ${i}: 'size'=${s} is outside 1..${MAX_HINT_SIZE}`);
    const key = h.x + "," + h.y;
    if (seen.has(key)) throw new Error(`hint ${i}: duplicate position x=${h.x}, y=${h.y}`);
    seen.add(key);
  });
}

/** The model input [1, 4, 224, 224]: normalized L of the 224 photo and the hints on the 112x112 cell grid
 * (runtime/hints.py: user_hints_to_cells + encode; a hint's patch is size x size cells, overlaps averaged). */
export function encode(l224, hints, width, height, out = new Float32Array(4 * IMG * IMG)) {
  const plane = IMG * IMG;
  for (let i = 0; i < plane; i++) out[i] = (l224[i] - L_CENT) / L_NORM;
  const ab = new Float64Array(GRID * GRID * 2), count = new Float64Array(GRID * GRID);
  for (const h of hints) {
    const r = Math.min(GRID - 1, Math.max(0, Math.floor((h.y + 0.5) * IMG / height / HINT)));
    const c = Math.min(GRID - 1, Math.max(0, Math.floor((h.x + 0.5) * IMG / width / HINT)));
    const [, a, b] = rgbToLab(...hex(h.color)), s = h.size || 1;
    const r0 = Math.max(r - ((s - 1) >> 1), 0), c0 = Math.max(c - ((s - 1) >> 1), 0);
    const r1 = Math.min(r + (s >> 1) + 1, GRID), c1 = Math.min(c + (s >> 1) + 1, GRID);
    for (let rr = r0; rr < r1; rr++) for (let cc = c0; cc < c1; cc++) {
      const k = rr * GRID + cc;
      ab[2 * k] += a / AB_NORM; ab[2 * k + 1] += b / AB_NORM; count[k] += 1;
    }
  }
  for (let y = 0; y < IMG; y++) for (let x = 0; x < IMG; x++) {
    const k = (y >> 1) * GRID + (x >> 1), n = count[k], o = y * IMG + x;
    out[plane + o] = n ? ab[2 * k] / n : 0;
    out[2 * plane + o] = n ? ab[2 * k + 1] / n : 0;
    out[3 * plane + o] = n ? 1 : 0;
  }
  return out;
}

function taps(nIn, nOut) { // half-pixel-centre bilinear (F.interpolate, align_corners=False)
  const i0 = new Int32Array(nOut), i1 = new Int32Array(nOut), w = new Float32Array(nOut);
  for (let o = 0; o < nOut; o++) {
    const src = Math.min(Math.max((o + 0.5) * (nIn / nOut) - 0.5, 0), nIn - 1), a = Math.floor(src);
    i0[o] = a; i1[o] = Math.min(a + 1, nIn - 1); w[o] = src - a;
  }
  return { i0, i1, w };
}

/** One photo at one output size: its L (the output's L is the photo's), fy and Y, computed once; render() turns
 * the model's normalized ab [2, n, n] into RGBA bytes (runtime/postprocess.py's Canvas, numpy kernel's steps). */
export class Canvas {
  constructor(l, width, height) {
    this.width = width; this.height = height; this.l = l;
    const n = width * height;
    this.fy = new Float32Array(n); this.y = new Float32Array(n);
    for (let i = 0; i < n; i++) { const fy = (l[i] + 16) / 116; this.fy[i] = fy; this.y[i] = finv(fy) * WHITE[1]; }
    this.rgba = new Uint8ClampedArray(n * 4).fill(255);
  }
  render(abN, n) {
    const { width: W, height: H } = this;
    if (!this.taps || this.taps.n !== n) this.taps = { n, R: taps(n, H), C: taps(n, W) }; // per photo, not per update
    const { R, C } = this.taps, rows = new Float32Array(2 * n), out = new Uint8Array(this.rgba.buffer), fyp = this.fy, yp = this.y;
    const [[m00, m01, m02], [m10, m11, m12], [m20, m21, m22]] = XYZ_TO_RGB, wx = WHITE[0], wz = WHITE[2];
    const top = GAMMA_N - 1, k0 = 16 / 116, kd = 1 / 7.787;
    for (let y = 0; y < H; y++) {
      const r0 = R.i0[y] * n, r1 = R.i1[y] * n, wr = R.w[y], nn = n * n;
      for (let j = 0; j < n; j++) {
        rows[j] = abN[r0 + j] * (1 - wr) + abN[r1 + j] * wr;
        rows[n + j] = abN[nn + r0 + j] * (1 - wr) + abN[nn + r1 + j] * wr;
      }
      for (let x = 0, i = y * W; x < W; x++, i++) {
        const c0 = C.i0[x], c1 = C.i1[x], wc = C.w[x];
        const a = (rows[c0] * (1 - wc) + rows[c1] * wc) * AB_NORM;
        const b = (rows[n + c0] * (1 - wc) + rows[n + c1] * wc) * AB_NORM;
        const fy = fyp[i], fx = fy + a * 0.002, fz0 = fy - b * 0.005, fz = fz0 > 0 ? fz0 : 0;
        const X = (fx > 0.2068966 ? fx * fx * fx : (fx - k0) * kd) * wx, Y = yp[i];
        const Z = (fz > 0.2068966 ? fz * fz * fz : (fz - k0) * kd) * wz;
        let v = (X * m00 + Y * m01 + Z * m02) * GAMMA_N;
        out[4 * i] = LIN_TO_U8[v <= 0 ? 0 : v >= top ? top : v | 0];
        v = (X * m10 + Y * m11 + Z * m12) * GAMMA_N;
        out[4 * i + 1] = LIN_TO_U8[v <= 0 ? 0 : v >= top ? top : v | 0];
        v = (X * m20 + Y * m21 + Z * m22) * GAMMA_N;
        out[4 * i + 2] = LIN_TO_U8[v <= 0 ? 0 : v >= top ? top : v | 0];
      }
    }
    return this.rgba;
  }
}

/** sha256 of bytes as lowercase hex (Web Crypto). */
export async function sha256(buf) {
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", buf));
  return Array.from(d, (v) => v.toString(16).padStart(2, "0")).join("");
}
