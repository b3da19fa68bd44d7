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


@pytest.mark.realdata
def test_shipped_fer_cnn_on_fer2013_public_test(data_root_dir):
    """The shipped weights: PublicTest (validation) accuracy as recorded in their config.json, on the whole part."""
    import numpy as np

    from emofuse.data.fer2013 import load_fer2013
    from emofuse.faces.encoders import get_face_encoder
    from emofuse.faces.encoders.fer_cnn import shipped_fer_cnn_dir

    path = data_root_dir / "fer2013" / "fer2013.npz"
    if not path.is_file():
        pytest.skip(f"real data missing: FER2013 not found at {path}")
    val = load_fer2013(data_root_dir)["PublicTest"]
    logits = np.concatenate([get_face_encoder("fer_cnn").encode(val.images[i:i + 1024])[1]
                             for i in range(0, len(val), 1024)])
    recorded = json.loads((shipped_fer_cnn_dir() / "config.json").read_text())["public_test_acc"]
    assert (logits.argmax(1) == val.labels).mean() == pytest.approx(recorded, abs=0.002)
    assert recorded > 0.6


def test_shipped_fer_cnn_has_weights_config_and_model_card():
    from emofuse.faces.encoders import get_face_encoder
    from emofuse.faces.encoders.fer_cnn import shipped_fer_cnn_dir

    folder = shipped_fer_cnn_dir()
    card = (folder / "MODEL_CARD.md").read_text()
    assert "research-only" in card and "FER2013" in card
    enc = get_face_encoder("fer_cnn")
    assert enc.embed_dim == 256 and enc.identity()["weights_sha256"]
