"""Transcripts a user gives for files to predict: a ``.json`` object or a ``.csv`` (``file``,
``text``) read with `load_transcripts`, matched to the input files with `match_transcripts`
(``emofuse predict --transcripts``)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from emofuse.errors import DataError


def load_transcripts(path: str | Path) -> dict[str, str]:
    """File -> transcript mapping from a ``.json`` object (``{"clip.wav": "text", ...}``) or a
    ``.csv`` with columns ``file`` and ``text``. Errors name the mapping file and the problem."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "transcripts file not found")
    suffix = path.suffix.lower()
    try:
        content = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(path, f"cannot read transcripts file: {exc}") from None
    pairs: list[tuple[str, Any, str]] = []  # (file, text, where)
    if suffix == ".json":
        try:
            data = json.loads(content)
        except json.JSONDecodeError as exc:
            raise DataError(path, f"transcripts file is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise DataError(path, 'transcripts JSON must be an object {"file": "transcript", ...}, '
                                  f"got {type(data).__name__}")
        pairs = [(str(k), v, f"entry {k!r}") for k, v in data.items()]
    elif suffix == ".csv":
        reader = csv.DictReader(content.splitlines())
        columns = [c.strip() for c in (reader.fieldnames or [])]
        if "file" not in columns or "text" not in columns:
            raise DataError(path, f"transcripts CSV needs the columns 'file' and 'text'; found {columns}")
        for row_number, row in enumerate(reader, start=2):
            row = {(k or "").strip(): v for k, v in row.items()}
            pairs.append(((row.get("file") or "").strip(), row.get("text"), f"line {row_number}"))
    else:
        raise DataError(path, f"transcripts must be a .json or .csv file, not {suffix or 'a file without extension'}")
    mapping: dict[str, str] = {}
    for name, text, where in pairs:
        if not name:
            raise DataError(path, f"{where}: empty file name")
        if not isinstance(text, str) or not text.strip():
            raise DataError(path, f"{where}: the transcript of {name} is empty or not a string")
        if name in mapping and mapping[name] != text.strip():
            raise DataError(path, f"{where}: {name} has two different transcripts")
        mapping[name] = text.strip()
    if not mapping:
        raise DataError(path, "transcripts file holds no transcripts")
    return mapping


def match_transcripts(mapping: dict[str, str], files: list[str | Path],
                      source: str | Path | None = None) -> dict[str, str]:
    """The transcript of each file in ``files`` that ``mapping`` names, keyed by the file as given.

    A mapping key matches a file when it is the file as given, the same path (relative keys are
    resolved from the current folder), or the file's name alone (when no other key is a path to
    it). Files without an entry are left out (they fall back to speech recognition)."""
    by_path = {str(Path(k).expanduser().resolve()): v for k, v in mapping.items()}
    out: dict[str, str] = {}
    by_name: dict[str, list[str]] = {}  # file name -> input files matched by their name alone
    for f in files:
        key = str(f)
        resolved = str(Path(f).expanduser().resolve())
        if key in mapping:
            out[key] = mapping[key]
        elif resolved in by_path:
            out[key] = by_path[resolved]
        elif Path(f).name in mapping:
            out[key] = mapping[Path(f).name]
            by_name.setdefault(Path(f).name, []).append(key)
    clashes = sorted(n for n, matched in by_name.items() if len(set(matched)) > 1)
    if clashes:
        raise DataError(source, f"the file names {clashes} match several input files: key the transcripts by path")
    return out
