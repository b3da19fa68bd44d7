"""FER2013 (48×48 grey faces, 7 expressions) with its official Training / PublicTest / PrivateTest split.

The corpus is an image set, not a set of clips with speakers, so it has no `DatasetSpec`: it trains
and benchmarks the face-expression encoders (`emofuse train-face`, `emofuse benchmark fer2013`).
PublicTest is the validation set (model selection), PrivateTest the test set. FER2013 has no subject
ids, so its split is *not* subject-independent: the same person may appear in two parts. The images
are research-only data (no open licence) and are never shipped with emofuse.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from emofuse.errors import DataError

if TYPE_CHECKING:  # numpy is imported when the corpus is loaded: `emofuse COMMAND --help` stays light
    import numpy as np

#: FER2013's label order (0..6), in this project's spelling of the emotions.
FER_LABELS = ("angry", "disgust", "fearful", "happy", "sad", "surprised", "neutral")
USAGES = ("Training", "PublicTest", "PrivateTest")
#: Where the corpus lies below the data root.
FER_RELATIVE_PATH = Path("fer2013") / "fer2013.npz"


@dataclass(frozen=True)
class FerSplit:
    """One part of FER2013: ``images`` uint8 [N, 48, 48] and ``labels`` int64 [N] (0..6)."""

    name: str
    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def fer2013_path(data_root: str | Path | None = None) -> Path:
    """The npz file below ``data_root`` (default: `emofuse.paths.data_root`), or the file itself."""
    from emofuse.paths import data_root as default_root

    root = Path(data_root) if data_root is not None else default_root()
    if root is None:
        raise DataError(FER_RELATIVE_PATH, "no data folder: set EMOFUSE_DATA or pass --data")
    return root if root.suffix == ".npz" else root / FER_RELATIVE_PATH


def load_fer2013(data_root: str | Path | None = None) -> dict[str, FerSplit]:
    """The three official parts, checked (keys, shapes, label range, usage names)."""
    import numpy as np

    path = fer2013_path(data_root)
    if not path.is_file():
        raise DataError(path, "FER2013 file not found (expected fer2013/fer2013.npz below the data folder)")
    try:
        with np.load(path, allow_pickle=False) as data:
            images, labels, usage = data["images"], data["labels"].astype(np.int64), data["usage"].astype(str)
    except (KeyError, ValueError, OSError) as exc:
        raise DataError(path, f"not a FER2013 npz with images, labels and usage ({exc})") from None
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (48, 48):
        raise DataError(path, f"images must be uint8 [N, 48, 48], got {images.dtype} {images.shape}")
    if not (len(images) == len(labels) == len(usage)) or labels.min() < 0 or labels.max() >= len(FER_LABELS):
        raise DataError(path, "images, labels and usage differ in length or labels are outside 0..6")
    unknown = sorted(set(usage) - set(USAGES))
    if unknown:
        raise DataError(path, f"unknown usage value(s) {unknown}; expected {list(USAGES)}")
    return {u: FerSplit(u, np.ascontiguousarray(images[usage == u]), labels[usage == u]) for u in USAGES}
