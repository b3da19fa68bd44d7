"""`EmotionTask`: the LightningModule that trains any `EmotionModel`."""

from __future__ import annotations

import math
import warnings
from typing import Any

import lightning
import numpy as np
import torch
from torch import Tensor, nn

from emofuse.evaluation.metrics import unweighted_accuracy
from emofuse.models.base import EmotionModel, ModelOutput
from emofuse.training.config import TrainConfig
from emofuse.training.data import modality_dropout
from emofuse.training.losses import CrossEntropy, FocalLoss


def _positions(loaders: Any) -> dict[str, int]:
    """Sample id -> position in the validation set (one loader over a `FeatureDataset`, ids unique)."""
    loader = loaders[0] if isinstance(loaders, (list, tuple)) else loaders
    ids = list(loader.dataset.ids)
    positions = {sid: i for i, sid in enumerate(ids)}
    if len(positions) != len(ids):
        raise ValueError("validation sample ids repeat: metrics cannot be gathered across processes")
    return positions


def _all_gather(tensor: Tensor) -> Tensor:
    """Every rank's ``tensor`` (the same shape on each), concatenated in rank order (no gradients)."""
    parts = [torch.empty_like(tensor) for _ in range(torch.distributed.get_world_size())]
    torch.distributed.all_gather(parts, tensor.contiguous())
    return torch.cat(parts)


def build_criterion(cfg: TrainConfig, class_weights: Tensor | None = None) -> nn.Module:
    """The classification loss selected by ``cfg`` (``ce`` or ``focal``)."""
    if cfg.loss == "focal":
        return FocalLoss(cfg.focal_gamma, cfg.focal_alpha, class_weights, cfg.label_smoothing)
    return CrossEntropy(class_weights, cfg.label_smoothing)


def lr_lambda(total_steps: int, warmup_ratio: float, schedule: str):
    """Multiplier of the base learning rate at optimiser step ``s`` (0-based): linear warmup over
    ``ceil(warmup_ratio * total_steps)`` steps, then cosine/linear decay to 0 (or constant)."""
    total = max(1, int(total_steps))
    warmup = min(total - 1, math.ceil(warmup_ratio * total)) if warmup_ratio > 0 else 0

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        if schedule == "constant":
            return 1.0
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        if schedule == "linear":
            return 1.0 - progress
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


