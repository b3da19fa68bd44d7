"""Face crops for the encoders: square, with margin, eyes levelled, resized, grey or RGB.

`crop_face` cuts a square around the face box; its side is ``(1 + margin)`` x the box's longer side.
With landmarks and ``align=True`` the image is first turned about the eye midpoint so that the eyes
lie on one row. Parts of the square outside the image are filled by ``border`` ("replicate": the
nearest edge pixel; "constant": black). The square is resized with ``cv2.INTER_AREA``.
`imagenet_normalize` turns RGB crops into the float input of ImageNet-trained encoders.
"""

from __future__ import annotations

import numpy as np

from emofuse.errors import ConfigError
from emofuse.faces.detectors import Face

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
BORDERS = ("replicate", "constant")


def _levelling(face: Face, align: bool) -> np.ndarray:
    """Affine [2, 3] turning the image about the eye midpoint so the eyes are level (identity without)."""
    if not align or face.landmarks is None:
        return np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    left, right = face.landmarks[0].astype(np.float64), face.landmarks[1].astype(np.float64)
    angle = np.arctan2(right[1] - left[1], right[0] - left[0])
    c, s = np.cos(angle), np.sin(angle)
    rot = np.array([[c, s], [-s, c]])  # turns the eye vector onto +x
    mid = (left + right) / 2
    return np.hstack([rot, (mid - rot @ mid)[:, None]])


def _square(face: Face, margin: float, levelling: np.ndarray) -> tuple[float, float, int]:
    """Top-left corner (in the levelled image) and integer side of the crop square."""
    side = max(1, int(round(max(face.width, face.height) * (1.0 + margin))))
    centre = levelling[:, :2] @ face.centre.astype(np.float64) + levelling[:, 2]
    return centre[0] - side / 2, centre[1] - side / 2, side


def crop_transform(face: Face, size: int, margin: float = 0.2, align: bool = True) -> np.ndarray:
    """Affine [2, 3] mapping image coordinates to coordinates in the crop `crop_face` returns
    (e.g. to find the landmarks in the crop)."""
    levelling = _levelling(face, align)
    x0, y0, side = _square(face, margin, levelling)
    shifted = levelling - np.array([[0, 0, x0], [0, 0, y0]])
    scale = size / side  # the resize keeps pixel centres: x_out + 0.5 = (x + 0.5) * scale
    return shifted * scale + np.array([[0, 0, 0.5 * scale - 0.5], [0, 0, 0.5 * scale - 0.5]])


def crop_face(image: np.ndarray, face: Face, size: int, grey: bool, margin: float = 0.2, align: bool = True,
              border: str = "replicate") -> np.ndarray:
    """The face of ``image`` (uint8 RGB [H, W, 3]) as uint8 [size, size] (grey) or [size, size, 3] (RGB).

    Args:
        face: the detection (box; landmarks for alignment).
        size: output side in pixels (48 / 64 grey, 224 RGB for the built-in encoders).
        grey: one grey channel (``cv2.COLOR_RGB2GRAY``) instead of RGB.
        margin: the square's side is ``(1 + margin)`` x the longer side of the box.
        align: level the eyes when the face has landmarks.
        border: fill outside the image, "replicate" or "constant" (black).
    """
    import cv2

    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ConfigError(f"crop_face takes a uint8 RGB image [H, W, 3], got {image.dtype} {image.shape}")
    if size < 1 or margin < 0 or border not in BORDERS:
        raise ConfigError(f"crop_face: need size >= 1, margin >= 0, border in {BORDERS}; "
                          f"got {size}, {margin}, {border!r}")
    levelling = _levelling(face, align)
    x0, y0, side = _square(face, margin, levelling)
    matrix = levelling - np.array([[0, 0, x0], [0, 0, y0]])
    mode = cv2.BORDER_REPLICATE if border == "replicate" else cv2.BORDER_CONSTANT
    crop = cv2.warpAffine(image, matrix, (side, side), flags=cv2.INTER_LINEAR, borderMode=mode, borderValue=0)
    if side != size:
        crop = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY) if grey else crop


def imagenet_normalize(crops: np.ndarray) -> np.ndarray:
    """uint8 RGB crops [N, S, S, 3] (or one [S, S, 3]) as float32 [N, 3, S, S]: x/255, minus the ImageNet
    mean, over its standard deviation, channels first."""
    crops = np.asarray(crops)
    if crops.ndim == 3:
        crops = crops[None]
    if crops.dtype != np.uint8 or crops.ndim != 4 or crops.shape[-1] != 3:
        raise ConfigError(f"imagenet_normalize takes uint8 RGB crops [N, S, S, 3], got {crops.dtype} {crops.shape}")
    x = (crops.astype(np.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))
