"""The ``emofuse`` command line: prepare | extract | train | evaluate | predict | benchmark | demo |
complexity | explain | ablation.

Every failure exits non-zero with a one-line reason (``--debug`` shows the traceback): 2 for bad
input, configuration or a failed write (and `predict` batches where some file got no label), 1 for
an unexpected error, 130 when interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import itertools
import logging
import os
import stat
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Callable

from emofuse.errors import DataError, EmofuseError


def _data_dir(args: argparse.Namespace) -> Path:
    from emofuse.paths import data_root

    root = data_root(args.data)
    if root is None:
        raise EmofuseError("no data folder: pass --data DIR or set EMOFUSE_DATA")
    if not root.is_dir():
        raise EmofuseError(f"{root}: data folder not found")
    return root


def _dataset_root(args: argparse.Namespace, dataset: str) -> Path | None:
    """The data root a dataset argument needs: `_data_dir` for a registered name; for a CSV manifest
    (which names its own files) the root when one is known, else None."""
    if not str(dataset).lower().endswith(".csv"):
        return _data_dir(args)
    from emofuse.paths import data_root

    return data_root(args.data)


class _HelpFormatter(argparse.HelpFormatter):
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


def _checkpoint_files(models: Sequence[str] | None) -> list[Path]:
    """The files of the ``--model`` checkpoint folders (the shipped demo model when none is given)."""
    from importlib import resources

    folders = [Path(m) for m in models] if models else [Path(str(resources.files("emofuse") / "assets" / "demo_model"))]
    files: list[Path] = []
    for folder in folders:
        if folder.is_dir():
            files.extend(itertools.islice((f for f in folder.rglob("*") if f.is_file()), 1000))
    return files


def _print_predictions(preds, as_json: str | None) -> int:
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
        table = Table(title=f"{name} → [bold]{p.label}[/bold]", show_header=True)
        table.add_column("emotion")
        table.add_column("probability", justify="right")
        for lab, prob in sorted(p.probabilities.items(), key=lambda kv: -kv[1]):
            table.add_row(lab, f"{prob:.3f}")
        console.print(table)
        if p.modalities_used:
            console.print(f"modalities used: {', '.join(p.modalities_used)}")
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
        from emofuse.reports import json_text

        payload = json_text({"predictions": [p.to_dict() for p in preds], "ok": len(preds) - failed,
                             "failed": failed})
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


def cmd_predict(args: argparse.Namespace) -> int:
    """Exit 0 when every file got a label, 2 when some did not (each named on stderr and in the JSON)."""
    from emofuse.errors import ConfigError

    inputs = [*args.files, *([args.transcripts] if args.transcripts else []), *_checkpoint_files(args.model)]
    check_output(args.json, inputs)  # before any model is loaded

    from emofuse.predict import Predictor, load_transcripts, match_transcripts

    if not args.files:  # text alone
        if args.text is None:
            raise ConfigError("give audio/video files, or --text \"...\" alone for a model that reads text")
        predictor = Predictor(args.model, asr=False)
        _print_predictions([predictor.predict_text(args.text)], args.json)
        return 0
    if args.text is not None and len(args.files) != 1:
        raise ConfigError(f"--text is the transcript of one file, got {len(args.files)} files: "
                          "use --transcripts FILE.json/.csv for several")
    transcripts: dict[str, str] = {}
    if args.transcripts:  # read first, so a bad mapping fails before any model is loaded
        transcripts = match_transcripts(load_transcripts(args.transcripts), args.files, args.transcripts)
    elif args.text is not None:
        transcripts = {str(args.files[0]): args.text}
    predictor = Predictor(args.model, asr=not args.no_asr, max_duration=args.max_duration, audio_track=args.audio_track,
                          min_speech=args.min_speech)
    if (args.text is not None or args.transcripts) and not predictor.reads_text:
        print(f"emofuse: warning: the model reads no text ({', '.join(predictor.ckpt.model.input_dims)}); "
              "--text/--transcripts ignored", file=sys.stderr)
        transcripts = {}
    preds = predictor.predict_files(args.files, transcripts)
    return 2 if _print_predictions(preds, args.json) else 0


def cmd_demo(args: argparse.Namespace) -> int:
    from importlib import resources

    samples = Path(str(resources.files("emofuse") / "assets" / "samples"))
    check_output(args.json, [*_checkpoint_files(None), *samples.iterdir()])  # the shipped model and clips
    from emofuse.predict import Predictor, sample_clips

    predictor = Predictor()
    clips = sample_clips()
    print(f"emofuse demo: {predictor.ckpt.meta.get('description', 'demo model')}")
    preds = predictor.predict_files(clips)
    failed = _print_predictions(preds, args.json)
    from emofuse.data.ravdess import parse_ravdess_name

    for clip, p in zip(clips, preds):
        truth = parse_ravdess_name(clip.name).meta()["emotion"]
        guess = f"predicted {p.label} ({p.probabilities[p.label]:.2f})" if p.ok else f"no prediction ({p.status})"
        print(f"{clip.name}: true emotion {truth}, {guess}")
    return 2 if failed else 0


def cmd_prepare(args: argparse.Namespace) -> int:
    """Load, open every media file, print counts per label and speaker. Exit 2 if a file is bad,
    unless --keep-going (bad files' samples are then left out of the counts and the manifest)."""
    from emofuse.data.check import check_samples
    from emofuse.data.specs import load_dataset

    if args.jobs is not None and args.jobs < 1:
        from emofuse.errors import ConfigError

        raise ConfigError(f"--jobs must be at least 1, got {args.jobs}")
    data = load_dataset(args.dataset, _dataset_root(args, args.dataset), strict=args.strict, make_folds=False)
    samples = data.samples
    report = check_samples(samples, jobs=args.jobs, progress=not args.quiet)
    for path, problem in sorted(report.bad.items()):
        print(f"emofuse: bad file: {path}: {problem}", file=sys.stderr)
    kept = report.good if args.keep_going else samples
    seconds = report.audio_seconds
    hours = "" if not seconds else f", {seconds / 3600:.2f} h of audio" if seconds >= 3600 else f", {seconds:.1f} s of audio"
    print(f"{data.name}: {len(kept)} samples, {len({s.speaker for s in kept})} speakers; "
          f"{report.checked} files checked, {len(report.bad)} bad{hours}")
    _print_counts("label", [s.label for s in kept], data.labels)
    _print_counts("speaker", [s.speaker for s in kept], None)
    if not data.spec.speaker_independent:
        print(f"note: {data.spec.note}")
    if report.bad:
        what = (f"{len(report.bad)} of {report.checked} files are bad")
        if not args.keep_going:
            print(f"emofuse: error: {what}; nothing written (--keep-going leaves their samples out instead)",
                  file=sys.stderr)
            return 2
        print(f"emofuse: warning: {what}; their {len(report.dropped)} samples are left out", file=sys.stderr)
    if args.out:
        from emofuse.data.manifest import write_manifest

        write_manifest(kept, Path(args.out))
        print(f"wrote {args.out}")
    return 0


def _print_counts(what: str, values: list, first: Sequence[str] | None) -> None:
    """``per WHAT:`` then one ``  value: n`` line each (the values in ``first`` in that order, e.g. a
    corpus's labels in its class order, then the others sorted)."""
    from collections import Counter

    counts = Counter(values)
    order: list = [v for v in first or () if v in counts]
    order += sorted((v for v in counts if v not in order), key=str)
    print(f"per {what}:")
    for value in order:
        print(f"  {value}: {counts[value]}")


def cmd_extract(args: argparse.Namespace) -> int:
    from emofuse.data.specs import load_dataset
    from emofuse.features.augment import check_factor
    from emofuse.features.driver import parse_shard
    from emofuse.featuresets import FeatureStore

    speeds = [1.0, *(check_factor(f) for f in args.speeds.split(",") if f.strip())]
    shard = parse_shard(args.shard)
    samples = load_dataset(args.dataset, _dataset_root(args, args.dataset), make_folds=False).samples
    store = FeatureStore(samples, args.cache, progress=not args.quiet)
    for speed in dict.fromkeys(speeds):
        view = store.view(speed)
        for name in args.features.split(","):
            arrays = view.get(name.strip(), shard=shard)
            n = sum(a is not None for a in arrays)
            part = "" if shard is None else f" (after shard {shard[0]}/{shard[1]})"
            print(f"{name}{'' if speed == 1.0 else f' (speed {speed:g})'}: {n}/{len(arrays)} clips cached{part}")
    return 0


def cmd_benchmark(args: argparse.Namespace) -> int:
    if args.target != "features" and args.models not in ("default", "all"):
        from emofuse.recipes import load_recipe

        for name in filter(None, map(str.strip, args.models.split(","))):
            load_recipe(name)  # recipe errors first, before the data and the heavy imports
    from emofuse import benchmark

    if args.target == "features":
        rows = benchmark.feature_speed(_data_dir(args), args.features.split(","), n_clips=args.clips)
        from emofuse.reports import json_text

        for r in rows:
            print(json_text(r, indent=None))
        return 0
    benchmark.run_benchmark(args.target, _dataset_root(args, args.target), models=args.models, out=args.out,
                            report_dir=args.report_dir, cache_dir=args.cache, seeds=parse_seeds(args.seeds),
                            folds=args.folds, max_epochs=args.max_epochs, progress=not args.quiet,
                            robustness=args.robustness, resume=not args.fresh, num_folds=args.num_folds,
                            fold_seed=args.fold_seed)
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from emofuse.recipes import load_recipe

    load_recipe(args.recipe)  # every recipe error first, before the data and the heavy imports
    from emofuse import benchmark

    benchmark.train_recipe(args.recipe, args.dataset, _dataset_root(args, args.dataset), out_dir=Path(args.out),
                           fold=args.fold, cache_dir=args.cache, max_epochs=args.max_epochs, progress=not args.quiet,
                           seeds=parse_seeds(args.seeds), num_folds=args.num_folds, fold_seed=args.fold_seed)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from emofuse import benchmark

    metrics = benchmark.evaluate_checkpoint(Path(args.checkpoint), args.dataset, _dataset_root(args, args.dataset),
                                            fold=args.fold,
                                            cache_dir=args.cache, report_dir=args.report_dir)
    shown = {k: v for k, v in metrics.items() if not isinstance(v, (dict, list)) or k == "test_time_augment"}
    from emofuse.reports import json_text

    print(json_text(shown))
    return 0


def _lazy(module: str, function: str) -> Callable[[argparse.Namespace], int]:
    """A command handler that imports ``emofuse.<module>`` only when the command runs."""

    def run(args: argparse.Namespace) -> int:
        return getattr(importlib.import_module(f"emofuse.{module}"), function)(args)

    return run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="emofuse", description="Multimodal emotion recognition.")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    parser.add_argument("--threads", type=int, dest="torch_threads", help="CPU threads for PyTorch (default: PyTorch's choice; 1 is "
                        "much faster when other jobs share the CPU, see docs/training.md)")
    sub = parser.add_subparsers(dest="command", required=True)

    def data_opts(p: argparse.ArgumentParser) -> None:
        p.add_argument("--data", help="data root (default: $EMOFUSE_DATA or ../shared/data)")
        p.add_argument("--cache", help="feature cache folder (default: $EMOFUSE_CACHE or ~/.cache/emofuse)")
        p.add_argument("--quiet", action="store_true", help="no progress bars")

    p = sub.add_parser("demo", help="predict the shipped sample clips with the shipped demo model")
    p.add_argument("--json", help="also write predictions as JSON to this file ('-' for stdout)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("predict", help="predict the emotion of audio (or video) files",
                       epilog="Each file is predicted on its own: a file that gets no label (unreadable, no speech, "
                              "too short) prints an error line and the others still print. Exit status: 0 if every "
                              "file got a label, 2 if some did not or on bad input, 1 on an unexpected error.")
    p.add_argument("files", nargs="*", help="wav/flac/mp3/mp4 files (none: predict --text alone, for text models)")
    p.add_argument("--model", action="append", metavar="CHECKPOINT",
                   help="checkpoint folder (default: the shipped demo model); repeat it for a seed ensemble "
                        "(e.g. 'emofuse train --seeds 0,1,2' output): their probabilities are averaged")
    p.add_argument("--json", help="write predictions as JSON to this file ('-' for stdout): {\"predictions\": "
                   "[...], \"ok\": N, \"failed\": N}; never one of the inputs, a directory or a special file")
    text = p.add_mutually_exclusive_group()
    text.add_argument("--text", help="transcript of FILE (one file only), for models that read text; without it "
                      "they transcribe the speech offline with Whisper tiny.en")
    text.add_argument("--transcripts", metavar="MAPPING", help="transcripts of several files: a .json object "
                      "{\"clip.wav\": \"text\"} or a .csv with columns file,text (keys: the path as given, the same "
                      "path, or the file name); files it does not name are transcribed")
    p.add_argument("--no-asr", action="store_true", help="never transcribe: a text model's file without a transcript "
                   "is an error")
    p.add_argument("--max-duration", type=float, metavar="SECONDS", help="refuse files longer than this (default: "
                   "$EMOFUSE_MAX_DURATION, else 600 s)")
    p.add_argument("--audio-track", type=int, metavar="N", help="in files with several audio tracks, use track N "
                   "(from 1; default: the track with the most speech, named in a warning)")
    p.add_argument("--min-speech", type=float, metavar="SECONDS", help="seconds of detected speech a file needs for "
                   "a label (default 0.5; 0 turns the speech check off, e.g. for shouted speech the detector misses)")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("prepare", help="load a dataset, check every file and summarise it",
                       epilog="Every audio file gets a header check and a decode of its first second; a video-only "
                              "file must decode its first frame. Bad files are listed on stderr, one line each. "
                              "Exit status: 0 if every file is good, 2 if any is bad (nothing is written) or on bad "
                              "input; with --keep-going, samples with a bad file are left out and the exit is 0.",
                       formatter_class=_HelpFormatter)
    p.add_argument("dataset", help=DATASET_HELP)
    p.add_argument("--strict", action="store_true", help="fail on any missing piece instead of warning")
    p.add_argument("--out", help="write a generic CSV manifest")
    p.add_argument("--keep-going", action="store_true", help="bad files do not fail the command: their samples "
                   "are left out of the counts and the manifest")
    p.add_argument("--jobs", type=int, metavar="N", help="files checked in parallel (default: the CPU count, "
                   "at most 8)")
    data_opts(p)
    p.set_defaults(func=cmd_prepare)

    p = sub.add_parser("extract", help="extract and cache features (resumes after interruption)",
                       formatter_class=_HelpFormatter)
    p.add_argument("dataset", help=DATASET_HELP)
    p.add_argument("--features", default="whisper,egemaps", help="comma-separated extractor names")
    p.add_argument("--speeds", default="", help="also cache the audio features of speed-perturbed copies at these "
                   "comma-separated factors, e.g. 0.9,1.1 (what recipes with data.speed_perturb read)")
    p.add_argument("--shard", metavar="K/N", help="compute only the K-th of every N inputs (1-based), so N processes "
                   "or machines sharing one cache extract the dataset together; rerun without it to check")
    data_opts(p)
    p.set_defaults(func=cmd_extract)

    p = sub.add_parser("train", help="train a recipe on a dataset fold and save a checkpoint",
                       formatter_class=_HelpFormatter)
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
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="evaluate a checkpoint on a fold's test speakers",
                       formatter_class=_HelpFormatter)
    p.add_argument("checkpoint")
    p.add_argument("--dataset", default="ravdess", help=DATASET_HELP + " (default: ravdess); a manifest's folds "
                   "are the ones saved with the checkpoint")
    p.add_argument("--fold", type=int, default=1)
    p.add_argument("--report-dir", help="write metrics JSON/Markdown and a confusion matrix PNG here")
    data_opts(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("benchmark", help="k-fold benchmark of baselines and models (one table)",
                       formatter_class=_HelpFormatter)
    p.add_argument("target", help=DATASET_HELP + "; or 'features' for extractor speed. A manifest's folds are "
                   "written beside --out (else in --report-dir) and reused")
    p.add_argument("--models", default="default", help="'default', 'all', or comma-separated recipe/model names")
    p.add_argument("--out", help="write results JSON here (updated after every model; rerunning the same "
                   "command resumes, reusing finished rows)")
    p.add_argument("--fresh", action="store_true", help="recompute every row even if --out has it")
    p.add_argument("--report-dir", help="write results.md and confusion-matrix PNGs here")
    p.add_argument("--seeds", default="0", help="comma-separated seeds")
    p.add_argument("--folds", help="comma-separated fold numbers (default: all)")
    p.add_argument("--num-folds", type=int, metavar="K", help=FOLDS_HELP)
    p.add_argument("--fold-seed", type=int, metavar="S", help=FOLD_SEED_HELP)
    p.add_argument("--max-epochs", type=int, help="override every recipe's max_epochs (quick runs)")
    p.add_argument("--robustness", action="store_true",
                   help="also test each neural model with single modalities and random modality drop rates 0.1-0.5")
    p.add_argument("--features", default="logmel,mfcc,frft_mfcc,egemaps,egemaps_lld,whisper", help="for 'features'")
    p.add_argument("--clips", type=int, default=40, help="for 'features': number of clips")
    data_opts(p)
    p.set_defaults(func=cmd_benchmark)

    # complexity: the command's code is imported only when it runs (keeps --help fast)
    p = sub.add_parser("complexity", help="parameters, FLOPs, memory and latency of the registered models")
    p.add_argument("--models", default=None, help="comma-separated model names (default: all registered)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--repeats", type=int, default=3, help="timed runs per measurement (median reported)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: leave torch's default)")
    p.add_argument("--json", default=None, metavar="OUT", help="also write the rows as JSON")
    p.add_argument("--markdown", default=None, metavar="OUT", help="also write the Markdown table")
    p.set_defaults(func=_lazy("complexity", "cmd_complexity"))

    # explain: the command's code is imported only when it runs (keeps --help fast)
    p = sub.add_parser("explain", help="plot a checkpoint's explanations (attention, modality weights) for a file")
    p.add_argument("checkpoint", help="checkpoint folder (e.g. src/emofuse/assets/demo_model)")
    p.add_argument("file", help="audio or video file")
    p.add_argument("--out", required=True, help="folder for the PNG plots and explanation.json")
    p.add_argument("--face", default=None, help="optional .npy with the clip's action-unit vector")
    p.set_defaults(func=_lazy("explain", "cmd_explain"))

    # ablation: the command's code is imported only when it runs (keeps --help fast)
    p = sub.add_parser("ablation", help="TFN modality-subset x label-source grid, or the OF-CMAER-CAT ladder",
                       formatter_class=_HelpFormatter)
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
    p.set_defaults(func=_lazy("ablation", "cmd_ablation"))
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.torch_threads is not None:
        if args.torch_threads < 1:
            parser.error("--threads must be >= 1")
        import torch

        torch.set_num_threads(args.torch_threads)
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
        if isinstance(exc, OSError) and exc.filename is not None:  # a disk or permission problem: name the file
            from emofuse.atomic import write_error

            print(f"emofuse: error: {write_error(exc.filename, exc, 'cannot read or write')}", file=sys.stderr)
            return 2
        print(f"emofuse: error: {type(exc).__name__}: {exc} (rerun with --debug for details)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
