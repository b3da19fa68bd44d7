"""Running a trained checkpoint on media files: features → model → probabilities + explanations.

Checkpoints whose features include a ``text`` modality (e.g. ``text_audio_attention_ravdess``,
``gated_fusion_meld``) read a transcript of each file: the caller's (``predict_file(path,
text=...)``, CLI ``--text`` / ``--transcripts``), else one from offline speech recognition
(Whisper tiny.en, `emofuse.inference.asr`), else a `DataError` naming the file. The transcript used is
returned in `Prediction.transcript`. A checkpoint trained with dialogue context (turn windows)
sees a window of one turn at predict time: the file itself.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch

from emofuse.evaluation.calibration import apply_temperature
from emofuse.inference.checkpoint import LoadedCheckpoint, load_members
from emofuse.data.record import Sample
from emofuse.errors import ConfigError, DataError, NoSpeechError
from emofuse.inputs.plan import average_over_views
from emofuse.inputs.store import InputStore
from emofuse.inputs.transcripts import load_transcripts, match_transcripts  # noqa: F401  (public here too)
from emofuse.inputs.views import SpeedView


#: `Prediction.status` values: a label was given, a best guess below the checkpoint's confidence threshold
#: ("uncertain", see docs/calibration.md), or why there is no label.
STATUSES = ("ok", "uncertain", "no_speech", "too_short", "error")
#: The statuses that come with a label and probabilities.
ANSWERED = ("ok", "uncertain")


@dataclass
class Prediction:
    """The model's answer for one file: ``status == "ok"`` with a label and probabilities;
    ``"uncertain"`` when a calibrated checkpoint's ``confidence`` (its calibrated probability of the
    label) is below its ``threshold``: ``label`` is then the best guess, kept with the probabilities; or a
    status saying why there is no label ("no_speech", "too_short", "error") and a ``message``."""

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
    #: the model's calibrated probability of ``label`` (None without a label)
    confidence: float | None = None
    #: the abstention threshold applied to ``confidence`` (None: the checkpoint has none)
    threshold: float | None = None

    @property
    def ok(self) -> bool:
        """Whether there is a label (a confident one, or an "uncertain" best guess)."""
        return self.status in ANSWERED

    @property
    def uncertain(self) -> bool:
        """Whether the label is a best guess below the confidence threshold."""
        return self.status == "uncertain"

    @classmethod
    def failed(cls, path: str | Path | None, error: Exception) -> "Prediction":
        """The result for a file that got no label: its status comes from the error
        (`emofuse.errors.NoSpeechError` gives "no_speech"/"too_short", other errors "error")."""
        status = getattr(error, "status", "error")
        return cls(path=None if path is None else str(path), label=None, probabilities={}, modalities_used=[],
                   status=status if status in STATUSES else "error", message=str(error))

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "status": self.status, "message": self.message, "label": self.label,
                "uncertain": self.uncertain, "confidence": self.confidence, "threshold": self.threshold,
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
    """How one modality's features are recorded in a checkpoint (`emofuse.inputs.plan.ModalityPlan`)."""
    from emofuse.inputs.plan import ModalityPlan

    return ModalityPlan(tuple(names), configs).feature_spec()


