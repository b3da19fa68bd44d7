"""Predicting a folder or a manifest of media in shards: one JSONL file per shard, then one merged file.

    emofuse predict --batch clips/ --out preds/                   # one process
    torchrun --nproc_per_node 4 --no-python emofuse predict --batch clips.csv --out preds/

Each process (rank ``k-1`` of ``n``, or ``--shard k/n``) predicts every n-th file of the sorted list
into ``preds/shard-0000k-of-0000n.jsonl`` (one `Prediction.to_dict` per line, rewritten atomically
every ``flush_every`` files). Files already in any ``shard-*.jsonl`` of the folder are skipped, so a
rerun after a killed process predicts only what is missing (with the same or another number of
processes). The process that finds every file predicted writes ``preds/predictions.jsonl``: one line
per file in list order.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emofuse.atomic import atomic_write_text
from emofuse.errors import DataError

#: the media a folder is searched for (audio and video containers `emofuse.media.audio.load_audio` decodes)
MEDIA_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".aac", ".webm", ".mp4", ".mkv", ".mov", ".avi")
#: a manifest's columns naming the file, in order of preference
PATH_COLUMNS = ("path", "audio", "video", "file")
MERGED = "predictions.jsonl"
SHARD_GLOB = "shard-*-of-*.jsonl"


@dataclass
class BatchResult:
    """What one `predict_batch` call did."""

    total: int  # files in the list
    mine: int  # files of this shard
    predicted: int  # predicted now
    skipped: int  # of this shard, already predicted by an earlier run
    failed: int  # predicted now without a label
    shard_file: Path
    merged: Path | None  # the merged file, when this call wrote it


def list_media(source: str | Path) -> list[str]:
    """The files to predict: a folder's media files (`MEDIA_SUFFIXES`, searched recursively, sorted),
    or a CSV manifest's ``path`` / ``audio`` / ``video`` / ``file`` column (relative to the
    manifest's folder), in its row order."""
    source = Path(source)
    if source.is_dir():
        files = sorted(str(p) for p in source.rglob("*") if p.is_file() and p.suffix.lower() in MEDIA_SUFFIXES)
        if not files:
            raise DataError(source, f"no media files in this folder ({', '.join(MEDIA_SUFFIXES)})")
        return files
    if not source.is_file():
        raise DataError(source, "--batch names neither a folder nor a CSV manifest")
    if source.suffix.lower() != ".csv":
        raise DataError(source, "--batch takes a folder of media or a CSV manifest (.csv)")
    with source.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        column = next((c for c in PATH_COLUMNS if c in (reader.fieldnames or [])), None)
        if column is None:
            raise DataError(source, f"the manifest has no file column (one of {', '.join(PATH_COLUMNS)}); "
                                    f"its columns: {', '.join(reader.fieldnames or [])}")
        cells = [(row.get(column) or "").strip() for row in reader]
    files = [str(p if p.is_absolute() else source.parent / p) for p in map(Path, filter(None, cells))]
    if not files:
        raise DataError(source, f"the manifest's {column} column names no file")
    return list(dict.fromkeys(files))


def shard_path(out_dir: Path, shard: tuple[int, int]) -> Path:
    return out_dir / f"shard-{shard[0]:05d}-of-{shard[1]:05d}.jsonl"


def read_records(path: Path) -> list[dict[str, Any]]:
    """The prediction records of a JSONL file (`DataError` naming it and the line when one is bad)."""
    records = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise DataError(path, f"line {n} is not JSON ({exc}); delete the file to predict its files again") from None
        if not isinstance(record, dict) or not isinstance(record.get("path"), str):
            raise DataError(path, f"line {n} is not a prediction with a path")
        records.append(record)
    return records


def predicted(out_dir: Path) -> dict[str, dict[str, Any]]:
    """Every file already predicted in ``out_dir``'s shard files: path -> its record."""
    done: dict[str, dict[str, Any]] = {}
    for path in sorted(out_dir.glob(SHARD_GLOB)):
        for record in read_records(path):
            done.setdefault(record["path"], record)
    return done


def _write(path: Path, records: Sequence[dict[str, Any]]) -> None:
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))


def merge(files: Sequence[str], out_dir: Path) -> Path | None:
    """Write ``out_dir/predictions.jsonl`` (one record per file, in ``files`` order) when every file
    is in a shard file; None (nothing written) while some are not."""
    done = predicted(out_dir)
    if any(f not in done for f in files):
        return None
    merged = out_dir / MERGED
    _write(merged, [done[f] for f in files])
    return merged


def predict_batch(predict: Callable[[list[str]], list[Any]], files: Sequence[str], out_dir: str | Path,
                  shard: tuple[int, int] | None = None, *, flush_every: int = 16,
                  on_progress: Callable[[int, int], None] | None = None) -> BatchResult:
    """Predict this shard's files not yet in ``out_dir`` with ``predict`` (paths -> `Prediction`s,
    in order) into its shard file, then merge when every file is predicted (see the module)."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise DataError(out, "the --out of a batch prediction is a folder, and this is a file")
    out.mkdir(parents=True, exist_ok=True)
    shard = shard or (1, 1)
    own = shard_path(out, shard)
    records = read_records(own) if own.is_file() else []
    done = predicted(out)
    mine = list(files)[shard[0] - 1 :: shard[1]]
    todo = [f for f in mine if f not in done]
    failed = 0
    for start in range(0, len(todo), max(1, flush_every)):
        chunk = todo[start : start + max(1, flush_every)]
        preds = predict(chunk)
        if len(preds) != len(chunk):
            raise RuntimeError(f"the predictor returned {len(preds)} results for {len(chunk)} files")
        for path, pred in zip(chunk, preds):
            record = pred.to_dict()
            record["path"] = path  # the key a rerun looks files up by: the path as listed
            records.append(record)
            failed += not pred.ok
        _write(own, records)
        if on_progress is not None:
            on_progress(len(mine) - len(todo) + start + len(chunk), len(mine))
    return BatchResult(total=len(files), mine=len(mine), predicted=len(todo), skipped=len(mine) - len(todo),
                       failed=failed, shard_file=own, merged=merge(files, out))
