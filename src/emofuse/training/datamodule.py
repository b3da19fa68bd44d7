"""`FeatureDataModule`: the training, validation and test `FeatureDataset`s with their loaders.

Handing the data to ``Trainer.fit`` as a LightningDataModule (instead of loaders) lets Lightning
set the loaders up for the strategy: with ``strategy="ddp"`` each process gets a
``DistributedSampler`` over its share of the samples (shuffled with the run's seed), with one
process the loaders are exactly the ones `make_loader` builds.
"""

from __future__ import annotations

import lightning
import torch
from torch.utils.data import DataLoader, WeightedRandomSampler

from emofuse.training.config import TrainConfig
from emofuse.training.data import FeatureDataset, collate

#: the smallest batch size used to validate and test (bigger batches only speed inference up)
EVAL_BATCH = 64


def make_loader(ds: FeatureDataset, batch_size: int, *, shuffle: bool = False, seed: int = 0,
                num_workers: int = 0, balanced: bool = False) -> DataLoader:
    """A DataLoader over ``ds`` using `collate`. When shuffling, a final batch of a single sample
    is dropped (BatchNorm cannot train on it); the generator is seeded for reproducibility.
    ``balanced`` (training only) draws ``len(ds)`` samples per epoch with replacement, each with
    probability proportional to 1 / (its class's count): every class equally likely."""
    drop_last = (shuffle or balanced) and len(ds) > batch_size and len(ds) % batch_size == 1
    gen = torch.Generator().manual_seed(int(seed)) if shuffle or balanced else None
    sampler = class_balanced_sampler(ds, gen) if balanced else None
    return DataLoader(ds, batch_size=batch_size, shuffle=shuffle and not balanced, sampler=sampler,
                      collate_fn=collate, drop_last=drop_last, generator=None if balanced else gen,
                      num_workers=num_workers, persistent_workers=num_workers > 0)


def class_balanced_sampler(ds: FeatureDataset, generator: torch.Generator | None) -> WeightedRandomSampler:
    """Draws with replacement, each sample weighted 1 / (count of its class) (a labelled set)."""
    if not ds.labels:
        raise ValueError("class-balanced sampling needs labelled training samples")
    labels = torch.as_tensor(list(ds.labels), dtype=torch.long)
    counts = torch.bincount(labels).double()
    weights = 1.0 / counts[labels]
    return WeightedRandomSampler(weights, num_samples=len(ds), replacement=True, generator=generator)


class FeatureDataModule(lightning.LightningDataModule):
    """Training (shuffled, seeded), validation and test sets of one fit.

    Args:
        train: the training samples (shuffled every epoch by a generator seeded with ``seed``).
        val: validation samples, or None / empty for none (then ``val_dataloader`` is not offered).
        test: test samples, or None.
        batch_size: training batch size; validation and test use ``max(batch_size, 64)``.
        num_workers: DataLoader worker processes (0 = load in the training process).
        seed: seed of the training shuffle.
        balanced: class-balanced training batches (``TrainConfig.sampler == "balanced"``).
    """

    def __init__(self, train: FeatureDataset, val: FeatureDataset | None = None,
                 test: FeatureDataset | None = None, *, batch_size: int = 32, num_workers: int = 0,
                 seed: int = 0, balanced: bool = False) -> None:
        super().__init__()
        self.balanced = bool(balanced)
        if len(train) == 0:
            raise ValueError("training set is empty")
        self.train_set = train
        self.val_set = val if val is not None and len(val) > 0 else None
        self.test_set = test if test is not None and len(test) > 0 else None
        self.batch_size = int(batch_size)
        self.num_workers = int(num_workers)
        self.seed = int(seed)
        # Lightning looks the hooks up on the object: without data there is no loader to offer
        if self.val_set is None:
            self.val_dataloader = None  # type: ignore[method-assign, assignment]
        if self.test_set is None:
            self.test_dataloader = None  # type: ignore[method-assign, assignment]

    @classmethod
    def from_config(cls, cfg: TrainConfig, train: FeatureDataset, val: FeatureDataset | None = None,
                    test: FeatureDataset | None = None) -> FeatureDataModule:
        """Batch size, workers and shuffle seed from a `TrainConfig`."""
        return cls(train, val, test, batch_size=cfg.batch_size, num_workers=cfg.num_workers, seed=cfg.seed,
                   balanced=cfg.sampler == "balanced")

    @property
    def has_val(self) -> bool:
        """Whether there are validation samples (early stopping and best weights need them)."""
        return self.val_set is not None

    @property
    def eval_batch_size(self) -> int:
        return max(self.batch_size, EVAL_BATCH)

    def train_dataloader(self) -> DataLoader:
        return make_loader(self.train_set, self.batch_size, shuffle=True, seed=self.seed,
                           num_workers=self.num_workers, balanced=self.balanced)

    def val_dataloader(self) -> DataLoader:
        if self.val_set is None:
            raise ValueError("this data module has no validation set")
        return make_loader(self.val_set, self.eval_batch_size, num_workers=self.num_workers)

    def test_dataloader(self) -> DataLoader:
        if self.test_set is None:
            raise ValueError("this data module has no test set")
        return make_loader(self.test_set, self.eval_batch_size, num_workers=self.num_workers)
