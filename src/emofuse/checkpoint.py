"""Checkpoints: ``model.safetensors`` weights + ``config.json`` (config, label map, features, versions).

Loading never unpickles: weights come from safetensors, everything else from JSON.
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from emofuse.atomic import atomic_write_text
from emofuse.errors import ConfigError, DataError

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

    @property
    def test_time_speeds(self) -> tuple[float, ...]:
        """Speed factors whose predictions are averaged with the original's (the recipe's
        ``data.test_time_augment``, saved as ``meta.test_time_augment``); empty: none."""
        from emofuse.features.augment import check_factors

        try:
            return check_factors(self.meta.get("test_time_augment") or [], "meta.test_time_augment")
        except ConfigError as exc:
            raise ConfigError(f"checkpoint {self.meta.get('recipe', '')}: {exc}") from None


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
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, tmp, metadata=metadata)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_checkpoint(
    directory: str | Path,
    model: torch.nn.Module,
    *,
    labels: list[str],
    features: dict[str, dict[str, Any]],
    extras: dict[str, torch.Tensor] | None = None,
    meta: dict[str, Any] | None = None,
) -> Path:
    """Save ``model`` to ``directory`` (created). ``features`` maps modality -> extractor config;
    ``extras`` are further tensors (e.g. feature normalisation statistics); ``meta`` any JSON data
    (training config, metrics, dataset, fold)."""
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
        "versions": package_versions(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    atomic_write_text(directory / CONFIG, json.dumps(config, indent=2, sort_keys=False))
    return directory


def read_config(directory: str | Path) -> dict[str, Any]:
    """A checkpoint folder's ``config.json`` (model spec, labels, features, ``meta``), checked."""
    config_path = Path(directory) / CONFIG
    if not config_path.is_file():
        raise DataError(config_path, "checkpoint config not found (is this a checkpoint folder?)")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(config_path, f"not valid JSON: {exc}") from None
    if not isinstance(config, dict) or config.get("format_version") != FORMAT_VERSION:
        raise DataError(config_path, f"unsupported checkpoint format "
                                     f"{config.get('format_version') if isinstance(config, dict) else None!r}")
    return config


def load_checkpoint(directory: str | Path, map_location: str = "cpu") -> LoadedCheckpoint:
    """Rebuild the model saved by :func:`save_checkpoint`. Errors name the file and the problem."""
    from emofuse.models.registry import create_model

    directory = Path(directory)
    config = read_config(directory)
    spec = config["model"]
    model = create_model(spec["name"], num_classes=spec["num_classes"], input_dims=spec["input_dims"], **spec.get("kwargs", {}))
    weights_path = directory / WEIGHTS
    try:
        state = load_file(str(weights_path), device=map_location)
    except FileNotFoundError:
        raise DataError(weights_path, "weights file not found") from None
    except Exception as exc:  # safetensors raises its own error types for corrupt files
        raise DataError(weights_path, f"cannot read weights: {exc}") from None
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise DataError(weights_path, f"weights do not match the model config: {exc}") from None
    extras: dict[str, torch.Tensor] = {}
    if (directory / EXTRAS).is_file():
        extras = load_file(str(directory / EXTRAS), device=map_location)
    model.eval()
    return LoadedCheckpoint(model=model, labels=list(config["labels"]), features=config.get("features", {}),
                            extras=extras, meta={**config.get("meta", {}), "versions": config.get("versions", {}),
                                                 "created": config.get("created")})


#: A seed-ensemble folder: ``ensemble.json`` naming member checkpoint sub-folders.
ENSEMBLE = "ensemble.json"


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
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(path, f"not valid JSON: {exc}") from None
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
