"""The modality registry: which input channels a model can fuse.

A modality is a named kind of model input (``audio``, ``face``, ``text``, ``meta``, ``signal``).
Recipes map each modality to feature names (extractors, `emofuse.features`), models receive one
array per modality, and every list of modalities in the package reads this registry instead of
spelling names out. A new modality is one `register_modality` call (at the end of this module for
the built-in ones)::

    register_modality(Modality("video", "face video frames", sources=("video",), default_feature="..."))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from emofuse.registry import Registry


@dataclass(frozen=True)
class Modality:
    """One kind of model input.

    Attributes:
        name: the name recipes, models and checkpoints use.
        description: one line for listings and docs.
        sources: the `Sample.sources` keys whose presence means a sample has this modality's raw
            input (empty: it comes from ``Sample.meta``).
        default_feature: the feature used for this modality when nothing else says which
            (e.g. model-complexity tables of models without a recipe).
    """

    name: str
    description: str
    sources: tuple[str, ...] = ()
    default_feature: str | None = None


_MODALITIES: Registry[Modality] = Registry("modality", "unknown modality", "modalities")


def register_modality(modality: Modality) -> Modality:
    """Add ``modality`` to the registry (`ValueError` for an empty or already used name)."""
    return _MODALITIES.add(modality.name, modality)


def get_modality(name: str) -> Modality:
    """The registered modality ``name`` (`ConfigError` listing the known ones otherwise)."""
    return _MODALITIES.get(name)


def list_modalities() -> list[str]:
    """Registered modality names, in registration order (audio, face, text, meta, signal, ...)."""
    return _MODALITIES.names()


def has_source(sample: Any, name: str) -> bool:
    """Whether ``sample`` carries the raw input of modality ``name`` in its ``sources``."""
    return any(sample.sources.get(key) is not None for key in get_modality(name).sources)


register_modality(Modality("audio", "speech waveform of the clip", sources=("audio",), default_feature="whisper"))
register_modality(Modality("face", "facial expression: per-clip action units (a dataset table) or face sequences "
                           "from a video file (per-frame face embeddings, frames without a face masked)",
                           sources=("face", "video"), default_feature="au"))
register_modality(Modality("text", "transcript of the utterance", sources=("text",), default_feature="minilm_tokens"))
register_modality(Modality("meta", "speaker metadata (gender, identity) from the sample's fields",
                           default_feature="speaker_meta"))
register_modality(Modality("signal", "multichannel signal file (.npz: data [T, C], rate Hz), e.g. physiological",
                           sources=("signal",), default_feature="signal_stats"))
register_modality(Modality("eeg", "EEG channels of a recording (DEAP: 32 channels at 128 Hz; a .npz signal file or a "
                           "trial of a DEAP .mat file)", sources=("eeg",), default_feature="eeg_band_power"))
register_modality(Modality("peripheral", "peripheral physiological channels (DEAP: EOG, EMG, GSR, respiration, "
                           "plethysmograph, temperature)", sources=("peripheral",),
                           default_feature="peripheral_band_power"))
