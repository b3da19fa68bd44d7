"""Keep one person's face across frames: the largest face first, then tracking.

Rule (`FaceTracker`):

1. Until a face is kept, each frame keeps its largest detection (frames with none get None).
2. After that, a frame keeps the detection overlapping the last kept box best (IoU >= ``min_iou``);
   failing that, the detection whose centre is nearest to the last kept centre, if it lies within
   ``max_shift`` x the last kept box's width and its size is within a factor ``max_scale``.
3. A frame with no such detection gets None: faces are never invented or interpolated.
4. After ``reacquire_after`` frames in a row without a kept face, rule 1 applies again (the largest
   detection is taken); ``reacquire_after=None`` never re-acquires.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from emofuse.errors import ConfigError
from emofuse.faces.detectors import Face, FaceDetector, largest_first


def box_iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of ``box`` [4] with each of ``boxes`` [N, 4] (x0, y0, x1, y1)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    w = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    h = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    inter = w * h
    area = lambda b: np.clip(b[..., 2] - b[..., 0], 0, None) * np.clip(b[..., 3] - b[..., 1], 0, None)
    union = area(np.asarray(box, dtype=np.float64)) + area(boxes) - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


@dataclass
class FaceTracker:
    """Frame-by-frame tracker of one face (see the module docstring for the rule)."""

    min_iou: float = 0.3
    max_shift: float = 0.75
    max_scale: float = 2.0
    reacquire_after: int | None = 3
    last: Face | None = field(default=None, init=False)
    missed: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if not 0.0 < self.min_iou <= 1.0 or self.max_shift < 0 or self.max_scale < 1.0:
            raise ConfigError(f"face tracker: need 0 < min_iou <= 1, max_shift >= 0, max_scale >= 1; got "
                              f"{self.min_iou}, {self.max_shift}, {self.max_scale}")
        if self.reacquire_after is not None and self.reacquire_after < 1:
            raise ConfigError(f"face tracker: reacquire_after must be >= 1 or None, got {self.reacquire_after}")

    def update(self, faces: Sequence[Face]) -> Face | None:
        """The face kept in the next frame, given its detections (None: no face kept)."""
        lost = self.reacquire_after is not None and self.missed >= self.reacquire_after
        if self.last is None or lost:
            kept = largest_first(list(faces))[0] if faces else None
        else:
            kept = self._match(self.last, faces)
        if kept is None:
            self.missed += 1
        else:
            self.last, self.missed = kept, 0
        return kept

    def _match(self, last: Face, faces: Sequence[Face]) -> Face | None:
        if not faces:
            return None
        ious = box_iou(last.box, np.stack([f.box for f in faces]))
        best = int(np.argmax(ious))
        if ious[best] >= self.min_iou:
            return faces[best]
        size = max(last.width, 1e-6)
        near = [(float(np.linalg.norm(f.centre - last.centre)), i) for i, f in enumerate(faces)
                if 1 / self.max_scale <= max(f.width, 1e-6) / size <= self.max_scale]
        if not near:
            return None
        dist, i = min(near)
        return faces[i] if dist <= self.max_shift * size else None


def track_detections(detections: Iterable[Sequence[Face]], tracker: FaceTracker | None = None) -> list[Face | None]:
    """The kept face of each frame, given each frame's detections."""
    tracker = tracker or FaceTracker()
    return [tracker.update(list(faces)) for faces in detections]


def track_faces(images: Sequence[np.ndarray], detector: FaceDetector, **tracker_cfg) -> list[Face | None]:
    """Detect faces in each image and keep one person's face per frame (None where there is none).

    Args:
        images: uint8 RGB frames [H, W, 3], in time order.
        detector: a `FaceDetector` (e.g. ``get_detector("haar")``).
        tracker_cfg: `FaceTracker` settings (``min_iou``, ``max_shift``, ``max_scale``, ``reacquire_after``).
    """
    return track_detections((detector.detect(image) for image in images), FaceTracker(**tracker_cfg))
