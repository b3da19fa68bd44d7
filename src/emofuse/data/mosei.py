"""CMU-MOSEI loader: CMU-MultimodalSDK computational sequences (``.csd``, HDF5, read with h5py).

A computational sequence file holds one root group named after the sequence (``All Labels``,
``glove_vectors``, ``COVAREP``, ``FACET 4.2``, ``words``) with ``data/<video id>/features`` [N, D] and
``data/<video id>/intervals`` [N, 2] (start, end seconds), and ``metadata/<key>`` strings (``root
name``, ``dimension names``, ...). Files read from the folder (the SDK's names, each optional but the
labels):

=========================================  ===============  ==========================================
file                                       root             becomes
=========================================  ===============  ==========================================
``CMU_MOSEI_Labels.csd``                   All Labels       one sample per labelled segment: sentiment
                                                            [-3, 3] + happy, sad, anger, surprise,
                                                            disgust, fear intensities [0, 3]
``CMU_MOSEI_TimestampedWords.csd``         words            the word intervals; the transcript
``CMU_MOSEI_TimestampedWordVectors.csd``   glove_vectors    ``sources["mosei_text"]`` [W, 300]
``CMU_MOSEI_COVAREP.csd``                  COVAREP          ``sources["mosei_audio"]`` [W, 74]
``CMU_MOSEI_VisualFacet42.csd``            FACET 4.2        ``sources["mosei_visual"]`` [W, 35]
=========================================  ===============  ==========================================

**Word alignment** (the SDK's ``align`` to the word sequence with an average collapse): a segment's
words are the entries of the word sequence whose midpoint lies in the segment's interval (``sp``
silence tokens dropped); each other sequence is averaged over the frames that overlap each word's
interval (zeros where none does). Files whose video ids already carry a segment index (``vid[3]``,
the SDK's output after aligning to the labels) are used as they are. NaN / infinite values (the
COVAREP release has some) are set to 0, with a count logged.

**Folds**: the SDK's standard folds (``standard_train_fold``, ``standard_valid_fold``,
``standard_test_fold``) are **read from a file the user gives** (not shipped with emofuse):
``folds_file=`` or, found in the folder, ``standard_folds.json`` (``{"train": [...], "valid": [...],
"test": [...]}`` video ids) or the SDK's own ``cmu_mosei_std_folds.py``, whose three lists are read as
literals (`ast.literal_eval`; the file is never run). Each sample's ``meta["split"]`` says its part;
the packaged folds (``splits/mosei.json``) group by it. The label is the binary sentiment class
(``negative`` below 0, ``non_negative`` otherwise); the regression targets are in ``meta``
(`emofuse.experiments.regression` trains on them).
"""

from __future__ import annotations

import ast
import json
import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emofuse.data.record import Sample
from emofuse.data.specs import DatasetSpec, register_dataset
from emofuse.errors import DataError

if TYPE_CHECKING:  # numpy is imported where used: listing the datasets stays free of it
    import numpy as np

log = logging.getLogger("emofuse.data")

LABEL_COLUMNS = ("sentiment", "happy", "sad", "anger", "surprise", "disgust", "fear")
MOSEI_LABELS = ("negative", "non_negative")
FILES = {"labels": "CMU_MOSEI_Labels.csd", "words": "CMU_MOSEI_TimestampedWords.csd",
         "text": "CMU_MOSEI_TimestampedWordVectors.csd", "audio": "CMU_MOSEI_COVAREP.csd",
         "visual": "CMU_MOSEI_VisualFacet42.csd"}
#: sources key of each aligned feature sequence
SOURCE_KEYS = {"text": "mosei_text", "audio": "mosei_audio", "visual": "mosei_visual"}
FOLD_FILES = ("standard_folds.json", "cmu_mosei_std_folds.py")
SDK_FOLD_NAMES = {"standard_train_fold": "train", "standard_valid_fold": "valid", "standard_test_fold": "test"}
_SEGMENT = re.compile(r"^(.*)\[(\d+)\]$")
Sequence = dict[str, tuple["np.ndarray", "np.ndarray"]]  # video id -> (features [N, D], intervals [N, 2])


