"""A named registry: the one implementation behind the modality and source-kind registries."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from emofuse.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Items by name, in registration order.

    Args:
        kind: what an item is, for the duplicate-name error ("modality", "source kind").
        unknown: the start of the unknown-name error ("unknown modality").
        choices: the words before the known names in that error ("modalities", "choose one of").
    """

    def __init__(self, kind: str, unknown: str, choices: str) -> None:
        self.kind, self.unknown, self.choices = kind, unknown, choices
        self._items: dict[str, T] = {}

    def add(self, name: str, item: T) -> T:
        """Register ``item`` as ``name`` (`ValueError` for an empty or already used name)."""
        if not name or name in self._items:
            raise ValueError(f"{self.kind} name {name!r} is empty or already registered")
        self._items[name] = item
        return item

    def get(self, name: str) -> T:
        """The item registered as ``name`` (`ConfigError` listing the known names otherwise)."""
        if name not in self._items:
            raise ConfigError(f"{self.unknown} {name!r}; {self.choices}: {', '.join(self.names())}")
        return self._items[name]

    def names(self) -> list[str]:
        """Registered names, in registration order."""
        return list(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def build(self, name: str | dict[str, Any], **cfg: Any) -> Any:
        """An instance of the class registered as ``name`` with settings ``cfg``, or from a config dict
        ``{"name": ..., **settings}`` (`ConfigError` for an unknown name or setting)."""
        if isinstance(name, dict):
            cfg = {**{k: v for k, v in name.items() if k != "name"}, **cfg}
            name = name.get("name", "")
        cls: Any = self.get(str(name))
        try:
            return cls(**cfg)
        except TypeError as exc:
            raise ConfigError(f"{self.kind} {name!r}: bad settings {sorted(cfg)}: {exc}") from exc
