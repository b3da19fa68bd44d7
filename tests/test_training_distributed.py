"""Training ready for several processes: hardware fields of `TrainConfig`, `build_trainer`, the
data module, best weights through a checkpoint file, and the rank-zero guards of writes and prints."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from emofuse.errors import ConfigError
from emofuse.training import FeatureDataset, TrainConfig, fit, run_kfold
from emofuse.training.datamodule import FeatureDataModule, make_loader
from emofuse.training.distributed import global_rank, is_rank_zero, rank_zero_only
from emofuse.training.task import EmotionTask
from test_training import FAST, FOLDS, MeanLinear, _builder, _synthetic

RANK_VARIABLES = ("RANK", "LOCAL_RANK", "SLURM_PROCID", "NODE_RANK", "GROUP_RANK", "LOCAL_WORLD_SIZE")


@pytest.fixture
def rank(monkeypatch):
    """``rank(n)`` makes this process look like global rank ``n`` of a torchrun launch."""
    for name in RANK_VARIABLES:
        monkeypatch.delenv(name, raising=False)

    def set_rank(n: int) -> None:
        monkeypatch.setenv("RANK", str(n))
    return set_rank


# --------------------------------------------------------------------------- config


def test_hardware_fields_default_to_one_device_and_round_trip():
    cfg = TrainConfig()
    assert (cfg.accelerator, cfg.devices, cfg.strategy, cfg.precision, cfg.num_nodes) == ("auto", "auto", "auto",
                                                                                          "auto", 1)
    custom = TrainConfig(accelerator="cpu", devices=2, strategy="ddp", precision="bf16-mixed", num_nodes=3)
    assert TrainConfig.from_dict(custom.to_dict()) == custom
    assert TrainConfig.from_dict(json.loads(json.dumps(custom.to_dict()))) == custom
    old = {k: v for k, v in TrainConfig().to_dict().items() if k not in ("strategy", "num_nodes")}
    assert TrainConfig.from_dict(old) == TrainConfig()  # configs saved before these fields still load


@pytest.mark.parametrize("field, value", [
    ("strategy", "ring"), ("strategy", "ddp_spawn"), ("strategy", 2), ("num_nodes", 0), ("num_nodes", True),
    ("num_nodes", "2"), ("devices", 0), ("devices", "all"), ("precision", "8-bit"), ("accelerator", "tpu"),
])
def test_hardware_fields_are_validated(field, value):
    with pytest.raises(ConfigError, match=rf"train\.{field}="):
        TrainConfig(**{field: value})


# --------------------------------------------------------------------------- Trainer


def test_build_trainer_defaults_to_one_cpu_device_in_full_precision(tmp_path):
    from lightning.pytorch.strategies import SingleDeviceStrategy

    from emofuse.training.fit import build_trainer

    trainer = build_trainer(TrainConfig(accelerator="cpu", max_epochs=3, grad_clip=0.5), tmp_path)
    assert isinstance(trainer.strategy, SingleDeviceStrategy) and trainer.num_devices == 1
    assert trainer.precision == "32-true" and trainer.num_nodes == 1 and trainer.max_epochs == 3
    assert trainer.gradient_clip_val == 0.5 and trainer.logger is None and trainer.checkpoint_callback is None
    assert trainer.default_root_dir == str(tmp_path)


def test_build_trainer_honours_devices_strategy_precision_and_nodes(tmp_path):
    from lightning.pytorch.accelerators import CPUAccelerator
    from lightning.pytorch.strategies import DDPStrategy

    from emofuse.training.fit import BestCheckpoint, build_trainer

    cfg = TrainConfig(accelerator="cpu", devices=2, strategy="ddp", precision="64", num_nodes=2)
    best = BestCheckpoint(tmp_path / "best", "val_ua", "max")
    trainer = build_trainer(cfg, tmp_path, [best])  # built, not launched: no process is started
    assert isinstance(trainer.accelerator, CPUAccelerator) and isinstance(trainer.strategy, DDPStrategy)
    assert trainer.num_devices == 2 and trainer.num_nodes == 2 and trainer.precision == "64-true"
    # Lightning gives each of the 2 x 2 processes its share of the data through a DistributedSampler
    assert trainer.distributed_sampler_kwargs == {"num_replicas": 4, "rank": 0}
    assert trainer.checkpoint_callback is best


# --------------------------------------------------------------------------- data module


def test_data_module_loaders_are_the_loaders_fit_used():
    samples, feats, labels, _ = _synthetic(41)
    ds = FeatureDataset(feats, labels, [s.id for s in samples])
    train, val = ds.subset(range(31)), ds.subset(range(31, 41))
    data = FeatureDataModule.from_config(TrainConfig(batch_size=10, seed=5), train, val)
    ids = [b["ids"] for b in data.train_dataloader()]
    assert ids == [b["ids"] for b in make_loader(train, 10, shuffle=True, seed=5)]
    assert sum(map(len, ids)) == 30  # a last batch of one sample is dropped while training
    assert ids != [b["ids"] for b in FeatureDataModule(train, val, batch_size=10, seed=6).train_dataloader()]
    assert [b["ids"] for b in data.val_dataloader()] == [val.ids]  # validation batches of max(batch, 64)
    assert data.has_val and data.test_dataloader is None
    no_val = FeatureDataModule(train, ds.subset([]), test=val)
    assert not no_val.has_val and no_val.val_dataloader is None
    assert [b["ids"] for b in no_val.test_dataloader()] == [val.ids]
    with pytest.raises(ValueError, match="empty"):
        FeatureDataModule(ds.subset([]))


# --------------------------------------------------------------------------- best weights


def test_best_weights_come_back_from_a_weights_only_checkpoint(monkeypatch, tmp_path):
    """The best epoch is not the last one; the restored weights are the best epoch's, read from
    the checkpoint file Lightning wrote (loaded as tensors only). The test shifts every weight it
    reads from that file by 1: a model restored from a copy kept in memory would not show it."""
    samples, feats, labels, _ = _synthetic(90)
    ds = FeatureDataset(feats, labels, [s.id for s in samples])
    train, val = ds.subset(range(60)), ds.subset(range(60, 90))
    val.labels = [(y + 1) % 3 for y in val.labels]  # validation loss rises as the model learns

    snapshots: dict[int, dict[str, torch.Tensor]] = {}
    real_end = EmotionTask.on_validation_epoch_end

    def snapshot(self):
        real_end(self)
        snapshots[int(self.current_epoch)] = {k: v.detach().clone() for k, v in self.model.state_dict().items()}

    loads = []
    real_load = torch.load

    def shifted_load(path, *args, **kwargs):
        state = real_load(path, *args, **kwargs)
        loads.append((str(path), kwargs.get("weights_only"), state))
        state["state_dict"] = {k: v + 1.0 if k.startswith("model.") else v for k, v in state["state_dict"].items()}
        return state

    monkeypatch.setattr(EmotionTask, "on_validation_epoch_end", snapshot)
    monkeypatch.setattr(torch, "load", shifted_load)
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    cfg = TrainConfig(max_epochs=8, lr=5e-2, batch_size=16, patience=3, warmup_ratio=0.0, monitor="val_loss")
    result = fit(MeanLinear(3, train.dims), train, val, cfg)

    losses = [h["val_loss"] for h in result.history]
    assert result.best_epoch == int(np.argmin(losses)) < result.stopped_epoch
    assert result.best_score == pytest.approx(min(losses))
    assert len(loads) == 1
    path, weights_only, state = loads[0]
    assert weights_only is True and "emofuse-fit-" in path and "optimizer_states" not in state
    assert state["epoch"] == result.best_epoch
    restored = result.model.state_dict()
    best, last = snapshots[result.best_epoch], snapshots[result.stopped_epoch]
    assert all(torch.equal(restored[k], best[k] + 1.0) for k in best)  # the file's weights, as read
    assert not all(torch.allclose(best[k], last[k]) for k in last)
    assert list(tmp_path.iterdir()) == [] and not os.path.exists(path)  # temporary folder removed


def test_an_epoch_scored_nan_is_never_kept(tmp_path):
    from emofuse.training.fit import BestCheckpoint, build_trainer

    best = BestCheckpoint(tmp_path, "val_loss", "min")
    trainer = build_trainer(TrainConfig(accelerator="cpu"), tmp_path, [best])
    assert not best.check_monitor_top_k(trainer, torch.tensor(float("nan")))
    assert best.check_monitor_top_k(trainer, torch.tensor(1.0))  # nothing kept yet: a finite score is


def test_without_validation_the_last_weights_are_kept_and_nothing_is_loaded(monkeypatch):
    samples, feats, labels, _ = _synthetic(30)
    train = FeatureDataset(feats, labels, [s.id for s in samples])
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("nothing to load without validation"))
    result = fit(MeanLinear(3, train.dims), train, None, TrainConfig(max_epochs=2, batch_size=64))
    assert result.best_epoch == result.stopped_epoch == 1 and np.isnan(result.best_score)


# --------------------------------------------------------------------------- rank zero


@pytest.mark.parametrize("env, zero", [
    ({}, True), ({"RANK": "0"}, True), ({"RANK": "1"}, False), ({"SLURM_PROCID": "3"}, False),
    ({"LOCAL_RANK": "0"}, True), ({"LOCAL_RANK": "1"}, False), ({"LOCAL_RANK": "0", "NODE_RANK": "1"}, False),
    ({"RANK": "0", "LOCAL_RANK": "0", "SLURM_PROCID": "0"}, True),
])
def test_is_rank_zero_reads_the_launchers_variables(monkeypatch, rank, env, zero):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert is_rank_zero() is zero and (global_rank() == 0) is zero


def test_rank_zero_only_runs_on_rank_zero_at_call_time(rank):
    calls = []

    @rank_zero_only
    def record(x):
        calls.append(x)
        return x

    @rank_zero_only(default="skipped")
    def answer():
        return "ran"

    rank(1)
    assert record(1) is None and answer() == "skipped" and calls == []
    rank(0)
    assert record(2) == 2 and answer() == "ran" and calls == [2]


def _write_every_report(folder):
    from emofuse.evaluation.reports import plot_confusion, write_json_atomic, write_results, write_text_atomic

    row = {"model": "m", "modalities": ["audio"], "wa_mean": 0.5, "wa_std": 0.0, "ua_mean": 0.5, "ua_std": 0.0,
           "macro_f1_mean": 0.5, "macro_f1_std": 0.0, "train_seconds": 1.0}
    assert write_json_atomic(folder / "a.json", {"x": 1}) == folder / "a.json"
    write_text_atomic(folder / "b.txt", "text")
    write_results(folder, {"results": [row]})
    plot_confusion([[1, 0], [0, 1]], ["a", "b"], folder / "c.png")


def test_reports_are_written_by_rank_zero_only(rank, tmp_path):
    rank(1)
    _write_every_report(tmp_path / "one")
    assert not (tmp_path / "one").exists()
    rank(0)
    _write_every_report(tmp_path / "zero")
    assert sorted(p.name for p in (tmp_path / "zero").iterdir()) == ["a.json", "b.txt", "c.png", "results.json",
                                                                    "results.md"]


def test_kfold_prints_and_writes_on_rank_zero_only(rank, tmp_path, capsys):
    samples, feats, _, names = _synthetic(90)
    cfg = FAST.replace(max_epochs=1)
    rank(1)
    other = run_kfold(samples, feats, names, FOLDS[:1], _builder({"audio": 8, "face": 5}), cfg,
                      out_dir=tmp_path / "one", progress=True)
    assert capsys.readouterr().err == "" and not (tmp_path / "one").exists()
    rank(0)
    zero = run_kfold(samples, feats, names, FOLDS[:1], _builder({"audio": 8, "face": 5}), cfg,
                     out_dir=tmp_path / "zero", progress=True)
    err = capsys.readouterr().err
    assert "fold f1 seed 0: WA" in err and "all runs (1)" in err
    assert sorted(p.name for p in (tmp_path / "zero").iterdir()) == ["confusion.png", "kfold.json"]
    assert other.runs[0].metrics == zero.runs[0].metrics  # every rank computes the same result


def test_checkpoints_and_benchmark_lines_are_written_by_rank_zero_only(rank, tmp_path, capsys):
    """A checkpoint (and an ensemble's index) is saved, and the benchmark's lines printed, on rank zero only."""
    import emofuse
    from emofuse.inference.checkpoint import save_checkpoint, save_ensemble
    from emofuse.training.distributed import rank_zero_print

    model = emofuse.create_model("early_concat", num_classes=2, input_dims={"audio": 4})
    rank(1)
    save_checkpoint(tmp_path / "one", model, labels=["a", "b"], features={"audio": {"names": ["mfcc"], "configs": {}}})
    save_ensemble(tmp_path / "ens_one", ["seed_0"])
    rank_zero_print("table")
    assert not (tmp_path / "one").exists() and not (tmp_path / "ens_one").exists()
    assert capsys.readouterr().out == ""
    rank(0)
    save_checkpoint(tmp_path / "zero", model, labels=["a", "b"], features={"audio": {"names": ["mfcc"], "configs": {}}})
    rank_zero_print("table")
    assert (tmp_path / "zero" / "config.json").is_file() and capsys.readouterr().out == "table\n"
