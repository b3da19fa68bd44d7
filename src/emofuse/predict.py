"""Running a trained checkpoint on media files: features → model → probabilities + explanations.

Checkpoints whose features include a ``text`` modality (e.g. ``text_audio_attention_ravdess``,
``gated_fusion_meld``) read a transcript of each file: the caller's (``predict_file(path,
text=...)``, CLI ``--text`` / ``--transcripts``), else one from offline speech recognition
(Whisper tiny.en, `emofuse.asr`), else a `DataError` naming the file. The transcript used is
returned in `Prediction.transcript`. A checkpoint trained with dialogue context (turn windows)
sees a window of one turn at predict time: the file itself.
"""

from __future__ import annotations

import csv
import json
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch

from emofuse.checkpoint import LoadedCheckpoint, load_members
from emofuse.errors import ConfigError, DataError, NoSpeechError
from emofuse.features.augment import speed_perturb
from emofuse.featuresets import pool_vector
from emofuse.normalize import apply_standardizer, stats_from_tensors


#: `Prediction.status` values: a label was given, or why not.
STATUSES = ("ok", "no_speech", "too_short", "error")


@dataclass
class Prediction:
    """The model's answer for one file: ``status == "ok"`` with a label and probabilities, or a
    status saying why there is none ("no_speech", "too_short", "error") and a ``message``."""

    path: str | None  # None for `Predictor.predict_text`
    label: str | None
    probabilities: dict[str, float]
    modalities_used: list[str]
    explanations: dict[str, Any] = field(default_factory=dict)
    #: the text the model read (None when the model reads no text; "" when speech recognition heard no words)
    transcript: str | None = None
    #: where ``transcript`` came from: "given" (the caller) or "asr" (speech recognition); None without text
    transcript_source: str | None = None
    status: str = "ok"
    #: why there is no label (status != "ok"), naming the file; None for "ok"
    message: str | None = None
    #: non-fatal problems noticed in the input (clipping, truncation, the audio track used, ...)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @classmethod
    def failed(cls, path: str | Path | None, error: Exception) -> "Prediction":
        """The result for a file that got no label: its status comes from the error
        (`emofuse.errors.NoSpeechError` gives "no_speech"/"too_short", other errors "error")."""
        status = getattr(error, "status", "error")
        return cls(path=None if path is None else str(path), label=None, probabilities={}, modalities_used=[],
                   status=status if status in STATUSES else "error", message=str(error))

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "status": self.status, "message": self.message, "label": self.label,
                "probabilities": self.probabilities, "modalities_used": self.modalities_used,
                "transcript": self.transcript, "transcript_source": self.transcript_source,
                "warnings": self.warnings, "explanations": self.explanations}


def demo_checkpoint_dir() -> Path:
    """The small model trained by this project that ships with the package."""
    return Path(str(resources.files("emofuse") / "assets" / "demo_model"))


def sample_clips() -> list[Path]:
    """The sample clips shipped with the package (see their ATTRIBUTION.md)."""
    folder = Path(str(resources.files("emofuse") / "assets" / "samples"))
    return sorted(p for p in folder.iterdir() if p.suffix in (".flac", ".wav"))


