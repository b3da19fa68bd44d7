"""Deterministic corruptions of a speech clip (float32 mono, 16 kHz), for robustness tests and training.

A `Corruption` is ``(kind, level, seed)``; `corrupt` applies it to one clip with a random generator
derived from the corruption's seed and the clip's SAMPLE ID (`clip_rng`), never from processing
order, so a clip always gets the same noise, room or babble. Kinds (`list_corruptions`):

=========  =====================  =============================================================
kind       level                  what it does
=========  =====================  =============================================================
white      SNR, dB                white Gaussian noise
pink       SNR, dB                1/f noise
babble     SNR, dB                5-7 clips of OTHER speakers (the pool), each level-matched
reverb     RT60, s                a synthetic room impulse response (Polack's model: a direct
                                  path plus exponentially decaying noise; the seed sets the
                                  direct-to-reverberant ratio and the tail)
mp3        bitrate, kbps          MP3 (LAME) encode + decode in memory, through PyAV
opus       bitrate, kbps          Opus encode + decode in memory, through PyAV
telephone  (unused, 0)            300-3400 Hz band, 8 kHz, G.711 mu-law, back to 16 kHz
gain       dB                     amplified or attenuated, clipped to [-1, 1], 16-bit like a recorder
silence    s                      that much near-silence (-70 dBFS noise) before AND after
=========  =====================  =============================================================

SNRs are relative to the clip's active-speech level (`active_power`: the mean power of the
20 ms frames within 40 dB of the loudest one), so leading silence does not change them.

`standard_test_corruptions` is the fixed TEST list (ImageNet-C-like, seeds 1001...);
`training_corruption` draws from the TRAINING distribution (continuous levels, seeds >= 10**6,
so never a test instance).
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from emofuse.errors import ConfigError, DataError

#: The rate every corruption works at.
SR = 16000
#: Seeds of the training draws start here (test instances use 1001...).
TRAIN_SEED_BASE = 10**6
#: A babble mixture sums this many talkers (inclusive range).
BABBLE_TALKERS = (5, 7)

Pool = Sequence[tuple[str, Any]]  # (speaker, audio path) of the clips babble may use
Apply = Callable[[np.ndarray, "Corruption", np.random.Generator, "BabbleSource | None"], np.ndarray]
_KINDS: dict[str, tuple[Apply, str]] = {}


@dataclass(frozen=True)
class Corruption:
    """One corruption: its ``kind`` (`list_corruptions`), ``level`` (unit per kind) and ``seed``."""

    kind: str
    level: float
    seed: int

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ConfigError(f"unknown corruption kind {self.kind!r}; known: {', '.join(list_corruptions())}")
        if isinstance(self.level, bool) or not np.isfinite(float(self.level)):
            raise ConfigError(f"corruption {self.kind}: level must be a finite number, got {self.level!r}")
        object.__setattr__(self, "level", float(self.level))
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            raise ConfigError(f"corruption {self.kind}: seed must be a whole number >= 0, got {self.seed!r}")
        object.__setattr__(self, "seed", int(self.seed))
        _check_level(self.kind, self.level)

    @property
    def name(self) -> str:
        """Short name, e.g. ``white_snr10``, ``reverb_rt0.8``, ``mp3_8k``, ``telephone``, ``gain-20db``, ``silence1s``."""
        unit = {"white": "snr", "pink": "snr", "babble": "snr", "reverb": "rt"}.get(self.kind)
        if self.kind == "silence":
            return f"silence{self.level:g}s"
        if self.kind == "telephone":
            return "telephone"
        if self.kind in ("mp3", "opus"):
            return f"{self.kind}_{self.level:g}k"
        if self.kind == "gain":
            return f"gain{self.level:+g}db"
        return f"{self.kind}_{unit}{self.level:g}"

    @property
    def needs_pool(self) -> bool:
        return self.kind == "babble"


def register_corruption(kind: str, unit: str) -> Callable[[Apply], Apply]:
    """Decorator: ``apply(wave, corruption, rng, babble) -> wave`` becomes corruption ``kind``."""
    def add(fn: Apply) -> Apply:
        if kind in _KINDS:
            raise ValueError(f"corruption kind {kind!r} is already registered")
        _KINDS[kind] = (fn, unit)
        return fn
    return add


def list_corruptions() -> list[str]:
    return list(_KINDS)


#: the unit of corruptions whose level is a signal-to-noise ratio
SNR_UNIT = "SNR dB"


def snr_kinds() -> list[str]:
    """The registered corruption kinds whose level is an SNR (the additive noises)."""
    return [kind for kind, (_, unit) in _KINDS.items() if unit == SNR_UNIT]


def _check_level(kind: str, level: float) -> None:
    ranges = {"reverb": (0.05, 3.0), "mp3": (8, 320), "opus": (6, 256), "silence": (0.0, 30.0), "gain": (-60, 60)}
    low, high = ranges.get(kind, (-30.0, 60.0) if kind in snr_kinds() else (-np.inf, np.inf))
    if not low <= level <= high:
        raise ConfigError(f"corruption {kind}: level ({_KINDS[kind][1]}) must be in [{low:g}, {high:g}], got {level:g}")


def clip_rng(seed: int, sample_id: str) -> np.random.Generator:
    """The generator of one clip: from ``seed`` and the sample id only (not processing order)."""
    digest = hashlib.sha256(f"{int(seed)}\0{sample_id}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:16], "little"))


def corrupt(wave: np.ndarray, corruption: Corruption, sample_id: str, *,
            babble: "BabbleSource | None" = None, speaker: str = "") -> np.ndarray:
    """``wave`` (float32 mono at 16 kHz) with ``corruption`` applied; deterministic per
    (corruption, ``sample_id``). Babble needs a `BabbleSource` and the clip's ``speaker``
    (whose clips it never uses)."""
    wave = np.asarray(wave, dtype=np.float32)
    if wave.ndim != 1 or wave.size == 0:
        raise DataError(sample_id, f"corruption {corruption.name}: expected a non-empty mono waveform, got {wave.shape}")
    if corruption.needs_pool and babble is None:
        raise ConfigError(f"corruption {corruption.name} mixes other speakers' clips: it needs a pool of clips")
    fn = _KINDS[corruption.kind][0]
    source = babble.for_speaker(speaker) if babble is not None else None
    out = fn(wave, corruption, clip_rng(corruption.seed, sample_id), source)
    return np.ascontiguousarray(out, dtype=np.float32)


# -- levels ----------------------------------------------------------------------------------------

def active_power(wave: np.ndarray, sr: int = SR, floor_db: float = 40.0) -> float:
    """Mean power of the 20 ms frames within ``floor_db`` of the loudest frame (0 for silence)."""
    n = max(1, int(0.02 * sr))
    frames = np.asarray(wave, dtype=np.float64)[: len(wave) // n * n].reshape(-1, n) if len(wave) >= n else \
        np.asarray(wave, dtype=np.float64)[None, :]
    power = (frames**2).mean(axis=1)
    if power.max() <= 0:
        return 0.0
    return float(power[power >= power.max() * 10 ** (-floor_db / 10)].mean())


def add_at_snr(wave: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``wave + noise`` scaled so that active speech power / noise power = ``snr_db``."""
    speech, noise_power = active_power(wave), float(np.mean(np.asarray(noise, dtype=np.float64) ** 2))
    if speech <= 0 or noise_power <= 0:
        return wave.copy()
    return wave + noise * np.sqrt(speech / (noise_power * 10 ** (snr_db / 10)))


