"""Augmented views: a named transformation of a sample's sources that changes some features.

A view decides which extractors it affects (`AugmentedView.applies_to`) and how
(`AugmentedView.wrap` returns an extractor computing the features of the transformed source),
so that a view's features are computed, cached and batched like any other feature and every
feature it does not affect stays the original one. Views serve twice:

- **training views**: each training sample is added once more per view (augmented copies);
- **test-time views**: class probabilities are averaged over the original and each view
  (`emofuse.inputs.plan.average_over_views`).

`SpeedView` (speed perturbation of the audio, `emofuse.features.augment`) is the first kind;
`CorruptionView` (one corruption of `emofuse.media.corrupt`, e.g. the standard test list,
`corruption_views`) and `CorruptMixView` (each clip its own draw from the training distribution)
wrap audio extractors with `emofuse.features.corrupted.Corrupted`; views with ``needs_pool`` get the
store's (speaker, audio path) clips (`wrap_view`).
A new kind is one class registered with `register_view`; nothing else needs to change::

    @register_view
    @dataclass(frozen=True)
    class GainView(AugmentedView):
        kind: ClassVar[str] = "gain"
        db: float = 6.0
        @property
        def name(self) -> str: return f"gain{self.db:g}"
        def applies_to(self, extractor) -> bool: return extractor.source == "audio"
        def wrap(self, extractor): return Gained(extractor, self.db)

Views are frozen dataclasses (hashable, compared by value) and saved in checkpoints as
``{"kind": ..., <fields>}`` (`to_dict` / `view_from_dict`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

from emofuse.errors import ConfigError

_KINDS: dict[str, type["AugmentedView"]] = {}


class AugmentedView:
    """Base class of the augmented views (subclasses are frozen dataclasses whose fields are the
    view's settings, JSON numbers/strings/booleans)."""

    kind: ClassVar[str] = ""

    @property
    def name(self) -> str:
        """Short name used in results and logs, e.g. ``speed0.9``."""
        raise NotImplementedError

    def applies_to(self, extractor: Any) -> bool:
        """Whether this view changes the features of ``extractor`` (others stay the original)."""
        raise NotImplementedError

    def wrap(self, extractor: Any) -> Any:
        """An extractor computing ``extractor``'s features of the transformed source (its name
        and config must differ from the original's, so cached entries never mix)."""
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        """``{"kind": ..., **settings}``, the form saved in a checkpoint's input plan."""
        return {"kind": self.kind, **{f.name: getattr(self, f.name) for f in dataclasses.fields(self)}}  # type: ignore[arg-type]

    @staticmethod
    def from_dict(data: Any, where: str = "view") -> "AugmentedView":
        return view_from_dict(data, where)

    def __str__(self) -> str:
        return self.name


def register_view(cls: type[AugmentedView]) -> type[AugmentedView]:
    """Class decorator: make a view kind known to `view_from_dict` under ``cls.kind``."""
    if not cls.kind:
        raise ValueError(f"{cls.__name__} needs a non-empty 'kind'")
    if cls.kind in _KINDS and _KINDS[cls.kind] is not cls:
        raise ValueError(f"view kind {cls.kind!r} is already registered by {_KINDS[cls.kind].__name__}")
    _KINDS[cls.kind] = cls
    return cls


def list_view_kinds() -> list[str]:
    return sorted(_KINDS)


def view_from_dict(data: Any, where: str = "view") -> AugmentedView:
    """The view a `AugmentedView.to_dict` describes; `ConfigError` naming ``where`` and the
    problem (not an object, unknown kind, unknown or invalid settings)."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: a view must be an object with a 'kind', got {data!r:.80}")
    kind = data.get("kind")
    if kind not in _KINDS:
        raise ConfigError(f"{where}: unknown view kind {kind!r}; known: {', '.join(list_view_kinds())}")
    cls = _KINDS[kind]
    settings = {k: v for k, v in data.items() if k != "kind"}
    allowed = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(settings) - allowed)
    if unknown:
        raise ConfigError(f"{where}: view kind {kind!r} has no setting(s) {', '.join(unknown)}")
    try:
        return cls(**settings)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from None


@register_view
@dataclass(frozen=True)
class SpeedView(AugmentedView):
    """The clip played ``factor`` times faster (tempo and pitch; `emofuse.features.augment`).
    Affects the extractors that read the audio; every other feature is the original one."""

    kind: ClassVar[str] = "speed"
    factor: float

    def __post_init__(self) -> None:
        from emofuse.features.augment import check_factor

        object.__setattr__(self, "factor", check_factor(self.factor))
        if self.factor == 1.0:
            raise ConfigError("a speed view needs a factor other than 1.0 (the original)")

    @property
    def name(self) -> str:
        return f"speed{self.factor:g}"

    def applies_to(self, extractor: Any) -> bool:
        return getattr(extractor, "source", None) == "audio"

    def wrap(self, extractor: Any) -> Any:
        from emofuse.features.augment import SpeedPerturbed

        return SpeedPerturbed(extractor, self.factor)


def speed_views(factors: Any, source: str = "speed_perturb") -> tuple[SpeedView, ...]:
    """`SpeedView` per factor of a recipe's ``data.speed_perturb`` / ``test_time_augment`` list
    (checked: numbers in [0.5, 2], distinct, none equal to 1)."""
    from emofuse.features.augment import check_factors

    return tuple(SpeedView(f) for f in check_factors(factors, source))


def recipe_views(recipe: Any) -> tuple[tuple[AugmentedView, ...], tuple[AugmentedView, ...]]:
    """``(training views, test-time views)`` a recipe's ``data`` asks for: ``speed_perturb``
    factors become training `SpeedView` s, ``test_time_augment`` (true: the same factors, or a
    list) test-time ones; ``corrupt_augment: N`` adds the training views `CorruptMixView` (seeds 1..N)."""
    mixes = tuple(CorruptMixView(seed) for seed in range(1, corrupt_augment_copies(recipe.data) + 1))
    return (tuple(SpeedView(f) for f in recipe.train_speeds) + mixes, tuple(SpeedView(f) for f in recipe.test_speeds))


#: Most corrupted training copies a recipe may ask for.
MAX_CORRUPT_AUGMENT = 20


def corrupt_augment_copies(data: Any) -> int:
    """A recipe ``data``'s ``corrupt_augment`` (0 when absent), checked: a whole number 0..20."""
    value = (data or {}).get("corrupt_augment") or 0
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_CORRUPT_AUGMENT:
        raise ConfigError(f"data.corrupt_augment must be a whole number of corrupted training copies from 0 to "
                          f"{MAX_CORRUPT_AUGMENT}, got {value!r}")
    return value


def wrap_view(view: Any, extractor: Any, pool: Any = ()) -> Any:
    """``view.wrap(extractor)``, giving ``pool`` (the store's (speaker, audio path) clips) to views
    that need one (``needs_pool``: babble mixes other speakers' clips)."""
    return view.wrap(extractor, pool=pool) if getattr(view, "needs_pool", False) else view.wrap(extractor)


def _is_audio(extractor: Any) -> bool:
    return getattr(extractor, "source", None) == "audio"


@register_view
@dataclass(frozen=True)
class CorruptionView(AugmentedView):
    """The clip under one corruption (`emofuse.media.corrupt.Corruption`: ``corruption`` kind,
    ``level``, ``seed``), e.g. a condition of the standard test list (`corruption_views`).
    Affects the extractors that read the audio."""

    kind: ClassVar[str] = "corruption"
    corruption: str
    level: float
    seed: int

    def __post_init__(self) -> None:
        c = self.as_corruption()
        object.__setattr__(self, "level", c.level)

    def as_corruption(self) -> Any:
        from emofuse.media.corrupt import Corruption

        return Corruption(self.corruption, self.level, self.seed)

    @property
    def name(self) -> str:
        return self.as_corruption().name

    @property
    def needs_pool(self) -> bool:
        return self.corruption == "babble"

    def applies_to(self, extractor: Any) -> bool:
        return _is_audio(extractor)

    def wrap(self, extractor: Any, pool: Any = ()) -> Any:
        from emofuse.features.corrupted import Corrupted

        return Corrupted(extractor, self.as_corruption(), pool)


@register_view
@dataclass(frozen=True)
class CorruptMixView(AugmentedView):
    """Each clip under its own corruption drawn from the TRAINING distribution
    (`emofuse.media.corrupt.TrainingMix`, from ``seed`` and the sample id): a training copy."""

    kind: ClassVar[str] = "corrupt_mix"
    seed: int
    needs_pool: ClassVar[bool] = True

    def __post_init__(self) -> None:
        from emofuse.media.corrupt import TrainingMix

        TrainingMix(self.seed)

    @property
    def name(self) -> str:
        return f"mix{self.seed}"

    def applies_to(self, extractor: Any) -> bool:
        return _is_audio(extractor)

    def wrap(self, extractor: Any, pool: Any = ()) -> Any:
        from emofuse.features.corrupted import Corrupted
        from emofuse.media.corrupt import TrainingMix

        return Corrupted(extractor, TrainingMix(self.seed), pool)


def corruption_views() -> dict[str, CorruptionView]:
    """The standard TEST corruptions (`emofuse.media.corrupt.standard_test_corruptions`) as views,
    by name (``white_snr10``, ``reverb_rt0.4``, ``mp3_8k``, ``telephone``, ...)."""
    from emofuse.media.corrupt import standard_test_corruptions

    return {c.name: CorruptionView(c.kind, c.level, c.seed) for c in standard_test_corruptions()}


@dataclass(frozen=True)
class UtteranceNormView(AugmentedView):
    """Per-utterance level normalisation (`emofuse.features.corrupted.LevelNormalized`) of every
    audio extractor, under ``inner`` (a view, or None: the original clip). Not saved as a view: an
    input plan with ``utterance_norm`` builds it around each of its views (`InputPlan.source_store`)."""

    kind: ClassVar[str] = "utterance_norm"
    inner: AugmentedView | None = None

    @property
    def name(self) -> str:
        return "lnorm" if self.inner is None else f"lnorm+{self.inner.name}"

    @property
    def needs_pool(self) -> bool:
        return bool(getattr(self.inner, "needs_pool", False))

    def applies_to(self, extractor: Any) -> bool:
        return _is_audio(extractor) or (self.inner is not None and self.inner.applies_to(extractor))

    def wrap(self, extractor: Any, pool: Any = ()) -> Any:
        from emofuse.features.corrupted import LevelNormalized

        if not _is_audio(extractor):
            return wrap_view(self.inner, extractor, pool)
        normed = LevelNormalized(extractor)
        if self.inner is None or not self.inner.applies_to(normed):
            return normed
        return wrap_view(self.inner, normed, pool)
