"""Recipes: a YAML file naming a model, its hyper-parameters, the features per modality and the
training configuration. The benchmark and ``emofuse train`` both run recipes.

Format::

    name: tfn_whisper_au          # optional; defaults to the file stem
    model: tfn                    # a registered model, or "logreg" for the classical baseline
    model_kwargs: {subnet_dims: 32}
    features: {audio: whisper, face: au}    # a list of names concatenates vector features
    train: {lr: 0.001, max_epochs: 60}      # TrainConfig keys
    data: {speed_perturb: [0.9, 1.1], test_time_augment: true}   # see DATA_KEYS
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from emofuse.errors import ConfigError

CLASSICAL_MODELS = ("logreg",)
_KEYS = {"name", "model", "model_kwargs", "features", "train", "data", "description", "published"}
#: Keys of a recipe's ``data`` section: transductive per-speaker z-scoring (bool), dialogue turn
#: windows (int), speed-perturbed training copies (list of factors) and test-time augmentation
#: (true: the speed_perturb factors; or its own list of factors).
DATA_KEYS = {"speaker_norm", "max_dialogue_length", "speed_perturb", "test_time_augment"}


@dataclass
class Recipe:
    """A runnable model specification."""

    name: str
    model: str
    features: dict[str, list[str]]
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    description: str = ""

    @property
    def modalities(self) -> list[str]:
        return list(self.features)

    @property
    def classical(self) -> bool:
        return self.model in CLASSICAL_MODELS

    @property
    def train_speeds(self) -> tuple[float, ...]:
        """Speed factors of the augmented training copies (``data.speed_perturb``); empty: none."""
        from emofuse.features.augment import check_factors

        return check_factors(self.data.get("speed_perturb") or [], f"{self.name}: data.speed_perturb")

    @property
    def test_speeds(self) -> tuple[float, ...]:
        """Speed factors averaged at test time besides the original (``data.test_time_augment``)."""
        from emofuse.features.augment import check_factors

        tta = self.data.get("test_time_augment") or False
        if tta is True:
            if not self.train_speeds:
                raise ConfigError(f"{self.name}: data.test_time_augment: true needs data.speed_perturb factors")
            return self.train_speeds
        return check_factors(tta or [], f"{self.name}: data.test_time_augment")

    @property
    def feature_names(self) -> list[str]:
        return sorted({f for names in self.features.values() for f in names})

    def with_features(self, features: dict[str, list[str]], name: str | None = None) -> "Recipe":
        """A copy using other features (or a subset of modalities)."""
        return Recipe(name or self.name, self.model, {m: list(v) for m, v in features.items()},
                      dict(self.model_kwargs), dict(self.train), dict(self.data), self.description)


def check_keys(raw: dict[str, Any], *, allowed: set[str], required: tuple[str, ...], source: str,
               kind: str) -> None:
    """`ConfigError` naming ``source`` for keys of ``raw`` outside ``allowed`` or a missing ``required`` one."""
    unknown = set(raw) - allowed
    if unknown:
        raise ConfigError(f"{source}: unknown {kind} keys {sorted(unknown)}; allowed: {sorted(allowed)}")
    for key in required:
        if key not in raw:
            raise ConfigError(f"{source}: missing required key {key!r}")


def recipe_from_dict(raw: dict[str, Any], default_name: str = "recipe", source: str = "<dict>") -> Recipe:
    """Validate a recipe mapping; unknown keys or missing fields raise `ConfigError` naming ``source``."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: a recipe must be a mapping")
    check_keys(raw, allowed=_KEYS, required=("model", "features"), source=source, kind="recipe")
    feats = raw["features"]
    if not isinstance(feats, dict) or not feats:
        raise ConfigError(f"{source}: 'features' must map modality -> feature name(s)")
    features = {m: [v] if isinstance(v, str) else list(v) for m, v in feats.items()}
    data = raw.get("data") or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: 'data' must be a mapping")
    check_keys(data, allowed=DATA_KEYS, required=(), source=source, kind="data")
    recipe = Recipe(name=str(raw.get("name", default_name)), model=str(raw["model"]), features=features,
                    model_kwargs=dict(raw.get("model_kwargs") or {}), train=dict(raw.get("train") or {}),
                    data=dict(data), description=str(raw.get("description", "")))
    try:
        recipe.train_speeds, recipe.test_speeds  # validate the augmentation settings now
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    return recipe


def builtin_recipe_names() -> list[str]:
    """Stems of the YAML recipes shipped in ``emofuse/configs``."""
    folder = resources.files("emofuse") / "configs"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_recipe(name_or_path: str | Path) -> Recipe:
    """Load a recipe from a YAML path or by the name of a built-in recipe."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        text, stem, source = path.read_text(encoding="utf-8"), path.stem, str(path)
    else:
        res = resources.files("emofuse") / "configs" / f"{name_or_path}.yaml"
        if not res.is_file():
            raise ConfigError(f"unknown recipe {str(name_or_path)!r}: not a YAML file and not one of "
                              f"{', '.join(builtin_recipe_names())}")
        text, stem, source = res.read_text(encoding="utf-8"), str(name_or_path), f"emofuse/configs/{name_or_path}.yaml"
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: invalid YAML: {exc}") from None
    return recipe_from_dict(raw, default_name=stem, source=source)
