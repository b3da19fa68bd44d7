"""``emofuse predict FILE... [--text|--transcripts] [--source MODALITY=PATH] [--labels SPACE] [--threshold P]``:
predict files' emotions; ``emofuse predict FILE --segments 2.0[:1.0]|vad [--out F.json|.csv] [--plot F.png]`` a long
file's emotion timeline (`emofuse.cli.segments`); ``emofuse predict --model-card [--model DIR]`` prints a model's card."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from emofuse.cli.common import check_output, checkpoint_files, print_predictions
from emofuse.cli.batch import add_arguments as add_batch_arguments, check_arguments as check_batch
from emofuse.cli.segments import add_arguments as add_segment_arguments, check_arguments as check_segments


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("predict", help="predict the emotion of audio (or video) files",
                              epilog="Each file is predicted on its own: a file that gets no label (unreadable, no "
                                     "speech, too short) prints an error line and the others still print. A calibrated "
                                     "model answers 'uncertain' (with its best guess) below its confidence threshold "
                                     "(docs/calibration.md). Exit status: 0 if every file got a label (uncertain "
                                     "included), 2 if some did not or on bad input, 1 on an unexpected error.")
    p.add_argument("files", nargs="*", help="wav/flac/mp3/mp4 files (none: predict --text alone, for text models)")
    p.add_argument("--model", action="append", metavar="CHECKPOINT",
                   help="checkpoint folder (default: the shipped demo model); repeat it for a seed ensemble "
                        "(e.g. 'emofuse train --seeds 0,1,2' output): their probabilities are averaged")
    p.add_argument("--json", help="write predictions as JSON to this file ('-' for stdout): {\"predictions\": "
                   "[...], \"ok\": N, \"failed\": N, \"uncertain\": N}; never one of the inputs, a directory "
                   "or a special file")
    text = p.add_mutually_exclusive_group()
    text.add_argument("--text", help="transcript of FILE (one file only), for models that read text; without it "
                      "they transcribe the speech offline with Whisper tiny.en")
    text.add_argument("--transcripts", metavar="MAPPING", help="transcripts of several files: a .json object "
                      "{\"clip.wav\": \"text\"} or a .csv with columns file,text (keys: the path as given, the same "
                      "path, or the file name); files it does not name are transcribed")
    p.add_argument("--context", metavar="DIALOGUE.jsonl", help="with --text and a fine-tuned text model (--model "
                   "DIR from 'emofuse train-text' or 'benchmark meld --save-models'): the turns said before the "
                   "text, oldest first, one JSON object per line: {\"speaker\": \"Ross\", \"text\": \"...\"}")
    p.add_argument("--speaker", help="with --text and a fine-tuned text model: who says the text (models trained "
                   "with speaker names read it)")
    p.add_argument("--source", action="append", metavar="MODALITY=PATH",
                   help="another input of FILE (one file only) for a model that reads that modality, e.g. "
                        "signal=clip.npz (a multichannel signal) or face=au.npy (the clip's action units); "
                        "repeat it for several modalities")
    p.add_argument("--no-asr", action="store_true", help="never transcribe: a text model's file without a transcript "
                   "is an error")
    p.add_argument("--max-duration", type=float, metavar="SECONDS", help="refuse files longer than this (default: "
                   "$EMOFUSE_MAX_DURATION, else 600 s)")
    p.add_argument("--audio-track", type=int, metavar="N", help="in files with several audio tracks, use track N "
                   "(from 1; default: the track with the most speech, named in a warning)")
    p.add_argument("--labels", metavar="SPACE", help="report the probabilities over another corpus's classes, "
                   "renormalised over those the model shares with it: 6 (neutral happy sad angry fearful disgust), "
                   "7 (+ surprised), cremad, fer, meld, emodb, 8 (the model's own; default); the other classes' "
                   "probability is dropped (docs/calibration.md)")
    p.add_argument("--threshold", type=float, metavar="P", help="confidence threshold in [0, 1] below which the "
                   "answer is 'uncertain' (default: the one the model was calibrated with, if any; 0: never)")
    p.add_argument("--model-card", action="store_true", help="print the model card (MODEL_CARD.md) beside the "
                   "checkpoint (--model, default: the shipped demo model) and exit")
    p.add_argument("--min-speech", type=float, metavar="SECONDS", help="seconds of detected speech a file needs for "
                   "a label (default 0.5; 0 turns the speech check off, e.g. for shouted speech the detector misses)")
    face = p.add_argument_group("video files", "A file with a video track is predicted from its audio and its face "
                                "together (the shipped audio-visual model: reliability-weighted late fusion, see "
                                "docs/video.md); audio files from their audio alone.")
    face.add_argument("--no-face", action="store_true", help="predict video files from their audio alone")
    face.add_argument("--av-model", metavar="DIR", help="audio-visual model folder (default: the shipped one); "
                      "--model replaces its audio part")
    face.add_argument("--detector", help="face detector (haar, mtcnn; default: the audio-visual model's)")
    face.add_argument("--sampler", help="which frames to read, e.g. 2fps, 2fps_8, 15_over_3.6s, all (default: the "
                      "audio-visual model's)")
    face.add_argument("--explain", metavar="DIR", help="for video files, save the face crops used, the per-frame "
                      "expression probabilities (CSV) and the modality-weight plot in DIR/<file name>/")
    add_segment_arguments(p)
    add_batch_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Exit 0 when every file got a label, 2 when some did not (each named on stderr and in the JSON)."""
    from emofuse.errors import ConfigError

    if args.model_card:
        if args.files or args.text is not None:
            raise ConfigError("--model-card prints the model's card and predicts nothing: give no files or --text")
        return print_model_card(args.model)
    if check_batch(args):
        from emofuse.cli.batch import run_batch

        space = _label_space(args.labels)
        return run_batch(args, _predict_files, lambda preds: _in_space(preds, space))
    if args.context or args.speaker or _text_model(args.model):
        return _predict_with_text_model(args, _label_space(args.labels))
    segments = check_segments(args)
    if segments is not None:
        from emofuse.cli.segments import run_timeline

        return run_timeline(args, segments)
    space = _label_space(args.labels)
    if args.threshold is not None and not 0.0 <= args.threshold <= 1.0:
        raise ConfigError(f"--threshold is a probability in [0, 1], got {args.threshold}")
    sources = parse_sources(args.source, args.files)
    inputs = [*args.files, *([args.transcripts] if args.transcripts else []), *sources.values(),
              *checkpoint_files(args.model)]
    check_output(args.json, inputs)  # before any model is loaded

    from emofuse.inference.predictor import Predictor, load_transcripts, match_transcripts

    if not args.files:  # text alone
        if args.text is None:
            raise ConfigError("give audio/video files, or --text \"...\" alone for a model that reads text")
        predictor = Predictor(args.model, asr=False, threshold=args.threshold)
        print_predictions(_in_space([predictor.predict_text(args.text)], space), args.json)
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
                          min_speech=args.min_speech, threshold=args.threshold)
    if (args.text is not None or args.transcripts) and not predictor.reads_text:
        print(f"emofuse: warning: the model reads no text ({', '.join(predictor.ckpt.model.input_dims)}); "
              "--text/--transcripts ignored", file=sys.stderr)
        transcripts = {}
    if sources:
        preds = [_predict_with_sources(predictor, args.files[0], transcripts.get(str(args.files[0])), sources)]
    else:
        preds = _predict_files(args, predictor, transcripts)
    return 2 if print_predictions(_in_space(preds, space), args.json) else 0


