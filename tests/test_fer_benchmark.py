"""``emofuse benchmark fer2013``: rows in the shared results format, on a synthetic FER2013-format file
and (realdata) on the real one with the shipped encoders."""

from __future__ import annotations

import json

import pytest

from emofuse.evaluation.reports import read_results
from emofuse.experiments.fer_benchmark import run_fer_benchmark
from emofuse.training.face import FaceTrainConfig, train_face
from tests.test_train_face import synthetic_fer


def test_fer_benchmark_scores_a_trained_fer_cnn(tmp_path):
    data = synthetic_fer(tmp_path / "fer.npz")
    train_face(tmp_path / "cnn", data, FaceTrainConfig(max_epochs=3, batch_size=32, widths=(8, 16, 32, 32), lr=5e-3,
                                                        max_rotation_deg=5), progress=False)
    out = tmp_path / "fer.json"
    results = run_fer_benchmark(data, out, ({"name": "fer_cnn", "weights": str(tmp_path / "cnn")},), progress=False)
    saved = read_results(out)  # checks the shared format
    row = saved["results"][0]
    assert row["model"] == "fer_cnn" and row["modalities"] == ["face"]
    assert row["wa_mean"] > 0.6 and row["wa_std"] == 0.0 and row["n_runs"] == 1
    assert row["params"] > 0 and row["weights_bytes"] > 0 and row["cpu_ms_per_face"] > 0
    assert row["train_seconds"] == json.loads((tmp_path / "cnn" / "config.json").read_text())["train_seconds"]
    assert sum(map(sum, row["confusion"])) == 7 * 12
    assert results["dataset"] == "fer2013"


def test_an_encoder_without_expression_head_is_refused(tmp_path):
    from emofuse.errors import ConfigError

    data = synthetic_fer(tmp_path / "fer.npz", per_class=(2, 2, 2))
    with pytest.raises(ConfigError, match="no FER2013 expression head"):
        run_fer_benchmark(data, None, ("resnet18",), progress=False)
