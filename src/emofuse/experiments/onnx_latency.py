"""CPU latency of ONNX Runtime against PyTorch for the exported models (issue #15).

``python -m emofuse.experiments.onnx_latency --out onnx_latency.json`` exports the shipped model (and the
``fer_cnn`` face encoder) to a temporary folder and times one forward pass of each, batch 1 and batch 16,
in PyTorch (``torch.no_grad``) and in ONNX Runtime, both on ``--threads`` threads (default 1): the median
of ``--runs`` timed runs after ``--warmup`` untimed ones, and the ratio PyTorch / ONNX Runtime (above 1:
ONNX Runtime is faster). The shipped model's input is a 3.5 s clip's Whisper states (175 frames x 384),
random but standardised like real ones; the face encoder's are 48x48 grey crops.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: Whisper frames of a 3.5 s clip (50 frames/s)
CLIP_FRAMES = 175


def median_ms(fn: Callable[[], Any], runs: int, warmup: int) -> float:
    """Median wall time of ``fn()`` in milliseconds over ``runs`` runs after ``warmup`` ones."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        fn()
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times)


def _fusion_rows(out: Path, batches: list[int], runs: int, warmup: int, threads: int) -> list[dict[str, Any]]:
    import torch

    from emofuse.inference.onnx_export import example_inputs, export_checkpoint, run_onnx, session
    from emofuse.inference.predictor import demo_checkpoint_dir
    from emofuse.inference.checkpoint import load_members

    result = export_checkpoint(demo_checkpoint_dir(), out / "demo")
    model = load_members([demo_checkpoint_dir()])[0].model.eval()
    sess = session(result.model, threads)
    rows = []
    for batch in batches:
        inputs, masks = example_inputs(model, {m: CLIP_FRAMES for m in model.input_dims}, batch=batch)
        masks = {m: torch.ones_like(v) for m, v in masks.items()}

        def torch_run() -> None:
            with torch.no_grad():
                model(inputs, masks)

        rows.append(_row("shipped model (attention_pooling, 175 x 384)", batch, median_ms(torch_run, runs, warmup),
                         median_ms(lambda: run_onnx(sess, inputs, masks), runs, warmup), result.exporter))
    return rows


def _face_rows(out: Path, batches: list[int], runs: int, warmup: int, threads: int) -> list[dict[str, Any]]:
    import torch

    from emofuse.faces.encoders import get_face_encoder
    from emofuse.inference.onnx_export import export_face_encoder, session

    result = export_face_encoder(out / "face")
    encoder = get_face_encoder("fer_cnn")
    sess = session(result.model, threads)
    rows = []
    for batch in batches:
        crops = torch.rand(batch, 48, 48) * 255
        feed = {"crops": crops.numpy()}

        def torch_run() -> None:
            with torch.no_grad():
                encoder.forward(crops)

        rows.append(_row("fer_cnn face encoder (48 x 48)", batch, median_ms(torch_run, runs, warmup),
                         median_ms(lambda: sess.run(None, feed), runs, warmup), result.exporter))
    return rows


def _row(model: str, batch: int, torch_ms: float, onnx_ms: float, exporter: str) -> dict[str, Any]:
    return {"model": model, "batch": batch, "pytorch_ms": round(torch_ms, 3), "onnxruntime_ms": round(onnx_ms, 3),
            "ratio": round(torch_ms / onnx_ms, 2), "exporter": exporter}


def run(batches: list[int], runs: int, warmup: int, threads: int) -> dict[str, Any]:
    import onnxruntime
    import torch

    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory(prefix="emofuse-onnx-") as tmp:
        rows = _fusion_rows(Path(tmp), batches, runs, warmup, threads)
        rows += _face_rows(Path(tmp), batches, runs, warmup, threads)
    return {"date": time.strftime("%Y-%m-%d"), "threads": threads, "runs": runs, "warmup": warmup,
            "torch": torch.__version__, "onnxruntime": onnxruntime.__version__, "rows": rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m emofuse.experiments.onnx_latency", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", default="1,16")
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", help="write the results as JSON here")
    args = parser.parse_args(argv)
    result = run([int(b) for b in args.batches.split(",")], args.runs, args.warmup, args.threads)
    for r in result["rows"]:
        print(f"{r['model']:<48} batch {r['batch']:>3}: PyTorch {r['pytorch_ms']:8.2f} ms, ONNX Runtime "
              f"{r['onnxruntime_ms']:8.2f} ms, ratio {r['ratio']:.2f}")
    if args.out:
        from emofuse.atomic import atomic_write_text

        atomic_write_text(args.out, json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