# -- noise -----------------------------------------------------------------------------------------

@register_corruption("white", SNR_UNIT)
def _white(wave: np.ndarray, c: Corruption, rng: np.random.Generator, babble: Any) -> np.ndarray:
    return add_at_snr(wave, rng.standard_normal(wave.size), c.level)


def pink_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` samples of 1/f (pink) noise: white noise shaped by 1/sqrt(f) in frequency."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(spectrum.size, dtype=np.float64)
    f[0] = 1.0
    return np.fft.irfft(spectrum / np.sqrt(f), n)


@register_corruption("pink", SNR_UNIT)
def _pink(wave: np.ndarray, c: Corruption, rng: np.random.Generator, babble: Any) -> np.ndarray:
    return add_at_snr(wave, pink_noise(wave.size, rng), c.level)


class BabbleSource:
    """The clips babble may mix: ``pool`` of (speaker, audio path); loaded on demand, 16 kHz."""

    def __init__(self, pool: Pool, load: Callable[[Any], np.ndarray] | None = None, exclude: str = "") -> None:
        self.pool = [(str(s), p) for s, p in pool]
        self._load = load or _load_16k
        self.exclude = exclude
        self._memo: dict[Any, np.ndarray] = {}

    def for_speaker(self, speaker: str) -> "BabbleSource":
        other = BabbleSource(self.pool, self._load, str(speaker))
        other._memo = self._memo
        return other

    def choose(self, rng: np.random.Generator) -> list[int]:
        """Indices into the pool of 5-7 clips of speakers other than ``exclude``."""
        allowed = [i for i, (s, _) in enumerate(self.pool) if not self.exclude or s != self.exclude]
        if len(allowed) < BABBLE_TALKERS[0]:
            raise ConfigError(f"babble needs at least {BABBLE_TALKERS[0]} clips of speakers other than "
                              f"{self.exclude!r}; the pool has {len(allowed)}")
        k = int(rng.integers(BABBLE_TALKERS[0], BABBLE_TALKERS[1] + 1))
        return [allowed[i] for i in rng.choice(len(allowed), size=min(k, len(allowed)), replace=False)]

    def clip(self, index: int) -> np.ndarray:
        path = self.pool[index][1]
        if path not in self._memo:
            if len(self._memo) > 64:  # a few MB; the draws span the whole pool anyway
                self._memo.clear()
            self._memo[path] = np.asarray(self._load(path), dtype=np.float32)
        return self._memo[path]


def _load_16k(path: Any) -> np.ndarray:
    from emofuse.media.audio import load_audio

    return load_audio(path, SR)


@register_corruption("babble", SNR_UNIT)
def _babble(wave: np.ndarray, c: Corruption, rng: np.random.Generator, babble: BabbleSource | None) -> np.ndarray:
    assert babble is not None
    mix = np.zeros(wave.size, dtype=np.float64)
    for index in babble.choose(rng):
        talker = babble.clip(index)
        if talker.size == 0 or active_power(talker) <= 0:
            continue
        reps = int(np.ceil((wave.size + talker.size) / talker.size))
        start = int(rng.integers(0, talker.size))
        piece = np.tile(talker, reps)[start : start + wave.size]
        mix += piece / np.sqrt(active_power(talker))  # level-matched talkers
    return add_at_snr(wave, mix, c.level)


# -- reverberation ---------------------------------------------------------------------------------

def room_impulse_response(rt60: float, seed: int, sr: int = SR) -> np.ndarray:
    """A synthetic room impulse response (Polack's stochastic model): a direct path, then Gaussian
    noise decaying by 60 dB in ``rt60`` s starting 1-5 ms later; ``seed`` draws the
    direct-to-reverberant ratio (-3 to +9 dB, the source distance) and the noise."""
    rng = np.random.default_rng(int(seed))
    drr_db = rng.uniform(-3.0, 9.0)
    onset = int(rng.uniform(0.001, 0.005) * sr)
    t = np.arange(int(1.2 * rt60 * sr)) / sr
    tail = rng.standard_normal(t.size) * np.exp(-3 * np.log(10) * t / rt60)
    tail *= np.sqrt(10 ** (-drr_db / 10) / np.sum(tail**2))  # energy relative to the direct path (1)
    rir = np.zeros(onset + t.size)
    rir[0] = 1.0
    rir[onset:] += tail
    return rir


_RIR_MEMO: dict[tuple[float, int], np.ndarray] = {}


@register_corruption("reverb", "RT60 s")
def _reverb(wave: np.ndarray, c: Corruption, rng: np.random.Generator, babble: Any) -> np.ndarray:
    """Convolved with the room of the corruption's seed (one room per corruption, so every clip of
    a test condition is in the same room), the active level kept."""
    from scipy.signal import fftconvolve

    key = (c.level, c.seed)
    if key not in _RIR_MEMO:
        if len(_RIR_MEMO) > 64:
            _RIR_MEMO.clear()
        _RIR_MEMO[key] = room_impulse_response(c.level, c.seed)
    wet = fftconvolve(wave.astype(np.float64), _RIR_MEMO[key])[: wave.size]
    before, after = active_power(wave), active_power(wet)
    return wet * np.sqrt(before / after) if after > 0 else wet


# -- codecs ----------------------------------------------------------------------------------------

#: format, encoder, rate the encoder runs at
_CODECS = {"mp3": ("mp3", "libmp3lame", SR), "opus": ("ogg", "libopus", 48000)}


def _encoder(codec: str) -> str:
    """The PyAV encoder name for ``codec``; `ConfigError` when PyAV or the encoder is missing."""
    try:
        import av
    except ImportError:
        raise ConfigError(f"the {codec} corruption needs PyAV (pip install av)") from None
    name = _CODECS[codec][1]
    try:
        av.codec.Codec(name, "w")
    except Exception:  # av.codec.codec.UnknownCodecError and friends
        raise ConfigError(f"the {codec} corruption needs the {name} encoder, which this PyAV/FFmpeg build "
                          f"lacks (install a PyAV wheel built with {name})") from None
    return name


def codec_roundtrip(wave: np.ndarray, codec: str, kbps: float) -> np.ndarray:
    """``wave`` (16 kHz) encoded with ``codec`` ("mp3" or "opus") at ``kbps`` and decoded again,
    in memory; same length and rate as the input."""
    import av
    import soxr

    fmt, _, rate = _CODECS[codec]
    encoder = _encoder(codec)
    signal = np.asarray(wave, dtype=np.float32)
    if rate != SR:
        signal = soxr.resample(signal, SR, rate, quality="HQ").astype(np.float32)
    buffer = io.BytesIO()
    with av.open(buffer, "w", format=fmt) as out:
        stream = out.add_stream(encoder, rate=rate, layout="mono")
        stream.bit_rate = int(kbps * 1000)
        block = 960 if codec == "opus" else 1152
        for start in range(0, signal.size, block):
            frame = av.AudioFrame.from_ndarray(signal[None, start : start + block].copy(), format="flt"
                                               if codec == "opus" else "fltp", layout="mono")
            frame.sample_rate = rate
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    buffer.seek(0)
    with av.open(buffer, "r") as inp:
        decoded = [f.to_ndarray().reshape(-1, f.samples).mean(axis=0) if f.format.is_planar
                   else f.to_ndarray().reshape(f.samples, -1).mean(axis=1) for f in inp.decode(audio=0)]
    y = np.concatenate(decoded).astype(np.float32) if decoded else np.zeros(0, np.float32)
    if rate != SR:
        y = soxr.resample(y, rate, SR, quality="HQ").astype(np.float32)
    return _fit_length(y, wave.size)


def _fit_length(y: np.ndarray, n: int) -> np.ndarray:
    return y[:n] if y.size >= n else np.concatenate([y, np.zeros(n - y.size, np.float32)])


@register_corruption("mp3", "kbps")
def _mp3(wave: np.ndarray, c: Corruption, rng: np.random.Generator, babble: Any) -> np.ndarray:
    return codec_roundtrip(wave, "mp3", c.level)


@register_corruption("opus", "kbps")
def _opus(wave: np.ndarray, c: Corruption, rng: np.random.Generator, babble: Any) -> np.ndarray:
    return codec_roundtrip(wave, "opus", c.level)


# -- channel, level, silence -----------------------------------------------------------------------

@register_corruption("telephone", "(none)")
def _telephone(wave: np.ndarray, c: Corruption, rng: np.random.Generator, babble: Any) -> np.ndarray:
    """300-3400 Hz (4th-order Butterworth, zero phase), resampled to 8 kHz, G.711 mu-law, back to 16 kHz."""
    import soxr
    from scipy.signal import butter, sosfiltfilt

    sos = butter(4, [300, 3400], btype="bandpass", fs=SR, output="sos")
    narrow = soxr.resample(sosfiltfilt(sos, wave.astype(np.float64)).astype(np.float32), SR, 8000, quality="HQ")
    mu = 255.0
    x = np.clip(narrow, -1.0, 1.0)
    coded = np.round(np.sign(x) * np.log1p(mu * np.abs(x)) / np.log1p(mu) * 127) / 127
    decoded = np.sign(coded) * np.expm1(np.abs(coded) * np.log1p(mu)) / mu
    return _fit_length(soxr.resample(decoded.astype(np.float32), 8000, SR, quality="HQ"), wave.size)


@register_corruption("gain", "dB")
def _gain(wave: np.ndarray, c: Corruption, rng: np.random.Generator, babble: Any) -> np.ndarray:
    """Scaled by ``level`` dB, clipped to [-1, 1] and stored as 16-bit, like a recorder."""
    return np.round(np.clip(wave * 10 ** (c.level / 20), -1.0, 1.0) * 32767) / 32767


@register_corruption("silence", "s")
def _silence(wave: np.ndarray, c: Corruption, rng: np.random.Generator, babble: Any) -> np.ndarray:
    """``level`` seconds of near-silence (white noise at -70 dBFS) before and after the clip."""
    pad = int(round(c.level * SR))
    quiet = rng.standard_normal(2 * pad) * 10 ** (-70 / 20)
    return np.concatenate([quiet[:pad], wave, quiet[pad:]])


# -- the test list and the training distribution ---------------------------------------------------

def standard_test_corruptions() -> list[Corruption]:
    """The fixed TEST list: white/pink/babble at SNR 20/10/5/0 dB, reverb in 2 rooms (RT60 0.4 and
    0.9 s), mp3 8 and 16 kbps, opus 6 and 12 kbps, telephone, gain +20/-20 dB, 1 s of silence
    before and after. Seeds 1001... (training draws never use them)."""
    specs = [(k, snr) for k in ("white", "pink", "babble") for snr in (20, 10, 5, 0)]
    specs += [("reverb", 0.4), ("reverb", 0.9), ("mp3", 8), ("mp3", 16), ("opus", 6), ("opus", 12),
              ("telephone", 0), ("gain", 20), ("gain", -20), ("silence", 1.0)]
    return [Corruption(kind, level, 1001 + i) for i, (kind, level) in enumerate(specs)]


#: The training distribution: kind -> (probability, level range); levels are drawn uniformly.
TRAINING_DISTRIBUTION: dict[str, tuple[float, tuple[float, float]]] = {
    "white": (0.14, (0.0, 25.0)), "pink": (0.14, (0.0, 25.0)), "babble": (0.16, (0.0, 25.0)),
    "reverb": (0.16, (0.2, 1.2)), "mp3": (0.08, (8.0, 32.0)), "opus": (0.08, (6.0, 24.0)),
    "telephone": (0.08, (0.0, 0.0)), "gain": (0.1, (-25.0, 25.0)), "silence": (0.06, (0.2, 1.5)),
}


def training_corruption(rng: np.random.Generator) -> Corruption:
    """One corruption drawn from `TRAINING_DISTRIBUTION`: its kind, a continuous level and a seed
    >= `TRAIN_SEED_BASE` (so never a test instance: other noise, other rooms)."""
    kinds = list(TRAINING_DISTRIBUTION)
    weights = np.array([TRAINING_DISTRIBUTION[k][0] for k in kinds])
    kind = kinds[int(rng.choice(len(kinds), p=weights / weights.sum()))]
    low, high = TRAINING_DISTRIBUTION[kind][1]
    level = round(float(rng.uniform(low, high)), 3)
    return Corruption(kind, level, int(rng.integers(TRAIN_SEED_BASE, 2**31 - 1)))


def corruption_from_name(name: str) -> Corruption:
    """The test corruption named ``name`` (e.g. ``babble_snr5``); `ConfigError` listing them."""
    named = {c.name: c for c in standard_test_corruptions()}
    if name not in named:
        raise ConfigError(f"unknown test corruption {name!r}; known: {', '.join(named)}")
    return named[name]


@dataclass(frozen=True)
class TrainingMix:
    """Each clip gets its own `training_corruption`, drawn from (``seed``, sample id) only."""

    seed: int

    def __post_init__(self) -> None:
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            raise ConfigError(f"a corruption mix needs a whole-number seed >= 0, got {self.seed!r}")

    @property
    def name(self) -> str:
        return f"mix{self.seed}"

    def draw(self, sample_id: str) -> Corruption:
        """The corruption of the clip ``sample_id`` in this mix."""
        return training_corruption(clip_rng(self.seed, f"training-mix\0{sample_id}"))
