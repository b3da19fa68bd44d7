"""`fit` a model with Lightning (early stopping, best weights restored from a checkpoint) and predict with it."""

from __future__ import annotations

import contextlib
import logging
import math
import tempfile
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint
from torch import Tensor

from emofuse.models.base import EmotionModel
from emofuse.training.config import TrainConfig
from emofuse.training.data import FeatureDataset
from emofuse.training.datamodule import FeatureDataModule, make_loader
from emofuse.training.losses import inverse_frequency_weights
from emofuse.training.task import EmotionTask


@dataclass
class FitResult:
    """Outcome of `fit`.

    Attributes:
        model: the model with the best validation weights loaded, on the CPU, in eval mode.
        best_epoch: 0-based epoch whose weights were kept (the last epoch without validation data).
        best_score: value of ``monitor`` at ``best_epoch`` (NaN without validation data).
        history: one dict per epoch: ``epoch``, ``train_loss``, ``val_loss``, ``val_wa``,
            ``val_ua``, ``lr`` (learning rate at the end of the epoch).
        train_seconds: wall-clock time of the training loop.
        monitor: the metric used to pick ``best_epoch``.
        stopped_epoch: last epoch run (early stopping may end before ``max_epochs``).
    """

    model: EmotionModel
    best_epoch: int
    best_score: float
    history: list[dict[str, float]]
    train_seconds: float
    monitor: str = "val_ua"
    stopped_epoch: int = 0


@dataclass
class Predictions:
    """Outputs of `predict_outputs`, row-aligned with the dataset."""

    ids: list[str]
    probs: np.ndarray
    logits: np.ndarray
    labels: np.ndarray
    explanations: dict[str, np.ndarray] = field(default_factory=dict)
    embeddings: np.ndarray | None = None


class BestCheckpoint(ModelCheckpoint):
    """Lightning's ModelCheckpoint keeping the weights of the best epoch by ``monitor`` (strictly
    better than every earlier epoch; an epoch whose score is NaN is never kept).

    Only the weights are saved (``save_weights_only``), into ``dirpath``; on several processes
    rank zero writes and all ranks agree on each decision (Lightning's own logic)."""

    def __init__(self, dirpath: str | Path, monitor: str, mode: str) -> None:
        super().__init__(dirpath=dirpath, filename="best-{epoch}", monitor=monitor, mode=mode, save_top_k=1,
                         save_weights_only=True, save_last=False, auto_insert_metric_name=False,
                         enable_version_counter=False)

    def check_monitor_top_k(self, trainer: lightning.Trainer, current: Tensor | None = None) -> bool:
        if current is not None and bool(torch.isnan(current)):
            trainer.strategy.reduce_boolean_decision(False)  # every rank takes part in the decision
            return False
        return super().check_monitor_top_k(trainer, current)


def load_best_weights(task: lightning.LightningModule, checkpoint: BestCheckpoint,
                      trainer: lightning.Trainer | None = None) -> tuple[int, float] | None:
    """Load the weights ``checkpoint`` kept into ``task`` (read as tensors only, nothing is
    unpickled); returns ``(epoch, score)`` of the kept epoch, or None when no epoch was kept.

    With several processes (``trainer`` given) rank zero, which wrote the file in its own folder,
    reads it and sends the weights to the other ranks, which may run on other machines."""
    path = checkpoint.best_model_path
    if not path:
        return None
    if trainer is None or trainer.world_size == 1:
        state = torch.load(path, map_location="cpu", weights_only=True)
        task.load_state_dict(state["state_dict"])
        return int(state["epoch"]), float(checkpoint.best_model_score)
    epoch = -1
    if trainer.is_global_zero:
        state = torch.load(path, map_location="cpu", weights_only=True)
        task.load_state_dict(state["state_dict"])
        epoch = int(state["epoch"])
    for tensor in task.state_dict().values():  # the module's own storage: received in place
        torch.distributed.broadcast(tensor, src=0)
    epoch = int(trainer.strategy.broadcast(epoch, src=0))
    return epoch, float(checkpoint.best_model_score)


def resolve_hardware(cfg: TrainConfig) -> tuple[str, int, str]:
    """``(accelerator, devices, precision)`` for the Trainer: ``auto`` picks a CUDA GPU when one
    is available (bf16-mixed or 16-mixed) and otherwise the CPU with 32-bit floats; ``devices``
    ``auto`` is one device."""
    accelerator = cfg.accelerator
    if accelerator == "auto":
        accelerator = "gpu" if torch.cuda.is_available() else "cpu"
    if accelerator == "cuda":
        accelerator = "gpu"
    devices = 1 if cfg.devices == "auto" else int(cfg.devices)
    precision = str(cfg.precision)
    if precision == "auto":
        if accelerator == "gpu":
            precision = "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
        else:
            precision = "32-true"
    elif precision in ("32", "64"):
        precision = f"{precision}-true"
    return accelerator, devices, precision


