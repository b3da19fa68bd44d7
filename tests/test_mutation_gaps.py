"""Tests added for bugs the mutation check (scripts/mutation_check.py, docs/testing.md) planted and
the rest of the suite let through: label order in checkpoints and in k-fold class numbering, and
the best-epoch choice when the monitored metric is maximised."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from emofuse.data.record import Sample
from emofuse.evaluation.metrics import unweighted_accuracy
from emofuse.models.base import EmotionModel, ModelOutput, masked_mean, presence
from emofuse.data.splits import Fold
from emofuse.training import FeatureDataset, TrainConfig, fit, predict_proba, run_kfold

#: deliberately not alphabetical: sorting them would renumber the classes
NAMES = ["neutral", "happy", "sad"]


class MeanLinear(EmotionModel):
    """Masked mean per modality and a linear head each, logits summed over present modalities."""

    def __init__(self, num_classes: int, input_dims: dict[str, int]) -> None:
        super().__init__(num_classes, input_dims)
        self.heads = nn.ModuleDict({m: nn.Linear(d, num_classes) for m, d in input_dims.items()})

    def forward(self, inputs, masks):
        parts = [self.heads[m](masked_mean(inputs[m], masks[m])) * presence(masks[m])[:, None] for m in self.modalities]
        return ModelOutput(logits=torch.stack(parts).sum(0))


def _synthetic(n: int = 90, n_speakers: int = 6, seed: int = 0, spread: float = 3.0):
    """3-class audio sequences (class centres ``spread`` apart: 3 is separable); speaker =
    (i // 3) % n_speakers, label = i % 3."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(3, 8)) * spread
    labels = [i % 3 for i in range(n)]
    audio = [rng.normal(size=(int(rng.integers(2, 7)), 8)) + centers[y] for y in labels]
    samples = [Sample(id=f"clip{i:03d}", speaker=f"spk{(i // 3) % n_speakers}", dataset="synthetic",
                      label=NAMES[y]) for i, y in enumerate(labels)]
    return samples, {"audio": audio}, labels


def test_checkpoint_keeps_the_label_order_of_the_classes(tmp_path):
    """Class i of the model is labels[i]: a checkpoint must give the names back in that order."""
    from emofuse import create_model
    from emofuse.inference.checkpoint import load_checkpoint, save_checkpoint

    labels = ["neutral", "calm", "angry"]
    model = create_model("early_concat", num_classes=3, input_dims={"audio": 4})
    save_checkpoint(tmp_path / "ckpt", model, labels=labels, features={"audio": {"name": "test"}})
    assert load_checkpoint(tmp_path / "ckpt").labels == labels


def test_run_kfold_numbers_the_classes_in_the_given_label_order():
    samples, feats, labels = _synthetic()
    fold = Fold("f1", train=("spk0", "spk1", "spk2", "spk3"), val=("spk4",), test=("spk5",))
    cfg = TrainConfig(max_epochs=3, lr=0.1, batch_size=64, patience=3, warmup_ratio=0.0)
    result = run_kfold(samples, feats, NAMES, [fold], lambda: MeanLinear(3, {"audio": 8}), cfg, progress=False)
    (run,) = result.runs
    by_id = {s.id: NAMES.index(s.label) for s in samples}
    assert run.y_true == [by_id[i] for i in run.ids]


def test_fit_keeps_the_epoch_with_the_highest_val_ua():
    """Validation labels are shifted, so validation UA falls as the model learns (weakly separable
    data, so it falls over several epochs): the kept epoch must be the one with the highest UA
    (monitor ``val_ua`` is maximised), and its weights returned."""
    samples, feats, labels = _synthetic(90, spread=0.3)
    ds = FeatureDataset(feats, labels, [s.id for s in samples])
    train, val = ds.subset(range(60)), ds.subset(range(60, 90))
    val.labels = [(y + 1) % 3 for y in val.labels]
    torch.manual_seed(0)
    cfg = TrainConfig(max_epochs=6, lr=3e-2, batch_size=16, patience=10, warmup_ratio=0.0, monitor="val_ua")
    assert cfg.monitor_mode == "max"
    result = fit(MeanLinear(3, train.dims), train, val, cfg)
    scores = [h["val_ua"] for h in result.history]
    assert max(scores) > min(scores) + 0.1, scores  # the test needs epochs that differ
    assert result.best_score == pytest.approx(max(scores))
    assert result.best_epoch == int(np.argmax(scores))
    restored = unweighted_accuracy(val.labels, predict_proba(result.model, val).argmax(axis=1))
    assert restored == pytest.approx(result.best_score, abs=1e-6)


def test_standardisation_gives_zero_mean_unit_std_on_the_training_frames():
    """Features far from unit scale (std 100 to 0.01, offsets up to 1000): after standardisation with statistics fitted on
    the training samples, every dimension of the training frames has mean 0 and std 1, and other
    samples get ``(x - train mean) / train std``."""
    from emofuse.inputs.normalize import apply_standardizer, fit_standardizer

    rng = np.random.default_rng(0)
    scale, offset = np.array([100.0, 1.0, 0.01, 5.0]), np.array([1000.0, -3.0, 0.5, 20.0])
    audio = [rng.normal(size=(int(rng.integers(2, 9)), 4)) * scale + offset for _ in range(12)]
    face = [None if i % 4 == 0 else rng.normal(size=3) * 50 - 7 for i in range(12)]
    feats = {"audio": audio, "face": face}
    train = list(range(8))
    out = apply_standardizer(feats, fit_standardizer(feats, train))
    for m in ("audio", "face"):
        frames = np.concatenate([np.atleast_2d(out[m][i]) for i in train if out[m][i] is not None])
        np.testing.assert_allclose(frames.mean(0), 0.0, atol=1e-4)
        np.testing.assert_allclose(frames.std(0), 1.0, rtol=1e-4)
    raw = np.concatenate([audio[i] for i in train])
    np.testing.assert_allclose(out["audio"][10], (audio[10] - raw.mean(0)) / raw.std(0), rtol=1e-4, atol=1e-4)
    assert out["face"][0] is None
