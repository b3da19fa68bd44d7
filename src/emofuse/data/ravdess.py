"""RAVDESS loader: filename parsing, optional per-clip OpenFace action units.

File names are seven two-digit fields, ``MM-VV-EE-II-SS-RR-AA`` (modality, vocal channel,
emotion, intensity, statement, repetition, actor), optionally followed by ``_suffix``
(e.g. the face-crop clips ``01-01-01-01-01-01-05_facecroppad.avi``).
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported where used: listing the datasets stays free of numpy
    import numpy as np

from emofuse.data.manifest import MissingReport, read_csv_rows
from emofuse.data.record import Sample
from emofuse.data.specs import DatasetSpec, register_dataset
from emofuse.errors import DataError

log = logging.getLogger("emofuse.data")

#: the 8 classes in emotion-code order (code 01 -> index 0)
RAVDESS_LABELS = ["neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"]
EMOTIONS = {f"{i + 1:02d}": name for i, name in enumerate(RAVDESS_LABELS)}
MODALITIES = {"01": "full-AV", "02": "video-only", "03": "audio-only"}
VOCAL_CHANNELS = {"01": "speech", "02": "song"}
INTENSITIES = {"01": "normal", "02": "strong"}
STATEMENTS = {"01": "Kids are talking by the door", "02": "Dogs are sitting by the door"}
REPETITIONS = {"01": 1, "02": 2}
#: ``kinds`` argument value -> modality code
KIND_CODES = {"av": "01", "video": "02", "audio": "03"}
AUDIO_EXTENSIONS = (".wav", ".flac")
VIDEO_EXTENSIONS = (".mp4", ".avi")
#: the 35 OpenFace 2 action-unit columns of ``au_clip_means.csv`` (17 intensities, 18 presences)
OPENFACE_AU_COLUMNS = (
    "AU01_r", "AU02_r", "AU04_r", "AU05_r", "AU06_r", "AU07_r", "AU09_r", "AU10_r", "AU12_r",
    "AU14_r", "AU15_r", "AU17_r", "AU20_r", "AU23_r", "AU25_r", "AU26_r", "AU45_r",
    "AU01_c", "AU02_c", "AU04_c", "AU05_c", "AU06_c", "AU07_c", "AU09_c", "AU10_c", "AU12_c",
    "AU14_c", "AU15_c", "AU17_c", "AU20_c", "AU23_c", "AU25_c", "AU26_c", "AU28_c", "AU45_c",
)
_NAME = re.compile(r"^(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)(?:_(\w+))?$")
_AU_COLUMN = re.compile(r"^AU\d+_[rc]$")


@dataclass(frozen=True)
class RavdessName:
    """The parsed fields of one RAVDESS file name (two-digit code strings)."""

    modality: str
    vocal_channel: str
    emotion: str
    intensity: str
    statement: str
    repetition: str
    actor: str
    suffix: str = ""

    @property
    def performance(self) -> tuple[str, ...]:
        """All fields but the modality: identical for the audio-only and AV files of one take."""
        return (self.vocal_channel, self.emotion, self.intensity, self.statement, self.repetition, self.actor)

    @property
    def gender(self) -> str:
        """``"M"`` for odd actor numbers, ``"F"`` for even ones."""
        return "M" if int(self.actor) % 2 == 1 else "F"

    def meta(self) -> dict:
        """Every field, decoded, for `Sample.meta`."""
        m = {
            "modality": MODALITIES[self.modality], "modality_code": self.modality,
            "vocal_channel": VOCAL_CHANNELS[self.vocal_channel], "vocal_channel_code": self.vocal_channel,
            "emotion": EMOTIONS[self.emotion], "emotion_code": self.emotion,
            "intensity": INTENSITIES[self.intensity], "intensity_code": self.intensity,
            "statement": self.statement, "statement_text": STATEMENTS[self.statement],
            "repetition": REPETITIONS[self.repetition], "actor": int(self.actor), "gender": self.gender,
        }
        if self.suffix:
            m["suffix"] = self.suffix
        return m


def parse_ravdess_name(name: str, source: str | Path | None = None) -> RavdessName:
    """Parse a RAVDESS file name or stem (extension optional); malformed names raise DataError."""
    stem = Path(name).name
    for ext in (*AUDIO_EXTENSIONS, *VIDEO_EXTENSIONS):
        if stem.lower().endswith(ext):
            stem = stem[: -len(ext)]
            break
    m = _NAME.match(stem)
    where = source if source is not None else name
    if not m:
        raise DataError(where, f"not a RAVDESS file name {name!r} (expected MM-VV-EE-II-SS-RR-AA)")
    fields = RavdessName(*m.groups()[:7], suffix=m.group(8) or "")
    checks = (("modality", MODALITIES), ("vocal_channel", VOCAL_CHANNELS), ("emotion", EMOTIONS),
              ("intensity", INTENSITIES), ("statement", STATEMENTS), ("repetition", REPETITIONS))
    for field_name, allowed in checks:
        code = getattr(fields, field_name)
        if code not in allowed:
            raise DataError(where, f"{name!r}: invalid {field_name} code {code} (allowed {', '.join(allowed)})")
    if int(fields.actor) < 1:
        raise DataError(where, f"{name!r}: invalid actor code {fields.actor}")
    if fields.emotion == "01" and fields.intensity == "02":
        raise DataError(where, f"{name!r}: RAVDESS has no strong-intensity neutral")
    return fields


def _sample_from_file(path: Path) -> tuple[Sample, RavdessName]:
    fields = parse_ravdess_name(path.name, path)
    ext = path.suffix.lower()
    if ext in AUDIO_EXTENSIONS:
        sources: dict = {"audio": path}
    else:
        sources = {"video": path}
        if fields.modality == "01" and ext == ".mp4":  # original full-AV mp4s carry the AAC speech track
            sources["audio"] = path
    # what the actor says: one of the two fixed statements (no emotion in the words themselves)
    sources["text"] = STATEMENTS[fields.statement]
    meta = fields.meta()
    meta["kind"] = {v: k for k, v in KIND_CODES.items()}[fields.modality]
    sample = Sample(id=path.stem, speaker=fields.actor, dataset="ravdess", label=EMOTIONS[fields.emotion],
                    sources=sources, meta=meta)
    return sample, fields


def read_au_csv(au_csv: str | Path) -> tuple[tuple[str, ...], dict[tuple[str, ...], tuple[str, np.ndarray]]]:
    """Read a per-clip action-unit CSV -> (AU column names, performance key -> (clip_id, float32 vector)).

    Rows must be finite numbers; NaN/inf, unparsable clip ids, duplicate performances and label
    columns that disagree with the clip id raise DataError naming the CSV and clip.
    """
    au_csv = Path(au_csv)
    header, rows = read_csv_rows(au_csv, ("clip_id",))
    columns = tuple(c for c in header if _AU_COLUMN.match(c))
    if not columns:
        raise DataError(au_csv, "no action-unit columns (AUxx_r / AUxx_c) found")
    import numpy as np

    table: dict[tuple[str, ...], tuple[str, np.ndarray]] = {}
    for row in rows:
        clip = row["clip_id"].strip()
        fields = parse_ravdess_name(clip, au_csv)
        if "emotion" in row and row["emotion"].strip() and row["emotion"].strip() != EMOTIONS[fields.emotion]:
            raise DataError(au_csv, f"clip {clip}: emotion column {row['emotion']!r} disagrees with the clip id")
        if "actor" in row and row["actor"].strip() and int(float(row["actor"])) != int(fields.actor):
            raise DataError(au_csv, f"clip {clip}: actor column {row['actor']!r} disagrees with the clip id")
        try:
            values = [float(row[c]) for c in columns]
        except ValueError:
            bad = [c for c in columns if not _is_float(row[c])]
            raise DataError(au_csv, f"clip {clip}: non-numeric value in {', '.join(bad)}") from None
        bad = [c for c, v in zip(columns, values) if not math.isfinite(v)]
        if bad:
            raise DataError(au_csv, f"clip {clip}: NaN or inf in {', '.join(bad)}")
        if fields.performance in table:
            raise DataError(au_csv, f"clip {clip}: duplicate row for the performance of {table[fields.performance][0]}")
        table[fields.performance] = (clip, np.asarray(values, dtype=np.float32))
    return columns, table


def _is_float(value: str) -> bool:
    try:
        float(value)
        return True
    except ValueError:
        return False


def _attach_au(samples: list[tuple[Sample, RavdessName]], au_csv: str | Path, strict: bool) -> None:
    columns, table = read_au_csv(au_csv)
    missing = MissingReport(au_csv, "action-unit row", strict)
    for sample, fields in samples:
        hit = table.get(fields.performance)
        if hit is None:
            missing.add(sample.id)
            continue
        sample.sources["face"] = hit[1].copy()
        sample.meta["face_columns"] = columns
        sample.meta["au_clip_id"] = hit[0]
    missing.summary()


def _finish(found: list[tuple[Sample, RavdessName]], where: Path, au_csv, strict: bool) -> list[Sample]:
    if not found:
        raise DataError(where, "no RAVDESS files found for the requested kinds")
    ids: dict[str, Path] = {}
    for sample, _ in found:
        path = next(iter(sample.sources.values()))
        if sample.id in ids:
            raise DataError(path, f"duplicate RAVDESS clip id {sample.id} (also {ids[sample.id]})")
        ids[sample.id] = path
    if au_csv is not None:
        _attach_au(found, au_csv, strict)
    found.sort(key=lambda pair: pair[0].id)
    return [s for s, _ in found]


def _kind_codes(kinds: Iterable[str]) -> set[str]:
    kinds = (kinds,) if isinstance(kinds, str) else tuple(kinds)
    unknown = [k for k in kinds if k not in KIND_CODES]
    if unknown or not kinds:
        raise ValueError(f"kinds must be a non-empty subset of {tuple(KIND_CODES)}, got {kinds}")
    return {KIND_CODES[k] for k in kinds}


def prepare_ravdess(root: str | Path, *, au_csv: str | Path | None = None,
                    kinds: Iterable[str] = ("audio",), strict: bool = False) -> list[Sample]:
    """Find RAVDESS files under ``root`` (searched recursively) and return one sample per file.

    Args:
        root: folder holding ``Actor_XX/`` folders (any depth).
        au_csv: optional per-clip action-unit CSV; each sample gets ``sources["face"]`` from the row
            of the same performance. A missing row warns (or raises when ``strict``).
        kinds: which files to load: ``"audio"`` (03 audio-only), ``"av"`` (01 full-AV), ``"video"``
            (02 video-only).
        strict: raise instead of warning when an optional piece (AU row) is missing.

    Returns samples sorted by id; speaker is the two-digit actor id, label the emotion name,
    ``sources["text"]`` the statement spoken (``STATEMENTS``). Malformed file names raise
    DataError naming the file.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(root, "RAVDESS root folder not found")
    codes = _kind_codes(kinds)
    extensions = AUDIO_EXTENSIONS + VIDEO_EXTENSIONS
    found = []
    skipped = 0
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.suffix.lower() not in extensions:
            continue
        sample, fields = _sample_from_file(path)
        if fields.modality in codes:
            found.append((sample, fields))
        else:
            skipped += 1
    if skipped:
        log.warning("%s: %d RAVDESS files of other kinds than %s not loaded (kinds=%s would load them)",
                    root, skipped, tuple(kinds), tuple(KIND_CODES))
    return _finish(found, root, au_csv, strict)


