"""Speech feature extractors (log-mel, MFCC, FrFT-MFCC, eGeMAPS, Whisper) and their on-disk cache.

    from emofuse.features import get_extractor, extract_features
    feats = extract_features(paths, get_extractor("mfcc", n_mfcc=40))   # list of float32 [T, D]
"""

from emofuse.features.base import FeatureExtractor, get_extractor, list_extractors, register
from emofuse.features import egemaps, logmel, mfcc, whisper  # noqa: F401  (register the extractors)
from emofuse.features.cache import CacheWarning, FeatureCache, extract_features, load_feature_file
from emofuse.features.speed import measure_rtf

__all__ = [
    "CacheWarning",
    "FeatureCache",
    "FeatureExtractor",
    "extract_features",
    "get_extractor",
    "list_extractors",
    "load_feature_file",
    "measure_rtf",
    "register",
]
