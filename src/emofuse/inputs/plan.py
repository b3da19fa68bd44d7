"""The input plan: how a recipe's features become model inputs, the same way everywhere.

One `InputPlan` holds, per modality, the feature names (with their extractor settings), whether
they are pooled to one vector per clip and whether they become dialogue turn windows; whether the
inputs are standardised (statistics fitted on each fold's training samples, `emofuse.inputs.normalize`)
or speaker-normalised (benchmark only, `emofuse.features.store.speaker_normalize`); whether every
audio feature sees the clip level-normalised (``utterance_norm``, at training and prediction time); and the
augmented views (`emofuse.inputs.views`) that add training copies and that test-time
probabilities are averaged over.

- ``InputPlan.from_recipe(recipe)`` makes the plan a recipe trains with; it is saved in every
  checkpoint (``config.json`` key ``input_plan``) and read back with ``from_dict``.
- ``InputPlan.from_checkpoint(features, meta)`` derives it for checkpoints saved before plans
  existed (their ``features`` and ``meta.test_time_augment``).
- `InputPlan.arrays` is the one function turning per-feature arrays into model inputs; the
  benchmark (classical and neural), k-fold training, ``evaluate_checkpoint`` and the `Predictor`
  all call it, on a `FeatureStore` or on any object with ``samples``, ``get(name)`` and
  ``view(view)`` (the predictor's one-input store).
- `average_over_views` is the one test-time averaging.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import numpy as np

from emofuse.errors import ConfigError
from emofuse.inputs.views import AugmentedView, SpeedView, recipe_views, speed_views, view_from_dict

PLAN_VERSION = 1
Arrays = dict[str, list[np.ndarray | None]]
T = TypeVar("T")


class Store(Protocol):
    """What `InputPlan.arrays` reads: `emofuse.features.store.FeatureStore` or the predictor's store."""

    samples: Sequence[Any]

    def get(self, name: str) -> list[np.ndarray | None]: ...

    def view(self, view: AugmentedView) -> "Store": ...


@dataclass(frozen=True)
class ModalityPlan:
    """One modality's input: the features ``names`` (extractor ``configs`` by name), concatenated
    as per-clip vectors when ``pooled`` (or when there are several), turned into dialogue turn
    windows of at most ``dialogue_window`` turns when set."""

    names: tuple[str, ...]
    configs: Mapping[str, dict[str, Any]] = field(default_factory=dict)
    pooled: bool = False
    dialogue_window: int | None = None

    def __post_init__(self) -> None:  # settings per name, {} for a feature saved without any
        object.__setattr__(self, "names", tuple(self.names))
        object.__setattr__(self, "configs", {n: dict(self.configs.get(n, {})) for n in self.names})

    def feature_spec(self) -> dict[str, Any]:
        """The checkpoint's ``features`` entry for this modality (the format older emofuse wrote)."""
        spec: dict[str, Any] = {"names": list(self.names), "configs": {n: dict(self.configs.get(n, {}))
                                                                        for n in self.names}}
        if self.pooled:
            spec["pooled"] = True
        if self.dialogue_window is not None:
            spec["dialogue_window"] = int(self.dialogue_window)
        return spec

    def to_dict(self) -> dict[str, Any]:
        return {"names": list(self.names), "configs": {n: dict(self.configs.get(n, {})) for n in self.names},
                "pooled": self.pooled, "dialogue_window": self.dialogue_window}


def modality_arrays(per_name: Sequence[Sequence[np.ndarray | None]], names: Sequence[str],
                    pooled: bool = False) -> list[np.ndarray | None]:
    """One modality's input per sample from each feature's arrays: a single unpooled feature as
    it is; otherwise the per-clip vectors (`emofuse.features.store.pool_vector`) concatenated into
    ``[1, D]``. Several unpooled features must all be vectors; a sample missing any feature, or
    whose feature is all NaN (no frame with data, `emofuse.inputs.missing`), has the modality
    absent (None)."""
    from emofuse.features.store import pool_vector
    from emofuse.inputs.missing import all_missing

    out: list[np.ndarray | None] = []
    for parts in zip(*per_name):
        if any(p is None or all_missing(p) for p in parts):
            out.append(None)
        elif pooled or len(parts) > 1:
            if not pooled and any(p.shape[0] != 1 for p in parts):
                raise ConfigError(f"features {list(names)} cannot be concatenated: only per-clip vectors can")
            out.append(np.concatenate([pool_vector(p) for p in parts])[None, :])
        else:
            out.append(parts[0])
    return out


