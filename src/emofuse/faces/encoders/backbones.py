"""``resnet18`` and ``mobilenet_v2``: ImageNet-style backbones whose weights load from a local file.

The architectures are written here in plain PyTorch with exactly the parameter names of
torchvision's ``resnet18`` and ``mobilenet_v2`` (He et al. 2016; Sandler et al. 2018), so a state
dict saved from torchvision (``torch.save(model.state_dict(), "resnet18.pth")``, or a
``.safetensors`` copy) loads unchanged; torchvision itself is not needed. No weights ship with
emofuse (none are in a package here): ``weights=<path>`` (``.safetensors``, or ``.pth`` / ``.pt``
read with ``torch.load(weights_only=True)``); ``weights=None`` gives a seeded random
initialisation (torchvision's scheme) and logs a warning.

Input: 224x224 RGB, ImageNet mean/std. Embedding: global average pooling of the last feature map
(512-d for ResNet-18, 1280-d for MobileNetV2). Logits: None, unless the file holds a classifier
(``fc.*`` / ``classifier.1.*``) whose size matches ``classes`` (default `FER_CLASSES`, 7): then its
outputs are the expression logits. A 1000-way ImageNet classifier is not an expression head and
is left out (logits None); a head of another size needs ``classes=[...]`` naming its outputs.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from emofuse.errors import DataError
from emofuse.faces.encoders.base import FER_CLASSES, FaceEncoder, load_checked, read_state_dict, register_face_encoder

log = logging.getLogger(__name__)
IMAGENET_CLASSES = 1000


# -- ResNet-18 (torchvision names) ------------------------------------------------------------------


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.downsample: nn.Module | None = None
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


class ResNet18Features(nn.Module):
    """torchvision's ResNet-18 without ``fc``: ``forward`` gives the pooled 512-d features."""

    out_dim = 512

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        widths = (64, 128, 256, 512)
        for i, c in enumerate(widths):
            c_in, stride = (64, 1) if i == 0 else (widths[i - 1], 2)
            setattr(self, f"layer{i + 1}", nn.Sequential(BasicBlock(c_in, c, stride), BasicBlock(c, c)))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return x.mean(dim=(2, 3))


# -- MobileNetV2 (torchvision names) ----------------------------------------------------------------


def _conv_bn_relu(c_in: int, c_out: int, k: int = 3, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, k, stride, (k - 1) // 2, groups=groups, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU6(inplace=True),
    )


class InvertedResidual(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = c_in * expand
        self.use_res_connect = stride == 1 and c_in == c_out
        layers: list[nn.Module] = [] if expand == 1 else [_conv_bn_relu(c_in, hidden, k=1)]
        layers += [
            _conv_bn_relu(hidden, hidden, stride=stride, groups=hidden),
            nn.Conv2d(hidden, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


#: (expansion t, channels c, repeats n, first stride s), width multiplier 1.0
MOBILENET_V2_SETTINGS = (
    (1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)
)


class MobileNetV2Features(nn.Module):
    """torchvision's MobileNetV2 (width 1.0) without ``classifier``: pooled 1280-d features."""

    out_dim = 1280

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = [_conv_bn_relu(3, 32, stride=2)]
        c_in = 32
        for t, c, n, s in MOBILENET_V2_SETTINGS:
            for i in range(n):
                layers.append(InvertedResidual(c_in, c, s if i == 0 else 1, t))
                c_in = c
        layers.append(_conv_bn_relu(c_in, self.out_dim, k=1))
        self.features = nn.Sequential(*layers)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")

    def forward(self, x: Tensor) -> Tensor:
        return self.features(x).mean(dim=(2, 3))


# -- encoders ---------------------------------------------------------------------------------------


class _Backbone(FaceEncoder):
    """A torchvision-compatible backbone; subclasses set ``trunk`` and ``head_prefix``.

    Args:
        weights: a torchvision-style state dict file (.safetensors/.pth/.pt); None: random init.
        classes: names of the file's classifier outputs (default: `FER_CLASSES` for a 7-way head).
        seed: seed of the random initialisation (``weights=None`` only).
        batch_size: faces per forward pass (4 was the fastest per face on one CPU thread).
    """

    trunk: ClassVar[type[nn.Module]]
    head_prefix: ClassVar[str]
    input_size = 224
    grey = False

    def __init__(
        self,
        weights: str | Path | None = None,
        classes: Sequence[str] | None = None,
        seed: int = 0,
        batch_size: int = 4,
    ) -> None:
        self.weights = None if weights is None else str(weights)
        self.path = None if weights is None else Path(weights)
        self.seed, self.batch_size = int(seed), int(batch_size)
        self.embed_dim = self.trunk.out_dim
        self.classes, self.head = None, None
        if self.path is None:
            log.warning("face encoder %r: no weights given, using a random initialisation (seed %d)",
                        self.name, self.seed)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.seed)
                self.net = self.trunk()
        else:
            self.net = self.trunk()
            self._load(self.path, classes)
        self.net.eval()

    def _load(self, path: Path, classes: Sequence[str] | None) -> None:
        state = read_state_dict(path)
        if state and all(k.startswith("module.") for k in state):  # saved from DataParallel
            state = {k[len("module."):]: v for k, v in state.items()}
        head = {k[len(self.head_prefix):]: state.pop(k) for k in list(state) if k.startswith(self.head_prefix)}
        load_checked(self.net, state, path)
        if head:
            self._set_head(head, path, classes)
        elif classes is not None:
            raise DataError(path, f"classes={list(classes)} given, but the file has no {self.head_prefix}* classifier")

    def _set_head(self, head: dict[str, Tensor], path: Path, classes: Sequence[str] | None) -> None:
        if set(head) != {"weight", "bias"} or head["weight"].ndim != 2:
            raise DataError(path, f"unexpected classifier keys {sorted(self.head_prefix + k for k in head)}")
        n_out, n_in = head["weight"].shape
        if n_in != self.embed_dim:
            raise DataError(path, f"classifier takes {n_in} features, {self.name} gives {self.embed_dim}")
        if classes is None and n_out == IMAGENET_CLASSES:
            log.info("face encoder %r: %s left out (a 1000-way ImageNet classifier)", self.name, path)
            return
        names = tuple(classes) if classes is not None else FER_CLASSES
        if n_out != len(names):
            raise DataError(path, f"classifier has {n_out} outputs but {len(names)} classes were named; "
                                  "pass classes=[...]")
        self.head = nn.Linear(n_in, n_out).eval()
        self.head.load_state_dict(head)
        self.classes = names

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        emb = self.net(x)
        return emb, None if self.head is None else self.head(emb)

    def weight_files(self) -> list[Path]:
        return [] if self.path is None else [self.path]

    def config(self) -> dict[str, Any]:
        cfg: dict[str, Any] = {"name": self.name, "weights": self.weights}
        if self.path is None:
            cfg["seed"] = self.seed
        if self.classes is not None:
            cfg["classes"] = list(self.classes)
        return cfg


@register_face_encoder
class ResNet18(_Backbone):
    """ResNet-18 (torchvision names): 224x224 RGB, 512-d embedding; weights from a local file."""

    name = "resnet18"
    trunk = ResNet18Features
    head_prefix = "fc."
    embed_dim = 512


@register_face_encoder
class MobileNetV2(_Backbone):
    """MobileNetV2 (torchvision names): 224x224 RGB, 1280-d embedding; weights from a local file."""

    name = "mobilenet_v2"
    trunk = MobileNetV2Features
    head_prefix = "classifier.1."
    embed_dim = 1280
