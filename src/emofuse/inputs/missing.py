"""Missing frames in feature arrays: whole NaN rows.

A feature sequence ``[T, D]`` may hold frames without data (a video frame where no face was
found): such a frame is a row of NaN, never invented values. The rest of the pipeline reads them
as missing: `emofuse.training.data.collate` masks them (mask False, inputs 0),
`emofuse.inputs.normalize.fit_standardizer` leaves them out of the statistics,
`emofuse.features.store.pool_vector` pools over the other frames, and an array that is all NaN
means the modality is absent (`emofuse.inputs.plan.modality_arrays` turns it into None).

A row that is only partly NaN, or any infinite value, is still an error everywhere.
"""

from __future__ import annotations

import numpy as np


def missing_rows(array: np.ndarray) -> np.ndarray:
    """Bool ``[T]``: which rows of a ``[T, D]`` array are entirely NaN (frames without data)."""
    array = np.asarray(array)
    if array.ndim == 1:
        array = array[None, :]
    return np.isnan(array).all(axis=1)


def rows_problem(array: np.ndarray, allow_missing: bool = True) -> str | None:
    """Why ``array`` ``[T, D]`` is not valid features, or None: every value finite, except (when
    ``allow_missing``) rows that are entirely NaN."""
    array = np.asarray(array)
    finite = np.isfinite(array)
    if finite.all():
        return None
    if not allow_missing:
        return "contain NaN or infinite values"
    if np.isinf(array).any():
        return f"contain {int(np.isinf(array).sum())} infinite value(s)"
    rows = np.atleast_2d(np.isnan(array))
    partial = rows.any(axis=1) & ~rows.all(axis=1)
    if partial.any():
        return (f"contain NaN in {int(partial.sum())} row(s) that are not entirely NaN "
                f"(only a whole NaN row marks a missing frame)")
    return None


def all_missing(array: np.ndarray | None) -> bool:
    """Whether ``array`` has no frame with data (every row NaN); False for None."""
    return array is not None and np.asarray(array).size > 0 and bool(np.isnan(array).all())
