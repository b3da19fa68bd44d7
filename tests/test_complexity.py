"""Model complexity: parameter counts, FLOPs, memory and the RAVDESS input scenario."""

from __future__ import annotations

import argparse
import json

import pytest
import torch

from emofuse.experiments.complexity import (RAVDESS_FEATURE_SHAPES, complexity_table, format_complexity_table,
                                model_complexity, peak_train_memory_bytes, scenario_spec)
from emofuse.errors import ConfigError
from emofuse.models import list_models


def test_early_concat_counts_match_hand_calculation():
    # early_concat: per-modality masked means, concatenated with presence flags, MLP head.
    row = model_complexity("early_concat", {"audio": 16, "face": 7}, {"audio": 9, "face": 1}, num_classes=5,
                           batch_size=4, model_kwargs={"hidden": 32}, repeats=1)
    from emofuse.models import create_model

    model = create_model("early_concat", 5, {"audio": 16, "face": 7}, hidden=32)
    assert row["params_total"] == sum(p.numel() for p in model.parameters())
    assert row["params_trainable"] == row["params_total"]
    linear_macs = sum(m.in_features * m.out_features for m in model.modules() if isinstance(m, torch.nn.Linear))
    assert row["forward_macs"] == 4 * linear_macs  # every Linear runs once per sample
    assert row["forward_flops"] == 2 * row["forward_macs"]
    assert row["forward_ms"] > 0 and row["train_step_ms"] > 0
    assert row["peak_train_memory_mb"] > 0


def test_flops_scale_with_sequence_length():
    short = model_complexity("attention_pooling", {"audio": 32}, {"audio": 20}, batch_size=2, repeats=1,
                             model_kwargs={"hidden": 16, "embed_dim": 8})
    long = model_complexity("attention_pooling", {"audio": 32}, {"audio": 80}, batch_size=2, repeats=1,
                            model_kwargs={"hidden": 16, "embed_dim": 8})
    assert long["params_total"] == short["params_total"]
    assert long["forward_flops"] > 3 * short["forward_flops"] // 2


def test_peak_memory_sees_activations():
    # one Linear on [B, 4096]: the backward pass must hold at least the weight gradient (4096 x 256 floats)
    class Wide(torch.nn.Module):
        num_classes = 2

        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(4096, 256)
            self.out = torch.nn.Linear(256, 2)

        def forward(self, inputs, masks):
            from emofuse.models.base import ModelOutput

            return ModelOutput(logits=self.out(torch.relu(self.lin(inputs["x"][:, 0]))))

    model = Wide()
    inputs = {"x": torch.randn(64, 1, 4096)}
    masks = {"x": torch.ones(64, 1, dtype=torch.bool)}
    peak = peak_train_memory_bytes(model, inputs, masks)
    assert peak >= 4096 * 256 * 4
    assert peak < 50 * 2**20


def test_scenario_uses_recipes():
    spec = scenario_spec("tucker_fusion")
    assert spec["source"] == "recipe tucker"
    assert spec["input_dims"] == {"audio": 128, "face": 35}
    assert spec["seq_lens"] == {"audio": 350, "face": 1}
    spec = scenario_spec("attention_pooling")
    assert spec["model_kwargs"]["vector_modalities"] == ["face"]
    assert spec["seq_lens"]["audio"] == 175
    with pytest.raises(ConfigError, match="scenario"):
        scenario_spec("tfn", scenario="nope")
    with pytest.raises(ConfigError, match="unknown model"):
        scenario_spec("no_such_model")


def test_every_registered_model_has_a_scenario():
    for name in list_models():
        spec = scenario_spec(name)
        assert set(spec["input_dims"]) == set(spec["seq_lens"]), name


@pytest.mark.parametrize("feature", ["mfcc", "frft_mfcc", "logmel", "egemaps", "egemaps_lld"])
def test_feature_dims_match_extractors(feature):
    from emofuse.features import get_extractor

    assert RAVDESS_FEATURE_SHAPES[feature][1] == get_extractor(feature).dim


def test_table_and_cli(tmp_path, capsys):
    rows = complexity_table(["tfn"], batch_size=2, repeats=1)
    assert rows[0]["model"] == "tfn" and rows[0]["source"].startswith("recipe")
    text = format_complexity_table(rows)
    assert text.startswith("| model |") and "| tfn |" in text and "audio 175×384" in text

    from emofuse.cli import build_parser

    parser = build_parser()
    out_json, out_md = tmp_path / "c.json", tmp_path / "c.md"
    args = parser.parse_args(["complexity", "--models", "early_concat", "--batch-size", "2", "--repeats", "1",
                              "--json", str(out_json), "--markdown", str(out_md)])
    assert args.func(args) == 0
    saved = json.loads(out_json.read_text())
    assert saved[0]["model"] == "early_concat" and saved[0]["batch_size"] == 2
    assert "| early_concat |" in out_md.read_text()
    assert "| early_concat |" in capsys.readouterr().out
