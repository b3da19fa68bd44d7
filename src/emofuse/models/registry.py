"""A timm-style model registry: ``@register_model``, ``create_model``, ``list_models``."""

from __future__ import annotations

import reprlib
import fnmatch
import inspect
import typing
from collections.abc import Callable
from typing import Any

from emofuse.errors import ConfigError
from emofuse.typecheck import conforms, describe

_REGISTRY: dict[str, Callable[..., Any]] = {}


def register_model(name_or_cls: str | type | None = None) -> Callable:
    """Register a model class (or factory) under a name; usable as ``@register_model`` or
    ``@register_model("name")``. The class's ``__init__`` must accept ``num_classes`` and
    ``input_dims`` first, then keyword hyper-parameters."""

    def wrap(obj: Any, name: str | None = None) -> Any:
        key = name or getattr(obj, "default_name", None) or obj.__name__.lower()
        if key in _REGISTRY and _REGISTRY[key] is not obj:
            raise ValueError(f"model name {key!r} is already registered")
        _REGISTRY[key] = obj
        if inspect.isclass(obj):
            obj.model_name = key
        return obj

    if isinstance(name_or_cls, str):
        return lambda obj: wrap(obj, name_or_cls)
    if name_or_cls is None:
        return wrap
    return wrap(name_or_cls)


def _ensure_loaded() -> None:
    import emofuse.models  # noqa: F401  (registers the zoo)


def list_models(pattern: str = "*") -> list[str]:
    """Names of registered models matching a glob pattern, sorted."""
    _ensure_loaded()
    return sorted(n for n in _REGISTRY if fnmatch.fnmatch(n, pattern))


def model_options(name: str) -> dict[str, Any]:
    """Keyword options of a registered model's constructor (besides ``num_classes`` and
    ``input_dims``) with their type annotations (`inspect.Parameter.empty` when unannotated)."""
    _ensure_loaded()
    if name not in _REGISTRY:
        raise ConfigError(f"unknown model {name!r}; available: {', '.join(sorted(_REGISTRY))}")
    factory = _REGISTRY[name]
    try:
        hints = typing.get_type_hints(factory.__init__ if inspect.isclass(factory) else factory)
    except Exception:  # noqa: BLE001  (an annotation that does not evaluate: no type checks)
        hints = {}
    return {p.name: hints.get(p.name, inspect.Parameter.empty)
            for p in inspect.signature(factory).parameters.values()
            if p.name not in ("num_classes", "input_dims") and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def check_model_kwargs(name: str, kwargs: dict[str, Any]) -> None:
    """`ConfigError` for an unknown model, an option its constructor does not take or a value whose
    type does not match the constructor's annotation (named ``model_kwargs.<option>``)."""
    options = model_options(name)
    takes_any = any(p.kind is p.VAR_KEYWORD for p in inspect.signature(_REGISTRY[name]).parameters.values())
    unknown = sorted(set(kwargs) - set(options))
    if unknown and not takes_any:
        raise ConfigError(f"model_kwargs: {name} has no option {', '.join(map(repr, unknown))}; "
                          f"options: {', '.join(options)}")
    for key, value in kwargs.items():
        hint = options.get(key, inspect.Parameter.empty)
        if hint is not inspect.Parameter.empty and not conforms(value, hint):
            raise ConfigError(f"model_kwargs.{key}={reprlib.repr(value)} must be {describe(hint)}")


def check_model(name: str, kwargs: dict[str, Any], modalities: list[str]) -> None:
    """`check_model_kwargs`, then build the model once for ``modalities`` (tiny input sizes, the
    global RNG left untouched) so constructor checks (required modalities, divisible head counts,
    odd kernels, ...) fail now rather than after feature extraction."""
    import torch

    check_model_kwargs(name, kwargs)
    try:
        with torch.random.fork_rng(devices=[]):
            _REGISTRY[name](num_classes=2, input_dims={m: 8 for m in modalities}, **kwargs)
    except ConfigError as exc:
        raise ConfigError(f"model {name}: {exc}") from None
    except (TypeError, ValueError, KeyError, IndexError, AssertionError, RuntimeError) as exc:
        raise ConfigError(f"model {name} cannot be built with these model_kwargs for modalities "
                          f"{', '.join(modalities)}: {type(exc).__name__}: {exc}") from None


def create_model(name: str, num_classes: int, input_dims: dict[str, int], **kwargs: Any):
    """Build a registered model. Unknown names, options or option types raise a `ConfigError`."""
    check_model_kwargs(name, kwargs)
    model = _REGISTRY[name](num_classes=num_classes, input_dims=input_dims, **kwargs)
    model.model_name = name
    model.hparams_ = dict(kwargs)
    return model