def ravdess_from_manifest(root: str | Path, *, au_csv: str | Path | None = None,
                          strict: bool = False) -> list[Sample]:
    """Load the files listed in ``root/manifest.csv`` (column ``path``, e.g. ravdess-speech-16k).

    Fields still come from the file names; the manifest's ``actor``/``emotion`` columns are
    cross-checked and a listed file that does not exist raises DataError.
    """
    root = Path(root)
    manifest = root / "manifest.csv"
    _, rows = read_csv_rows(manifest, ("path",))
    found = []
    for i, row in enumerate(rows, start=2):
        path = root / row["path"].strip()
        if not path.is_file():
            raise DataError(manifest, f"row {i}: listed file not found: {path}")
        sample, fields = _sample_from_file(path)
        if row.get("emotion", "").strip() and row["emotion"].strip() != sample.label:
            raise DataError(manifest, f"row {i}: emotion {row['emotion']!r} disagrees with file name {path.name}")
        if row.get("actor", "").strip() and int(row["actor"]) != int(fields.actor):
            raise DataError(manifest, f"row {i}: actor {row['actor']!r} disagrees with file name {path.name}")
        if row.get("text", "").strip() and row["text"].strip() != sample.sources["text"]:
            raise DataError(manifest, f"row {i}: text {row['text']!r} disagrees with the statement code of {path.name}")
        if row.get("duration_s", "").strip() and _is_float(row["duration_s"]):
            sample.meta["duration_s"] = float(row["duration_s"])
        found.append((sample, fields))
    return _finish(found, manifest, au_csv, strict)


