"""DEAP loader (Koelstra et al. 2012): the preprocessed MATLAB release ``data_preprocessed_matlab/sXX.mat``.

Each ``sXX.mat`` (subjects s01-s32) holds ``data`` [40 trials, 40 channels, 8064 samples] at 128 Hz
(63 s: a 3 s pre-trial baseline, then the 60 s music video) and ``labels`` [40 trials, 4]: the
self-assessed valence, arousal, dominance and liking (1-9). Channels 1-32 are EEG, 33-40 peripheral
(hEOG, vEOG, zEMG, tEMG, GSR, respiration belt, plethysmograph, temperature). The files are read with
`scipy.io.loadmat`; the Python copies (``data_preprocessed_python/sXX.dat``) are pickles and are
refused, never loaded.

One `Sample` per trial: ``s01_t01`` .. ``s32_t40``, speaker = subject, two sources (`MatTrial`
references, read when features are extracted): ``eeg`` (channels 1-32) and ``peripheral`` (33-40),
the baseline left out unless ``baseline=True``. Labels: high when the rating is above ``threshold``
(5, the middle of the scale), low otherwise; ``deap_valence`` and ``deap_arousal`` are two registered
datasets over the same trials (the other rating's class is an extra label, every rating is in meta).
Folds: leave-one-subject-out (test on one subject, validate on the next, train on the other 30).
"""

from __future__ import annotations

import functools
import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from emofuse.data.record import Sample
from emofuse.data.specs import DatasetSpec, register_dataset
from emofuse.errors import DataError

if TYPE_CHECKING:  # numpy is imported where used: listing the datasets stays free of it
    import numpy as np

log = logging.getLogger("emofuse.data")

RATE = 128.0
N_CHANNELS = 40
EEG_CHANNELS = (0, 32)
PERIPHERAL_CHANNELS = (32, 40)
BASELINE_SAMPLES = 3 * 128
RATINGS = ("valence", "arousal", "dominance", "liking")
DEAP_LABELS = ("low", "high")
SUBJECTS = tuple(f"s{i:02d}" for i in range(1, 33))
_MAT = re.compile(r"^s(\d\d)\.mat$")


class MatTrial(NamedTuple):
    """One trial's channels ``start:stop`` of a DEAP ``.mat`` file, from sample ``first`` on."""

    path: Path
    trial: int
    start: int
    stop: int
    first: int = 0

    def describe(self) -> str:
        return f"{Path(self.path).resolve()} trial {self.trial + 1} channels {self.start + 1}-{self.stop}"


@functools.lru_cache(maxsize=1)
def _mat_data(path: str, mtime_ns: int, size: int) -> np.ndarray:
    """``data`` of one ``.mat`` file (one file kept: the driver reads a file's trials in a row)."""
    arrays = _loadmat(Path(path), ("data",))
    return _checked_data(Path(path), arrays["data"])


def _mat_errors() -> tuple[type[Exception], ...]:
    from scipy.io.matlab import MatReadError

    return (OSError, ValueError, TypeError, NotImplementedError, MatReadError)


def _loadmat(path: Path, names: tuple[str, ...]) -> dict[str, Any]:
    from scipy.io import loadmat

    try:
        arrays = loadmat(str(path), variable_names=list(names))
    except _mat_errors() as exc:
        raise DataError(path, f"not a readable DEAP .mat file ({exc})") from None
    missing = [n for n in names if n not in arrays]
    if missing:
        raise DataError(path, f"no variable {' or '.join(repr(n) for n in missing)} in the .mat file "
                              "(expected 'data' [40, 40, 8064] and 'labels' [40, 4])")
    return arrays


def _checked_data(path: Path, data: Any) -> np.ndarray:
    import numpy as np

    data = np.asarray(data)
    if data.ndim != 3 or data.shape[1] != N_CHANNELS or data.shape[2] <= BASELINE_SAMPLES:
        raise DataError(path, f"'data' must be [trials, {N_CHANNELS} channels, samples > {BASELINE_SAMPLES}] "
                              f"(DEAP: [40, 40, 8064]), got shape {data.shape}")
    if not np.issubdtype(data.dtype, np.number):
        raise DataError(path, f"'data' is not numeric (dtype {data.dtype})")
    return data


