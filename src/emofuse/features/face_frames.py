"""``face_frames``: face sequences from a video file, as a feature of the ``face`` modality.

One ``[T, D]`` array per clip: for each frame the sampler picks, the face encoder's embedding (or
expression logits, or both) of the one tracked face (`emofuse.faces.pipeline.analyse_video`), and a
whole NaN row where no face was kept. Those rows reach models as masked frames
(`emofuse.inputs.missing`); a clip without any face has the face modality absent.

It reads the ``video`` source (``sample.sources["video"]``, e.g. a manifest's ``video`` column), so
the extraction driver caches it per clip (content hash) x configuration (sampler, detector,
encoder with its weights fingerprint, output, margin), resumes an interrupted run and splits the
work with ``--shard K/N`` like every other feature::

    features:
      audio: [whisper]
      face: [face_frames]          # or {face_frames: {sampler: 15_over_3.6s, encoder: mini_xception}}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from emofuse.errors import ConfigError
from emofuse.features.base import FeatureExtractor, register

OUTPUTS = ("embedding", "logits", "both")


@register
@dataclass
class FaceFrames(FeatureExtractor):
    """Per-frame face features of a video (see the module docstring).

    Fields:
        sampler: frame sampler name (``"2fps_8"``, ``"15_over_3.6s"``, ``"all"``, ``"4fps_16"``, ...)
            or a dict of `FrameSampler` fields.
        detector: face detector name (``"haar"``, ``"mtcnn"``) or a config dict ``{"name": ..., ...}``.
        encoder: face encoder name (``"fer_cnn"``, ``"mini_xception"``, ...) or a config dict.
        output: ``"embedding"``, ``"logits"`` (expression logits) or ``"both"`` (concatenated).
        margin: crop margin around the face box (`emofuse.faces.crops.crop_face`).
    """

    name = "face_frames"
    source = "video"
    modality = "face"
    produces = "sequence"
    missing_rows = True  # frames without a face are whole NaN rows

    sampler: str | dict = "2fps_8"
    detector: str | dict = "haar"
    encoder: str | dict = "fer_cnn"
    output: str = "embedding"
    margin: float = 0.2
    _parts: Any = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.output not in OUTPUTS:
            raise ConfigError(f"face_frames: output must be one of {', '.join(OUTPUTS)}, got {self.output!r}")
        if isinstance(self.margin, bool) or not isinstance(self.margin, (int, float)) or self.margin < 0:
            raise ConfigError(f"face_frames: margin must be a number >= 0, got {self.margin!r}")
        self.margin = float(self.margin)
        from emofuse.media.sampling import get_sampler

        self._sampler = get_sampler(self.sampler)  # a bad sampler fails here, before any decoding

    def parts(self) -> tuple[Any, Any, Any]:
        """The sampler, detector and encoder, built on first use (the encoder loads its weights)."""
        if self._parts is None:
            from emofuse.faces.pipeline import _parts

            self._parts = _parts(self._sampler, self.detector, self.encoder)
        return self._parts

    @property
    def frame_rate(self) -> float | None:  # type: ignore[override]
        """Frames per second of the sequence: the sampler's rate (None for count and all samplers)."""
        return self._sampler.rate if self._sampler.mode == "rate" else None

    @property
    def dim(self) -> int:
        encoder = self.parts()[2]
        n_classes = 0 if encoder.classes is None else len(encoder.classes)
        if self.output != "embedding" and not n_classes:
            raise ConfigError(f"face_frames: output {self.output!r} needs expression logits, but face encoder "
                              f"{encoder.name!r} has no head; use output: embedding")
        return {"embedding": int(encoder.embed_dim), "logits": n_classes,
                "both": int(encoder.embed_dim) + n_classes}[self.output]

    def identity(self) -> dict[str, Any]:
        """The resolved sampler, the detector's settings and the encoder's weights fingerprint: a
        retrained or replaced weights file gives new cache entries."""
        sampler, detector, encoder = self.parts()
        return {"sampler": sampler.to_dict(), "detector": detector.config(), "encoder": encoder.identity()}

    def process(self, inputs: list[Path]) -> list[np.ndarray]:
        """``[T, D]`` per video file (NaN rows where no face was kept)."""
        from emofuse.faces.pipeline import analyse_video

        self.dim  # noqa: B018  (an output the encoder cannot give fails before decoding)
        sampler, detector, encoder = self.parts()
        return [analyse_video(path, sampler, detector, encoder, margin=self.margin).features(self.output)
                for path in inputs]
