"""In-memory feature dataset, padding collate and modality dropout.

A sample's modality is either a ``[T, D]`` array (a frame sequence), a ``[D]`` array (a clip
vector, treated as ``[1, D]``) or ``None`` (absent). `collate` pads to the longest sequence in
the batch and marks valid frames in boolean masks; an absent modality gets an all-False mask row
(and zero inputs), which is how models learn that it is missing. A whole NaN row of an array is a
frame without data (`emofuse.inputs.missing`, e.g. no face found): `collate` masks it like
padding (mask False, inputs 0); an array that is all NaN is the modality absent.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from emofuse.errors import DataError
from emofuse.inputs.missing import all_missing, rows_problem

Item = dict[str, Any]


class FeatureDataset(Dataset):
    """Per-modality feature arrays with labels and sample ids.

    Args:
        features: modality -> one entry per sample (array ``[T, D]`` / ``[D]`` or None).
        labels: class index per sample, or None for unlabelled data (collated as -1).
        ids: sample ids, used in error messages and predictions.
        dims: feature size per modality; needed only for a modality absent from every sample.
    """

    def __init__(
        self,
        features: dict[str, Sequence[np.ndarray | None]],
        labels: Sequence[int] | None,
        ids: Sequence[str],
        *,
        dims: dict[str, int] | None = None,
    ) -> None:
        if not features:
            raise DataError(None, "FeatureDataset needs at least one modality")
        self.ids = [str(i) for i in ids]
        n = len(self.ids)
        self.modalities: tuple[str, ...] = tuple(features)
        self.features: dict[str, list[np.ndarray | None]] = {}
        self.dims: dict[str, int] = {}
        for m, column in features.items():
            if len(column) != n:
                raise DataError(None, f"modality {m!r} has {len(column)} entries for {n} sample ids")
            self.features[m] = [self._check_array(m, self.ids[i], a) for i, a in enumerate(column)]
            sizes = {a.shape[1] for a in self.features[m] if a is not None}
            if dims is not None and m in dims:
                sizes.add(int(dims[m]))
            if len(sizes) > 1:
                raise DataError(None, f"modality {m!r} has inconsistent feature sizes {sorted(sizes)}")
            if not sizes:
                raise DataError(None, f"modality {m!r} is absent for every sample and no dims were given")
            self.dims[m] = sizes.pop()
        if labels is None:
            self.labels: list[int] | None = None
        else:
            if len(labels) != n:
                raise DataError(None, f"{len(labels)} labels for {n} sample ids")
            self.labels = [int(y) for y in labels]
            for sid, y in zip(self.ids, self.labels):
                if y < 0:
                    raise DataError(sid, f"negative class index {y}")

    @staticmethod
    def _check_array(modality: str, sample_id: str, array: Any) -> np.ndarray | None:
        if array is None:
            return None
        a = np.asarray(array)
        if a.ndim == 1:
            a = a[None, :]
        if a.ndim != 2 or a.shape[1] == 0:
            raise DataError(sample_id, f"{modality} features must be [T, D] or [D], got shape {a.shape}")
        if not np.issubdtype(a.dtype, np.number):
            raise DataError(sample_id, f"{modality} features are not numeric (dtype {a.dtype})")
        if a.shape[0] == 0:
            return None
        a = a.astype(np.float32, copy=False)
        if not np.isfinite(a).all():  # whole NaN rows are frames without data (inputs.missing)
            problem = rows_problem(a)
            if problem:
                raise DataError(sample_id, f"{modality} features {problem}")
            if all_missing(a):
                return None
        return a

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> Item:
        return {
            "id": self.ids[index],
            "label": -1 if self.labels is None else self.labels[index],
            "features": {m: self.features[m][index] for m in self.modalities},
            "dims": self.dims,
        }

    @property
    def num_samples_per_modality(self) -> dict[str, int]:
        """How many samples have each modality present."""
        return {m: sum(a is not None for a in col) for m, col in self.features.items()}

    def subset(self, indices: Iterable[int]) -> FeatureDataset:
        """A dataset holding the given samples (arrays are shared, not copied)."""
        idx = list(indices)
        return FeatureDataset(
            {m: [col[i] for i in idx] for m, col in self.features.items()},
            None if self.labels is None else [self.labels[i] for i in idx],
            [self.ids[i] for i in idx],
            dims=self.dims,
        )

    def _with_presence(self, keep: np.ndarray) -> FeatureDataset:
        """A dataset where modality ``j`` of sample ``i`` is kept iff ``keep[i, j]``; dims preserved."""
        out = FeatureDataset.__new__(FeatureDataset)
        out.ids = list(self.ids)
        out.modalities = self.modalities
        out.dims = dict(self.dims)
        out.labels = None if self.labels is None else list(self.labels)
        out.features = {
            m: [a if keep[i, j] else None for i, a in enumerate(self.features[m])]
            for j, m in enumerate(self.modalities)
        }
        return out

    def presence(self) -> np.ndarray:
        """Bool ``[N, M]``: which modalities each sample has (columns ordered as ``modalities``)."""
        return np.array([[self.features[m][i] is not None for m in self.modalities] for i in range(len(self))],
                        dtype=bool).reshape(len(self), len(self.modalities))

    def restrict(self, modalities: Iterable[str]) -> FeatureDataset:
        """Keep only ``modalities`` present; the others become absent for every sample (their
        inputs still exist, fully masked, so a model trained on all modalities accepts them)."""
        wanted = set(modalities)
        unknown = wanted - set(self.modalities)
        if unknown:
            raise DataError(None, f"unknown modalities {sorted(unknown)}; dataset has {list(self.modalities)}")
        keep = self.presence() & np.array([m in wanted for m in self.modalities])[None, :]
        return self._with_presence(keep)

    def drop_modalities(self, rate: float, seed: int | Sequence[int]) -> FeatureDataset:
        """Hide each present modality with probability ``rate`` (reproducibly, from ``seed``),
        never hiding every present modality of a sample."""
        present = self.presence()
        rng = np.random.default_rng(seed)
        keep = drop_mask(present, rate, rng.random(present.shape), rng.random(present.shape))
        return self._with_presence(keep)


def drop_mask(present: np.ndarray | Tensor, rate: float, draw: Any, tie_break: Any) -> Any:
    """Which modalities survive dropout: ``present & (draw >= rate)``, and where that leaves a
    sample with none, its present modality with the highest ``tie_break`` is restored.

    Works on numpy arrays and torch tensors alike (``[N, M]`` each)."""
    keep = present & (draw >= rate)
    lost_all = present.any(1) & ~keep.any(1)
    if isinstance(present, Tensor):
        rescue = torch.where(present, tie_break, torch.full_like(tie_break, -1.0)).argmax(1)
        restored = torch.nn.functional.one_hot(rescue, present.shape[1]).bool() & lost_all[:, None]
    else:
        rescue = np.where(present, tie_break, -1.0).argmax(1)
        restored = np.eye(present.shape[1], dtype=bool)[rescue] & lost_all[:, None]
    return keep | restored


def modality_dropout(
    inputs: dict[str, Tensor],
    masks: dict[str, Tensor],
    rate: float,
    generator: torch.Generator | None = None,
) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Per sample, hide each present modality with probability ``rate`` by zeroing its mask row
    and inputs; a sample always keeps at least one of the modalities it had."""
    if rate <= 0 or len(masks) == 0:
        return inputs, masks
    names = list(masks)
    first = masks[names[0]]
    present = torch.stack([masks[m].any(-1) for m in names], dim=1)
    shape = present.shape
    draw = torch.rand(shape, generator=generator, device="cpu").to(first.device)
    tie = torch.rand(shape, generator=generator, device="cpu").to(first.device)
    keep = drop_mask(present, rate, draw, tie)
    new_inputs, new_masks = dict(inputs), dict(masks)
    for j, m in enumerate(names):
        k = keep[:, j]
        new_masks[m] = masks[m] & k[:, None]
        if m in inputs:
            new_inputs[m] = inputs[m] * k.view(-1, *([1] * (inputs[m].ndim - 1))).to(inputs[m].dtype)
    return new_inputs, new_masks


