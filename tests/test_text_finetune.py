"""Fine-tuning text encoders: conversation windows, the classifier, training, checkpoints, prediction."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")

from emofuse.errors import ConfigError, DataError  # noqa: E402
from emofuse.inputs.conversation import (ContextSpec, Turn, Window, encode_window, read_context_file,  # noqa: E402
                                         windows_for_samples)
from text_fixtures import meld_corpus, tiny_bert  # noqa: E402


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory):
    return tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="module")
def tokenizer(bert_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(bert_dir))


def _sample(sid, dialogue, utt, text, speaker="Joey"):
    return SimpleNamespace(id=sid, speaker=speaker, sources={"text": text},
                           meta={"dialogue": dialogue, "utterance_id": utt})


# -- windows ---------------------------------------------------------------------------------------

def test_windows_never_cross_dialogues_and_read_no_future_unless_asked():
    samples = [_sample("a1", "d1", 1, "b"), _sample("a0", "d1", 0, "a"), _sample("b0", "d2", 0, "x"),
               _sample("a2", "d1", 2, "c"), _sample("b1", "d2", 1, "y")]
    past_only = windows_for_samples(samples, ContextSpec(past=5))
    by_id = {s.id: w for s, w in zip(samples, past_only)}
    assert [t.text for t in by_id["a2"].past] == ["a", "b"] and by_id["a2"].future == []
    assert [t.text for t in by_id["b1"].past] == ["x"]  # d1's turns never enter d2's window
    assert by_id["a0"].past == [] and all(w.future == [] for w in past_only)
    both = {s.id: w for s, w in zip(samples, windows_for_samples(samples, ContextSpec(past=1, future=1)))}
    assert [t.text for t in both["a1"].past] == ["a"] and [t.text for t in both["a1"].future] == ["c"]
    assert both["b0"].future[0].text == "y" and both["a2"].future == []


def test_window_layout_speakers_and_target_segment(tokenizer):
    window = Window(Turn("i am happy", "Joey"), past=[Turn("what", "Ross")], future=[])
    enc = encode_window(tokenizer, window, ContextSpec(past=1, speakers=True, max_length=64))
    text = tokenizer.decode(enc.ids)
    assert text == "[CLS] ross : what [SEP] joey : i am happy [SEP]"
    target_start = enc.ids.index(tokenizer.sep_token_id) + 1
    assert enc.segments[:target_start] == [0] * target_start and set(enc.segments[target_start:]) == {1}
    alone = encode_window(tokenizer, window, ContextSpec(past=0, max_length=64))
    assert tokenizer.decode(alone.ids) == "[CLS] i am happy [SEP]" and set(alone.segments) == {0}


def test_truncation_keeps_the_target_whole(tokenizer):
    target = "i am so happy today great wonderful"
    past = [Turn("sad cry lost terrible " * 5, "Ross"), Turn("angry hate stop", "Monica")]
    spec = ContextSpec(past=2, speakers=False, max_length=16)
    enc = encode_window(tokenizer, Window(Turn(target), past=past), spec)
    assert len(enc.ids) <= 16 and not enc.target_truncated
    sep = tokenizer.sep_token_id
    first_sep = enc.ids.index(sep)
    assert tokenizer.decode(enc.ids[first_sep + 1:-1]) == target
    # the nearest past turn is kept whole, the older one keeps its last tokens
    assert tokenizer.decode(enc.ids[1:first_sep]).endswith("angry hate stop") and enc.past_turns == 1
    long_target = encode_window(tokenizer, Window(Turn("happy " * 50)), ContextSpec(max_length=16))
    assert len(long_target.ids) == 16 and long_target.target_truncated


@pytest.mark.parametrize("text, message", [("   ", "empty"), ("\U0001F621\U0001F621", "vocabulary")])
def test_unreadable_text_gets_a_clear_error(tokenizer, text, message):
    with pytest.raises(DataError, match=message):
        encode_window(tokenizer, Window(Turn(text)), ContextSpec())


def test_context_file_errors_name_line_and_field(tmp_path):
    good = tmp_path / "ok.jsonl"
    good.write_text('{"speaker": "Ross", "text": "hi"}\n\n{"text": "what"}\n', encoding="utf-8")
    assert read_context_file(good) == [Turn("hi", "Ross"), Turn("what", None)]
    missing = tmp_path / "missing.jsonl"
    missing.write_text('{"speaker": "Ross", "text": "hi"}\n{"speaker": "Joey"}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"missing.jsonl.*line 2: field 'text'"):
        read_context_file(missing)
    latin = tmp_path / "latin.jsonl"
    latin.write_bytes('{"text": "caf\u00e9"}\n'.encode("latin-1"))
    with pytest.raises(DataError, match="not UTF-8"):
        read_context_file(latin)
    broken = tmp_path / "broken.jsonl"
    broken.write_text("{text: hi}\n", encoding="utf-8")
    with pytest.raises(DataError, match="line 1: not a JSON object"):
        read_context_file(broken)


def test_context_spec_is_checked():
    with pytest.raises(ConfigError, match="past"):
        ContextSpec.from_dict({"past": -1})
    with pytest.raises(ConfigError, match="unknown key"):
        ContextSpec.from_dict({"turns": 3})


# -- classifier and training -------------------------------------------------------------------------

def test_layer_wise_decay_and_freezing(bert_dir):
    from emofuse.encoders.text_classifier import TextClassifier

    model = TextClassifier.from_pretrained(bert_dir, 3)
    groups = model.parameter_groups(1.0, 0.01, decay=0.5)
    lrs = sorted({g["lr"] for g in groups})
    assert lrs == [0.125, 0.25, 0.5, 1.0]  # embeddings, layer 0, layer 1, head
    model.freeze_lower_layers(1)
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert any("embeddings" in n for n in frozen) and any(".layer.0." in n for n in frozen)
    assert not any(".layer.1." in n or n.startswith("head") for n in frozen)
    with pytest.raises(ConfigError, match="freeze_layers"):
        model.freeze_lower_layers(5)


def test_padding_does_not_change_logits(bert_dir, tokenizer):
    from emofuse.encoders.text_classifier import TextClassifier
    from emofuse.training.text import collate_tokens

    model = TextClassifier.from_pretrained(bert_dir, 3).eval()
    a = encode_window(tokenizer, Window(Turn("i am happy")), ContextSpec()).as_array()
    b = encode_window(tokenizer, Window(Turn("sad cry lost terrible angry hate")), ContextSpec()).as_array()
    with torch.no_grad():
        batch = collate_tokens([(a, None), (b, None)])
        batched = model(batch["inputs"], batch["mask"])[0]
        alone = model(torch.from_numpy(a)[None], torch.ones(1, a.shape[0], dtype=torch.bool))[0]
    assert torch.allclose(batched[0], alone[0], atol=1e-5)


def test_length_buckets_cover_every_sample_once_per_epoch():
    from emofuse.training.text import LengthBucketSampler

    lengths = list(np.random.default_rng(0).integers(3, 60, size=203))
    sampler = LengthBucketSampler(lengths, batch_size=8, seed=1, pool=4)
    epoch1, epoch2 = list(sampler), list(sampler)
    assert sorted(i for b in epoch1 for i in b) == list(range(203)) and len(epoch1) == len(sampler)
    assert epoch1 != epoch2
    spread = np.mean([np.ptp([lengths[i] for i in b]) for b in epoch1])
    assert spread < np.ptp(lengths) / 3  # batches hold similar lengths


def _recipe(bert_dir, **context):
    from emofuse.inputs.conversation import ContextSpec
    from emofuse.training.text import TextRecipe

    return TextRecipe(name="tiny", encoder=str(bert_dir), head={"dropout": 0.0}, optim={"layer_lr_decay": 0.9},
                      context=ContextSpec(**{"max_length": 32, **context}),
                      train={"lr": 3e-3, "batch_size": 8, "max_epochs": 5, "warmup_ratio": 0.0,
                             "schedule": "constant", "monitor": "val_wf1", "patience": 5})


def test_tiny_bert_fine_tunes_and_its_loss_falls(bert_dir, tmp_path):
    from emofuse.experiments.text_benchmark import load_split
    from emofuse.training.text_data import token_datasets
    from emofuse.training.text import finetune_text

    data = load_split(meld_corpus(tmp_path / "meld"))
    recipe = _recipe(bert_dir, past=1, speakers=True)
    from transformers import AutoTokenizer

    sets = token_datasets(data, AutoTokenizer.from_pretrained(str(bert_dir)), recipe.context)
    fit = finetune_text(recipe, sets["train"], sets["dev"], len(data.labels), seed=0)
    losses = [row["train_loss"] for row in fit.history]
    assert len(losses) == 5 and losses[-1] < losses[0] * 0.8
    assert 0 <= fit.best_epoch <= 4 and fit.best_score == pytest.approx(max(r["val_wf1"] for r in fit.history), abs=1e-6)


def test_checkpoint_round_trip_without_unpickling(bert_dir, tmp_path, tokenizer):
    from emofuse.encoders.text_classifier import TextClassifier
    from emofuse.inference.text_checkpoint import is_text_checkpoint, load_text_checkpoint, save_text_checkpoint
    from emofuse.inputs.conversation import ContextSpec

    model = TextClassifier.from_pretrained(bert_dir, 3).eval()
    spec = ContextSpec(past=2, speakers=True, max_length=32)
    folder = save_text_checkpoint(tmp_path / "ckpt", model, tokenizer, ["a", "b", "c"], spec)
    assert is_text_checkpoint(folder)
    assert not list(folder.rglob("*.bin")) and not list(folder.rglob("*.pt")) and not list(folder.rglob("*.pkl"))
    original = torch.load  # nothing on the load path may call torch.load (pickle)
    try:
        torch.load = lambda *a, **k: (_ for _ in ()).throw(AssertionError("torch.load called"))
        loaded = load_text_checkpoint(folder)
    finally:
        torch.load = original
    assert loaded.labels == ["a", "b", "c"] and loaded.context == spec
    x = encode_window(tokenizer, Window(Turn("i am happy")), spec).as_array()
    inputs, mask = torch.from_numpy(x)[None], torch.ones(1, x.shape[0], dtype=torch.bool)
    with torch.no_grad():
        assert torch.equal(model(inputs, mask)[0], loaded.model(inputs, mask)[0])
    config = json.loads((folder / "config.json").read_text())
    config["labels"] = ["a", "a", "b"]
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(DataError, match="config.json.*labels"):
        load_text_checkpoint(folder)


def test_text_recipes_load():
    from emofuse.training.text import load_text_recipe, text_recipe_names

    assert {"finetune_minilm_meld", "finetune_minilm_meld_context"} <= set(text_recipe_names())
    ctx = load_text_recipe("finetune_minilm_meld_context")
    assert ctx.context.past == 3 and ctx.context.speakers and ctx.train_config.monitor == "val_wf1"
    with pytest.raises(ConfigError, match="unknown text recipe"):
        load_text_recipe("nope")


def test_text_benchmark_rows_resume_and_results_fields(bert_dir, tmp_path, capsys):
    import yaml

    from emofuse.experiments.text_benchmark import run_text_benchmark

    root = meld_corpus(tmp_path / "meld")
    recipe_file = tmp_path / "tiny_ctx.yaml"
    recipe_file.write_text(yaml.safe_dump({
        "encoder": str(bert_dir), "head": {"dropout": 0.0}, "context": {"past": 2, "speakers": True, "max_length": 32},
        "train": {"lr": 3e-3, "batch_size": 8, "max_epochs": 2, "monitor": "val_wf1"}}))
    out = tmp_path / "meld.json"
    rows = ("majority", "tfidf_logreg", str(recipe_file))
    results = run_text_benchmark(root, rows=rows, out=out, seeds=(0, 1), progress=False, save_dir=tmp_path / "models")
    by_model = {r["model"]: r for r in results["results"]}
    ctx = by_model["tiny_ctx"]
    for row in by_model.values():
        assert row["modalities"] == ["text"] and "NOT speaker-disjoint" in row["note"]
        for key in ("wa", "ua", "macro_f1", "weighted_f1"):
            assert 0 <= row[f"{key}_mean"] <= 1 and row[f"{key}_std"] >= 0
        assert row["train_seconds"] >= 0
    assert ctx["n_runs"] == 2 and [r["seed"] for r in ctx["per_seed"]] == [0, 1]
    assert by_model["majority"]["deterministic"] and by_model["majority"]["weighted_f1_std"] == 0
    assert (tmp_path / "models" / "tiny_ctx" / "model.safetensors").is_file()
    saved = json.loads(out.read_text())
    assert saved["complete"] and len(saved["results"]) == 3
    assert "weighted F1" in capsys.readouterr().out
    # an interrupted file (one seed of the fine-tuned row) resumes: seed 0 is reused, seed 1 recomputed
    saved["complete"] = False
    saved["results"][2]["per_seed"] = saved["results"][2]["per_seed"][:1]
    saved["results"][2]["per_seed"][0]["train_seconds"] = 12345.0
    out.write_text(json.dumps(saved))
    again = run_text_benchmark(root, rows=(str(recipe_file),), out=out, seeds=(0, 1), progress=False)
    seeds = again["results"][0]["per_seed"]
    assert seeds[0]["train_seconds"] == 12345.0 and seeds[1]["train_seconds"] != 12345.0


def test_benchmark_meld_picks_the_text_line_up_or_the_recipes(tmp_path, monkeypatch):
    from emofuse.cli import main
    from emofuse.experiments import text_benchmark
    from emofuse.experiments.text_benchmark import DEFAULT_TEXT_ROWS, text_rows

    assert text_rows("default") == DEFAULT_TEXT_ROWS
    assert text_rows("majority, finetune_minilm_meld") == ("majority", "finetune_minilm_meld")
    assert text_rows("logreg_minilm,gated_fusion_meld") is None  # ordinary recipes: the k-fold benchmark
    calls = []
    monkeypatch.setattr(text_benchmark, "run_text_benchmark", lambda root, **kw: calls.append(kw))
    meld_corpus(tmp_path / "meld-text")
    assert main(["benchmark", "meld", "--data", str(tmp_path), "--models", "majority"]) == 0
    assert main(["benchmark", "meld", "--data", str(tmp_path), "--models", "majority", "--seeds", "0"]) == 0
    assert calls[0]["seeds"] == (0, 1, 2) and calls[1]["seeds"] == (0,)
