"""The "mtcnn" face detector: MTCNN (Zhang et al. 2016), a cascade of three small CNNs, in PyTorch.

P-Net proposes face windows over an image pyramid, R-Net rejects and refines them on 24x24 crops,
O-Net scores them on 48x48 crops and gives the box and five landmarks (eyes, nose, mouth corners).
The weights are those of facenet-pytorch 2.6.0 (MIT), converted to
``emofuse/assets/faces/mtcnn/mtcnn.safetensors`` by ``scripts/convert_mtcnn_weights.py``;
facenet-pytorch itself is not used. The stages follow its ``detect_face``, except that crops of
boxes reaching over the image border are zero-padded (as in the original MTCNN) instead of clipped
and stretched, and NMS is numpy. For faces inside the frame the result is the same as facenet-pytorch's.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from emofuse.errors import ConfigError, DataError
from emofuse.faces.detectors import Face, FaceDetector, check_image, largest_first, nms, register_detector

WEIGHTS = Path(__file__).resolve().parents[1] / "assets" / "faces" / "mtcnn" / "mtcnn.safetensors"


def _nets():
    """The three networks as `torch.nn.Module` classes (built lazily: torch is imported here)."""
    from torch import nn

    from emofuse.faces.pooling import ChannelsLastMaxPool2d as MaxPool2d  # nn.MaxPool2d's values, faster

    class PNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1, self.prelu1 = nn.Conv2d(3, 10, 3), nn.PReLU(10)
            self.pool1 = MaxPool2d(2, 2, ceil_mode=True)
            self.conv2, self.prelu2 = nn.Conv2d(10, 16, 3), nn.PReLU(16)
            self.conv3, self.prelu3 = nn.Conv2d(16, 32, 3), nn.PReLU(32)
            self.conv4_1, self.conv4_2 = nn.Conv2d(32, 2, 1), nn.Conv2d(32, 4, 1)

        def forward(self, x):
            x = self.pool1(self.prelu1(self.conv1(x)))
            x = self.prelu3(self.conv3(self.prelu2(self.conv2(x))))
            return self.conv4_2(x), self.conv4_1(x).softmax(dim=1)

    class RNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1, self.prelu1 = nn.Conv2d(3, 28, 3), nn.PReLU(28)
            self.pool1 = MaxPool2d(3, 2, ceil_mode=True)
            self.conv2, self.prelu2 = nn.Conv2d(28, 48, 3), nn.PReLU(48)
            self.pool2 = MaxPool2d(3, 2, ceil_mode=True)
            self.conv3, self.prelu3 = nn.Conv2d(48, 64, 2), nn.PReLU(64)
            self.dense4, self.prelu4 = nn.Linear(576, 128), nn.PReLU(128)
            self.dense5_1, self.dense5_2 = nn.Linear(128, 2), nn.Linear(128, 4)

        def forward(self, x):
            x = self.pool1(self.prelu1(self.conv1(x)))
            x = self.pool2(self.prelu2(self.conv2(x)))
            x = self.prelu3(self.conv3(x)).permute(0, 3, 2, 1).reshape(x.shape[0], -1)
            x = self.prelu4(self.dense4(x))
            return self.dense5_2(x), self.dense5_1(x).softmax(dim=1)

    class ONet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1, self.prelu1 = nn.Conv2d(3, 32, 3), nn.PReLU(32)
            self.pool1 = MaxPool2d(3, 2, ceil_mode=True)
            self.conv2, self.prelu2 = nn.Conv2d(32, 64, 3), nn.PReLU(64)
            self.pool2 = MaxPool2d(3, 2, ceil_mode=True)
            self.conv3, self.prelu3 = nn.Conv2d(64, 64, 3), nn.PReLU(64)
            self.pool3 = MaxPool2d(2, 2, ceil_mode=True)
            self.conv4, self.prelu4 = nn.Conv2d(64, 128, 2), nn.PReLU(128)
            self.dense5, self.prelu5 = nn.Linear(1152, 256), nn.PReLU(256)
            self.dense6_1, self.dense6_2, self.dense6_3 = nn.Linear(256, 2), nn.Linear(256, 4), nn.Linear(256, 10)

        def forward(self, x):
            x = self.pool1(self.prelu1(self.conv1(x)))
            x = self.pool2(self.prelu2(self.conv2(x)))
            x = self.pool3(self.prelu3(self.conv3(x)))
            x = self.prelu4(self.conv4(x)).permute(0, 3, 2, 1).reshape(x.shape[0], -1)
            x = self.prelu5(self.dense5(x))
            return self.dense6_2(x), self.dense6_3(x), self.dense6_1(x).softmax(dim=1)

    class Cascade(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.pnet, self.rnet, self.onet = PNet(), RNet(), ONet()

    return Cascade


@lru_cache(maxsize=2)
def load_cascade(path: str = str(WEIGHTS)):
    """The P/R/O-Net cascade with the shipped weights, in eval mode (cached per path)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        state = load_file(path)
    except (OSError, RuntimeError, ValueError, SafetensorError) as exc:
        raise DataError(path, f"cannot read the MTCNN weights ({exc})") from exc
    model = _nets()()
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise DataError(path, f"not the MTCNN weights emofuse expects: {exc}") from exc
    return model.eval().requires_grad_(False)


