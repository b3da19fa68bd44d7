"""Source kinds: what an extractor reads from a `Sample`, and how its cache entries are keyed.

Every extractor names one source kind (`FeatureExtractor.source`). The extraction driver
(`emofuse.features.driver.extract`) asks the kind to

* ``read`` the extractor's raw input from a sample (None: the sample lacks it, the modality is absent),
* ``key`` it for the cache (a content hash, so a copied or moved file still hits),
* ``load`` it into what ``extractor.process`` takes, and
* ``describe`` it (stored beside the features) or name it in errors (``where``).

Built-in kinds:

========  ===========================================================  ==========================
kind      reads                                                        cache key
========  ===========================================================  ==========================
audio     ``sample.sources["audio"]``: a media file, decoded to mono   SHA-256 of the file bytes
text      ``sample.sources["text"]``: a transcript string              SHA-256 of the UTF-8 text
table     ``sample.sources[extractor.column]``: a per-clip numeric     not cached (already in
          row the dataset gives (e.g. action units in ``"face"``)      memory)
meta      the sample's fields (``meta``, ``speaker``, ``dataset``)     not cached
signal    ``sample.sources["signal"]``: a ``.npz`` signal file         SHA-256 of the file bytes
          (``data`` [T, C] float, ``rate`` Hz; `read_signal_file`)
video     ``sample.sources["video"]``: a video file, passed as its     SHA-256 of the file bytes
          path (the extractor decodes the frames it samples, e.g.
          ``face_frames``)
audio_    ``sample.sources["audio"]`` decoded to mono, with the        SHA-256 of the file bytes,
sample    sample's id and speaker (`ClipAudio`; corruptions)           sample id and speaker
========  ===========================================================  ==========================

A new kind (``face_crops``, ...) is one `SourceKind` subclass registered with `register_source`,
plus the extractors that read it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import numpy as np

from emofuse.errors import DataError
from emofuse.registry import Registry


class SourceKind:
    """How the driver reads, keys and loads one kind of input (subclass and `register_source`)."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    #: Whether results are stored in the feature cache (False: cheap, computed in memory each run).
    cached: ClassVar[bool] = True
    #: Word for one input in progress bars.
    unit: ClassVar[str] = "clip"
    #: Inputs per ``extractor.process`` call unless the caller says otherwise.
    batch_size: ClassVar[int] = 8

    def read(self, sample: Any, extractor: Any) -> Any | None:
        """The raw input of ``extractor`` in ``sample`` (None when the sample lacks it)."""
        raise NotImplementedError

    def key(self, raw: Any) -> str:
        """Cache entry key of ``raw``: a content hash (`DataError` if it cannot be read)."""
        raise NotImplementedError

    def load(self, raw: Any, extractor: Any) -> Any:
        """``raw`` as ``extractor.process`` takes it (default: unchanged)."""
        return raw

    def describe(self, raw: Any) -> str:
        """What an entry was computed from, stored beside its features."""
        return str(raw)

    def where(self, raw: Any, sample: Any) -> Any:
        """What an error about ``raw`` names (a file, else the sample id)."""
        return getattr(sample, "id", None)

    def order(self, raw: Any) -> Any:
        """Sort key of the inputs to compute (equal keys keep the sample order)."""
        return 0


_SOURCES: Registry[SourceKind] = Registry("source kind", "unknown extractor source", "choose one of")


def register_source(kind: SourceKind) -> SourceKind:
    """Add a source kind under ``kind.name`` (`ValueError` for an empty or already used name)."""
    return _SOURCES.add(kind.name, kind)


def get_source(name: str) -> SourceKind:
    """The registered source kind ``name`` (`ConfigError` listing the known ones otherwise)."""
    return _SOURCES.get(name)


def list_sources() -> list[str]:
    """Registered source kinds, in registration order."""
    return _SOURCES.names()


#: (resolved path, size, mtime_ns) -> content key, so one process hashes each file once.
_KEY_MEMO: dict[tuple[str, int, int], str] = {}


def clip_key(path: str | Path) -> str:
    """SHA-256 (24 hex digits) of a file's content (DataError if it cannot be read)."""
    path = Path(path)
    try:
        resolved = path.resolve(strict=True)
        stat = resolved.stat()
        memo = (str(resolved), stat.st_size, stat.st_mtime_ns)
        if memo not in _KEY_MEMO:
            with open(resolved, "rb") as fh:
                _KEY_MEMO[memo] = hashlib.file_digest(fh, "sha256").hexdigest()[:24]
    except FileNotFoundError as exc:
        raise DataError(path, "file not found") from exc
    except OSError as exc:
        raise DataError(path, f"cannot read file ({exc.strerror or exc})") from exc
    return _KEY_MEMO[memo]


