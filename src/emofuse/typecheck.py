"""Does a value read from a config file fit a type annotation? (used for recipe and train-config
values and model keyword arguments, so a wrong type is a clear error before any work starts)."""

from __future__ import annotations

import collections.abc
import types
from typing import Any, Literal, Union, get_args, get_origin

_SEQUENCES = (list, tuple, collections.abc.Sequence)
_MAPPINGS = (dict, collections.abc.Mapping)


def conforms(value: Any, annotation: Any) -> bool:
    """Whether ``value`` (a YAML value) fits ``annotation``: bool, int (not bool), float (int too),
    str, None, unions, ``Literal``, sequences (a list or tuple, never a string) and mappings, with
    their item types. Annotations it does not know (``Any``, classes) accept anything."""
    origin, args = get_origin(annotation), get_args(annotation)
    if annotation is None or annotation is type(None):
        return value is None
    if origin in (Union, types.UnionType):
        return any(conforms(value, a) for a in args)
    if origin is Literal:
        return value in args
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is str:
        return isinstance(value, str)
    if annotation in _SEQUENCES or origin in _SEQUENCES:
        if not isinstance(value, (list, tuple)):
            return False
        if origin is tuple and args and args[-1] is not Ellipsis:
            return len(value) == len(args) and all(conforms(v, a) for v, a in zip(value, args))
        return all(conforms(v, args[0]) for v in value) if args else True
    if annotation in _MAPPINGS or origin in _MAPPINGS:
        if not isinstance(value, dict):
            return False
        key_type, value_type = args or (Any, Any)
        return all(conforms(k, key_type) and conforms(v, value_type) for k, v in value.items())
    return True


def describe(annotation: Any) -> str:
    """A short readable form of an annotation for messages (``int | dict[str, int]``)."""
    if isinstance(annotation, type) and not get_args(annotation):
        return annotation.__name__
    return str(annotation).replace("typing.", "").replace("collections.abc.", "").replace("NoneType", "None")