def _square(boxes: np.ndarray) -> np.ndarray:
    """Boxes made square about their centre (side = the longer side)."""
    out = boxes.copy()
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    side = np.maximum(w, h)
    out[:, 0] = boxes[:, 0] + w * 0.5 - side * 0.5
    out[:, 1] = boxes[:, 1] + h * 0.5 - side * 0.5
    out[:, 2], out[:, 3] = out[:, 0] + side, out[:, 1] + side
    return out


def _regress(boxes: np.ndarray, reg: np.ndarray) -> np.ndarray:
    """Boxes moved by the network's offsets (fractions of the box size, ``+1`` convention)."""
    out = boxes.copy()
    w, h = boxes[:, 2] - boxes[:, 0] + 1, boxes[:, 3] - boxes[:, 1] + 1
    out[:, :4] = boxes[:, :4] + reg[:, :4] * np.stack([w, h, w, h], axis=1)
    return out


def _area(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """``image`` (float32 [H, W, 3]) resized by area averaging, as [3, height, width]."""
    import torch
    from torch.nn.functional import interpolate

    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None]
    return interpolate(x, size=(height, width), mode="area")[0].numpy()


def _crops(image: np.ndarray, boxes: np.ndarray, size: int) -> np.ndarray:
    """Crops [N, 3, size, size] of ``boxes`` (1-based pixel convention), zero outside the image,
    scaled to the network's input range."""
    height, width = image.shape[:2]
    out = np.zeros((len(boxes), 3, size, size), dtype=np.float32)
    for k, (x0, y0, x1, y1) in enumerate(np.trunc(boxes[:, :4]).astype(np.int64)):
        x0, y0 = x0 - 1, y0 - 1  # [x0, x1) and [y0, y1) in 0-based pixels
        if x1 <= x0 or y1 <= y0:
            continue
        patch = np.zeros((y1 - y0, x1 - x0, 3), dtype=np.float32)
        sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
        if sx1 > sx0 and sy1 > sy0:
            patch[sy0 - y0: sy1 - y0, sx0 - x0: sx1 - x0] = image[sy0:sy1, sx0:sx1]
        out[k] = _area(patch, size, size)
    return (out - 127.5) * 0.0078125


def _stage1(model, image: np.ndarray, scales: list[float], threshold: float) -> np.ndarray:
    """P-Net over the pyramid: candidate boxes [N, 9] (x0, y0, x1, y1, score, 4 offsets), refined, square."""
    import torch

    height, width = image.shape[:2]
    found = []
    for scale in scales:
        scaled = _area(image, int(height * scale + 1), int(width * scale + 1))
        x = torch.from_numpy((scaled - 127.5) * 0.0078125)[None]
        reg, prob = model.pnet(x)
        prob, reg = prob[0, 1].numpy(), reg[0].numpy()
        ys, xs = np.nonzero(prob >= threshold)
        if not len(ys):
            continue
        cells = np.stack([xs, ys], axis=1).astype(np.float32)
        q0 = np.floor((2 * cells + 1) / scale)
        q1 = np.floor((2 * cells + 12) / scale)
        boxes = np.concatenate([q0, q1, prob[ys, xs, None], reg[:, ys, xs].T], axis=1)
        found.append(boxes[nms(boxes[:, :4], boxes[:, 4], 0.5)])
    if not found:
        return np.zeros((0, 9), dtype=np.float32)
    boxes = np.concatenate(found)
    boxes = boxes[nms(boxes[:, :4], boxes[:, 4], 0.7)]
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    boxes[:, :4] = boxes[:, :4] + boxes[:, 5:9] * np.stack([w, h, w, h], axis=1)
    return _square(boxes[:, :5])


