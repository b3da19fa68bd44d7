"""From a video file to a face sequence: sampled frames -> one tracked face -> crops -> encoder outputs.

    from emofuse.faces.pipeline import analyse_video
    faces = analyse_video("clip.mp4", sampler="2fps_8", detector="haar", encoder="fer_cnn")
    faces.embeddings        # float32 [T, D]: NaN rows where no face was found
    faces.mask, faces.face_share

The frames a `FrameSampler` picks are decoded one at a time (`emofuse.media.video.iter_frames`: a long
file is streamed, never held whole), a couple of frames ahead on a helper thread (`PREFETCH_FRAMES`:
FFmpeg decodes without Python's lock, so decoding overlaps the search); each is searched for faces,
one person is kept across frames (`emofuse.faces.track.FaceTracker`, the rule `track_faces` applies),
the kept face is cropped at the encoder's input size and colour (`emofuse.faces.crops.crop_face`, with
margin and eye alignment), and the crops are encoded together. A frame without a kept face is never
invented: its mask is False, its box, embedding and logits are NaN rows and its crop is zeros. The NaN
rows are what the feature cache stores (`emofuse.features.face_frames`) and what
`emofuse.training.data.collate` masks.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from emofuse.errors import ConfigError, DataError
from emofuse.faces.prefetch import prefetched

#: what `FaceSequence.features` returns: the embeddings, the expression logits, or both side by side
OUTPUTS = ("embedding", "logits", "both")
#: frames decoded ahead on a helper thread while the detector searches the current one (0: no thread)
PREFETCH_FRAMES = 2


@dataclass
class FaceSequence:
    """One clip's faces, one entry per sampled frame (``T`` frames).

    Attributes:
        times: float64 [T]: presentation time of each sampled frame, seconds.
        mask: bool [T]: True where a face was kept.
        boxes: float32 [T, 4]: ``x0, y0, x1, y1`` of the kept face in the frame (NaN rows where none).
        crops: uint8 [T, S, S] (grey encoders) or [T, S, S, 3]: the encoder's input (zeros where none).
        embeddings: float32 [T, D]: the encoder's embeddings (NaN rows where none).
        logits: float32 [T, C] expression logits (NaN rows where none), None for an encoder without a head.
        classes: names of the logits (the encoder's ``classes``), None without a head.
        frame_indices: int64 [T]: index of each sampled frame in the video track.
    """

    times: np.ndarray
    mask: np.ndarray
    boxes: np.ndarray
    crops: np.ndarray
    embeddings: np.ndarray
    logits: np.ndarray | None
    classes: tuple[str, ...] | None
    frame_indices: np.ndarray | None = None

    @property
    def face_share(self) -> float:
        """Share of the sampled frames in which a face was kept (0.0 for no frames)."""
        return float(self.mask.mean()) if self.mask.size else 0.0

    def __len__(self) -> int:
        return int(self.mask.size)

    def features(self, output: str = "embedding") -> np.ndarray:
        """Per-frame features float32 ``[T, D]`` with NaN rows where no face was kept: the embeddings,
        the logits, or both concatenated (``output``, one of `OUTPUTS`)."""
        if output not in OUTPUTS:
            raise ConfigError(f"face sequence output must be one of {', '.join(OUTPUTS)}, got {output!r}")
        if output != "embedding" and self.logits is None:
            raise ConfigError(f"output {output!r} needs expression logits, but the face encoder has no head")
        parts = {"embedding": [self.embeddings], "logits": [self.logits], "both": [self.embeddings, self.logits]}
        return np.ascontiguousarray(np.concatenate(parts[output], axis=1), dtype=np.float32)


def _parts(sampler: Any, detector: Any, encoder: Any) -> tuple[Any, Any, Any]:
    """The sampler, detector and encoder objects from names, dicts or objects."""
    from emofuse.faces.detectors import FaceDetector, get_detector
    from emofuse.faces.encoders import get_face_encoder
    from emofuse.faces.encoders.base import FaceEncoder
    from emofuse.media.sampling import get_sampler

    sampler = get_sampler(sampler)
    if not isinstance(detector, FaceDetector):
        detector = get_detector(dict(detector) if isinstance(detector, Mapping) else detector)
    if not isinstance(encoder, FaceEncoder):
        encoder = get_face_encoder(dict(encoder) if isinstance(encoder, Mapping) else encoder)
    return sampler, detector, encoder


def analyse_video(path: str | Path, sampler: Any = "2fps_8", detector: Any = "haar", encoder: Any = "fer_cnn", *,
                  margin: float = 0.2, align: bool = True) -> FaceSequence:
    """The `FaceSequence` of ``path`` (see the module docstring).

    Args:
        sampler: a `FrameSampler`, its name (``"2fps_8"``, ``"15_over_3.6s"``, ``"all"``) or a dict.
        detector: a `FaceDetector` or a name / config dict for `get_detector`.
        encoder: a `FaceEncoder` or a name / config dict for `get_face_encoder`.
        margin, align: crop settings (`emofuse.faces.crops.crop_face`).

    Raises:
        DataError: naming the file, when it cannot be decoded (`emofuse.media.video`) or when the
            sampler finds no frame in it.
    """
    from emofuse.faces.crops import crop_face
    from emofuse.faces.track import FaceTracker
    from emofuse.media.video import iter_frames

    path = Path(path)
    sampler, detector, encoder = _parts(sampler, detector, encoder)
    size, grey = int(encoder.input_size), bool(encoder.grey)
    tracker = FaceTracker()
    times, indices, boxes, found = [], [], [], []
    blank = np.zeros((size, size) if grey else (size, size, 3), dtype=np.uint8)
    crops: list[np.ndarray] = []
    frames = iter_frames(path, sampler)  # a bad file raises here
    for frame in prefetched(frames, PREFETCH_FRAMES):  # a few frames in memory at a time
        face = tracker.update(detector.detect(frame.image))
        times.append(frame.time_s)
        indices.append(frame.index)
        boxes.append(np.full(4, np.nan, np.float32) if face is None else face.box)
        found.append(face is not None)
        crops.append(blank if face is None else crop_face(frame.image, face, size, grey, margin=margin, align=align))
    if not times:
        raise DataError(path, f"no video frame found for the frame sampler {sampler.name}")
    mask = np.array(found, dtype=bool)
    crop_array = np.stack(crops)
    embeddings, logits = _encode(encoder, crop_array, mask)
    return FaceSequence(times=np.asarray(times, dtype=np.float64), mask=mask, boxes=np.stack(boxes).astype(np.float32),
                        crops=crop_array, embeddings=embeddings, logits=logits,
                        classes=None if encoder.classes is None else tuple(encoder.classes),
                        frame_indices=np.asarray(indices, dtype=np.int64))


def _encode(encoder: Any, crops: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """The encoder's outputs on the crops of the frames with a face, NaN rows elsewhere."""
    t = len(mask)
    embeddings = np.full((t, int(encoder.embed_dim)), np.nan, dtype=np.float32)
    logits = None if encoder.classes is None else np.full((t, len(encoder.classes)), np.nan, dtype=np.float32)
    if mask.any():
        emb, logit = encoder.encode(crops[mask])
        emb = np.asarray(emb, dtype=np.float32)
        if emb.shape != (int(mask.sum()), embeddings.shape[1]):
            raise ConfigError(f"face encoder {encoder.name!r} returned embeddings {emb.shape} for "
                              f"{int(mask.sum())} faces; its embed_dim is {embeddings.shape[1]}")
        embeddings[mask] = emb
        if logits is not None:
            if logit is None:
                raise ConfigError(f"face encoder {encoder.name!r} declares classes but returned no logits")
            logits[mask] = np.asarray(logit, dtype=np.float32)
    return embeddings, logits