def text_key(text: str) -> str:
    """Cache key of a text: SHA-256 (24 hex digits) of its UTF-8 bytes."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]


class FileSource(SourceKind):
    """A file in ``sample.sources[<name>]`` (a path), keyed by its content."""

    def read(self, sample: Any, extractor: Any) -> Path | None:
        value = sample.sources.get(self.name)
        return Path(value) if isinstance(value, (str, Path)) else None

    def key(self, raw: Path) -> str:
        return clip_key(raw)

    def describe(self, raw: Path) -> str:
        return str(Path(raw).resolve())

    def where(self, raw: Path, sample: Any) -> Path:
        return raw


class AudioSource(FileSource):
    name = "audio"
    description = "an audio or video file, decoded to a mono waveform at the extractor's sample_rate"

    def load(self, raw: Path, extractor: Any) -> np.ndarray:
        from emofuse.media.audio import load_audio

        return load_audio(raw, extractor.sample_rate)


class TextSource(SourceKind):
    name = "text"
    description = "the transcript string of the utterance"
    unit = "text"
    batch_size = 64

    def read(self, sample: Any, extractor: Any) -> str | None:
        text = sample.sources.get("text")
        if text is None:
            return None
        if not isinstance(text, str) or not text.strip():  # a present but empty transcript is an error
            raise DataError(sample.id, f"{extractor.name}: empty transcript text")
        return text

    def key(self, raw: str) -> str:
        return text_key(raw)

    def order(self, raw: str) -> int:
        return len(raw)  # similar lengths in one padded batch


class TableSource(SourceKind):
    name = "table"
    description = "a per-clip numeric row the dataset gives, in sample.sources[extractor.column]"
    cached = False
    batch_size = 1024

    def read(self, sample: Any, extractor: Any) -> Any | None:
        return sample.sources.get(extractor.column)


class MetaSource(SourceKind):
    name = "meta"
    description = "the sample's own fields: meta (gender, ...), speaker, dataset"
    cached = False
    batch_size = 1024

    def read(self, sample: Any, extractor: Any) -> Any:
        return sample


class SignalSource(FileSource):
    name = "signal"
    description = "a multichannel signal file (.npz: data [T, C] float, rate Hz)"
    batch_size = 32

    def load(self, raw: Path, extractor: Any) -> tuple[np.ndarray, float]:
        from emofuse.features.signal import read_signal_file

        return read_signal_file(raw)


class VideoSource(FileSource):
    name = "video"
    description = "a video file (mp4, mov, avi, mkv, webm, flv), passed as its path: the extractor decodes its frames"
    unit = "clip"
    batch_size = 4  # a clip's frames are decoded, detected and encoded together: few clips per call


class ClipAudio(NamedTuple):
    """What the ``audio_sample`` kind reads (``path``) and loads (``wave``) for one sample."""

    path: Path
    sample_id: str
    speaker: str
    wave: np.ndarray | None = None


class AudioSampleSource(FileSource):
    """The audio of a sample with its id and speaker (`ClipAudio`), for wrappers that need them:
    corruptions seeded per sample id, babble from other speakers (`emofuse.features.corrupted`).
    Keyed by the file's content, the sample id and the speaker."""

    name = "audio_sample"
    description = "sample.sources['audio'] decoded to mono, with the sample's id and speaker"

    def read(self, sample: Any, extractor: Any) -> ClipAudio | None:
        value = sample.sources.get("audio")
        if not isinstance(value, (str, Path)):
            return None
        return ClipAudio(Path(value), str(sample.id), str(getattr(sample, "speaker", "") or ""))

    def key(self, raw: ClipAudio) -> str:
        return text_key(f"{clip_key(raw.path)}\0{raw.sample_id}\0{raw.speaker}")

    def load(self, raw: ClipAudio, extractor: Any) -> ClipAudio:
        from emofuse.media.audio import load_audio

        return raw._replace(wave=load_audio(raw.path, extractor.sample_rate))

    def describe(self, raw: ClipAudio) -> str:
        return f"{Path(raw.path).resolve()} (sample {raw.sample_id}, speaker {raw.speaker})"

    def where(self, raw: ClipAudio, sample: Any) -> Path:
        return raw.path


for _kind in (AudioSource(), TextSource(), TableSource(), MetaSource(), SignalSource(), VideoSource(),
              AudioSampleSource()):
    register_source(_kind)
