"""One loaded model as the service uses it: the audio `Predictor` (and, for video, the
`AudioVisualPredictor` that adds a face, as ``emofuse predict clip.mp4`` does), the duration check
made from headers before decoding, and a prediction turned into the API's JSON body.

An `Engine` is used by one worker thread at a time (`emofuse.service.gate.Gate`).
"""

from __future__ import annotations

import base64
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emofuse.errors import ConfigError, DataError
from emofuse.service.errors import STATUS_CODES, ServiceError
from emofuse.service.sniff import MediaType

MODEL_CARD = "MODEL_CARD.md"


@dataclass
class EngineOptions:
    """What the engine loads: ``model`` checkpoint folders (None: the shipped demo model), whether video goes
    through the audio-visual predictor (``use_face``; its model folder ``av_model``, None: the shipped one),
    the duration limit in seconds, and the predictor's speech and threshold options."""

    model: list[str] | None = None
    use_face: bool = True
    av_model: str | None = None
    #: face settings replacing the audio-visual model's, e.g. ``{"detector": "haar", "sampler": "2fps_8"}``
    face: dict[str, Any] | None = None
    max_duration: float = 600.0
    min_speech: float | None = None
    threshold: float | None = None


class Engine:
    """A warm model (see the module docstring)."""

    def __init__(self, options: EngineOptions) -> None:
        from emofuse.inference.predictor import Predictor

        self.options = options
        self.predictor = Predictor(options.model, asr=True, max_duration=options.max_duration,
                                   min_speech=options.min_speech, threshold=options.threshold)
        self.av: Any = None
        if options.use_face and not self.predictor.reads_video:
            from emofuse.inference.audio_visual import AudioVisualPredictor

            self.av = AudioVisualPredictor(options.av_model, audio_predictor=self.predictor,
                                           custom_audio=bool(options.model), face=options.face)

    def warm_up(self) -> None:
        """Predict a shipped sample clip once (the first prediction loads the feature extractors), and build
        the face detector and encoder, so that the first request is as fast as the others."""
        from emofuse.inference.predictor import sample_clips

        if "audio" in self.predictor.ckpt.model.input_dims and not self.predictor.reads_text:
            self.predictor.predict_file(sample_clips()[0])
        if self.av is not None:
            self.av.face_parts()

    # ------------------------------------------------------------------ description
    @property
    def labels(self) -> list[str]:
        return self.predictor.labels

    @property
    def reads_faces(self) -> bool:
        """Whether a video upload's face is used (audio-visual predictor, or a model reading face frames)."""
        return self.av is not None or self.predictor.reads_video

    def model_folder(self) -> Path:
        from emofuse.inference.predictor import demo_checkpoint_dir

        return Path(self.options.model[0]) if self.options.model else demo_checkpoint_dir()

    def info(self) -> dict[str, Any]:
        """The body of ``GET /v1/models``: labels, modalities, thresholds and the model card."""
        ckpt = self.predictor.ckpt
        card = self.model_folder() / MODEL_CARD
        meta = ckpt.meta or {}
        return {
            "model": {"folder": self.model_folder().name, "recipe": meta.get("recipe"),
                      "description": meta.get("description"), "labels": self.labels,
                      "modalities": list(ckpt.model.input_dims), "ensemble_members": len(self.predictor.members),
                      "threshold": self.predictor.threshold, "reads_text": self.predictor.reads_text,
                      "reads_faces": self.reads_faces},
            "audio_visual": None if self.av is None else {
                "face": {k: v for k, v in self.av.face_settings.items()},
                "fusion": self.av.config.get("fusion"), "modalities": ["audio", "face"]},
            "model_card": card.read_text(encoding="utf-8", errors="replace") if card.is_file() else None,
        }

    # ------------------------------------------------------------------ checks
    def check_duration(self, path: Path, media: MediaType, name: str, limit: float) -> float | None:
        """The duration the file's header declares (None when it declares none), refused (422 ``too_long``)
        above ``limit`` seconds before anything is decoded."""
        seconds = declared_seconds(path, media)
        if seconds is not None and seconds > limit:
            raise ServiceError(422, "too_long", f"{name}: the file is {seconds:.1f} s long, more than the limit "
                               f"of {limit:g} s (refused from its header, before decoding)", "file")
        return seconds

    # ------------------------------------------------------------------ prediction
    def predict(self, path: Path, media: MediaType, name: str, text: str | None, explain: bool,
                workdir: Path) -> dict[str, Any]:
        """The JSON body for one upload (422 with the predictor's reason when it gets no label)."""
        notes: list[str] = []
        if text is not None and not self.predictor.reads_text:
            notes.append("the model reads no text; the text field was ignored")
            text = None
        try:
            if self.av is not None and media.kind == "video" and _has_video(path):
                folder = workdir / "explain" if explain else None
                pred = self.av.predict_file(path, text=text, explain_dir=folder)
                crops = None if folder is None else folder / "face_crops.png"
            else:
                pred, crops = self.predictor.predict_file(path, text=text), None
        except (DataError, ConfigError) as exc:
            raise ServiceError(422, "invalid_media", _named(str(exc), path, name), "file") from None
        body = self.body(pred, path, name)
        body["warnings"] = notes + body["warnings"]
        if crops is not None and crops.is_file():
            body["face_crops_png"] = "data:image/png;base64," + base64.b64encode(crops.read_bytes()).decode()
        return body

    def predict_text(self, text: str) -> dict[str, Any]:
        """The JSON body for a text alone (422 ``text_not_read`` when the model reads no text)."""
        if not self.predictor.reads_text:
            raise ServiceError(422, "text_not_read", "the loaded model reads no text (its modalities: "
                               f"{', '.join(self.predictor.ckpt.model.input_dims)}); send a 'file' field with audio "
                               "or video", "text")
        if not text.strip():
            raise ServiceError(400, "bad_text", "the text field is empty", "text")
        try:
            pred = self.predictor.predict_text(text)
        except (DataError, ConfigError) as exc:
            raise ServiceError(422, "no_usable_input", str(exc), "text") from None
        return self.body(pred, None, "text")

    def timeline(self, path: Path, name: str, window: float, hop: float, max_duration: float) -> dict[str, Any]:
        """One prediction per window (`emofuse.inference.timeline.predict_timeline`: the audio is streamed,
        never decoded whole), refused past ``max_duration`` seconds."""
        try:
            from emofuse.inference.timeline import predict_timeline
        except ImportError:
            raise ServiceError(501, "not_available", "emotion timelines (segments=...) are not available in this "
                               "installation of emofuse", "segments") from None
        try:
            result = predict_timeline(self.predictor, path, window=window, hop=hop, vad=False,
                                      max_duration=max_duration).to_dict()
        except (DataError, ConfigError) as exc:
            raise ServiceError(422, "invalid_media", _named(str(exc), path, name), "file") from None
        result.pop("path", None)
        answered = [s for s in result["segments"] if s["label"] is not None]
        if not answered:
            raise ServiceError(422, "no_speech", f"{name}: no window of the timeline has enough speech for a label",
                               "file")
        return {"filename": name, "timeline": _renamed(result, path, name)}

    def body(self, pred: Any, path: Path | None, name: str) -> dict[str, Any]:
        """`Prediction` → the API's JSON; a label-less prediction is a 422 naming why."""
        if not pred.ok:
            code = STATUS_CODES.get(pred.status, "invalid_media")
            raise ServiceError(422, code, _named(pred.message or pred.status, path, name), "file")
        data = _renamed(pred.to_dict(), path, name)
        exp = {k: v for k, v in (data.pop("explanations") or {}).items() if k not in ("files",)}
        data.pop("path", None)
        data["filename"] = None if path is None else name
        data["modality_weights"] = self._weights(exp, pred.modalities_used)
        data["explanations"] = exp
        return data

    def _weights(self, exp: dict[str, Any], used: list[str]) -> dict[str, float] | None:
        weights = exp.get("modality_weights")
        if weights is not None:
            names = exp.get("modalities") or list(getattr(self.predictor.ckpt.model, "modalities",
                                                          self.predictor.ckpt.model.input_dims))
            return {m: float(w) for m, w in zip(names, weights)}
        return {used[0]: 1.0} if len(used) == 1 else None


