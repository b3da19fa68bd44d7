"""Generic CSV manifest loader, plus the CSV/missing-piece helpers every dataset loader shares.

Manifest format (one row per sample)::

    id,speaker,label,audio,video,text,face_npy,signal,label_audio,label_face,dataset,<anything else>

(per-modality label columns: ``label_audio``, ``label_text``, ``label_face`` or ``label_visual``).

``id``, ``speaker`` and ``label`` are required, plus at least one of ``audio``, ``video``,
``text``, ``face_npy``, ``signal``. Paths are relative to the CSV's folder (absolute paths are kept).
``signal`` names a ``.npz`` multichannel signal file (``data`` [T, C], ``rate`` Hz), kept as
``sources["signal"]`` (a `Path`; its extractors read it).
An empty cell means "this modality is absent for this sample"; an empty ``label`` means unlabelled.
Every ``label_*`` column becomes an extra label; every other column goes into ``meta``.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported where used: listing the datasets stays free of numpy
    import numpy as np

from emofuse.data.record import Sample
from emofuse.atomic import atomic_write_bytes
from emofuse.errors import DataError

log = logging.getLogger("emofuse.data")

REQUIRED_COLUMNS = ("id", "speaker", "label")
MODALITY_COLUMNS = ("audio", "video", "text", "face_npy", "signal")
#: how many missing pieces are logged one by one before the rest are summarised
MAX_LISTED_MISSING = 20


class MissingReport:
    """Reports optional pieces (an AU row, a clip, a transcript) that are missing for a sample.

    Each one is logged as a warning naming the sample (the first `MAX_LISTED_MISSING`, then a
    count), or raises `DataError` at once when ``strict``. Call :meth:`summary` at the end.
    """

    def __init__(self, source: str | Path, what: str, strict: bool = False) -> None:
        self.source, self.what, self.strict = source, what, strict
        self.missing: list[str] = []

    def add(self, sample_id: str, detail: str = "") -> None:
        """Record that `what` is missing for `sample_id` (raise if strict)."""
        msg = f"no {self.what} for {sample_id}" + (f" ({detail})" if detail else "")
        if self.strict:
            raise DataError(self.source, msg)
        self.missing.append(sample_id)
        if len(self.missing) <= MAX_LISTED_MISSING:
            log.warning("%s: %s; left absent for that sample", self.source, msg)

    def summary(self) -> None:
        """Log the total when more were missing than were listed individually."""
        if len(self.missing) > MAX_LISTED_MISSING:
            log.warning("%s: %d samples have no %s (first listed above; last: %s)",
                        self.source, len(self.missing), self.what, self.missing[-1])


def read_text_robust(path: Path) -> str:
    """Read a text file as UTF-8 (BOM tolerated); fall back to cp1252 with a warning."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(path, f"cannot read file: {exc.strerror or exc}") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        log.warning("%s: not valid UTF-8 (byte %d); decoding as cp1252", path, exc.start)
        return raw.decode("cp1252", errors="replace")


