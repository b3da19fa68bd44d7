"""The ``emofuse`` command line: prepare | extract | train | train-face | train-text | evaluate | predict | benchmark | demo |
complexity | explain | ablation | serve | export.

One module per command (``emofuse.cli.<command>``), each with ``add_parser(subparsers)`` and
``run(args) -> int``; shared helpers are in `emofuse.cli.common`. Command modules import heavy
libraries (numpy, PyTorch, ...) only inside ``run``, so ``emofuse --help`` and every
``emofuse COMMAND --help`` stay instant.

Every failure exits non-zero with a one-line reason (``--debug`` shows the traceback): 2 for bad
input, configuration or a failed write (and `predict` batches where some file got no label), 1 for
an unexpected error, 130 when interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from emofuse.cli.common import check_output, parse_seeds, print_predictions
from emofuse.errors import EmofuseError

__all__ = ["COMMANDS", "build_parser", "check_output", "main", "parse_seeds"]

#: The command modules, in the order ``emofuse --help`` lists them.
COMMANDS = ("demo", "predict", "prepare", "extract", "train", "train-face", "train-text", "evaluate", "benchmark", "complexity", "explain",
            "ablation", "serve", "export")

_print_predictions = print_predictions  # the older name, used by tests


def build_parser() -> argparse.ArgumentParser:
    """The ``emofuse`` parser: the global options and one subcommand per `COMMANDS` module."""
    parser = argparse.ArgumentParser(prog="emofuse", description="Multimodal emotion recognition.")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    parser.add_argument("--threads", type=int, dest="torch_threads", help="CPU threads for PyTorch and the BLAS/OpenMP "
                        "pools of numpy and scikit-learn (default: the libraries' choice; 1 is much faster when other "
                        "jobs share the CPU, see docs/training.md)")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        importlib.import_module(f"emofuse.cli.{name.replace('-', '_')}").add_parser(sub)
    return parser


#: environment variables the numerical libraries read their thread count from when they load
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def limit_threads(n: int) -> None:
    """``--threads N``: PyTorch, and the BLAS / OpenMP pools of numpy and scikit-learn (the logistic
    baseline's fits used more than one core under ``--threads 1`` before). Variables a user already
    set win; libraries loaded before this call are limited through threadpoolctl."""
    import os

    for name in THREAD_VARIABLES:
        os.environ.setdefault(name, str(n))
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(n)
    threadpool_limits(limits=n)


def main(argv: list[str] | None = None) -> int:
    """Run ``emofuse`` with ``argv`` (default: the process arguments); returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if args.torch_threads is not None:
        if args.torch_threads < 1:
            parser.error("--threads must be >= 1")
        limit_threads(args.torch_threads)
    try:
        return int(args.func(args) or 0)
    except EmofuseError as exc:
        if args.debug:
            raise
        print(f"emofuse: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("emofuse: interrupted (cached work is kept; rerun to resume)", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001  (one line, never a traceback, unless --debug)
        if args.debug:
            raise
        return _unexpected(exc)


def _unexpected(exc: Exception) -> int:
    """Print an unexpected error in one line: 2 for a file that cannot be read or written (named), else 1."""
    if isinstance(exc, OSError) and exc.filename is not None:  # a disk or permission problem: name the file
        from emofuse.atomic import write_error

        print(f"emofuse: error: {write_error(exc.filename, exc, 'cannot read or write')}", file=sys.stderr)
        return 2
    print(f"emofuse: error: {type(exc).__name__}: {exc} (rerun with --debug for details)", file=sys.stderr)
    return 1
