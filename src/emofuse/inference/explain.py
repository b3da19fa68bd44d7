"""Plots of a model's explanations: probabilities, modality weights, cross-modal and temporal attention.

    from emofuse.inference.explain import explain_file
    result = explain_file("runs/ckpt", "clip.wav", "explain_out")
    result["files"]        # PNG paths
    result["attention"]    # {"attention/audio": [...], ...} raw (head-averaged) arrays

Every model's :class:`~emofuse.models.base.ModelOutput` explanations are drawn by name:

* ``"modality_weights"`` ``[B, M]`` -> bar chart (ordered as ``model.modalities``);
* ``"attention/<a>-><b>"`` ``[B, heads, Tq, Tk]`` or ``[B, Tq, Tk]`` -> heatmap, averaged over heads;
* ``"attention/<m>"`` ``[B, T]`` -> temporal weight curve, over the clip's waveform when known;
* any other ``[B, M, M]`` map (e.g. ``"compatibility"``) -> modality-by-modality heatmap.

Axes are in seconds when the modality's frame rate is known (the extractor's declared
``frame_rate``: Whisper states 50/s, log-mel and MFCC sample rate / hop), else in frame index. A map shorter than its input (frames averaged by a stride, or
interpolated to a common length) is spread evenly over the clip's duration. Images are rendered
with matplotlib's Agg canvas (no pyplot state) and written atomically.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from emofuse.errors import ConfigError, DataError

SAMPLE_RATE = 16000


# ------------------------------------------------------------------------------------------------
# writing


def save_figure(fig: Figure, path: Path, dpi: int = 110) -> Path:
    """Render ``fig`` to PNG at ``path`` through a temporary file in the same folder and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fig.savefig(fh, format="png", dpi=dpi, bbox_inches="tight")
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _file_name(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", key.replace("->", "-to-")).strip("_") + ".png"


# ------------------------------------------------------------------------------------------------
# individual plots


def plot_bars(values: dict[str, float], path: Path, title: str, xlabel: str) -> Path:
    """Horizontal bar chart (probabilities, modality weights); the largest bar is highlighted."""
    names, vals = list(values), np.asarray(list(values.values()), dtype=float)
    fig = Figure(figsize=(5.5, 0.35 * len(names) + 1.2))
    ax = fig.add_subplot()
    colors = ["tab:orange" if i == int(vals.argmax()) else "tab:blue" for i in range(len(vals))]
    ax.barh(range(len(names)), vals, color=colors)
    ax.set_yticks(range(len(names)), names)
    ax.invert_yaxis()
    ax.set_xlim(0, max(1.0, float(vals.max()) * 1.05))
    for i, v in enumerate(vals):
        ax.text(v, i, f" {v:.2f}", va="center", fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=10)
    return save_figure(fig, path)


def _axis(duration: float | None, length: int, resampled: bool = False) -> tuple[tuple[float, float], str]:
    if duration is None:
        return (-0.5, length - 0.5), "step (resampled)" if resampled else "frame"
    return (0.0, duration), "time (s)"


def plot_cross_attention(weights: np.ndarray, path: Path, title: str, query: str, key: str,
                         query_duration: float | None, key_duration: float | None,
                         resampled: tuple[bool, bool] = (False, False)) -> Path:
    """Heatmap of a head-averaged attention map ``[Tq, Tk]`` (rows: query frames). ``resampled`` marks
    axes whose positions are not the input's frames (strided or interpolated to a common length)."""
    tq, tk = weights.shape
    (x0, x1), xunit = _axis(key_duration, tk, resampled[1])
    (y0, y1), yunit = _axis(query_duration, tq, resampled[0])
    fig = Figure(figsize=(6, 4.5))
    ax = fig.add_subplot()
    image = ax.imshow(weights, aspect="auto", origin="upper", cmap="viridis", interpolation="nearest",
                      extent=(x0, x1, y1, y0))
    fig.colorbar(image, ax=ax, label="attention weight")
    ax.set_xlabel(f"{key} {xunit} (attended)")
    ax.set_ylabel(f"{query} {yunit} (query)")
    ax.set_title(title, fontsize=10)
    return save_figure(fig, path)


def plot_temporal_attention(weights: np.ndarray, path: Path, title: str, modality: str, duration: float | None,
                            waveform: np.ndarray | None = None, sample_rate: int = SAMPLE_RATE) -> Path:
    """Frame weights ``[T]`` as a step curve, over the waveform when given (time axis in seconds)."""
    fig = Figure(figsize=(7, 3))
    ax = fig.add_subplot()
    n = len(weights)
    if duration is None and waveform is not None:
        duration = len(waveform) / sample_rate
    if duration is None:
        ax.step(np.arange(n), weights, where="mid", color="tab:red")
        ax.set_xlabel(f"{modality} frame")
    else:
        edges = np.linspace(0.0, duration, n + 1)
        if waveform is not None:
            wave_ax = ax.twinx()
            t = np.arange(len(waveform)) / sample_rate
            step = max(1, len(waveform) // 20000)  # plotting every sample of a long clip is pointless
            wave_ax.plot(t[::step], waveform[::step], color="0.75", linewidth=0.5)
            wave_ax.set_ylabel("waveform", color="0.5")
            wave_ax.set_yticks([])
            ax.set_zorder(wave_ax.get_zorder() + 1)
            ax.patch.set_visible(False)
        ax.stairs(weights, edges, color="tab:red", linewidth=1.5, label="attention weight")
        ax.set_xlim(0.0, duration)
        ax.set_xlabel("time (s)")
    ax.set_ylim(0.0, float(weights.max()) * 1.1 if n and weights.max() > 0 else 1.0)
    ax.set_ylabel("attention weight")
    ax.set_title(title, fontsize=10)
    return save_figure(fig, path)


def plot_modality_matrix(matrix: np.ndarray, path: Path, title: str, modalities: list[str]) -> Path:
    """Heatmap of a modality-by-modality map (e.g. OF-CMAER-CAT's compatibility ``alpha_ij``)."""
    fig = Figure(figsize=(4.5, 3.8))
    ax = fig.add_subplot()
    image = ax.imshow(matrix, cmap="viridis", vmin=0.0)
    ax.set_xticks(range(len(modalities)), modalities)
    ax.set_yticks(range(len(modalities)), modalities)
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", color="w", fontsize=8)
    fig.colorbar(image, ax=ax)
    ax.set_title(title, fontsize=10)
    return save_figure(fig, path)


# ------------------------------------------------------------------------------------------------
# explanations of one sample


def _valid_positions(map_len: int, input_len: int, valid_len: int) -> int:
    """How many positions of a map over a modality are real frames (maps may be strided/resampled)."""
    if map_len == input_len:
        return max(1, valid_len)
    return max(1, min(map_len, math.ceil(valid_len * map_len / max(1, input_len))))


def explain_batch_outputs(model: torch.nn.Module, inputs: dict[str, torch.Tensor], masks: dict[str, torch.Tensor],
                          out_dir: str | Path, labels: list[str] | None = None, title: str = "", *,
                          sample: int = 0, frame_rates: dict[str, float] | None = None,
                          waveform: np.ndarray | None = None, sample_rate: int = SAMPLE_RATE) -> dict[str, Any]:
    """Run ``model`` (eval mode, no gradients) and plot the explanations of one ``sample`` of the batch.

    Works with any registered model. ``frame_rates`` (frames/s per modality) turns frame axes into
    seconds; ``waveform`` is drawn under temporal attention curves. Returns ``files`` (PNG paths),
    ``probabilities``, ``label``, ``modality_weights`` (or None), ``attention`` (head-averaged maps
    cropped to valid frames, as lists) and ``other`` (remaining explanation arrays).
    """
    out_dir = Path(out_dir)
    frame_rates = dict(frame_rates or {})
    labels = list(labels) if labels is not None else [f"class {i}" for i in range(model.num_classes)]
    if len(labels) != model.num_classes:
        raise ValueError(f"{len(labels)} labels for a model with {model.num_classes} classes")
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(inputs, masks)
    finally:
        model.train(was_training)
    prefix = f"{title}: " if title else ""
    probs = torch.softmax(out.logits[sample].float(), dim=-1).numpy()
    valid = {m: int(masks[m][sample].sum()) for m in masks}
    total = {m: int(masks[m].shape[1]) for m in masks}
    durations = {m: valid[m] / frame_rates[m] if m in frame_rates and valid[m] > 1 else None for m in masks}
    files: list[str] = []
    result: dict[str, Any] = {"probabilities": {lab: float(p) for lab, p in zip(labels, probs)},
                              "label": labels[int(probs.argmax())], "modality_weights": None,
                              "attention": {}, "other": {}, "files": files}

    files.append(str(plot_bars(result["probabilities"], out_dir / "probabilities.png",
                               f"{prefix}predicted {result['label']}", "probability")))
    modalities = list(getattr(model, "modalities", list(inputs)))
    for key, tensor in out.explanations.items():
        arr = tensor[sample].detach().float().cpu().numpy()
        if key == "modality_weights":
            weights = dict(zip(modalities, arr.tolist()))
            result["modality_weights"] = weights
            files.append(str(plot_bars(weights, out_dir / _file_name(key), f"{prefix}modality weights", "weight")))
        elif key.startswith("attention/") and "->" in key:
            query, attended = key.split("/", 1)[1].split("->", 1)
            if arr.ndim == 3:  # [heads, Tq, Tk]
                arr = arr.mean(axis=0)
            if arr.ndim != 2:
                raise ValueError(f"explanation {key!r} has shape {tuple(tensor.shape)}, expected [B, (heads,) Tq, Tk]")
            resampled = (arr.shape[0] != total.get(query, arr.shape[0]), arr.shape[1] != total.get(attended, arr.shape[1]))
            tq = _valid_positions(arr.shape[0], total.get(query, arr.shape[0]), valid.get(query, arr.shape[0]))
            tk = _valid_positions(arr.shape[1], total.get(attended, arr.shape[1]), valid.get(attended, arr.shape[1]))
            arr = arr[:tq, :tk]
            result["attention"][key] = arr.tolist()
            files.append(str(plot_cross_attention(arr, out_dir / _file_name(key), f"{prefix}{query} attends to {attended}",
                                                  query, attended, durations.get(query), durations.get(attended),
                                                  resampled)))
        elif key.startswith("attention/") and arr.ndim == 1:
            modality = key.split("/", 1)[1]
            t = _valid_positions(arr.shape[0], total.get(modality, arr.shape[0]), valid.get(modality, arr.shape[0]))
            arr = arr[:t]
            result["attention"][key] = arr.tolist()
            files.append(str(plot_temporal_attention(arr, out_dir / _file_name(key), f"{prefix}{modality} frame attention",
                                                     modality, durations.get(modality), waveform, sample_rate)))
        elif arr.ndim == 2 and arr.shape == (len(modalities), len(modalities)):
            result["other"][key] = arr.tolist()
            files.append(str(plot_modality_matrix(arr, out_dir / _file_name(key), f"{prefix}{key}", modalities)))
        else:
            result["other"][key] = arr.tolist()
    return result


# ------------------------------------------------------------------------------------------------
# a checkpoint on a file


def feature_frame_rate(spec: dict[str, Any]) -> float | None:
    """Frames per second of a checkpoint's frame-level features: the extractor's declared
    ``frame_rate`` with the saved options, or None (pooled, several, a vector, no time axis, unknown)."""
    names = spec.get("names", [])
    if len(names) != 1 or spec.get("pooled"):
        return None
    from emofuse.features import get_extractor

    try:
        extractor = get_extractor(names[0], **spec.get("configs", {}).get(names[0], {}))
    except ConfigError:
        return None
    rate = extractor.frame_rate if extractor.produces == "sequence" else None
    return None if rate is None else float(rate)


def file_inputs(predictor, path: Path, face: np.ndarray | None = None
                ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """The model inputs and masks that :meth:`Predictor.predict_file` builds for one file (batch of 1)."""
    return predictor.prepare_inputs(path, face)


def explain_file(checkpoint_dir: str | Path, path: str | Path, out_dir: str | Path, *,
                 face: np.ndarray | None = None) -> dict[str, Any]:
    """Predict one audio/video file with a checkpoint and plot the explanations into ``out_dir``.

    ``face``: optional per-clip action-unit vector for models with a face modality (absent otherwise).
    Returns the :func:`explain_batch_outputs` dict plus ``path``, ``checkpoint`` and ``summary``
    (the path of a JSON copy of the result written next to the plots).
    """
    from emofuse.media.audio import load_audio
    from emofuse.atomic import atomic_write_text
    from emofuse.inference.predictor import Predictor

    path = Path(path)
    if not path.exists():
        raise DataError(path, "file not found")
    predictor = Predictor(checkpoint_dir)
    if len(predictor.members) > 1:
        raise ConfigError(f"{checkpoint_dir}: a seed ensemble of {len(predictor.members)} models; explain one "
                          f"member folder (attention maps are per model)")
    waveform = load_audio(path, SAMPLE_RATE)
    inputs, masks = file_inputs(predictor, path, face)
    rates = {m: r for m, spec in predictor.ckpt.features.items() if (r := feature_frame_rate(spec)) is not None}
    result = explain_batch_outputs(predictor.ckpt.model, inputs, masks, out_dir, predictor.labels, path.name,
                                   frame_rates=rates, waveform=waveform, sample_rate=SAMPLE_RATE)
    result.update(path=str(path), checkpoint=str(checkpoint_dir), modalities_used=[m for m in masks if bool(masks[m].any())])
    summary = Path(out_dir) / "explanation.json"
    from emofuse.evaluation.reports import json_text

    atomic_write_text(summary, json_text(result, indent=1))  # strict JSON: NaN/inf become null
    result["summary"] = str(summary)
    return result