def read_csd(path: str | Path) -> tuple[str, Sequence, dict[str, str]]:
    """``(root name, {video id: (features, intervals)}, metadata)`` of a computational sequence file."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise DataError(path, "computational sequence file not found")
    try:
        with h5py.File(path, "r") as handle:
            roots = list(handle.keys())
            if len(roots) != 1:
                raise DataError(path, f"a computational sequence has one root group, found {roots}")
            root = handle[roots[0]]
            if "data" not in root:
                raise DataError(path, f"no '{roots[0]}/data' group (the SDK layout: <root>/data/<video id>/"
                                      "{features,intervals})")
            data = {vid: _entry(path, vid, group) for vid, group in root["data"].items()}
            meta = {k: _text(v[()]) for k, v in root["metadata"].items()} if "metadata" in root else {}
    except OSError as exc:
        raise DataError(path, f"not a readable HDF5 computational sequence ({exc})") from None
    return roots[0], data, meta


def _text(value: Any) -> str:
    import numpy as np

    value = value[0] if isinstance(value, np.ndarray) and value.size else value
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _entry(path: Path, vid: str, group: Any) -> tuple[np.ndarray, np.ndarray]:
    import numpy as np

    if "features" not in group or "intervals" not in group:
        raise DataError(path, f"video {vid}: needs 'features' and 'intervals'")
    features, intervals = group["features"][()], np.asarray(group["intervals"][()], dtype=np.float64)
    if intervals.ndim != 2 or intervals.shape[1] != 2 or len(features) != len(intervals):
        raise DataError(path, f"video {vid}: features {features.shape} and intervals {intervals.shape} do not "
                              "match ([N, D] and [N, 2])")
    return features, intervals


def read_folds(path: str | Path) -> dict[str, str]:
    """Video id -> ``train`` / ``valid`` / ``test`` from a JSON folds file or the SDK's std_folds ``.py``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DataError(path, f"cannot read the folds file ({exc.strerror or exc})") from None
    if path.suffix == ".py":
        lists = {}
        try:
            for node in ast.parse(text).body:
                if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                    if node.targets[0].id in SDK_FOLD_NAMES:
                        lists[SDK_FOLD_NAMES[node.targets[0].id]] = ast.literal_eval(node.value)
        except (SyntaxError, ValueError) as exc:
            raise DataError(path, f"the SDK folds file must assign literal lists ({exc})") from None
    else:
        try:
            lists = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(path, f"invalid JSON: {exc}") from None
    if not isinstance(lists, dict) or set(lists) != {"train", "valid", "test"} or not all(
            isinstance(v, list) and all(isinstance(x, str) for x in v) for v in lists.values()):
        raise DataError(path, "expected the three lists train, valid and test of video ids "
                              "(JSON keys, or standard_*_fold in the SDK's .py)")
    split: dict[str, str] = {}
    for part, ids in lists.items():
        for vid in ids:
            if split.setdefault(vid, part) != part:
                raise DataError(path, f"video {vid} is in both {split[vid]} and {part}")
    return split


def _finite(x: np.ndarray, counter: list[int]) -> np.ndarray:
    import numpy as np

    x = np.asarray(x, dtype=np.float32)
    bad = ~np.isfinite(x)
    if bad.any():
        counter[0] += int(bad.sum())
        x = np.where(bad, 0.0, x).astype(np.float32)
    return x


def _word_rows(words: Sequence | None, vectors: Sequence | None, vid: str, start: float, end: float):
    """``(word intervals [W, 2], word strings, row indices into the vectors)`` of one segment."""
    import numpy as np

    table = words if words is not None else vectors
    if table is None or vid not in table:
        return np.zeros((0, 2)), [], np.zeros(0, dtype=int)
    feats, intervals = table[vid]
    mid = intervals.mean(1)
    rows = np.flatnonzero((mid >= start) & (mid <= end))
    tokens = [_text(feats[i]) for i in rows] if words is not None else [""] * len(rows)
    keep = [k for k, tok in enumerate(tokens) if tok != "sp"]
    return intervals[rows[keep]], [tokens[k] for k in keep], rows[keep]


def average_over(frames: np.ndarray, frame_times: np.ndarray, spans: np.ndarray) -> np.ndarray:
    """``[W, D]``: the mean of ``frames`` overlapping each ``spans`` row (zeros where none overlaps)."""
    import numpy as np

    out = np.zeros((len(spans), frames.shape[1]), dtype=np.float32)
    for w, (a, b) in enumerate(spans):
        hit = (frame_times[:, 0] < b) & (frame_times[:, 1] > a)
        if hit.any():
            out[w] = frames[hit].mean(0)
    return out


def _aligned(seqs: dict[str, Sequence], vid: str, start: float, end: float) -> tuple[dict, str]:
    spans, tokens, rows = _word_rows(seqs.get("words"), seqs.get("text"), vid, start, end)
    sources: dict[str, Any] = {}
    if len(spans) == 0:
        return sources, ""
    for name in ("text", "audio", "visual"):
        seq = seqs.get(name)
        if seq is None or vid not in seq:
            continue
        feats, times = seq[vid]
        if name == "text" and "words" not in seqs:
            sources[SOURCE_KEYS[name]] = feats[rows]
        else:
            sources[SOURCE_KEYS[name]] = average_over(feats, times, spans)
    return sources, " ".join(t for t in tokens if t)


