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

import reprlib
import difflib
import stat
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
#: Keys of a recipe's ``data`` section and their types: transductive per-speaker z-scoring,
#: dialogue turn windows, speed-perturbed training copies (factors) and test-time augmentation
#: (true: the speed_perturb factors; or its own list of factors). null means the default.
DATA_TYPES: dict[str, Any] = {"speaker_norm": bool, "max_dialogue_length": int, "speed_perturb": list[float],
                              "test_time_augment": bool | list[float], "corrupt_augment": int,
                              "utterance_norm": bool}
DATA_KEYS = set(DATA_TYPES)
#: Config files (recipes, ladders) larger than this are refused before parsing.
MAX_CONFIG_BYTES = 256 * 1024
#: Most values a config may hold once its YAML aliases are expanded ("billion laughs" guard).
MAX_YAML_VALUES = 100_000
#: Deepest nesting of mappings and lists a config may have.
MAX_YAML_DEPTH = 32


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
        raise ConfigError(f"{source}: unknown {kind} keys {sorted(unknown, key=str)}; allowed: {sorted(allowed)}")
    for key in required:
        if key not in raw:
            raise ConfigError(f"{source}: missing required key {key!r}")


def recipe_from_dict(raw: dict[str, Any], default_name: str = "recipe", source: str = "<dict>",
                     base_folder: Path | None = None) -> Recipe:
    """Validate a recipe mapping completely (its ``base`` merged in; a relative base path is looked
    up in ``base_folder``): keys, value types, modalities, feature names, the train config, the
    model and its kwargs. Any problem raises `ConfigError` naming ``source`` and the field."""
    raw = _resolve_base(raw, source, base_folder)
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: a recipe must be a mapping")
    check_keys(raw, allowed=_KEYS, required=("model", "features"), source=source, kind="recipe")
    sections = {}
    for key in MERGED_SECTIONS:  # model_kwargs, train, data: mappings (null: empty)
        section = {} if raw.get(key) is None else raw[key]
        if not isinstance(section, dict):
            raise ConfigError(f"{source}: {key!r} must be a mapping, got {reprlib.repr(section)}")
        sections[key] = dict(section)
    recipe = Recipe(name=_name(raw.get("name", default_name), source), model=_text(raw["model"], "model", source),
                    features=_features(raw["features"], source),
                    description=_text(raw.get("description", ""), "description", source, empty_ok=True), **sections)
    validate_recipe(recipe, source)
    return recipe


def validate_recipe(recipe: Recipe, source: str) -> None:
    """`ConfigError` naming ``source`` for anything in ``recipe`` that training would trip on later.
    Cheap checks come first: PyTorch is imported only to check the model and its kwargs."""
    from emofuse.data.modalities import list_modalities

    unknown = [m for m in recipe.features if m not in list_modalities()]
    if unknown:
        raise ConfigError(f"{source}: features: unknown modality {reprlib.repr(unknown[0])}; "
                          f"modalities: {', '.join(list_modalities())}")
    _check_train(recipe.train, source)
    _check_data(recipe, source)
    known = known_feature_names()
    for modality, names in recipe.features.items():
        for name in names:
            if name not in known:
                near = difflib.get_close_matches(name, known, n=1)
                hint = f" (did you mean {near[0]!r}?)" if near else f"; features: {', '.join(sorted(known))}"
                raise ConfigError(f"{source}: features.{modality}: unknown feature {reprlib.repr(name)}{hint}")
    bad_keys = [k for k in recipe.model_kwargs if not isinstance(k, str)]
    if bad_keys:
        raise ConfigError(f"{source}: model_kwargs: option names must be strings, got {reprlib.repr(bad_keys[0])}")
    if recipe.classical:
        if recipe.model_kwargs:
            raise ConfigError(f"{source}: model_kwargs: {recipe.model} takes none, got {sorted(recipe.model_kwargs)}")
        return
    from emofuse.model_options import check_options

    try:
        check_options(recipe.model, recipe.model_kwargs)  # names and types, from the source: no torch
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    from emofuse.models.registry import check_model

    try:
        check_model(recipe.model, recipe.model_kwargs, recipe.modalities)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def known_feature_names() -> set[str]:
    """Every feature name a recipe may use: the registered extractors of every source kind (audio,
    text, table rows such as ``au``, speaker metadata, signals), which `FeatureStore` computes."""
    from emofuse.features import list_extractors

    return set(list_extractors(None))


def _name(value: Any, source: str) -> str:
    name = _text(value, "name", source)
    if "/" in name or "\\" in name or name in (".", ".."):
        raise ConfigError(f"{source}: 'name' must not be a path, got {reprlib.repr(name)}")
    return name


def _text(value: Any, key: str, source: str, empty_ok: bool = False) -> str:
    if not isinstance(value, str) or not (value or empty_ok):
        raise ConfigError(f"{source}: {key!r} must be a{'' if empty_ok else ' non-empty'} string, "
                          f"got {reprlib.repr(value)}")
    return value


def _features(value: Any, source: str) -> dict[str, list[str]]:
    """``features`` as modality -> list of feature names (a single name may be given as a string)."""
    if not isinstance(value, dict) or not value:
        raise ConfigError(f"{source}: 'features' must map modality -> feature name(s), got {reprlib.repr(value)}")
    features = {}
    for modality, names in value.items():
        names = [names] if isinstance(names, str) else names
        if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
            raise ConfigError(f"{source}: features.{modality} must be a feature name or a non-empty list of them, "
                              f"got {reprlib.repr(value[modality])}")
        features[str(modality)] = list(names)
    return features


