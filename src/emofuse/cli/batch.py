"""``emofuse predict --batch DIR|manifest.csv --out FOLDER [--shard K/N]``: many files, in shards
(`emofuse.inference.batch`), resumable; under torchrun or srun each process predicts its rank's shard."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The batch options of ``emofuse predict``."""
    g = p.add_argument_group("many files", "Predict a folder or a CSV manifest of media into --out FOLDER: one JSONL "
                             "file per shard, then predictions.jsonl with every file; a rerun skips the files already "
                             "predicted. Under torchrun or srun each process takes its rank's shard (docs/scale.md).")
    g.add_argument("--batch", metavar="DIR|CSV", help="a folder (searched recursively for audio and video files) or a "
                   "CSV manifest with a path (or audio, video, file) column")
    g.add_argument("--shard", metavar="K/N", help="with --batch: predict only the K-th of every N files (default: this "
                   "process's rank under torchrun or srun, else every file)")


def check_arguments(args: argparse.Namespace) -> bool:
    """Whether this is a batch run (options checked before any model loads)."""
    from emofuse.errors import ConfigError

    if args.batch is None:
        if args.shard:
            raise ConfigError("--shard splits a --batch run: give --batch DIR|manifest.csv --out FOLDER")
        return False
    clashing = [opt for opt, on in (("files", bool(args.files)), ("--text", args.text is not None),
                                    ("--source", bool(args.source)), ("--segments", args.segments is not None),
                                    ("--json", bool(args.json)), ("--plot", bool(args.plot)),
                                    ("--context", bool(args.context))) if on]
    if clashing:
        raise ConfigError(f"--batch predicts the files it lists into --out: drop {', '.join(clashing)}")
    if not args.out:
        raise ConfigError("--batch needs --out FOLDER (shard files and predictions.jsonl go there)")
    return True


def run_batch(args: argparse.Namespace, predict_files, space) -> int:
    """Predict this process's shard; exit status 2 when some file of it got no label."""
    from emofuse.features.driver import parse_shard
    from emofuse.inference.batch import list_media, predict_batch
    from emofuse.inference.predictor import Predictor
    from emofuse.training.distributed import launch_shard

    shard = parse_shard(args.shard) if args.shard else launch_shard()
    files = list_media(args.batch)
    transcripts: dict[str, str] = {}
    if args.transcripts:
        from emofuse.inference.predictor import load_transcripts, match_transcripts

        transcripts = match_transcripts(load_transcripts(args.transcripts), files, args.transcripts)
    predictor = Predictor(args.model, asr=not args.no_asr, max_duration=args.max_duration,
                          audio_track=args.audio_track, min_speech=args.min_speech, threshold=args.threshold)

    def predict(chunk: list[str]) -> list:
        return space(predict_files(argparse.Namespace(**{**vars(args), "files": chunk}), predictor, transcripts))

    where = "" if shard is None else f"shard {shard[0]}/{shard[1]}: "
    progress = (lambda done, total: print(f"{where}{done}/{total} files", file=sys.stderr))
    result = predict_batch(predict, files, Path(args.out), shard, on_progress=progress)
    print(f"{where}{result.predicted} predicted ({result.failed} without a label), {result.skipped} already in "
          f"{args.out}; {result.shard_file.name}")
    if result.merged is not None:
        print(f"wrote {result.merged} ({result.total} files)")
    return 2 if result.failed else 0
