"""``emofuse extract DATASET``: extract and cache features (resumable, shardable), or ``--verify`` the cache."""

from __future__ import annotations

import argparse

from emofuse.cli.common import DATASET_HELP, HelpFormatter, data_opts, dataset_root


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("extract", help="extract and cache features (resumes after interruption)",
                              formatter_class=HelpFormatter,
                              epilog="Under torchrun or srun each process takes its rank's shard (K = rank + 1, N = "
                                     "the number of processes) unless --shard is given; see docs/scale.md.")
    p.add_argument("dataset", help=DATASET_HELP)
    p.add_argument("--features", default="whisper,egemaps", help="comma-separated extractor names")
    p.add_argument("--speeds", default="", help="also cache the audio features of speed-perturbed copies at these "
                   "comma-separated factors, e.g. 0.9,1.1 (what recipes with data.speed_perturb read)")
    p.add_argument("--shard", metavar="K/N", help="compute only the K-th of every N inputs (1-based), so N processes "
                   "or machines sharing one cache extract the dataset together; rerun without it to check")
    p.add_argument("--verify", action="store_true", help="compute nothing: list the samples whose cache entry is "
                   "missing or corrupt (unreadable .npz, wrong shape, NaN); exit status 2 if there are any")
    data_opts(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print, per feature and speed, how many clips are cached (``--verify``: what is missing or corrupt)."""
    from emofuse.data.specs import load_dataset
    from emofuse.features.augment import check_factor
    from emofuse.features.driver import parse_shard
    from emofuse.features.store import FeatureStore
    from emofuse.training.distributed import launch_shard

    speeds = [1.0, *(check_factor(f) for f in args.speeds.split(",") if f.strip())]
    names = [n.strip() for n in args.features.split(",") if n.strip()]
    samples = load_dataset(args.dataset, dataset_root(args, args.dataset), make_folds=False).samples
    store = FeatureStore(samples, args.cache, progress=not args.quiet)
    if args.verify:
        return verify(store, names, speeds)
    shard = parse_shard(args.shard) if args.shard else launch_shard()
    rank = "" if shard is None or args.shard else f"[rank {shard[0] - 1}] "
    for speed in dict.fromkeys(speeds):
        view = store.view(speed)
        for name in names:
            arrays = view.get(name, shard=shard)
            n = sum(a is not None for a in arrays)
            part = "" if shard is None else f" (after shard {shard[0]}/{shard[1]})"
            print(f"{rank}{name}{'' if speed == 1.0 else f' (speed {speed:g})'}: {n}/{len(arrays)} clips cached{part}")
    return 0


def verify(store, names: list[str], speeds: list[float]) -> int:
    """``--verify``: one summary line per feature and speed, then a line per missing or corrupt entry."""
    from emofuse.features.verify import verify_cache, view_extractor

    bad = 0
    for speed in dict.fromkeys(speeds):
        view = store.view(speed)
        for name in names:
            report = verify_cache(view_extractor(view, name), store.samples, store.cache_dir)
            label = f"{name}{'' if speed == 1.0 else f' (speed {speed:g})'}"
            print(f"{label}: {report.ok}/{report.inputs} entries good, {report.missing} missing, {report.corrupt} "
                  f"corrupt ({report.folder})")
            for p in report.problems:
                print(f"  {p.problem}: {p.sample} ({p.source}){' -> ' + p.entry if p.entry else ''}")
            bad += len(report.problems)
    return 2 if bad else 0