def build_trainer(cfg: TrainConfig, root_dir: str | Path, callbacks: Sequence[Callback] = (),
                  **overrides: Any) -> lightning.Trainer:
    """The Lightning Trainer of one `fit`, from ``cfg``: hardware (`resolve_hardware`),
    ``strategy``, ``num_nodes``, epochs, gradient clipping; no logger, no sanity validation,
    deterministic algorithms (warning only), progress bar and model summary when ``cfg.progress``.

    ``root_dir`` receives anything Lightning writes. Checkpointing is on exactly when a
    ModelCheckpoint is among ``callbacks``. ``overrides`` are passed to the Trainer last."""
    accelerator, devices, precision = resolve_hardware(cfg)
    options: dict[str, Any] = dict(
        accelerator=accelerator,
        devices=devices,
        num_nodes=cfg.num_nodes,
        strategy=cfg.strategy,
        precision=precision,
        max_epochs=cfg.max_epochs,
        min_epochs=cfg.min_epochs,
        gradient_clip_val=cfg.grad_clip,
        callbacks=list(callbacks),
        logger=False,
        enable_checkpointing=any(isinstance(c, ModelCheckpoint) for c in callbacks),
        enable_progress_bar=cfg.progress,
        enable_model_summary=cfg.progress,
        num_sanity_val_steps=0,
        deterministic="warn",
        default_root_dir=str(root_dir),
        log_every_n_steps=1,
    )
    options.update(overrides)
    return lightning.Trainer(**options)


