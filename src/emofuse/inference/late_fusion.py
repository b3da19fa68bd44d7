"""Reliability-weighted late fusion of an audio model and a face-expression encoder.

No corpus here pairs multi-speaker video with emotion labels, so the shipped audio-visual model is
not trained end to end: each modality's classifier gives class probabilities and they are mixed
with weights that follow each modality's *reliability*, after the adaptive weighting with
missing-modality masks of OF-CMAER-CAT (Sharma et al. 2026, Eq. 8-10: reliability scores, weights
normalised over the modalities that are present). Here the reliability of modality ``m`` is

    r_m = a_m · c_m,    c_m = 1 − H(p_m) / log K_m,    w_m = r_m / Σ_j r_j,

with ``a_m`` its availability (audio: 1 when the clip has speech; face: the share of sampled frames
with a face) and ``c_m`` its confidence (one minus the normalised entropy of its calibrated
probabilities). The fused probabilities are ``Σ_m w_m p_m`` on the audio model's classes. There is
no free fusion parameter; the only fitted values are each modality's temperature (`fit_temperature`),
chosen on that modality's validation data only.

Class sets differ (FER2013 has no "calm"); `FACE_TO_AUDIO` maps each face class to the audio classes
it can stand for. A face class with several targets (``neutral`` → neutral or calm: a calm face looks
neutral) shares its probability among them in proportion to the audio model's probabilities of those
targets; a face class with no target among the audio classes gives its probability to none (the
face's distribution is renormalised over what remains).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

#: Which audio classes each face-expression class can stand for.
FACE_TO_AUDIO: dict[str, tuple[str, ...]] = {
    "angry": ("angry",), "disgust": ("disgust",), "fearful": ("fearful",), "happy": ("happy",),
    "sad": ("sad",), "surprised": ("surprised",), "neutral": ("neutral", "calm"),
}


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Softmax over the last axis of ``logits / temperature``."""
    z = np.asarray(logits, dtype=np.float64) / float(temperature)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def confidence(probs: np.ndarray) -> float:
    """``1 − H(p) / log K``: 1 for a one-hot distribution, 0 for a uniform one."""
    p = np.clip(np.asarray(probs, dtype=np.float64), 1e-12, 1.0)
    return float(1.0 - (-(p * np.log(p)).sum()) / np.log(len(p)))


def map_face_to_audio(face_probs: np.ndarray, face_classes: Sequence[str], audio_labels: Sequence[str],
                      audio_probs: np.ndarray, mapping: Mapping[str, Sequence[str]] = FACE_TO_AUDIO) -> np.ndarray:
    """The face's distribution on the audio classes (see the module docstring); sums to 1, or is all
    zeros when no face class maps to an audio class."""
    index = {label: i for i, label in enumerate(audio_labels)}
    audio_probs = np.asarray(audio_probs, dtype=np.float64)
    out = np.zeros(len(audio_labels))
    for p, face_class in zip(np.asarray(face_probs, dtype=np.float64), face_classes):
        targets = [index[t] for t in mapping.get(face_class, (face_class,)) if t in index]
        if not targets:
            continue
        share = audio_probs[targets] + 1e-6
        out[targets] += p * share / share.sum()
    total = out.sum()
    return out / total if total > 0 else out


def reliability_weights(confidences: Mapping[str, float], availability: Mapping[str, float]) -> dict[str, float]:
    """``w_m = a_m c_m / Σ_j a_j c_j`` over the modalities; when every product is 0 (all fully unsure),
    the available modalities share equally; when none is available, all weights are 0."""
    names = list(confidences)
    r = np.array([max(float(availability.get(m, 0.0)), 0.0) * max(float(confidences[m]), 0.0) for m in names])
    if r.sum() <= 0:
        r = np.array([1.0 if availability.get(m, 0.0) > 0 else 0.0 for m in names])
    total = r.sum()
    return {m: float(v / total) if total > 0 else 0.0 for m, v in zip(names, r)}


def fuse(probs: Mapping[str, np.ndarray], weights: Mapping[str, float]) -> np.ndarray:
    """``Σ_m w_m p_m`` (all ``p_m`` on the same classes), renormalised."""
    mixed = sum(float(weights[m]) * np.asarray(p, dtype=np.float64) for m, p in probs.items())
    return mixed / mixed.sum()


def fit_temperature(logits: np.ndarray, labels: np.ndarray, grid: np.ndarray | None = None) -> float:
    """The temperature minimising the negative log-likelihood of ``labels`` under ``softmax(logits / T)``
    (Guo et al. 2017, temperature scaling), searched on a log grid from 0.25 to 8 then refined.
    Kept here for its callers; the implementation is `emofuse.evaluation.calibration.fit_temperature`."""
    from emofuse.evaluation.calibration import fit_temperature as _fit

    return _fit(logits, labels, grid, kind="logits")


def late_fusion(audio: np.ndarray | None, face: np.ndarray | None, face_share: float, labels: Sequence[str],
                face_classes: Sequence[str], mapping: Mapping[str, Sequence[str]] = FACE_TO_AUDIO
                ) -> tuple[np.ndarray, dict[str, float], dict[str, np.ndarray]]:
    """The whole rule for one clip: ``audio`` (calibrated probabilities on ``labels``, None: no speech) and
    ``face`` (the clip's calibrated face probabilities on ``face_classes``, None: no face) →
    ``(fused probabilities on labels, weights per modality, each modality's probabilities on labels)``.
    Confidences are measured on each modality's own classes. Raises `ValueError` when both are absent."""
    probs: dict[str, np.ndarray] = {}
    confidences: dict[str, float] = {}
    availability: dict[str, float] = {}
    if audio is not None:
        probs["audio"], confidences["audio"], availability["audio"] = np.asarray(audio, float), confidence(audio), 1.0
    if face is not None:
        prior = probs.get("audio", np.full(len(labels), 1.0 / len(labels)))
        mapped = map_face_to_audio(face, face_classes, labels, prior, mapping)
        if mapped.sum() > 0:
            probs["face"], confidences["face"], availability["face"] = mapped, confidence(face), float(face_share)
    if not probs:
        raise ValueError("late fusion needs the audio or the face")
    weights = reliability_weights(confidences, availability)
    return fuse(probs, weights), weights, probs
