"""``emofuse extract DATASET``: extract and cache features (resumable, shardable)."""

from __future__ import annotations

import argparse

from emofuse.cli.common import DATASET_HELP, HelpFormatter, data_opts, dataset_root


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("extract", help="extract and cache features (resumes after interruption)",
                              formatter_class=HelpFormatter)
    p.add_argument("dataset", help=DATASET_HELP)
    p.add_argument("--features", default="whisper,egemaps", help="comma-separated extractor names")
    p.add_argument("--speeds", default="", help="also cache the audio features of speed-perturbed copies at these "
                   "comma-separated factors, e.g. 0.9,1.1 (what recipes with data.speed_perturb read)")
    p.add_argument("--shard", metavar="K/N", help="compute only the K-th of every N inputs (1-based), so N processes "
                   "or machines sharing one cache extract the dataset together; rerun without it to check")
    data_opts(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print, per feature and speed, how many clips are cached."""
    from emofuse.data.specs import load_dataset
    from emofuse.features.augment import check_factor
    from emofuse.features.driver import parse_shard
    from emofuse.features.store import FeatureStore

    speeds = [1.0, *(check_factor(f) for f in args.speeds.split(",") if f.strip())]
    shard = parse_shard(args.shard)
    samples = load_dataset(args.dataset, dataset_root(args, args.dataset), make_folds=False).samples
    store = FeatureStore(samples, args.cache, progress=not args.quiet)
    for speed in dict.fromkeys(speeds):
        view = store.view(speed)
        for name in args.features.split(","):
            arrays = view.get(name.strip(), shard=shard)
            n = sum(a is not None for a in arrays)
            part = "" if shard is None else f" (after shard {shard[0]}/{shard[1]})"
            print(f"{name}{'' if speed == 1.0 else f' (speed {speed:g})'}: {n}/{len(arrays)} clips cached{part}")
    return 0
