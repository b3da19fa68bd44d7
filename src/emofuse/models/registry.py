"""A timm-style model registry: ``@register_model``, ``create_model``, ``list_models``."""

from __future__ import annotations

import fnmatch
import inspect
from collections.abc import Callable
from typing import Any

from emofuse.errors import ConfigError

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


def create_model(name: str, num_classes: int, input_dims: dict[str, int], **kwargs: Any):
    """Build a registered model. Unknown names raise a `ConfigError` listing what exists."""
    _ensure_loaded()
    if name not in _REGISTRY:
        raise ConfigError(f"unknown model {name!r}; available: {', '.join(sorted(_REGISTRY))}")
    model = _REGISTRY[name](num_classes=num_classes, input_dims=input_dims, **kwargs)
    model.model_name = name
    model.hparams_ = dict(kwargs)
    return model
