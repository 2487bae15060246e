"""The PyTorch model as a predictor (:data:`tinct.verify.predictors.Predictor`): the reference every
export is checked against."""

from __future__ import annotations

import numpy as np
import torch


def torch_reference(model, forced_gates=None):
    """The PyTorch model (eval, no grad) as a predictor; A-ColViT reports its decisions.
    ``forced_gates`` ([depth][2] bools) runs an A-ColViT with that fixed mask (static exports)."""
    model.eval()

    def predict(x: np.ndarray):
        xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        with torch.no_grad():
            if not hasattr(model, "forward_with_gates"):
                return model(xt).numpy(), None
            saved = model.forced_gates
            try:
                if forced_gates is not None:
                    model.forced_gates = torch.as_tensor(forced_gates, dtype=torch.bool)
                ab, gates = model.forward_with_gates(xt)
            finally:
                model.forced_gates = saved
            return ab.numpy(), gates.numpy().astype(bool)

    return predict
