"""Turning samples into per-modality feature arrays for a recipe.

Feature names are registered extractors (``emofuse.features.list_extractors(None)``), each
computed by the one driver (`emofuse.features.driver.extract`) from the source it declares:
``sample.sources["audio"]`` (audio extractors), ``sample.sources["text"]`` (``minilm_pooled``, ...),
a dataset table row (``au``: the per-clip action units in ``sample.sources["face"]``), the sample's
fields (``speaker_meta``: gender one-hot; ``speaker_identity``: the MELD speaker) or a signal file
(``signal_stats``, ``signal_frames``). Several vector features for one modality are concatenated
(e.g. ``audio: [whisper_pooled, egemaps]``).

`dialogue_windows` turns utterance-level vectors into dialogue turn windows ``[<=L, D]`` (the
``data.max_dialogue_length`` of a recipe, for the model's ``context_modalities``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from emofuse.data.record import Sample
from emofuse.errors import ConfigError

def pool_vector(array: np.ndarray) -> np.ndarray:
    """A per-clip vector: a length-1 feature is itself, a sequence gives [mean; std] over time,
    over the frames with data (whole NaN rows are frames without data, `emofuse.inputs.missing`;
    an array with none gives NaN: the caller treats it as absent)."""
    if array.ndim == 1:
        return array.astype(np.float32)
    if array.shape[0] == 1:
        return array[0].astype(np.float32)
    if np.isnan(array).any():
        array = array[~np.isnan(array).all(axis=1)]
        if array.shape[0] == 0:
            return np.full(2 * array.shape[1], np.nan, dtype=np.float32)
    return np.concatenate([array.mean(0), array.std(0)]).astype(np.float32)


class FeatureStore:
    """Computes (or reads from cache) and keeps in memory each named feature for a list of samples.

    `view` gives the store of an augmented view of the same samples (an
    `emofuse.inputs.views.AugmentedView`, or a speed factor): the features the view applies to are
    computed on the transformed source (``view.wrap(extractor)``); every other feature (action
    units, text, metadata for a speed view) is the original store's, shared.
    """

    def __init__(self, samples: list[Sample], cache_dir: str | Path | None = None, progress: bool = True) -> None:
        self.samples = samples
        self.cache_dir = cache_dir
        self.progress = progress
        self.augmentation: Any = None  # the AugmentedView of a view store, None for the original
        self._original: FeatureStore | None = None
        self._views: dict[Any, FeatureStore] = {}
        self._arrays: dict[str, list[np.ndarray | None]] = {}

    @property
    def speed(self) -> float:
        """The speed factor of a speed view (1.0 for the original store and other views)."""
        return float(getattr(self.augmentation, "factor", 1.0))

    def view(self, view: Any) -> "FeatureStore":
        """The store of ``view`` of the same samples (an AugmentedView, a speed factor, or None /
        1.0: the original); the same object for the same view, so its arrays stay in memory."""
        original = self._original or self
        view = _as_view(view)
        if view is None:
            return original
        if view not in original._views:
            store = FeatureStore(self.samples, self.cache_dir, self.progress)
            store.augmentation, store._original = view, original
            original._views[view] = store
        store = original._views[view]
        if hasattr(original, "labels"):
            store.labels = original.labels
        return store

    def forget(self, view: Any) -> None:
        """Drop the arrays of ``view`` from memory (they stay in the on-disk cache), and those of any
        view wrapping it (e.g. the level-normalised copy of an input plan with ``utterance_norm``)."""
        original = self._original or self
        view = _as_view(view)
        for key in [k for k in original._views if k == view or getattr(k, "inner", None) == view]:
            del original._views[key]

    def get(self, name: str, shard: tuple[int, int] | None = None) -> list[np.ndarray | None]:
        """One array per sample (``[T, D]``), None where the sample lacks the source. With ``shard``
        (``(k, n)``, `emofuse.features.driver.extract`) only that share of the missing cache
        entries is computed and the result is not kept (other shards' entries may be None)."""
        extractor = self.extractor(name)
        if self._original is not None:
            if not self.augmentation.applies_to(extractor):
                return self._original.get(name, shard)
            from emofuse.features.corrupted import audio_pool
            from emofuse.inputs.views import wrap_view

            extractor = wrap_view(self.augmentation, extractor, audio_pool(self.samples))  # babble: other speakers
        if name in self._arrays:
            return self._arrays[name]
        from emofuse.features.driver import extract

        arrays = [None if a is None else np.asarray(a, dtype=np.float32)
                  for a in extract(extractor, self.samples, self.cache_dir, self.progress, shard)]
        if shard is None:
            self._arrays[name] = arrays
        return arrays

    @staticmethod
    def extractor(name: str) -> Any:
        """The registered extractor ``name`` with its default options (`ConfigError` listing the features)."""
        from emofuse.features import get_extractor, list_extractors

        if name not in list_extractors(None):
            raise ConfigError(f"unknown feature {name!r}; available: {', '.join(list_extractors(None))}")
        return get_extractor(name)

    def modality(self, names: list[str], pooled: bool = False) -> list[np.ndarray | None]:
        """Arrays for one modality made of ``names`` (`emofuse.inputs.plan.modality_arrays`: several
        names must be vectors, or ``pooled``, and are concatenated; a sample missing any of them
        has the modality absent, None)."""
        from emofuse.inputs.plan import modality_arrays

        return modality_arrays([self.get(n) for n in names], names, pooled)

    def for_recipe(self, features: dict[str, list[str]], pooled: bool = False) -> dict[str, list[np.ndarray | None]]:
        return {m: self.modality(names, pooled=pooled) for m, names in features.items()}


def _as_view(view: Any) -> Any:
    """A view (an `AugmentedView`, or any object with ``applies_to`` and ``wrap``) as is; a speed
    factor as a `SpeedView` (None for 1.0 or None: the original)."""
    if view is None or (hasattr(view, "applies_to") and hasattr(view, "wrap")):
        return view
    from emofuse.features.augment import check_factor
    from emofuse.inputs.views import SpeedView

    factor = check_factor(view)
    return None if factor == 1.0 else SpeedView(factor)


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
            if np.isnan(frames).any():  # frames without data (whole NaN rows) stay out of the statistics
                frames = frames[~np.isnan(frames).all(axis=1)]
            mean, std = frames.mean(0), frames.std(0)
            std[std < 1e-6] = 1.0
            for i in have:
                normed[i] = ((arrays[i] - mean) / std).astype(np.float32)
        out[m] = normed
    return out