def _text_model(models: list[str] | None) -> bool:
    """Whether ``--model`` names one fine-tuned text checkpoint."""
    from emofuse.inference.text_checkpoint import is_text_checkpoint

    return bool(models) and len(models) == 1 and is_text_checkpoint(models[0])


def _predict_with_text_model(args: argparse.Namespace, space: Any) -> int:
    """``--text`` (with ``--context`` turns and ``--speaker``) through a fine-tuned text checkpoint."""
    from emofuse.errors import ConfigError

    if not _text_model(args.model):
        raise ConfigError("--context/--speaker need one fine-tuned text model: --model DIR (written by "
                          "'emofuse train-text' or 'emofuse benchmark meld --save-models')")
    if args.files or args.text is None:
        raise ConfigError("a fine-tuned text model reads --text \"...\" (and --context FILE), not media files")
    if space is not None:
        raise ConfigError("--labels applies to the speech models' classes, not to a text model")
    check_output(args.json, [*([args.context] if args.context else []), *checkpoint_files(args.model)])
    from emofuse.inference.text_predictor import TextPredictor
    from emofuse.inputs.conversation import read_context_file

    context = read_context_file(args.context) if args.context else []
    prediction = TextPredictor(args.model[0]).predict(args.text, context, args.speaker)
    return 2 if print_predictions([prediction], args.json) else 0


