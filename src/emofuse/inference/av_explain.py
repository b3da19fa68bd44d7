"""What ``emofuse predict VIDEO --explain DIR`` saves: the face crops the model used, the per-frame
expression probabilities, the modality-weight plot and the prediction as JSON."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import numpy as np

from emofuse.atomic import atomic_write_bytes, atomic_write_text


def crops_sheet(crops: np.ndarray, mask: np.ndarray, times: np.ndarray, columns: int = 8) -> np.ndarray:
    """One RGB image of the sampled frames' crops in time order; frames without a face are a dark grey tile
    with a red cross (nothing is invented for them)."""
    import cv2

    n = len(mask)
    size = int(crops.shape[1]) if n else 48
    tile = max(size, 96)
    rows = max(1, -(-n // columns))
    sheet = np.full((rows * (tile + 16), min(n, columns) * tile or tile, 3), 255, np.uint8)
    for i in range(n):
        r, c = divmod(i, columns)
        y, x = r * (tile + 16), c * tile
        if mask[i]:
            crop = crops[i] if crops.ndim == 4 else np.repeat(crops[i][..., None], 3, axis=2)
            sheet[y:y + tile, x:x + tile] = cv2.resize(crop, (tile, tile), interpolation=cv2.INTER_NEAREST)
        else:
            sheet[y:y + tile, x:x + tile] = 64
            cv2.line(sheet, (x + 8, y + 8), (x + tile - 8, y + tile - 8), (200, 0, 0), 2)
            cv2.line(sheet, (x + tile - 8, y + 8), (x + 8, y + tile - 8), (200, 0, 0), 2)
        cv2.putText(sheet, f"{times[i]:.2f}s", (x + 2, y + tile + 12), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (0, 0, 0), 1)
    return sheet


def frames_csv(rows: list[dict[str, Any]], classes: list[str]) -> str:
    """The per-frame table (`emofuse.inference.audio_visual.per_frame_table`) as CSV text."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["time_s", "face", "x0", "y0", "x1", "y1", *classes])
    for row in rows:
        box = row.get("box", [""] * 4)
        probs = row.get("probabilities", {})
        writer.writerow([row["time_s"], int(row["face"]), *box, *(probs.get(c, "") for c in classes)])
    return out.getvalue()


def weights_plot(prediction: Any, path: Path) -> Path:
    """Bar plots: the modality weights, and each modality's and the fused class probabilities."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    exp = prediction.explanations
    labels = list(prediction.probabilities)
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6), gridspec_kw={"width_ratios": [1, 3]})
    left.bar(exp["modalities"], exp["modality_weights"], color=["#4c72b0", "#dd8452"][:len(exp["modalities"])])
    left.set_ylim(0, 1)
    left.set_title(f"modality weights (face in {100 * (exp['face_share'] or 0):.0f}% of frames)", fontsize=9)
    x = np.arange(len(labels))
    parts = [p for p in (("audio", exp.get("audio_probabilities")), ("face", exp.get("face_on_audio_classes")),
                         ("fused", prediction.probabilities)) if p[1]]
    width = 0.8 / len(parts)
    for k, (name, probs) in enumerate(parts):
        right.bar(x + (k - (len(parts) - 1) / 2) * width, [probs[lab] for lab in labels], width=width, label=name)
    right.set_xticks(x, labels, rotation=30, fontsize=8)
    right.set_title(f"{Path(prediction.path).name} → {prediction.label}", fontsize=9)
    right.legend(fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return atomic_write_bytes(path, buffer.getvalue())


def save_face_explanation(prediction: Any, faces: Any | None, out_dir: str | Path) -> list[Path]:
    """Write ``face_crops.png``, ``face_frames.csv``, ``modality_weights.png`` and ``prediction.json``
    into ``out_dir``; returns the files written."""
    import cv2

    from emofuse.evaluation.reports import json_text

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = []
    if faces is not None and len(faces.mask):
        sheet = crops_sheet(faces.crops, faces.mask, faces.times)
        ok, png = cv2.imencode(".png", cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
        files.append(atomic_write_bytes(out / "face_crops.png", png.tobytes()))
        rows = prediction.explanations.get("face_per_frame", [])
        files.append(atomic_write_text(out / "face_frames.csv", frames_csv(rows, list(faces.classes))))
    if prediction.ok and "modality_weights" in prediction.explanations:
        files.append(weights_plot(prediction, out / "modality_weights.png"))
    files.append(atomic_write_text(out / "prediction.json", json_text(prediction.to_dict()) + "\n"))
    return files
