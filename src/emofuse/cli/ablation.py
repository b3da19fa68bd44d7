"""``emofuse ablation tfn-subsets|ladder DATASET``: the TFN modality-subset x label-source grid, or
the OF-CMAER-CAT component ladder (the studies themselves are in `emofuse.experiments.ablation`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from emofuse.cli.common import DATASET_HELP, FOLD_SEED_HELP, FOLDS_HELP, HelpFormatter, parse_seeds


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("ablation", help="TFN modality-subset x label-source grid, or the OF-CMAER-CAT ladder",
                              formatter_class=HelpFormatter)
    p.add_argument("target", choices=("tfn-subsets", "ladder"), help="which ablation")
    p.add_argument("dataset", help=DATASET_HELP + ". A manifest's folds are written beside --out and reused")
    p.add_argument("--data", help="data root (default: $EMOFUSE_DATA or ../shared/data)")
    p.add_argument("--cache", help="feature cache folder (default: $EMOFUSE_CACHE or ~/.cache/emofuse)")
    p.add_argument("--features", help="modality=feature[+feature],... (tfn default audio=whisper,face=au; "
                                      "ladder default: its config, else audio=whisper,face=au)")
    p.add_argument("--label-sources", help="tfn-subsets: comma-separated training label columns "
                                           "(default: label + every label_* column present)")
    p.add_argument("--labels", help="comma-separated label map (default: the dataset's; manifest: labels found)")
    p.add_argument("--ladder", default="of_cmaer_cat_ladder", help="ladder: config name or YAML path")
    p.add_argument("--folds", help="comma-separated fold numbers (default: all)")
    p.add_argument("--num-folds", type=int, metavar="K", help=FOLDS_HELP)
    p.add_argument("--fold-seed", type=int, metavar="S", help=FOLD_SEED_HELP)
    p.add_argument("--seeds", default="0", help="comma-separated seeds")
    p.add_argument("--max-epochs", type=int, help="override max_epochs (quick runs)")
    p.add_argument("--out", help="write benchmark-format results JSON here (ladder: updated after every rung; "
                   "rerunning the same command resumes)")
    p.add_argument("--fresh", action="store_true", help="ladder: retrain every rung even if --out has it")
    p.add_argument("--markdown", help="write the table (and every row) as Markdown here")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the chosen ablation, print its table and write --out / --markdown."""
    from emofuse.experiments import ablation, ladder
    from emofuse.features.store import FeatureStore
    from emofuse.paths import data_root

    features = ablation.parse_features(args.features)
    if args.target == "ladder":
        ladder.load_ladder(args.ladder)  # config errors first, before the data is read
    samples, labels, folds, name = ablation.load_ablation_data(
        args.dataset, data_root(args.data), labels=args.labels, num_folds=args.num_folds, folds=args.folds,
        fold_seed=args.fold_seed, folds_dir=Path(args.out).parent if args.out else None, progress=not args.quiet)
    store = FeatureStore(samples, args.cache, progress=not args.quiet)
    store.labels = labels
    seeds = parse_seeds(args.seeds)
    title = f"{name}: {len(folds)} speaker-disjoint fold(s)"
    common = dict(labels=labels, features=features, dataset=name, seeds=seeds, max_epochs=args.max_epochs,
                  progress=not args.quiet)
    if args.target == "tfn-subsets":
        sources = [s.strip() for s in args.label_sources.split(",")] if args.label_sources else None
        results = ablation.tfn_subset_grid(samples, store, folds, label_sources=sources, **common)
        print(ablation.grid_table(results, title=f"TFN WA, {title}"))
        table_md = ablation.grid_table(results, markdown=True)
        if any("own" in e for e in results["supervision"]):  # per-modality labels: unimodal vs multimodal supervision
            print(ablation.supervision_table(results, title="unimodal vs multimodal supervision (WA)"))
            table_md += "\n" + ablation.supervision_table(results, markdown=True)
    else:
        results = _ladder(args, samples, store, folds, common)
        print(ladder.ladder_table(results, title=f"OF-CMAER-CAT ladder, {title} ({results['features_note']})"))
        table_md = ladder.ladder_table(results, markdown=True)
    results["command"] = " ".join(["emofuse", *sys.argv[1:]]) if sys.argv and sys.argv[0].endswith("emofuse") else None
    _write_outputs(results, args.out, args.markdown, table_md)
    return 0


def _ladder(args: argparse.Namespace, samples: Any, store: Any, folds: Any, common: dict[str, Any]) -> dict[str, Any]:
    """The ladder's results, resuming finished rungs from --out (unless --fresh) and saving it
    (marked incomplete) after every rung."""
    from emofuse.experiments.ladder import of_cmaer_cat_ladder
    from emofuse.evaluation.results import finished_rows
    from emofuse.evaluation.reports import write_json_atomic

    finished = {} if args.fresh or not args.out else finished_rows(Path(args.out))

    def save_partial(partial: dict[str, Any]) -> None:
        if args.out:
            write_json_atomic(Path(args.out), {**partial, "complete": False})

    results = of_cmaer_cat_ladder(samples, store, folds, ladder=args.ladder, finished=finished, on_rung=save_partial,
                                  **common)
    results["complete"] = True
    return results


def _write_outputs(results: dict[str, Any], out: str | None, markdown_path: str | None, table_md: str) -> None:
    """Check the results, then write the JSON (--out) and the Markdown (--markdown: the table and every row)."""
    from emofuse.evaluation.reports import check_results, markdown_table, write_json_atomic, write_text_atomic

    check_results(results, out)
    if out:
        write_json_atomic(Path(out), results)
    if markdown_path:
        head = [f"# {results['title']}", ""]
        for key in ("dataset", "date", "folds", "seeds", "features", "features_note", "label_sources"):
            if results.get(key) is not None:
                head.append(f"- **{key}**: {results[key]}")
        text = "\n".join(head) + "\n\n" + table_md + "\n## All rows\n\n" + markdown_table(results)
        write_text_atomic(Path(markdown_path), text)
