"""Helpers every ``emofuse`` command shares: the data folder, dataset arguments and their help,
output-path checks, ``--seeds`` parsing and printing predictions and counts.

Only the standard library and `emofuse.errors` are imported here; everything heavier is imported
inside the function that needs it, so building the parser stays instant.
"""

from __future__ import annotations

import argparse
import itertools
import os
import stat
import sys
from collections.abc import Sequence
from pathlib import Path

from emofuse.errors import DataError, EmofuseError


def data_dir(args: argparse.Namespace) -> Path:
    from emofuse.paths import data_root

    root = data_root(args.data)
    if root is None:
        raise EmofuseError("no data folder: pass --data DIR or set EMOFUSE_DATA")
    if not root.is_dir():
        raise EmofuseError(f"{root}: data folder not found")
    return root


def dataset_root(args: argparse.Namespace, dataset: str) -> Path | None:
    """The data root a dataset argument needs: `data_dir` for a registered name; for a CSV manifest
    (which names its own files) the root when one is known, else None."""
    if not str(dataset).lower().endswith(".csv"):
        return data_dir(args)
    from emofuse.paths import data_root

    return data_root(args.data)


class HelpFormatter(argparse.HelpFormatter):
    """Fills ``{datasets}`` in an option's help with the registered dataset names, only when help is
    shown (the registry imports the corpus modules, which ``emofuse --help`` does not pay for)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = super()._get_help_string(action)
        if text and "{datasets}" in text:
            from emofuse.data.specs import list_datasets

            text = text.replace("{datasets}", ", ".join(list_datasets()))
        return text


DATASET_HELP = "{datasets}, or a CSV manifest path (your own corpus: docs/usage.md)"
FOLDS_HELP = ("CSV manifest only: speaker-disjoint folds to generate (default 5, fewer when there are fewer "
              "speakers; a saved folds file is reused)")
FOLD_SEED_HELP = "CSV manifest only: seed of the generated folds (default 0: speakers dealt in sorted order)"


def check_output(out: str | None, inputs: Sequence[str | Path], option: str = "--json") -> Path | None:
    """The file ``out`` an option will write (None for no file, or ``-``: standard output), checked
    before any work: a `DataError` naming it when it is a directory, a special file (fifo, device,
    socket) or the same file as one of ``inputs`` (also through a symlink or a hard link)."""
    if out is None or out == "-":
        return None
    path = Path(out)
    try:
        st = path.stat()
    except FileNotFoundError:
        st = None  # a new file (or a dangling symlink, which the write replaces)
    except OSError as exc:  # a symlink loop, no permission, a name too long
        raise DataError(path, f"cannot use it as the {option} output ({exc.strerror or exc})") from None
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise DataError(path, f"the {option} output is a directory: give a file name")
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise DataError(path, f"the {option} output is not a regular file ({_file_kind(st.st_mode)}): give a file "
                              f"name, or '{option} -' for standard output")
    target = os.path.realpath(path)
    for item in inputs:
        try:
            same = st is not None and os.path.samefile(path, item)
        except OSError:
            same = False
        if same or os.path.realpath(item) == target:
            raise DataError(path, f"the {option} output is the input file {item}: writing it would destroy the "
                                  "input; choose another name")
    return path


def _file_kind(mode: int) -> str:
    for test, kind in ((stat.S_ISFIFO, "a fifo"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return kind
    return "a special file"


def checkpoint_files(models: Sequence[str] | None) -> list[Path]:
    """The files of the ``--model`` checkpoint folders (the shipped demo model when none is given)."""
    from importlib import resources

    folders = [Path(m) for m in models] if models else [Path(str(resources.files("emofuse") / "assets" / "demo_model"))]
    files: list[Path] = []
    for folder in folders:
        if folder.is_dir():
            files.extend(itertools.islice((f for f in folder.rglob("*") if f.is_file()), 1000))
    return files


def print_predictions(preds, as_json: str | None) -> int:
    """Print each file's table (its warnings and, when it got no label, an error line on stderr) and
    write the JSON (``{"predictions": [...], "ok": n, "failed": n}``); returns the number of files
    without a label."""
    from rich.console import Console
    from rich.table import Table

    console = Console(stderr=as_json == "-")  # with --json -, stdout carries only the JSON
    for p in preds:
        name = Path(p.path).name if p.path is not None else "text"
        for warning in p.warnings:
            shown = warning if p.path is None or str(p.path) in warning else f"{p.path}: {warning}"
            print(f"emofuse: warning: {shown}", file=sys.stderr)
        if not p.ok:
            print(f"emofuse: error: {p.message}", file=sys.stderr)
            continue
        uncertain = p.status == "uncertain"  # below a calibrated model's confidence threshold (docs/calibration.md)
        answer = f"[bold]uncertain[/bold] (best guess {p.label})" if uncertain else f"[bold]{p.label}[/bold]"
        title = f"{name} → {answer}"
        table = Table(title=title, show_header=True)
        table.add_column("emotion")
        table.add_column("probability", justify="right")
        for lab, prob in sorted(p.probabilities.items(), key=lambda kv: -kv[1]):
            table.add_row(lab, f"{prob:.3f}")
        console.print(table)
        if uncertain:
            console.print(f"uncertain: the model's calibrated probability of {p.label} is {p.confidence:.2f}, "
                          f"below its confidence threshold {p.threshold:.2f}")
        if p.modalities_used:
            console.print(f"modalities used: {', '.join(p.modalities_used)}")
        space = p.explanations.get("label_space")
        if space:  # predict --labels: renormalised over the classes the space keeps
            dropped = space["dropped"]
            console.print(f"label space {space['name']}: renormalised without {', '.join(dropped) or 'nothing'} "
                          f"(their probability {sum(dropped.values()):.3f} dropped)", markup=False)
        exp = p.explanations
        if exp.get("modalities") and exp.get("modality_weights"):
            weights = ", ".join(f"{m} {w:.2f}" for m, w in zip(exp["modalities"], exp["modality_weights"]))
            console.print(f"modality weights: {weights}")
        if exp.get("face_share") is not None:
            console.print(f"frames with a face: {100 * exp['face_share']:.0f}% of {exp.get('face_frames')} sampled")
        if exp.get("files"):
            console.print(f"explanation saved: {', '.join(exp['files'])}", markup=False)
        if p.explanations.get("ensemble_members"):
            console.print(f"seed ensemble: probabilities averaged over {p.explanations['ensemble_members']} models")
        if p.explanations.get("test_time_augment"):
            speeds = ", ".join(f"{f:g}" for f in p.explanations["test_time_augment"])
            console.print(f"test-time augmentation: probabilities averaged over the clip and its speed-perturbed "
                          f"copies ({speeds})")
        if p.transcript is not None:
            source = "speech recognition" if p.transcript_source == "asr" else "given"
            console.print(f"transcript ({source}): {p.transcript!r}", markup=False)
    failed = sum(not p.ok for p in preds)
    if as_json:
        from emofuse.evaluation.reports import json_text

        payload = json_text({"predictions": [p.to_dict() for p in preds], "ok": len(preds) - failed,
                             "failed": failed, "uncertain": sum(p.status == "uncertain" for p in preds)})
        if as_json == "-":
            print(payload)
        else:
            from emofuse.atomic import atomic_write_text

            atomic_write_text(Path(as_json), payload + "\n")
            console.print(f"wrote {as_json}")
    if failed and len(preds) > 1:
        print(f"emofuse: {failed} of {len(preds)} files got no prediction (see the errors above)", file=sys.stderr)
    return failed


def parse_seeds(text: str) -> tuple[int, ...]:
    """``--seeds 0,1,2`` as distinct integers (a clear error otherwise)."""
    from emofuse.errors import ConfigError

    try:
        seeds = tuple(int(part) for part in str(text).split(","))
    except ValueError:
        raise ConfigError(f"--seeds must be comma-separated integers, got {text!r}") from None
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"--seeds repeats a seed: {text!r}")
    return seeds


def print_counts(what: str, values: list, first: Sequence[str] | None) -> None:
    """``per WHAT:`` then one ``  value: n`` line each (the values in ``first`` in that order, e.g. a
    corpus's labels in its class order, then the others sorted)."""
    from collections import Counter

    counts = Counter(values)
    order: list = [v for v in first or () if v in counts]
    order += sorted((v for v in counts if v not in order), key=str)
    print(f"per {what}:")
    for value in order:
        print(f"  {value}: {counts[value]}")


def data_opts(p: argparse.ArgumentParser) -> None:
    """The ``--data``, ``--cache`` and ``--quiet`` options of the commands that read a dataset."""
    p.add_argument("--data", help="data root (default: $EMOFUSE_DATA or ../shared/data)")
    p.add_argument("--cache", help="feature cache folder (default: $EMOFUSE_CACHE or ~/.cache/emofuse)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def hardware_opts(p: argparse.ArgumentParser) -> None:
    """``--devices``, ``--num-nodes``, ``--strategy``, ``--accelerator``: training in several processes
    (launched by torchrun, srun or Lightning itself; docs/scale.md)."""
    g = p.add_argument_group("processes", "Each overrides the recipe's train settings (and so the results' run "
                             "key); launch with torchrun or srun, one process per device (docs/scale.md).")
    g.add_argument("--devices", type=int, metavar="N", help="devices (processes) per node, e.g. 2 GPUs or 2 CPU "
                   "processes")
    g.add_argument("--num-nodes", type=int, metavar="M", help="machines taking part")
    g.add_argument("--strategy", choices=("auto", "ddp", "ddp_find_unused_parameters_true"),
                   help="Lightning strategy (ddp: DistributedDataParallel)")
    g.add_argument("--accelerator", choices=("auto", "cpu", "gpu"), help="device kind (auto: a GPU when there is one)")


def hardware(args: argparse.Namespace) -> dict:
    """The `hardware_opts` given, as train settings (checked; empty when none is given)."""
    from emofuse.training.config import TrainConfig

    given = {key: getattr(args, name) for key, name in (("devices", "devices"), ("num_nodes", "num_nodes"),
                                                        ("strategy", "strategy"), ("accelerator", "accelerator"))
             if getattr(args, name, None) is not None}
    TrainConfig(**given)  # a ConfigError naming the setting, before any data is read
    return given

