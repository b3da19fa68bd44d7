"""``emofuse complexity``: parameters, FLOPs, memory and latency of the registered models."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("complexity", help="parameters, FLOPs, memory and latency of the registered models")
    p.add_argument("--models", default=None, help="comma-separated model names (default: all registered)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--repeats", type=int, default=3, help="timed runs per measurement (median reported)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: leave torch's default)")
    p.add_argument("--json", default=None, metavar="OUT", help="also write the rows as JSON")
    p.add_argument("--markdown", default=None, metavar="OUT", help="also write the Markdown table")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the table, optionally save JSON / Markdown."""
    import torch

    from emofuse.atomic import atomic_write_text
    from emofuse.experiments.complexity import complexity_table, format_complexity_table

    if args.threads:
        torch.set_num_threads(args.threads)
    names = [n.strip() for n in args.models.split(",") if n.strip()] if args.models else None
    rows = complexity_table(names, batch_size=args.batch_size, repeats=args.repeats)
    table = format_complexity_table(rows)
    print(table, end="")
    if args.json:
        from emofuse.evaluation.reports import json_text

        atomic_write_text(Path(args.json), json_text(rows))  # strict JSON: NaN/inf become null
    if args.markdown:
        atomic_write_text(Path(args.markdown), table)
    return 0
