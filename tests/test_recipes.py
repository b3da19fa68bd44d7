"""Built-in recipes load and name real models and features; bad recipes fail clearly."""

from __future__ import annotations

import numpy as np
import pytest

from emofuse.data.record import Sample
from emofuse.errors import ConfigError
from emofuse.features.store import FeatureStore, pool_vector, speaker_normalize
from emofuse.models import list_models
from emofuse.recipes import builtin_recipe_names, load_recipe, recipe_from_dict
from emofuse.training.config import load_train_config


def _recipes():
    out = []
    for name in builtin_recipe_names():
        try:
            out.append(load_recipe(name))
        except ConfigError:
            assert name.endswith("_ladder"), f"built-in recipe {name} does not load"
    return out


def test_builtin_recipes_name_registered_models_and_valid_training_configs():
    recipes = _recipes()
    assert len(recipes) >= 10
    for r in recipes:
        assert r.classical or r.model in list_models(), r.name
        load_train_config(r.train)


def test_default_benchmark_recipes_exist():
    from emofuse.experiments.lineup import DEFAULT_RECIPES

    names = set(builtin_recipe_names())
    assert set(DEFAULT_RECIPES["ravdess"]) <= names


def test_recipe_errors_name_the_problem(tmp_path):
    with pytest.raises(ConfigError, match="unknown recipe keys"):
        recipe_from_dict({"model": "tfn", "features": {"audio": "whisper"}, "lr": 1})
    with pytest.raises(ConfigError, match="missing required key 'features'"):
        recipe_from_dict({"model": "tfn"})
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match="bad.yaml"):
        load_recipe(bad)



def test_recipe_base_merges_sections_and_replaces_the_rest(tmp_path):
    (tmp_path / "parent.yaml").write_text(
        "description: parent\nmodel: tfn\nmodel_kwargs: {subnet_dims: 8, dropout: 0.1}\n"
        "features: {audio: whisper, face: au}\ntrain: {lr: 0.01, max_epochs: 5}\n", encoding="utf-8")
    (tmp_path / "child.yaml").write_text(
        "base: parent.yaml\nmodel_kwargs: {dropout: 0.3}\nfeatures: {audio: egemaps}\n"
        "data: {speed_perturb: [0.9]}\n", encoding="utf-8")
    child = load_recipe(tmp_path / "child.yaml")
    assert child.name == "child" and child.description == "" and child.model == "tfn"
    assert child.model_kwargs == {"subnet_dims": 8, "dropout": 0.3}
    assert child.features == {"audio": ["egemaps"]}
    assert child.train == {"lr": 0.01, "max_epochs": 5} and child.train_speeds == (0.9,)
    # a built-in base by name, from a file or from a mapping: the built-in derived recipes are
    # exactly their base plus the changed entries
    sp = load_recipe("of_cmaer_cat_cmaa_sp_refit_ravdess")
    base = load_recipe("of_cmaer_cat_cmaa_ravdess")
    assert sp.model_kwargs == base.model_kwargs and sp.features == base.features
    assert sp.train == {**base.train, "refit": True} and sp.test_speeds == (0.9, 1.1)
    assert recipe_from_dict({"base": "of_cmaer_cat_cmaa_ravdess", "train": {"refit": True}}).train == \
        load_recipe("of_cmaer_cat_cmaa_refit_ravdess").train


def test_recipe_base_errors_name_the_file(tmp_path):
    (tmp_path / "a.yaml").write_text("base: b.yaml\n", encoding="utf-8")
    (tmp_path / "b.yaml").write_text("base: a.yaml\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="cycle"):
        load_recipe(tmp_path / "a.yaml")
    (tmp_path / "c.yaml").write_text("base: no_such_recipe\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="c.yaml: base: unknown recipe 'no_such_recipe'"):
        load_recipe(tmp_path / "c.yaml")
    (tmp_path / "d.yaml").write_text("base: [x]\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="d.yaml.*'base' must name a recipe"):
        load_recipe(tmp_path / "d.yaml")

def test_pool_vector():
    seq = np.arange(12, dtype=np.float32).reshape(4, 3)
    np.testing.assert_allclose(pool_vector(seq), np.concatenate([seq.mean(0), seq.std(0)]))
    np.testing.assert_allclose(pool_vector(seq[:1]), seq[0])


def test_feature_store_reads_face_vectors_and_concatenates():
    samples = [Sample(f"s{i}", "a", "t", "happy", sources={"face": np.full(3, i, np.float32)}) for i in range(3)]
    samples.append(Sample("nofaces", "a", "t", "sad"))
    store = FeatureStore(samples, progress=False)
    faces = store.modality(["au"])
    assert faces[1].shape == (1, 3) and faces[3] is None
    doubled = store.modality(["au", "au"])
    assert doubled[2].shape == (1, 6)
    with pytest.raises(ConfigError, match="unknown feature"):
        store.get("no_such_feature")


def test_speaker_normalize_uses_each_speakers_own_statistics():
    rng = np.random.default_rng(0)
    samples = [Sample(f"{spk}{i}", spk, "t", "happy") for spk in ("a", "b") for i in range(12)]
    feats = {"audio": [rng.normal(size=(5, 4)) + (100 if s.speaker == "b" else 0) for s in samples]}
    out = speaker_normalize(feats, samples)["audio"]
    for spk in ("a", "b"):
        frames = np.concatenate([o for o, s in zip(out, samples) if s.speaker == spk])
        np.testing.assert_allclose(frames.mean(0), 0, atol=1e-5)
        np.testing.assert_allclose(frames.std(0), 1, atol=1e-4)
    with pytest.raises(ConfigError, match="at least 20 clips"):
        speaker_normalize(feats, samples, min_clips=20)


def test_recipes_resolved_per_dataset_modalities():
    from emofuse.experiments.lineup import DEFAULT_RECIPES, resolve_recipes
    from emofuse.training.recipe import _feature_specs

    meld = resolve_recipes("all", "meld")
    assert {r.name for r in meld} == {"logreg_minilm", "gated_fusion_meld"}  # meld-text has text (+ meta) only
    assert set(DEFAULT_RECIPES["meld"]) <= set(builtin_recipe_names())
    ravdess = resolve_recipes("all", "ravdess")
    assert ravdess and all(set(r.modalities) <= {"audio", "face", "meta"} for r in ravdess)
    assert "text_audio_attention_ravdess" not in {r.name for r in ravdess}
    explicit = resolve_recipes("text_audio_attention_ravdess", "ravdess")
    assert explicit[0].features == {"text": ["minilm_tokens"], "audio": ["whisper"]}
    gated = load_recipe("gated_fusion_meld")
    assert gated.model_kwargs["context_modalities"] == ["text"] and gated.data["max_dialogue_length"] == 10
    specs = _feature_specs(gated)
    assert specs["text"]["dialogue_window"] == 10 and specs["text"]["configs"]["minilm_pooled"]["max_length"] == 256
    assert set(specs) == {"text"}  # no meta: it would only condition gates of a single fused modality
    assert "dialogue_window" not in _feature_specs(load_recipe("gated_fusion_ravdess"))["audio"]