def _has_video(path: Path) -> bool:
    from emofuse.media.video import has_video_track

    try:
        return has_video_track(path)
    except DataError:
        return False  # not a readable container: the audio path names the problem


def _named(text: str, path: Path | None, name: str) -> str:
    """A message with the server's temporary path replaced by the client's file name."""
    return text if path is None else text.replace(str(path), name)


def _renamed(value: Any, path: Path | None, name: str) -> Any:
    """``value`` (JSON-like) with every string's temporary path replaced by the client's file name."""
    if isinstance(value, str):
        return _named(value, path, name)
    if isinstance(value, dict):
        return {k: _renamed(v, path, name) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_renamed(v, path, name) for v in value]
    return value


def declared_seconds(path: Path, media: MediaType) -> float | None:
    """Duration from the file's header (RIFF chunk sizes, libsndfile, or the container's index);
    None when the header declares none or cannot be read (the decoder then reports the problem)."""
    try:
        if media.name == "wav":
            seconds = _riff_seconds(path)
            if seconds is not None:
                return seconds
        if media.name in ("wav", "flac", "ogg", "aiff"):
            import soundfile as sf

            info = sf.info(str(path))
            return float(info.frames) / info.samplerate if info.samplerate > 0 else None
        return _container_seconds(path)
    except Exception:  # noqa: BLE001  (an unreadable header: the decoder names the problem)
        return None


def _riff_seconds(path: Path) -> float | None:
    """Seconds the RIFF/WAVE ``data`` chunk declares (None: streaming sizes, or no fmt/data chunk)."""
    with path.open("rb") as handle:
        head = handle.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        byte_rate = None
        for _ in range(64):  # a bounded number of chunks
            header = handle.read(8)
            if len(header) < 8:
                return None
            chunk, size = struct.unpack("<4sI", header)
            if chunk == b"fmt ":
                fmt = handle.read(min(size, 16))
                if len(fmt) < 12:
                    return None
                byte_rate = struct.unpack("<I", fmt[8:12])[0]
                handle.seek(size - len(fmt) + (size & 1), 1)
            elif chunk == b"data":
                if size in (0, 0xFFFFFFFF) or not byte_rate:
                    return None
                return size / byte_rate
            else:
                handle.seek(size + (size & 1), 1)
    return None


def _container_seconds(path: Path) -> float | None:
    """The container's declared duration (PyAV, headers only)."""
    import av

    with av.open(str(path), metadata_errors="ignore") as container:
        if container.duration:
            return container.duration / 1_000_000
        spans = [float(s.duration * s.time_base) for s in container.streams if s.duration and s.time_base]
        return max(spans) if spans else None
