"""Audio-visual prediction: an audio checkpoint and a face-expression encoder, joined by
reliability-weighted late fusion (`emofuse.inference.late_fusion`).

The shipped audio-visual model (``emofuse/assets/av_model/config.json``) names its parts: the audio
checkpoint (the shipped demo model), how faces are read from the video (frame sampler, detector,
encoder) and each modality's temperature, fitted on that modality's validation data only (see the
file's ``calibration`` record). `AudioVisualPredictor` runs both on one file:

* the audio part is a `Predictor` (speech check, test-time views, ensembles as usual); a file without
  speech has the audio absent (availability 0) instead of failing, so the face alone can still answer;
* the face part samples frames, keeps one person, crops and encodes each frame with a face
  (`emofuse.faces.pipeline.analyse_video`); frames without a face are left out (never invented) and
  the face's availability is the share of sampled frames with a face;
* the clip's face probabilities are the mean of the calibrated per-frame probabilities, mapped onto
  the audio classes (`map_face_to_audio`), and mixed with the audio probabilities by the
  reliability weights.

`Prediction.explanations` carries ``modality_weights`` (ordered as ``modalities``), ``face_share``,
``face_frames``, each modality's own probabilities, and, with ``explain=True``, the per-frame
expression probabilities; `save_face_explanation` writes the crops, the per-frame table and the weight plot.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from emofuse.errors import ConfigError, DataError
from emofuse.inference.late_fusion import FACE_TO_AUDIO, late_fusion, softmax
from emofuse.inference.predictor import Prediction, Predictor

AV_FORMAT = "emofuse-av-late-fusion"


def shipped_av_dir() -> Path:
    """The folder of the shipped audio-visual model (its ``config.json`` and ``MODEL_CARD.md``)."""
    return Path(str(resources.files("emofuse") / "assets" / "av_model"))


def load_av_config(folder: str | Path | None = None) -> dict[str, Any]:
    """An audio-visual model's ``config.json``, checked field by field (`DataError` naming the file)."""
    path = (Path(folder) if folder is not None else shipped_av_dir()) / "config.json"
    from emofuse.inference.checkpoint import read_json

    config = read_json(path, "the audio-visual model config")
    if not isinstance(config, dict) or config.get("format") != AV_FORMAT:
        raise DataError(path, f"not an audio-visual model config (format {AV_FORMAT!r} expected)")
    for field, kind in (("audio", dict), ("face", dict)):
        if not isinstance(config.get(field), kind):
            raise DataError(path, f"field {field!r} must be an object")
    for part in ("audio", "face"):
        t = config[part].get("temperature", 1.0)
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not 0 < t < 100:
            raise DataError(path, f"{part}.temperature must be a number in (0, 100), got {t!r}")
    mapping = config.get("class_map", FACE_TO_AUDIO)
    if not isinstance(mapping, dict) or not all(isinstance(v, list | tuple) for v in mapping.values()):
        raise DataError(path, "class_map must map each face class to a list of audio classes")
    config["_folder"] = str(path.parent)
    return config


def resolve_audio_checkpoint(config: Mapping[str, Any]) -> Path:
    """The audio checkpoint folder a config names: ``"demo_model"`` (shipped) or a path, relative to the config."""
    from emofuse.inference.predictor import demo_checkpoint_dir

    name = str(config["audio"].get("checkpoint", "demo_model"))
    if name == "demo_model":
        return demo_checkpoint_dir()
    path = Path(name)
    return path if path.is_absolute() else Path(config["_folder"]) / path


