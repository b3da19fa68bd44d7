"""``emofuse train-text RECIPE --dataset meld|goemotions|goemotions_ekman --out DIR``: fine-tune a text encoder."""

from __future__ import annotations

import argparse

from emofuse.cli.common import HelpFormatter, data_dir


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("train-text", help="fine-tune a text encoder (MiniLM or a local Hugging Face folder) "
                              "on MELD or GoEmotions and save a checkpoint for 'predict --text'",
                              formatter_class=HelpFormatter)
    p.add_argument("recipe", help="a text recipe: finetune_minilm_meld, finetune_minilm_meld_context, "
                   "finetune_minilm_goemotions, or a YAML file (docs/text.md)")
    p.add_argument("--dataset", default="meld", choices=("meld", "goemotions", "goemotions_ekman"),
                   help="corpus (its official split: train trains, dev picks the epoch and thresholds, test is "
                   "scored once)")
    p.add_argument("--out", required=True, help="checkpoint folder (rerun the same command to resume an "
                   "interrupted run from <out>.work/)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-epochs", type=int, help="override the recipe's max_epochs")
    p.add_argument("--data", help="data root (default: $EMOFUSE_DATA or ../shared/data)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from emofuse.training.text import load_text_recipe
    from emofuse.training.train_text import train_text

    load_text_recipe(args.recipe)  # recipe errors before the data and the model
    result = train_text(args.recipe, args.dataset, data_dir(args), args.out, seed=args.seed, max_epochs=args.max_epochs,
                        progress=not args.quiet)
    key = "macro_f1" if "micro_f1" in result.test else "weighted_f1"
    print(f"best epoch {result.best_epoch}: dev {key} {result.dev[key]:.4f} (model selection); test {key} "
          f"{result.test[key]:.4f}, WA {result.test['wa']:.4f}; {result.train_seconds:.0f} s; "
          f"checkpoint in {result.out_dir}")
    return 0
