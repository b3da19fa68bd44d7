"""``fer_cnn``: emofuse's own face-expression CNN, trained on FER2013 by ``emofuse train-face``; the
default visual encoder. Its weights ship in ``emofuse/assets/faces/fer_cnn`` (see the model card there).

48×48 grey faces in; each is standardised, its centre 40×40 crop and the mirror image go through
`FerCNN` (`emofuse.faces.encoders.fer_cnn_net`), and the two are averaged: the embedding is the mean
of the two pooled feature vectors (``widths[-1]`` values), the logits the log of the mean probabilities.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from emofuse.errors import DataError
from emofuse.faces.encoders.base import FER_CLASSES, FaceEncoder, register_face_encoder

if TYPE_CHECKING:
    import torch


def shipped_fer_cnn_dir() -> Path:
    """The folder of the shipped weights (``model.safetensors``, ``config.json``, ``MODEL_CARD.md``)."""
    return Path(str(resources.files("emofuse") / "assets" / "faces" / "fer_cnn"))


@register_face_encoder
class FerCnnEncoder(FaceEncoder):
    """The project's FER2013 CNN; ``weights``: a folder written by ``emofuse train-face`` (default: the
    shipped one)."""

    name = "fer_cnn"
    input_size = 48
    grey = True
    classes = FER_CLASSES
    batch_size = 256

    def __init__(self, weights: str | Path | None = None) -> None:
        from safetensors.torch import load_file

        from emofuse.faces.encoders.fer_cnn_net import FerCNN

        self.folder = Path(weights) if weights is not None else shipped_fer_cnn_dir()
        self.weights = None if weights is None else str(weights)
        config = _read_config(self.folder / "config.json")
        self.net = FerCNN(len(config["classes"]), tuple(config["widths"]), float(config.get("dropout", 0.0)))
        self.embed_dim = self.net.embed_dim
        file = self.folder / "model.safetensors"
        if not file.is_file():
            raise DataError(file, "fer_cnn weights not found (train them with 'emofuse train-face --out DIR' "
                                  "and pass weights=DIR)")
        try:
            self.net.load_state_dict(load_file(str(file)))
        except (RuntimeError, OSError, ValueError) as exc:
            raise DataError(file, f"not fer_cnn weights of the architecture in config.json ({exc})") from None
        self.net.eval()

    def weight_files(self) -> list[Path]:
        return [self.folder / "model.safetensors"]

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "weights": self.weights}

    def normalise(self, crops: np.ndarray) -> "torch.Tensor":
        import torch

        return torch.from_numpy(crops).float()  # [n, 48, 48]; standardised per face in `forward`

    def forward(self, x: "torch.Tensor") -> tuple["torch.Tensor", "torch.Tensor"]:
        import torch

        from emofuse.faces.encoders.fer_cnn_net import crop_theta, to_network_input

        n = x.shape[0]
        emb_a, log_a = self.net(to_network_input(x, crop_theta(n)))
        emb_b, log_b = self.net(to_network_input(x, crop_theta(n, mirror=torch.ones(n, dtype=torch.bool))))
        probs = (log_a.softmax(-1) + log_b.softmax(-1)) / 2
        return (emb_a + emb_b) / 2, probs.clamp_min(1e-12).log()


def _read_config(path: Path) -> dict[str, Any]:
    """The ``config.json`` of a fer_cnn folder, checked (`DataError` naming it otherwise)."""
    from emofuse.inference.checkpoint import read_json

    config = read_json(path, "the fer_cnn config (a folder written by 'emofuse train-face' has one)")
    if not isinstance(config, dict) or config.get("architecture") != "FerCNN" or \
            list(config.get("classes", [])) != list(FER_CLASSES) or not config.get("widths"):
        raise DataError(path, "not a fer_cnn config (architecture FerCNN, the 7 FER classes and widths expected)")
    return config
