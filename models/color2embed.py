"""Color2Embed (Zhao et al. 2021, arXiv 2106.08017): exemplar-based colorization from a colour embedding.

Three parts:
- a colour encoder: reference sRGB photo -> embedding ``[N, emb_dim]`` (512 in the paper). Two
  selectable layouts: ``resnet18`` (a ResNet-18 with its classifier replaced by ``emb_dim`` outputs,
  trained from scratch here; the layout of the Kwentar re-implementation) and ``vgg19`` (the
  official one: VGG19 features up to relu5_2, then ``feature2vector``: two pairs of strided 4x4 +
  3x3 convs, a global average pool and three 1x1 "linear" layers) and ``mobilenetv2`` (MobileNetV2's
  1280-d features, global average pool, a linear layer to ``emb_dim``; ImageNet-pretrained through
  :func:`load_mobilenetv2_imagenet`, its BatchNorm statistics kept frozen);
- a U-Net content encoder on the grayscale L;
- a PFFN decoder whose convolutions are StyleGAN2-style modulated (and demodulated) by the embedding.

Two decoder layouts: ``official`` (zhaohengyuan1/Color2Embed ``ColorUNet``: strided-conv downs
with residual blocks, up blocks fusing every 4th skip channel, one modulated conv per up block
(the paper's SDFT), a tanh head: output ab/110) and ``kwentar`` (Kwentar/Color2Embed_pytorch: the
classic max-pool U-Net with a modulated conv after each up block and a linear 1x1 head in OpenCV
8-bit Lab units). Any size that is a multiple of 16 works (four 2x downsamplings).

Forward contract (every layout):
- ``encode_reference(ref_rgb_n)``: ``ref_rgb_n`` float32 ``[N, 3, H, W]``, sRGB in [0, 1], RGB
  channel order, H and W multiples of 16 (the official test resizes references to 256x256). The
  model applies its own preprocessing (``cfg.ref_preprocess``: ImageNet mean/std for ``imagenet``,
  as the official VGG path; a channel flip to BGR for ``bgr``, as the Kwentar training data).
  Returns ``emb`` ``[N, emb_dim]``.
- ``colorize(l_n, emb)``: ``l_n`` ``[N, 1, H, W]`` = (L - 50) / 100 (tinct's normalization,
  runtime/color.py) -> ``ab_n`` ``[N, 2, H, W]`` = ab / 110, in [-1, 1].
- ``forward(l_n, ref_rgb_n)`` = ``colorize(l_n, encode_reference(ref_rgb_n))``.

The modulated convolution is written in its export-friendly form (constant conv weights,
per-sample scaling of activations): ``y = conv(x * s, W * scale) * d`` with
``d = rsqrt(sum_{i,kh,kw} (scale * W * s_i)^2 + 1e-8)``; ``modulated_conv_grouped`` keeps the
StyleGAN2 per-sample grouped form as a reference for tests.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from tinct.runtime.errors import TinctError

ENCODERS = ("resnet18", "vgg19", "mobilenetv2")
DECODERS = ("official", "kwentar")
REF_PREPROCESS = ("imagenet", "bgr")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MULTIPLE = 16
DEMOD_EPS = 1e-8


@dataclass
class Color2EmbedConfig:
    encoder: str = "resnet18"  # colour encoder layout: "resnet18" | "vgg19" (official)
    decoder: str = "official"  # content encoder + PFFN layout: "official" | "kwentar"
    emb_dim: int = 512  # colour embedding size
    width: int = 64  # U-Net base width (channels 1x, 2x, 4x, 8x, 8x)
    enc_width: int = 64  # colour encoder base width (resnet18 / vgg19: 64)
    kernels: tuple = (3, 3, 5, 5)  # modulated conv kernel per up block, deepest first
    ref_preprocess: str = "imagenet"  # "imagenet" (mean/std) | "bgr" (channel flip, Kwentar)

    def __post_init__(self):
        self.kernels = tuple(int(k) for k in self.kernels)
        if self.encoder not in ENCODERS:
            raise TinctError(f"unknown Color2Embed encoder {self.encoder!r}; known: {', '.join(ENCODERS)}")
        if self.decoder not in DECODERS:
            raise TinctError(f"unknown Color2Embed decoder {self.decoder!r}; known: {', '.join(DECODERS)}")
        if self.ref_preprocess not in REF_PREPROCESS:
            raise TinctError(f"unknown ref_preprocess {self.ref_preprocess!r}; known: {', '.join(REF_PREPROCESS)}")
        if len(self.kernels) != 4 or any(k % 2 == 0 for k in self.kernels):
            raise TinctError(f"kernels must be 4 odd sizes, got {self.kernels}")
        if self.emb_dim % 2 or self.width < 1 or self.enc_width < 1:
            raise TinctError("emb_dim must be even and widths positive")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["kernels"] = list(self.kernels)
        return d


# ----------------------------------------------------------------------------- modulated conv

class ModulatedConv2d(nn.Module):
    """StyleGAN2 modulated + demodulated convolution, export-friendly form (no bias).

    ``affine``: embedding -> style ``s`` per input channel. ``weight`` ``[out, in, k, k]`` is
    constant (one conv for the whole batch, so per-channel weight quantization applies; the
    ``weight * scale`` product and ``sum(W^2)`` fold to constants at export)."""

    def __init__(self, cin: int, cout: int, kernel: int, style_dim: int):
        super().__init__()
        self.cin, self.cout, self.kernel = cin, cout, kernel
        self.scale = 1.0 / math.sqrt(cin * kernel * kernel)
        self.affine = nn.Linear(style_dim, cin)
        self.weight = nn.Parameter(torch.randn(cout, cin, kernel, kernel))
        nn.init.ones_(self.affine.bias)  # style starts at ~1 (StyleGAN2 convention)

    def style(self, emb: torch.Tensor) -> torch.Tensor:
        return self.affine(emb)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        s = self.style(emb)  # [N, in]
        w = self.weight * self.scale
        # d[n, o] = rsqrt(sum_i s[n, i]^2 * sum_{kh, kw} w[o, i, kh, kw]^2 + eps)
        d = torch.rsqrt(F.linear(s * s, w.pow(2).sum(dim=(2, 3))) + DEMOD_EPS)
        y = F.conv2d(x * s[:, :, None, None], w, padding=self.kernel // 2)
        return y * d[:, :, None, None]


def modulated_conv_grouped(mod: ModulatedConv2d, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
    """Reference StyleGAN2 form (tests only): weights modulated per sample, one grouped conv."""
    n, c, h, w = x.shape
    s = mod.style(emb)
    wt = mod.scale * mod.weight[None] * s[:, None, :, None, None]  # [N, out, in, k, k]
    wt = wt * torch.rsqrt(wt.pow(2).sum(dim=(2, 3, 4)) + DEMOD_EPS)[:, :, None, None, None]
    k = mod.kernel
    y = F.conv2d(x.reshape(1, n * c, h, w), wt.reshape(n * mod.cout, c, k, k), padding=k // 2, groups=n)
    return y.reshape(n, mod.cout, h, w)


# ----------------------------------------------------------------------------- building blocks

class DoubleConvBN(nn.Module):
    """conv3x3 -> BN -> act -> conv3x3 -> BN -> act."""

    def __init__(self, cin: int, cout: int, act: nn.Module, mid: int | None = None):
        super().__init__()
        mid = mid or cout
        self.conv1 = nn.Conv2d(cin, mid, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, cout, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(cout)
        self.act = act

    def forward(self, x):
        return self.act(self.bn2(self.conv2(self.act(self.bn1(self.conv1(x))))))


class ResDown(nn.Module):
    """Official down block: 4x4 stride-2 conv, LeakyReLU(0.1), then a residual block
    (1x1 projection p; conv3x3 -> BN -> LeakyReLU(0.2) -> conv3x3; (h + p) / sqrt(2))."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.down = nn.Conv2d(cin, cin, 4, stride=2, padding=1)
        self.proj = nn.Conv2d(cin, cout, 1)
        self.conv1 = nn.Conv2d(cout, cout, 3, padding=1)
        self.bn = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)

    def forward(self, x):
        p = self.proj(F.leaky_relu(self.down(x), 0.1))
        h = self.conv2(F.leaky_relu(self.bn(self.conv1(p)), 0.2))
        return (h + p) * (1.0 / math.sqrt(2.0))


