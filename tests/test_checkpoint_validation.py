"""Checkpoints that load but are wrong, or are malformed, are refused with exit 2 naming the file and the field."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from emofuse.inference.checkpoint import load_checkpoint, save_checkpoint
from emofuse.cli import main
from emofuse.features import get_extractor
from emofuse.models import create_model
from emofuse.inputs.normalize import stats_to_tensors
from emofuse.inference.predictor import sample_clips

LABELS = ["neutral", "happy", "sad"]
DIM = get_extractor("mfcc").dim


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> tuple[Path, Path]:
    """A small real checkpoint (early fusion on MFCC) and a speech clip it predicts."""
    root = tmp_path_factory.mktemp("ckpt_validation")
    extractor = get_extractor("mfcc")
    torch.manual_seed(0)
    model = create_model("early_concat", num_classes=3, input_dims={"audio": extractor.dim}, hidden=8)
    stats = {"audio": (np.zeros(extractor.dim, np.float32), np.ones(extractor.dim, np.float32))}
    save_checkpoint(root / "good", model, labels=LABELS, extras=stats_to_tensors(stats),
                    features={"audio": {"names": ["mfcc"], "configs": {"mfcc": extractor.config()}}},
                    meta={"train_speakers": ["01"], "val_speakers": ["02"]})
    return root / "good", sample_clips()[0]


def _config(change: Callable[[dict], None]) -> Callable[[Path], None]:
    def apply(ckpt: Path) -> None:
        config = json.loads((ckpt / "config.json").read_text())
        change(config)
        (ckpt / "config.json").write_text(json.dumps(config))
    return apply


def _set(path: str, value) -> Callable[[Path], None]:
    def change(config: dict) -> None:
        *parents, last = path.split(".")
        target = config
        for key in parents:
            target = target[key]
        target[last] = value
    return _config(change)


def _tensors(name: str, change: Callable[[dict], None]) -> Callable[[Path], None]:
    def apply(ckpt: Path) -> None:
        tensors = dict(load_file(str(ckpt / name)))
        change(tensors)
        save_file(tensors, str(ckpt / name))
    return apply


def _first_weight(value: float) -> Callable[[dict], None]:
    def change(t: dict) -> None:
        key = sorted(k for k in t if t[k].is_floating_point())[0]
        t[key] = t[key].clone()
        t[key].view(-1)[0] = value
    return change


def _put(key: str, value: torch.Tensor) -> Callable[[dict], None]:
    return lambda t: t.__setitem__(key, value)


def _write(name: str, data: bytes) -> Callable[[Path], None]:
    return lambda ckpt: (ckpt / name).write_bytes(data)


def _truncate(name: str) -> Callable[[Path], None]:
    def apply(ckpt: Path) -> None:
        data = (ckpt / name).read_bytes()
        (ckpt / name).write_bytes(data[: len(data) // 2])
    return apply


class _Trap:
    """Unpickling this creates the file ``marker``: proof that a pickle was executed."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _deep_json(ckpt: Path) -> None:
    depth = 200_000
    (ckpt / "config.json").write_text('{"format_version": 1, "meta": ' + "[" * depth + "]" * depth + "}")


