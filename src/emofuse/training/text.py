"""Fine-tuning a text encoder end to end (`emofuse.encoders.text_classifier.TextClassifier`) with Lightning.

A text recipe (``configs/text/<name>.yaml``, `load_text_recipe`) names the encoder (the offline MiniLM
or a local Hugging Face folder), the head, the optimisation (layer-wise learning-rate decay, frozen
lower layers, the `TrainConfig` keys) and the conversation window (`emofuse.inputs.conversation`).
`finetune_text` trains on token windows with length-bucketed batches (`LengthBucketSampler`), keeps the
weights of the best validation epoch (``train.monitor``, e.g. ``val_wf1``), and, given a work folder,
resumes an interrupted run from its last epoch (Lightning's checkpoint read with ``weights_only=True``).
Mixed precision follows `TrainConfig.precision` (``auto``: bf16/fp16 on a GPU, fp32 on the CPU).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Sampler

from emofuse.encoders.text_classifier import TextClassifier
from emofuse.errors import ConfigError
from emofuse.inputs.conversation import ContextSpec
from emofuse.training.config import TrainConfig

_RECIPE_KEYS = {"name", "description", "encoder", "head", "optim", "context", "train", "bucket_by_length"}


@dataclass
class TextRecipe:
    """What `finetune_text` trains (the YAML keys of a text recipe)."""

    name: str
    encoder: str | None = None  # None: the offline all-MiniLM-L6-v2; else a local folder
    head: dict[str, Any] = field(default_factory=dict)  # pooling, dropout, multi_label
    optim: dict[str, Any] = field(default_factory=dict)  # layer_lr_decay, freeze_layers
    context: ContextSpec = field(default_factory=ContextSpec)
    train: dict[str, Any] = field(default_factory=dict)
    bucket_by_length: bool = True
    description: str = ""

    @property
    def train_config(self) -> TrainConfig:
        return TrainConfig.from_dict(dict(self.train))

    @property
    def layer_lr_decay(self) -> float:
        return float(self.optim.get("layer_lr_decay", 1.0))

    @property
    def freeze_layers(self) -> int:
        return int(self.optim.get("freeze_layers", 0))

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "encoder": self.encoder, "head": dict(self.head), "optim": dict(self.optim),
                "context": self.context.to_dict(), "train": dict(self.train),
                "bucket_by_length": self.bucket_by_length, "description": self.description}

    def encoder_folder(self) -> Path:
        from emofuse.features.text import _model_folder

        return _model_folder(self.encoder)


def text_recipe_names() -> list[str]:
    """Built-in text recipes (``emofuse/configs/text/*.yaml``)."""
    from importlib import resources

    folder = resources.files("emofuse") / "configs" / "text"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_text_recipe(name_or_path: str | Path) -> TextRecipe:
    """A built-in text recipe by name, or a YAML file; every key checked (`ConfigError` naming it)."""
    from importlib import resources

    from emofuse.recipes import parse_yaml, read_config_text

    path = Path(name_or_path)
    if not path.suffix and str(name_or_path) in text_recipe_names():
        path = Path(str(resources.files("emofuse") / "configs" / "text" / f"{name_or_path}.yaml"))
    if not path.is_file():
        raise ConfigError(f"unknown text recipe {name_or_path!r}; built-in: {', '.join(text_recipe_names())}")
    raw = parse_yaml(read_config_text(path), str(path)) or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a text recipe is a mapping")
    unknown = sorted(set(raw) - _RECIPE_KEYS)
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {', '.join(unknown)}; valid: {', '.join(sorted(_RECIPE_KEYS))}")
    for key in ("head", "optim", "train"):
        if not isinstance(raw.get(key, {}), dict):
            raise ConfigError(f"{path}: {key} must be a mapping")
    recipe = TextRecipe(name=str(raw.get("name") or path.stem), encoder=raw.get("encoder"), head=raw.get("head", {}),
                        optim=raw.get("optim", {}), context=ContextSpec.from_dict(raw.get("context"), f"{path}: context"),
                        train=raw.get("train", {}), bucket_by_length=bool(raw.get("bucket_by_length", True)),
                        description=str(raw.get("description", "")))
    unknown = sorted(set(recipe.head) - {"pooling", "dropout", "multi_label"}) + \
        sorted(set(recipe.optim) - {"layer_lr_decay", "freeze_layers"})
    if unknown:
        raise ConfigError(f"{path}: unknown head/optim key(s) {', '.join(unknown)}")
    recipe.train_config  # noqa: B018 - validates the train section
    return recipe


# -- data ------------------------------------------------------------------------------------------

class TokenDataset(torch.utils.data.Dataset):
    """Token windows ``[T, 2]`` (id, segment) with a class index or a multi-hot row per sample."""

    def __init__(self, windows: Sequence[np.ndarray], targets: np.ndarray | None) -> None:
        self.windows = [np.asarray(w, np.float32) for w in windows]
        self.targets = None if targets is None else np.asarray(targets)
        if self.targets is not None and len(self.targets) != len(self.windows):
            raise ValueError(f"{len(self.targets)} targets for {len(self.windows)} windows")

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, i: int) -> tuple[np.ndarray, Any]:
        return self.windows[i], (None if self.targets is None else self.targets[i])

    @property
    def lengths(self) -> list[int]:
        return [w.shape[0] for w in self.windows]


def collate_tokens(batch: Sequence[tuple[np.ndarray, Any]]) -> dict[str, Tensor]:
    """Pad windows to the longest in the batch: ``inputs [B, T, 2]``, ``mask [B, T]``, ``targets``."""
    longest = max(w.shape[0] for w, _ in batch)
    inputs = torch.zeros(len(batch), longest, 2)
    mask = torch.zeros(len(batch), longest, dtype=torch.bool)
    for i, (w, _) in enumerate(batch):
        inputs[i, :w.shape[0]] = torch.from_numpy(w)
        mask[i, :w.shape[0]] = True
    out = {"inputs": inputs, "mask": mask}
    if batch[0][1] is not None:
        targets = np.stack([np.asarray(t) for _, t in batch])
        out["targets"] = torch.from_numpy(targets).float() if targets.ndim == 2 else torch.from_numpy(targets).long()
    return out


class LengthBucketSampler(Sampler[list[int]]):
    """Batches of similar length: each epoch the samples are shuffled (seeded), cut into pools of
    ``pool`` batches, sorted by length within a pool, batched, and the batches shuffled again. Less
    padding than a plain shuffle, still a different order every epoch."""

    def __init__(self, lengths: Sequence[int], batch_size: int, seed: int = 0, pool: int = 50) -> None:
        self.lengths, self.batch_size, self.seed, self.pool = list(lengths), int(batch_size), int(seed), int(pool)
        self.epoch = 0

    def __iter__(self) -> Iterator[list[int]]:
        rng = random.Random(self.seed * 1_000_003 + self.epoch)
        self.epoch += 1
        order = list(range(len(self.lengths)))
        rng.shuffle(order)
        size = self.batch_size * self.pool
        batches = []
        for start in range(0, len(order), size):
            chunk = sorted(order[start:start + size], key=lambda i: self.lengths[i])
            batches += [chunk[k:k + self.batch_size] for k in range(0, len(chunk), self.batch_size)]
        rng.shuffle(batches)
        return iter(batches)

    def __len__(self) -> int:
        size = self.batch_size * self.pool
        n = len(self.lengths)
        return sum(math.ceil(min(size, n - s) / self.batch_size) for s in range(0, n, size))


def token_loader(ds: TokenDataset, batch_size: int, *, train: bool = False, seed: int = 0,
                 bucket_by_length: bool = True) -> DataLoader:
    """Training: length-bucketed (or shuffled) batches; evaluation: in order."""
    if train and bucket_by_length:
        return DataLoader(ds, batch_sampler=LengthBucketSampler(ds.lengths, batch_size, seed), collate_fn=collate_tokens)
    gen = torch.Generator().manual_seed(seed) if train else None
    return DataLoader(ds, batch_size=batch_size, shuffle=train, generator=gen, collate_fn=collate_tokens)


# -- the Lightning task ----------------------------------------------------------------------------

class TextTask(lightning.LightningModule):
    """Cross-entropy (or one BCE per class for a multi-label head) on a `TextClassifier`; validation
    metrics over the whole epoch: ``val_loss``, ``val_wa``, ``val_ua``, ``val_wf1``, ``val_mf1``."""

    def __init__(self, model: TextClassifier, cfg: TrainConfig, layer_lr_decay: float = 1.0) -> None:
        super().__init__()
        self.model, self.cfg, self.layer_lr_decay = model, cfg, float(layer_lr_decay)
        self.history: list[dict[str, float]] = []
        self._val: list[tuple[Tensor, Tensor]] = []
        self._losses: list[float] = []

    def _loss(self, logits: Tensor, targets: Tensor) -> Tensor:
        if self.model.multi_label:
            return torch.nn.functional.binary_cross_entropy_with_logits(logits.float(), targets)
        return torch.nn.functional.cross_entropy(logits.float(), targets, label_smoothing=self.cfg.label_smoothing)

    def training_step(self, batch: dict[str, Tensor], _: int) -> Tensor:
        logits, _ = self.model(batch["inputs"], batch["mask"])
        loss = self._loss(logits, batch["targets"])
        self.log("train_loss", loss.detach(), batch_size=logits.shape[0], on_step=True, on_epoch=True, prog_bar=True)
        self._losses.append(float(loss.detach()))
        return loss

    def validation_step(self, batch: dict[str, Tensor], _: int) -> None:
        logits, _ = self.model(batch["inputs"], batch["mask"])
        self._val.append((logits.detach().float().cpu(), batch["targets"].detach().cpu()))

    def on_validation_epoch_end(self) -> None:
        if not self._val:
            return
        logits = torch.cat([v[0] for v in self._val])
        targets = torch.cat([v[1] for v in self._val])
        self._val.clear()
        metrics = {"val_loss": float(self._loss(logits, targets)), **validation_scores(self.model, logits, targets)}
        for name, value in metrics.items():
            self.log(name, value, prog_bar=name in ("val_wf1", "val_mf1"))
        self._last = metrics

    def on_train_epoch_end(self) -> None:
        row = {"epoch": int(self.current_epoch), "train_loss": float(np.mean(self._losses)) if self._losses else math.nan}
        row.update(getattr(self, "_last", {}))
        self.history.append(row)
        self._losses.clear()

    def configure_optimizers(self) -> dict[str, Any]:
        from emofuse.training.task import lr_lambda

        groups = self.model.parameter_groups(self.cfg.lr, self.cfg.weight_decay, self.layer_lr_decay)
        optimizer = torch.optim.AdamW(groups, lr=self.cfg.lr)
        total = int(self.trainer.estimated_stepping_batches) if self.trainer is not None else 1
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(total, self.cfg.warmup_ratio, self.cfg.schedule))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def validation_scores(model: TextClassifier, logits: Tensor, targets: Tensor) -> dict[str, float]:
    """WA / UA / weighted and macro F1 of single-label logits; micro and macro F1 at 0.5 for multi-label."""
    from sklearn.metrics import f1_score

    from emofuse.evaluation.metrics import unweighted_accuracy

    if model.multi_label:
        pred = (torch.sigmoid(logits) >= 0.5).numpy().astype(int)
        true = targets.numpy().astype(int)
        return {"val_mf1": float(f1_score(true, pred, average="macro", zero_division=0)),
                "val_wf1": float(f1_score(true, pred, average="micro", zero_division=0))}
    pred, true = logits.argmax(-1).numpy(), targets.numpy()
    return {"val_wa": float(np.mean(pred == true)), "val_ua": unweighted_accuracy(true, pred),
            "val_wf1": float(f1_score(true, pred, average="weighted", zero_division=0)),
            "val_mf1": float(f1_score(true, pred, average="macro", zero_division=0))}


# -- fitting ---------------------------------------------------------------------------------------

@dataclass
class TextFitResult:
    """The fine-tuned classifier (best validation epoch, CPU, eval mode) and how training went."""

    model: TextClassifier
    best_epoch: int
    best_score: float
    history: list[dict[str, float]]
    train_seconds: float


def build_classifier(recipe: TextRecipe, num_classes: int) -> TextClassifier:
    """The recipe's classifier, its encoder starting from the pretrained folder, lower layers frozen."""
    model = TextClassifier.from_pretrained(recipe.encoder_folder(), num_classes, **recipe.head)
    model.freeze_lower_layers(recipe.freeze_layers)
    return model


def finetune_text(recipe: TextRecipe, train: TokenDataset, val: TokenDataset | None, num_classes: int, *,
                  seed: int | None = None, work_dir: str | Path | None = None, model: TextClassifier | None = None,
                  callbacks: Sequence[lightning.Callback] = ()) -> TextFitResult:
    """Fine-tune ``recipe``'s classifier on ``train``, keeping the best epoch on ``val`` by
    ``train.monitor``. With ``work_dir`` the last epoch is checkpointed there and a rerun resumes it."""
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

    from emofuse.training.fit import BestCheckpoint, _quiet, _restore_determinism, build_trainer, load_best_weights

    cfg = recipe.train_config if seed is None else recipe.train_config.replace(seed=int(seed))
    lightning.seed_everything(cfg.seed, workers=True, verbose=False)
    model = model if model is not None else build_classifier(recipe, num_classes)
    task = TextTask(model.train(), cfg, recipe.layer_lr_decay)
    train_loader = token_loader(train, cfg.batch_size, train=True, seed=cfg.seed, bucket_by_length=recipe.bucket_by_length)
    val_loader = token_loader(val, max(cfg.batch_size, 64)) if val is not None and len(val) else None
    work = Path(work_dir) if work_dir is not None else None
    import tempfile

    with tempfile.TemporaryDirectory(prefix="emofuse-text-") as tmp, _quiet(not cfg.progress), _restore_determinism():
        root = work or Path(tmp)
        calls: list[lightning.Callback] = list(callbacks)
        best = BestCheckpoint(root / "best", cfg.monitor, cfg.monitor_mode) if val_loader is not None else None
        if best is not None:
            calls += [EarlyStopping(monitor=cfg.monitor, mode=cfg.monitor_mode, patience=cfg.patience), best]
        if work is not None:
            calls.append(ModelCheckpoint(dirpath=work, filename="last", save_last=False, save_top_k=1,
                                         monitor=None, enable_version_counter=False))
        trainer = build_trainer(cfg, root, calls, deterministic=False, enable_checkpointing=True)
        resume = work / "last.ckpt" if work is not None and (work / "last.ckpt").is_file() else None
        start = time.perf_counter()
        trainer.fit(task, train_loader, val_loader, ckpt_path=str(resume) if resume else None, weights_only=True)
        seconds = time.perf_counter() - start
        kept = load_best_weights(task, best) if best is not None else None
    stopped = int(task.history[-1]["epoch"]) if task.history else cfg.max_epochs - 1
    best_epoch, best_score = kept if kept is not None else (stopped, math.nan)
    return TextFitResult(model.cpu().eval(), best_epoch, best_score, [dict(r) for r in task.history], seconds)


@torch.no_grad()
def predict_logits(model: TextClassifier, ds: TokenDataset, batch_size: int = 64) -> np.ndarray:
    """Logits ``[N, C]`` in dataset order (eval mode; batches sorted by length for speed)."""
    was = model.training
    model.eval()
    order = np.argsort(ds.lengths, kind="stable")
    out = np.zeros((len(ds), model.num_classes), np.float32)
    device = next(model.parameters()).device
    try:
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            batch = collate_tokens([(ds.windows[i], None) for i in idx])
            logits, _ = model(batch["inputs"].to(device), batch["mask"].to(device))
            out[idx] = logits.float().cpu().numpy()
    finally:
        model.train(was)
    return out