def _check_train(train: dict[str, Any], source: str) -> None:
    from emofuse.training.config import TrainConfig

    try:
        TrainConfig.from_dict(train)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def _check_data(recipe: Recipe, source: str) -> None:
    from emofuse.inputs.views import corrupt_augment_copies
    from emofuse.typecheck import conforms, describe

    check_keys(recipe.data, allowed=DATA_KEYS, required=(), source=source, kind="data")
    try:
        recipe.train_speeds, recipe.test_speeds  # the augmentation factors, with their own messages
        corrupt_augment_copies(recipe.data)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    for key, value in recipe.data.items():
        if value is not None and not conforms(value, DATA_TYPES[key]):
            raise ConfigError(f"{source}: data.{key}={reprlib.repr(value)} must be {describe(DATA_TYPES[key])}")
    length = recipe.data.get("max_dialogue_length")
    if length is not None and length < 1:
        raise ConfigError(f"{source}: data.max_dialogue_length={reprlib.repr(length)} must be >= 1")


def builtin_recipe_names() -> list[str]:
    """Stems of the YAML recipes shipped in ``emofuse/configs``."""
    folder = resources.files("emofuse") / "configs"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def read_config(name_or_path: str | Path, relative_to: Path | None = None,
                kind: str = "recipe") -> tuple[Any, str, str, Path | None]:
    """(parsed YAML, stem, source for messages, folder for relative paths inside it; None for a
    built-in) of a config (a recipe, a ladder) given as a ``.yaml``/``.yml`` path (relative to
    ``relative_to`` when given) or a built-in name, which never contains a path separator.
    `ConfigError` naming it when the file is missing, too large or not valid, bounded YAML."""
    text = str(name_or_path)
    if Path(text).suffix in (".yaml", ".yml"):
        path = Path(name_or_path)
        if relative_to is not None and not path.is_absolute():
            path = relative_to / path
        return parse_yaml(read_config_text(path, kind), str(path)), path.stem, str(path), path.parent
    if not text or "/" in text or "\\" in text:
        raise ConfigError(f"{kind} {text!r}: built-in {kind} names contain no path separator; "
                          "give a file path ending in .yaml")
    resource = resources.files("emofuse") / "configs" / f"{text}.yaml"
    if not resource.is_file():
        near = difflib.get_close_matches(text, builtin_recipe_names(), n=3)
        raise ConfigError(f"unknown {kind} {text!r}: not a built-in name"
                          + (f" (did you mean {', '.join(near)}?)" if near else "")
                          + "; give a .yaml file or a name from emofuse/configs")
    source = f"emofuse/configs/{text}.yaml"
    return parse_yaml(resource.read_text(encoding="utf-8"), source), text, source, None


def read_config_text(path: Path, kind: str = "config") -> str:
    """The UTF-8 text of a config file; `ConfigError` when it is missing, not a regular file or
    over `MAX_CONFIG_BYTES` (checked before reading more than that)."""
    too_big = ConfigError(f"{path}: over {MAX_CONFIG_BYTES // 1024} KB, too large for a config file")
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"{path}: not a regular file")
        if info.st_size > MAX_CONFIG_BYTES:
            raise too_big
        with path.open("rb") as fh:
            data = fh.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        builtin = path.stem in builtin_recipe_names()
        raise ConfigError(f"{path}: file not found" + (f" (the built-in {kind} is named {path.stem!r}, without .yaml)"
                                                       if builtin else "")) from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read ({getattr(exc, 'strerror', None) or exc})") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise too_big
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a UTF-8 text file") from None


def parse_yaml(text: str, source: str) -> Any:
    """Safe YAML with bounded aliases and nesting: `ConfigError` naming ``source`` for invalid YAML,
    a document over `MAX_YAML_VALUES` values once its aliases are expanded (the "billion laughs"),
    a recursive alias, or nesting deeper than `MAX_YAML_DEPTH`. Checked before anything is built."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        values, depth = _expanded_size(node, {}, set())
        if values > MAX_YAML_VALUES:
            raise ConfigError(f"{source}: over {MAX_YAML_VALUES} values once its YAML aliases are expanded "
                              "(an alias bomb?); a config holds far fewer")
        if depth > MAX_YAML_DEPTH:
            raise ConfigError(f"{source}: nested too deeply (over {MAX_YAML_DEPTH} levels)")
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: invalid YAML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{source}: nested too deeply (over {MAX_YAML_DEPTH} levels)") from None
    except _RecursiveAlias:
        raise ConfigError(f"{source}: a YAML alias refers to a node that contains it") from None
    finally:
        loader.dispose()


class _RecursiveAlias(Exception):
    pass


def _expanded_size(node: yaml.Node, memo: dict[int, tuple[int, int]], open_nodes: set[int]) -> tuple[int, int]:
    """(values, depth) of ``node`` with every alias expanded, capped just above `MAX_YAML_VALUES`;
    each distinct node is visited once (aliases share nodes), so a bomb costs what its text does."""
    key = id(node)
    if key in memo:
        return memo[key]
    if key in open_nodes:
        raise _RecursiveAlias
    open_nodes.add(key)
    if isinstance(node, yaml.MappingNode):
        children = [child for pair in node.value for child in pair]
    elif isinstance(node, yaml.SequenceNode):
        children = node.value
    else:
        children = []
    values, depth = 1, 0
    for child in children:
        child_values, child_depth = _expanded_size(child, memo, open_nodes)
        values, depth = min(values + child_values, MAX_YAML_VALUES + 1), max(depth, child_depth)
    open_nodes.discard(key)
    memo[key] = (values, depth + 1)
    return memo[key]


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