class AudioVisualPredictor:
    """Predicts files with audio and face together (see the module docstring).

    Args:
        model: an audio-visual model folder (default: the shipped one).
        audio_checkpoint: replaces the model's audio checkpoint (a folder or a list: a seed ensemble);
            its temperature is then 1 unless ``audio_temperature`` is given.
        face: settings replacing the model's face settings, e.g. ``{"detector": "mtcnn"}``.
        use_face: False predicts from the audio alone (the face is not read).
        **predictor_options: passed to the audio `Predictor` (``asr``, ``max_duration``, ...).
    """

    def __init__(self, model: str | Path | None = None, *, audio_checkpoint: Any = None,
                 audio_temperature: float | None = None, face: Mapping[str, Any] | None = None,
                 use_face: bool = True, audio_predictor: Predictor | None = None, custom_audio: bool = False,
                 **predictor_options: Any) -> None:
        self.config = load_av_config(model)
        checkpoint = audio_checkpoint if audio_checkpoint is not None else resolve_audio_checkpoint(self.config)
        self.audio = audio_predictor if audio_predictor is not None else Predictor(checkpoint, **predictor_options)
        custom_audio = custom_audio or audio_checkpoint is not None
        default_t = 1.0 if custom_audio else float(self.config["audio"].get("temperature", 1.0))
        self.audio_temperature = float(audio_temperature) if audio_temperature is not None else default_t
        settings = {**self.config["face"], **dict(face or {})}
        unknown = sorted(set(settings) - {"sampler", "detector", "encoder", "temperature", "margin"})
        if unknown:
            raise ConfigError(f"face settings: unknown field(s) {', '.join(unknown)}; "
                              "known: sampler, detector, encoder, temperature, margin")
        self.face_settings = settings
        self.face_temperature = float(settings.get("temperature", 1.0))
        self.class_map = {k: tuple(v) for k, v in self.config.get("class_map", FACE_TO_AUDIO).items()}
        self.use_face = use_face
        self._face_parts: dict[str, Any] | None = None
        self._worker: Any = None

    @property
    def labels(self) -> list[str]:
        return self.audio.labels

    def _face_worker(self) -> Any:
        """One background thread for the face part, so it runs beside the audio part (both release the GIL
        in FFmpeg, PyTorch, ONNX Runtime and CTranslate2). Results are the same as run one after the other."""
        if self._worker is None:
            from concurrent.futures import ThreadPoolExecutor

            self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="emofuse-face")
        return self._worker

    def face_parts(self) -> dict[str, Any]:
        """The sampler, detector and encoder, built once."""
        if self._face_parts is None:
            from emofuse.faces.detectors import get_detector
            from emofuse.faces.encoders import get_face_encoder
            from emofuse.media.sampling import get_sampler

            s = self.face_settings
            detector = s.get("detector", "haar")
            encoder = s.get("encoder", "fer_cnn")
            self._face_parts = {
                "sampler": get_sampler(s.get("sampler", "2fps_8")),
                "detector": get_detector(**detector) if isinstance(detector, dict) else get_detector(detector),
                "encoder": get_face_encoder(encoder),
                "margin": float(s.get("margin", 0.2)),
            }
        return self._face_parts

    def read_face(self, path: Path) -> Any | None:
        """The file's face sequence (`emofuse.faces.pipeline.FaceSequence`), or None when the file has
        no video track (an audio file)."""
        from emofuse.faces.pipeline import analyse_video
        from emofuse.media.video import NoVideoTrackError

        if not self.use_face:
            return None
        parts = self.face_parts()
        try:
            return analyse_video(path, parts["sampler"], parts["detector"], parts["encoder"], margin=parts["margin"])
        except NoVideoTrackError:  # an audio file (found by the probe: the file is opened once, not twice)
            return None

    def predict_file(self, path: str | Path, text: str | None = None, *, explain: bool = False,
                     explain_dir: str | Path | None = None) -> Prediction:
        """One file's fused prediction; label-less (``no_speech``) only when it has neither speech nor a
        face. ``explain_dir``: also save the crops, per-frame table and weight plot there
        (`emofuse.inference.av_explain.save_face_explanation`; the files are listed in
        ``explanations["files"]``)."""
        path = Path(path)
        face_job = self._face_worker().submit(self.read_face, path)  # the face on the other core meanwhile
        try:
            audio, no_track = self._audio_part(path, text)
        finally:
            face_job.exception()  # wait for it: no face work outlives the call (its error is raised below)
        if audio.status == "error" and not no_track:
            return audio
        faces = face_job.result()
        if no_track and (faces is None or not faces.mask.any()):
            return Prediction.failed(path, DataError(path, "no audio track in file, and no face was found in "
                                                           "its sampled frames"))
        result = self._fuse(path, audio, faces, explain or explain_dir is not None)
        if explain_dir is not None:
            from emofuse.inference.av_explain import save_face_explanation

            result.explanations["files"] = [str(f) for f in save_face_explanation(result, faces, explain_dir)]
        return result

    def _fuse(self, path: Path, audio: Prediction, faces: Any | None, explain: bool) -> Prediction:
        labels = self.labels
        audio_probs = None
        if audio.ok:
            p = np.array([audio.probabilities[lab] for lab in labels])
            audio_probs = softmax(np.log(np.clip(p, 1e-12, 1.0)), self.audio_temperature)
        face_share = None if faces is None else float(faces.face_share)
        face_probs = None
        if faces is not None and faces.mask.any():
            face_probs = softmax(faces.logits[faces.mask], self.face_temperature).mean(axis=0)
        if audio_probs is None and face_probs is None:
            return audio  # no speech and no face: the audio part's label-less result says why
        try:
            fused, weights, probs = late_fusion(audio_probs, face_probs, face_share or 0.0, labels,
                                                faces.classes if faces is not None else (), self.class_map)
        except ValueError:  # no speech, and no face class maps to an audio class
            return audio
        explanations: dict[str, Any] = {
            "modalities": list(weights), "modality_weights": [weights[m] for m in weights],
            "face_share": face_share, "face_frames": None if faces is None else int(faces.mask.size),
            "audio_probabilities": None if "audio" not in probs else dict(zip(labels, probs["audio"].tolist())),
            "face_probabilities": None if face_probs is None else dict(zip(faces.classes, face_probs.tolist())),
            "face_on_audio_classes": None if "face" not in probs else dict(zip(labels, probs["face"].tolist())),
        }
        if explain and faces is not None:
            explanations["face_per_frame"] = per_frame_table(faces, self.face_temperature)
        notes = list(audio.warnings)
        if not audio.ok:
            notes.append(f"no usable speech ({audio.message}); predicted from the face alone")
        if faces is not None and not faces.mask.any():
            notes.append(f"{path}: no face found in any of the {faces.mask.size} sampled frames; "
                         "predicted from the audio alone")
        return Prediction(path=str(path), label=labels[int(fused.argmax())],
                          probabilities={lab: float(v) for lab, v in zip(labels, fused)},
                          modalities_used=[m for m in weights if weights[m] > 0], explanations=explanations,
                          transcript=audio.transcript, transcript_source=audio.transcript_source, warnings=notes)

    def _audio_part(self, path: Path, text: str | None) -> tuple[Prediction, bool]:
        """``(the audio model's prediction, whether the file has no audio track)``: for a video without an
        audio track, a label-less result instead of an error (the face may still answer)."""
        try:
            return self.audio.predict_file(path, text=text), False
        except DataError as exc:
            from emofuse.media.video import probe_video

            if probe_video(path).has_audio:
                raise
            return Prediction.failed(path, exc), True

    def predict_files(self, paths: list[str | Path], texts: Mapping[str, str] | None = None,
                      explain_root: str | Path | None = None) -> list[Prediction]:
        """Each file on its own; a file that cannot be used gets a label-less result naming it.
        ``explain_root``: each file's explanation goes to ``explain_root/<file name>/``."""
        results = []
        for path in paths:
            folder = None if explain_root is None else Path(explain_root) / Path(path).name
            try:
                results.append(self.predict_file(path, (texts or {}).get(str(path)), explain_dir=folder))
            except DataError as exc:
                results.append(Prediction.failed(path, exc))
        return results


def per_frame_table(faces: Any, temperature: float) -> list[dict[str, Any]]:
    """One row per sampled frame: time, whether a face was found, its box and expression probabilities."""
    rows = []
    for i, t in enumerate(faces.times):
        row: dict[str, Any] = {"time_s": round(float(t), 3), "face": bool(faces.mask[i])}
        if faces.mask[i]:
            p = softmax(faces.logits[i], temperature)
            row["box"] = [round(float(v), 1) for v in faces.boxes[i]]
            row["probabilities"] = {c: round(float(v), 4) for c, v in zip(faces.classes, p)}
        rows.append(row)
    return rows