def collate(batch: Sequence[Item]) -> dict[str, Any]:
    """Stack items from `FeatureDataset` into padded tensors.

    Returns ``{"inputs": {m: float32[B, Tmax, D]}, "masks": {m: bool[B, Tmax]},
    "labels": long[B], "ids": list[str]}``; ``Tmax >= 1`` even when the modality is absent
    from the whole batch.
    """
    if not batch:
        raise ValueError("cannot collate an empty batch")
    dims: dict[str, int] = batch[0]["dims"]
    bsz = len(batch)
    inputs: dict[str, Tensor] = {}
    masks: dict[str, Tensor] = {}
    for m, d in dims.items():
        arrays = [item["features"][m] for item in batch]
        t_max = max([a.shape[0] for a in arrays if a is not None], default=1)
        x = torch.zeros(bsz, t_max, d, dtype=torch.float32)
        mask = torch.zeros(bsz, t_max, dtype=torch.bool)
        for i, a in enumerate(arrays):
            if a is not None:
                values = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))
                missing = torch.isnan(values).all(1)  # whole NaN rows: frames without data
                if missing.any():
                    values = values.masked_fill(missing[:, None], 0.0)
                x[i, : a.shape[0]] = values
                mask[i, : a.shape[0]] = ~missing
        inputs[m] = x
        masks[m] = mask
    labels = torch.tensor([int(item["label"]) for item in batch], dtype=torch.long)
    return {"inputs": inputs, "masks": masks, "labels": labels, "ids": [item["id"] for item in batch]}
