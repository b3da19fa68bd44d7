"""Face detectors: the `Face` record, the `FaceDetector` base class and the detector registry.

A detector takes one uint8 RGB image [H, W, 3] and returns every face it finds, largest first.
Built-in detectors register themselves when their module is imported; `get_detector` and
`list_detectors` import them on first use, so importing this module stays cheap (no torch, no cv2).

========  ==========================================================  ===========================
name      what                                                        landmarks
========  ==========================================================  ===========================
haar      OpenCV's frontal-face Haar cascade (``cv2.data``)            eye cascade + geometry, or
                                                                      None (``landmarks=False``)
mtcnn     MTCNN P-Net/R-Net/O-Net (Zhang et al. 2016), PyTorch port    5 points, always
========  ==========================================================  ===========================
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from emofuse.errors import ConfigError
from emofuse.registry import Registry

#: Order of the five landmarks (image left/right, not the person's).
LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")

_BUILTIN_MODULES = ("emofuse.faces.haar", "emofuse.faces.mtcnn")


@dataclass
class Face:
    """One detected face.

    Attributes:
        box: float32 [4] ``x0, y0, x1, y1`` in pixels of the image passed to ``detect``.
        score: detection confidence (detector-specific scale; higher is surer).
        landmarks: float32 [5, 2] ``(x, y)`` of `LANDMARK_NAMES`, or None.
    """

    box: np.ndarray
    score: float
    landmarks: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.box = np.asarray(self.box, dtype=np.float32).reshape(4)
        self.score = float(self.score)
        if self.landmarks is not None:
            self.landmarks = np.asarray(self.landmarks, dtype=np.float32).reshape(5, 2)

    @property
    def width(self) -> float:
        return float(self.box[2] - self.box[0])

    @property
    def height(self) -> float:
        return float(self.box[3] - self.box[1])

    @property
    def area(self) -> float:
        return max(self.width, 0.0) * max(self.height, 0.0)

    @property
    def centre(self) -> np.ndarray:
        return np.array([(self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2], dtype=np.float32)


class FaceDetector:
    """Base class: subclass, set ``name``, implement `detect` (and `config` for extra fields)."""

    name: ClassVar[str] = ""

    def detect(self, image: np.ndarray) -> list[Face]:
        """Faces in ``image`` (uint8 RGB [H, W, 3]), largest first; [] when there is none."""
        raise NotImplementedError

    def config(self) -> dict[str, Any]:
        """The settings that change the result (with ``name``), for cache keys and reports."""
        return {"name": self.name}


def check_image(image: np.ndarray) -> np.ndarray:
    """``image`` as a contiguous uint8 RGB array [H, W, 3] (`ConfigError` for other shapes/types)."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ConfigError(f"a face detector takes a uint8 RGB image [H, W, 3], got {image.dtype} {image.shape}")
    return np.ascontiguousarray(image)


def largest_first(faces: list[Face]) -> list[Face]:
    """``faces`` sorted by box area, largest first (ties: higher score first)."""
    return sorted(faces, key=lambda f: (-f.area, -f.score))


def nms(boxes: np.ndarray, scores: np.ndarray, threshold: float, method: str = "union") -> np.ndarray:
    """Indices kept by greedy non-maximum suppression, best score first.

    ``union``: overlap = intersection / union of areas ``(x1-x0)*(y1-y0)``; ``min``: intersection /
    the smaller area, with the ``+1`` pixel convention of the original MTCNN. A box is dropped when
    its overlap with a kept box exceeds ``threshold``.
    """
    if len(boxes) == 0:
        return np.zeros(0, dtype=np.int64)
    plus = 1.0 if method == "min" else 0.0
    x0, y0, x1, y1 = (boxes[:, i].astype(np.float64) for i in range(4))
    area = (x1 - x0 + plus) * (y1 - y0 + plus)
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(i)
        w = np.maximum(0.0, np.minimum(x1[i], x1[rest]) - np.maximum(x0[i], x0[rest]) + plus)
        h = np.maximum(0.0, np.minimum(y1[i], y1[rest]) - np.maximum(y0[i], y0[rest]) + plus)
        inter = w * h
        denom = np.minimum(area[i], area[rest]) if method == "min" else area[i] + area[rest] - inter
        overlap = inter / np.maximum(denom, 1e-12)
        order = rest[overlap <= threshold]
    return np.asarray(keep, dtype=np.int64)


_DETECTORS: Registry[type[FaceDetector]] = Registry("face detector", "unknown face detector", "choose one of")


def register_detector(cls: type[FaceDetector]) -> type[FaceDetector]:
    """Class decorator: register a `FaceDetector` subclass under its ``name``."""
    if not (isinstance(cls, type) and issubclass(cls, FaceDetector)):
        raise TypeError(f"register_detector takes a FaceDetector subclass, got {cls!r}")
    _DETECTORS.add(cls.name, cls)
    return cls


def _load_builtins() -> None:
    for module in _BUILTIN_MODULES:
        importlib.import_module(module)


def get_detector(name: str | dict[str, Any], **cfg: Any) -> FaceDetector:
    """A detector by name with its settings (``cfg``), or from a config dict ``{"name": ..., **cfg}``.

    Raises:
        ConfigError: unknown name (listing the known ones) or an unknown setting.
    """
    _load_builtins()
    return _DETECTORS.build(name, **cfg)


def list_detectors() -> list[str]:
    """Names of the registered detectors (built-ins first)."""
    _load_builtins()
    return _DETECTORS.names()
