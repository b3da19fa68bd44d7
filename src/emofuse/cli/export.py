"""``emofuse export CHECKPOINT --onnx DIR [--face-encoder fer_cnn]``: the checkpoint's fusion model as ONNX
(``DIR/model.onnx`` + ``DIR/model.json``), checked against PyTorch (docs/onnx.md)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("export", help="export a checkpoint's model to ONNX (with a sidecar to feed it)",
                              epilog="The audio features (Whisper through CTranslate2, eGeMAPS, log-mel) are not in "
                                     "the ONNX file: compute them as emofuse does; model.json lists the features, the "
                                     "standardisation and the calibration. Exit 2 when the model does not export.")
    p.add_argument("checkpoint", nargs="?", help="checkpoint folder (default: the shipped demo model)")
    p.add_argument("--onnx", metavar="DIR", required=True, help="folder for model.onnx and model.json (created)")
    p.add_argument("--face-encoder", metavar="NAME", help="also export this face encoder (fer_cnn) as NAME.onnx")
    p.add_argument("--exporter", choices=["dynamo", "torchscript"], default="dynamo",
                   help="torch.onnx exporter (default: dynamo, i.e. torch.export; torchscript: the older tracer, "
                        "whose shapes the parity check verifies)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print what was written, the exporter and the parity measured against PyTorch."""
    from emofuse.errors import DataError

    out = Path(args.onnx)
    if out.exists() and not out.is_dir():
        raise DataError(out, "--onnx must be a folder")
    from emofuse.inference.onnx_export import export_checkpoint, export_face_encoder
    from emofuse.inference.predictor import demo_checkpoint_dir

    dynamo = args.exporter == "dynamo"
    checkpoint = Path(args.checkpoint) if args.checkpoint else demo_checkpoint_dir()
    if not checkpoint.is_dir():
        raise DataError(checkpoint, "checkpoint folder not found")
    results = [export_checkpoint(checkpoint, out, dynamo=dynamo)]
    if args.face_encoder:
        results.append(export_face_encoder(out, args.face_encoder, dynamo=dynamo))
    for r in results:
        print(f"wrote {r.model} and {r.sidecar.name} ({r.exporter} exporter; ONNX Runtime vs PyTorch max |diff| "
              f"{r.max_abs_diff:.1e})")
    return 0
