"""Running a trained checkpoint on media files: features → model → probabilities + explanations."""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch

from emofuse.checkpoint import LoadedCheckpoint, load_checkpoint
from emofuse.errors import DataError
from emofuse.featuresets import pool_vector
from emofuse.normalize import apply_standardizer, stats_from_tensors


@dataclass
class Prediction:
    """The model's answer for one file."""

    path: str
    label: str
    probabilities: dict[str, float]
    modalities_used: list[str]
    explanations: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "label": self.label, "probabilities": self.probabilities,
                "modalities_used": self.modalities_used, "explanations": self.explanations}


def demo_checkpoint_dir() -> Path:
    """The small model trained by this project that ships with the package."""
    return Path(str(resources.files("emofuse") / "assets" / "demo_model"))


def sample_clips() -> list[Path]:
    """The sample clips shipped with the package (see their ATTRIBUTION.md)."""
    folder = Path(str(resources.files("emofuse") / "assets" / "samples"))
    return sorted(p for p in folder.iterdir() if p.suffix in (".flac", ".wav"))


def feature_spec(names: list[str], configs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """How one modality's features are recorded in a checkpoint."""
    return {"names": list(names), "configs": {n: configs.get(n, {}) for n in names}}


class Predictor:
    """Loads a checkpoint once and predicts for many files (audio; video files give their audio)."""

    def __init__(self, checkpoint: str | Path | LoadedCheckpoint | None = None) -> None:
        self.ckpt = checkpoint if isinstance(checkpoint, LoadedCheckpoint) else load_checkpoint(checkpoint or demo_checkpoint_dir())
        self.stats = stats_from_tensors(self.ckpt.extras)
        self._extractors: dict[str, Any] = {}

    @property
    def labels(self) -> list[str]:
        return self.ckpt.labels

    def _extractor(self, name: str, cfg: dict[str, Any]):
        from emofuse.features import get_extractor

        if name not in self._extractors:
            self._extractors[name] = get_extractor(name, **cfg)
        return self._extractors[name]

    def _audio_features(self, path: Path, spec: dict[str, Any]) -> np.ndarray:
        from emofuse.audio import load_audio

        wave = load_audio(path)
        arrays = [self._extractor(n, spec["configs"].get(n, {}))(wave, 16000) for n in spec["names"]]
        if len(arrays) == 1 and not spec.get("pooled"):
            return arrays[0].astype(np.float32)
        return np.concatenate([pool_vector(a) for a in arrays])[None, :]

    def prepare_inputs(self, path: str | Path, face: np.ndarray | None = None) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Model inputs and masks (batch of one) for a file. Modalities that cannot come from the
        file (e.g. action units) are taken from the arguments or marked absent, which every
        emofuse model accepts."""
        path = Path(path)
        if not path.exists():
            raise DataError(path, "file not found")
        model = self.ckpt.model
        feats: dict[str, list[np.ndarray | None]] = {}
        for modality, spec in self.ckpt.features.items():
            if modality == "audio":
                feats[modality] = [self._audio_features(path, spec)]
            elif modality == "face" and face is not None:
                feats[modality] = [np.asarray(face, dtype=np.float32).reshape(1, -1)]
            else:
                feats[modality] = [None]
        feats = apply_standardizer(feats, self.stats)
        inputs, masks = {}, {}
        for modality, dim in model.input_dims.items():
            arr = feats.get(modality, [None])[0]
            if arr is None:
                inputs[modality] = torch.zeros(1, 1, dim)
                masks[modality] = torch.zeros(1, 1, dtype=torch.bool)
            else:
                if arr.shape[-1] != dim:
                    raise DataError(path, f"{modality} features have dimension {arr.shape[-1]}, the model expects {dim}")
                inputs[modality] = torch.from_numpy(arr).unsqueeze(0)
                masks[modality] = torch.ones(1, arr.shape[0], dtype=torch.bool)
        if not any(bool(m.any()) for m in masks.values()):
            raise DataError(path, f"none of the model's modalities ({', '.join(model.input_dims)}) can be computed from this file")
        return inputs, masks

    def predict_file(self, path: str | Path, face: np.ndarray | None = None) -> Prediction:
        """Predict one file (see `prepare_inputs` for modalities the file cannot provide)."""
        model = self.ckpt.model
        inputs, masks = self.prepare_inputs(path, face)
        with torch.no_grad():
            out = model(inputs, masks)
        probs = torch.softmax(out.logits.float(), dim=-1)[0].numpy()
        explanations = {k: v[0].tolist() for k, v in out.explanations.items() if k == "modality_weights"}
        return Prediction(path=str(path), label=self.labels[int(probs.argmax())],
                          probabilities={lab: float(p) for lab, p in zip(self.labels, probs)},
                          modalities_used=[m for m in model.input_dims if bool(masks[m].any())],
                          explanations=explanations)
