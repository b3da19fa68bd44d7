"""CREMA-D loader: ``<actor>_<sentence>_<emotion>_<level>.<ext>`` files, optional demographics.

Files of one clip with the same stem in different folders (``AudioWAV/x.wav``,
``VideoFlash/x.flv``) become one sample with both ``audio`` and ``video`` sources. The
original videos carry the speech track, so a clip with a video file but no separate audio file
gets ``sources["audio"]`` = the video file (``meta["audio_in_video"] = True``).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from emofuse.data.manifest import MissingReport, read_csv_rows
from emofuse.data.record import Sample
from emofuse.data.specs import DatasetSpec, register_dataset
from emofuse.errors import DataError

log = logging.getLogger("emofuse.data")

#: the 6 classes in the order of the CREMA-D codes ANG, DIS, FEA, HAP, NEU, SAD
CREMAD_LABELS = ["angry", "disgust", "fearful", "happy", "neutral", "sad"]
EMOTIONS = dict(zip(("ANG", "DIS", "FEA", "HAP", "NEU", "SAD"), CREMAD_LABELS))
LEVELS = {"LO": "low", "MD": "medium", "HI": "high", "XX": "unspecified"}
SENTENCES = {
    "IEO": "It's eleven o'clock",
    "TIE": "That is exactly what happened",
    "IOM": "I'm on my way to the meeting",
    "IWW": "I wonder what this is about",
    "TAI": "The airplane is almost full",
    "MTI": "Maybe tomorrow it will be cold",
    "IWL": "I would like a new alarm clock",
    "ITH": "I think I have a doctor's appointment",
    "DFA": "Don't forget a jacket",
    "ITS": "I think I've seen this before",
    "TSI": "The surface is slick",
    "WSI": "We'll stop in a couple of minutes",
}
AUDIO_EXTENSIONS = (".wav", ".mp3", ".flac")
VIDEO_EXTENSIONS = (".flv", ".mp4", ".avi")
DEMOGRAPHIC_COLUMNS = ("ActorID", "Age", "Sex", "Race", "Ethnicity")
_NAME = re.compile(r"^(\d{4})_([A-Z]{3})_([A-Z]{3})_([A-Z]{2})$")


def parse_cremad_name(name: str, source: str | Path | None = None) -> dict:
    """Parse a CREMA-D file name or stem into meta fields; malformed names raise DataError."""
    stem = Path(name).name
    if "." in stem:
        stem = stem.rsplit(".", 1)[0]
    where = source if source is not None else name
    m = _NAME.match(stem)
    if not m:
        raise DataError(where, f"not a CREMA-D file name {name!r} (expected 1001_DFA_ANG_XX)")
    actor, sentence, emotion, level = m.groups()
    for field, code, allowed in (("sentence", sentence, SENTENCES), ("emotion", emotion, EMOTIONS),
                                 ("level", level, LEVELS)):
        if code not in allowed:
            raise DataError(where, f"{name!r}: invalid {field} code {code} (allowed {', '.join(allowed)})")
    return {"actor": actor, "sentence": sentence, "sentence_text": SENTENCES[sentence],
            "emotion": EMOTIONS[emotion], "emotion_code": emotion,
            "level": LEVELS[level], "level_code": level}


def read_demographics(csv_path: str | Path) -> dict[str, dict]:
    """Read VideoDemographics.csv -> actor id -> {"age", "sex", "gender", "race", "ethnicity"}."""
    csv_path = Path(csv_path)
    _, rows = read_csv_rows(csv_path, DEMOGRAPHIC_COLUMNS)
    table: dict[str, dict] = {}
    for i, row in enumerate(rows, start=2):
        actor = row["ActorID"].strip()
        sex = row["Sex"].strip()
        try:
            age = int(row["Age"])
        except ValueError:
            raise DataError(csv_path, f"row {i} (actor {actor}): Age {row['Age']!r} is not an integer") from None
        if not re.fullmatch(r"\d{4}", actor) or sex not in ("Male", "Female"):
            raise DataError(csv_path, f"row {i}: bad ActorID {actor!r} or Sex {sex!r} (Male/Female)")
        if actor in table:
            raise DataError(csv_path, f"row {i}: duplicate actor {actor}")
        table[actor] = {"age": age, "sex": sex, "gender": sex[0], "race": row["Race"].strip(),
                        "ethnicity": row["Ethnicity"].strip()}
    return table


def prepare_cremad(root: str | Path, *, demographics_csv: str | Path | None = None,
                   strict: bool = False) -> list[Sample]:
    """Find CREMA-D clips under ``root`` (recursively) and return one sample per clip stem.

    Args:
        root: folder holding the clips (e.g. ``AudioWAV/`` and/or ``VideoFlash/``).
        demographics_csv: optional ``VideoDemographics.csv``; its fields are merged into meta.
            An actor missing from it warns (or raises when ``strict``).
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(root, "CREMA-D root folder not found")
    by_stem: dict[str, dict[str, Path]] = {}
    for path in sorted(root.rglob("*")):
        ext = path.suffix.lower()
        if not path.is_file() or ext not in AUDIO_EXTENSIONS + VIDEO_EXTENSIONS:
            continue
        parse_cremad_name(path.name, path)
        kind = "audio" if ext in AUDIO_EXTENSIONS else "video"
        files = by_stem.setdefault(path.stem, {})
        if kind in files:
            raise DataError(path, f"second {kind} file for clip {path.stem} (also {files[kind]})")
        files[kind] = path
    if not by_stem:
        raise DataError(root, "no CREMA-D clips found")
    demographics = read_demographics(demographics_csv) if demographics_csv is not None else None
    missing = MissingReport(demographics_csv or root, "demographics row", strict)
    samples = []
    for stem, files in sorted(by_stem.items()):
        meta = parse_cremad_name(stem, next(iter(files.values())))
        sources: dict = dict(files)
        if "audio" not in sources:
            sources["audio"] = sources["video"]
            meta["audio_in_video"] = True
        if demographics is not None:
            if meta["actor"] in demographics:
                meta.update(demographics[meta["actor"]])
            else:
                missing.add(stem, f"actor {meta['actor']}")
        samples.append(Sample(id=stem, speaker=meta["actor"], dataset="cremad", label=meta["emotion"],
                              sources=sources, meta=meta))
    missing.summary()
    return samples


# ---------------------------------------------------------------------------------------------
# The dataset specification (see emofuse.data.specs).

def _folds_protocol() -> dict:
    from emofuse.data.splits import rotating_folds

    actors = [str(a) for a in range(1001, 1092)]
    groups = [actors[k::5] for k in range(5)]
    return {
        "dataset": "cremad", "group_by": "speaker",
        "protocol": "5 actor-disjoint folds over actors 1001-1091 assigned round-robin on the sorted ids "
                    "(actor i of the sorted list -> fold i mod 5); validation = the first 4 actors of the next "
                    "fold's test group; train = the rest. Gender is not balanced (no demographics shipped).",
        "folds": rotating_folds(groups, lambda k: groups[(k + 1) % 5][:4]),
    }


register_dataset(DatasetSpec(
    name="cremad", folder="crema-d", labels=tuple(CREMAD_LABELS), loader=prepare_cremad, folds="cremad",
    # speech only: the faces are in videos, which nothing turns into features yet; no demographics
    # are read by default, so no speaker meta
    modalities=frozenset({"audio"}),
    default_recipes=("logreg_egemaps", "logreg_whisper", "attention_pooling_audio"),
    folds_protocol=_folds_protocol,
))
