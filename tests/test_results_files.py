"""Figures in the README and docs trace to committed results files (docs/results/*.json): every
linked file exists and holds the shared results fields, and each README results row quotes the
numbers of the row its link names."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results"
SHARED_FIELDS = ("model", "modalities", "wa_mean", "wa_std", "ua_mean", "ua_std", "macro_f1_mean", "macro_f1_std",
                 "weighted_f1_mean", "weighted_f1_std", "train_seconds")
LINK = re.compile(r"\]\(((?:\.\./|docs/)?results/[\w.\-]+\.json)(?:#([\w\-]+))?\)")


def _doc_links() -> list[tuple[Path, str, str | None]]:
    """(document, linked results file, named model) for every results link in README.md and docs/."""
    links = []
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for target, anchor in LINK.findall(doc.read_text(encoding="utf-8")):
            base = ROOT if doc.name == "README.md" else doc.parent
            links.append((doc, str((base / target).resolve()), anchor or None))
    return links


def _benchmark_files() -> list[Path]:
    return sorted(p for p in RESULTS.glob("*.json") if "results" in json.loads(p.read_text(encoding="utf-8"))
                  and isinstance(json.loads(p.read_text(encoding="utf-8"))["results"], list)
                  and all("wa_mean" in r for r in json.loads(p.read_text(encoding="utf-8"))["results"]))


def test_every_linked_results_file_exists_and_names_a_row():
    links = _doc_links()
    assert any(doc.name == "README.md" for doc, _, _ in links), "the README results table links no results file"
    for doc, target, model in links:
        path = Path(target)
        assert path.is_file(), f"{doc.name} links {path.relative_to(ROOT)}, which is not committed"
        if model:
            rows = json.loads(path.read_text(encoding="utf-8"))["results"]
            assert model in [r["model"] for r in rows], f"{doc.name}: {path.name} has no row {model}"


@pytest.mark.parametrize("path", _benchmark_files(), ids=lambda p: p.name)
def test_benchmark_results_files_hold_the_shared_fields(path):
    payload = json.loads(path.read_text(encoding="utf-8"))
    for key in ("dataset", "date", "machine", "command", "folds", "seeds", "labels"):
        assert key in payload, f"{path.name}: no {key}"
    for row in payload["results"]:
        missing = [f for f in SHARED_FIELDS if f not in row]
        assert not missing, f"{path.name} row {row.get('model')}: missing {missing}"


def _cells(line: str) -> list[str]:
    return [c.strip().strip("*") for c in line.strip().strip("|").split("|")]


def test_readme_results_rows_quote_their_results_file():
    """Each README results row with a link: its WA, UA and macro-F1 (mean ± std) are the linked row's,
    the seed ensemble's for an ensemble row, rounded to 3 decimals."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    checked = 0
    for line in readme.splitlines():
        match = LINK.search(line)
        if not line.startswith("|") or not match:
            continue
        target, model = match.groups()
        rows = {r["model"]: r for r in json.loads((ROOT / target).read_text(encoding="utf-8"))["results"]}
        row = rows[model]
        scores = row["seed_ensemble"] if "ensemble" in line.lower() else row
        cells = _cells(line)
        quoted = [c for c in cells if re.fullmatch(r"\d\.\d{3} ± \d\.\d{3}", c)]
        expected = [f"{scores[f'{k}_mean']:.3f} ± {scores[f'{k}_std']:.3f}" for k in ("wa", "ua", "macro_f1")]
        assert quoted == expected, f"README row for {model}: {quoted} but {target} says {expected}"
        checked += 1
    assert checked >= 1
