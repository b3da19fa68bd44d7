"""MELD loader: ``{train,dev,test}_sent_emo.csv`` utterances, optional ``dia{D}_utt{U}.mp4`` clips.

The official split is dialogue-disjoint, not speaker-disjoint: the Friends cast speaks in
all three parts (see `emofuse.data.splits`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from pathlib import Path

from emofuse.data.manifest import MissingReport, read_csv_rows
from emofuse.data.record import Sample
from emofuse.data.specs import DatasetSpec, register_dataset
from emofuse.errors import DataError

log = logging.getLogger("emofuse.data")

MELD_LABELS = ["anger", "disgust", "fear", "joy", "neutral", "sadness", "surprise"]
MELD_SENTIMENTS = ["negative", "neutral", "positive"]
MELD_SPLITS = ("train", "dev", "test")
COLUMNS = ("Sr No.", "Utterance", "Speaker", "Emotion", "Sentiment", "Dialogue_ID", "Utterance_ID",
           "Season", "Episode", "StartTime", "EndTime")
#: clip folder names of the official MELD.Raw release, tried after ``<clips_dir>/<split>``
OFFICIAL_CLIP_FOLDERS = {"train": "train_splits", "dev": "dev_splits_complete", "test": "output_repeated_splits_test"}
_MOJIBAKE = re.compile("[\u0080-\u009f]|â€|Ã.|Â")


def clean_text(text: str) -> str:
    """Undo the encoding damage found in MELD releases.

    UTF-8 read as cp1252 (``â€™`` -> ``’``) is re-decoded; stray C1 control characters
    (``\\x92``, cp1252 bytes decoded as Latin-1) become their cp1252 characters; whitespace
    (including non-breaking spaces) is collapsed.
    """
    if _MOJIBAKE.search(text):
        try:
            text = text.encode("cp1252").decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            pass
        text = re.sub("[\u0080-\u009f]", lambda m: bytes([ord(m.group())]).decode("cp1252", errors="replace"), text)
    return " ".join(text.replace("\u00a0", " ").split())


def _int(value: str, csv_path: Path, where: str, column: str) -> int:
    try:
        return int(value.strip())
    except ValueError:
        raise DataError(csv_path, f"{where}: {column} {value!r} is not an integer") from None


def _clip_folder(clips_dir: Path, split: str) -> Path | None:
    for name in (split, OFFICIAL_CLIP_FOLDERS[split]):
        if (clips_dir / name).is_dir():
            return clips_dir / name
    return None


def prepare_meld(root: str | Path, *, split: str | Iterable[str] | None = None,
                 clips_dir: str | Path | None = None, strict: bool = False) -> list[Sample]:
    """Load MELD utterances with ``sources["text"]``, label = emotion, extra label ``sentiment``.

    Args:
        root: folder with ``train_sent_emo.csv``, ``dev_sent_emo.csv``, ``test_sent_emo.csv``.
        split: one split name or several; None loads all three.
        clips_dir: optional folder with per-split clip folders (``train/`` or the official
            ``train_splits/`` etc.); ``dia{D}_utt{U}.mp4`` becomes the ``audio`` and ``video``
            source. A missing clip warns (or raises when ``strict``).
    """
    root = Path(root)
    splits = MELD_SPLITS if split is None else ((split,) if isinstance(split, str) else tuple(split))
    bad = [s for s in splits if s not in MELD_SPLITS]
    if bad or not splits:
        raise ValueError(f"split must be among {MELD_SPLITS}, got {splits}")
    if clips_dir is not None and not Path(clips_dir).is_dir():
        raise DataError(clips_dir, "MELD clips folder not found")
    samples: list[Sample] = []
    for part in splits:
        csv_path = root / f"{part}_sent_emo.csv"
        _, rows = read_csv_rows(csv_path, COLUMNS)
        folder = _clip_folder(Path(clips_dir), part) if clips_dir is not None else None
        if clips_dir is not None and folder is None:
            msg = f"no clip folder for split {part!r} ({part}/ or {OFFICIAL_CLIP_FOLDERS[part]}/)"
            if strict:
                raise DataError(clips_dir, msg)
            log.warning("%s: %s; %s samples have no audio/video", clips_dir, msg, part)
        missing = MissingReport(folder or csv_path, "clip", strict)
        seen: set[str] = set()
        for i, row in enumerate(rows, start=2):
            where = f"row {i}"
            dialogue = _int(row["Dialogue_ID"], csv_path, where, "Dialogue_ID")
            utterance = _int(row["Utterance_ID"], csv_path, where, "Utterance_ID")
            sid = f"{part}_dia{dialogue}_utt{utterance}"
            if sid in seen:
                raise DataError(csv_path, f"{where}: duplicate dialogue/utterance dia{dialogue}_utt{utterance}")
            seen.add(sid)
            emotion = row["Emotion"].strip().lower()
            sentiment = row["Sentiment"].strip().lower()
            if emotion not in MELD_LABELS:
                raise DataError(csv_path, f"{where} ({sid}): emotion {row['Emotion']!r} not one of {MELD_LABELS}")
            if sentiment not in MELD_SENTIMENTS:
                raise DataError(csv_path, f"{where} ({sid}): sentiment {row['Sentiment']!r} not one of {MELD_SENTIMENTS}")
            speaker = clean_text(row["Speaker"])
            text = clean_text(row["Utterance"])
            if not speaker:
                raise DataError(csv_path, f"{where} ({sid}): empty Speaker")
            sources: dict = {"text": text}
            if folder is not None:
                clip = folder / f"dia{dialogue}_utt{utterance}.mp4"
                if clip.is_file():
                    sources["audio"] = clip
                    sources["video"] = clip
                else:
                    missing.add(sid, clip.name)
            meta = {"split": part, "dialogue": f"{part}:{dialogue}", "dialogue_id": dialogue,
                    "utterance_id": utterance, "sentiment": sentiment, "sr_no": row["Sr No."].strip(),
                    "season": _int(row["Season"], csv_path, where, "Season"),
                    "episode": _int(row["Episode"], csv_path, where, "Episode"),
                    "start_time": row["StartTime"].strip(), "end_time": row["EndTime"].strip()}
            samples.append(Sample(id=sid, speaker=speaker, dataset="meld", label=emotion, sources=sources,
                                  extra_labels={"sentiment": sentiment}, meta=meta))
        missing.summary()
    return samples


# ---------------------------------------------------------------------------------------------
# The dataset specification (see emofuse.data.specs).

NOT_SPEAKER_DISJOINT = ("MELD's official split is dialogue-disjoint, NOT speaker-disjoint: the Friends cast speaks in "
                        "train, dev and test, so MELD scores are not speaker-independent.")


def _folds_protocol() -> dict:
    return {
        "dataset": "meld", "group_by": "meta.split",
        "protocol": "the official MELD train/dev/test split.",
        "note": NOT_SPEAKER_DISJOINT,
        "folds": [{"name": "official", "train": ["train"], "val": ["dev"], "test": ["test"]}],
    }


register_dataset(DatasetSpec(
    # meld-text: transcripts only (no clips), official split, 7 classes
    name="meld", folder="meld-text", labels=tuple(MELD_LABELS), loader=prepare_meld, folds="meld",
    modalities=frozenset({"text", "meta"}),
    default_recipes=("logreg_minilm", "gated_fusion_meld"),
    speaker_independent=False, note="official train/dev/test split (dialogue-disjoint, NOT speaker-disjoint)",
    folds_protocol=_folds_protocol,
))