class EmotionTask(lightning.LightningModule):
    """Trains an `EmotionModel` with the loss, optimiser and schedule from a `TrainConfig`.

    Logs ``train_loss`` (classification + auxiliary), ``train_cls_loss``, ``aux/<name>`` per
    step and ``val_loss``, ``val_wa``, ``val_ua`` per validation epoch (computed over the whole
    epoch, not averaged over batches; with several processes over the logits of every rank,
    gathered, so each rank scores the whole validation set; ``train_loss`` in ``history`` is the
    mean over every rank's steps). ``val_loss`` is the training criterion (class weights,
    focal term, label smoothing) without auxiliary losses. ``history`` collects one dict per
    epoch.
    """

    def __init__(self, model: EmotionModel, cfg: TrainConfig, class_weights: Tensor | None = None) -> None:
        super().__init__()
        self.model = model
        self.cfg = cfg
        self.criterion = build_criterion(cfg, class_weights)
        self.history: list[dict[str, float]] = []
        self._val_logits: list[Tensor] = []
        self._val_labels: list[Tensor] = []
        self._val_index: list[Tensor] = []  # several processes: each validation row's position in the set
        self._val_positions: dict[str, int] = {}
        self._train_losses: list[float] = []
        self._last_val: dict[str, float] = {}
        self._dropout_gen = torch.Generator().manual_seed(int(cfg.seed) + 7919)

    def forward(self, inputs: dict[str, Tensor], masks: dict[str, Tensor]) -> ModelOutput:
        return self.model(inputs, masks)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        inputs, masks = batch["inputs"], batch["masks"]
        if self.cfg.modality_dropout > 0:
            inputs, masks = modality_dropout(inputs, masks, self.cfg.modality_dropout, self._dropout_gen)
        out = self.model(inputs, masks)
        labels = batch["labels"]
        bsz = labels.shape[0]
        cls_loss = self.criterion(out.logits, labels)
        loss = cls_loss
        for name, value in out.aux_losses.items():
            loss = loss + value
            self.log(f"aux/{name}", value.detach().float(), batch_size=bsz, on_step=True, on_epoch=True)
        self.log("train_cls_loss", cls_loss.detach(), batch_size=bsz, on_step=True, on_epoch=True)
        self.log("train_loss", loss.detach(), batch_size=bsz, on_step=True, on_epoch=True, prog_bar=True)
        self._train_losses.append(float(loss.detach()))
        return loss

    def _distributed(self) -> bool:
        return self._trainer is not None and self.trainer.world_size > 1

    def on_validation_epoch_start(self) -> None:
        self._val_logits.clear()
        self._val_labels.clear()
        self._val_index.clear()
        self._val_positions = _positions(self.trainer.val_dataloaders) if self._distributed() else {}

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        out = self.model(batch["inputs"], batch["masks"])
        self._val_logits.append(out.logits.detach().float())
        self._val_labels.append(batch["labels"].detach())
        if self._val_positions:
            self._val_index.append(torch.tensor([self._val_positions[i] for i in batch["ids"]], dtype=torch.long,
                                                device=out.logits.device))

    def on_validation_epoch_end(self) -> None:
        if not self._val_logits:
            return
        logits = torch.cat(self._val_logits)
        labels = torch.cat(self._val_labels)
        if self._val_positions:  # several processes: the metrics of the whole validation set, on every rank
            logits, labels = self._gather(logits, labels, torch.cat(self._val_index))
        val_loss = float(self.criterion(logits, labels))
        y_true = labels.cpu().numpy()
        y_pred = logits.argmax(-1).cpu().numpy()
        metrics = {
            "val_loss": val_loss,
            "val_wa": float(np.mean(y_true == y_pred)),
            "val_ua": unweighted_accuracy(y_true, y_pred),
        }
        self._last_val = metrics
        with warnings.catch_warnings():  # gathered above: every rank logs the same value, nothing to reduce
            warnings.filterwarnings("ignore", message=r".*sync_dist=True.*")
            for name, value in metrics.items():
                self.log(name, value, prog_bar=name != "val_loss")
        self._val_logits.clear()
        self._val_labels.clear()
        self._val_index.clear()

    def _gather(self, logits: Tensor, labels: Tensor, index: Tensor) -> tuple[Tensor, Tensor]:
        """Every rank's validation logits and labels, one row per validation sample in dataset
        order: the distributed sampler gives each rank a share padded with repeated samples, which
        are dropped by their position."""
        every = [_all_gather(t) for t in (logits, labels, index)]
        positions, first = np.unique(every[2].cpu().numpy(), return_index=True)
        expected = len(self._val_positions)
        if len(positions) != expected:
            raise RuntimeError(f"validation gathered {len(positions)} of {expected} samples from the ranks")
        keep = torch.as_tensor(first, device=every[0].device)
        return every[0][keep], every[1][keep]

    def on_train_epoch_end(self) -> None:
        if self.trainer is not None and self.trainer.sanity_checking:
            return
        row: dict[str, float] = {"epoch": int(self.current_epoch)}
        if self._distributed():  # every rank's steps (each rank runs the same number of steps)
            total = torch.tensor([sum(self._train_losses), len(self._train_losses)], dtype=torch.float64,
                                 device=self.device)
            total = self.trainer.strategy.reduce(total, reduce_op="sum")
            if total[1] > 0:
                row["train_loss"] = float(total[0] / total[1])
        elif self._train_losses:
            row["train_loss"] = float(np.mean(self._train_losses))
        row.update(self._last_val)
        opt = self.optimizers()
        if opt is not None and not isinstance(opt, list):
            row["lr"] = float(opt.param_groups[0]["lr"])
        self.history.append(row)
        self._train_losses.clear()

    def configure_optimizers(self) -> dict[str, Any]:
        decay, no_decay = [], []
        for name, param in self.model.named_parameters():
            if not param.requires_grad:
                continue
            (no_decay if param.ndim < 2 or name.endswith(".bias") else decay).append(param)
        groups = [
            {"params": params, "weight_decay": wd}
            for params, wd in ((decay, self.cfg.weight_decay), (no_decay, 0.0))
            if params
        ]
        optimizer = torch.optim.AdamW(groups, lr=self.cfg.lr)
        total = int(self.trainer.estimated_stepping_batches) if self.trainer is not None else 1
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lr_lambda(total, self.cfg.warmup_ratio, self.cfg.schedule)
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
