"""``emofuse benchmark DATASET|features``: k-fold benchmark of baselines and models, or extractor speed."""

from __future__ import annotations

import argparse

from emofuse.cli.common import (DATASET_HELP, FOLD_SEED_HELP, FOLDS_HELP, HelpFormatter, data_dir, data_opts,
                                dataset_root, hardware, hardware_opts, parse_seeds)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("benchmark", help="k-fold benchmark of baselines and models (one table)",
                              formatter_class=HelpFormatter)
    p.add_argument("target", help=DATASET_HELP + "; 'fer2013' for the face-expression encoders on FER2013 PrivateTest; "
                   "'goemotions' for the multi-label GoEmotions benchmark (28 classes and Ekman 7); "
                   "or 'features' for extractor speed. A manifest's folds are "
                   "written beside --out (else in --report-dir) and reused")
    p.add_argument("--models", default="default", help="'default', 'all', or comma-separated recipe/model names")
    p.add_argument("--out", help="write results JSON here (updated after every model; rerunning the same "
                   "command resumes, reusing finished rows)")
    p.add_argument("--fresh", action="store_true", help="recompute every row even if --out has it")
    p.add_argument("--report-dir", help="write results.md and confusion-matrix PNGs here")
    p.add_argument("--seeds", help="comma-separated seeds (default 0; the meld text line-up: 0,1,2)")
    p.add_argument("--folds", help="comma-separated fold numbers (default: all)")
    p.add_argument("--num-folds", type=int, metavar="K", help=FOLDS_HELP)
    p.add_argument("--fold-seed", type=int, metavar="S", help=FOLD_SEED_HELP)
    p.add_argument("--max-epochs", type=int, help="override every recipe's max_epochs (quick runs)")
    p.add_argument("--robustness", action="store_true",
                   help="also test each neural model with single modalities and random modality drop rates 0.1-0.5")
    p.add_argument("--protocol", default="standard", choices=("standard", "shift"),
                   help="'shift': each recipe on the plain folds (also scored on corrupted test clips and "
                   "calibrated on validation speakers), cross-sentence and cross-gender; see docs/shift.md")
    p.add_argument("--save-models", metavar="DIR", help="meld text line-up: save each fine-tuned row's first-seed "
                   "checkpoint under DIR/<row> (for 'emofuse predict --model')")
    p.add_argument("--features", default="logmel,mfcc,frft_mfcc,egemaps,egemaps_lld,whisper", help="for 'features'")
    p.add_argument("--clips", type=int, default=40, help="for 'features': number of clips")
    data_opts(p)
    hardware_opts(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.target == "fer2013":
        from emofuse.experiments.fer_benchmark import DEFAULT_FER_ENCODERS, run_fer_benchmark

        encoders = DEFAULT_FER_ENCODERS if args.models in ("default", "all") else \
            tuple(filter(None, map(str.strip, args.models.split(","))))
        run_fer_benchmark(args.data, args.out, encoders, progress=not args.quiet)
        return 0
    if args.target in ("goemotions", "goemotions_ekman"):  # multi-label: its own benchmark
        import sys

        from emofuse.experiments.goemotions import run_goemotions

        run_goemotions(args.data, args.out, cache_dir=args.cache, progress=not args.quiet,
                       command=" ".join(["emofuse", *sys.argv[1:]]))
        return 0
    if args.target == "meld" and args.protocol == "standard":
        from emofuse.experiments.text_benchmark import run_text_benchmark, text_rows

        rows = text_rows(args.models)
        if rows is not None:
            seeds = parse_seeds(args.seeds) if args.seeds else (0, 1, 2)
            run_text_benchmark(dataset_root(args, "meld"), rows=rows, out=args.out, seeds=tuple(seeds),
                               cache_dir=args.cache, max_epochs=args.max_epochs, progress=not args.quiet,
                               resume=not args.fresh, save_dir=args.save_models)
            return 0
    if args.target != "features" and args.models not in ("default", "all"):
        from emofuse.recipes import load_recipe

        for name in filter(None, map(str.strip, args.models.split(","))):
            load_recipe(name)  # recipe errors first, before the data and the heavy imports
    settings = hardware(args)
    from emofuse.experiments import benchmark

    if args.target == "features":
        rows = benchmark.feature_speed(data_dir(args), args.features.split(","), n_clips=args.clips)
        from emofuse.evaluation.reports import json_text

        for r in rows:
            print(json_text(r, indent=None))
        return 0
    benchmark.run_benchmark(args.target, dataset_root(args, args.target), models=args.models, out=args.out,
                            report_dir=args.report_dir, cache_dir=args.cache, seeds=parse_seeds(args.seeds or "0"),
                            folds=args.folds, max_epochs=args.max_epochs, progress=not args.quiet,
                            robustness=args.robustness, resume=not args.fresh, num_folds=args.num_folds,
                            fold_seed=args.fold_seed, protocol=args.protocol, hardware=settings)
    return 0
