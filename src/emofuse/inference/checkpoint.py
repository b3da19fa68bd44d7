"""Checkpoints: ``model.safetensors`` weights + ``config.json`` (config, label map, features, versions).

Loading never unpickles: weights come from safetensors, everything else from JSON.
"""

from __future__ import annotations

import json
import platform
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file

from emofuse.atomic import atomic_write_bytes, atomic_write_text
from emofuse.errors import ConfigError, DataError, EmofuseError
from emofuse.training.distributed import rank_zero_only

FORMAT_VERSION = 1
WEIGHTS = "model.safetensors"
EXTRAS = "extras.safetensors"
CONFIG = "config.json"


@dataclass
class LoadedCheckpoint:
    """A model rebuilt from a checkpoint folder, with everything needed to run it."""

    model: torch.nn.Module
    labels: list[str]
    features: dict[str, dict[str, Any]]
    extras: dict[str, torch.Tensor] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    #: the saved input plan (``config.json`` ``input_plan``); None for a checkpoint saved before plans
    plan: Any = None
    #: ``config.json`` ``calibration`` (temperature, abstention threshold, ...; see
    #: `emofuse.evaluation.calibration.calibration_block`); None: uncalibrated (temperature 1, no abstention)
    calibration: dict[str, Any] | None = None

    @property
    def temperature(self) -> float:
        """The calibration temperature (1.0 for an uncalibrated checkpoint)."""
        return float((self.calibration or {}).get("temperature", 1.0))

    @property
    def threshold(self) -> float | None:
        """The abstention threshold on the calibrated top probability (None: never abstain)."""
        value = (self.calibration or {}).get("threshold")
        return None if value is None else float(value)

    @property
    def input_plan(self) -> Any:
        """How this checkpoint's inputs are built (`emofuse.inputs.plan.InputPlan`): the saved plan,
        or for an older checkpoint one derived from its ``features`` and ``meta.test_time_augment``."""
        from emofuse.inputs.plan import InputPlan

        return self.plan if self.plan is not None else InputPlan.from_checkpoint(self.features, self.meta)

    @property
    def test_time_speeds(self) -> tuple[float, ...]:
        """Speed factors whose predictions are averaged with the original's (the plan's test views)."""
        return tuple(self.input_plan.test_time_speeds)


def package_versions() -> dict[str, str]:
    """Versions of the packages that shape a checkpoint's numbers."""
    import emofuse

    versions = {"emofuse": emofuse.__version__, "torch": torch.__version__, "numpy": np.__version__,
                "python": platform.python_version()}
    for name in ("lightning", "librosa", "opensmile", "faster_whisper", "sklearn"):
        try:
            versions[name] = __import__(name).__version__
        except Exception:  # noqa: BLE001  (optional package)
            pass
    return versions


