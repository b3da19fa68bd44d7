"""``emofuse train RECIPE``: train a recipe on a dataset fold and save a checkpoint."""

from __future__ import annotations

import argparse
from pathlib import Path

from emofuse.cli.common import (DATASET_HELP, FOLD_SEED_HELP, FOLDS_HELP, HelpFormatter, data_opts, dataset_root,
                                hardware, hardware_opts, parse_seeds)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("train", help="train a recipe on a dataset fold and save a checkpoint",
                              formatter_class=HelpFormatter)
    p.add_argument("recipe", help="built-in recipe name or YAML path")
    p.add_argument("--dataset", default="ravdess", help=DATASET_HELP + " (default: ravdess); a manifest's folds "
                   "are saved in --out")
    p.add_argument("--fold", type=int, default=1, help="fold number (1-based); 0 = no test speakers: train on every speaker, early-stop on "
                   "fold 1's validation speakers (which also train the weights when the recipe refits)")
    p.add_argument("--out", required=True, help="checkpoint folder to write")
    p.add_argument("--seeds", default="0", help="comma-separated seeds; several give a seed ensemble (one checkpoint "
                   "per seed under --out, plus ensemble.json; members already trained there are kept)")
    p.add_argument("--max-epochs", type=int)
    p.add_argument("--num-folds", type=int, metavar="K", help=FOLDS_HELP)
    p.add_argument("--fold-seed", type=int, metavar="S", help=FOLD_SEED_HELP)
    data_opts(p)
    hardware_opts(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from emofuse.recipes import load_recipe

    load_recipe(args.recipe)  # every recipe error first, before the data and the heavy imports
    settings = hardware(args)
    from emofuse.training import recipe

    recipe.train_recipe(args.recipe, args.dataset, dataset_root(args, args.dataset), out_dir=Path(args.out),
                           fold=args.fold, cache_dir=args.cache, max_epochs=args.max_epochs, progress=not args.quiet,
                           seeds=parse_seeds(args.seeds), num_folds=args.num_folds, fold_seed=args.fold_seed,
                           hardware=settings)
    return 0
