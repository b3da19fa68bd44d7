"""Recipes and config files are validated completely, and cheaply, before any data is touched:
bounded YAML (size, aliases, nesting), built-in names without path separators, model / kwargs /
feature / modality / train / data values with their types; the CLI exits 2 naming the file and field."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from importlib import resources
from pathlib import Path

import pytest

from emofuse.cli import main
from emofuse.errors import ConfigError
from emofuse.recipes import MAX_CONFIG_BYTES, builtin_recipe_names, load_recipe, read_config, recipe_from_dict

GOOD = "model: tfn\nfeatures: {audio: whisper, face: au}\n"


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def billion_laughs(levels: int = 9, key: str = "x-anchors") -> str:
    """The classic alias bomb (about 550 bytes; 10**levels leaves once expanded) under ``key``."""
    lines = [f"{key}:", '  - &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"  - &a{i} [{','.join([f'*a{i - 1}'] * 10)}]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


def _train(recipe: Path | str, tmp_path: Path, capsys) -> tuple[int, str]:
    rc = main(["train", str(recipe), "--out", str(tmp_path / "out"), "--data", str(tmp_path)])
    return rc, capsys.readouterr().err.strip()


# --- item 2: bounded YAML -------------------------------------------------------------------

def test_billion_laughs_is_refused_fast_naming_the_file(tmp_path):
    bomb = _write(tmp_path, "bomb.yaml", GOOD + billion_laughs())
    assert len(bomb.read_bytes()) < 700
    start = time.perf_counter()
    with pytest.raises(ConfigError, match=r"bomb\.yaml.*alias"):
        read_config(bomb)
    assert time.perf_counter() - start < 1.0


def test_billion_laughs_recipe_exits_2(tmp_path, capsys):
    rc, err = _train(_write(tmp_path, "bomb.yaml", GOOD + billion_laughs()), tmp_path, capsys)
    assert rc == 2 and "bomb.yaml" in err and "alias" in err and len(err.splitlines()) == 1


def test_modest_aliases_still_work(tmp_path):
    recipe = _write(tmp_path, "anchors.yaml", "model: tfn\nfeatures: {audio: &f [whisper], face: au}\n"
                    "model_kwargs: {sequence_subnet: *f}\n")
    assert load_recipe(recipe).model_kwargs == {"sequence_subnet": ["whisper"]}
    raw, *_ = read_config(_write(tmp_path, "merge.yaml", "a: &a {lr: 0.01}\nb: {<<: *a, max_epochs: 2}\n"))
    assert raw["b"] == {"lr": 0.01, "max_epochs": 2}


def test_deep_nesting_is_a_config_error(tmp_path):
    deep = _write(tmp_path, "deep.yaml", "model: " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(ConfigError, match=r"deep\.yaml.*nest"):
        read_config(deep)


def test_oversized_config_is_refused_before_parsing(tmp_path):
    big = _write(tmp_path, "big.yaml", GOOD + "# padding\n" * (MAX_CONFIG_BYTES // 10 + 1))
    with pytest.raises(ConfigError, match=r"big\.yaml.*KB"):
        read_config(big)


def test_recursive_alias_is_refused(tmp_path):
    loop = _write(tmp_path, "loop.yaml", "model: &m [*m]\nfeatures: {audio: whisper}\n")
    with pytest.raises(ConfigError, match=r"loop\.yaml"):
        load_recipe(loop)


# --- item 13 (4th bullet): a missing file -----------------------------------------------------

def test_missing_yaml_is_file_not_found_with_a_short_hint(tmp_path, capsys):
    rc, err = _train(tmp_path / "x.yaml", tmp_path, capsys)
    assert rc == 2 and "x.yaml" in err and "file not found" in err
    assert len(err) < 300 and "tucker_fusion_ravdess" not in err  # no list of every built-in
    rc, err = _train("of_cmaer_ca", tmp_path, capsys)  # a misspelt built-in gets a suggestion
    assert rc == 2 and "unknown recipe 'of_cmaer_ca'" in err and "of_cmaer_cat" in err and len(err) < 300


def test_a_folder_named_yaml_is_not_a_file(tmp_path):
    (tmp_path / "d.yaml").mkdir()
    with pytest.raises(ConfigError, match=r"d\.yaml.*not a regular file"):
        read_config(tmp_path / "d.yaml")


# --- item 14: built-in names never reach outside emofuse/configs -------------------------------

def test_base_with_a_relative_path_and_no_suffix_cannot_escape_the_configs_folder(tmp_path):
    _write(tmp_path, "other.yaml", GOOD)
    configs = Path(str(resources.files("emofuse") / "configs"))
    escape = os.path.relpath(tmp_path / "other", configs)
    assert escape.startswith("..")
    for load in (lambda: recipe_from_dict({"base": escape}), lambda: load_recipe(escape)):
        with pytest.raises(ConfigError, match="path separator"):
            load()
    (tmp_path / "sub").mkdir()
    child = _write(tmp_path / "sub", "child.yaml", "base: ../other\n")
    with pytest.raises(ConfigError, match=r"child\.yaml: base: .*path separator"):
        load_recipe(child)
    assert load_recipe(_write(tmp_path / "sub", "ok.yaml", "base: ../other.yaml\n")).model == "tfn"


def test_recipe_name_cannot_be_a_path(tmp_path):
    with pytest.raises(ConfigError, match="name"):
        load_recipe(_write(tmp_path, "n.yaml", GOOD + "name: ../../evil\n"))


# --- items 8 and 12: complete validation with types, before any extraction -----------------

@pytest.mark.parametrize(("text", "field"), [
    ("model: tfn\nfeatures: {audio: whisper, face: au}\ntrain: [1, 2]\n", "'train' must be a mapping"),
    ("model: tfn\nfeatures: {audio: whisper, face: au}\ntrain: {batch_size: big}\n", "train.batch_size"),
    ("model: tfn\nfeatures: {audio: whisper, face: au}\ntrain: {lr: [1]}\n", "train.lr"),
    ("model: tfn\nfeatures: {audio: whisper, face: au}\ntrain: {refit: 'yes'}\n", "train.refit"),
    ("model: tfn\nfeatures: {audio: whisper, face: au}\ntrain: {devices: 1.5}\n", "train.devices"),
    ("model: tfn\nfeatures: {audio: whisper, face: au}\ntrain: {max_epoch: 3}\n", "max_epoch"),
    ("model: tfn\nfeatures: {audio: whisper, face: au}\nmodel_kwargs: {subnet_dims: big}\n",
     "model_kwargs.subnet_dims"),
    ("model: tfn\nfeatures: {audio: whisper, face: au}\nmodel_kwargs: {subnet_dim: 32}\n", "subnet_dim"),
    ("model: tfn\nfeatures: {audio: whisper, face: au}\nmodel_kwargs: [1]\n", "'model_kwargs' must be a mapping"),
    ("model: tfm\nfeatures: {audio: whisper, face: au}\n", "unknown model 'tfm'"),
    ("model: [tfn]\nfeatures: {audio: whisper, face: au}\n", "'model' must be"),
    ("model: tfn\nfeatures: {smell: whisper, face: au}\n", "unknown modality 'smell'"),
    ("model: tfn\nfeatures: {audio: whispr, face: au}\n", "unknown feature 'whispr'"),
    ("model: tfn\nfeatures: {audio: [], face: au}\n", "features.audio"),
    ("model: tfn\nfeatures: {audio: 3}\n", "features.audio"),
    ("model: tfn\nfeatures: {audio: whisper}\ndata: {speaker_norm: 'yes'}\n", "data.speaker_norm"),
    ("model: tfn\nfeatures: {audio: whisper}\ndata: {max_dialogue_length: 0}\n", "data.max_dialogue_length"),
    ("model: tfn\nfeatures: {audio: whisper}\ndescription: [a]\n", "'description' must be"),
    ("model: logreg\nfeatures: {audio: whisper}\nmodel_kwargs: {C: 1}\n", "logreg"),
    ("model: tucker_fusion\nfeatures: {audio: logmel}\n", "tucker_fusion"),
])
def test_bad_recipe_exits_2_naming_file_and_field(text, field, tmp_path, capsys):
    recipe = _write(tmp_path, "bad.yaml", text)
    with pytest.raises(ConfigError, match="bad.yaml"):
        load_recipe(recipe)
    rc, err = _train(recipe, tmp_path, capsys)
    assert rc == 2, err
    assert err.startswith(f"emofuse: error: {recipe}") and field in err and len(err.splitlines()) == 1


def test_long_values_are_shortened_in_messages(tmp_path):
    recipe = _write(tmp_path, "long.yaml", GOOD + f"train: {{lr: {'x' * 100_000}}}\n")
    with pytest.raises(ConfigError, match=r"long\.yaml: train\.lr") as exc:
        load_recipe(recipe)
    assert len(str(exc.value)) < 300


def test_recipe_errors_come_before_data_and_without_torch(tmp_path):
    """`emofuse train bad.yaml` reports a type error without importing PyTorch (well under 1 s of work)."""
    bad = _write(tmp_path, "bad.yaml", "model: tfn\nfeatures: {smell: whisper}\n")
    code = ("import sys; from emofuse.cli import main; "
            f"rc = main(['train', {str(bad)!r}, '--out', {str(tmp_path / 'o')!r}, '--data', {str(tmp_path)!r}]); "
            "print(rc, sorted(m for m in ('torch', 'lightning', 'sklearn') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "2 []", out.stderr
    assert "unknown modality 'smell'" in out.stderr


def test_every_builtin_config_validates():
    from emofuse.experiments.ladder import load_ladder

    names = builtin_recipe_names()
    assert len(names) > 30
    for name in names:
        if name.endswith("_ladder"):
            base, rungs = load_ladder(name)
            assert rungs and all(r.model == base.model for r in rungs)
        else:
            recipe = load_recipe(name)
            assert recipe.name == name and recipe.features


def test_ablation_ladder_errors_come_before_the_data(tmp_path, capsys):
    ladder = _write(tmp_path, "ladder.yaml", "base: ../../escape\nrungs: [{name: a}]\n")
    rc = main(["ablation", "ladder", "ravdess", "--ladder", str(ladder), "--data", str(tmp_path / "no_data")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "path separator" in err and "ladder.yaml" in err


def test_model_options_read_from_source_match_the_registry():
    """The torch-free reading of the model files (`emofuse.model_options`) agrees with the registry."""
    import inspect

    from emofuse.model_options import source_model_options
    from emofuse.models.registry import list_models, model_options

    source = source_model_options()
    assert sorted(source) == list_models()
    for name in list_models():
        registry = model_options(name)
        assert list(source[name].options) == list(registry), name
        for option, hint in registry.items():
            if hint is not inspect.Parameter.empty:
                assert source[name].options[option] == hint, (name, option)


@pytest.mark.parametrize("body, message", [
    ("model: tfm\nfeatures: {audio: whisper}\n", "unknown model 'tfm'"),
    ("model: tfn\nfeatures: {audio: whisper}\nmodel_kwargs: {subnet_dim: 8}\n", "has no option 'subnet_dim'"),
    ("model: tfn\nfeatures: {audio: whisper}\nmodel_kwargs: {subnet_dims: big}\n", "model_kwargs.subnet_dims='big'"),
])
def test_model_and_option_errors_need_no_torch(tmp_path, body, message):
    bad = _write(tmp_path, "bad.yaml", body)
    code = ("import sys; from emofuse.recipes import load_recipe\n"
            f"try: load_recipe({str(bad)!r})\n"
            "except Exception as exc: print(type(exc).__name__, exc)\n"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.splitlines()[-1] == "False" and "ConfigError" in out and message in out, out
