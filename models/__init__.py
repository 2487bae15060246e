"""PyTorch reference models (iColoriT, A-ColViT) and checkpoint I/O.

    from tinct.models import load_model
    model = load_model("icolorit-tiny")          # shipped weights
    model = load_model("icolorit_tiny.pth")       # an official checkpoint
    ab = model(x)                                 # x [N,4,224,224] -> ab [N,2,224,224]
"""

from tinct.models.checkpoint import load_model, save_model  # noqa: F401
from tinct.models.registry import REGISTRY, create_model  # noqa: F401
