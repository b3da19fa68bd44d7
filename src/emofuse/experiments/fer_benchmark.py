"""``emofuse benchmark fer2013``: the face-expression encoders with an expression head, scored on
FER2013 PrivateTest in one run, in the shared results format (rows with ``modalities: ["face"]``).

PublicTest is the validation set: `fer_cnn` chose its epoch on it and it is reported beside the test
accuracy; it is never used to pick anything here. Each row also gives the encoder's size and its CPU
time per face. FER2013 has no subject ids, so its split is not subject-independent. One trained
model per encoder (one seed): the standard deviations are over that single run, hence 0.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

from emofuse.data.fer2013 import FER_LABELS, load_fer2013
from emofuse.errors import ConfigError

#: Encoders scored by default: those with a FER2013 expression head.
DEFAULT_FER_ENCODERS = ("fer_cnn", "mini_xception")


def encoder_logits(encoder: Any, images: np.ndarray, batch: int = 1024) -> np.ndarray:
    """Expression logits of grey faces [N, 48, 48] (resized by the encoder as it needs)."""
    chunks = [encoder.encode(images[i:i + batch])[1] for i in range(0, len(images), batch)]
    return np.concatenate(chunks)


def ms_per_face(encoder: Any, images: np.ndarray, batch: int = 32, repeats: int = 5) -> float:
    """Median wall time per face (ms) of ``encode`` on batches of ``batch`` faces, after a warm-up."""
    faces = images[:batch]
    encoder.encode(faces)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        encoder.encode(faces)
        times.append((time.perf_counter() - start) / len(faces) * 1000)
    return float(np.median(times))


def encoder_size(encoder: Any) -> dict[str, Any]:
    """Parameter count and weight-file bytes of an encoder."""
    params = int(sum(p.numel() for p in encoder.net.parameters())) if hasattr(encoder, "net") else None
    files = [Path(f) for f in encoder.weight_files()]
    return {"params": params, "weights_bytes": int(sum(f.stat().st_size for f in files if f.is_file()))}


def fer_row(name: str, encoder: Any, splits: dict[str, Any]) -> dict[str, Any]:
    """One results row: PrivateTest metrics, PublicTest accuracy, size and speed of one encoder."""
    from emofuse.evaluation.metrics import aggregate, classification_metrics

    if list(encoder.classes or ()) != list(FER_LABELS):
        raise ConfigError(f"face encoder {name!r} has no FER2013 expression head (classes {encoder.classes})")
    test, val = splits["PrivateTest"], splits["PublicTest"]
    metrics = classification_metrics(test.labels, encoder_logits(encoder, test.images).argmax(1), list(FER_LABELS))
    val_acc = float((encoder_logits(encoder, val.images).argmax(1) == val.labels).mean())
    agg = aggregate([metrics])
    row: dict[str, Any] = {"model": name, "architecture": type(encoder).__name__, "modalities": ["face"],
                           "features": {"face": [name]}, "split": "FER2013 PrivateTest (official)",
                           "public_test_acc": val_acc}
    for key in ("wa", "ua", "macro_f1", "weighted_f1"):
        row[f"{key}_mean"], row[f"{key}_std"] = agg[f"{key}_mean"], agg[f"{key}_std"]
    row["train_seconds"] = trained_seconds(encoder)
    row["n_runs"] = 1
    row["confusion"] = np.asarray(metrics["confusion"]).tolist()
    row.update(encoder_size(encoder))
    row["cpu_ms_per_face"] = ms_per_face(encoder, test.images)
    return row


def trained_seconds(encoder: Any) -> float | None:
    """Training time recorded in the encoder's ``config.json`` (None: not trained by emofuse)."""
    folder = getattr(encoder, "folder", None)
    if folder is None or not (Path(folder) / "config.json").is_file():
        return None
    return json.loads((Path(folder) / "config.json").read_text()).get("train_seconds")


def run_fer_benchmark(data_root: str | Path | None, out: str | Path | None = None,
                      encoders: tuple[str | dict[str, Any], ...] = DEFAULT_FER_ENCODERS, progress: bool = True
                      ) -> dict[str, Any]:
    """Score ``encoders`` (names, or ``{"name": ..., **settings}``) on FER2013 PrivateTest, print a table
    and write ``out`` (the results JSON)."""
    from emofuse.evaluation.reports import format_table, write_json_atomic
    from emofuse.evaluation.results import machine_description
    from emofuse.faces.encoders import get_face_encoder

    splits = load_fer2013(data_root)
    rows = []
    for spec in encoders:
        name = spec if isinstance(spec, str) else str(spec.get("name"))
        row = fer_row(name, get_face_encoder(spec), splits)
        rows.append(row)
        if progress:
            print(f"{name}: PrivateTest WA {row['wa_mean']:.4f}, PublicTest {row['public_test_acc']:.4f}, "
                  f"{row['cpu_ms_per_face']:.2f} ms/face", file=sys.stderr)
    results = {"dataset": "fer2013", "date": date.today().isoformat(), "machine": machine_description(),
               "command": " ".join(["emofuse", *sys.argv[1:]]) if sys.argv and sys.argv[0].endswith("emofuse") else None,
               "folds": ["PrivateTest"], "seeds": [0], "labels": list(FER_LABELS), "results": rows,
               "note": "official split; PublicTest is validation only; FER2013 has no subject ids, so the split "
                       "is not subject-independent"}
    print(format_table(results, title="FER2013 PrivateTest"))
    if out:
        write_json_atomic(out, results)
    return results
