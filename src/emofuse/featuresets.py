"""Turning samples into per-modality feature arrays for a recipe.

Feature names are extractors (``emofuse.features.list_extractors(None)``), computed through the
on-disk cache from ``sample.sources["audio"]`` (audio extractors) or ``sample.sources["text"]``
(text extractors such as ``minilm_pooled``). ``au`` is the per-clip facial action-unit vector a
dataset loader put in ``sample.sources["face"]``; ``speaker_meta`` a one-hot of the speaker's
gender from ``sample.meta``; ``speaker_identity`` a one-hot of the MELD speaker (six Friends leads
+ other). Several vector features for one modality are concatenated (e.g. ``audio:
[whisper_pooled, egemaps]``).

`dialogue_windows` turns utterance-level vectors into dialogue turn windows ``[<=L, D]`` (the
``data.max_dialogue_length`` of a recipe, for the model's ``context_modalities``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from emofuse.data.record import Sample
from emofuse.errors import ConfigError

#: Features read from the sample itself rather than extracted from a media file.
SOURCE_FEATURES = {"au": "face", "speaker_meta": "meta", "speaker_identity": "meta"}

#: MELD speakers with their own ``speaker_identity`` column (the six Friends leads, 83% of the
#: utterances); every other speaker shares the last column, "other".
MELD_MAIN_SPEAKERS = ("Chandler", "Joey", "Monica", "Phoebe", "Rachel", "Ross")


def speaker_meta_vector(sample: Sample) -> np.ndarray | None:
    """Speaker metadata one-hot ``[is_male, is_female]`` from ``sample.meta["gender"]`` (None if unknown)."""
    gender = str(sample.meta.get("gender", "")).upper()[:1]
    if gender not in ("M", "F"):
        return None
    return np.array([[gender == "M", gender == "F"]], dtype=np.float32)


def speaker_identity_vector(sample: Sample) -> np.ndarray | None:
    """Speaker identity one-hot ``[Chandler, Joey, Monica, Phoebe, Rachel, Ross, other]`` (MELD only).

    MELD has no gender or age annotation. Who speaks is a legitimate input there because MELD's
    official split is not speaker-disjoint (the leads speak in train, dev and test), so scores on it
    are not speaker-independent with or without this vector; it must not be used for
    speaker-independent claims. Other datasets give None (absent meta).
    """
    if sample.dataset != "meld":
        return None
    vector = np.zeros((1, len(MELD_MAIN_SPEAKERS) + 1), dtype=np.float32)
    name = sample.speaker.strip()
    vector[0, MELD_MAIN_SPEAKERS.index(name) if name in MELD_MAIN_SPEAKERS else -1] = 1.0
    return vector


def pool_vector(array: np.ndarray) -> np.ndarray:
    """A per-clip vector: a length-1 feature is itself, a sequence gives [mean; std] over time."""
    if array.ndim == 1:
        return array.astype(np.float32)
    if array.shape[0] == 1:
        return array[0].astype(np.float32)
    return np.concatenate([array.mean(0), array.std(0)]).astype(np.float32)


class FeatureStore:
    """Computes (or reads from cache) and keeps in memory each named feature for a list of samples.

    ``speed`` != 1 makes a speed-perturbed view (`emofuse.features.augment`): audio extractors run
    on every clip played that many times faster; every other feature (action units, text,
    metadata) is the original one. Make views with `view`, which shares those.
    """

    def __init__(self, samples: list[Sample], cache_dir: str | Path | None = None, progress: bool = True,
                 speed: float = 1.0) -> None:
        from emofuse.features.augment import check_factor

        self.samples = samples
        self.cache_dir = cache_dir
        self.progress = progress
        self.speed = check_factor(speed)
        self._original: FeatureStore | None = None
        self._views: dict[float, FeatureStore] = {}
        self._arrays: dict[str, list[np.ndarray | None]] = {}

    def view(self, speed: float) -> "FeatureStore":
        """The store of the same samples with audio played ``speed`` times faster (1.0: the original);
        the same object for the same factor."""
        from emofuse.features.augment import check_factor

        original = self._original or self
        speed = check_factor(speed)
        if speed == 1.0:
            return original
        if speed not in original._views:  # one view per factor, so its arrays stay in memory
            store = FeatureStore(self.samples, self.cache_dir, self.progress, speed=speed)
            store._original = original
            original._views[speed] = store
        store = original._views[speed]
        if hasattr(original, "labels"):
            store.labels = original.labels
        return store

    def get(self, name: str) -> list[np.ndarray | None]:
        """One array per sample (``[T, D]``), None where the sample lacks the source."""
        if self._original is not None and not self._is_audio(name):
            return self._original.get(name)
        if name not in self._arrays:
            self._arrays[name] = self._compute(name)
        return self._arrays[name]

    @staticmethod
    def _is_audio(name: str) -> bool:
        from emofuse.features import list_extractors

        return name in list_extractors("audio")

    def _compute(self, name: str) -> list[np.ndarray | None]:
        if name == "speaker_meta":
            return [speaker_meta_vector(s) for s in self.samples]
        if name == "speaker_identity":
            return [speaker_identity_vector(s) for s in self.samples]
        if name in SOURCE_FEATURES:
            key = SOURCE_FEATURES[name]
            out: list[np.ndarray | None] = []
            for s in self.samples:
                v = s.sources.get(key)
                out.append(None if v is None else np.asarray(v, dtype=np.float32).reshape(1, -1))
            return out
        from emofuse.features import extract_features, extract_text_features, get_extractor, list_extractors

        if name not in list_extractors(None):
            raise ConfigError(f"unknown feature {name!r}; available: "
                              f"{', '.join(sorted([*SOURCE_FEATURES, *list_extractors(None)]))}")
        extractor = get_extractor(name)
        if self.speed != 1.0 and extractor.source == "audio":
            from emofuse.features.augment import SpeedPerturbed

            extractor = SpeedPerturbed(extractor, self.speed)
        if extractor.source == "text":
            # a sample without a transcript has the modality absent; an empty one is an error
            have = [i for i, s in enumerate(self.samples) if s.sources.get("text") is not None]
            arrays = extract_text_features([self.samples[i].sources["text"] for i in have], extractor, self.cache_dir,
                                           ids=[self.samples[i].id for i in have], progress=self.progress)
        else:
            have = [i for i, s in enumerate(self.samples) if isinstance(s.sources.get("audio"), (str, Path))]
            arrays = extract_features([Path(self.samples[i].sources["audio"]) for i in have], extractor,
                                      self.cache_dir, progress=self.progress)
        out = [None] * len(self.samples)
        for i, a in zip(have, arrays):
            out[i] = None if a is None else np.asarray(a, dtype=np.float32)
        return out

    def modality(self, names: list[str], pooled: bool = False) -> list[np.ndarray | None]:
        """Arrays for one modality made of ``names``. Several names must be vectors (or ``pooled``)
        and are concatenated; a sample missing any of them has the modality absent (None)."""
        per_name = [self.get(n) for n in names]
        out: list[np.ndarray | None] = []
        for i in range(len(self.samples)):
            parts = [arrs[i] for arrs in per_name]
            if any(p is None for p in parts):
                out.append(None)
                continue
            if pooled or len(parts) > 1:
                if not pooled and any(p.shape[0] != 1 for p in parts):
                    raise ConfigError(f"features {names} cannot be concatenated: only per-clip vectors can")
                out.append(np.concatenate([pool_vector(p) for p in parts])[None, :])
            else:
                out.append(parts[0])
        return out

    def for_recipe(self, features: dict[str, list[str]], pooled: bool = False) -> dict[str, list[np.ndarray | None]]:
        return {m: self.modality(names, pooled=pooled) for m, names in features.items()}


def dialogue_windows(arrays: list[np.ndarray | None], samples: list[Sample],
                     max_length: int) -> list[np.ndarray | None]:
    """Turn windows ``[<=max_length, D]`` of utterance-level vectors, one per sample.

    A sample's window holds the vectors of the previous turns of its dialogue (same
    ``meta["split"]`` and ``meta["dialogue"]``, lower ``meta["utterance_id"]``), oldest first, and
    its own vector last; only the ``max_length - 1`` most recent previous turns are kept. Turns
    whose own array is absent are skipped; a sample whose array is absent stays None. Samples
    without dialogue metadata (single clips, RAVDESS) get a window of one: themselves. Only the
    samples passed in are looked at, so a window never reaches into another split or fold.
    """
    if int(max_length) < 1:
        raise ConfigError(f"max_dialogue_length must be >= 1, got {max_length}")
    if len(arrays) != len(samples):
        raise ConfigError(f"{len(arrays)} feature arrays for {len(samples)} samples")
    for s, a in zip(samples, arrays):
        if a is not None and np.atleast_2d(a).shape[0] != 1:
            raise ConfigError(f"dialogue context needs one vector per utterance (e.g. minilm_pooled); "
                              f"sample {s.id} has a [{a.shape[0]}, {a.shape[-1]}] sequence")
    dialogues: dict[tuple[str, str], list[tuple[int, int]]] = {}
    for i, s in enumerate(samples):
        if "dialogue" in s.meta and "utterance_id" in s.meta and arrays[i] is not None:
            key = (str(s.meta.get("split", "")), str(s.meta["dialogue"]))
            dialogues.setdefault(key, []).append((int(s.meta["utterance_id"]), i))
    for turns in dialogues.values():
        turns.sort()
    out: list[np.ndarray | None] = []
    for i, s in enumerate(samples):
        if arrays[i] is None:
            out.append(None)
            continue
        own = np.atleast_2d(arrays[i]).astype(np.float32)
        if "dialogue" not in s.meta or "utterance_id" not in s.meta:
            out.append(own)
            continue
        key = (str(s.meta.get("split", "")), str(s.meta["dialogue"]))
        me = int(s.meta["utterance_id"])
        previous = [j for u, j in dialogues[key] if u < me][-(int(max_length) - 1):] if max_length > 1 else []
        out.append(np.concatenate([np.atleast_2d(arrays[j]) for j in previous] + [own]).astype(np.float32))
    return out


def apply_dialogue_context(features: dict[str, list[np.ndarray | None]], samples: list[Sample],
                           modalities: list[str] | tuple[str, ...], max_length: int | None
                           ) -> dict[str, list[np.ndarray | None]]:
    """`dialogue_windows` for each modality in ``modalities`` (the model's ``context_modalities``);
    ``max_length`` None means 1 (each utterance alone). Other modalities pass through."""
    unknown = [m for m in modalities if m not in features]
    if unknown:
        raise ConfigError(f"context modalities {unknown} have no features; recipe modalities: {list(features)}")
    length = 1 if max_length is None else int(max_length)
    return {m: dialogue_windows(arrays, samples, length) if m in modalities else arrays
            for m, arrays in features.items()}


def input_dims(features: dict[str, list[np.ndarray | None]]) -> dict[str, int]:
    """Feature dimension per modality (from the first sample that has it)."""
    dims = {}
    for m, arrays in features.items():
        first = next((a for a in arrays if a is not None), None)
        if first is None:
            raise ConfigError(f"modality {m!r} is absent for every sample")
        dims[m] = int(first.shape[-1])
    return dims


def vector_modalities(features: dict[str, list[np.ndarray | None]]) -> list[str]:
    """Modalities whose every present array is a single time step."""
    return [m for m, arrays in features.items() if all(a is None or a.shape[0] == 1 for a in arrays)]


def speaker_normalize(features: dict[str, list[np.ndarray | None]], samples: list[Sample],
                      min_clips: int = 10) -> dict[str, list[np.ndarray | None]]:
    """Z-score every modality per speaker, with statistics of that speaker's own (unlabelled) clips.

    This is *transductive* speaker normalisation: at test time it uses the test speaker's other
    recordings (never their labels). It removes speaker identity from the features and helps a lot
    on acted corpora, but it assumes several clips per speaker whose emotion mix is not extreme
    (RAVDESS: 60 balanced clips per actor). Results using it are reported separately.
    """
    by_speaker: dict[str, list[int]] = {}
    for i, s in enumerate(samples):
        by_speaker.setdefault(s.speaker, []).append(i)
    out: dict[str, list[np.ndarray | None]] = {}
    for m, arrays in features.items():
        normed: list[np.ndarray | None] = list(arrays)
        for speaker, idx in by_speaker.items():
            have = [i for i in idx if arrays[i] is not None]
            if len(have) < min_clips:
                raise ConfigError(f"speaker normalisation needs at least {min_clips} clips per speaker; "
                                  f"speaker {speaker!r} has {len(have)} with {m}")
            frames = np.concatenate([np.atleast_2d(arrays[i]) for i in have]).astype(np.float64)
            mean, std = frames.mean(0), frames.std(0)
            std[std < 1e-6] = 1.0
            for i in have:
                normed[i] = ((arrays[i] - mean) / std).astype(np.float32)
        out[m] = normed
    return out
