"""Registered models' keyword options read from the model files' source, without importing them.

(This module lies outside ``emofuse.models`` because importing that package builds the zoo.)
`model_module_names` is also where the zoo (`emofuse.models._zoo`) learns which modules to import,
so a new model is one new file in ``emofuse/models/``.

Checking a recipe's ``model`` and ``model_kwargs`` against the constructors would import PyTorch
(seconds). The same facts are in the source: every class decorated ``@register_model("name")`` in
``emofuse/models/``, its ``__init__`` options and their annotations. `check_options` uses them so that a
misspelt model or option, or a value of the wrong type, is reported in a fraction of a second;
`emofuse.models.registry.check_model` then builds the model for the checks only code can make.
A test keeps this reading equal to the registry's (`registry.model_options`).
"""

from __future__ import annotations

import ast
import collections.abc
import functools
import pkgutil
import reprlib
import sys
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emofuse.errors import ConfigError
from emofuse.typecheck import conforms, describe

#: names an option annotation may use; an annotation using anything else accepts any value
_ANNOTATION_NAMES = {
    "int": int, "float": float, "str": str, "bool": bool, "None": None, "list": list, "tuple": tuple,
    "dict": dict, "Sequence": collections.abc.Sequence, "Mapping": collections.abc.Mapping,
    "Any": Any, "Literal": typing.Literal, "Optional": typing.Optional, "Union": typing.Union,
}
_BUILT_FROM_DATA = ("self", "num_classes", "input_dims")

#: the ``emofuse/models`` folder (found without importing the package, which needs PyTorch)
MODELS_FOLDER = Path(__file__).parent / "models"
#: modules of ``emofuse.models`` that hold shared code, not model designs (private ``_*`` ones are skipped too)
INFRASTRUCTURE_MODULES = frozenset({"base", "registry", "layers"})


def model_module_names(folder: Path = MODELS_FOLDER) -> list[str]:
    """Names of the model modules in ``folder`` (``emofuse/models``): every module there, found with
    `pkgutil.iter_modules` (nothing is imported), except private and infrastructure ones. Sorted."""
    return sorted(info.name for info in pkgutil.iter_modules([str(folder)])
                  if not info.ispkg and not info.name.startswith("_") and info.name not in INFRASTRUCTURE_MODULES)


@dataclass(frozen=True)
class ModelOptions:
    """A registered model's constructor options (name -> annotation; `Any` when unannotated)."""

    options: dict[str, Any]
    takes_any: bool  # the constructor has ``**kwargs``


def _annotation(node: ast.expr | None) -> Any:
    if node is None:
        return Any
    try:
        return eval(compile(ast.Expression(node), "<annotation>", "eval"), {"__builtins__": {}}, _ANNOTATION_NAMES)
    except Exception:  # noqa: BLE001  (a class or name defined in the model file: not checked here)
        return Any


def _registered_name(cls: ast.ClassDef) -> str | None:
    for deco in cls.decorator_list:
        if (isinstance(deco, ast.Call) and getattr(deco.func, "id", None) == "register_model" and deco.args
                and isinstance(deco.args[0], ast.Constant) and isinstance(deco.args[0].value, str)):
            return deco.args[0].value
    return None


def _constructor_options(cls: ast.ClassDef) -> ModelOptions:
    init = next((n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"), None)
    if init is None:
        return ModelOptions({}, takes_any=True)  # inherited constructor: leave it to the registry
    params = [*init.args.posonlyargs, *init.args.args, *init.args.kwonlyargs]
    options = {p.arg: _annotation(p.annotation) for p in params if p.arg not in _BUILT_FROM_DATA}
    return ModelOptions(options, takes_any=init.args.kwarg is not None)


@functools.cache
def source_model_options() -> dict[str, ModelOptions]:
    """Every ``@register_model("name")`` class in the model modules (`model_module_names`) and its options."""
    found: dict[str, ModelOptions] = {}
    for path in (MODELS_FOLDER / f"{name}.py" for name in model_module_names()):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in tree.body:
            if isinstance(node, ast.ClassDef) and (name := _registered_name(node)):
                found[name] = _constructor_options(node)
    return found


def check_options(name: str, kwargs: dict[str, Any]) -> None:
    """`ConfigError` for a model name that no model file registers, an option its constructor does
    not take, or a value whose type does not fit the option's annotation. Models registered at run
    time from elsewhere (already in the registry) are left to `registry.check_model_kwargs`."""
    registry = sys.modules.get("emofuse.models.registry")  # imported only if models were loaded already
    if registry is not None and name in registry._REGISTRY and name not in source_model_options():
        return
    spec = source_model_options().get(name)
    if spec is None:
        raise ConfigError(f"unknown model {name!r}; available: {', '.join(sorted(source_model_options()))}")
    unknown = sorted(set(kwargs) - set(spec.options))
    if unknown and not spec.takes_any:
        raise ConfigError(f"model_kwargs: {name} has no option {', '.join(map(repr, unknown))}; "
                          f"options: {', '.join(spec.options)}")
    for key, value in kwargs.items():
        hint = spec.options.get(key, Any)
        if not conforms(value, hint):
            raise ConfigError(f"model_kwargs.{key}={reprlib.repr(value)} must be {describe(hint)}")
