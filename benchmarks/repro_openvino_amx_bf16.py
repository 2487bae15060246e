"""Reproducer for an OpenVINO upstream report: one Convolution is wrong in bf16 on Intel AMX CPUs.

Observed (OpenVINO 2026.4.1, Intel Xeon family 6 model 207, AMX-BF16): a convolution
1 x IC x 224 x 224 -> 192 channels, kernel 16 x 16, stride 16 (a ViT patch embedding) compiled for
CPU with ``INFERENCE_PRECISION_HINT=bf16`` differs from f32 by a mean relative |Δ| of 0.0022 for
IC 1, 2, 3, 5, 32 but 1.06 / 1.12 / 1.23 for IC 4 / 8 / 16; IC 4 with kernels 8, 4, 2, 3 (stride 1)
and 1 is fine, and so is every case with AMX masked off (``ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16``).
The plugin picks ``brgconv_avx512_amx_bf16`` for IC 3 and IC 4 alike. A bf16 rounding error is
~0.002-0.004 relative; ~1 means the result is unrelated to the input.

Needs only numpy and openvino. Each configuration runs in a child process, because oneDNN reads
the ISA cap once per process: the sweep runs natively and again with AMX masked off.

    python benchmarks/repro_openvino_amx_bf16.py                  # IC and kernel sweep, AMX on and off
    python benchmarks/repro_openvino_amx_bf16.py --threads 2      # the same at 2 threads

Expected on a CPU whose bf16 kernels are right: every row near 0.002-0.004. Rows near 1 are the bug.
tinct's workaround (keep that layer f32 through the IR's "precise" attribute) lives in
``runtime/backends/openvino_backend.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys

import numpy as np

CASES = [(ic, 16, 16) for ic in (1, 2, 3, 4, 5, 8, 16, 32)] + [(4, 8, 8), (4, 4, 4), (4, 2, 2), (4, 3, 1), (4, 1, 1)]
BROKEN = 0.1  # mean relative |Δ| above this is not bf16 rounding


def one_case(ic: int, kernel: int, stride: int, threads: int, size: int = 224, out_channels: int = 192) -> dict:
    """Mean relative |bf16 - f32| of one convolution with random weights (fixed seed), and the primitive."""
    import openvino as ov
    import openvino.opset13 as ops

    rng = np.random.default_rng(0)
    x = ops.parameter([1, ic, size, size], np.float32, name="x")
    w = ops.constant((rng.standard_normal((out_channels, ic, kernel, kernel)) / np.sqrt(ic * kernel * kernel))
                     .astype(np.float32))
    model = ov.Model([ops.convolution(x, w, [stride, stride], [0, 0], [0, 0], [1, 1])], [x], "one_conv")
    data = rng.uniform(-1, 1, (1, ic, size, size)).astype(np.float32)
    core = ov.Core()
    outs, prims = {}, {}
    for hint in ("f32", "bf16"):
        compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": hint, "INFERENCE_NUM_THREADS": threads})
        outs[hint] = next(iter(compiled.create_infer_request().infer({0: data}).values())).copy()
        prims[hint] = [op.get_rt_info()["primitiveType"].astype(str) for op in compiled.get_runtime_model().get_ordered_ops()
                       if op.get_rt_info()["layerType"].astype(str) == "Convolution"]
    ref = outs["f32"]
    rel = float(np.abs(outs["bf16"] - ref).mean() / np.abs(ref).mean())
    return {"ic": ic, "kernel": kernel, "stride": stride, "mean_rel_diff": rel, "primitive_bf16": prims["bf16"],
            "finite": bool(np.isfinite(outs["bf16"]).all())}


def cpu_line() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            info = f.read()
    except OSError:
        return platform.processor() or "?"
    get = lambda key: next((ln.split(":", 1)[1].strip() for ln in info.splitlines() if ln.startswith(key)), "?")  # noqa: E731
    flags = set(get("flags").split())
    return (f"{get('model name')} (family {get('cpu family')} model {get('model')}); "
            f"avx512_bf16 {'yes' if 'avx512_bf16' in flags else 'no'}, amx_bf16 {'yes' if 'amx_bf16' in flags else 'no'}")


def sweep_in_child(cap: str | None, threads: int) -> list[dict]:
    env = dict(os.environ)
    env.pop("ONEDNN_MAX_CPU_ISA", None)
    if cap:
        env["ONEDNN_MAX_CPU_ISA"] = cap
    code = (f"import json, sys; sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r}); "
            f"import repro_openvino_amx_bf16 as r; "
            f"print(json.dumps([r.one_case(*c, threads={threads}) for c in r.CASES]))")
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    if res.returncode != 0:
        raise SystemExit(f"the sweep failed under ONEDNN_MAX_CPU_ISA={cap or '(unset)'}: "
                         f"{(res.stderr.strip().splitlines() or ['?'])[-1]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=1, choices=range(1, 257), metavar="1..256")
    args = ap.parse_args(argv)
    import openvino as ov

    print(f"openvino {ov.__version__}; CPU {cpu_line()}")
    print("one Convolution 1 x IC x 224 x 224 -> 192, bf16 vs f32, mean relative |Δ| (~0.003 is bf16 rounding)\n")
    runs = [("native", None), ("AMX off", "AVX512_CORE_BF16")]
    results = {label: sweep_in_child(cap, args.threads) for label, cap in runs}
    print(f"| IC | kernel | stride | {' | '.join(f'{label}: mean rel. |Δ| (bf16 primitive)' for label, _ in runs)} |")
    print("|---|---|---|" + "---|" * len(runs))
    broken = 0
    for i, (ic, k, s) in enumerate(CASES):
        cells = []
        for label, _ in runs:
            r = results[label][i]
            bad = r["mean_rel_diff"] > BROKEN or not r["finite"]
            broken += bad
            cells.append(f"{r['mean_rel_diff']:.4f}{' **WRONG**' if bad else ''} ({', '.join(r['primitive_bf16'])})")
        print(f"| {ic} | {k} | {s} | {' | '.join(cells)} |")
    print(f"\n{broken} wrong case(s)" if broken else "\nno wrong case on this CPU")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
