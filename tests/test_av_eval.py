"""The audio-visual check's parts: the same fusion as the predictor, and actor 05's takes paired with their speech."""

from __future__ import annotations

import numpy as np
import pytest

from emofuse.experiments.av_eval import actor05_takes, fused_prediction
from emofuse.inference.late_fusion import late_fusion, softmax

LABELS = ["neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"]
FACE = ["angry", "disgust", "fearful", "happy", "sad", "surprised", "neutral"]


def test_fused_prediction_is_the_predictors_rule_on_calibrated_parts():
    rng = np.random.default_rng(0)
    audio = softmax(rng.normal(0, 1, 8))
    logits = rng.normal(0, 2, (5, 7))
    got = fused_prediction(audio, logits, 0.8, LABELS, FACE, 1.5, 0.7)
    want = late_fusion(softmax(np.log(audio), 1.5), softmax(logits, 0.7).mean(0), 0.8, LABELS, FACE)[0]
    assert np.allclose(got, want)
    assert np.allclose(fused_prediction(audio, None, 0.0, LABELS, FACE, 1.0, 1.0), audio)  # no face: the audio


@pytest.mark.realdata
def test_actor05_takes_pair_each_face_clip_with_its_speech(data_root_dir):
    if not (data_root_dir / "ravdess-actor05-video" / "manifest.csv").is_file():
        pytest.skip(f"real data missing: ravdess-actor05-video not found under {data_root_dir}")
    takes = actor05_takes(data_root_dir)
    assert len(takes) == 60 and len({t["id"] for t in takes}) == 60
    for take in takes:
        assert take["video"].is_file() and take["audio"].is_file(), take
        assert take["audio"].name[3:-5] + "_facecroppad.avi" == take["video"].name[3:]  # same performance


def test_a_calibrated_audio_checkpoint_gets_no_second_temperature(tmp_path):
    import shutil

    from emofuse.experiments.av_eval import audio_temperature
    from emofuse.inference.checkpoint import write_calibration
    from emofuse.inference.predictor import demo_checkpoint_dir

    ckpt = tmp_path / "ckpt"
    shutil.copytree(demo_checkpoint_dir(), ckpt)
    write_calibration(ckpt, {"temperature": 1.3, "threshold": 0.5, "fitted_on": "out-of-fold predictions"})
    out = audio_temperature(ckpt, None, None)  # no data needed: nothing is fitted
    assert out["temperature"] == 1.0 and "out-of-fold predictions" in out["fit_on"]