def read_mat_trial(ref: MatTrial) -> tuple[np.ndarray, float]:
    """``(signal [T, C] float32, 128.0)`` of a `MatTrial` (`DataError` naming the file otherwise)."""
    import numpy as np

    path = Path(ref.path)
    try:
        stat = path.stat()
    except OSError:
        raise DataError(path, "DEAP .mat file not found") from None
    data = _mat_data(str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    if not 0 <= ref.trial < data.shape[0]:
        raise DataError(path, f"trial {ref.trial + 1} asked for, the file has {data.shape[0]}")
    signal = np.asarray(data[ref.trial, ref.start:ref.stop, ref.first:], dtype=np.float32).T
    if not np.isfinite(signal).all():
        raise DataError(path, f"trial {ref.trial + 1}: NaN or infinite samples in channels {ref.start + 1}-{ref.stop}")
    return np.ascontiguousarray(signal), RATE


def _refuse_pickles(root: Path) -> None:
    for folder in (root / "data_preprocessed_python", root):
        found = sorted(folder.glob("s[0-9][0-9].dat")) if folder.is_dir() else []
        if found:
            raise DataError(found[0], "the Python copies of DEAP (data_preprocessed_python/sXX.dat) are pickles, "
                                      "which emofuse never loads; use the MATLAB copies instead: put "
                                      "data_preprocessed_matlab/sXX.mat (from the same DEAP download) under "
                                      f"{root}")


def mat_files(root: str | Path) -> list[Path]:
    """The ``sXX.mat`` files under ``root/data_preprocessed_matlab`` (or ``root`` itself)."""
    root = Path(root)
    if root.is_file():
        if root.suffix == ".dat":
            _refuse_pickles(root.parent)
        raise DataError(root, "give the DEAP folder (holding data_preprocessed_matlab/), not a file")
    for folder in (root / "data_preprocessed_matlab", root):
        found = sorted(p for p in folder.glob("s*.mat") if _MAT.match(p.name)) if folder.is_dir() else []
        if found:
            return found
    _refuse_pickles(root)
    raise DataError(root, "no DEAP sXX.mat files (expected data_preprocessed_matlab/s01.mat ... s32.mat)")


def _subject_samples(path: Path, target: str, threshold: float, baseline: bool) -> list[Sample]:
    import numpy as np

    from scipy.io import whosmat

    subject = path.stem
    try:
        shapes = dict((name, shape) for name, shape, _ in whosmat(str(path)))
    except _mat_errors() as exc:
        raise DataError(path, f"not a readable DEAP .mat file ({exc})") from None
    if "data" not in shapes:
        raise DataError(path, "no variable 'data' in the .mat file (expected 'data' [40, 40, 8064])")
    shape = tuple(shapes["data"])
    if len(shape) != 3 or shape[1] != N_CHANNELS or shape[2] <= BASELINE_SAMPLES:
        raise DataError(path, f"'data' must be [trials, {N_CHANNELS} channels, samples > {BASELINE_SAMPLES}] "
                              f"(DEAP: [40, 40, 8064]), got shape {shape}")
    labels = np.asarray(_loadmat(path, ("labels",))["labels"], dtype=np.float64)
    if labels.shape != (shape[0], len(RATINGS)):
        raise DataError(path, f"'labels' must be [{shape[0]} trials, 4] (valence, arousal, dominance, liking), "
                              f"got shape {labels.shape}")
    if not np.isfinite(labels).all():
        raise DataError(path, "'labels' holds NaN or infinite ratings")
    first = 0 if baseline else BASELINE_SAMPLES
    samples = []
    for trial, row in enumerate(labels):
        ratings = dict(zip(RATINGS, map(float, row)))
        classes = {r: DEAP_LABELS[int(ratings[r] > threshold)] for r in ("valence", "arousal")}
        sources: dict[str, Any] = {"eeg": MatTrial(path, trial, *EEG_CHANNELS, first),
                                   "peripheral": MatTrial(path, trial, *PERIPHERAL_CHANNELS, first)}
        samples.append(Sample(id=f"{subject}_t{trial + 1:02d}", speaker=subject, dataset=f"deap_{target}",
                              label=classes[target], sources=sources,
                              extra_labels={r: c for r, c in classes.items() if r != target},
                              meta={"subject": subject, "trial": trial + 1, **ratings}))
    return samples


def prepare_deap(root: str | Path, *, target: str = "valence", threshold: float = 5.0, baseline: bool = False,
                 strict: bool = False) -> list[Sample]:
    """DEAP trials labelled high/low on ``target`` (valence or arousal): high when above ``threshold``.

    ``baseline=True`` keeps the 3 s pre-trial baseline in the signals. ``strict`` is accepted for the
    common loader signature (a malformed file is always an error).
    """
    if target not in ("valence", "arousal"):
        raise DataError(root, f"target must be 'valence' or 'arousal', got {target!r}")
    samples = [s for path in mat_files(root) for s in _subject_samples(path, target, float(threshold), baseline)]
    log.info("%s: DEAP %d trials of %d subjects", root, len(samples), len({s.speaker for s in samples}))
    return samples


def prepare_deap_valence(root: str | Path, *, threshold: float = 5.0, baseline: bool = False,
                         strict: bool = False) -> list[Sample]:
    """`prepare_deap` with valence high/low as the label."""
    return prepare_deap(root, target="valence", threshold=threshold, baseline=baseline, strict=strict)


def prepare_deap_arousal(root: str | Path, *, threshold: float = 5.0, baseline: bool = False,
                         strict: bool = False) -> list[Sample]:
    """`prepare_deap` with arousal high/low as the label."""
    return prepare_deap(root, target="arousal", threshold=threshold, baseline=baseline, strict=strict)


# ---------------------------------------------------------------------------------------------
# The dataset specifications (see emofuse.data.specs).

def _folds_protocol(name: str) -> dict:
    from emofuse.data.splits import rotating_folds

    groups = [[s] for s in SUBJECTS]
    return {
        "dataset": name, "group_by": "speaker",
        "protocol": "leave-one-subject-out: test = subject k, validation = subject k+1 (cyclically), "
                    "train = the other 30 subjects.",
        "folds": rotating_folds(groups, lambda k: groups[(k + 1) % len(groups)]),
    }


for _target, _loader in (("valence", prepare_deap_valence), ("arousal", prepare_deap_arousal)):
    register_dataset(DatasetSpec(
        name=f"deap_{_target}", folder="deap", labels=DEAP_LABELS, loader=_loader, folds=f"deap_{_target}",
        modalities=frozenset({"eeg", "peripheral"}),
        default_recipes=("logreg_band_power_deap", "of_cmaer_cat_deap", "signal_cnn_deap"),
        folds_protocol=functools.partial(_folds_protocol, f"deap_{_target}"),
    ))