class UpSDFT(nn.Module):
    """Official up block: bilinear 2x up of the deep features u; fuse [u, skip[:, ::4]] with a 1x1
    and a 3x3 conv (LeakyReLU 0.2 after each); modulated conv; plus a 1x1 shortcut of u."""

    def __init__(self, c_low: int, c_skip: int, cout: int, kernel: int, style_dim: int):
        super().__init__()
        self.fuse1 = nn.Conv2d(c_low + (c_skip + 3) // 4, cout, 1)
        self.fuse2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.shortcut = nn.Conv2d(c_low, cout, 1)
        self.mod = ModulatedConv2d(cout, cout, kernel, style_dim)

    def forward(self, low, skip, emb):
        u = F.interpolate(low, scale_factor=2.0, mode="bilinear", align_corners=False)
        h = torch.cat((u, skip[:, ::4]), dim=1)
        h = F.leaky_relu(self.fuse2(F.leaky_relu(self.fuse1(h), 0.2)), 0.2)
        return self.mod(h, emb) + self.shortcut(u)


class OfficialDecoder(nn.Module):
    """Content encoder + PFFN of the official ``ColorUNet`` (tanh head: ab / 110)."""

    def __init__(self, cfg: Color2EmbedConfig):
        super().__init__()
        b = cfg.width
        ch = [b, 2 * b, 4 * b, 8 * b, 8 * b]
        self.inc = DoubleConvBN(1, b, nn.LeakyReLU(0.1))
        self.downs = nn.ModuleList([ResDown(ch[i], ch[i + 1]) for i in range(4)])
        outs = [4 * b, 2 * b, b, b]
        lows = [ch[4]] + outs[:3]
        skips = [ch[3], ch[2], ch[1], ch[0]]
        self.ups = nn.ModuleList([UpSDFT(lows[i], skips[i], outs[i], cfg.kernels[i], cfg.emb_dim)
                                  for i in range(4)])
        self.head1 = nn.Conv2d(b, b, 3, padding=1)
        self.head2 = nn.Conv2d(b, 2, 3, padding=1)

    def forward(self, l_n, emb):
        feats = [self.inc(l_n * 2.0)]  # official input: (L - 50) / 50
        for down in self.downs:
            feats.append(down(feats[-1]))
        x = feats[4]
        for up, skip in zip(self.ups, feats[3::-1]):
            x = up(x, skip, emb)
        return torch.tanh(self.head2(F.leaky_relu(self.head1(x), 0.2)))


class KwentarDecoder(nn.Module):
    """The Kwentar U-Net + PFFN: max-pool downs, bilinear (align_corners) ups concatenating
    [skip, up], a modulated 3x3 conv after each up block, a linear 1x1 head. Its units: input
    L / 100, output OpenCV 8-bit Lab ((ab + 128) / 255); converted here to tinct's."""

    def __init__(self, cfg: Color2EmbedConfig):
        super().__init__()
        b = cfg.width
        ch = [b, 2 * b, 4 * b, 8 * b, 8 * b]
        relu = nn.ReLU()
        self.inc = DoubleConvBN(1, b, relu)
        self.downs = nn.ModuleList([DoubleConvBN(ch[i], ch[i + 1], relu) for i in range(4)])
        outs = [4 * b, 2 * b, b, b]
        ins = [ch[3] + ch[4], ch[2] + outs[0], ch[1] + outs[1], ch[0] + outs[2]]
        self.ups = nn.ModuleList([DoubleConvBN(ins[i], outs[i], relu, mid=ins[i] // 2) for i in range(4)])
        self.mods = nn.ModuleList([ModulatedConv2d(o, o, k, cfg.emb_dim) for o, k in zip(outs, cfg.kernels)])
        self.head = nn.Conv2d(b, 2, 1)

    def forward(self, l_n, emb):
        feats = [self.inc(l_n + 0.5)]  # Kwentar input: L / 100
        for down in self.downs:
            feats.append(down(F.max_pool2d(feats[-1], 2)))
        x = feats[4]
        for up, mod, skip in zip(self.ups, self.mods, feats[3::-1]):
            x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=True)
            x = mod(up(torch.cat((skip, x), dim=1)), emb)
        ab8 = self.head(x)  # (ab + 128) / 255
        return ((ab8 * 255.0 - 128.0) * (1.0 / 110.0)).clamp(-1.0, 1.0)


# ----------------------------------------------------------------------------- colour encoders

class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False),
                                            nn.BatchNorm2d(cout))

    def forward(self, x):
        idt = x if self.downsample is None else self.downsample(x)
        h = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(h)) + idt)


