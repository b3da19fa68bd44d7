"""The architecture of emofuse's own face-expression CNN (`fer_cnn`), trained on FER2013 by
``emofuse train-face`` (`emofuse.training.face`).

A VGG-style network (Simonyan & Zisserman 2015, as adapted to FER2013 by Khaireddin & Chen 2021,
"Facial Emotion Recognition: State of the Art Performance on FER2013"): four stages of two 3×3
convolution + BatchNorm + ReLU layers and a 2×2 max-pool, then global average pooling (the
per-frame embedding) and a dropout + linear expression head. Inputs are grey faces, each standardised
to zero mean and unit variance (`standardize_faces`), so lighting and contrast matter less.
"""

from __future__ import annotations

from torch import Tensor, nn


def standardize_faces(x: Tensor) -> Tensor:
    """Per-image zero mean, unit variance of ``x`` [N, 1, H, W] (blank images stay zeros)."""
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    std = x.std(dim=(1, 2, 3), keepdim=True).clamp_min(1e-3)
    return (x - mean) / std


def _stage(c_in: int, c_out: int) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for c in (c_in, c_out):
        layers += [nn.Conv2d(c, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
    return layers + [nn.MaxPool2d(2)]


class FerCNN(nn.Module):
    """VGG-style expression CNN: ``[N, 1, H, W]`` standardised grey faces → (embedding [N, widths[-1]],
    logits [N, num_classes])."""

    def __init__(self, num_classes: int = 7, widths: tuple[int, ...] = (32, 64, 128, 256), dropout: float = 0.4) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 1
        for width in widths:
            layers += _stage(c_in, width)
            c_in = width
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(c_in, num_classes))
        self.embed_dim = c_in

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        embedding = self.pool(self.features(x)).flatten(1)
        return embedding, self.head(embedding)
