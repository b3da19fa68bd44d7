"""The "haar" face detector: OpenCV's frontal-face Haar cascade (the XML files in ``cv2.data``).

Faces come largest first, scored by the number of merged neighbour windows; of two overlapping
detections (half of the smaller inside the other) only the better supported one is kept. With
``landmarks=True`` (default) an eye cascade searches the upper part of each face box; when it finds
one eye in each half, the two eye centres are kept and the nose and mouth corners are placed by a
fixed mean-face template relative to the eyes (estimates, not measurements), giving the five
landmarks of `emofuse.faces.detectors.Face`. Otherwise ``landmarks`` is None.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from emofuse.errors import ConfigError, DataError
from emofuse.faces.detectors import Face, FaceDetector, check_image, largest_first, nms, register_detector

#: Mean-face positions relative to the eye midpoint, in units of the eye distance, x along the
#: eye line (towards the image-right eye) and y perpendicular to it (down): nose, mouth left,
#: mouth right (from the 5-point reference face widely used for face alignment, 112x112).
_TEMPLATE = np.array([[0.004, 0.571], [-0.407, 1.157], [0.42, 1.152]], dtype=np.float32)


@lru_cache(maxsize=None)
def _cascade(file_name: str):
    import cv2

    path = Path(cv2.data.haarcascades) / file_name
    cascade = cv2.CascadeClassifier(str(path))
    if cascade.empty():
        raise DataError(path, "cannot load the OpenCV Haar cascade (is opencv-python-headless<5 installed?)")
    return cascade


def landmarks_from_eyes(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Five landmarks [5, 2]: the two eye centres given, nose and mouth corners from `_TEMPLATE`."""
    left, right = np.asarray(left, np.float32), np.asarray(right, np.float32)
    ex = right - left
    ey = np.array([-ex[1], ex[0]], dtype=np.float32)  # ex turned 90 degrees towards image-down
    mid = (left + right) / 2
    rest = mid + _TEMPLATE[:, :1] * ex + _TEMPLATE[:, 1:] * ey
    return np.vstack([left, right, rest]).astype(np.float32)


@register_detector
@dataclass
class HaarDetector(FaceDetector):
    """OpenCV Haar cascade face detector.

    Args:
        cascade: cascade file in ``cv2.data.haarcascades``.
        scale_factor, min_neighbors: ``detectMultiScale`` settings.
        min_face: smallest face side, as a fraction of the image's shorter side.
        max_side: images whose longer side exceeds this are shrunk to it first (None: never).
        pad: a black border of ``pad`` x the longer side is added around the image first, so that a
            face filling the frame (a face-crop video) is still found (boxes may then reach outside it).
        landmarks: estimate the five landmarks from an eye cascade (None when both eyes are not found).
    """

    name = "haar"
    cascade: str = "haarcascade_frontalface_default.xml"
    scale_factor: float = 1.1
    min_neighbors: int = 5
    min_face: float = 0.1
    max_side: int | None = 640
    pad: float = 0.15
    landmarks: bool = True

    def __post_init__(self) -> None:
        if (not 1.0 < self.scale_factor < 2.0 or self.min_neighbors < 0 or not 0.0 < self.min_face <= 1.0
                or not 0.0 <= self.pad <= 1.0):
            raise ConfigError(f"haar detector: bad settings {asdict(self)}")
        if self.max_side is not None and self.max_side < 32:
            raise ConfigError(f"haar detector: max_side must be >= 32 or None, got {self.max_side}")

    def config(self) -> dict[str, Any]:
        return {"name": self.name, **asdict(self)}

    def detect(self, image: np.ndarray) -> list[Face]:
        import cv2

        image = check_image(image)
        grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        scale = 1.0
        if self.max_side is not None and max(grey.shape) > self.max_side:
            scale = self.max_side / max(grey.shape)
            size = (max(1, round(grey.shape[1] * scale)), max(1, round(grey.shape[0] * scale)))
            grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
        grey = cv2.equalizeHist(grey)
        side = max(12, int(self.min_face * min(grey.shape)))
        pad = int(round(self.pad * max(grey.shape)))
        if pad:
            grey = cv2.copyMakeBorder(grey, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
        rects, neighbours = _cascade(self.cascade).detectMultiScale2(
            grey, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors, minSize=(side, side))
        rects, neighbours = np.asarray(rects).reshape(-1, 4), np.asarray(neighbours, dtype=np.float64).reshape(-1)
        # one head, one face: of overlapping windows (half of the smaller inside the other) keep the best supported
        keep = nms(np.hstack([rects[:, :2], rects[:, :2] + rects[:, 2:]]), neighbours, 0.5, method="min")
        faces = []
        for (x, y, w, h), n in zip(rects[keep], neighbours[keep]):
            points = self._eyes(grey, int(x), int(y), int(w), int(h)) if self.landmarks else None
            box = (np.array([x, y, x + w, y + h], dtype=np.float32) - pad) / scale
            faces.append(Face(box, float(n), None if points is None else (points - pad) / scale))
        return largest_first(faces)

    def _eyes(self, grey: np.ndarray, x: int, y: int, w: int, h: int) -> np.ndarray | None:
        """Five landmarks from one eye in each half of the face's upper part, else None."""
        top = grey[y + int(0.15 * h): y + int(0.6 * h), x: x + w]
        side = max(8, w // 8)
        eyes = _cascade("haarcascade_eye.xml").detectMultiScale(
            top, scaleFactor=1.1, minNeighbors=3, minSize=(side, side), maxSize=(w // 2, w // 2))
        left, right = [], []
        for ex, ey, ew, eh in np.asarray(eyes).reshape(-1, 4):
            centre = np.array([x + ex + ew / 2, y + int(0.15 * h) + ey + eh / 2], dtype=np.float32)
            (left if centre[0] < x + w / 2 else right).append((ew * eh, centre))
        if not left or not right:
            return None
        le = max(left, key=lambda t: t[0])[1]
        re = max(right, key=lambda t: t[0])[1]
        dx, dy = re - le
        if not 0.2 * w <= dx <= 0.7 * w or abs(dy) > 0.6 * dx:
            return None
        return landmarks_from_eyes(le, re)