class Predictor:
    """Loads a checkpoint once and predicts for many files (audio; a video file gives its audio, and its face
    frames to a model that reads `face_frames`; `emofuse.inference.audio_visual` adds a face to audio models).

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
            else `emofuse.media.audio.DEFAULT_MAX_DURATION`).
        audio_track: the audio track to use in files with several, from 1 (None: the one with the
            most speech; the track used is named in `Prediction.warnings`).
        min_speech: seconds of detected speech a file needs for a label (None:
            `emofuse.media.vad.MIN_SPEECH_SECONDS`; 0 turns the speech check off).
        threshold: abstention threshold replacing the checkpoint's (a probability in [0, 1]; 0 never
            abstains; None: the checkpoint's ``calibration.threshold``, or none). Each member's probabilities
            are scaled by its own calibration temperature before averaging; an ensemble's threshold is the
            mean of its members' (none unless every member has one). See docs/calibration.md.
    """

    def __init__(self, checkpoint: str | Path | LoadedCheckpoint | Sequence[str | Path | LoadedCheckpoint] | None = None,
                 *, asr: bool = True, cache_dir: str | Path | None = None, max_duration: float | None = None,
                 audio_track: int | None = None, min_speech: float | None = None,
                 threshold: float | None = None) -> None:
        from emofuse.media.audio import max_duration_limit
        from emofuse.media.vad import MIN_SPEECH_SECONDS

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
        #: how each member builds its inputs (`emofuse.inputs.plan.InputPlan`, saved in the checkpoint)
        self.plans = [m.input_plan for m in self.members]
        self.plan = self.plans[0]
        self._stats = [plan.saved_stats(m.extras) for plan, m in zip(self.plans, self.members)]
        self.stats = self._stats[0]
        self.threshold = _threshold(self.members, threshold)
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

    def transcribe(self, path: str | Path, wave: np.ndarray | None = None, *, cached: bool = True) -> str:
        """Whisper tiny.en transcript of a file (the model is loaded once, on first use; transcripts
        are cached on disk by file content, see `emofuse.inference.asr.cached_transcript`; ``cached=False``:
        ``wave`` is transcribed as it is, e.g. a waveform held in memory that ``path`` only names).

        Raises:
            DataError: naming the file, when speech recognition is not installed.
        """
        from emofuse.inference.asr import Transcriber, asr_unavailable_reason, cached_transcript

        reason = asr_unavailable_reason()
        if reason is not None:
            raise DataError(path, f"{self._needs_transcript()}; automatic speech recognition is unavailable "
                                  f"({reason})")
        if self._transcriber is None:
            self._transcriber = Transcriber()

        def load() -> np.ndarray:
            from emofuse.media.audio import load_audio

            return load_audio(path) if wave is None else wave

        if not cached and wave is not None:
            return self._transcriber(wave, 16000)
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

    def prepare_inputs(self, path: str | Path | None, face: np.ndarray | None = None, text: str | None = None, *,
                       sources: Mapping[str, Any] | None = None
                       ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Model inputs and masks (batch of one) for a file, as the first member's input plan builds
        them. Modalities that cannot come from the file (e.g. action units) are taken from ``face``
        / ``sources`` or marked absent, which every emofuse model accepts. A text modality reads
        ``text``, else the file's ASR transcript."""
        path, given = None if path is None else Path(path), _given(face, sources)
        feats = self.plan.arrays(self._input(path, given, text)[0])
        self._checked(path, given, feats)
        return self._tensors(feats, self.stats, path)

    def _input(self, path: Path | None, sources: dict[str, Any], text: str | None, audio_track: int | None = None,
               given_wave: np.ndarray | None = None) -> tuple[InputStore, dict[str, str | None]]:
        """The store of one input (`InputStore`) and the transcript it read (``{"text", "source"}``,
        filled when a text feature is computed: "given" or "asr"). ``path=None``: no recording, every
        audio feature is absent. The file's audio, when read, must hold ``min_speech`` seconds of
        speech (`emofuse.media.vad.check_speech`), else `NoSpeechError`. ``given_wave``: the recording's
        16 kHz waveform, already in memory (``path`` then only names it)."""
        from emofuse.media.audio import check_file

        if path is not None and given_wave is None:
            check_file(path)
        if (text is not None or (path is None and not sources)) and (not isinstance(text, str) or not text.strip()):
            raise DataError(path, "the given transcript is empty")
        wave: list[np.ndarray] = []
        read: dict[str, str | None] = {"text": None, "source": None}

        def waveform() -> np.ndarray:
            if not wave:
                from emofuse.media.audio import load_audio
                from emofuse.media.vad import check_speech

                wave.append(given_wave if given_wave is not None else
                            load_audio(path, max_duration=self.max_duration,
                                       audio_track=self.audio_track if audio_track is None else audio_track))
                if self.min_speech > 0:
                    check_speech(wave[0], 16000, path, self.min_speech)
            return wave[0]

        def transcript() -> str | None:
            if not self.reads_text:
                return None
            if read["source"] is None:
                if text is not None:
                    read.update(text=text.strip(), source="given")
                elif self.asr and path is not None:
                    heard = self.transcribe(path, waveform()) if given_wave is None else \
                        self.transcribe(path, waveform(), cached=False)  # a waveform in memory: no file to key a cache
                    read.update(text=heard, source="asr")
                else:
                    raise DataError(path, f"{self._needs_transcript()} (speech recognition is switched off)")
                if not read["text"] and set(self.ckpt.model.input_dims) <= {"text", "meta"}:
                    raise DataError(path, f"speech recognition heard no words, and {self._needs_transcript()}")
            return read["text"]  # "" (no words heard): the text is absent, the other modalities still count

        video = given_wave is None and path is not None and self._video_of(path)
        own = {} if path is None else {"audio": path, **({"video": path} if video else {})}
        sample = Sample(id=str(path), speaker="", dataset="", label=None, sources={**own, **sources})
        return InputStore(sample, self._plan_extractor, waveform=None if path is None else waveform,
                          transcript=transcript, cache_dir=self.cache_dir), read

    @property
    def reads_video(self) -> bool:
        """Whether one of the model's features reads a video (e.g. ``face_frames``)."""
        return any(getattr(self._plan_extractor(n), "source", None) == "video"
                   for mp in self.plan.modalities.values() for n in mp.names if n in self._known_extractors())

    @staticmethod
    def _known_extractors() -> set[str]:
        from emofuse.features import list_extractors

        return set(list_extractors(None))

    def _video_of(self, path: Path) -> bool:
        """Whether the file itself is the model's video input: the model reads video and the file has a
        video track."""
        if not self.reads_video:
            return False
        from emofuse.media.video import has_video_track

        return has_video_track(path)

    def _plan_extractor(self, name: str) -> Any:
        """Feature ``name`` with the settings the checkpoint recorded."""
        configs = next((mp.configs.get(name, {}) for mp in self.plan.modalities.values() if name in mp.names), {})
        return self._extractor(name, configs)

    def _checked(self, path: Path | None, sources: dict[str, Any], feats: dict[str, list[np.ndarray | None]]) -> None:
        """Warn when the model reads a face it was not given; refuse an input none of whose
        modalities could be computed."""
        model = self.ckpt.model
        if "face" in self.plan.modalities and path is not None and "face" not in sources and feats["face"][0] is None:
            from emofuse.media.audio import AudioWarning

            names = ", ".join(self.plan.modalities["face"].names)
            why = ("no face was found in the file's video (or it has no video track)" if self.reads_video else
                   "its face features come from a per-clip table (e.g. action units), which emofuse does not compute "
                   "from a file, even a video (models trained on face_frames read the video)")
            warnings.warn(f"{path}: the face was not used: the model reads a face ({names}) but {why}; "
                          "predicted from the other modalities (pass face= to use one)", AudioWarning, stacklevel=3)
        if not any(feats[m][0] is not None for m in feats if m in model.input_dims):
            what = "this file" if path is not None else "the given sources" if sources else "a text alone"
            raise DataError(path, f"none of the model's modalities ({', '.join(model.input_dims)}) can be computed from {what}")

    def _tensors(self, feats: dict[str, list[np.ndarray | None]], stats, path: Path | None
                 ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Standardised model inputs and presence masks (batch of one) from raw per-modality inputs,
        collated as in training (`emofuse.training.data.collate`: an absent modality is zeros, masked)."""
        from emofuse.training.data import FeatureDataset, collate

        dims = self.ckpt.model.input_dims
        feats = self.plan.standardized({m: feats.get(m, [None]) for m in dims}, stats)
        for modality, dim in dims.items():
            if feats[modality][0] is not None and feats[modality][0].shape[-1] != dim:
                raise DataError(path, f"{modality} features have dimension {feats[modality][0].shape[-1]}, "
                                      f"the model expects {dim}")
        batch = collate([FeatureDataset(feats, None, [str(path)], dims=dims)[0]])
        return batch["inputs"], batch["masks"]

    def predict_file(self, path: str | Path, face: np.ndarray | None = None, text: str | None = None, *,
                     audio_track: int | None = None, sources: Mapping[str, Any] | None = None) -> Prediction:
        """Predict one file (see `prepare_inputs` for modalities the file cannot provide).

        ``text`` is the file's transcript for a model that reads text; without it such a model
        transcribes the file (Whisper tiny.en). A model without text input ignores ``text`` with a
        `UserWarning`. ``audio_track`` (from 1) overrides the Predictor's for this file.
        ``sources`` gives further inputs by source, e.g. ``{"face": au_row, "signal": "clip.npz"}``
        (``face=`` is ``sources={"face": ...}``).

        A file with too little speech gets a label-less result, not an exception: ``status``
        "no_speech" or "too_short" and a ``message`` (see `emofuse.media.vad.check_speech`). Problems
        noticed while decoding (`emofuse.media.audio.AudioWarning`: clipping, out-of-range samples,
        truncation, the audio track used, ...) are listed in ``warnings``.

        Raises:
            DataError: naming the file, when it cannot be used at all (missing, not audio, ...).
        """
        from emofuse.media.audio import AudioWarning

        model = self.ckpt.model
        if text is not None and not self.reads_text:
            warnings.warn(f"{path}: the model reads no text ({', '.join(model.input_dims)}); the transcript is ignored",
                          UserWarning, stacklevel=2)
            text = None
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", AudioWarning)
            try:
                result = self._run(Path(path), _given(face, sources), text, audio_track)
            except NoSpeechError as exc:
                result = Prediction.failed(path, exc)
        for w in caught:  # audio problems go into the result; any other warning is passed on
            if issubclass(w.category, AudioWarning):
                result.warnings.append(str(w.message))
            else:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)
        return result

    def predict_waveform(self, wave: np.ndarray, *, name: str = "<waveform>", text: str | None = None) -> Prediction:
        """Predict a mono float32 waveform at 16 kHz held in memory (e.g. one window of a long recording,
        `emofuse.inference.timeline`) through the same input plan as `predict_file`; ``name`` stands for
        the file in the result and its messages. Too little speech gives a label-less result ("no_speech",
        "too_short"), as for a file. A text model reads ``text``, else a transcript of the waveform.

        Raises:
            DataError: naming ``name``, when ``wave`` is not a non-empty, finite 1-D array.
        """
        samples = np.asarray(wave, dtype=np.float32)
        if samples.ndim != 1 or samples.size == 0 or not np.isfinite(samples).all():
            raise DataError(name, f"expected a non-empty, finite mono waveform [N] at 16 kHz, got shape {samples.shape}")
        try:
            return self._run(Path(name), {}, None if not self.reads_text else text, given_wave=samples)
        except NoSpeechError as exc:
            return Prediction.failed(name, exc)

    def predict_text(self, text: str) -> Prediction:
        """Predict from a transcript alone (no recording): every other modality is absent, so this
        works for models that read text; ``path`` of the result is ``None``. A checkpoint trained
        with dialogue context sees a window of one turn."""
        if not self.reads_text:
            raise ConfigError(f"the model reads no text ({', '.join(self.ckpt.model.input_dims)}): "
                              "predict_text needs a checkpoint with a text modality")
        return self._run(None, {}, text)

    def predict_sources(self, sources: Mapping[str, Any], text: str | None = None) -> Prediction:
        """Predict from inputs given by source without a recording, e.g. ``{"signal": "clip.npz",
        "face": au_row}`` (and ``text``); the audio modality is absent. ``path`` of the result is None."""
        return self._run(None, _given(None, sources), text)

    def _run(self, path: Path | None, sources: dict[str, Any], text: str | None,
             audio_track: int | None = None, given_wave: np.ndarray | None = None) -> Prediction:
        """One input through the input plan: its store, the original inputs, then `_predict`."""
        store, read = self._input(path, sources, text, audio_track, given_wave)
        feats = self.plan.arrays(store)
        self._checked(path, sources, feats)
        return self._predict(path, store, feats, read)

    def _predict(self, path: Path | None, store: InputStore, feats: dict[str, list[np.ndarray | None]],
                 read: dict[str, str | None]) -> Prediction:
        """Class probabilities averaged over members and, per member, over the original input and
        the test-time views of its plan that change this input (`average_over_views`); modality
        weights likewise."""
        probs, weights, used = [], [], {}
        for member, plan, stats in zip(self.members, self.plans, self._stats):
            variants = [feats]
            for view in plan.test_views:
                arrays = plan.arrays(store, view)
                if plan.source_store(store, view).changed:  # e.g. a speed view of an input without audio repeats the original
                    variants.append(arrays)
                    used[view] = True

            def run(arrays: dict[str, list[np.ndarray | None]], member=member, stats=stats) -> dict[str, np.ndarray]:
                inputs, masks = self._tensors(arrays, stats, path)
                with torch.no_grad():
                    out = member.model(inputs, masks)
                result = {"probs": torch.softmax(out.logits.float(), dim=-1)[0].numpy()}
                if "modality_weights" in out.explanations:
                    result["weights"] = out.explanations["modality_weights"][0].float().numpy()
                return result

            averaged = average_over_views(run, variants)
            t = member.temperature  # 1 (uncalibrated): the probabilities untouched, as before calibration existed
            probs.append(averaged["probs"] if t == 1.0 else apply_temperature(averaged["probs"], t))
            if "weights" in averaged:
                weights.append(averaged["weights"])
        mean = np.mean(probs, axis=0)
        explanations: dict[str, Any] = {}
        if weights and len(weights) == len(self.members):
            explanations["modality_weights"] = np.mean(weights, axis=0).tolist()
        if len(self.members) > 1:
            explanations["ensemble_members"] = len(self.members)
        speeds = sorted(v.factor for v in used if isinstance(v, SpeedView))
        if speeds:
            explanations["test_time_augment"] = speeds
        if any(not isinstance(v, SpeedView) for v in used):
            explanations["test_views"] = [v.name for v in used]
        best = int(mean.argmax())
        uncertain = self.threshold is not None and float(mean[best]) < self.threshold
        return Prediction(path=None if path is None else str(path), label=self.labels[best],
                          status="uncertain" if uncertain else "ok", confidence=float(mean[best]),
                          threshold=self.threshold,
                          probabilities={lab: float(p) for lab, p in zip(self.labels, mean)},
                          modalities_used=[m for m in self.ckpt.model.input_dims if feats.get(m, [None])[0] is not None],
                          explanations=explanations, transcript=read["text"], transcript_source=read["source"])

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


def _threshold(members: Sequence[LoadedCheckpoint], given: float | None) -> float | None:
    """The abstention threshold: ``given`` (checked), else the members' mean (None unless all have one)."""
    if given is not None:
        if isinstance(given, bool) or not isinstance(given, (int, float)) or not 0.0 <= float(given) <= 1.0:
            raise ConfigError(f"the confidence threshold is a probability in [0, 1], got {given!r}")
        return float(given)
    found = [m.threshold for m in members]
    return None if any(t is None for t in found) else float(np.mean(found))


def _given(face: np.ndarray | None, sources: Mapping[str, Any] | None) -> dict[str, Any]:
    """The caller's inputs by source as `Sample.sources` (``face=`` is ``sources={"face": ...}``);
    the recording is the file path and the transcript ``text=``, never a source here."""
    given = dict(sources or {})
    wrong = sorted({"audio", "text"} & set(given))
    if wrong:
        raise ConfigError(f"sources {wrong}: pass the recording as the file and the transcript as text=")
    if face is not None:
        if "face" in given:
            raise ConfigError("the face is given twice (face= and sources['face'])")
        given["face"] = face
    return given