def _atomic_save_tensors(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str] | None = None) -> None:
    from safetensors.torch import save

    atomic_write_bytes(path, save({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, metadata=metadata))


@rank_zero_only
def save_checkpoint(
    directory: str | Path,
    model: torch.nn.Module,
    *,
    labels: list[str],
    features: dict[str, dict[str, Any]],
    extras: dict[str, torch.Tensor] | None = None,
    meta: dict[str, Any] | None = None,
    input_plan: Any = None,
    calibration: dict[str, Any] | None = None,
) -> Path:
    """Save ``model`` to ``directory`` (created). ``features`` maps modality -> extractor config;
    ``extras`` are further tensors (e.g. feature normalisation statistics); ``meta`` any JSON data
    (training config, metrics, dataset, fold); ``input_plan`` the `emofuse.inputs.plan.InputPlan`
    the inputs were built with (saved as ``input_plan``); ``calibration`` the temperature and abstention
    threshold fitted on validation speakers (`emofuse.evaluation.calibration.calibration_block`)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if len(labels) != model.num_classes:
        raise ValueError(f"{len(labels)} labels for a model with {model.num_classes} classes")
    _atomic_save_tensors(dict(model.state_dict()), directory / WEIGHTS, {"format": "pt"})
    if extras:
        _atomic_save_tensors(extras, directory / EXTRAS)
    config = {
        "format_version": FORMAT_VERSION,
        "model": model.config(),
        "labels": list(labels),
        "features": features,
        "meta": meta or {},
        **({} if input_plan is None else {"input_plan": input_plan.to_dict()}),
        **({} if calibration is None else {"calibration": calibration}),
        "versions": package_versions(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    atomic_write_text(directory / CONFIG, json.dumps(config, indent=2, sort_keys=False))
    return directory


#: Largest ``config.json`` / ``ensemble.json`` read (a real one is a few KB).
MAX_JSON_BYTES = 8 * 1024 * 1024


def read_json(path: Path, what: str) -> Any:
    """A small JSON file, parsed; too large, undecodable, invalid or too deeply nested JSON raises
    `DataError` naming the file."""
    try:
        size = path.stat().st_size
        if size > MAX_JSON_BYTES:
            raise DataError(path, f"{what} is {size} bytes, more than the {MAX_JSON_BYTES} a checkpoint's can be")
        text = path.read_bytes().decode("utf-8")
        return json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(path, f"not valid JSON: {exc}") from None
    except RecursionError:
        raise DataError(path, "not valid JSON: nested too deeply") from None
    except OSError as exc:
        raise DataError(path, f"cannot read {what}: {exc.strerror or exc}") from None


def _finite(tensor: torch.Tensor) -> bool:
    """Whether every value of a float tensor is finite (numpy's check: torch's costs far more
    for the many small tensors of a checkpoint on a busy CPU)."""
    values = tensor.detach().cpu()
    if values.dtype == torch.bfloat16:
        values = values.float()
    return bool(np.isfinite(values.numpy()).all())


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _check_model(spec: Any, bad) -> None:
    if not isinstance(spec, dict):
        raise bad("model", f"must be an object, got {_type_name(spec)}")
    if not isinstance(spec.get("name"), str) or not spec["name"]:
        raise bad("model.name", f"must be a model name, got {spec.get('name')!r}")
    n = spec.get("num_classes")
    if not _is_int(n) or n < 2:
        raise bad("model.num_classes", f"must be an integer >= 2, got {n!r}")
    dims = spec.get("input_dims")
    if not isinstance(dims, dict) or not dims:
        raise bad("model.input_dims", f"must map modality -> feature dimension, got {dims!r:.80}")
    for m, d in dims.items():
        if not m or not _is_int(d) or d < 1:
            raise bad(f"model.input_dims.{m}", f"must be a positive integer, got {d!r}")
    if not isinstance(spec.setdefault("kwargs", {}), dict):
        raise bad("model.kwargs", f"must be an object of hyper-parameters, got {_type_name(spec['kwargs'])}")


def _check_labels(labels: Any, num_classes: int, bad) -> None:
    if not isinstance(labels, list):
        raise bad("labels", f"must be a list of class names, got {_type_name(labels)}")
    wrong = [x for x in labels if not isinstance(x, str) or not x.strip()]
    if wrong:
        raise bad("labels", f"class names must be non-empty strings, got {wrong[0]!r}")
    if len(labels) != num_classes:
        raise bad("labels", f"{len(labels)} class names for model.num_classes = {num_classes}")
    repeated = sorted(x for x, n in Counter(labels).items() if n > 1)
    if repeated:
        raise bad("labels", f"repeats {', '.join(repeated)}")


def _check_features(features: Any, bad) -> None:
    from emofuse.inputs.plan import check_modality_spec

    if not isinstance(features, dict):
        raise bad("features", f"must map modality -> feature spec, got {_type_name(features)}")
    for m, spec in features.items():
        check_modality_spec(f"features.{m}", spec, bad)


def _check_meta(meta: Any, bad) -> None:
    if not isinstance(meta, dict):
        raise bad("meta", f"must be an object, got {_type_name(meta)}")
    for key in ("train_speakers", "val_speakers"):
        value = meta.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise bad(f"meta.{key}", f"must be a list of speaker names, got {value!r:.80}")


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and bool(np.isfinite(value))


def _check_calibration(block: Any, bad) -> None:
    """``calibration``: an object with a positive ``temperature`` and a ``threshold`` in [0, 1] (or null)."""
    if not isinstance(block, dict):
        raise bad("calibration", f"must be an object, got {_type_name(block)}")
    t = block.get("temperature", 1.0)
    if not _number(t) or not 0 < t < 100:
        raise bad("calibration.temperature", f"must be a number in (0, 100), got {t!r}")
    thr = block.get("threshold")
    if thr is not None and (not _number(thr) or not 0 <= thr <= 1):
        raise bad("calibration.threshold", f"must be a probability in [0, 1] or null, got {thr!r}")


def write_calibration(directory: str | Path, calibration: dict[str, Any] | None) -> Path:
    """Set (None: remove) the ``calibration`` of a saved checkpoint's ``config.json``, checked and written
    atomically; e.g. a fold-0 model calibrated on the validation speakers of k-fold runs of its recipe."""
    directory = Path(directory)
    config = read_config(directory)
    config.pop("calibration", None)
    if calibration is not None:
        config["calibration"] = calibration
    check_config(json.loads(json.dumps(config)), directory / CONFIG)
    atomic_write_text(directory / CONFIG, json.dumps(config, indent=2, sort_keys=False))
    return directory / CONFIG


def check_config(config: Any, path: Path) -> dict[str, Any]:
    """``config`` (a parsed ``config.json``) with the type and value of every field the loader uses
    checked; a problem raises `DataError` naming ``path`` and the field."""

    def bad(name: str, problem: str) -> DataError:
        return DataError(path, f"field {name}: {problem}")

    if not isinstance(config, dict):
        raise DataError(path, f"not a checkpoint config: a JSON object is needed, got {_type_name(config)}")
    version = config.get("format_version")
    if not _is_int(version) or version != FORMAT_VERSION:
        raise bad("format_version", f"unsupported checkpoint format {version!r} (this emofuse reads {FORMAT_VERSION})")
    _check_model(config.get("model"), bad)
    _check_labels(config.get("labels"), config["model"]["num_classes"], bad)
    _check_features(config.setdefault("features", {}), bad)
    _check_meta(config.setdefault("meta", {}), bad)
    if "input_plan" in config:
        from emofuse.inputs.plan import check_saved_plan

        check_saved_plan(config, bad)
    if "calibration" in config:
        _check_calibration(config["calibration"], bad)
    if not isinstance(config.setdefault("versions", {}), dict):
        raise bad("versions", f"must be an object, got {_type_name(config['versions'])}")
    return config


def read_config(directory: str | Path) -> dict[str, Any]:
    """A checkpoint folder's ``config.json`` (model spec, labels, features, ``meta``), checked
    (see `check_config`)."""
    config_path = Path(directory) / CONFIG
    if not config_path.is_file():
        raise DataError(config_path, "checkpoint config not found (is this a checkpoint folder?)")
    return check_config(read_json(config_path, "checkpoint config"), config_path)


def _weight_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape from a safetensors header (no tensor is read)."""
    from safetensors import safe_open

    if not path.is_file():
        raise DataError(path, "weights file not found")
    try:
        with safe_open(str(path), framework="pt") as f:
            return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except Exception as exc:  # noqa: BLE001  (safetensors raises its own error types for corrupt files)
        raise DataError(path, f"cannot read weights (not a safetensors file?): {exc}") from None


def _build_model(spec: dict[str, Any], config_path: Path, weights_path: Path) -> torch.nn.Module:
    """The model ``spec`` describes, built on the meta device first (no memory) so that settings
    that do not match the weights file are refused before anything is allocated."""
    from emofuse.models.registry import create_model, list_models

    if spec["name"] not in list_models():
        raise DataError(config_path, f"field model.name: unknown model {spec['name']!r}; "
                                     f"available: {', '.join(list_models())}")

    def build() -> torch.nn.Module:
        try:
            return create_model(spec["name"], num_classes=spec["num_classes"], input_dims=spec["input_dims"],
                                **spec["kwargs"])
        except (TypeError, ValueError, RuntimeError, AssertionError, KeyError, EmofuseError) as exc:
            raise DataError(config_path, f"field model.kwargs: {spec['name']} cannot be built with these "
                                         f"settings ({exc})") from None

    with torch.device("meta"):
        probe = build()
    expected = {k: tuple(v.shape) for k, v in probe.state_dict().items()}
    found = _weight_shapes(weights_path)
    if expected != found:
        missing = sorted(set(expected) - set(found))
        extra = sorted(set(found) - set(expected))
        shape = sorted(k for k in set(expected) & set(found) if expected[k] != found[k])
        parts = [f"missing {', '.join(missing[:3])}" if missing else "",
                 f"unexpected {', '.join(extra[:3])}" if extra else "",
                 ", ".join(f"{k} has shape {list(found[k])}, the model's is {list(expected[k])}" for k in shape[:3])]
        raise DataError(weights_path, "weights do not match the model in config.json: "
                                      + "; ".join(p for p in parts if p))
    return build()


def _load_extras(path: Path, input_dims: dict[str, int], map_location: str) -> dict[str, torch.Tensor]:
    """``extras.safetensors`` (absent: none), with the standardisation statistics checked:
    ``norm/<modality>/mean`` and ``std`` in pairs, one finite value per input dimension, std > 0."""
    if not path.exists():
        return {}
    try:
        extras = load_file(str(path), device=map_location)
    except Exception as exc:  # noqa: BLE001  (safetensors raises its own error types for corrupt files)
        raise DataError(path, f"cannot read standardisation statistics (not a safetensors file?): {exc}") from None
    for key, value in extras.items():
        parts = key.split("/")
        if parts[0] != "norm":
            continue
        if len(parts) != 3 or parts[2] not in ("mean", "std"):
            raise DataError(path, f"field {key}: unknown entry (expected norm/<modality>/mean or .../std)")
        m, what = parts[1], parts[2]
        if m not in input_dims:
            raise DataError(path, f"field {key}: {m!r} is not one of the model's inputs ({', '.join(input_dims)})")
        partner = f"norm/{m}/{'std' if what == 'mean' else 'mean'}"
        if partner not in extras:
            raise DataError(path, f"field {partner}: missing (needed with {key})")
        if not value.is_floating_point() or tuple(value.shape) != (input_dims[m],):
            raise DataError(path, f"field {key}: a {value.dtype} tensor of shape {list(value.shape)}; the model's "
                                  f"{m} input needs {input_dims[m]} float values")
        if not _finite(value):
            raise DataError(path, f"field {key}: NaN or infinite values")
        if what == "std" and not (value > 0).all():
            raise DataError(path, f"field {key}: standard deviations must be > 0 "
                                  f"({int((value <= 0).sum())} are not)")
    return extras


def load_checkpoint(directory: str | Path, map_location: str = "cpu") -> LoadedCheckpoint:
    """Rebuild the model saved by :func:`save_checkpoint`. Every field is checked before use: a
    problem raises `DataError` naming the file and the field (see `check_config`)."""
    directory = Path(directory)
    config = read_config(directory)
    spec = config["model"]
    weights_path = directory / WEIGHTS
    model = _build_model(spec, directory / CONFIG, weights_path)
    try:
        state = load_file(str(weights_path), device=map_location)
    except FileNotFoundError:
        raise DataError(weights_path, "weights file not found") from None
    except Exception as exc:  # noqa: BLE001  (safetensors raises its own error types for corrupt files)
        raise DataError(weights_path, f"cannot read weights: {exc}") from None
    broken = [k for k, v in state.items() if v.is_floating_point() and not _finite(v)]
    if broken:
        raise DataError(weights_path, f"field {broken[0]}: NaN or infinite weights"
                                      + (f" (and {len(broken) - 1} more tensors)" if len(broken) > 1 else ""))
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise DataError(weights_path, f"weights do not match the model config: {exc}") from None
    extras = _load_extras(directory / EXTRAS, model.input_dims, map_location)
    model.eval()
    return LoadedCheckpoint(model=model, labels=list(config["labels"]), features=config["features"],
                            extras=extras, meta={**config["meta"], "versions": config["versions"],
                                                 "created": config.get("created")},
                            plan=_saved_plan(config), calibration=config.get("calibration"))


def _saved_plan(config: dict[str, Any]) -> Any:
    """The checked ``input_plan`` of a config as an `InputPlan` (None when it has none)."""
    from emofuse.inputs.plan import InputPlan

    return InputPlan.from_dict(config["input_plan"]) if "input_plan" in config else None


#: A seed-ensemble folder: ``ensemble.json`` naming member checkpoint sub-folders.
ENSEMBLE = "ensemble.json"


@rank_zero_only
def save_ensemble(directory: str | Path, members: list[str], meta: dict[str, Any] | None = None) -> Path:
    """Write ``ensemble.json`` listing member checkpoint folders (relative to ``directory``)."""
    directory = Path(directory)
    missing = [m for m in members if not (directory / m / CONFIG).is_file()]
    if missing:
        raise DataError(directory, f"ensemble members are not checkpoint folders: {', '.join(missing)}")
    path = directory / ENSEMBLE
    atomic_write_text(path, json.dumps({"format_version": FORMAT_VERSION, "members": list(members),
                                        "meta": meta or {}}, indent=2))
    return path


def checkpoint_members(directory: str | Path) -> list[Path]:
    """The checkpoint folders behind ``directory``: itself, or the members its ``ensemble.json`` names."""
    directory = Path(directory)
    path = directory / ENSEMBLE
    if not path.is_file() or (directory / CONFIG).is_file():
        return [directory]
    data = read_json(path, "ensemble manifest")
    members = data.get("members") if isinstance(data, dict) else None
    if not isinstance(members, list) or not members or not all(isinstance(m, str) for m in members):
        raise DataError(path, "needs a non-empty 'members' list of checkpoint folder names")
    out = []
    for name in members:
        member = (directory / name).resolve()
        if directory.resolve() not in member.parents:
            raise DataError(path, f"member {name!r} lies outside the ensemble folder")
        out.append(member)
    return out


def load_members(sources: Sequence[str | Path | LoadedCheckpoint]) -> list[LoadedCheckpoint]:
    """Load checkpoints for use together (an ensemble folder stands for its members) and check
    that they share labels, features and input sizes; a mismatch raises `ConfigError` naming the
    checkpoint."""
    given: list[str | Path | LoadedCheckpoint] = []
    for source in sources:
        given += [source] if isinstance(source, LoadedCheckpoint) else checkpoint_members(source)
    if not given:
        raise ConfigError("at least one checkpoint is needed")
    members = [g if isinstance(g, LoadedCheckpoint) else load_checkpoint(g) for g in given]
    first = members[0]
    for where, other in zip(given[1:], members[1:]):
        for what, a, b in (("labels", first.labels, other.labels), ("features", first.features, other.features),
                           ("input sizes", first.model.input_dims, other.model.input_dims)):
            if a != b:
                raise ConfigError(f"{where}: ensemble members must share {what}; this one has {b}, the first has {a}")
    return members