# ---------------------------------------------------------------------------------------------
# The dataset specification (see emofuse.data.specs).

#: the per-clip OpenFace action-unit table under the data root (the face modality when present)
AU_TABLE = "ravdess-openface-au/au_clip_means.csv"


def _loader_options(data_root: Path) -> dict:
    """The action-unit table as ``au_csv`` when the data root holds it."""
    au = Path(data_root) / AU_TABLE
    return {"au_csv": au} if au.is_file() else {}


def _folds_protocol() -> dict:
    from emofuse.data.splits import rotating_folds

    groups = [[f"{a:02d}" for a in range(g * 4 + 1, g * 4 + 5)] for g in range(6)]
    return {
        "dataset": "ravdess", "group_by": "speaker",
        "protocol": "6 actor-disjoint folds: test actors 1-4, 5-8, ..., 21-24; validation = the first two "
                    "actors (one male/odd, one female/even) of the next group, cyclically; train = the other 18.",
        "folds": rotating_folds(groups, lambda k: groups[(k + 1) % 6][:2]),
    }


_SPKN = ("logreg_whisper_spkn", "logreg_whisper_egemaps_spkn", "logreg_au_spkn", "logreg_whisper_au_spkn",
         "logreg_whisper_egemaps_au_spkn")

register_dataset(DatasetSpec(
    name="ravdess", folder="ravdess-speech-16k", labels=tuple(RAVDESS_LABELS), loader=prepare_ravdess,
    folds="ravdess",
    # text is left out on purpose: the two fixed sentences carry no emotion (text recipes for it,
    # e.g. text_audio_attention_ravdess, run only when named)
    modalities=frozenset({"audio", "face", "meta"}),
    default_recipes=(
        "logreg_egemaps", "logreg_whisper", "logreg_au", "logreg_egemaps_au", "logreg_whisper_au",
        "logreg_whisper_egemaps_au", "attention_pooling_audio", "early_concat_whisper_au", "tfn_whisper_au",
        "attention_pooling_whisper_au",
        # the same with transductive speaker normalisation (reported separately, see emofuse.features.store)
        *_SPKN, "attention_pooling_audio_spkn", "early_concat_whisper_au_spkn",
        "tfn_whisper_au_spkn", "attention_pooling_whisper_au_spkn",
    ),
    # baselines first, then the model zoo's designs at the sizes the benchmark trains on a CPU, then
    # the rest of the default line-up. Published-size configs (tucker.yaml, of_cmaer_cat.yaml) and
    # ablation variants (dual_stream_mfcc/_feature) run only when named.
    all_recipes=(
        "logreg_egemaps", "logreg_whisper", "logreg_au", "logreg_egemaps_au", "logreg_whisper_au",
        "logreg_whisper_egemaps_au",
        "tfn_whisper_au", "tucker_fusion_ravdess", "dual_stream_frft", "gated_fusion_ravdess",
        "of_cmaer_cat_ravdess", "early_concat_whisper_au", "attention_pooling_whisper_au", "attention_pooling_audio",
        *_SPKN, "tfn_whisper_au_spkn", "of_cmaer_cat_ravdess_spkn",
        "early_concat_whisper_au_spkn", "attention_pooling_whisper_au_spkn", "attention_pooling_audio_spkn",
        "logreg_whisper_egemaps_au_sp", "of_cmaer_cat_cmaa_sp_refit_ravdess",
    ),
    options=_loader_options, folds_protocol=_folds_protocol,
))
