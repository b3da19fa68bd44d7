"""Per-modality feature standardisation fitted on training data only (statistics go into checkpoints)."""

from __future__ import annotations

import numpy as np
import torch

Stats = dict[str, tuple[np.ndarray, np.ndarray]]


def fit_standardizer(features: dict[str, list[np.ndarray | None]], indices: list[int]) -> Stats:
    """Mean and std per feature dimension over all valid frames of the samples at ``indices``
    (whole NaN rows, frames without data, are left out: `emofuse.inputs.missing`)."""
    stats: Stats = {}
    for m, arrays in features.items():
        frames = [np.atleast_2d(arrays[i]) for i in indices if arrays[i] is not None]
        if not frames:
            continue
        stacked = np.concatenate(frames, axis=0).astype(np.float64)
        if np.isnan(stacked).any():
            stacked = stacked[~np.isnan(stacked).all(axis=1)]
            if stacked.shape[0] == 0:
                continue
        mean = stacked.mean(0)
        std = stacked.std(0)
        std[std < 1e-6] = 1.0
        stats[m] = (mean.astype(np.float32), std.astype(np.float32))
    return stats


def apply_standardizer(features: dict[str, list[np.ndarray | None]], stats: Stats) -> dict[str, list[np.ndarray | None]]:
    """Standardised copies (modalities without statistics pass through unchanged)."""
    out = {}
    for m, arrays in features.items():
        if m not in stats:
            out[m] = arrays
            continue
        mean, std = stats[m]
        out[m] = [None if a is None else ((a - mean) / std).astype(np.float32) for a in arrays]
    return out


def stats_to_tensors(stats: Stats) -> dict[str, torch.Tensor]:
    """Checkpoint extras: ``norm/<modality>/mean`` and ``.../std``."""
    out = {}
    for m, (mean, std) in stats.items():
        out[f"norm/{m}/mean"] = torch.from_numpy(mean)
        out[f"norm/{m}/std"] = torch.from_numpy(std)
    return out


def stats_from_tensors(tensors: dict[str, torch.Tensor]) -> Stats:
    stats: Stats = {}
    for key, value in tensors.items():
        parts = key.split("/")
        if len(parts) == 3 and parts[0] == "norm" and parts[2] == "mean":
            stats[parts[1]] = (value.numpy(), tensors[f"norm/{parts[1]}/std"].numpy())
    return stats
