"""GoEmotions loader: Reddit comments with one or more of 27 emotions + neutral (Demszky et al., ACL 2020).

The simplified release has one folder per taxonomy, each with ``labels.txt`` (one class name a
line, the line number is the class id) and the official ``train.tsv`` / ``dev.tsv`` / ``test.tsv``
(43,410 / 5,426 / 5,427 comments): ``text <TAB> comma-separated class ids <TAB> comment id``.

* ``original/``: the 28 classes (`GOEMOTIONS_LABELS`), dataset ``goemotions``;
* ``ekman/``: the same comments grouped into Ekman's 6 emotions + neutral (`EKMAN_LABELS`),
  dataset ``goemotions_ekman``. The grouping is GoEmotions' own ``ekman_mapping`` (`EKMAN_MAPPING`);
  `check_ekman_files` confirms the shipped files follow it comment by comment.

The corpus is **multi-label** (16 % of the comments have two or more labels): `Sample.labels` holds
every label of a comment, in class-id order; `Sample.label` is the first of them, for tools that
take one label. Multi-label metrics and per-class thresholds: `emofuse.evaluation.multilabel`.
`GOEMOTIONS_TO_MELD` maps the Ekman-7 classes onto MELD's 7 (the same seven names).

The simplified release has no author ids, so the official split (random over comments) is not
speaker-disjoint; every sample's speaker is ``"unknown"``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from emofuse.data.record import Sample
from emofuse.data.specs import DatasetSpec, register_dataset
from emofuse.errors import DataError

GOEMOTIONS_LABELS = [
    "admiration", "amusement", "anger", "annoyance", "approval", "caring", "confusion", "curiosity", "desire",
    "disappointment", "disapproval", "disgust", "embarrassment", "excitement", "fear", "gratitude", "grief", "joy",
    "love", "nervousness", "optimism", "pride", "realization", "relief", "remorse", "sadness", "surprise", "neutral",
]
EKMAN_LABELS = ["anger", "disgust", "fear", "joy", "neutral", "sadness", "surprise"]
#: GoEmotions' own ``ekman_mapping.json`` (+ neutral): Ekman class <- fine-grained classes
EKMAN_MAPPING: dict[str, tuple[str, ...]] = {
    "anger": ("anger", "annoyance", "disapproval"),
    "disgust": ("disgust",),
    "fear": ("fear", "nervousness"),
    "joy": ("joy", "amusement", "approval", "excitement", "gratitude", "love", "optimism", "relief", "pride",
            "admiration", "desire", "caring"),
    "neutral": ("neutral",),
    "sadness": ("sadness", "disappointment", "embarrassment", "grief", "remorse"),
    "surprise": ("surprise", "realization", "confusion", "curiosity"),
}
#: fine-grained class -> its Ekman class
TO_EKMAN: dict[str, str] = {fine: ekman for ekman, fines in EKMAN_MAPPING.items() for fine in fines}
#: GoEmotions Ekman-7 class -> MELD class (the two sets name the same seven emotions)
GOEMOTIONS_TO_MELD: dict[str, str] = {"anger": "anger", "disgust": "disgust", "fear": "fear", "joy": "joy",
                                      "neutral": "neutral", "sadness": "sadness", "surprise": "surprise"}
#: MELD class -> GoEmotions Ekman-7 class
MELD_TO_GOEMOTIONS: dict[str, str] = {meld: ge for ge, meld in GOEMOTIONS_TO_MELD.items()}
SPLITS = ("train", "dev", "test")
TAXONOMIES = {"original": GOEMOTIONS_LABELS, "ekman": EKMAN_LABELS}


def to_ekman(labels: Iterable[str]) -> tuple[str, ...]:
    """The Ekman-7 classes of fine-grained GoEmotions labels, in `EKMAN_LABELS` order
    (``["amusement", "joy", "annoyance"]`` -> ``("anger", "joy")``)."""
    found = set()
    for label in labels:
        if label not in TO_EKMAN:
            raise ValueError(f"{label!r} is not a GoEmotions class ({', '.join(GOEMOTIONS_LABELS)})")
        found.add(TO_EKMAN[label])
    return tuple(e for e in EKMAN_LABELS if e in found)


def to_meld(labels: Iterable[str]) -> tuple[str, ...]:
    """The MELD classes of GoEmotions labels (fine-grained or Ekman-7 names; each Ekman name is also a
    fine-grained class of its own group), through `to_ekman` and `GOEMOTIONS_TO_MELD`, in MELD order."""
    from emofuse.data.meld import MELD_LABELS

    mapped = {GOEMOTIONS_TO_MELD[e] for e in to_ekman(labels)}
    return tuple(m for m in MELD_LABELS if m in mapped)


def read_labels_file(path: Path, expected: Sequence[str]) -> list[str]:
    """The class names of ``labels.txt``; DataError unless they are ``expected`` in that order."""
    if not path.is_file():
        raise DataError(path, "GoEmotions labels file not found")
    names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if names != list(expected):
        raise DataError(path, f"expected the {len(expected)} classes {list(expected)}, found {names}")
    return names


def read_split(path: Path, names: Sequence[str]) -> list[tuple[str, tuple[str, ...], str]]:
    """``(text, labels, comment id)`` of each line of a GoEmotions ``.tsv``; errors name the line."""
    if not path.is_file():
        raise DataError(path, "GoEmotions split file not found")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise DataError(path, f"not UTF-8 text ({exc})") from None
    rows = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != 3:
            raise DataError(path, f"line {number}: expected 3 tab-separated fields (text, labels, id), got {len(parts)}")
        text, ids, comment = " ".join(parts[0].split()), parts[1].strip(), parts[2].strip()
        if not text or not comment:
            raise DataError(path, f"line {number}: empty {'text' if not text else 'comment id'}")
        try:
            index = sorted({int(i) for i in ids.split(",")})
        except ValueError:
            raise DataError(path, f"line {number}: labels {ids!r} are not comma-separated class ids") from None
        if not index or index[0] < 0 or index[-1] >= len(names):
            raise DataError(path, f"line {number}: class ids {ids!r} outside 0..{len(names) - 1}")
        rows.append((text, tuple(names[i] for i in index), comment))
    return rows


def prepare_goemotions(root: str | Path, *, taxonomy: str = "original", split: str | Iterable[str] | None = None,
                       strict: bool = False) -> list[Sample]:
    """GoEmotions comments as samples with ``sources["text"]``, ``labels`` (all of a comment's classes),
    ``label`` (the first of them), ``meta["split"]`` and, for the 28-class taxonomy, ``meta["ekman"]``.

    Args:
        root: the ``goemotions/`` folder (holding ``original/`` and ``ekman/``).
        taxonomy: ``"original"`` (28 classes) or ``"ekman"`` (7).
        split: one of ``train``, ``dev``, ``test``, several, or None for all three.
        strict: unused (every problem is an error); accepted like every loader.
    """
    if taxonomy not in TAXONOMIES:
        raise ValueError(f"taxonomy must be one of {tuple(TAXONOMIES)}, got {taxonomy!r}")
    splits = SPLITS if split is None else ((split,) if isinstance(split, str) else tuple(split))
    if not splits or any(s not in SPLITS for s in splits):
        raise ValueError(f"split must be among {SPLITS}, got {splits}")
    folder = Path(root) / taxonomy
    if not folder.is_dir():
        raise DataError(folder, f"GoEmotions {taxonomy} folder not found")
    names = read_labels_file(folder / "labels.txt", TAXONOMIES[taxonomy])
    dataset = "goemotions" if taxonomy == "original" else "goemotions_ekman"
    samples = []
    seen: dict[str, str] = {}
    for part in splits:
        for text, labels, comment in read_split(folder / f"{part}.tsv", names):
            if comment in seen:
                raise DataError(folder / f"{part}.tsv", f"comment {comment} also in {seen[comment]}.tsv")
            seen[comment] = part
            meta = {"split": part, "comment_id": comment}
            if taxonomy == "original":
                meta["ekman"] = to_ekman(labels)
            samples.append(Sample(id=f"{part}_{comment}", speaker="unknown", dataset=dataset, label=labels[0],
                                  labels=labels, sources={"text": text}, meta=meta))
    return samples


def check_ekman_files(root: str | Path, split: str = "test") -> list[str]:
    """Comment ids whose shipped ``ekman/`` labels differ from `EKMAN_MAPPING` applied to the
    ``original/`` labels (empty when the files follow the mapping); DataError if the two files
    list other comments."""
    original = prepare_goemotions(root, taxonomy="original", split=split)
    ekman = {s.meta["comment_id"]: s.labels for s in prepare_goemotions(root, taxonomy="ekman", split=split)}
    if set(ekman) != {s.meta["comment_id"] for s in original}:
        raise DataError(Path(root) / "ekman" / f"{split}.tsv", "lists other comments than original/")
    return [s.meta["comment_id"] for s in original if s.meta["ekman"] != ekman[s.meta["comment_id"]]]


# ---------------------------------------------------------------------------------------------
# The dataset specifications (see emofuse.data.specs).

NOT_SPEAKER_DISJOINT = ("GoEmotions' official split is random over Reddit comments, NOT speaker-disjoint "
                        "(the simplified release has no author ids).")


def _folds_protocol(name: str):
    def protocol() -> dict:
        return {"dataset": name, "group_by": "meta.split",
                "protocol": "the official GoEmotions train/dev/test split (simplified release).",
                "note": NOT_SPEAKER_DISJOINT,
                "folds": [{"name": "official", "train": ["train"], "val": ["dev"], "test": ["test"]}]}
    return protocol


def _ekman_loader(root: str | Path, **options) -> list[Sample]:
    return prepare_goemotions(root, **{"taxonomy": "ekman", **options})


for _name, _labels, _loader in (("goemotions", GOEMOTIONS_LABELS, prepare_goemotions),
                                ("goemotions_ekman", EKMAN_LABELS, _ekman_loader)):
    register_dataset(DatasetSpec(
        # multi-label: Sample.labels; the multi-label benchmark is emofuse.experiments.goemotions
        name=_name, folder="goemotions", labels=tuple(_labels), loader=_loader, folds=_name,
        modalities=frozenset({"text"}), default_recipes=(), speaker_independent=False,
        note="official train/dev/test split (random over comments, NOT speaker-disjoint); multi-label",
        folds_protocol=_folds_protocol(_name),
    ))