def feature_spec(names: list[str], configs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """How one modality's features are recorded in a checkpoint."""
    return {"names": list(names), "configs": {n: configs.get(n, {}) for n in names}}


def load_transcripts(path: str | Path) -> dict[str, str]:
    """File -> transcript mapping from a ``.json`` object (``{"clip.wav": "text", ...}``) or a
    ``.csv`` with columns ``file`` and ``text``. Errors name the mapping file and the problem."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "transcripts file not found")
    suffix = path.suffix.lower()
    try:
        content = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(path, f"cannot read transcripts file: {exc}") from None
    pairs: list[tuple[str, Any, str]] = []  # (file, text, where)
    if suffix == ".json":
        try:
            data = json.loads(content)
        except json.JSONDecodeError as exc:
            raise DataError(path, f"transcripts file is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise DataError(path, 'transcripts JSON must be an object {"file": "transcript", ...}, '
                                  f"got {type(data).__name__}")
        pairs = [(str(k), v, f"entry {k!r}") for k, v in data.items()]
    elif suffix == ".csv":
        reader = csv.DictReader(content.splitlines())
        columns = [c.strip() for c in (reader.fieldnames or [])]
        if "file" not in columns or "text" not in columns:
            raise DataError(path, f"transcripts CSV needs the columns 'file' and 'text'; found {columns}")
        for row_number, row in enumerate(reader, start=2):
            row = {(k or "").strip(): v for k, v in row.items()}
            pairs.append(((row.get("file") or "").strip(), row.get("text"), f"line {row_number}"))
    else:
        raise DataError(path, f"transcripts must be a .json or .csv file, not {suffix or 'a file without extension'}")
    mapping: dict[str, str] = {}
    for name, text, where in pairs:
        if not name:
            raise DataError(path, f"{where}: empty file name")
        if not isinstance(text, str) or not text.strip():
            raise DataError(path, f"{where}: the transcript of {name} is empty or not a string")
        if name in mapping and mapping[name] != text.strip():
            raise DataError(path, f"{where}: {name} has two different transcripts")
        mapping[name] = text.strip()
    if not mapping:
        raise DataError(path, "transcripts file holds no transcripts")
    return mapping


def match_transcripts(mapping: dict[str, str], files: list[str | Path],
                      source: str | Path | None = None) -> dict[str, str]:
    """The transcript of each file in ``files`` that ``mapping`` names, keyed by the file as given.

    A mapping key matches a file when it is the file as given, the same path (relative keys are
    resolved from the current folder), or the file's name alone (when no other key is a path to
    it). Files without an entry are left out (they fall back to speech recognition)."""
    by_path = {str(Path(k).expanduser().resolve()): v for k, v in mapping.items()}
    out: dict[str, str] = {}
    by_name: dict[str, list[str]] = {}  # file name -> input files matched by their name alone
    for f in files:
        key = str(f)
        resolved = str(Path(f).expanduser().resolve())
        if key in mapping:
            out[key] = mapping[key]
        elif resolved in by_path:
            out[key] = by_path[resolved]
        elif Path(f).name in mapping:
            out[key] = mapping[Path(f).name]
            by_name.setdefault(Path(f).name, []).append(key)
    clashes = sorted(n for n, matched in by_name.items() if len(set(matched)) > 1)
    if clashes:
        raise DataError(source, f"the file names {clashes} match several input files: key the transcripts by path")
    return out


def _combine(arrays: list[np.ndarray], spec: dict[str, Any]) -> np.ndarray:
    """One modality's input from its features: a single unpooled feature as it is, otherwise the
    per-clip vectors (`pool_vector`) concatenated, as `FeatureStore.modality` builds them."""
    if len(arrays) == 1 and not spec.get("pooled"):
        return arrays[0].astype(np.float32)
    return np.concatenate([pool_vector(a) for a in arrays])[None, :]


class Predictor:
    """Loads a checkpoint once and predicts for many files (audio; video files give their audio).

    Args:
        checkpoint: checkpoint folder (default: the shipped demo model), a loaded checkpoint, or a
            list of them: a **seed ensemble**, e.g. one recipe trained with several seeds (a folder
            written by ``emofuse train --seeds 0,1,2`` holds ``ensemble.json`` and stands for its
            members). Members must share labels, features and input sizes; each applies its own
            feature standardisation, and the prediction averages their class probabilities (and
            modality weights, when every member reports them).
        asr: transcribe files with Whisper tiny.en when a model that reads text gets no transcript
            (False: such files are an error).
        cache_dir: feature cache root for text features (None: `emofuse.paths.cache_root()`).
        max_duration: refuse files longer than this many seconds (None: ``$EMOFUSE_MAX_DURATION``,
            else `emofuse.audio.DEFAULT_MAX_DURATION`).
        audio_track: the audio track to use in files with several, from 1 (None: the one with the
            most speech; the track used is named in `Prediction.warnings`).
        min_speech: seconds of detected speech a file needs for a label (None:
            `emofuse.vad.MIN_SPEECH_SECONDS`; 0 turns the speech check off).
    """

    def __init__(self, checkpoint: str | Path | LoadedCheckpoint | Sequence[str | Path | LoadedCheckpoint] | None = None,
                 *, asr: bool = True, cache_dir: str | Path | None = None, max_duration: float | None = None,
                 audio_track: int | None = None, min_speech: float | None = None) -> None:
        from emofuse.audio import max_duration_limit
        from emofuse.vad import MIN_SPEECH_SECONDS

        if audio_track is not None and (isinstance(audio_track, bool) or not isinstance(audio_track, int)
                                        or audio_track < 1):
            raise ConfigError(f"the audio track is a number from 1, got {audio_track!r}")
        self.max_duration = max_duration_limit(max_duration)
        self.audio_track = audio_track
        self.min_speech = MIN_SPEECH_SECONDS if min_speech is None else float(min_speech)
        if not self.min_speech >= 0:  # NaN too
            raise ConfigError(f"the minimum speech is a number of seconds >= 0, got {min_speech!r}")
        sources = list(checkpoint) if isinstance(checkpoint, (list, tuple)) else [checkpoint]
        self.members = load_members([demo_checkpoint_dir() if c is None else c for c in sources])
        self.ckpt = self.members[0]
        self._stats = [stats_from_tensors(m.extras) for m in self.members]
        self.stats = self._stats[0]
        self.asr = asr
        self.cache_dir = cache_dir
        self._extractors: dict[str, Any] = {}
        self._transcriber: Any = None

    @property
    def labels(self) -> list[str]:
        return self.ckpt.labels

    @property
    def reads_text(self) -> bool:
        """Whether the model has a text input (and so needs a transcript of each file)."""
        return "text" in self.ckpt.model.input_dims and "text" in self.ckpt.features

    def transcribe(self, path: str | Path, wave: np.ndarray | None = None) -> str:
        """Whisper tiny.en transcript of a file (the model is loaded once, on first use; transcripts
        are cached on disk by file content, see `emofuse.asr.cached_transcript`).

        Raises:
            DataError: naming the file, when speech recognition is not installed.
        """
        from emofuse.asr import Transcriber, asr_unavailable_reason, cached_transcript

        reason = asr_unavailable_reason()
        if reason is not None:
            raise DataError(path, f"{self._needs_transcript()}; automatic speech recognition is unavailable "
                                  f"({reason})")
        if self._transcriber is None:
            self._transcriber = Transcriber()

        def load() -> np.ndarray:
            from emofuse.audio import load_audio

            return load_audio(path) if wave is None else wave

        return cached_transcript(path, self._transcriber, load, self.cache_dir)

    def _needs_transcript(self) -> str:
        names = ", ".join(self.ckpt.features["text"].get("names", []))
        return (f"this model reads text ({names}) and needs a transcript: pass text=... to predict_file, "
                "or --text / --transcripts to 'emofuse predict'")

    def _extractor(self, name: str, cfg: dict[str, Any]):
        from emofuse.features import get_extractor

        if name not in self._extractors:
            self._extractors[name] = get_extractor(name, **cfg)
        return self._extractors[name]

    def _audio_features(self, wave: np.ndarray, spec: dict[str, Any]) -> np.ndarray:
        return _combine([self._extractor(n, spec["configs"].get(n, {}))(wave, 16000) for n in spec["names"]], spec)

    def _text_features(self, path: Path, text: str, spec: dict[str, Any]) -> np.ndarray:
        """Features of a transcript, through the text feature cache (keyed by the text). A
        ``dialogue_window`` checkpoint gets a window of one turn: this utterance's own vector."""
        from emofuse.features import extract_text_features

        return _combine([extract_text_features([text], self._extractor(n, spec["configs"].get(n, {})), self.cache_dir,
                                               ids=[str(path)], progress=False)[0] for n in spec["names"]], spec)

    def prepare_inputs(self, path: str | Path, face: np.ndarray | None = None,
                       text: str | None = None) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Model inputs and masks (batch of one) for a file. Modalities that cannot come from the
        file (e.g. action units) are taken from the arguments or marked absent, which every
        emofuse model accepts. A text modality reads ``text``, else the file's ASR transcript."""
        inputs, masks, _, _ = self._prepare(Path(path), face, text)
        return inputs, masks

    def _prepare(self, path: Path | None, face: np.ndarray | None, text: str | None
                 ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], str | None, str | None]:
        """`prepare_inputs` (for the first member) plus the transcript read and its source."""
        feats, transcript, source, _ = self._features(path, face, text)
        inputs, masks = self._tensors(feats, self.stats, path)
        return inputs, masks, transcript, source

    def _features(self, path: Path | None, face: np.ndarray | None, text: str | None, audio_track: int | None = None
                  ) -> tuple[dict[str, list[np.ndarray | None]], str | None, str | None, dict[float, np.ndarray]]:
        """Raw (unstandardised) features per modality, the transcript the model read, its source
        ("given"/"asr") and, for test-time augmentation (`LoadedCheckpoint.test_time_speeds`), the
        audio features of each speed-perturbed copy by factor. ``path=None`` is a text-only input:
        every modality but text (and a given face) is absent. The file's audio, when read, must hold
        ``min_speech`` seconds of speech (`emofuse.vad.check_speech`), else `NoSpeechError`."""
        from emofuse.audio import check_file

        views: dict[float, np.ndarray] = {}
        if path is not None:
            check_file(path)
        if (text is not None or path is None) and (not isinstance(text, str) or not text.strip()):
            raise DataError(path, "the given transcript is empty")
        model = self.ckpt.model
        wave: np.ndarray | None = None

        def waveform() -> np.ndarray:
            nonlocal wave
            if wave is None:
                from emofuse.audio import load_audio
                from emofuse.vad import check_speech

                wave = load_audio(path, max_duration=self.max_duration,
                                  audio_track=self.audio_track if audio_track is None else audio_track)
                if self.min_speech > 0:
                    check_speech(wave, 16000, path, self.min_speech)
            return wave

        transcript: str | None = None
        source: str | None = None
        feats: dict[str, list[np.ndarray | None]] = {}
        for modality, spec in self.ckpt.features.items():
            if modality == "audio" and path is None:
                feats[modality] = [None]
            elif modality == "audio":
                feats[modality] = [self._audio_features(waveform(), spec)]
                for speed in sorted({f for member in self.members for f in member.test_time_speeds}):
                    views[speed] = self._audio_features(speed_perturb(waveform(), speed, 16000), spec)
            elif modality == "text" and self.reads_text:
                if text is not None:
                    transcript, source = text.strip(), "given"
                elif self.asr and path is not None:
                    transcript, source = self.transcribe(path, waveform()), "asr"
                else:
                    raise DataError(path, f"{self._needs_transcript()} (speech recognition is switched off)")
                if transcript:
                    feats[modality] = [self._text_features(path, transcript, spec)]
                elif set(model.input_dims) <= {"text", "meta"}:
                    raise DataError(path, f"speech recognition heard no words, and {self._needs_transcript()}")
                else:  # no words heard: text is absent, the other modalities still count
                    feats[modality] = [None]
            elif modality == "face" and face is not None:
                feats[modality] = [np.asarray(face, dtype=np.float32).reshape(1, -1)]
            else:
                if modality == "face" and path is not None:  # never computed from a file, even a video
                    from emofuse.audio import AudioWarning

                    warnings.warn(f"{path}: the face was not used: the model reads a face ({', '.join(spec.get('names', []))}) "
                                  "but emofuse cannot compute face features from a file yet (even a video); "
                                  "predicted from the other modalities (pass face= to use one)", AudioWarning,
                                  stacklevel=2)
                feats[modality] = [None]
        if not any(feats[m][0] is not None for m in feats if m in model.input_dims):
            what = "this file" if path is not None else "a text alone"
            raise DataError(path, f"none of the model's modalities ({', '.join(model.input_dims)}) can be computed from {what}")
        return feats, transcript, source, views

    def _tensors(self, feats: dict[str, list[np.ndarray | None]], stats, path: Path | None
                 ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Standardised model inputs and presence masks (batch of one) from raw per-modality features."""
        model = self.ckpt.model
        feats = apply_standardizer(feats, stats)
        inputs, masks = {}, {}
        for modality, dim in model.input_dims.items():
            arr = feats.get(modality, [None])[0]
            if arr is None:
                inputs[modality] = torch.zeros(1, 1, dim)
                masks[modality] = torch.zeros(1, 1, dtype=torch.bool)
            else:
                if arr.shape[-1] != dim:
                    raise DataError(path, f"{modality} features have dimension {arr.shape[-1]}, the model expects {dim}")
                inputs[modality] = torch.from_numpy(arr).unsqueeze(0)
                masks[modality] = torch.ones(1, arr.shape[0], dtype=torch.bool)
        return inputs, masks

    def predict_file(self, path: str | Path, face: np.ndarray | None = None, text: str | None = None, *,
                     audio_track: int | None = None) -> Prediction:
        """Predict one file (see `prepare_inputs` for modalities the file cannot provide).

        ``text`` is the file's transcript for a model that reads text; without it such a model
        transcribes the file (Whisper tiny.en). A model without text input ignores ``text`` with a
        `UserWarning`. ``audio_track`` (from 1) overrides the Predictor's for this file.

        A file with too little speech gets a label-less result, not an exception: ``status``
        "no_speech" or "too_short" and a ``message`` (see `emofuse.vad.check_speech`). Problems
        noticed while decoding (`emofuse.audio.AudioWarning`: clipping, out-of-range samples,
        truncation, the audio track used, ...) are listed in ``warnings``.

        Raises:
            DataError: naming the file, when it cannot be used at all (missing, not audio, ...).
        """
        from emofuse.audio import AudioWarning

        model = self.ckpt.model
        if text is not None and not self.reads_text:
            warnings.warn(f"{path}: the model reads no text ({', '.join(model.input_dims)}); the transcript is ignored",
                          UserWarning, stacklevel=2)
            text = None
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", AudioWarning)
            try:
                feats, transcript, source, views = self._features(Path(path), face, text, audio_track)
            except NoSpeechError as exc:
                result = Prediction.failed(path, exc)
            else:
                result = self._predict(str(path), feats, transcript, source, views)
        for w in caught:  # audio problems go into the result; any other warning is passed on
            if issubclass(w.category, AudioWarning):
                result.warnings.append(str(w.message))
            else:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)
        return result

    def predict_text(self, text: str) -> Prediction:
        """Predict from a transcript alone (no recording): every other modality is absent, so this
        works for models that read text; ``path`` of the result is ``None``. A checkpoint trained
        with dialogue context sees a window of one turn."""
        if not self.reads_text:
            raise ConfigError(f"the model reads no text ({', '.join(self.ckpt.model.input_dims)}): "
                              "predict_text needs a checkpoint with a text modality")
        feats, transcript, source, views = self._features(None, None, text)
        return self._predict(None, feats, transcript, source, views)

    def _predict(self, path: str | None, feats: dict[str, list[np.ndarray | None]], transcript: str | None,
                 source: str | None, views: dict[float, np.ndarray]) -> Prediction:
        """Class probabilities averaged over members and, per member, over the original input and
        its test-time speed-perturbed audio copies ``views``; modality weights likewise."""
        probs, weights = [], []
        for member, stats in zip(self.members, self._stats):
            variants = [feats] + [{**feats, "audio": [views[f]]} for f in member.test_time_speeds if f in views]
            member_probs, member_weights = [], []
            for variant in variants:
                inputs, masks = self._tensors(variant, stats, None if path is None else Path(path))
                with torch.no_grad():
                    out = member.model(inputs, masks)
                member_probs.append(torch.softmax(out.logits.float(), dim=-1)[0].numpy())
                if "modality_weights" in out.explanations:
                    member_weights.append(out.explanations["modality_weights"][0].float().numpy())
            probs.append(np.mean(member_probs, axis=0))
            if len(member_weights) == len(variants):
                weights.append(np.mean(member_weights, axis=0))
        mean = np.mean(probs, axis=0)
        explanations: dict[str, Any] = {}
        if weights and len(weights) == len(self.members):
            explanations["modality_weights"] = np.mean(weights, axis=0).tolist()
        if len(self.members) > 1:
            explanations["ensemble_members"] = len(self.members)
        if views:
            explanations["test_time_augment"] = sorted(views)
        return Prediction(path=path, label=self.labels[int(mean.argmax())],
                          probabilities={lab: float(p) for lab, p in zip(self.labels, mean)},
                          modalities_used=[m for m in self.ckpt.model.input_dims if feats.get(m, [None])[0] is not None],
                          explanations=explanations, transcript=transcript, transcript_source=source)

    def predict_files(self, paths: Sequence[str | Path],
                      texts: Mapping[str, str] | Sequence[str | None] | None = None) -> list[Prediction]:
        """Predict each file of a batch on its own: one `Prediction` per path, in order. A file that
        cannot be used (`DataError`: unreadable, no speech, too short, ...) gets a label-less result
        (`Prediction.failed`, ``ok`` False, a ``status`` and a ``message`` naming it) and the others
        still get theirs. ``texts``: transcripts keyed by the path as given, or one per path (None: none).
        """
        if texts is None:
            given: list[str | None] = [None] * len(paths)
        elif isinstance(texts, Mapping):
            given = [texts.get(str(p)) for p in paths]
        else:
            given = list(texts)
            if len(given) != len(paths):
                raise ConfigError(f"predict_files got {len(paths)} files but {len(given)} transcripts")
        results = []
        for path, text in zip(paths, given):
            try:
                results.append(self.predict_file(path, text=text))
            except DataError as exc:
                results.append(Prediction.failed(path, exc))
        return results