@contextlib.contextmanager
def _quiet(enabled: bool) -> Iterator[None]:
    """Silence Lightning's informational logs and hints (device summary, worker count tips)."""
    if not enabled:
        yield
        return
    loggers = [logging.getLogger(n) for n in ("lightning.pytorch", "lightning.fabric", "lightning")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=r".*number of training batches.*log_every_n_steps.*")
        warnings.filterwarnings("ignore", message=r".*Consider setting `persistent_workers=True`.*")
        warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)` is deprecated.*")
        # training without validation data (refit, or no validation speakers) is intended
        warnings.filterwarnings("ignore", message=r".*defined a `validation_step` but have no `val_dataloader`.*")
        try:
            yield
        finally:
            for lg, level in zip(loggers, levels):
                lg.setLevel(level)


@contextlib.contextmanager
def _restore_determinism() -> Iterator[None]:
    """Lightning's ``deterministic`` flag is process-global: put the previous setting back."""
    enabled = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(enabled, warn_only=warn_only)


def fit(
    model: EmotionModel,
    train_ds: FeatureDataset,
    val_ds: FeatureDataset | None,
    cfg: TrainConfig | None = None,
) -> FitResult:
    """Train ``model`` on ``train_ds``, early-stopping on ``val_ds`` (``cfg.monitor``, patience
    ``cfg.patience``), and return it with the best validation weights restored.

    Nothing is written outside a temporary folder that is removed afterwards. Without
    ``val_ds`` the model trains for ``max_epochs`` and the last weights are kept.
    """
    cfg = cfg or TrainConfig()
    if len(train_ds) == 0:
        raise ValueError("training set is empty")
    if train_ds.labels is None:
        raise ValueError("training set has no labels")
    lightning.seed_everything(cfg.seed, workers=True, verbose=False)
    weights = inverse_frequency_weights(train_ds.labels, model.num_classes) if cfg.class_weights else None
    model.train()  # Lightning keeps submodule modes: an eval-mode model would train without dropout
    task = EmotionTask(model, cfg, weights)
    data = FeatureDataModule.from_config(cfg, train_ds, val_ds)
    with tempfile.TemporaryDirectory(prefix="emofuse-fit-") as tmp, _quiet(not cfg.progress), _restore_determinism(), \
            warnings.catch_warnings():
        # several processes: the epoch figures fit keeps are reduced or gathered by EmotionTask itself
        warnings.filterwarnings("ignore", message=r".*when logging on epoch level in distributed setting.*")
        callbacks: list[Callback] = []
        best = BestCheckpoint(Path(tmp) / "best", cfg.monitor, cfg.monitor_mode) if data.has_val else None
        if best is not None:
            callbacks += [EarlyStopping(monitor=cfg.monitor, mode=cfg.monitor_mode, patience=cfg.patience), best]
        trainer = build_trainer(cfg, tmp, callbacks)
        start = time.perf_counter()
        trainer.fit(task, datamodule=data)
        seconds = time.perf_counter() - start
        kept = load_best_weights(task, best, trainer) if best is not None else None
        trainer.strategy.barrier("emofuse-best-weights")  # rank zero's folder stays until every rank read it

    history = [dict(row) for row in task.history]
    stopped = int(history[-1]["epoch"]) if history else 0
    best_epoch, best_score = kept if kept is not None else (stopped, math.nan)
    model.cpu().eval()
    return FitResult(model=model, best_epoch=best_epoch, best_score=best_score, history=history,
                     train_seconds=seconds, monitor=cfg.monitor, stopped_epoch=stopped)


def _stack_ragged(chunks: list[np.ndarray]) -> np.ndarray:
    """Concatenate along axis 0; trailing shapes that differ are padded with NaN to the largest."""
    shapes = {c.shape[1:] for c in chunks}
    if len(shapes) == 1:
        return np.concatenate(chunks, axis=0)
    ndim = max(len(s) for s in shapes)
    if any(len(s) != ndim for s in shapes):
        raise ValueError(f"explanation tensors change rank across batches: {sorted(shapes)}")
    target = tuple(max(s[i] for s in shapes) for i in range(ndim))
    out = []
    for c in chunks:
        padded = np.full((c.shape[0], *target), np.nan, dtype=np.float32)
        padded[(slice(None), *(slice(0, n) for n in c.shape[1:]))] = c
        out.append(padded)
    return np.concatenate(out, axis=0)


@torch.no_grad()
def predict_outputs(model: EmotionModel, ds: FeatureDataset, batch_size: int = 64,
                    device: str | torch.device | None = None) -> Predictions:
    """Run ``model`` over ``ds`` in eval mode without gradients.

    Explanations are concatenated along the batch axis; when a tensor's trailing shape varies
    between batches (e.g. attention over padded time) it is padded with NaN. ``device`` defaults
    to the device the model's parameters are on.
    """
    if device is None:
        param = next(model.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
    was_training = model.training
    model.eval()
    logits, labels, embeddings = [], [], []
    explanations: dict[str, list[np.ndarray]] = {}
    try:
        for batch in make_loader(ds, batch_size):
            inputs = {m: x.to(device) for m, x in batch["inputs"].items()}
            masks = {m: x.to(device) for m, x in batch["masks"].items()}
            out = model(inputs, masks)
            logits.append(out.logits.float().cpu().numpy())
            labels.append(batch["labels"].numpy())
            if out.embedding is not None:
                embeddings.append(out.embedding.float().cpu().numpy())
            for name, value in out.explanations.items():
                explanations.setdefault(name, []).append(value.detach().float().cpu().numpy())
    finally:
        model.train(was_training)
    if not logits:
        return Predictions(ids=[], probs=np.zeros((0, model.num_classes), np.float32),
                           logits=np.zeros((0, model.num_classes), np.float32), labels=np.zeros(0, np.int64))
    all_logits = np.concatenate(logits)
    probs = torch.softmax(torch.from_numpy(all_logits), dim=-1).numpy()
    return Predictions(
        ids=list(ds.ids),
        probs=probs,
        logits=all_logits,
        labels=np.concatenate(labels),
        explanations={k: _stack_ragged(v) for k, v in explanations.items()},
        embeddings=np.concatenate(embeddings) if len(embeddings) == len(logits) else None,
    )


def predict_proba(model: EmotionModel, ds: FeatureDataset, batch_size: int = 64,
                  device: str | torch.device | None = None) -> np.ndarray:
    """Class probabilities ``[N, C]`` for every sample of ``ds`` (eval mode, no gradients)."""
    return predict_outputs(model, ds, batch_size, device).probs


def predict_proba_mean(model: EmotionModel, datasets: Sequence[FeatureDataset], batch_size: int = 64) -> np.ndarray:
    """Class probabilities averaged over ``datasets``: the same samples in the same order, e.g. the
    original features and test-time augmented views of them."""
    from emofuse.inputs.plan import average_over_views

    return average_over_views(lambda ds: predict_proba(model, ds, batch_size=batch_size), datasets)


def describe(result: FitResult) -> dict[str, Any]:
    """JSON-serialisable summary of a `FitResult` (without the model)."""
    return {
        "best_epoch": result.best_epoch,
        "best_score": None if math.isnan(result.best_score) else result.best_score,
        "monitor": result.monitor,
        "stopped_epoch": result.stopped_epoch,
        "train_seconds": result.train_seconds,
        "history": result.history,
    }