class ResNet18Encoder(nn.Module):
    """ResNet-18 (7x7/2 stem, 3x3/2 max pool, 4 stages of 2 basic blocks, global average pool)
    with a linear ``fc`` to ``emb_dim``. Names follow the common ResNet state_dict layout."""

    def __init__(self, cfg: Color2EmbedConfig):
        super().__init__()
        w = cfg.enc_width
        self.conv1 = nn.Conv2d(3, w, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(w)
        widths = [w, 2 * w, 4 * w, 8 * w]
        cin = w
        for i, c in enumerate(widths):
            stride = 1 if i == 0 else 2
            setattr(self, f"layer{i + 1}", nn.Sequential(BasicBlock(cin, c, stride), BasicBlock(c, c, 1)))
            cin = c
        self.fc = nn.Linear(8 * w, cfg.emb_dim)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 3, stride=2, padding=1)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(x.mean(dim=(2, 3)))


def _conv_bn(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1, relu: bool = True) -> list[nn.Module]:
    mods = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    return mods + [nn.ReLU6()] if relu else mods


class InvertedResidual(nn.Module):
    """MobileNetV2 block: (1x1 expand ->) 3x3 depthwise -> 1x1 linear projection, BN after each,
    ReLU6 after the first two; a residual when the shape is kept. ``conv`` indices follow the state
    dict of the published weights (ReLU6 modules included in the numbering)."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int):
        super().__init__()
        hidden = cin * expand
        self.use_res = stride == 1 and cin == cout
        mods = [] if expand == 1 else _conv_bn(cin, hidden, 1)
        mods += _conv_bn(hidden, hidden, 3, stride, groups=hidden) + _conv_bn(hidden, cout, 1, relu=False)
        self.conv = nn.Sequential(*mods)

    def forward(self, x):
        return x + self.conv(x) if self.use_res else self.conv(x)


MOBILENETV2_STAGES = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                      (6, 320, 1, 1))  # (expansion, channels, blocks, first stride)


class MobileNetV2Encoder(nn.Module):
    """MobileNetV2 (width 1.0: 3x3/2 stem of 32, 17 inverted residual blocks, 1x1 to 1280, ReLU6), global
    average pool, linear ``fc`` to ``emb_dim``. BatchNorm layers stay in eval mode while training: the
    pretrained ImageNet statistics are kept (a colorization batch of 8 would overwrite them)."""

    def __init__(self, cfg: Color2EmbedConfig):
        super().__init__()
        layers, cin = [nn.Sequential(*_conv_bn(3, 32, 3, 2))], 32
        for t, c, n, s in MOBILENETV2_STAGES:
            for i in range(n):
                layers.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
                cin = c
        layers.append(nn.Sequential(*_conv_bn(cin, 1280, 1)))
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(1280, cfg.emb_dim)

    def train(self, mode: bool = True):
        super().train(mode)
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.eval()
        return self

    def forward(self, x):
        return self.fc(self.features(x).mean(dim=(2, 3)))


def load_mobilenetv2_imagenet(model: "Color2Embed", path) -> None:
    """Load the ImageNet MobileNetV2 features (:func:`data.pretrained.fetch_mobilenetv2`'s file, read with
    ``torch.load(weights_only=True)``) into a ``mobilenetv2`` Color2Embed's encoder; every tensor must
    match by name and shape (``fc`` stays as initialised)."""
    if not isinstance(getattr(model, "encoder", None), MobileNetV2Encoder):
        raise TinctError("ImageNet MobileNetV2 weights fit only the 'mobilenetv2' colour encoder")
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - one line for any unreadable file
        raise TinctError(f"{path}: not a readable torch state dict ({type(exc).__name__}: {exc})") from None
    own = {k: v for k, v in model.encoder.state_dict().items() if not k.startswith("fc.")}
    if not isinstance(sd, dict) or set(sd) != set(own):
        raise TinctError(f"{path}: its tensors do not match MobileNetV2's features "
                         f"(missing {sorted(set(own) - set(sd))[:3]}, extra {sorted(set(sd) - set(own))[:3]})")
    bad = [k for k in own if tuple(sd[k].shape) != tuple(own[k].shape)]
    if bad:
        raise TinctError(f"{path}: shape mismatch at {bad[:3]}")
    model.encoder.load_state_dict(sd, strict=False)


VGG19_RELU5_2 = (1, 1, "M", 2, 2, "M", 4, 4, 4, 4, "M", 8, 8, 8, 8, "M", 8, 8)  # x base width


class VGG19Encoder(nn.Module):
    """The official colour encoder: VGG19 features up to relu5_2 (stride 16), then
    ``feature2vector``: conv4x4/2 (pad 2), conv3x3, conv4x4/2 (pad 2), conv3x3 (LeakyReLU 0.2 after
    each), global average pool, three linear layers emb -> emb/2 -> emb/2 -> emb (LeakyReLU 0.2
    between). ``features`` holds only the convolutions, in order (conv1_1 .. conv5_2)."""

    def __init__(self, cfg: Color2EmbedConfig):
        super().__init__()
        convs, cin = [], 3
        for v in VGG19_RELU5_2:
            if v != "M":
                convs.append(nn.Conv2d(cin, v * cfg.enc_width, 3, padding=1))
                cin = v * cfg.enc_width
        self.features = nn.ModuleList(convs)
        e = cfg.emb_dim
        self.f2v = nn.ModuleList([nn.Conv2d(cin, e, 4, 2, 2), nn.Conv2d(e, e, 3, 1, 1),
                                  nn.Conv2d(e, e, 4, 2, 2), nn.Conv2d(e, e, 3, 1, 1)])
        self.fc = nn.ModuleList([nn.Linear(e, e // 2), nn.Linear(e // 2, e // 2), nn.Linear(e // 2, e)])

    def forward(self, x):
        it = iter(self.features)
        for v in VGG19_RELU5_2:
            x = F.max_pool2d(x, 2) if v == "M" else F.relu(next(it)(x))
        for conv in self.f2v:
            x = F.leaky_relu(conv(x), 0.2)
        x = x.mean(dim=(2, 3))
        x = F.leaky_relu(self.fc[0](x), 0.2)
        x = F.leaky_relu(self.fc[1](x), 0.2)
        return self.fc[2](x)


# ----------------------------------------------------------------------------- the model

def _check_size(x: torch.Tensor, what: str) -> None:
    if torch.jit.is_tracing() or torch.compiler.is_compiling() or torch.onnx.is_in_onnx_export():
        return
    if x.dim() != 4:
        raise TinctError(f"{what}: expected a 4-D tensor [N, C, H, W], got shape {tuple(x.shape)}")
    h, w = x.shape[-2:]
    if h % MULTIPLE or w % MULTIPLE:
        raise TinctError(f"{what}: height and width must be multiples of {MULTIPLE}, got {h}x{w}")


class Color2Embed(nn.Module):
    arch = "color2embed"

    def __init__(self, cfg: Color2EmbedConfig | None = None, **overrides):
        super().__init__()
        cfg = cfg or Color2EmbedConfig(**overrides)
        self.cfg = cfg
        self.encoder = {"resnet18": ResNet18Encoder, "vgg19": VGG19Encoder,
                        "mobilenetv2": MobileNetV2Encoder}[cfg.encoder](cfg)
        self.decoder = OfficialDecoder(cfg) if cfg.decoder == "official" else KwentarDecoder(cfg)
        self.register_buffer("ref_mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("ref_std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def preprocess_reference(self, ref_rgb_n: torch.Tensor) -> torch.Tensor:
        if self.cfg.ref_preprocess == "bgr":
            return ref_rgb_n.flip(1)
        return (ref_rgb_n - self.ref_mean) / self.ref_std

    def encode_reference(self, ref_rgb_n: torch.Tensor) -> torch.Tensor:
        """sRGB reference in [0, 1], ``[N, 3, H, W]`` (H, W multiples of 16) -> ``[N, emb_dim]``."""
        _check_size(ref_rgb_n, "reference")
        return self.encoder(self.preprocess_reference(ref_rgb_n))

    def colorize(self, l_n: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """``l_n`` = (L - 50) / 100 ``[N, 1, H, W]``, ``emb`` ``[N, emb_dim]`` -> ab / 110 ``[N, 2, H, W]``."""
        _check_size(l_n, "L input")
        return self.decoder(l_n, emb)

    def forward(self, l_n: torch.Tensor, ref_rgb_n: torch.Tensor) -> torch.Tensor:
        return self.colorize(l_n, self.encode_reference(ref_rgb_n))

    def modulated_convs(self) -> list[ModulatedConv2d]:
        return [m for m in self.modules() if isinstance(m, ModulatedConv2d)]
