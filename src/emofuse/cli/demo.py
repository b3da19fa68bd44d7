"""``emofuse demo``: predict the shipped sample clips with the shipped demo model."""

from __future__ import annotations

import argparse
from pathlib import Path

from emofuse.cli.common import check_output, checkpoint_files, print_predictions


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("demo", help="predict the shipped sample clips with the shipped demo model")
    p.add_argument("--json", help="also write predictions as JSON to this file ('-' for stdout)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print each clip's probabilities and its true emotion; exit 2 when a clip got no label."""
    from importlib import resources

    samples = Path(str(resources.files("emofuse") / "assets" / "samples"))
    check_output(args.json, [*checkpoint_files(None), *samples.iterdir()])  # the shipped model and clips
    from emofuse.inference.predictor import Predictor, sample_clips

    predictor = Predictor()
    clips = sample_clips()
    print(f"emofuse demo: {predictor.ckpt.meta.get('description', 'demo model')}")
    trained_on = set(predictor.ckpt.meta.get("train_speakers", []))
    seen = sorted({clip_speaker(c) for c in clips} & trained_on)
    if seen:
        print(f"note: the model was trained on actors {', '.join(seen)} of these clips (it learned from "
              f"{len(trained_on)} RAVDESS actors), so this shows it working, not its accuracy; held-out figures: "
              "emofuse predict --model-card")
    preds = predictor.predict_files(clips)
    failed = print_predictions(preds, args.json)
    from emofuse.data.ravdess import parse_ravdess_name

    for clip, p in zip(clips, preds):
        truth = parse_ravdess_name(clip.name).meta()["emotion"]
        guess = f"predicted {p.label} ({p.probabilities[p.label]:.2f})" if p.ok else f"no prediction ({p.status})"
        guess = f"uncertain, best guess {p.label} ({p.probabilities[p.label]:.2f})" if p.uncertain else guess
        print(f"{clip.name}: true emotion {truth}, {guess}")
    return 2 if failed else 0


def clip_speaker(clip: Path) -> str:
    """The two-digit RAVDESS actor of a sample clip's file name."""
    from emofuse.data.ravdess import parse_ravdess_name

    return f"{int(parse_ravdess_name(clip.name).actor):02d}"
