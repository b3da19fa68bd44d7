"""Result files: JSON round-trip, Markdown table, console table, confusion PNG."""

from __future__ import annotations

import json

import numpy as np
import pytest

from emofuse.errors import DataError
from emofuse.evaluation.reports import format_table, markdown_table, plot_confusion, read_results, write_results


def _results() -> dict:
    return {
        "dataset": "ravdess",
        "protocol": "6 actor-disjoint folds",
        "results": [
            {"model": "late_fusion", "modalities": ["audio", "face"], "wa_mean": np.float64(0.713),
             "wa_std": 0.041, "ua_mean": 0.70, "ua_std": 0.05, "macro_f1_mean": 0.69, "macro_f1_std": 0.04,
             "train_seconds": 125.0, "n_runs": np.int64(6)},
            {"model": "audio_only", "modalities": ["audio"], "wa_mean": 0.511, "wa_std": float("nan"),
             "ua_mean": 0.5, "ua_std": 0.02, "macro_f1_mean": 0.49, "macro_f1_std": 0.03, "train_seconds": 12.5},
        ],
    }


def test_write_results_json_roundtrip_and_markdown(tmp_path):
    json_path, md_path = write_results(tmp_path, _results(), name="bench")
    assert json_path.name == "bench.json" and md_path.name == "bench.md"
    data = read_results(json_path)
    assert data["dataset"] == "ravdess"
    assert data["results"][0]["wa_mean"] == pytest.approx(0.713)
    assert data["results"][0]["n_runs"] == 6
    assert data["results"][1]["wa_std"] is None  # NaN is not JSON
    # writing what was read gives the same file
    again, _ = write_results(tmp_path / "again", data, name="bench")
    assert json.loads(again.read_text()) == data
    md = md_path.read_text()
    assert "| late_fusion | audio+face | 0.713 ± 0.041 | 0.700 ± 0.050 | 0.690 ± 0.040 | 2 min 05 s |" in md
    assert "**dataset**: ravdess" in md
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again", "bench.json", "bench.md"]  # no temp files


def test_write_results_rejects_rows_missing_keys(tmp_path):
    bad = _results()
    del bad["results"][0]["ua_std"]
    with pytest.raises(DataError, match="ua_std"):
        write_results(tmp_path, bad)
    assert not (tmp_path / "results.json").exists()


def test_read_results_bad_json_names_file(tmp_path):
    path = tmp_path / "results.json"
    path.write_text("{not json")
    with pytest.raises(DataError, match="results.json"):
        read_results(path)


def test_format_table_lists_every_model():
    text = format_table(_results(), title="RAVDESS")
    assert "late_fusion" in text and "audio_only" in text and "0.713 ± 0.041" in text
    assert "0.511" in text and "RAVDESS" in text


def test_tables_add_seed_ensemble_columns_only_when_a_row_has_them(tmp_path):
    plain = _results()
    assert "ensemble" not in format_table(plain) and "ensemble" not in markdown_table(plain)
    with_ens = _results()
    with_ens["results"][0]["seed_ensemble"] = {"members": 5, "wa_mean": 0.861, "wa_std": 0.03, "ua_mean": 0.85,
                                               "ua_std": 0.02, "macro_f1_mean": 0.84, "macro_f1_std": 0.02}
    md = markdown_table(with_ens)
    assert "| ensemble WA | ensemble UA | ensemble macro-F1 |" in md
    assert "| 0.861 ± 0.030 (5 seeds) | 0.850 ± 0.020 (5 seeds) | 0.840 ± 0.020 (5 seeds) |" in md
    assert "| audio_only | audio | 0.511 | 0.500 ± 0.020 | 0.490 ± 0.030 | 12.5 s | n/a | n/a | n/a |" in md
    assert "(5 seeds)" in format_table(with_ens)


def test_plot_confusion_writes_png(tmp_path):
    cm = [[5, 1, 0], [2, 3, 1], [0, 0, 0]]  # last row empty: must not divide by zero
    path = plot_confusion(cm, ["neutral", "happy", "sad"], tmp_path / "plots" / "cm.png", title="fold 1")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 2000
    with pytest.raises(ValueError, match="does not match"):
        plot_confusion(cm, ["a", "b"], tmp_path / "x.png")


def _with_robustness() -> dict:
    results = _results()
    results["results"][0]["modality_dropout"] = 0.2
    results["results"][0]["robustness"] = {
        "only_audio": {"wa_mean": 0.60, "wa_std": 0.05}, "only_face": {"wa_mean": 0.50, "wa_std": 0.04},
        "drop_0.1": {"wa_mean": 0.69, "wa_std": 0.04}, "drop_0.5": {"wa_mean": 0.58, "wa_std": 0.06},
    }
    return results


def test_robustness_table_and_report(tmp_path):
    from emofuse.evaluation.reports import robustness_table

    table = robustness_table(_with_robustness())
    lines = table.strip().splitlines()
    assert lines[0] == "| model | train dropout | all present | drop 0.1 | drop 0.5 | only audio | only face |"
    assert lines[2] == "| late_fusion | 0.2 | 0.713 | 0.690 | 0.580 | 0.600 | 0.500 |"
    assert len(lines) == 3  # the row without robustness tests is left out
    assert robustness_table(_results()) == ""
    _, md = write_results(tmp_path, _with_robustness())
    assert "## Missing-modality robustness" in md.read_text() and lines[2] in md.read_text()


def test_plot_robustness_writes_png_or_nothing(tmp_path):
    from emofuse.evaluation.reports import plot_robustness

    out = plot_robustness(_with_robustness(), tmp_path / "rob.png", title="t")
    assert out == tmp_path / "rob.png" and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plot_robustness(_results(), tmp_path / "none.png") is None and not (tmp_path / "none.png").exists()
