"""The input plan (`emofuse.inputs`): one way features become model inputs for training,
evaluation and prediction; saved in checkpoints; derived for older ones; augmented views as a
registry a new kind plugs into; test-time averaging."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import soundfile as sf
import torch

from emofuse.inference.checkpoint import load_checkpoint, save_checkpoint
from emofuse.data.record import Sample
from emofuse.errors import ConfigError, DataError
from emofuse.features import get_extractor
from emofuse.features.base import FeatureExtractor
from emofuse.features.store import FeatureStore
from emofuse.inputs import AugmentedView, InputPlan, SpeedView, average_over_views, register_view, view_from_dict
from emofuse.inputs.plan import ModalityPlan
from emofuse.models import create_model
from emofuse.inference.predictor import Predictor
from emofuse.recipes import Recipe, recipe_from_dict

from test_train_checkpoints import data_root  # noqa: F401  (the fake RAVDESS fixture)

SR = 16000
MFCC = get_extractor("mfcc").dim
LABELS = ["neutral", "happy", "sad"]


def _recipe(**data: Any):
    return recipe_from_dict({"model": "early_concat", "features": {"audio": ["mfcc"], "face": ["au"]},
                             "model_kwargs": {"hidden": 8}, "data": data})


def _tone(path: Path, freq: float, seconds: float = 0.5) -> Path:
    t = np.arange(int(seconds * SR)) / SR
    noise = 0.02 * np.random.default_rng(int(freq)).normal(size=t.size)
    sf.write(path, (0.3 * np.sin(2 * np.pi * freq * t) + noise).astype(np.float32), SR, subtype="FLOAT")
    return path


def _checkpoint(path: Path, plan: InputPlan | None, dims: dict[str, int], meta: dict | None = None,
                features: dict | None = None) -> Path:
    torch.manual_seed(0)
    model = create_model("early_concat", num_classes=len(LABELS), input_dims=dims, hidden=8)
    return save_checkpoint(path, model, labels=LABELS, features=features or plan.feature_specs(), input_plan=plan,
                           meta=meta)


# --- the plan itself -------------------------------------------------------------------------------

def test_plan_from_a_recipe_says_how_every_input_is_built():
    plan = InputPlan.from_recipe(_recipe(speed_perturb=[0.9, 1.1], test_time_augment=[1.1]))
    assert plan.train_views == (SpeedView(0.9), SpeedView(1.1)) and plan.test_views == (SpeedView(1.1),)
    assert plan.modalities["audio"] == ModalityPlan(("mfcc",), {"mfcc": get_extractor("mfcc").config()})
    assert plan.standardize and not plan.speaker_norm and plan.test_time_speeds == [1.1]
    pooled = InputPlan.from_recipe(recipe_from_dict({"model": "logreg", "features": {"audio": ["mfcc", "logmel"]},
                                                     "data": {"speaker_norm": True}}))
    assert pooled.modalities["audio"].pooled and pooled.speaker_norm and pooled.feature_specs()["audio"]["pooled"]
    windows = InputPlan.from_recipe(Recipe("ctx", "gated_fusion", {"face": ["au"], "audio": ["mfcc"]},
                                           model_kwargs={"context_modalities": ["face"]},
                                           data={"max_dialogue_length": 3}))
    assert windows.modalities["face"].dialogue_window == 3 and windows.modalities["audio"].dialogue_window is None
    # a speed view changes no feature of a face-only recipe: no views (the original would only repeat)
    assert InputPlan.from_recipe(recipe_from_dict({"model": "early_concat", "features": {"face": "au"},
                                                   "data": {"speed_perturb": [0.9], "test_time_augment": True}})
                                 ).views == ()
    with pytest.raises(ConfigError, match="context modalities"):
        InputPlan.from_recipe(Recipe("ctx", "gated_fusion", {"audio": ["mfcc"]},
                                     model_kwargs={"context_modalities": ["text"]}))


def test_plan_round_trips_through_a_checkpoint(tmp_path):
    plan = InputPlan.from_recipe(_recipe(speed_perturb=[0.9], test_time_augment=True))
    assert InputPlan.from_dict(json.loads(json.dumps(plan.to_dict()))) == plan
    folder = _checkpoint(tmp_path / "ckpt", plan, {"audio": MFCC, "face": 4})
    config = json.loads((folder / "config.json").read_text())
    assert config["input_plan"]["test_views"] == [{"kind": "speed", "factor": 0.9}]
    assert config["features"] == plan.feature_specs()
    loaded = load_checkpoint(folder)
    assert loaded.input_plan == plan and loaded.test_time_speeds == (0.9,)


def _edit(folder: Path, change) -> None:
    config = json.loads((folder / "config.json").read_text())
    change(config)
    (folder / "config.json").write_text(json.dumps(config))


@pytest.mark.parametrize("change, field", [
    (lambda c: c["input_plan"].update(version=7), "input_plan.version"),
    (lambda c: c["input_plan"].update(standardize="yes"), "input_plan.standardize"),
    (lambda c: c["input_plan"].update(extra=1), "input_plan"),
    (lambda c: c["input_plan"]["test_views"].append({"kind": "warp"}), "input_plan.test_views[1]"),
    (lambda c: c["input_plan"]["test_views"].append({"kind": "speed", "factor": 9}), "input_plan.test_views[1]"),
    (lambda c: c["input_plan"]["train_views"].append({"kind": "speed", "factor": 0.9, "x": 1}),
     "input_plan.train_views[1]"),
    (lambda c: c["input_plan"]["train_views"].append({"kind": "speed", "factor": 0.9}), "input_plan.train_views"),
    (lambda c: c["input_plan"]["modalities"]["audio"].update(names="mfcc"), "input_plan.modalities.audio.names"),
    (lambda c: c["input_plan"]["modalities"]["audio"].update(pooled=1), "input_plan.modalities.audio.pooled"),
    (lambda c: c["input_plan"]["modalities"]["face"].update(dialogue_window=0),
     "input_plan.modalities.face.dialogue_window"),
    (lambda c: c["input_plan"]["modalities"]["audio"].update(pooled=True), "input_plan.modalities.audio.pooled"),
    (lambda c: c["input_plan"]["modalities"].pop("face"), "input_plan.modalities"),
], ids=["version", "standardize", "unknown_field", "unknown_kind", "bad_factor", "unknown_setting", "repeated_view",
        "names", "pooled_type", "window", "disagrees_with_features", "missing_modality"])
def test_a_saved_plan_is_checked_field_by_field(tmp_path, change, field):
    plan = InputPlan.from_recipe(_recipe(speed_perturb=[0.9], test_time_augment=True))
    folder = _checkpoint(tmp_path / "ckpt", plan, {"audio": MFCC, "face": 4})
    _edit(folder, change)
    with pytest.raises(DataError, match=r"config\.json: field " + re.escape(field) + r"(:| )"):
        load_checkpoint(folder)


def test_an_old_checkpoint_gets_its_plan_from_features_and_meta(tmp_path):
    features = {"audio": {"names": ["mfcc"], "configs": {"mfcc": get_extractor("mfcc").config()}},
                "face": {"names": ["au"], "configs": {"au": {}}, "pooled": True, "dialogue_window": 2}}
    folder = _checkpoint(tmp_path / "old", None, {"audio": MFCC, "face": 4}, meta={"test_time_augment": [0.9, 1.1]},
                         features=features)
    assert "input_plan" not in json.loads((folder / "config.json").read_text())
    plan = load_checkpoint(folder).input_plan
    assert plan.test_views == (SpeedView(0.9), SpeedView(1.1)) and plan.train_views == ()
    assert plan.modalities["face"] == ModalityPlan(("au",), {"au": {}}, pooled=True, dialogue_window=2)
    assert plan.standardize and not plan.speaker_norm and plan.feature_specs() == features
    # the demo model shipped before input plans existed (kept as a fixture): its plan comes from features/meta
    demo = load_checkpoint(Path(__file__).parent / "data" / "old_demo_model").input_plan
    assert list(demo.modalities) == ["audio"] and demo.modalities["audio"].names == ("whisper",)
    assert demo.views == () and demo.modalities["audio"].configs["whisper"]["mode"] == "fit"
    broken = _checkpoint(tmp_path / "broken", None, {"audio": MFCC, "face": 4}, meta={"test_time_augment": [9.0]},
                         features=features)
    with pytest.raises(ConfigError, match="meta.test_time_augment.*speed factor"):
        load_checkpoint(broken).input_plan


# --- test-time averaging ---------------------------------------------------------------------------

def test_test_time_averaging_is_the_mean_of_the_views_probabilities():
    rng = np.random.default_rng(0)
    views = [rng.dirichlet(np.ones(3), size=5) for _ in range(3)]
    np.testing.assert_array_equal(average_over_views(lambda v: v, views), np.mean(views, axis=0))
    assert np.array_equal(average_over_views(lambda v: v, views[:1]), views[0])  # no views: the original
    outputs = [{"probs": views[0], "weights": views[1]}, {"probs": views[2]}]
    averaged = average_over_views(lambda o: o, outputs)  # weights only when every view gives them
    assert list(averaged) == ["probs"] and np.array_equal(averaged["probs"], (views[0] + views[2]) / 2)
    with pytest.raises(ConfigError):
        average_over_views(lambda v: v, [])


def test_the_k_fold_and_classical_paths_average_through_it(monkeypatch):
    import emofuse.inputs.plan as plan_module
    from emofuse.training.classical import fit_predict_logreg
    from emofuse.training.data import FeatureDataset
    from emofuse.training.fit import predict_proba, predict_proba_mean

    calls = []
    real = plan_module.average_over_views
    monkeypatch.setattr(plan_module, "average_over_views", lambda f, xs: (calls.append(len(xs)), real(f, xs))[1])
    rng = np.random.default_rng(1)
    datasets = [FeatureDataset({"audio": list(rng.normal(size=(6, 1, 4)).astype(np.float32))}, None,
                               [str(i) for i in range(6)]) for _ in range(3)]
    model = create_model("early_concat", num_classes=3, input_dims={"audio": 4}, hidden=8).eval()
    np.testing.assert_allclose(predict_proba_mean(model, datasets),
                               np.mean([predict_proba(model, d) for d in datasets], axis=0), atol=1e-7)
    x, y = rng.normal(size=(30, 4)), np.arange(30) % 3
    fit_predict_logreg(x[:20], y[:20], x[20:25], y[20:25], [x[25:], x[25:] + 1], 3)
    assert calls == [3, 2]


# --- views: a registry a new kind plugs into ------------------------------------------------------

class Louder(FeatureExtractor):
    """``inner``'s features of the waveform multiplied by ``gain`` (a test-only view's wrapper)."""

    def __init__(self, inner: FeatureExtractor, gain: float) -> None:
        self.inner, self.gain = inner, gain
        self.name = f"{inner.name}-gain{gain:g}"  # type: ignore[misc]
        self.sample_rate = inner.sample_rate  # type: ignore[misc]

    @property
    def dim(self) -> int:
        return self.inner.dim

    def config(self) -> dict[str, Any]:
        return {**self.inner.config(), "gain": self.gain}

    def compute(self, wave: np.ndarray) -> np.ndarray:
        return self.inner.compute(wave * self.gain)


@register_view
@dataclass(frozen=True)
class GainView(AugmentedView):
    """A view kind defined here only: nothing else in emofuse knows it."""

    kind: ClassVar[str] = "test_gain"
    gain: float = 2.0

    @property
    def name(self) -> str:
        return f"gain{self.gain:g}"

    def applies_to(self, extractor: Any) -> bool:
        return extractor.source == "audio"

    def wrap(self, extractor: Any) -> Any:
        return Louder(extractor, self.gain)


def test_a_new_view_kind_plugs_in_without_touching_other_modules(tmp_path):
    clip = _tone(tmp_path / "clip.wav", 220.0)
    louder = tmp_path / "louder.wav"
    wave, _ = sf.read(clip, dtype="float32")
    sf.write(louder, 3 * wave, SR, subtype="FLOAT")
    view = GainView(3.0)
    assert view_from_dict(json.loads(json.dumps(view.to_dict()))) == view
    with pytest.raises(ConfigError, match="unknown view kind 'warp'"):
        view_from_dict({"kind": "warp"})
    plan = InputPlan({"audio": ModalityPlan(("mfcc",), {"mfcc": get_extractor("mfcc").config()}),
                      "face": ModalityPlan(("au",))}, test_views=(view,))
    face = np.arange(4, dtype=np.float32)
    store = FeatureStore([Sample("a", "s", "t", "happy", {"audio": clip, "face": face})], tmp_path / "cache",
                         progress=False)
    viewed = plan.arrays(store, view)
    np.testing.assert_allclose(viewed["audio"][0], get_extractor("mfcc")(3 * wave, SR), atol=1e-5)
    assert viewed["face"][0] is plan.arrays(store)["face"][0]  # a feature the view does not change: shared
    # saved in a checkpoint and averaged at predict time like a speed view
    folder = _checkpoint(tmp_path / "ckpt", plan, {"audio": MFCC, "face": 4})
    assert load_checkpoint(folder).input_plan == plan
    plain = _checkpoint(tmp_path / "plain", InputPlan(plan.modalities), {"audio": MFCC, "face": 4})
    by_file = [Predictor(plain, min_speech=0).predict_file(p, face=face).probabilities for p in (clip, louder)]
    pred = Predictor(folder, min_speech=0).predict_file(clip, face=face)
    assert pred.probabilities == pytest.approx({k: (by_file[0][k] + by_file[1][k]) / 2 for k in LABELS}, abs=1e-5)
    assert pred.explanations["test_views"] == ["gain3"] and "test_time_augment" not in pred.explanations


# --- one sample, three paths ---------------------------------------------------------------------

class _Recorder:
    """Records the datasets given to `emofuse.training.fit.predict_proba` and their probabilities."""

    def __init__(self, monkeypatch) -> None:
        import importlib

        fit = importlib.import_module("emofuse.training.fit")  # the module (the package exports a function "fit")
        self.calls: list[tuple[Any, np.ndarray]] = []
        real = fit.predict_proba

        def record(model, ds, *args, **kwargs):
            probs = real(model, ds, *args, **kwargs)
            self.calls.append((ds, probs))
            return probs

        monkeypatch.setattr(fit, "predict_proba", record)

    def inputs(self, sample_id: str) -> list[tuple[dict[str, np.ndarray], np.ndarray]]:
        """(modality -> input, probabilities) of ``sample_id`` in every recorded dataset holding it."""
        out = []
        for ds, probs in self.calls:
            for i, sid in enumerate(ds.ids):
                if sid.split("@")[0] == sample_id:
                    out.append(({m: ds.features[m][i] for m in ds.modalities}, probs[i]))
        return out


def test_one_sample_gets_the_same_input_in_training_evaluation_and_prediction(data_root, tmp_path,  # noqa: F811
                                                                              monkeypatch):
    from emofuse.evaluation.evaluate import evaluate_checkpoint
    from emofuse.training.recipe import train_recipe

    recipe = tmp_path / "mlp_sp.yaml"
    recipe.write_text("model: early_concat\nmodel_kwargs: {hidden: 8}\nfeatures: {audio: mfcc, face: au}\n"
                      "train: {batch_size: 64, max_epochs: 1}\ndata: {speed_perturb: [0.9], test_time_augment: true}\n")
    name = "01-03-01-01-01-02"  # actor 02 (fold 1's test speakers), emotion 3
    clip = data_root / "ravdess-speech-16k" / "Actor_02" / f"03-{name}.wav"
    recorder = _Recorder(monkeypatch)
    train_recipe(str(recipe), "ravdess", data_root, out_dir=tmp_path / "ckpt", fold=1, progress=False,
                 cache_dir=tmp_path / "cache")
    kfold = recorder.inputs(clip.stem)
    recorder.calls.clear()
    evaluate_checkpoint(tmp_path / "ckpt", "ravdess", data_root, fold=1, cache_dir=tmp_path / "cache")
    evaluated = recorder.inputs(clip.stem)
    assert len(kfold) == len(evaluated) == 2  # the original and the speed0.9 view

    predictor = Predictor(tmp_path / "ckpt", min_speech=0, cache_dir=tmp_path / "cache")
    seen: list[dict[str, np.ndarray]] = []
    model = predictor.members[0].model
    forward = model.forward
    model.forward = lambda inputs, masks: (seen.append({m: t[0].numpy().copy() for m, t in inputs.items()}),
                                           forward(inputs, masks))[1]
    from emofuse.experiments.lineup import load_dataset

    face = next(s.sources["face"] for s in load_dataset("ravdess", data_root) if s.id == clip.stem)
    prediction = predictor.predict_file(clip, face=face)
    inputs, _ = predictor.prepare_inputs(clip, face=face)
    assert len(seen) == 2
    for (train_in, _), (eval_in, _), pred_in in zip(kfold, evaluated, seen):
        for m in ("audio", "face"):
            np.testing.assert_array_equal(train_in[m], eval_in[m])
            np.testing.assert_array_equal(train_in[m], pred_in[m])
    for m in ("audio", "face"):
        np.testing.assert_array_equal(inputs[m][0].numpy(), seen[0][m])
    from emofuse.evaluation.calibration import apply_temperature

    # averaged over the views, then scaled by the temperature emofuse train fitted on the validation actors
    expected = apply_temperature(np.mean([probs for _, probs in evaluated], axis=0), predictor.members[0].temperature)
    np.testing.assert_allclose([prediction.probabilities[lab] for lab in predictor.labels], expected, atol=1e-6)
    assert prediction.explanations["test_time_augment"] == [0.9]


def test_a_signal_modality_is_predicted_through_the_same_plan(tmp_path):
    """A modality beyond audio/face/text: the signal file given as ``sources=`` gets the inputs a
    `FeatureStore` builds for the same sample (standardised with the saved statistics)."""
    from emofuse.features.signal import write_signal_file
    from emofuse.inputs.normalize import stats_to_tensors

    rng = np.random.default_rng(3)
    signals = [write_signal_file(tmp_path / f"s{i}.npz", rng.normal(size=(200 + 10 * i, 3)), 50.0) for i in range(6)]
    clip = _tone(tmp_path / "clip.wav", 240.0)
    plan = InputPlan({"audio": ModalityPlan(("mfcc",), {"mfcc": get_extractor("mfcc").config()}),
                      "signal": ModalityPlan(("signal_frames",), {"signal_frames": get_extractor("signal_frames").config()})})
    samples = [Sample(f"x{i}", "s", "t", "happy", {"audio": clip, "signal": p}) for i, p in enumerate(signals)]
    store = FeatureStore(samples, tmp_path / "cache", progress=False)
    arrays = plan.arrays(store)
    stats = plan.fit_standardizer(arrays, range(len(samples)))
    dims = {m: arrays[m][0].shape[-1] for m in arrays}
    torch.manual_seed(0)
    model = create_model("early_concat", num_classes=len(LABELS), input_dims=dims, hidden=8)
    folder = save_checkpoint(tmp_path / "ckpt", model, labels=LABELS, features=plan.feature_specs(), input_plan=plan,
                             extras=stats_to_tensors(stats))
    predictor = Predictor(folder, min_speech=0, cache_dir=tmp_path / "cache")
    expected = plan.standardized(arrays, stats)
    inputs, masks = predictor.prepare_inputs(clip, sources={"signal": signals[2]})
    for m in ("audio", "signal"):
        np.testing.assert_array_equal(inputs[m][0].numpy(), expected[m][2])
    alone = predictor.predict_sources({"signal": signals[2]})
    assert alone.ok and alone.modalities_used == ["signal"] and alone.path is None
    both = predictor.predict_file(clip, sources={"signal": signals[2]})
    assert both.modalities_used == ["audio", "signal"] and both.probabilities != alone.probabilities
    with pytest.raises(ConfigError, match="transcript as text="):
        predictor.predict_sources({"text": "hello"})
