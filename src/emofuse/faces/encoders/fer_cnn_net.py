"""The architecture of emofuse's own face-expression CNN (`fer_cnn`), trained on FER2013 by
``emofuse train-face`` (`emofuse.training.face`).

A VGG-style network (Simonyan & Zisserman 2015, as adapted to FER2013 by Khaireddin & Chen 2021,
"Facial Emotion Recognition: State of the Art Performance on FER2013"): four stages of two 3×3
convolution + BatchNorm + ReLU layers and a 2×2 max-pool, then global average pooling (the
per-frame embedding) and a dropout + linear expression head. Inputs are grey faces, each standardised
to zero mean and unit variance (`standardize_faces`), so lighting and contrast matter less.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from emofuse.faces.pooling import ChannelsLastMaxPool2d

#: Side of the square the network sees: faces are 48×48, training crops and the test centre crop 40×40.
CROP = 40
IMAGE = 48


def standardize_faces(x: Tensor) -> Tensor:
    """Per-image zero mean, unit variance of ``x`` [N, 1, H, W] (blank images stay zeros)."""
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    std = x.std(dim=(1, 2, 3), keepdim=True).clamp_min(1e-3)
    return (x - mean) / std


def _stage(c_in: int, c_out: int) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for c in (c_in, c_out):
        layers += [nn.Conv2d(c, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
    return layers + [ChannelsLastMaxPool2d(2)]  # nn.MaxPool2d(2)'s values, faster


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


def crop_theta(n: int, scale: Tensor | float = 1.0, angle: Tensor | float = 0.0, shift: Tensor | None = None,
               mirror: Tensor | None = None) -> Tensor:
    """Affine matrices [n, 2, 3] mapping a 40×40 output to the 48×48 input: a centre crop at native
    resolution, scaled, rotated (radians), shifted (fraction of the image) and mirrored."""
    scale = torch.as_tensor(scale, dtype=torch.float32).expand(n) * (CROP / IMAGE)
    angle = torch.as_tensor(angle, dtype=torch.float32).expand(n)
    cos, sin = torch.cos(angle) * scale, torch.sin(angle) * scale
    flip = torch.ones(n) if mirror is None else 1.0 - 2.0 * mirror.float()
    shift = torch.zeros(n, 2) if shift is None else shift
    return torch.stack([torch.stack([cos * flip, -sin, shift[:, 0]], 1),
                        torch.stack([sin * flip, cos, shift[:, 1]], 1)], 1)


def to_network_input(images: Tensor, theta: Tensor) -> Tensor:
    """uint8 or float faces [N, 48, 48] → standardised crops [N, 1, 40, 40] through ``theta``."""
    x = standardize_faces(images.float().unsqueeze(1))
    grid = F.affine_grid(theta.to(x.device, x.dtype), [x.shape[0], 1, CROP, CROP], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
