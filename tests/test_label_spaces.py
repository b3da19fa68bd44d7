"""Label spaces: RAVDESS's 8 classes restricted and renamed onto other corpora's class sets."""

from __future__ import annotations

import numpy as np
import pytest

from emofuse.data.cremad import CREMAD_LABELS
from emofuse.data.fer2013 import FER_LABELS
from emofuse.data.meld import MELD_LABELS
from emofuse.data.ravdess import RAVDESS_LABELS
from emofuse.errors import ConfigError
from emofuse.inference import label_spaces
from emofuse.inference.label_spaces import (LABEL_SPACES, get_label_space, list_label_spaces, restrict,
                                            restrict_prediction, restrict_targets)
from emofuse.inference.predictor import Prediction

P8 = np.array([0.10, 0.30, 0.20, 0.05, 0.05, 0.10, 0.10, 0.10])  # neutral calm happy sad angry fearful disgust surprised


def test_six_drops_calm_and_surprised_and_renormalises():
    probs, names = restrict(P8, RAVDESS_LABELS, "6")
    assert names == ["neutral", "happy", "sad", "angry", "fearful", "disgust"]
    np.testing.assert_allclose(probs, np.array([0.10, 0.20, 0.05, 0.05, 0.10, 0.10]) / 0.6)
    assert probs.sum() == pytest.approx(1.0)


def test_corpus_spaces_use_the_corpora_names_and_order():
    assert restrict(P8, RAVDESS_LABELS, "cremad")[1] == CREMAD_LABELS
    assert restrict(P8, RAVDESS_LABELS, "fer")[1] == list(FER_LABELS)
    probs, names = restrict(P8, RAVDESS_LABELS, "meld")
    assert names == MELD_LABELS
    assert probs[names.index("joy")] == pytest.approx(0.20 / 0.7)  # calm's 0.3 dropped
    assert restrict(P8, RAVDESS_LABELS, "7")[1][-1] == "surprised"
    assert restrict(P8, RAVDESS_LABELS, "8") == (pytest.approx(P8), RAVDESS_LABELS)


def test_emodb_has_no_boredom_and_says_so():
    space = get_label_space("emodb")
    assert space.unmapped == ("boredom",) and "boredom" not in space.names and len(space.names) == 6
    assert "boredom" in label_spaces.__doc__ and "emodb" in space.description.lower() + space.name


def test_a_batch_and_a_model_with_the_target_names():
    batch = np.stack([P8, P8[::-1]])
    probs, _ = restrict(batch, RAVDESS_LABELS, "6")
    assert probs.shape == (2, 6) and np.allclose(probs.sum(1), 1)
    meld_model = ["anger", "disgust", "fear", "joy", "neutral", "sadness", "surprise"]
    got, names = restrict(np.full(7, 1 / 7), meld_model, "meld")
    assert names == MELD_LABELS and np.allclose(got, 1 / 7)


def test_no_mass_left_gives_uniform_and_missing_classes_are_named():
    only_calm = np.eye(8)[1]
    probs, _ = restrict(only_calm, RAVDESS_LABELS, "6")
    np.testing.assert_allclose(probs, np.full(6, 1 / 6))
    with pytest.raises(ConfigError, match="disgust, fearful"):
        restrict(np.full(4, 0.25), ["neutral", "happy", "angry", "sad"], "cremad")
    with pytest.raises(ConfigError, match="known: 8, 6"):
        get_label_space("9")
    assert set(list_label_spaces()) == {"8", "6", "7", "cremad", "fer", "meld", "emodb"} == set(LABEL_SPACES)


def test_restrict_targets_drops_clips_of_dropped_classes():
    y = np.array([0, 1, 2, 7])
    mapped, keep = restrict_targets(y, RAVDESS_LABELS, "6")
    assert mapped.tolist() == [0, -1, 1, -1] and keep.tolist() == [True, False, True, False]


def _pred(probs: np.ndarray, threshold: float | None) -> Prediction:
    label = RAVDESS_LABELS[int(probs.argmax())]
    status = "uncertain" if threshold is not None and probs.max() < threshold else "ok"
    return Prediction(path="x.wav", label=label, probabilities=dict(zip(RAVDESS_LABELS, probs.tolist())),
                      modalities_used=["audio"], status=status, confidence=float(probs.max()), threshold=threshold)


def test_restrict_prediction_relabels_and_decides_uncertainty_on_the_models_own_probability():
    pred = _pred(P8, threshold=0.25)  # calm 0.30 >= 0.25: confident about calm, which "6" drops
    got = restrict_prediction(pred, "6")
    assert got.label == "happy" and got.confidence == pytest.approx(0.20) and got.status == "uncertain"
    assert got.explanations["label_space"]["dropped"] == {"calm": 0.30, "surprised": 0.10}
    assert list(got.probabilities) == ["neutral", "happy", "sad", "angry", "fearful", "disgust"]
    assert pred.label == "calm" and pred.status == "ok"  # the original is untouched
    assert restrict_prediction(_pred(P8, None), "6").status == "ok"  # no threshold: never uncertain
    failed = Prediction(path="y.wav", label=None, probabilities={}, modalities_used=[], status="no_speech")
    assert restrict_prediction(failed, "6") is failed
    assert got.to_dict()["uncertain"] is True
