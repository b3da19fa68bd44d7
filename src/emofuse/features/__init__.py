"""Feature extractors, the sources they read and the one driver that caches them: speech (log-mel,
MFCC, FrFT-MFCC, eGeMAPS, Whisper), text (MiniLM / any local BERT-like encoder), dataset table rows
(action units), speaker metadata and multichannel signals.

    from emofuse.features import get_extractor, extract, extract_features, extract_text_features
    arrays = extract("whisper", samples)                              # per sample [T, D] or None
    feats = extract_features(paths, get_extractor("mfcc", n_mfcc=40))   # list of float32 [T, D]
    sents = extract_text_features(texts, "minilm_pooled")              # list of float32 [1, 384]
"""

import importlib
import pkgutil

from emofuse.features.base import FeatureExtractor, get_extractor, list_extractors, register
from emofuse.features.cache import CacheWarning, FeatureCache, load_feature_file
from emofuse.features.driver import extract, extract_features, parse_shard
from emofuse.features.sources import SourceKind, get_source, list_sources, register_source
from emofuse.features.text import extract_text_features

__all__ = [
    "CacheWarning",
    "FeatureCache",
    "FeatureExtractor",
    "SourceKind",
    "extract",
    "extract_features",
    "extract_text_features",
    "get_extractor",
    "get_source",
    "list_extractors",
    "list_sources",
    "load_feature_file",
    "measure_rtf",
    "parse_shard",
    "register",
    "register_source",
]

#: Modules of this package that register no extractor and must not be imported here (``speed`` is
#: also run as ``python -m emofuse.features.speed``, which must not find itself imported already).
_NOT_EXTRACTOR_MODULES = {"speed"}


def _register_extractor_modules() -> None:
    """Import every module of this package (each registers its extractors when imported), so an
    extractor is added by adding its module alone."""
    for info in pkgutil.iter_modules(__path__):
        if info.name not in _NOT_EXTRACTOR_MODULES:
            importlib.import_module(f"{__name__}.{info.name}")


_register_extractor_modules()


def __getattr__(name: str):
    # imported lazily so that `python -m emofuse.features.speed` does not import its own module
    # twice (runpy's RuntimeWarning)
    if name == "measure_rtf":
        from emofuse.features.speed import measure_rtf

        return measure_rtf
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
