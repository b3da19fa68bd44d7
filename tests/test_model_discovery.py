"""The model zoo finds its modules itself: a new model is one new file in emofuse/models/."""

from __future__ import annotations

import subprocess
import sys

import torch
from torch import nn

from emofuse.model_options import INFRASTRUCTURE_MODULES, model_module_names, source_model_options
from emofuse.models import list_models
from emofuse.models.base import EmotionModel, ModelOutput
from emofuse.models.registry import _REGISTRY


def test_discovered_modules_are_exactly_those_that_register_models():
    discovered = {f"emofuse.models.{name}" for name in model_module_names()}
    registering = {_REGISTRY[name].__module__ for name in list_models()}
    assert discovered == registering
    assert not INFRASTRUCTURE_MODULES & set(model_module_names())
    assert sorted(source_model_options()) == list_models()


def test_a_new_file_is_a_new_model_module(tmp_path):
    for name in ("base.py", "registry.py", "layers.py", "_zoo.py", "_helpers.py", "my_fusion.py", "notes.txt"):
        (tmp_path / name).write_text("\n", encoding="utf-8")
    (tmp_path / "subpackage").mkdir()
    (tmp_path / "subpackage" / "__init__.py").write_text("\n", encoding="utf-8")
    assert model_module_names(tmp_path) == ["my_fusion"]


def test_discovery_does_not_import_torch():
    code = "import sys; from emofuse.model_options import model_module_names; model_module_names(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"


class _Unlisted(EmotionModel):
    """A model with no recipe and no entry in the complexity table's recipe map."""

    test_input_dims = {"audio": 6, "face": 4}

    def __init__(self, num_classes: int, input_dims: dict[str, int], hidden: int = 4) -> None:
        super().__init__(num_classes, input_dims)
        self.head = nn.Linear(sum(input_dims.values()), num_classes)

    def forward(self, inputs: dict[str, torch.Tensor], masks: dict[str, torch.Tensor]) -> ModelOutput:
        pooled = [inputs[m].mean(dim=1) for m in self.modalities]
        return ModelOutput(logits=self.head(torch.cat(pooled, dim=-1)))


def test_complexity_falls_back_to_class_defaults_for_a_model_without_recipe(monkeypatch):
    from emofuse.experiments.complexity import complexity_table, scenario_spec

    monkeypatch.setitem(_REGISTRY, "unlisted_fusion", _Unlisted)
    spec = scenario_spec("unlisted_fusion")
    assert spec["source"] == "class defaults" and set(spec["input_dims"]) == {"audio", "face"}
    (row,) = complexity_table(["unlisted_fusion"], batch_size=2, repeats=1)
    assert row["params_total"] == sum(p.numel() for p in _Unlisted(8, spec["input_dims"]).parameters())
