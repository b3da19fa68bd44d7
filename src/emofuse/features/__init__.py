"""Feature extractors and their on-disk cache: speech (log-mel, MFCC, FrFT-MFCC, eGeMAPS, Whisper)
and text (MiniLM / any local BERT-like encoder).

    from emofuse.features import get_extractor, extract_features, extract_text_features
    feats = extract_features(paths, get_extractor("mfcc", n_mfcc=40))   # list of float32 [T, D]
    sents = extract_text_features(texts, "minilm_pooled")              # list of float32 [1, 384]
"""

from emofuse.features.base import FeatureExtractor, get_extractor, list_extractors, register
from emofuse.features import egemaps, logmel, mfcc, text, whisper  # noqa: F401  (register the extractors)
from emofuse.features.cache import CacheWarning, FeatureCache, extract_features, load_feature_file
from emofuse.features.text import extract_text_features

__all__ = [
    "CacheWarning",
    "FeatureCache",
    "FeatureExtractor",
    "extract_features",
    "extract_text_features",
    "get_extractor",
    "list_extractors",
    "load_feature_file",
    "measure_rtf",
    "register",
]


def __getattr__(name: str):
    # imported lazily so that `python -m emofuse.features.speed` does not import its own module
    # twice (runpy's RuntimeWarning)
    if name == "measure_rtf":
        from emofuse.features.speed import measure_rtf

        return measure_rtf
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
