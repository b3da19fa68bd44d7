"""``emofuse explain CHECKPOINT FILE --out DIR``: plot a checkpoint's explanations for a file."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("explain", help="plot a checkpoint's explanations (attention, modality weights) "
                                              "for a file")
    p.add_argument("checkpoint", help="checkpoint folder (e.g. src/emofuse/assets/demo_model)")
    p.add_argument("file", help="audio or video file")
    p.add_argument("--out", required=True, help="folder for the PNG plots and explanation.json")
    p.add_argument("--face", default=None, help="optional .npy with the clip's action-unit vector")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the label and the plots written."""
    import numpy as np

    from emofuse.errors import DataError
    from emofuse.inference.explain import explain_file

    face = None
    if args.face:
        try:
            face = np.load(args.face, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise DataError(args.face, f"cannot read action units (.npy): {exc}") from None
    result = explain_file(args.checkpoint, args.file, args.out, face=face)
    print(f"{Path(args.file).name}: {result['label']} "
          f"({result['probabilities'][result['label']]:.2f}); wrote {len(result['files'])} plots to {args.out}")
    for f in result["files"]:
        print(f"  {f}")
    return 0