def _label_space(name: str | None) -> Any:
    """The ``--labels`` space (None: the model's own classes), checked before any model is loaded."""
    if name is None:
        return None
    from emofuse.inference.label_spaces import get_label_space

    return get_label_space(name)


def _in_space(preds: list[Any], space: Any) -> list[Any]:
    """Each prediction over the ``--labels`` space (`emofuse.inference.label_spaces.restrict_prediction`)."""
    if space is None:
        return preds
    from emofuse.inference.label_spaces import restrict_prediction

    return [restrict_prediction(p, space) for p in preds]


MODEL_CARD = "MODEL_CARD.md"


def print_model_card(models: list[str] | None) -> int:
    """Print the ``MODEL_CARD.md`` in each ``--model`` checkpoint folder (default: the shipped demo model);
    `DataError` naming the file when there is none."""
    from importlib import resources

    from emofuse.errors import DataError

    # the shipped model's folder, as `emofuse.inference.predictor.demo_checkpoint_dir` (without importing torch)
    shipped = Path(str(resources.files("emofuse") / "assets" / "demo_model"))
    folders = [Path(m) for m in models] if models else [shipped]
    for i, folder in enumerate(folders):
        if not folder.is_dir():
            raise DataError(folder, "checkpoint folder not found")
        card = folder / MODEL_CARD
        if not card.is_file():
            which = "the shipped demo model" if not models else "this checkpoint"
            raise DataError(folder / MODEL_CARD, f"no model card: {which} has no {MODEL_CARD} beside it")
        if i:
            print()
        text = card.read_text(encoding="utf-8", errors="replace")
        print(text if text.endswith("\n") else text + "\n", end="")
    return 0


def _predict_files(args: argparse.Namespace, predictor: Any, transcripts: dict[str, str]) -> list[Any]:
    """Files with a video track through the audio-visual predictor (unless --no-face), the others
    through the audio ``predictor``; results in the order of the files."""
    files = list(args.files)
    videos = set() if args.no_face else {i for i, f in enumerate(files) if _is_video(f)}
    audio_only = [i for i in range(len(files)) if i not in videos]
    preds: list[Any] = [None] * len(files)
    for i, pred in zip(audio_only, predictor.predict_files([files[i] for i in audio_only], transcripts)):
        preds[i] = pred
    if videos:
        order = sorted(videos)
        av = _av_predictor(args, predictor)
        for i, pred in zip(order, av.predict_files([files[i] for i in order], transcripts, explain_root=args.explain)):
            preds[i] = pred
    elif args.explain:
        print("emofuse: warning: --explain saves face explanations of video files; none was given "
              "(use 'emofuse explain' for audio models)", file=sys.stderr)
    return preds


