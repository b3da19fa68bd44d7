"""``emofuse evaluate CHECKPOINT``: evaluate a checkpoint on a fold's test speakers."""

from __future__ import annotations

import argparse
from pathlib import Path

from emofuse.cli.common import DATASET_HELP, HelpFormatter, data_opts, dataset_root


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("evaluate", help="evaluate a checkpoint on a fold's test speakers",
                              formatter_class=HelpFormatter)
    p.add_argument("checkpoint")
    p.add_argument("--dataset", default="ravdess", help=DATASET_HELP + " (default: ravdess); a manifest's folds "
                   "are the ones saved with the checkpoint")
    p.add_argument("--fold", type=int, default=1)
    p.add_argument("--report-dir", help="write metrics JSON/Markdown and a confusion matrix PNG here")
    data_opts(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the fold's metrics as JSON (per-class tables left out)."""
    from emofuse.evaluation import evaluate

    metrics = evaluate.evaluate_checkpoint(Path(args.checkpoint), args.dataset, dataset_root(args, args.dataset),
                                            fold=args.fold,
                                            cache_dir=args.cache, report_dir=args.report_dir)
    shown = {k: v for k, v in metrics.items() if not isinstance(v, (dict, list)) or k == "test_time_augment"}
    from emofuse.evaluation.reports import json_text

    print(json_text(shown))
    return 0