def read_csv_rows(path: str | Path, required: Iterable[str] = ()) -> tuple[list[str], list[dict[str, str]]]:
    """Read a CSV into (header, rows); a missing file or missing required column raises DataError."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "file not found")
    text = read_text_robust(path)
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""))
        header = [h.strip() for h in (reader.fieldnames or [])]
        reader.fieldnames = header
        rows = []
        for row in reader:
            if None in row:
                raise DataError(path, f"line {reader.line_num}: more cells than header columns")
            rows.append({k: (v if v is not None else "") for k, v in row.items()})
    except csv.Error as exc:
        raise DataError(path, f"malformed CSV: {exc}") from None
    missing = [c for c in required if c not in header]
    if missing:
        raise DataError(path, f"missing required column(s) {', '.join(missing)}; found {', '.join(header)}")
    return header, rows


def check_label(path: Path, where: str, label: str | None, labels: Sequence[str] | None) -> None:
    """Raise DataError when ``label`` is not in the allowed ``labels`` (None = no restriction)."""
    if labels is not None and label is not None and label not in labels:
        raise DataError(path, f"{where}: label {label!r} is not one of {list(labels)}")


def _resolve(base: Path, value: str) -> Path:
    p = Path(value).expanduser()
    return p if p.is_absolute() else base / p


def load_numeric_row(path: Path, context: str) -> "np.ndarray":
    """A per-clip numeric row (``.npy``, e.g. action units) as float32, checked non-empty and finite;
    errors name ``path`` and start with ``context`` (where the row was asked for)."""
    import numpy as np

    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DataError(path, f"{context}: cannot read a numeric row (.npy): {exc}") from None
    if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "fiu" or arr.ndim not in (1, 2) or arr.size == 0:
        raise DataError(path, f"{context}: expected a non-empty numeric 1-D or 2-D array (.npy)")
    if not np.isfinite(arr).all():
        raise DataError(path, f"{context}: contains NaN or inf")
    return arr.astype(np.float32)


def prepare_manifest(csv_path: str | Path, *, labels: Sequence[str] | None = None,
                     dataset: str = "manifest") -> list[Sample]:
    """Load samples from a generic manifest CSV (see module docstring).

    Args:
        csv_path: the manifest file; relative paths inside it resolve against its folder.
        labels: allowed labels; a ``label`` (or ``label_<modality>``) outside it raises DataError.
        dataset: dataset name for rows without a ``dataset`` column value.
    """
    csv_path = Path(csv_path)
    header, rows = read_csv_rows(csv_path, REQUIRED_COLUMNS)
    present = [c for c in MODALITY_COLUMNS if c in header]
    if not present:
        raise DataError(csv_path, f"needs at least one of the columns {', '.join(MODALITY_COLUMNS)}")
    base = csv_path.parent
    label_cols = [c for c in header if c.startswith("label_")]
    meta_cols = [c for c in header if c not in (*REQUIRED_COLUMNS, *MODALITY_COLUMNS, *label_cols, "dataset")]
    samples: list[Sample] = []
    seen: set[str] = set()
    for i, row in enumerate(rows, start=2):  # line 1 is the header
        where = f"row {i}"
        sid, speaker = row["id"].strip(), row["speaker"].strip()
        if not sid or not speaker:
            raise DataError(csv_path, f"{where}: empty id or speaker")
        where = f"row {i} (id {sid})"
        if sid in seen:
            raise DataError(csv_path, f"{where}: duplicate id")
        seen.add(sid)
        label = row["label"].strip() or None
        check_label(csv_path, where, label, labels)
        sources: dict = {}
        for col in present:
            value = row[col].strip() if col != "text" else row[col]
            if not value.strip():
                continue
            if col == "text":
                sources["text"] = value
                continue
            path = _resolve(base, value)
            if not path.is_file():
                raise DataError(csv_path, f"{where}: referenced {col} file not found: {path}")
            if col == "face_npy":
                sources["face"] = load_numeric_row(path, f"{csv_path} {where}: face features")
            elif col == "signal" and path.suffix.lower() != ".npz":
                raise DataError(csv_path, f"{where}: signal file {path} is not a .npz file (arrays data [T, C], rate)")
            else:
                sources[col] = path
        if not sources:
            raise DataError(csv_path, f"{where}: every modality cell is empty")
        extra = {c: row[c].strip() for c in label_cols if row[c].strip()}
        for c, v in extra.items():
            if c.removeprefix("label_") in ("audio", "video", "face", "visual", "text"):
                check_label(csv_path, f"{where} column {c}", v, labels)
        meta = {c: row[c] for c in meta_cols}
        meta["manifest_row"] = i
        samples.append(Sample(id=sid, speaker=speaker, dataset=row.get("dataset", "").strip() or dataset,
                              label=label, sources=sources, extra_labels=extra, meta=meta))
    if not samples:
        raise DataError(csv_path, "manifest has no rows")
    return samples


def write_manifest(samples: Sequence[Sample], csv_path: str | Path) -> Path:
    """Write samples as a manifest CSV that `prepare_manifest` reads back (atomic writes).

    Media paths are stored relative to the CSV's folder when possible; face arrays are saved as
    ``<csv stem>_face/<n>_<id>.npy``; extra labels become ``label_*`` columns (a ``label_`` prefix is
    added when missing) and scalar meta values become extra columns.
    """
    csv_path = Path(csv_path)
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    import numpy as np

    base = csv_path.parent.resolve()
    label_cols = sorted({k if k.startswith("label_") else f"label_{k}" for s in samples for k in s.extra_labels})
    meta_cols = sorted({k for s in samples for k, v in s.meta.items()
                        if isinstance(v, (str, int, float, bool)) and k not in ("manifest_row",)}
                       - {*REQUIRED_COLUMNS, *MODALITY_COLUMNS, "dataset", *label_cols})
    header = [*REQUIRED_COLUMNS, "dataset", *MODALITY_COLUMNS, *label_cols, *meta_cols]
    buf = io.StringIO(newline="")
    writer = csv.DictWriter(buf, fieldnames=header, lineterminator="\n")
    writer.writeheader()
    for n, s in enumerate(samples):
        row = {"id": s.id, "speaker": s.speaker, "label": s.label or "", "dataset": s.dataset}
        for key in ("audio", "video", "signal"):
            if isinstance(s.sources.get(key), Path):
                p = s.sources[key].resolve()
                row[key] = os.path.relpath(p, base) if p.is_relative_to(base) else str(p)
        if isinstance(s.sources.get("text"), str):
            row["text"] = s.sources["text"]
        if isinstance(s.sources.get("face"), np.ndarray):
            face_dir = csv_path.parent / f"{csv_path.stem}_face"
            face_dir.mkdir(exist_ok=True)
            target = face_dir / f"{n:06d}_{re.sub(r'[^A-Za-z0-9_.-]', '_', s.id)}.npy"
            npy = io.BytesIO()
            np.save(npy, np.asarray(s.sources["face"], dtype=np.float32), allow_pickle=False)
            atomic_write_bytes(target, npy.getvalue())
            row["face_npy"] = os.path.relpath(target.resolve(), base)
        for k, v in s.extra_labels.items():
            row[k if k.startswith("label_") else f"label_{k}"] = v
        for k in meta_cols:
            if k in s.meta:
                row[k] = s.meta[k]
        writer.writerow(row)
    atomic_write_bytes(csv_path, buf.getvalue().encode("utf-8"))
    return csv_path
