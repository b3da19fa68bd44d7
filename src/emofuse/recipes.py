"""Recipes: a YAML file naming a model, its hyper-parameters, the features per modality and the
training configuration. The benchmark and ``emofuse train`` both run recipes.

Format::

    name: tfn_whisper_au          # optional; defaults to the file stem
    model: tfn                    # a registered model, or "logreg" for the classical baseline
    model_kwargs: {subnet_dims: 32}
    features: {audio: whisper, face: au}    # a list of names concatenates vector features
    train: {lr: 0.001, max_epochs: 60}      # TrainConfig keys
    data: {speed_perturb: [0.9, 1.1], test_time_augment: true}   # see DATA_KEYS

A recipe may start from another one (a built-in name, or a YAML path relative to its own file)::

    base: of_cmaer_cat_cmaa_ravdess   # everything of that recipe but its name and description;
    train: {refit: true}              # model_kwargs / train / data entries override key by key,
                                      # model and features replace the base's
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
#: Sections a recipe with ``base`` merges key by key into its base's (the others replace them).
MERGED_SECTIONS = ("model_kwargs", "train", "data")
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


def recipe_from_dict(raw: dict[str, Any], default_name: str = "recipe", source: str = "<dict>",
                     base_folder: Path | None = None) -> Recipe:
    """Validate a recipe mapping (its ``base`` merged in; a relative base path is looked up in
    ``base_folder``); unknown keys or missing fields raise `ConfigError` naming ``source``."""
    raw = _resolve_base(raw, source, base_folder)
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


def read_config(name_or_path: str | Path, relative_to: Path | None = None,
                kind: str = "recipe") -> tuple[Any, str, str, Path | None]:
    """(parsed YAML, stem, source for messages, folder for relative paths inside it; None for a
    built-in) of a config (a recipe, a ladder) given as a YAML path (relative to ``relative_to``
    when given) or a built-in name; `ConfigError` naming it when it is neither, or bad YAML."""
    path = Path(name_or_path)
    if relative_to is not None and not path.is_absolute():
        path = relative_to / path
    if path.suffix in (".yaml", ".yml") and path.is_file():
        text, stem, source, folder = path.read_text(encoding="utf-8"), path.stem, str(path), path.parent
    else:
        res = resources.files("emofuse") / "configs" / f"{name_or_path}.yaml"
        if not res.is_file():
            raise ConfigError(f"unknown {kind} {str(name_or_path)!r}: not a YAML file and not one of "
                              f"{', '.join(builtin_recipe_names())}")
        text, stem, source, folder = (res.read_text(encoding="utf-8"), str(name_or_path),
                                      f"emofuse/configs/{name_or_path}.yaml", None)
    try:
        return yaml.safe_load(text), stem, source, folder
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: invalid YAML: {exc}") from None


def _resolve_base(raw: Any, source: str, folder: Path | None, chain: tuple[str, ...] = ()) -> Any:
    """``raw`` with its ``base`` recipe (recursively) merged in: `MERGED_SECTIONS` key by key,
    every other key of ``raw`` replacing the base's; the base's name and description are not kept."""
    if not isinstance(raw, dict) or "base" not in raw:
        return raw
    base_name = raw["base"]
    if not isinstance(base_name, str) or not base_name:
        raise ConfigError(f"{source}: 'base' must name a recipe")
    try:
        base_raw, _, base_source, base_folder = read_config(base_name, folder)
    except ConfigError as exc:
        raise ConfigError(f"{source}: base: {exc}") from None
    if base_source in chain + (source,):
        raise ConfigError(f"{source}: 'base' recipes form a cycle: {' -> '.join(chain + (source, base_source))}")
    base = _resolve_base(base_raw, base_source, base_folder, chain + (source,))
    if not isinstance(base, dict):
        raise ConfigError(f"{base_source} (base of {source}): a recipe must be a mapping")
    merged = {k: v for k, v in base.items() if k not in ("name", "description")}
    for key, value in raw.items():
        if key == "base":
            continue
        if key in MERGED_SECTIONS and isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


def load_recipe(name_or_path: str | Path) -> Recipe:
    """Load a recipe from a YAML path or by the name of a built-in recipe (its ``base`` merged in)."""
    raw, stem, source, folder = read_config(name_or_path)
    return recipe_from_dict(raw, default_name=stem, source=source, base_folder=folder)
