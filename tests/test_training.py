"""Training: config, losses, dataset/collate, modality dropout, fit and the k-fold runner."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from emofuse.data.record import Sample
from emofuse.errors import ConfigError, DataError, SpeakerOverlapError
from emofuse.models.base import EmotionModel, ModelOutput, masked_mean, presence
from emofuse.data.splits import Fold
from emofuse.training import (
    FeatureDataset,
    TrainConfig,
    collate,
    fit,
    focal_loss,
    inverse_frequency_weights,
    load_train_config,
    modality_dropout,
    predict_outputs,
    predict_proba,
    run_kfold,
)
from emofuse.training.task import lr_lambda


class MeanLinear(EmotionModel):
    """Masked mean per modality, a linear head each, logits summed over present modalities."""

    def __init__(self, num_classes: int, input_dims: dict[str, int], aux_weight: float = 0.0) -> None:
        super().__init__(num_classes, input_dims)
        self.heads = nn.ModuleDict({m: nn.Linear(d, num_classes) for m, d in input_dims.items()})
        self.aux_weight = aux_weight

    def forward(self, inputs, masks):
        parts = [self.heads[m](masked_mean(inputs[m], masks[m])) * presence(masks[m])[:, None] for m in self.modalities]
        logits = torch.stack(parts).sum(0)
        pres = torch.stack([presence(masks[m]) for m in self.modalities], dim=1)
        aux = {"constant": torch.tensor(self.aux_weight)} if self.aux_weight else {}
        return ModelOutput(logits=logits, explanations={"presence": pres}, aux_losses=aux)


def _synthetic(n: int = 90, n_speakers: int = 6, seed: int = 0, num_classes: int = 3):
    """Separable 3-class data: ragged audio sequences and clip-level face vectors (some absent)."""
    rng = np.random.default_rng(seed)
    centers_a, centers_f = rng.normal(size=(num_classes, 8)) * 3, rng.normal(size=(num_classes, 5)) * 3
    labels = [i % num_classes for i in range(n)]
    audio = [rng.normal(size=(int(rng.integers(2, 7)), 8)) + centers_a[y] for y in labels]
    face = [None if i % 5 == 0 else rng.normal(size=5) + centers_f[y] for i, y in enumerate(labels)]
    names = ["neutral", "happy", "sad"][:num_classes]
    # every speaker has every class: speaker = (i // num_classes) % n_speakers, label = i % num_classes
    samples = [Sample(id=f"clip{i:03d}", speaker=f"spk{(i // num_classes) % n_speakers}", dataset="synthetic",
                      label=names[y]) for i, y in enumerate(labels)]
    return samples, {"audio": audio, "face": face}, labels, names


# --------------------------------------------------------------------------- config


def test_config_roundtrip_and_unknown_key():
    cfg = TrainConfig(lr=3e-4, loss="focal", monitor="val_loss")
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.monitor_mode == "min" and TrainConfig().monitor_mode == "max"
    with pytest.raises(ConfigError, match="learning_rate"):
        TrainConfig.from_dict({"learning_rate": 0.1})
    with pytest.raises(ConfigError, match="loss"):
        TrainConfig(loss="mse")
    with pytest.raises(ConfigError, match="modality_dropout"):
        TrainConfig(modality_dropout=1.0)


def test_load_train_config_yaml(tmp_path):
    path = tmp_path / "train.yaml"
    path.write_text("train:\n  lr: 1e-3\n  batch_size: 8\n  loss: focal\n")
    cfg = load_train_config(path)
    assert cfg.lr == pytest.approx(1e-3) and cfg.batch_size == 8 and cfg.loss == "focal"
    path.write_text("lr: 0.01\nepochs: 3\n")
    with pytest.raises(ConfigError, match=r"train\.yaml.*epochs"):
        load_train_config(path)
    assert load_train_config({"seed": 4}).seed == 4
    with pytest.raises(ConfigError, match="file not found"):
        load_train_config(tmp_path / "missing.yaml")


def test_lr_schedule_warmup_then_decay():
    f = lr_lambda(100, 0.1, "cosine")
    warm = [f(s) for s in range(10)]
    assert all(b > a for a, b in zip(warm, warm[1:])) and warm[-1] < 1.0
    assert f(10) == pytest.approx(1.0)
    assert f(55) == pytest.approx(0.5, abs=0.02)
    assert f(99) < 0.01
    lin = lr_lambda(100, 0.0, "linear")
    assert lin(0) == pytest.approx(1.0) and lin(50) == pytest.approx(0.5)
    assert lr_lambda(100, 0.1, "constant")(80) == 1.0


# --------------------------------------------------------------------------- losses


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("weighted", [False, True])
def test_focal_with_gamma_zero_equals_cross_entropy(smoothing, weighted):
    g = torch.Generator().manual_seed(0)
    logits, target = torch.randn(16, 5, generator=g), torch.randint(0, 5, (16,), generator=g)
    weight = torch.rand(5, generator=g) + 0.2 if weighted else None
    expected = F.cross_entropy(logits, target, weight=weight, label_smoothing=smoothing)
    got = focal_loss(logits, target, gamma=0.0, alpha=None, weight=weight, label_smoothing=smoothing)
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)


def test_focal_loss_by_hand_and_down_weights_easy_examples():
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    target = torch.tensor([0, 1])
    p = torch.softmax(logits, -1)[torch.arange(2), target]
    expected = (-0.25 * (1 - p) ** 2 * p.log()).mean()
    assert focal_loss(logits, target, gamma=2.0, alpha=0.25).item() == pytest.approx(expected.item(), rel=1e-6)
    assert focal_loss(logits, target, gamma=2.0) < F.cross_entropy(logits, target)


def test_inverse_frequency_weights():
    w = inverse_frequency_weights([0, 0, 0, 1], 3)
    assert w.tolist() == pytest.approx([4 / 9, 4 / 3, 1.0])


# --------------------------------------------------------------------------- data


def test_collate_pads_ragged_and_masks_absent_modalities():
    ds = FeatureDataset(
        {"audio": [np.ones((3, 2)), np.full((1, 2), 2.0), None], "face": [np.arange(4.0), None, np.ones(4)]},
        [0, 1, 2], ["a", "b", "c"],
    )
    batch = collate([ds[0], ds[1], ds[2]])
    assert batch["inputs"]["audio"].shape == (3, 3, 2) and batch["inputs"]["audio"].dtype == torch.float32
    assert batch["masks"]["audio"].tolist() == [[True] * 3, [True, False, False], [False] * 3]
    assert batch["inputs"]["audio"][1, 1:].abs().sum() == 0 and batch["inputs"]["audio"][2].abs().sum() == 0
    assert batch["inputs"]["face"].shape == (3, 1, 4)  # [D] vectors become length-1 sequences
    assert batch["masks"]["face"].tolist() == [[True], [False], [True]]
    assert batch["labels"].tolist() == [0, 1, 2] and batch["labels"].dtype == torch.long
    assert batch["ids"] == ["a", "b", "c"]
    only_b = collate([ds[1]])  # face absent from the whole batch: still length >= 1
    assert only_b["inputs"]["face"].shape == (1, 1, 4) and not only_b["masks"]["face"].any()


def test_dataset_rejects_bad_arrays_naming_the_sample():
    with pytest.raises(DataError, match="clip7.*NaN"):
        FeatureDataset({"audio": [np.array([np.nan, 1.0])]}, [0], ["clip7"])
    with pytest.raises(DataError, match="inconsistent"):
        FeatureDataset({"audio": [np.ones(3), np.ones(4)]}, [0, 1], ["a", "b"])
    with pytest.raises(DataError, match="clip9"):
        FeatureDataset({"audio": [np.ones((2, 2, 2))]}, [0], ["clip9"])
    unlabelled = FeatureDataset({"audio": [np.ones(3)]}, None, ["u"])
    assert collate([unlabelled[0]])["labels"].tolist() == [-1]


def test_modality_dropout_never_drops_every_modality():
    g = torch.Generator().manual_seed(0)
    b, names = 400, ["audio", "face", "text"]
    masks = {m: torch.ones(b, 4, dtype=torch.bool) for m in names}
    masks["text"][::2] = False  # text absent for half the samples
    inputs = {m: torch.ones(b, 4, 3) for m in names}
    new_inputs, new_masks = modality_dropout(inputs, masks, 0.9, g)
    kept = torch.stack([new_masks[m].any(-1) for m in names], 1)
    assert kept.any(1).all()  # every sample keeps at least one modality
    assert (kept.sum(1) == 1).float().mean() > 0.5  # the high rate did drop a lot
    assert not (kept[:, 2] & ~masks["text"].any(-1)).any()  # never resurrects an absent modality
    for m in names:  # hidden modalities have zero inputs
        hidden = ~new_masks[m].any(-1)
        assert new_inputs[m][hidden].abs().sum() == 0
    assert modality_dropout(inputs, masks, 0.0)[1] is masks


def test_dataset_drop_and_restrict_modalities():
    samples, feats, labels, _ = _synthetic(60)
    ds = FeatureDataset(feats, labels, [s.id for s in samples])
    dropped = ds.drop_modalities(0.7, seed=3)
    pres = dropped.presence()
    assert pres.any(1).all() and pres.sum() < ds.presence().sum()
    assert (dropped.presence() == ds.drop_modalities(0.7, seed=3).presence()).all()  # reproducible
    audio_only = ds.restrict(["audio"])
    assert audio_only.num_samples_per_modality == {"audio": 60, "face": 0}
    assert audio_only.dims == ds.dims
    with pytest.raises(DataError, match="video"):
        ds.restrict(["video"])


# --------------------------------------------------------------------------- fit


def _datasets(seed: int = 0):
    samples, feats, labels, _ = _synthetic(90, seed=seed)
    ds = FeatureDataset(feats, labels, [s.id for s in samples])
    return ds.subset(range(60)), ds.subset(range(60, 90))


def test_fit_learns_separable_problem_quickly():
    train, val = _datasets()
    torch.manual_seed(0)
    cfg = TrainConfig(max_epochs=12, lr=2e-2, batch_size=16, patience=4, modality_dropout=0.2)
    result = fit(MeanLinear(3, train.dims), train, val, cfg)
    assert result.best_score >= 0.95
    # learns in a few epochs and early stopping ends the run (not the epoch cap); no wall-clock bound
    assert result.best_epoch <= 4 and result.stopped_epoch == result.best_epoch + cfg.patience < cfg.max_epochs - 1
    assert result.train_seconds > 0
    assert [h["epoch"] for h in result.history] == list(range(len(result.history)))
    assert {"train_loss", "val_loss", "val_wa", "val_ua", "lr"} <= set(result.history[0])
    probs = predict_proba(result.model, val)
    assert probs.shape == (30, 3) and np.allclose(probs.sum(1), 1.0, atol=1e-5)
    assert (probs.argmax(1) == np.array(val.labels)).mean() >= 0.95
    out = predict_outputs(result.model, val, batch_size=7)  # several batches, concatenated
    assert out.explanations["presence"].shape == (30, 2) and out.ids == val.ids


def test_fit_restores_best_epoch_not_last():
    """Validation labels are a permutation of the training ones, so the validation loss rises as
    the model learns: the best epoch is early and its weights must be the ones returned."""
    train, val = _datasets()
    val.labels = [(y + 1) % 3 for y in val.labels]
    torch.manual_seed(0)
    cfg = TrainConfig(max_epochs=8, lr=5e-2, batch_size=16, patience=3, warmup_ratio=0.0, monitor="val_loss")
    result = fit(MeanLinear(3, train.dims), train, val, cfg)
    losses = [h["val_loss"] for h in result.history]
    assert result.best_epoch == int(np.argmin(losses)) and result.best_epoch < result.stopped_epoch
    assert losses[-1] > result.best_score + 0.1
    probs = predict_proba(result.model, val)
    restored_loss = -np.log(probs[np.arange(len(val)), val.labels]).mean()
    assert restored_loss == pytest.approx(result.best_score, rel=1e-4)


def test_fit_adds_aux_losses_and_class_weights_and_focal(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    train, val = _datasets()
    torch.manual_seed(0)
    cfg = TrainConfig(max_epochs=2, batch_size=32, loss="focal", class_weights=True, monitor="val_loss")
    result = fit(MeanLinear(3, train.dims, aux_weight=5.0), train, val, cfg)
    assert all(h["train_loss"] > 5.0 for h in result.history)  # constant aux loss is included
    assert result.history[0]["val_loss"] < 5.0  # ... but not in the validation loss
    assert list(tmp_path.iterdir()) == []  # no checkpoints or logs left behind


def test_fit_without_validation_keeps_last_epoch():
    train, _ = _datasets()
    result = fit(MeanLinear(3, train.dims), train, None, TrainConfig(max_epochs=2, batch_size=64))
    assert result.best_epoch == result.stopped_epoch == 1 and np.isnan(result.best_score)
    assert "val_ua" not in result.history[-1] and not result.model.training


# --------------------------------------------------------------------------- k-fold


FOLDS = [
    Fold("f1", train=("spk0", "spk1", "spk2", "spk3"), val=("spk4",), test=("spk5",)),
    Fold("f2", train=("spk2", "spk3", "spk4", "spk5"), val=("spk0",), test=("spk1",)),
    Fold("f3", train=("spk4", "spk5", "spk0", "spk1"), val=("spk2",), test=("spk3",)),
]
FAST = TrainConfig(max_epochs=5, lr=0.1, batch_size=64, patience=3, warmup_ratio=0.0)


def _builder(dims):
    return lambda: MeanLinear(3, dims)


def test_run_kfold_per_fold_metrics_and_outputs(tmp_path):
    samples, feats, _, names = _synthetic(90)
    dims = {"audio": 8, "face": 5}
    result = run_kfold(samples, feats, names, FOLDS, _builder(dims), FAST, seeds=(0, 1), out_dir=tmp_path,
                       progress=False)
    assert [(r.fold, r.seed) for r in result.runs] == [(f, s) for s in (0, 1) for f in ("f1", "f2", "f3")]
    for run, fold in zip(result.runs, FOLDS * 2):
        test_ids = {s.id for s in samples if s.speaker in fold.test}
        assert set(run.ids) == test_ids and run.metrics["n"] == len(test_ids) == 15
        assert run.sizes == {"train": 60, "val": 15, "test": 15}
        assert run.metrics["wa"] >= 0.8
    assert result.aggregate["n"] == 6 and result.aggregate["wa_mean"] >= 0.8
    assert len(result.train_seconds) == 6 and result.confusion().sum() == 90
    row = result.summary("mean_linear", ["audio", "face"])
    assert row["ua_mean"] == pytest.approx(result.aggregate["ua_mean"]) and row["n_runs"] == 6
    assert (tmp_path / "kfold.json").is_file() and (tmp_path / "confusion.png").is_file()


def test_seed_ensemble_averages_probabilities_per_fold():
    samples, feats, _, names = _synthetic(90)
    dims = {"audio": 8, "face": 5}
    one = run_kfold(samples, feats, names, FOLDS[:2], _builder(dims), FAST, seeds=(0,), progress=False)
    assert one.seed_ensemble() is None
    result = run_kfold(samples, feats, names, FOLDS[:2], _builder(dims), FAST, seeds=(0, 1, 2), progress=False)
    ens = result.seed_ensemble()
    assert ens["members"] == 3 and ens["n"] == 2 and [f["fold"] for f in ens["folds"]] == ["f1", "f2"]
    for fold_score in ens["folds"]:
        runs = [r for r in result.runs if r.fold == fold_score["fold"]]
        assert len({r.seed for r in runs}) == 3
        by_hand = np.mean([r.probs for r in runs], axis=0).argmax(axis=1)
        assert fold_score["wa"] == pytest.approx(np.mean(by_hand == np.array(runs[0].y_true)))
    assert ens["wa_mean"] == pytest.approx(np.mean([f["wa"] for f in ens["folds"]]))
    assert np.asarray(ens["confusion"]).sum() == 30
    row = result.summary("m", ["audio", "face"])
    assert row["n_runs"] == 6  # the plain scores stay the mean over fold x seed runs


def test_refit_trains_a_fresh_model_on_train_plus_validation(monkeypatch):
    import emofuse.training.kfold as kfold_module

    calls = []
    real_fit = kfold_module.fit

    def recording_fit(model, train_ds, val_ds, cfg):
        result = real_fit(model, train_ds, val_ds, cfg)
        calls.append((len(train_ds), val_ds is not None, cfg.max_epochs, result.best_epoch))
        return result

    monkeypatch.setattr(kfold_module, "fit", recording_fit)
    samples, feats, _, names = _synthetic(90)
    cfg = FAST.replace(refit=True)
    result = run_kfold(samples, feats, names, FOLDS[:1], _builder({"audio": 8, "face": 5}), cfg, progress=False)
    (first, second) = calls
    assert first[:2] == (60, True) and second[:2] == (75, False)  # train, then train + validation
    assert second[2] == first[3] + 1  # as many epochs as early stopping chose
    run = result.runs[0]
    assert run.best_epoch == first[3] and run.metrics["n"] == 15 and run.sizes["train"] == 60
    with pytest.raises(ConfigError, match="refit"):
        TrainConfig(refit="yes")


def test_run_kfold_test_modalities_masks_the_others():
    samples, feats, _, names = _synthetic(90)
    result = run_kfold(samples, feats, names, FOLDS[:1], _builder({"audio": 8, "face": 5}), FAST,
                       test_modalities=["face"], test_drop_rate=0.0, progress=False)
    run = result.runs[0]
    assert result.test_modalities == ["face"] and run.metrics["n"] == 15
    # every 5th clip has no face; with audio masked out MeanLinear sees nothing: uniform output
    no_face = [i for i, sid in enumerate(run.ids) if int(sid[4:]) % 5 == 0]
    assert no_face and np.allclose(run.probs[no_face], 1 / 3)
    with_face = [i for i in range(15) if i not in no_face]
    assert not np.allclose(run.probs[with_face], 1 / 3)
    with pytest.raises(ConfigError, match="test_modalities"):
        run_kfold(samples, feats, names, FOLDS[:1], _builder({"audio": 8, "face": 5}), FAST,
                  test_modalities=["video"], progress=False)


def test_run_kfold_rejects_unknown_label_and_overlapping_fold():
    samples, feats, _, names = _synthetic(90)
    build = _builder({"audio": 8, "face": 5})
    samples[17].label = "bored"
    with pytest.raises(DataError, match="clip017.*bored"):
        run_kfold(samples, feats, names, FOLDS, build, FAST, progress=False)
    samples[17].label = "neutral"
    leaky = Fold("leak", train=("spk0", "spk1", "spk5"), val=("spk4",), test=("spk5",))
    with pytest.raises(SpeakerOverlapError):
        run_kfold(samples, feats, names, [leaky], build, FAST, progress=False)


def test_run_kfold_standardize_extra_tests_and_fold_callback():
    samples, feats, _, names = _synthetic(90)
    shifted = {"audio": [a * 100 + 1000 for a in feats["audio"]], "face": feats["face"]}
    seen = []

    def on_end(fold, model, info):
        seen.append((fold.name, info["stats"]))

    result = run_kfold(samples, shifted, names, FOLDS[:1], _builder({"audio": 8, "face": 5}), FAST, standardize=True,
                       extra_tests={"only_face": {"modalities": ["face"]}, "drop": {"drop_rate": 0.5}},
                       on_fold_end=on_end, progress=False)
    assert result.runs[0].metrics["wa"] >= 0.8  # standardised: the scale of the audio does not matter
    (name, stats), = seen
    train_ids = {s.id for s in samples if s.speaker in FOLDS[0].train}
    train_frames = np.concatenate([a for s, a in zip(samples, shifted["audio"]) if s.id in train_ids])
    np.testing.assert_allclose(stats["audio"][0], train_frames.mean(0), rtol=1e-5)
    extra = result.extra_aggregates()
    assert set(extra) == {"only_face", "drop"} and extra["only_face"]["n"] == 1
    assert set(result.runs[0].extra["only_face"]) >= {"wa", "ua", "macro_f1"}


def test_balanced_sampler_draws_each_class_equally_often():
    import torch

    from emofuse.training.config import TrainConfig
    from emofuse.training.data import FeatureDataset
    from emofuse.training.datamodule import FeatureDataModule

    labels = [0] * 90 + [1] * 10  # 9:1 imbalance
    ds = FeatureDataset({"audio": [np.full((1, 2), float(y), dtype=np.float32) for y in labels]}, labels,
                        [str(i) for i in range(100)])
    drawn = {}
    for sampler in ("shuffle", "balanced"):
        dm = FeatureDataModule.from_config(TrainConfig(batch_size=10, sampler=sampler), ds)
        ys = torch.cat([b["labels"] for _ in range(20) for b in dm.train_dataloader()])
        drawn[sampler] = float((ys == 1).float().mean())
    assert drawn["shuffle"] == pytest.approx(0.1)
    assert 0.4 < drawn["balanced"] < 0.6  # 2000 draws: 0.5 ± 0.03 (3 sigma)
    again = torch.cat([b["labels"] for b in FeatureDataModule.from_config(
        TrainConfig(batch_size=10, sampler="balanced"), ds).train_dataloader()])
    first = torch.cat([b["labels"] for b in FeatureDataModule.from_config(
        TrainConfig(batch_size=10, sampler="balanced"), ds).train_dataloader()])
    assert torch.equal(again, first)  # seeded
    with pytest.raises(Exception, match="sampler"):
        TrainConfig(sampler="oversample")