def _segment_samples(seqs: dict[str, Sequence], labels: Sequence, split: dict[str, str]):
    import numpy as np

    samples = []
    for key in sorted(labels):
        values, intervals = labels[key]
        values = np.asarray(values, dtype=np.float64).reshape(len(intervals), -1)
        if values.shape[1] != len(LABEL_COLUMNS):
            raise DataError(None, f"All Labels of {key}: {values.shape[1]} columns, expected 7 "
                                  f"({', '.join(LABEL_COLUMNS)})")
        pre = _SEGMENT.match(key)
        for k, (row, (start, end)) in enumerate(zip(values, intervals)):
            vid, sid = (pre.group(1), key) if pre else (key, f"{key}[{k}]")
            if pre:
                sources = {SOURCE_KEYS[n]: seqs[n][key][0] for n in ("text", "audio", "visual")
                           if n in seqs and key in seqs[n]}
                text = " ".join(_text(w) for w in seqs["words"][key][0] if _text(w) != "sp") \
                    if "words" in seqs and key in seqs["words"] else ""
            else:
                sources, text = _aligned(seqs, vid, float(start), float(end))
            if text:
                sources["text"] = text
            targets = dict(zip(LABEL_COLUMNS, map(float, row)))
            samples.append(Sample(id=sid, speaker=vid, dataset="mosei",
                                  label=MOSEI_LABELS[int(targets["sentiment"] >= 0)], sources=sources,
                                  meta={"video": vid, "segment": k, "start": float(start), "end": float(end),
                                        "split": split.get(vid, "unassigned"), **targets}))
    return samples


def _fold_split(root: Path, folds_file: str | Path | None, strict: bool) -> dict[str, str]:
    if folds_file is not None:
        return read_folds(folds_file)
    for name in FOLD_FILES:
        if (root / name).is_file():
            return read_folds(root / name)
    msg = (f"no standard folds file ({' or '.join(FOLD_FILES)}, or folds_file=): every sample is 'unassigned' "
           "and no fold can train; give the SDK's standard_train/valid/test_fold lists")
    if strict:
        raise DataError(root, msg)
    log.warning("%s: %s", root, msg)
    return {}


def prepare_mosei(root: str | Path, *, folds_file: str | Path | None = None, text: str | None = None,
                  audio: str | None = None, visual: str | None = None, strict: bool = False) -> list[Sample]:
    """CMU-MOSEI segments with word-aligned features (see the module docstring).

    Args:
        root: the folder holding the ``.csd`` files.
        folds_file: the standard folds (JSON, or the SDK's ``cmu_mosei_std_folds.py``); default: found in ``root``.
        text, audio, visual: other ``.csd`` file names for those sequences (e.g. OpenFace instead of FACET).
        strict: a missing feature file or folds file is an error (otherwise a warning).
    """
    root = Path(root)
    names = {**FILES, **{k: v for k, v in (("text", text), ("audio", audio), ("visual", visual)) if v}}
    _, labels, _ = read_csd(root / names["labels"])
    split = _fold_split(root, folds_file, strict)
    seqs: dict[str, Sequence] = {}
    bad = [0]
    for kind in ("words", "text", "audio", "visual"):
        path = root / names[kind]
        if path.is_file():
            seqs[kind] = read_csd(path)[1]
            if kind != "words":
                seqs[kind] = {vid: (_finite(f, bad), iv) for vid, (f, iv) in seqs[kind].items()}
        elif strict:
            raise DataError(path, f"computational sequence for {kind} not found")
        else:
            log.warning("%s: not found; MOSEI samples have no %s sequence", path, kind)
    samples = _segment_samples(seqs, labels, split)
    if bad[0]:
        log.warning("%s: %d NaN/infinite feature values set to 0", root, bad[0])
    if not samples:
        raise DataError(root, "no labelled MOSEI segment")
    return samples


# ---------------------------------------------------------------------------------------------
# The dataset specification (see emofuse.data.specs).

NOT_SPEAKER_DISJOINT = ("CMU-MOSEI's standard folds are video-disjoint; the SDK's sequences do not identify "
                        "speakers, so speaker-independence cannot be checked (speaker = video id here).")


def _folds_protocol() -> dict:
    return {
        "dataset": "mosei", "group_by": "meta.split",
        "protocol": "the CMU-MultimodalSDK standard folds (standard_train_fold / standard_valid_fold / "
                    "standard_test_fold), read from the file the user gives (see emofuse.data.mosei).",
        "note": NOT_SPEAKER_DISJOINT,
        "folds": [{"name": "standard", "train": ["train"], "val": ["valid"], "test": ["test"]}],
    }


register_dataset(DatasetSpec(
    name="mosei", folder="mosei", labels=MOSEI_LABELS, loader=prepare_mosei, folds="mosei",
    modalities=frozenset({"text", "audio", "face"}),
    default_recipes=("tfn_mosei",),
    speaker_independent=False, note="SDK standard folds (video-disjoint; speakers not identified)",
    folds_protocol=_folds_protocol,
))
