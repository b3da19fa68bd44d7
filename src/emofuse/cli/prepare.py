"""``emofuse prepare DATASET``: load a dataset, check every media file and summarise it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from emofuse.cli.common import DATASET_HELP, HelpFormatter, data_opts, dataset_root, print_counts


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "prepare", help="load a dataset, check every file and summarise it",
        epilog="Every audio file gets a header check and a decode of its first second; a video-only "
               "file must decode its first frame. Bad files are listed on stderr, one line each. "
               "Exit status: 0 if every file is good, 2 if any is bad (nothing is written) or on bad "
               "input; with --keep-going, samples with a bad file are left out and the exit is 0.",
        formatter_class=HelpFormatter)
    p.add_argument("dataset", help=DATASET_HELP)
    p.add_argument("--strict", action="store_true", help="fail on any missing piece instead of warning")
    p.add_argument("--out", help="write a generic CSV manifest")
    p.add_argument("--keep-going", action="store_true", help="bad files do not fail the command: their samples "
                   "are left out of the counts and the manifest")
    p.add_argument("--jobs", type=int, metavar="N", help="files checked in parallel (default: the CPU count, "
                   "at most 8)")
    data_opts(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Load, open every media file, print counts per label and speaker. Exit 2 if a file is bad,
    unless --keep-going (bad files' samples are then left out of the counts and the manifest)."""
    from emofuse.data.check import check_samples
    from emofuse.data.specs import load_dataset

    if args.jobs is not None and args.jobs < 1:
        from emofuse.errors import ConfigError

        raise ConfigError(f"--jobs must be at least 1, got {args.jobs}")
    data = load_dataset(args.dataset, dataset_root(args, args.dataset), strict=args.strict, make_folds=False)
    samples = data.samples
    report = check_samples(samples, jobs=args.jobs, progress=not args.quiet)
    for path, problem in sorted(report.bad.items()):
        print(f"emofuse: bad file: {path}: {problem}", file=sys.stderr)
    kept = report.good if args.keep_going else samples
    seconds = report.audio_seconds
    hours = "" if not seconds else f", {seconds / 3600:.2f} h of audio" if seconds >= 3600 else f", {seconds:.1f} s of audio"
    print(f"{data.name}: {len(kept)} samples, {len({s.speaker for s in kept})} speakers; "
          f"{report.checked} files checked, {len(report.bad)} bad{hours}")
    print_counts("label", [s.label for s in kept], data.labels)
    print_counts("speaker", [s.speaker for s in kept], None)
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
