"""Canonical evaluation folds, shipped as JSON (the JSON files are the source of truth).

Each fold lists the groups (speakers, or another key such as ``meta.split``) in its train,
validation and test partitions. `partition` maps samples onto a fold and refuses any overlap.
``python -c "from emofuse.data.splits import _write_json_files; _write_json_files()"`` regenerates
the JSON files from each corpus's protocol (`emofuse.data.specs.DatasetSpec.folds_protocol`,
gathered by `_generate`; a test checks they still agree). `emofuse.data.splits.generate` makes
speaker-disjoint folds for a corpus without packaged ones (a CSV manifest).
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from emofuse.data.record import Sample
from emofuse.errors import ConfigError, DataError, SpeakerOverlapError

log = logging.getLogger("emofuse.data.splits")

_PARTS = ("train", "val", "test")


@dataclass(frozen=True)
class Fold:
    """One evaluation fold: the groups in each partition and the key they group samples by."""

    name: str
    train: tuple[str, ...]
    val: tuple[str, ...]
    test: tuple[str, ...]
    group_by: str = "speaker"


def _folds_from_json(data: dict, source: str) -> list[Fold]:
    try:
        group_by = data.get("group_by", "speaker")
        folds = [Fold(name=str(f["name"]), train=tuple(map(str, f["train"])), val=tuple(map(str, f["val"])),
                      test=tuple(map(str, f["test"])), group_by=group_by) for f in data["folds"]]
    except (KeyError, TypeError, AttributeError) as exc:
        raise ConfigError(f"{source}: malformed folds file ({exc!r}); needs folds[*].name/train/val/test") from None
    if not folds:
        raise ConfigError(f"{source}: no folds")
    return folds


def __getattr__(name: str):
    if name == "SPLIT_DATASETS":  # the registered datasets with packaged folds (read from the registry)
        return _split_datasets()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _split_datasets() -> tuple[str, ...]:
    from emofuse.data.specs import get_dataset, list_datasets

    return tuple(n for n in list_datasets() if get_dataset(n).folds is not None)


def _packaged_file(dataset: str) -> str | None:
    """The packaged folds-file stem of a registered dataset (None: not registered, or no packaged folds)."""
    from emofuse.data.specs import get_dataset, list_datasets

    return get_dataset(dataset).folds if dataset in list_datasets() else None


def load_folds(dataset: str | Path) -> list[Fold]:
    """The packaged folds of a registered ``dataset`` (`emofuse.data.specs`) or of a folds JSON file path.

    Logs a warning when the file carries a ``note`` (e.g. MELD's split is not speaker-disjoint).
    """
    text_source = str(dataset)
    stem = None if text_source.endswith(".json") else _packaged_file(text_source)
    if stem is not None:
        resource = resources.files(__package__) / f"{stem}.json"
        text = resource.read_text(encoding="utf-8")
    elif text_source.endswith(".json"):
        path = Path(text_source)
        if not path.is_file():
            raise ConfigError(f"folds file not found: {path}")
        text = path.read_text(encoding="utf-8")
    else:
        raise ConfigError(f"no folds for dataset {text_source!r}; packaged: {', '.join(_split_datasets())} "
                          "(or pass a folds .json path)")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{text_source}: invalid folds JSON: {exc}") from None
    if data.get("note"):
        log.warning("%s folds: %s", data.get("dataset", text_source), data["note"])
    folds = _folds_from_json(data, text_source)
    check_folds_file(folds)
    return folds


def group_of(sample: Sample, group_by: str) -> str:
    """The group of a sample: its speaker (``"speaker"``) or ``str(sample.meta[key])`` (``"meta.<key>"``);
    several keys joined by ``+`` give a composite group (``"speaker+meta.statement"`` -> ``"03|01"``,
    the shift protocols of `emofuse.evaluation.shift`)."""
    if "+" in group_by:
        return "|".join(group_of(sample, part) for part in group_by.split("+"))
    if group_by == "speaker":
        return sample.speaker
    if group_by.startswith("meta.") and len(group_by) > 5:
        key = group_by[5:]
        if key not in sample.meta:
            raise DataError(None, f"sample {sample.id} ({sample.dataset}) has no meta[{key!r}] to group by")
        return str(sample.meta[key])
    raise ConfigError(f"group_by must be 'speaker' or 'meta.<key>', got {group_by!r}")


def check_disjoint(samples: Sequence[Sample], train_idx: Sequence[int], val_idx: Sequence[int],
                   test_idx: Sequence[int], group_by: str = "speaker") -> None:
    """Raise SpeakerOverlapError when two partitions share a sample or a group (named in the message)."""
    parts = dict(zip(_PARTS, (train_idx, val_idx, test_idx)))
    groups = {p: {group_of(samples[i], group_by) for i in idx} for p, idx in parts.items()}
    problems = []
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        shared_idx = set(parts[a]) & set(parts[b])
        if shared_idx:
            ids = sorted(samples[i].id for i in shared_idx)
            problems.append(f"{a}/{b} share {len(ids)} sample(s): {', '.join(ids[:5])}")
        shared = groups[a] & groups[b]
        if shared:
            problems.append(f"{a}/{b} share {group_by} {', '.join(sorted(shared))}")
    if problems:
        raise SpeakerOverlapError("; ".join(problems))


def partition(samples: Sequence[Sample], fold: Fold) -> tuple[list[int], list[int], list[int]]:
    """Indices of ``samples`` in the fold's (train, val, test); samples of unlisted groups are
    dropped (count logged). The result is checked with `check_disjoint`. A fold may list no test
    groups (a training-only fold, such as ``emofuse train --fold 0``): its test indices are empty."""
    check_folds_file([fold], require_cover=False)
    lookup = {g: p for p in _PARTS for g in getattr(fold, p)}
    out: dict[str, list[int]] = {p: [] for p in _PARTS}
    dropped: dict[str, int] = {}
    for i, s in enumerate(samples):
        g = group_of(s, fold.group_by)
        if g in lookup:
            out[lookup[g]].append(i)
        else:
            dropped[g] = dropped.get(g, 0) + 1
    if dropped:
        # composite groups (the shift protocols) leave out some of a speaker's clips by design
        say = log.info if "+" in fold.group_by else log.warning
        say("fold %s: %d sample(s) of %d %s value(s) in no partition were dropped: %s", fold.name,
            sum(dropped.values()), len(dropped), fold.group_by, ", ".join(sorted(dropped)[:10]))
    for p in _PARTS:
        if not out[p] and getattr(fold, p):
            log.warning("fold %s: the %s partition is empty", fold.name, p)
    check_disjoint(samples, out["train"], out["val"], out["test"], fold.group_by)
    return out["train"], out["val"], out["test"]


def check_folds_file(folds: Sequence[Fold], require_cover: bool = True) -> None:
    """Check fold definitions: no group twice in one fold (SpeakerOverlapError); every test group
    in exactly one fold's test set, no empty test set, all folds over the same groups and one
    group_by (ConfigError). ``require_cover=False`` checks single ad-hoc folds, which may have no
    test groups."""
    if not folds:
        raise ConfigError("no folds")
    names = [f.name for f in folds]
    if len(set(names)) != len(names):
        raise ConfigError(f"duplicate fold names: {names}")
    for f in folds:
        for p in _PARTS:
            part = getattr(f, p)
            if len(set(part)) != len(part):
                raise ConfigError(f"fold {f.name}: {p} lists a group twice")
        for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
            shared = set(getattr(f, a)) & set(getattr(f, b))
            if shared:
                raise SpeakerOverlapError(f"fold {f.name}: {a}/{b} share {f.group_by} {', '.join(sorted(shared))}")
        if not f.test and require_cover:  # a single ad-hoc fold may train only (emofuse train --fold 0)
            raise ConfigError(f"fold {f.name}: empty test partition")
    if not require_cover:
        return
    if len({f.group_by for f in folds}) != 1:
        raise ConfigError("folds group by different keys")
    seen: dict[str, str] = {}
    for f in folds:
        for g in f.test:
            if g in seen:
                raise ConfigError(f"{f.group_by} {g} is a test group in both fold {seen[g]} and fold {f.name}")
            seen[g] = f.name
    universe = set(folds[0].train) | set(folds[0].val) | set(folds[0].test)
    for f in folds[1:]:
        other = set(f.train) | set(f.val) | set(f.test)
        if other != universe:
            raise ConfigError(f"fold {f.name} covers other groups than fold {folds[0].name}: "
                              f"{', '.join(sorted(other ^ universe))}")
    if len(folds) > 1 and set(seen) != universe:
        raise ConfigError(f"never in a test set: {', '.join(sorted(universe - set(seen)))}")


# ---------------------------------------------------------------------------------------------
# Generation of the shipped JSON files.

def rotating_folds(groups: list[list[str]], val_of: Callable[[int], list[str]]) -> list[dict]:
    """Fold k tests on ``groups[k]``, validates on ``val_of(k)`` and trains on everyone else
    (the protocol of the packaged folds files, as JSON-ready dicts)."""
    everyone = [g for grp in groups for g in grp]
    folds = []
    for k, test in enumerate(groups):
        val = val_of(k)
        train = [g for g in everyone if g not in test and g not in val]
        folds.append({"name": f"fold{k + 1}", "train": train, "val": val, "test": list(test)})
    return folds


def _generate() -> dict[str, dict]:
    """Build the packaged fold files from each registered corpus's protocol
    (`emofuse.data.specs.DatasetSpec.folds_protocol`), keyed by folds-file stem."""
    from emofuse.data.specs import get_dataset, list_datasets

    specs = [get_dataset(name) for name in list_datasets()]
    return {spec.folds: spec.folds_protocol() for spec in specs if spec.folds and spec.folds_protocol}


def _compact_json(data: dict) -> str:
    """JSON with each list of group names on one line (readable diffs)."""
    text = json.dumps(data, indent=1)
    return re.sub(r'\[\s*((?:"[^"]*",?\s*)+)\]',
                  lambda m: "[" + ", ".join(re.findall(r'"[^"]*"', m.group(1))) + "]", text)


def _write_json_files(folder: Path | None = None) -> list[Path]:
    """Write the generated fold files atomically into ``folder`` (default: this package)."""
    folder = Path(folder) if folder is not None else Path(__file__).parent
    written = []
    for name, data in _generate().items():
        target = folder / f"{name}.json"
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(_compact_json(data) + "\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
        written.append(target)
    return written
