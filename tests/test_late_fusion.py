"""Reliability-weighted late fusion: class mapping, confidence, weights, temperature scaling."""

from __future__ import annotations

import numpy as np
import pytest

from emofuse.inference.late_fusion import (FACE_TO_AUDIO, confidence, fit_temperature, fuse, map_face_to_audio,
                                           reliability_weights, softmax)

AUDIO = ["neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"]
FACE = ["angry", "disgust", "fearful", "happy", "sad", "surprised", "neutral"]


def test_every_face_class_is_mapped_to_an_audio_class():
    assert set(FACE_TO_AUDIO) == set(FACE)
    assert all(set(t) <= set(AUDIO) for t in FACE_TO_AUDIO.values())


def test_neutral_face_is_shared_between_neutral_and_calm_as_the_audio_model_says():
    face = np.eye(7)[FACE.index("neutral")]
    audio = np.array([0.1, 0.3, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1])
    mapped = map_face_to_audio(face, FACE, AUDIO, audio)
    assert mapped.sum() == pytest.approx(1.0)
    assert mapped[AUDIO.index("calm")] == pytest.approx(0.75, abs=1e-4)
    assert mapped[AUDIO.index("neutral")] == pytest.approx(0.25, abs=1e-4)
    happy = map_face_to_audio(np.eye(7)[FACE.index("happy")], FACE, AUDIO, audio)
    assert happy[AUDIO.index("happy")] == pytest.approx(1.0)


def test_face_classes_the_audio_model_lacks_are_dropped_and_renormalised():
    audio_labels = ["neutral", "happy", "sad", "angry"]  # e.g. a 4-class model
    face = np.full(7, 1 / 7)
    mapped = map_face_to_audio(face, FACE, audio_labels, np.full(4, 0.25))
    assert mapped.sum() == pytest.approx(1.0)
    assert np.allclose(mapped, 0.25)


def test_confidence_and_weights():
    assert confidence(np.eye(5)[0]) == pytest.approx(1.0, abs=1e-6)
    assert confidence(np.full(5, 0.2)) == pytest.approx(0.0, abs=1e-9)
    w = reliability_weights({"audio": 0.6, "face": 0.3}, {"audio": 1.0, "face": 0.5})
    assert w["audio"] == pytest.approx(0.6 / 0.75) and w["face"] == pytest.approx(0.15 / 0.75)
    assert reliability_weights({"audio": 0.6, "face": 0.9}, {"audio": 1.0, "face": 0.0})["face"] == 0.0
    assert reliability_weights({"audio": 0.0, "face": 0.0}, {"audio": 1.0, "face": 1.0}) == {"audio": 0.5, "face": 0.5}
    assert reliability_weights({"audio": 0.5}, {"audio": 0.0}) == {"audio": 0.0}


def test_fuse_is_the_weighted_mixture():
    a, f = np.array([0.8, 0.2]), np.array([0.2, 0.8])
    assert np.allclose(fuse({"audio": a, "face": f}, {"audio": 0.75, "face": 0.25}), [0.65, 0.35])


def test_fit_temperature_recovers_a_known_temperature():
    rng = np.random.default_rng(0)
    true_logits = rng.normal(0, 2, (4000, 5))
    labels = np.array([rng.choice(5, p=p) for p in softmax(true_logits)])
    assert fit_temperature(true_logits * 3.0, labels) == pytest.approx(3.0, rel=0.08)
    assert fit_temperature(true_logits, labels) == pytest.approx(1.0, rel=0.08)