def _stage2(model, image: np.ndarray, boxes: np.ndarray, threshold: float) -> np.ndarray:
    """R-Net on 24x24 crops: kept boxes [N, 5], refined, square."""
    import torch

    reg, prob = model.rnet(torch.from_numpy(_crops(image, boxes, 24)))
    score = prob[:, 1].numpy()
    keep = score > threshold
    boxes = np.concatenate([boxes[keep, :4], score[keep, None]], axis=1)
    reg = reg.numpy()[keep]
    pick = nms(boxes[:, :4], boxes[:, 4], 0.7)
    return _square(_regress(boxes[pick], reg[pick]))


def _stage3(model, image: np.ndarray, boxes: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """O-Net on 48x48 crops: final boxes [N, 5] and landmarks [N, 5, 2]."""
    import torch

    reg, points, prob = model.onet(torch.from_numpy(_crops(image, boxes, 48)))
    score = prob[:, 1].numpy()
    keep = score > threshold
    boxes = np.concatenate([boxes[keep, :4], score[keep, None]], axis=1)
    reg, points = reg.numpy()[keep], points.numpy()[keep]
    w = (boxes[:, 2] - boxes[:, 0] + 1)[:, None]
    h = (boxes[:, 3] - boxes[:, 1] + 1)[:, None]
    marks = np.stack([w * points[:, :5] + boxes[:, :1] - 1, h * points[:, 5:] + boxes[:, 1:2] - 1], axis=2)
    boxes = _regress(boxes, reg)
    pick = nms(boxes[:, :4], boxes[:, 4], 0.7, method="min")
    return boxes[pick], marks[pick]


@register_detector
@dataclass
class MTCNNDetector(FaceDetector):
    """MTCNN face detector with five landmarks.

    Args:
        min_face: smallest face side searched, as a fraction of the image's shorter side
            (the pyramid starts at ``12 / min_face_px``: a larger value is faster).
        min_face_px: floor of that size in pixels (the original default is 20).
        max_side: images whose longer side exceeds this are shrunk to it first (None: never).
        thresholds: P-Net, R-Net and O-Net score thresholds.
        factor: scale step of the image pyramid.
        weights: a safetensors file (default: the shipped weights).
    """

    name = "mtcnn"
    min_face: float = 0.1
    min_face_px: int = 20
    max_side: int | None = 640
    thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7)
    factor: float = 0.709
    weights: str | None = field(default=None)

    def __post_init__(self) -> None:
        self.thresholds = tuple(float(t) for t in self.thresholds)
        if len(self.thresholds) != 3 or not all(0.0 <= t < 1.0 for t in self.thresholds):
            raise ConfigError(f"mtcnn detector: thresholds must be three numbers in [0, 1), got {self.thresholds}")
        if not 0.0 < self.factor < 1.0 or not 0.0 < self.min_face <= 1.0 or self.min_face_px < 12:
            raise ConfigError(f"mtcnn detector: bad settings {asdict(self)} "
                              "(0 < factor < 1, 0 < min_face <= 1, min_face_px >= 12)")
        if self.max_side is not None and self.max_side < 48:
            raise ConfigError(f"mtcnn detector: max_side must be >= 48 or None, got {self.max_side}")

    def config(self) -> dict[str, Any]:
        cfg = asdict(self)
        cfg["thresholds"] = list(self.thresholds)
        return {"name": self.name, **cfg}

    def scales(self, height: int, width: int) -> list[float]:
        """Pyramid scales for an image of this size (the first maps ``min_face`` to 12 pixels)."""
        min_size = max(float(self.min_face_px), self.min_face * min(height, width))
        scale, side, out = 12.0 / min_size, min(height, width) * 12.0 / min_size, []
        while side >= 12:
            out.append(scale)
            scale, side = scale * self.factor, side * self.factor
        return out

    def detect(self, image: np.ndarray) -> list[Face]:
        import cv2
        import torch

        image = check_image(image)
        shrink = 1.0
        if self.max_side is not None and max(image.shape[:2]) > self.max_side:
            shrink = self.max_side / max(image.shape[:2])
            size = (max(1, round(image.shape[1] * shrink)), max(1, round(image.shape[0] * shrink)))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        image = image.astype(np.float32)
        model = load_cascade(str(self.weights or WEIGHTS))
        with torch.inference_mode():
            boxes = _stage1(model, image, self.scales(*image.shape[:2]), self.thresholds[0])
            if len(boxes):
                boxes = _stage2(model, image, boxes, self.thresholds[1])
            if not len(boxes):
                return []
            boxes, marks = _stage3(model, image, boxes, self.thresholds[2])
        return largest_first([Face(b[:4] / shrink, float(b[4]), m / shrink) for b, m in zip(boxes, marks)])
