"""Explanation plots: valid PNGs, weights that sum to one, errors that name the file."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from emofuse.errors import DataError
from emofuse.inference.explain import explain_batch_outputs, explain_file, feature_frame_rate
from emofuse.models import create_model
from emofuse.models.registry import _REGISTRY
from emofuse.inference.predictor import demo_checkpoint_dir, sample_clips

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_png(path: str | Path, min_side: int = 100) -> None:
    data = Path(path).read_bytes()
    assert data[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    width, height = struct.unpack(">II", data[16:24])  # IHDR
    assert width >= min_side and height >= min_side, f"{path}: {width}x{height}"
    assert len(data) > 5000, f"{path}: only {len(data)} bytes"


def _zoo_batch(name: str, batch_size: int = 2):
    cls = _REGISTRY[name]
    dims, lens = dict(cls.test_input_dims), dict(cls.test_seq_lens)
    torch.manual_seed(0)
    model = create_model(name, num_classes=4, input_dims=dims, **dict(cls.test_kwargs))
    inputs = {m: torch.randn(batch_size, lens.get(m, 6), d) for m, d in dims.items()}
    masks = {m: torch.ones(batch_size, lens.get(m, 6), dtype=torch.bool) for m in dims}
    first = next(iter(dims))
    if lens.get(first, 6) > 3:
        masks[first][0, -2:] = False  # sample 0 is shorter: maps must be cropped to its frames
    return model, inputs, masks


@pytest.mark.parametrize("name", ["tucker_fusion", "of_cmaer_cat", "dual_stream", "text_audio_attention"])
def test_explain_batch_outputs_zoo(name, tmp_path):
    model, inputs, masks = _zoo_batch(name)
    labels = ["a", "b", "c", "d"]
    result = explain_batch_outputs(model, inputs, masks, tmp_path, labels, name, frame_rates={"audio": 100.0})
    assert result["files"], "no plots written"
    for f in result["files"]:
        assert Path(f).parent == tmp_path
        assert_png(f)
    assert not list(tmp_path.glob(".*.tmp")), "temporary files left behind"
    assert sum(result["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    assert result["label"] == max(result["probabilities"], key=result["probabilities"].get)
    if result["modality_weights"] is not None:
        assert list(result["modality_weights"]) == list(model.modalities)
        assert sum(result["modality_weights"].values()) == pytest.approx(1.0, abs=1e-5)
        assert (tmp_path / "modality_weights.png").is_file()
    cross = {k: np.asarray(v) for k, v in result["attention"].items() if "->" in k}
    if name != "dual_stream":
        assert cross, f"{name} should give cross-modal attention maps"
    for key, arr in cross.items():
        assert arr.ndim == 2
        np.testing.assert_allclose(arr.sum(axis=1), 1.0, atol=1e-4, err_msg=key)  # rows over valid keys
        assert (tmp_path / (key.replace("attention/", "attention_").replace("->", "-to-") + ".png")).is_file()


def test_cross_attention_cropped_to_valid_frames(tmp_path):
    model, inputs, masks = _zoo_batch("text_audio_attention")
    valid_text = int(masks["text"][0].sum())
    assert valid_text < masks["text"].shape[1]
    result = explain_batch_outputs(model, inputs, masks, tmp_path, None, "")
    t2a = np.asarray(result["attention"]["attention/text->audio"])
    assert t2a.shape == (valid_text, inputs["audio"].shape[1])


def test_of_cmaer_cat_compatibility_matrix(tmp_path):
    model, inputs, masks = _zoo_batch("of_cmaer_cat")
    result = explain_batch_outputs(model, inputs, masks, tmp_path, None, "")
    compat = np.asarray(result["other"]["compatibility"])
    assert compat.shape == (3, 3)
    np.testing.assert_allclose(compat.sum(axis=1), 1.0, atol=1e-5)
    assert_png(tmp_path / "compatibility.png")


def test_wrong_label_count_is_rejected(tmp_path):
    model, inputs, masks = _zoo_batch("dual_stream")
    with pytest.raises(ValueError, match="labels"):
        explain_batch_outputs(model, inputs, masks, tmp_path, ["only", "two"], "")


def _attention_checkpoint(folder: Path) -> Path:
    """An untrained attention-pooling model over Whisper states (frame_stride 4), as the earlier demo
    model was: the shipped model is now a logistic regression, which has no attention to plot."""
    from emofuse.features import get_extractor
    from emofuse.inference.checkpoint import save_checkpoint
    from emofuse.inputs.plan import InputPlan, ModalityPlan

    plan = InputPlan({"audio": ModalityPlan(("whisper",), {"whisper": get_extractor("whisper").config()})})
    torch.manual_seed(0)
    model = create_model("attention_pooling", num_classes=8, input_dims={"audio": 384}, hidden=16, embed_dim=16,
                         frame_stride=4)
    labels = ["neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"]
    return save_checkpoint(folder, model, labels=labels, features=plan.feature_specs(), input_plan=plan)


def test_explain_file_attention_model(tmp_path):
    clip = sample_clips()[0]
    result = explain_file(_attention_checkpoint(tmp_path / "ckpt"), clip, tmp_path / "out")
    names = {Path(f).name for f in result["files"]}
    assert names == {"probabilities.png", "attention_audio.png"}
    for f in result["files"]:
        assert_png(f)
    weights = np.asarray(result["attention"]["attention/audio"])
    assert weights.ndim == 1 and (weights >= 0).all()
    assert weights.sum() == pytest.approx(1.0, abs=1e-5)
    # Whisper states at 50/s averaged by frame_stride 4: one weight per 80 ms of the clip
    from emofuse.media.audio import load_audio

    seconds = len(load_audio(clip)) / 16000
    assert len(weights) == pytest.approx(seconds * 50 / 4, abs=2)
    assert sum(result["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    assert Path(result["summary"]).is_file()



def test_explain_file_shipped_model_plots_its_probabilities(tmp_path):
    result = explain_file(demo_checkpoint_dir(), sample_clips()[0], tmp_path / "out")
    assert "probabilities.png" in {Path(f).name for f in result["files"]}
    assert sum(result["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)


def test_explain_file_bad_path_names_file(tmp_path):
    missing = tmp_path / "no_such_clip.wav"
    with pytest.raises(DataError, match="no_such_clip.wav"):
        explain_file(demo_checkpoint_dir(), missing, tmp_path / "out")
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"this is not audio at all" * 10)
    with pytest.raises(DataError, match="garbage.wav"):
        explain_file(demo_checkpoint_dir(), garbage, tmp_path / "out")


def test_feature_frame_rate():
    assert feature_frame_rate({"names": ["whisper"], "configs": {}}) == 50.0
    assert feature_frame_rate({"names": ["logmel"], "configs": {"logmel": {"hop_length": 320}}}) == 50.0
    assert feature_frame_rate({"names": ["whisper", "egemaps"], "configs": {}}) is None
    assert feature_frame_rate({"names": ["egemaps"], "configs": {}}) is None


def test_cli_registration(tmp_path, capsys):
    from emofuse.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["explain", str(demo_checkpoint_dir()), str(sample_clips()[1]), "--out", str(tmp_path)])
    assert args.func(args) == 0
    assert "probabilities.png" in capsys.readouterr().out
    assert_png(tmp_path / "probabilities.png")