def _is_video(path: str) -> bool:
    """Whether the file has a video track (a picture attached to an audio file is none); False when unreadable
    (the audio prediction then reports the problem)."""
    from emofuse.media.video import has_video_track

    try:
        return has_video_track(path)
    except Exception:  # noqa: BLE001  (unreadable: the audio path names the problem)
        return False


def _av_predictor(args: argparse.Namespace, audio: Any) -> Any:
    """The audio-visual predictor of the options, reusing the loaded audio `Predictor`."""
    from emofuse.inference.audio_visual import AudioVisualPredictor

    face = {k: v for k, v in (("detector", args.detector), ("sampler", args.sampler)) if v}
    return AudioVisualPredictor(args.av_model, audio_predictor=audio, custom_audio=bool(args.model), face=face)


def parse_sources(items: list[str] | None, files: list[str]) -> dict[str, Path]:
    """``--source MODALITY=PATH`` options as ``{modality: path}``, checked before any model is
    loaded: one input file, a registered modality read from a file of its own (not the recording
    or the transcript), each modality once, an existing file (`ConfigError` / `DataError` otherwise)."""
    if not items:
        return {}
    from emofuse.data.modalities import get_modality
    from emofuse.errors import ConfigError, DataError

    if len(files) != 1:
        raise ConfigError(f"--source gives more inputs of one file, got {len(files)} files: give exactly one FILE")
    sources: dict[str, Path] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name or not value:
            raise ConfigError(f"--source must be MODALITY=PATH (e.g. signal=clip.npz), got {item!r}")
        modality = get_modality(name)  # an unknown one lists the registered modalities
        if name in ("audio", "text") or not modality.sources:
            what = {"audio": "the recording is the FILE argument", "text": "give the transcript with --text"}
            raise ConfigError(f"--source {name}: {what.get(name, 'it comes from the sample fields, not a file')}")
        if name in sources:
            raise ConfigError(f"--source {name} is given twice")
        path = Path(value).expanduser()
        if not path.is_file():
            raise DataError(path, f"--source {name}: " + ("not a file" if path.exists() else "file not found"))
        sources[name] = path
    return sources


def _source_key(modality: str, names: Any, reads_row: Any) -> str:
    """The `Sample.sources` key a ``--source`` file fills: the source kind its model's features read
    (``video`` for ``face_frames``), else the modality's first source."""
    from emofuse.data.modalities import get_modality
    from emofuse.features.base import get_extractor, list_extractors

    if not reads_row:
        kinds = [get_extractor(n).source for n in names if n in list_extractors(None)]
        if kinds and kinds[0] in get_modality(modality).sources:
            return kinds[0]
    return get_modality(modality).sources[0]


def _predict_with_sources(predictor: Any, path: str, text: str | None, sources: dict[str, Path]) -> Any:
    """One file's prediction with its ``--source`` inputs, as `Predictor.predict_files` gives it
    (a file that cannot be used gets a label-less result). A modality the model does not read is
    dropped with a warning; one its features read from a table row (e.g. ``au``) is loaded from the
    ``.npy`` file, the others are passed as paths."""
    from emofuse.data.manifest import load_numeric_row
    from emofuse.errors import DataError
    from emofuse.features.base import list_extractors
    from emofuse.inference.predictor import Prediction

    table = set(list_extractors("table"))
    dims = predictor.ckpt.model.input_dims
    given: dict[str, Any] = {}
    for name, file in sources.items():
        plan = predictor.plan.modalities.get(name)
        if plan is None or name not in dims:
            print(f"emofuse: warning: the model reads no {name} ({', '.join(dims)}); --source {name}={file} ignored",
                  file=sys.stderr)
            continue
        reads_row = table & set(plan.names)
        given[_source_key(name, plan.names, reads_row)] = load_numeric_row(file, f"--source {name}") if reads_row \
            else file
    try:
        return predictor.predict_file(path, text=text, sources=given)
    except DataError as exc:
        return Prediction.failed(path, exc)
