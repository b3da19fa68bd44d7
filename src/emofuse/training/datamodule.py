"""`FeatureDataModule`: the training, validation and test `FeatureDataset`s with their loaders.

Handing the data to ``Trainer.fit`` as a LightningDataModule (instead of loaders) lets Lightning
set the loaders up for the strategy: with ``strategy="ddp"`` each process gets a
``DistributedSampler`` over its share of the samples (training: shuffled with the run's seed, built
here; validation and test: Lightning's, in order, padded, gathered by `EmotionTask`), with one
process the loaders are exactly the ones `make_loader` builds.
"""

from __future__ import annotations

import lightning
import torch
from torch.utils.data import DataLoader, DistributedSampler, Sampler, WeightedRandomSampler

from emofuse.training.config import TrainConfig
from emofuse.training.data import FeatureDataset, collate

#: the smallest batch size used to validate and test (bigger batches only speed inference up)
EVAL_BATCH = 64


def make_loader(ds: FeatureDataset, batch_size: int, *, shuffle: bool = False, seed: int = 0,
                num_workers: int = 0, balanced: bool = False, replica: tuple[int, int] | None = None) -> DataLoader:
    """A DataLoader over ``ds`` using `collate`. When shuffling, a final batch of a single sample
    is dropped (BatchNorm cannot train on it); the generator is seeded for reproducibility.
    ``balanced`` (training only) draws ``len(ds)`` samples per epoch with replacement, each with
    probability proportional to 1 / (its class's count): every class equally likely.

    ``replica=(rank, world_size)`` (training with several processes): a shuffled loader reads this
    rank's share through a ``DistributedSampler`` seeded with ``seed`` (Lightning sets its epoch);
    a balanced one is split by Lightning; the single-sample batch rule applies to the share."""
    share = len(ds) if replica is None else -(-len(ds) // replica[1])
    drop_last = (shuffle or balanced) and share > batch_size and share % batch_size == 1
    gen = torch.Generator().manual_seed(int(seed)) if shuffle or balanced else None
    sampler: Sampler | None = class_balanced_sampler(ds, gen) if balanced else None
    if replica is not None and shuffle and not balanced:
        sampler = DistributedSampler(ds, num_replicas=replica[1], rank=replica[0], shuffle=True, seed=int(seed))
        shuffle, gen = False, None
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
        trainer = self.trainer
        replica = (trainer.global_rank, trainer.world_size) if trainer is not None and trainer.world_size > 1 else None
        return make_loader(self.train_set, self.batch_size, shuffle=True, seed=self.seed,
                           num_workers=self.num_workers, balanced=self.balanced, replica=replica)

    def val_dataloader(self) -> DataLoader:
        if self.val_set is None:
            raise ValueError("this data module has no validation set")
        return make_loader(self.val_set, self.eval_batch_size, num_workers=self.num_workers)

    def test_dataloader(self) -> DataLoader:
        if self.test_set is None:
            raise ValueError("this data module has no test set")
        return make_loader(self.test_set, self.eval_batch_size, num_workers=self.num_workers)