# (name, corruption, file named in the message, field/problem named in the message)
CASES = [
    ("nan_weight", _tensors("model.safetensors", _first_weight(float("nan"))), "model.safetensors", "NaN or infinite weights"),
    ("inf_weight", _tensors("model.safetensors", _first_weight(float("inf"))), "model.safetensors", "NaN or infinite"),
    ("labels_too_many", _set("labels", LABELS + ["angry", "calm"]), "config.json", "field labels: 5 class names"),
    ("labels_string", _set("labels", "neutral"), "config.json", "field labels"),
    ("labels_duplicate", _set("labels", ["neutral", "happy", "happy"]), "config.json", "field labels: repeats happy"),
    ("labels_integers", _set("labels", [0, 1, 2]), "config.json", "field labels"),
    ("labels_empty_name", _set("labels", ["neutral", " ", "sad"]), "config.json", "field labels"),
    ("extras_empty", _tensors("extras.safetensors", _put("norm/audio/mean", torch.zeros(0))), "extras.safetensors",
     "field norm/audio/mean: a torch.float32 tensor of shape [0]"),
    ("extras_wrong_shape", _tensors("extras.safetensors", _put("norm/audio/std", torch.ones(3, 4))),
     "extras.safetensors", "field norm/audio/std: a torch.float32 tensor of shape [3, 4]"),
    ("extras_zero_std", _tensors("extras.safetensors", _put("norm/audio/std", torch.zeros(DIM))),
     "extras.safetensors", "field norm/audio/std: standard deviations must be > 0"),
    ("extras_nan_mean", _tensors("extras.safetensors", _put("norm/audio/mean", torch.full((DIM,), float("nan")))),
     "extras.safetensors", "field norm/audio/mean: NaN"),
    ("extras_missing_std", _tensors("extras.safetensors", lambda t: t.pop("norm/audio/std")), "extras.safetensors",
     "field norm/audio/std"),
    ("extras_unknown_modality", _tensors("extras.safetensors", lambda t: t.update(
        {"norm/smell/mean": torch.zeros(2), "norm/smell/std": torch.ones(2)})), "extras.safetensors", "norm/smell"),
    ("extras_truncated", _truncate("extras.safetensors"), "extras.safetensors", "cannot read"),
    ("weights_truncated", _truncate("model.safetensors"), "model.safetensors", "cannot read"),
    ("num_classes_nan", _set("model.num_classes", float("nan")), "config.json", "field model.num_classes"),
    ("num_classes_string", _set("model.num_classes", "3"), "config.json", "field model.num_classes"),
    ("num_classes_bool", _set("model.num_classes", True), "config.json", "field model.num_classes"),
    ("model_list", _set("model", ["early_concat"]), "config.json", "field model"),
    ("model_name_unknown", _set("model.name", "nonesuch"), "config.json", "field model.name"),
    ("input_dims_list", _set("model.input_dims", [DIM]), "config.json", "field model.input_dims"),
    ("input_dims_string_dim", _set("model.input_dims", {"audio": str(DIM)}), "config.json", "field model.input_dims"),
    ("kwargs_string", _set("model.kwargs", "hidden=8"), "config.json", "field model.kwargs"),
    ("kwargs_unknown", _set("model.kwargs", {"hidden": 8, "bogus": 1}), "config.json", "field model.kwargs"),
    ("kwargs_huge", _set("model.kwargs", {"hidden": 2_000_000_000}), "model.safetensors", "do not match"),
    ("features_list", _set("features", ["mfcc"]), "config.json", "field features"),
    ("features_spec_string", _set("features", {"audio": "mfcc"}), "config.json", "field features.audio"),
    ("feature_names_string", _set("features.audio.names", "mfcc"), "config.json", "field features.audio.names"),
    ("meta_string", _set("meta", "trained"), "config.json", "field meta"),
    ("meta_speakers_string", _set("meta.train_speakers", "0102"), "config.json", "field meta.train_speakers"),
    ("format_version_string", _set("format_version", "1"), "config.json", "field format_version"),
    ("config_list", _write("config.json", b"[1, 2]"), "config.json", "JSON object"),
    ("config_deep", _deep_json, "config.json", "nested too deeply"),
    ("config_not_utf8", _write("config.json", b"\xff\xfe{}"), "config.json", "not valid JSON"),
]


@pytest.mark.parametrize("name, corrupt, filename, field", CASES, ids=[c[0] for c in CASES])
def test_malformed_checkpoint_exits_2_naming_file_and_field(good, tmp_path, capsys, name, corrupt, filename, field):
    checkpoint, clip = good
    broken = tmp_path / name
    shutil.copytree(checkpoint, broken)
    corrupt(broken)
    assert main(["predict", str(clip), "--model", str(broken)]) == 2
    err = capsys.readouterr().err
    assert str(broken / filename) in err and field in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_pickled_extras_are_refused_and_never_unpickled(good, tmp_path, capsys):
    checkpoint, clip = good
    broken = tmp_path / "pickled"
    shutil.copytree(checkpoint, broken)
    marker = tmp_path / "unpickled"
    (broken / "extras.safetensors").write_bytes(pickle.dumps({"norm/audio/mean": _Trap(marker)}))
    assert main(["predict", str(clip), "--model", str(broken)]) == 2
    err = capsys.readouterr().err
    assert str(broken / "extras.safetensors") in err and "not a safetensors file" in err
    assert not marker.exists()


def test_the_intact_checkpoint_still_predicts(good, capsys):
    checkpoint, clip = good
    assert main(["predict", str(clip), "--model", str(checkpoint)]) == 0
    loaded = load_checkpoint(checkpoint)
    assert loaded.labels == LABELS and set(loaded.extras) == {"norm/audio/mean", "norm/audio/std"}


@pytest.mark.parametrize("text, problem", [("[" * 200_000 + "]" * 200_000, "nested too deeply"),
                                           ('{"members": "seed_0"}', "members")])
def test_malformed_ensemble_manifest_exits_2_naming_it(good, tmp_path, capsys, text, problem):
    checkpoint, clip = good
    shutil.copytree(checkpoint, tmp_path / "ens" / "seed_0")
    (tmp_path / "ens" / "ensemble.json").write_text(text)
    assert main(["predict", str(clip), "--model", str(tmp_path / "ens")]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "ens" / "ensemble.json") in err and problem in err
