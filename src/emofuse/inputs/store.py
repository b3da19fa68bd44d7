"""A feature store over one input given in memory, for prediction (and a service).

`InputStore` offers what `emofuse.inputs.plan.InputPlan.arrays` reads from a
`emofuse.features.store.FeatureStore` (``samples``, ``get(name)``, ``view(view)``), for one input:
audio features are computed from the waveform the caller decoded (so the audio track, duration
limit and speech check the predictor applies hold), every other source (text, action-unit rows,
metadata, signal files, ...) goes through the one extraction driver
(`emofuse.features.driver.extract`) and its cache. A view's store computes only the features the
view applies to and shares the others, exactly like a `FeatureStore` view.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from emofuse.data.record import Sample

#: Rate of the waveforms `InputStore` is given (`emofuse.media.audio.load_audio` decodes to it).
SAMPLE_RATE = 16000


class InputStore:
    """Features of one input (see the module docstring).

    Args:
        sample: the input; ``sample.sources`` holds what is given ("face" row, "signal" file, ...).
        extractor: ``extractor(name)`` -> the configured extractor of feature ``name``.
        waveform: returns the decoded mono audio at 16 kHz (called on first use); None: no audio.
        transcript: returns the text to read (called on first use of a text feature); None or an
            empty text leaves the text features absent.
        cache_dir: feature cache root for the driver (None: the default).
    """

    def __init__(self, sample: Sample, extractor: Callable[[str], Any], *,
                 waveform: Callable[[], np.ndarray] | None = None,
                 transcript: Callable[[], str | None] | None = None,
                 cache_dir: str | Path | None = None) -> None:
        self.samples = [sample]
        self.extractor = extractor
        self.cache_dir = cache_dir
        self.augmentation: Any = None  # the view of a view store, None for the original
        self._waveform = waveform
        self._transcript = transcript
        self._original: InputStore | None = None
        self._views: dict[Any, InputStore] = {}
        self._arrays: dict[str, list[np.ndarray | None]] = {}
        #: whether this view store changed a feature the input has (False: the view repeats the original)
        self.changed = False

    def view(self, view: Any) -> "InputStore":
        """The store of ``view`` of the same input (None: the original); one per view."""
        original = self._original or self
        if view is None:
            return original
        if view not in original._views:
            store = InputStore(self.samples[0], self.extractor, waveform=self._waveform,
                               transcript=self._transcript, cache_dir=self.cache_dir)
            store.augmentation, store._original = view, original
            original._views[view] = store
        return original._views[view]

    def get(self, name: str) -> list[np.ndarray | None]:
        """``[array]`` (float32 ``[T, D]``) or ``[None]`` when the input lacks the feature's source."""
        if name in self._arrays:
            return self._arrays[name]
        extractor = self.extractor(name)
        if self._original is not None:
            if not self.augmentation.applies_to(extractor):
                return self._original.get(name)
            extractor = self.augmentation.wrap(extractor)
        array = self._compute(extractor)
        self._arrays[name] = [None if array is None else np.asarray(array, dtype=np.float32)]
        self.changed = self.changed or (self._original is not None and array is not None)
        return self._arrays[name]

    def _compute(self, extractor: Any) -> np.ndarray | None:
        sample = self.samples[0]
        if extractor.source == "audio":  # from the waveform as decoded for this prediction
            return None if self._waveform is None else extractor(self._waveform(), SAMPLE_RATE)
        if extractor.source == "text":
            text = None if self._transcript is None else self._transcript()
            if not text:
                return None
            sample.sources["text"] = text
        from emofuse.features.driver import extract

        return extract(extractor, [sample], self.cache_dir, False)[0]