def average_over_views(predict: Callable[[T], Any], inputs: Sequence[T]) -> Any:
    """The mean of ``predict(x)`` over ``inputs`` (the original input first, then each test-time
    view of it): the one test-time averaging. ``predict`` returns an array (class probabilities)
    or a mapping of arrays (e.g. probabilities and modality weights), averaged key by key over the
    keys every view gives."""
    outputs = [predict(x) for x in inputs]
    if not outputs:
        raise ConfigError("test-time averaging needs at least the original input")
    if isinstance(outputs[0], Mapping):
        keys = [k for k in outputs[0] if all(k in o for o in outputs)]
        return {k: np.mean([o[k] for o in outputs], axis=0) for k in keys}
    return np.mean(outputs, axis=0)


def _extractor(name: str, configs: Mapping[str, dict[str, Any]]) -> Any:
    """The registered extractor ``name`` with its settings, or None for a feature that is not one."""
    from emofuse.features import get_extractor, list_extractors

    return get_extractor(name, **configs.get(name, {})) if name in list_extractors(None) else None


@dataclass
class InputPlan:
    """How features become model inputs (see the module docstring)."""

    modalities: dict[str, ModalityPlan]
    standardize: bool = True
    speaker_norm: bool = False
    train_views: tuple[AugmentedView, ...] = ()
    test_views: tuple[AugmentedView, ...] = ()
    #: every audio extractor sees the clip at a fixed active-speech level (`emofuse.features.corrupted.LevelNormalized`)
    utterance_norm: bool = False

    # -- making a plan -------------------------------------------------------------------------

    @classmethod
    def from_recipe(cls, recipe: Any) -> "InputPlan":
        """The plan a recipe trains with: pooled vectors for a classical model, dialogue windows of
        ``data.max_dialogue_length`` (default 1) for the model's ``context_modalities``, the views
        of ``data.speed_perturb`` / ``test_time_augment`` that change at least one feature."""
        from emofuse.features import get_extractor, list_extractors

        context = list(recipe.model_kwargs.get("context_modalities") or [])
        unknown = [m for m in context if m not in recipe.features]
        if unknown:
            raise ConfigError(f"context modalities {unknown} have no features; recipe modalities: "
                              f"{list(recipe.features)}")
        window = int(recipe.data.get("max_dialogue_length") or 1)
        modalities = {}
        for m, names in recipe.features.items():
            configs = {n: get_extractor(n).config() for n in names if n in list_extractors(None)}
            modalities[m] = ModalityPlan(tuple(names), {n: configs.get(n, {}) for n in names},
                                         pooled=bool(recipe.classical),
                                         dialogue_window=window if m in context and not recipe.classical else None)
        train, test = recipe_views(recipe)
        plan = cls(modalities, standardize=True, speaker_norm=bool(recipe.data.get("speaker_norm")),
                   utterance_norm=bool(recipe.data.get("utterance_norm")))
        plan.train_views, plan.test_views = plan.applicable(train), plan.applicable(test)
        return plan

    @classmethod
    def from_checkpoint(cls, features: Mapping[str, Any], meta: Mapping[str, Any]) -> "InputPlan":
        """The plan of a checkpoint saved without one: its ``features`` as they are, standardised
        with its saved statistics, test-time speed views from ``meta.test_time_augment``."""
        modalities = {m: ModalityPlan(tuple(spec.get("names", [])), dict(spec.get("configs", {})),
                                      pooled=bool(spec.get("pooled", False)),
                                      dialogue_window=int(spec["dialogue_window"]) if spec.get("dialogue_window")
                                      else None)
                      for m, spec in features.items()}
        plan = cls(modalities)
        try:
            tests = speed_views(meta.get("test_time_augment") or [], "meta.test_time_augment")
        except ConfigError as exc:
            recipe = f" {meta['recipe']}" if meta.get("recipe") else ""
            raise ConfigError(f"checkpoint{recipe}: meta.test_time_augment: {exc}") from None
        plan.test_views = plan.applicable(tests)
        return plan

    def applicable(self, views: Sequence[AugmentedView]) -> tuple[AugmentedView, ...]:
        """The ``views`` that change at least one of the plan's features (a speed view of a recipe
        without audio features would only repeat the original)."""
        extractors = [e for mp in self.modalities.values() for n in mp.names
                      if (e := _extractor(n, mp.configs)) is not None]
        return tuple(v for v in views if any(v.applies_to(e) for e in extractors))

    # -- saving --------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The JSON form saved as ``input_plan`` in a checkpoint's ``config.json``."""
        return {"version": PLAN_VERSION, "modalities": {m: mp.to_dict() for m, mp in self.modalities.items()},
                "standardize": self.standardize, "speaker_norm": self.speaker_norm,
                "train_views": [v.to_dict() for v in self.train_views],
                "test_views": [v.to_dict() for v in self.test_views],
                **({"utterance_norm": True} if self.utterance_norm else {})}  # absent: as older emofuse wrote

    @classmethod
    def from_dict(cls, data: Any, bad: Callable[[str, str], Exception] | None = None) -> "InputPlan":
        """The plan `to_dict` wrote, every field checked: a problem raises ``bad(field, problem)``
        (default: `ConfigError` naming the field)."""
        return _parse_plan(data, bad or (lambda name, problem: ConfigError(f"{name}: {problem}")))

    def feature_specs(self) -> dict[str, dict[str, Any]]:
        """The checkpoint's ``features`` record (modality -> names, configs, pooled, dialogue_window)."""
        return {m: mp.feature_spec() for m, mp in self.modalities.items()}

    @property
    def feature_names(self) -> list[str]:
        return sorted({n for mp in self.modalities.values() for n in mp.names})

    @property
    def views(self) -> tuple[AugmentedView, ...]:
        """Every distinct view, training ones first."""
        return tuple(dict.fromkeys((*self.train_views, *self.test_views)))

    @property
    def test_time_speeds(self) -> list[float]:
        """Speed factors of the test-time views (what results and predictions report)."""
        return [v.factor for v in self.test_views if isinstance(v, SpeedView)]

    # -- building inputs -----------------------------------------------------------------------

    def arrays(self, store: Store, view: AugmentedView | None = None) -> Arrays:
        """Model inputs per modality, one entry per sample of ``store`` (None: absent), computed on
        ``view`` of the sources when given: each modality's features combined (`modality_arrays`),
        speaker-normalised over the store's samples when the plan says so, then cut into dialogue
        windows within the store's samples. The one feature-to-input function."""
        from emofuse.features.store import dialogue_windows, speaker_normalize

        source = self.source_store(store, view)
        out = {m: modality_arrays([source.get(n) for n in mp.names], mp.names, mp.pooled) if mp.names
               else [None] * len(source.samples) for m, mp in self.modalities.items()}
        if self.speaker_norm:
            out = speaker_normalize(out, list(source.samples))
        for m, mp in self.modalities.items():
            if mp.dialogue_window is not None:
                out[m] = dialogue_windows(out[m], list(source.samples), mp.dialogue_window)
        return out

    def source_store(self, store: Store, view: AugmentedView | None = None) -> Store:
        """The store `arrays` reads for ``view`` (None: the original): ``store.view(view)``, every
        audio feature level-normalised first when the plan has ``utterance_norm``
        (`emofuse.inputs.views.UtteranceNormView`)."""
        if self.utterance_norm:
            from emofuse.inputs.views import UtteranceNormView

            return store.view(UtteranceNormView(view))
        return store if view is None else store.view(view)

    def view_arrays(self, store: Store) -> tuple[dict[str, Arrays], dict[str, Arrays]]:
        """``(training views, test-time views)``: view name -> `arrays` of that view; a view used for
        both is computed once (the same object in both)."""
        computed = {v: self.arrays(store, v) for v in self.views}
        return ({v.name: computed[v] for v in self.train_views}, {v.name: computed[v] for v in self.test_views})

    def fit_standardizer(self, arrays: Arrays, indices: Sequence[int]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Per-modality mean/std over the samples at ``indices`` (empty when the plan does not
        standardise)."""
        from emofuse.inputs.normalize import fit_standardizer

        return fit_standardizer(arrays, list(indices)) if self.standardize else {}

    def saved_stats(self, extras: Mapping[str, Any]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """The standardisation statistics a checkpoint saved in its extras (empty when the plan
        does not standardise)."""
        from emofuse.inputs.normalize import stats_from_tensors

        return stats_from_tensors(dict(extras)) if self.standardize else {}

    @staticmethod
    def standardized(arrays: Arrays, stats: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> Arrays:
        """``arrays`` standardised with ``stats`` (modalities without statistics pass through)."""
        from emofuse.inputs.normalize import apply_standardizer

        return apply_standardizer(arrays, dict(stats))



def parse_views(data: Any, where: str, bad: Callable[[str, str], Exception]) -> tuple[AugmentedView, ...]:
    """A checked list of `AugmentedView.to_dict` objects."""
    if not isinstance(data, list):
        raise bad(where, f"must be a list of views, got {type(data).__name__}")
    views = []
    for i, item in enumerate(data):
        try:
            views.append(view_from_dict(item, f"{where}[{i}]"))
        except ConfigError as exc:
            raise bad(f"{where}[{i}]", str(exc).split(": ", 1)[-1]) from None
    if len(set(views)) != len(views):
        raise bad(where, "repeats a view")
    return tuple(views)


def check_modality_spec(where: str, spec: Any, bad: Callable[[str, str], Exception], *,
                        in_plan: bool = False) -> ModalityPlan:
    """One modality's record (``names``, ``configs``, ``pooled``, ``dialogue_window``) checked
    field by field, as a `ModalityPlan`. ``in_plan``: an ``input_plan`` entry (every field known,
    ``dialogue_window`` may be null); otherwise a checkpoint's ``features`` entry (older files: extra
    fields allowed, ``names`` may be missing)."""
    if not isinstance(spec, dict):
        raise bad(where, f"must be an object (names, configs), got {type(spec).__name__ if spec is not None else 'null'}")
    unknown = sorted(set(spec) - {"names", "configs", "pooled", "dialogue_window"})
    if in_plan and unknown:
        raise bad(where, f"unknown field(s) {', '.join(unknown)}")
    names = spec.get("names", None if in_plan else [])
    if not isinstance(names, list) or (in_plan and not names) or not all(isinstance(n, str) and n for n in names):
        raise bad(f"{where}.names", f"must be a non-empty list of feature names, got {names!r:.80}")
    configs = spec.get("configs", {})
    if not isinstance(configs, dict) or not all(isinstance(c, dict) for c in configs.values()):
        raise bad(f"{where}.configs", "must map feature name -> extractor settings (an object each)")
    pooled = spec.get("pooled", False)
    if not isinstance(pooled, bool):
        raise bad(f"{where}.pooled", f"must be true or false, got {pooled!r}")
    window = spec.get("dialogue_window", None if in_plan else 1)
    if (window is not None or not in_plan) and (isinstance(window, bool) or not isinstance(window, int) or window < 1):
        raise bad(f"{where}.dialogue_window", f"must be a positive integer, got {window!r}")
    return ModalityPlan(tuple(names), {n: dict(configs.get(n, {})) for n in names}, pooled,
                        spec.get("dialogue_window"))


def _parse_plan(data: Any, bad: Callable[[str, str], Exception]) -> InputPlan:
    """`InputPlan.from_dict`: every field's type and value checked, ``bad(field, problem)`` raised."""
    if not isinstance(data, dict):
        raise bad("input_plan", f"must be an object, got {type(data).__name__}")
    unknown = sorted(set(data) - {"version", "modalities", "standardize", "speaker_norm", "train_views",
                                  "test_views", "utterance_norm"})
    if unknown:
        raise bad("input_plan", f"unknown field(s) {', '.join(unknown)}")
    if data.get("version") != PLAN_VERSION:
        raise bad("input_plan.version", f"unsupported input plan version {data.get('version')!r} "
                                        f"(this emofuse reads {PLAN_VERSION})")
    modalities = data.get("modalities")
    if not isinstance(modalities, dict) or not modalities:
        raise bad("input_plan.modalities", f"must map modality -> its features, got {modalities!r:.80}")
    for key in ("standardize", "speaker_norm", "utterance_norm"):
        if not isinstance(data.get(key, False), bool):
            raise bad(f"input_plan.{key}", f"must be true or false, got {data[key]!r}")
    return InputPlan({m: check_modality_spec(f"input_plan.modalities.{m}", spec, bad, in_plan=True)
                      for m, spec in modalities.items()},
                     standardize=data.get("standardize", True), speaker_norm=data.get("speaker_norm", False),
                     utterance_norm=data.get("utterance_norm", False),
                     train_views=parse_views(data.get("train_views", []), "input_plan.train_views", bad),
                     test_views=parse_views(data.get("test_views", []), "input_plan.test_views", bad))


def check_saved_plan(config: dict[str, Any], bad: Callable[[str, str], Exception]) -> None:
    """A checkpoint config's ``input_plan``, checked field by field (``bad(field, problem)``) and
    against its ``features`` record, which it must reproduce."""
    specs = _parse_plan(config["input_plan"], bad).feature_specs()
    features = config.get("features", {})
    if set(specs) != set(features):
        raise bad("input_plan.modalities", f"has modalities {sorted(specs)}, field features has {sorted(features)}")
    for m, spec in specs.items():
        for key, default in (("names", None), ("configs", {}), ("pooled", False), ("dialogue_window", None)):
            if spec.get(key, default) != features[m].get(key, default):
                raise bad(f"input_plan.modalities.{m}.{key}", f"is {spec.get(key, default)!r:.80}, field "
                                                              f"features.{m}.{key} says {features[m].get(key, default)!r:.80}")
