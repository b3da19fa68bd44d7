"""Training hyper-parameters: the `TrainConfig` dataclass and its YAML/dict loader."""

from __future__ import annotations

import reprlib
import dataclasses
import functools
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emofuse.errors import ConfigError
from emofuse.typecheck import conforms, describe

LOSSES = ("ce", "focal")
MONITORS = {"val_ua": "max", "val_wa": "max", "val_loss": "min", "val_wf1": "max", "val_mf1": "max"}
SCHEDULES = ("cosine", "linear", "constant")
PRECISIONS = ("auto", "32", "32-true", "16-mixed", "bf16-mixed", "64", "64-true")
ACCELERATORS = ("auto", "cpu", "gpu", "cuda")
#: Lightning strategies whose processes each run `fit` to its end (launched by torchrun, SLURM or
#: Lightning itself); spawn-based and sharded strategies are not offered
STRATEGIES = ("auto", "ddp", "ddp_find_unused_parameters_true")
#: How training batches are drawn: a seeded shuffle, or class-balanced (each class equally likely).
SAMPLERS = ("shuffle", "balanced")


@dataclass
class TrainConfig:
    """Everything `fit` needs besides the model and the data.

    Schedule: the learning rate rises linearly from 0 to ``lr`` over the first
    ``warmup_ratio`` of all optimisation steps, then decays to 0 at the last step following
    ``schedule`` (``"cosine"`` half-cosine, ``"linear"`` straight line, ``"constant"`` no decay).
    The scheduler steps once per optimiser step.

    ``monitor`` picks the early-stopping / best-weights metric: ``val_ua`` and ``val_wa`` are
    maximised, ``val_loss`` minimised. ``modality_dropout`` is the per-sample, per-modality
    probability of hiding a present modality during training (at least one present modality is
    always kept). ``precision="auto"`` means ``bf16-mixed`` (or ``16-mixed``) on a GPU and
    ``32-true`` on CPU; ``accelerator="auto"`` uses a CUDA GPU when available, else the CPU;
    ``devices="auto"`` means one device. ``devices`` > 1 or ``num_nodes`` > 1 run one process per
    device (``strategy="auto"`` then means Lightning's choice, ``"ddp"`` asks for
    DistributedDataParallel); see `emofuse.training.fit.build_trainer`.

    ``refit``: after early stopping, `emofuse.training.run_kfold` trains a fresh model (same seed)
    on the training **and** validation speakers for the number of epochs early stopping chose
    (``best_epoch + 1``) and keeps its last weights, as the logistic-regression baseline refits
    on train + validation with its chosen C. Test speakers are never seen; training costs about
    twice as long.

    ``sampler``: ``"shuffle"`` (each sample once per epoch, seeded order) or ``"balanced"``
    (class-balanced sampling: as many draws per epoch as samples, with replacement, each class
    equally likely; `emofuse.training.datamodule.make_loader`).
    """

    lr: float = 1e-3
    weight_decay: float = 1e-2
    batch_size: int = 32
    max_epochs: int = 60
    min_epochs: int = 1
    warmup_ratio: float = 0.1
    schedule: str = "cosine"
    loss: str = "ce"
    focal_alpha: float | None = None
    focal_gamma: float = 2.0
    class_weights: bool = False
    grad_clip: float | None = 1.0
    patience: int = 10
    monitor: str = "val_ua"
    seed: int = 0
    modality_dropout: float = 0.0
    label_smoothing: float = 0.0
    precision: str = "auto"
    accelerator: str = "auto"
    devices: int | str = "auto"
    strategy: str = "auto"
    num_nodes: int = 1
    num_workers: int = 0
    progress: bool = False
    refit: bool = False
    sampler: str = "shuffle"

    def __post_init__(self) -> None:
        # YAML 1.1 reads "1e-3" as a string: accept numeric strings for float fields.
        for name in ("lr", "weight_decay", "warmup_ratio", "focal_alpha", "focal_gamma", "grad_clip",
                     "modality_dropout", "label_smoothing"):
            value = getattr(self, name)
            if isinstance(value, str):
                try:
                    setattr(self, name, float(value))
                except ValueError:
                    raise ConfigError(f"train.{name}={reprlib.repr(value)} is not a number") from None
            elif isinstance(value, int) and not isinstance(value, bool):
                setattr(self, name, float(value))
        if isinstance(self.precision, int) and not isinstance(self.precision, bool):
            self.precision = str(self.precision)
        for name, annotation in _field_types().items():
            if not conforms(getattr(self, name), annotation):
                raise ConfigError(f"train.{name}={reprlib.repr(getattr(self, name))} must be {describe(annotation)}")
        self._check()

    def _check(self) -> None:
        def bad(name: str, why: str) -> ConfigError:
            return ConfigError(f"train.{name}={reprlib.repr(getattr(self, name))} {why}")

        if not self.lr > 0:
            raise bad("lr", "must be > 0")
        if self.weight_decay < 0:
            raise bad("weight_decay", "must be >= 0")
        for name in ("batch_size", "max_epochs", "min_epochs"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise bad(name, "must be a positive integer")
        if self.min_epochs > self.max_epochs:
            raise bad("min_epochs", f"must not exceed max_epochs={self.max_epochs}")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise bad("warmup_ratio", "must be in [0, 1)")
        if self.schedule not in SCHEDULES:
            raise bad("schedule", f"must be one of {', '.join(SCHEDULES)}")
        if self.loss not in LOSSES:
            raise bad("loss", f"must be one of {', '.join(LOSSES)}")
        if self.focal_alpha is not None and not self.focal_alpha > 0:
            raise bad("focal_alpha", "must be > 0 or null")
        if self.focal_gamma < 0:
            raise bad("focal_gamma", "must be >= 0")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise bad("grad_clip", "must be > 0 or null")
        if not isinstance(self.patience, int) or self.patience < 1:
            raise bad("patience", "must be a positive integer")
        if self.monitor not in MONITORS:
            raise bad("monitor", f"must be one of {', '.join(MONITORS)}")
        if not 0.0 <= self.modality_dropout < 1.0:
            raise bad("modality_dropout", "must be in [0, 1)")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise bad("label_smoothing", "must be in [0, 1)")
        if str(self.precision) not in PRECISIONS:
            raise bad("precision", f"must be one of {', '.join(PRECISIONS)}")
        if self.accelerator not in ACCELERATORS:
            raise bad("accelerator", "must be auto, cpu or gpu")
        if not (self.devices == "auto" or (isinstance(self.devices, int) and self.devices >= 1)):
            raise bad("devices", "must be 'auto' or a positive integer")
        if self.strategy not in STRATEGIES:
            raise bad("strategy", f"must be one of {', '.join(STRATEGIES)}")
        if not isinstance(self.num_nodes, int) or isinstance(self.num_nodes, bool) or self.num_nodes < 1:
            raise bad("num_nodes", "must be a positive integer")
        if not isinstance(self.refit, bool):
            raise bad("refit", "must be true or false")
        if not isinstance(self.num_workers, int) or self.num_workers < 0:
            raise bad("num_workers", "must be a non-negative integer")
        if self.sampler not in SAMPLERS:
            raise bad("sampler", f"must be one of {', '.join(SAMPLERS)}")

    @property
    def monitor_mode(self) -> str:
        """``"max"`` or ``"min"``: the direction in which ``monitor`` improves."""
        return MONITORS[self.monitor]

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON/YAML-serialisable dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Build from a dict; unknown keys raise `ConfigError` naming them."""
        if not isinstance(values, dict):
            raise ConfigError(f"train config must be a mapping, got {type(values).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(map(str, set(values) - known))
        if unknown:
            raise ConfigError(
                f"unknown train config key(s): {', '.join(unknown)}; valid keys: {', '.join(sorted(known))}"
            )
        return cls(**values)

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with some fields changed (validated)."""
        return self.from_dict({**self.to_dict(), **changes})


@functools.cache
def _field_types() -> dict[str, Any]:
    """`TrainConfig` field name -> its type annotation, evaluated."""
    return typing.get_type_hints(TrainConfig)


def load_train_config(source: str | Path | dict[str, Any] | TrainConfig | None) -> TrainConfig:
    """A `TrainConfig` from a YAML file, a dict, an existing config or None (defaults).

    A YAML file may hold the options at the top level or under a ``train:`` key.
    """
    if source is None:
        return TrainConfig()
    if isinstance(source, TrainConfig):
        return source
    if isinstance(source, dict):
        return TrainConfig.from_dict(source)
    from emofuse.recipes import parse_yaml, read_config_text

    path = Path(source)
    values = parse_yaml(read_config_text(path), str(path))
    if values is None:
        return TrainConfig()
    if isinstance(values, dict) and set(values) == {"train"}:
        values = values["train"]
    try:
        return TrainConfig.from_dict(values)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
