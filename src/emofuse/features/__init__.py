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
from emofuse.features.speed import measure_rtf

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
