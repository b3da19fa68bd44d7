"""`emofuse predict --text ... --context dialogue.jsonl --model TEXT_CHECKPOINT` and `TextPredictor`."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("transformers")

from types import SimpleNamespace  # noqa: E402

from emofuse.cli import main  # noqa: E402
from emofuse.inputs.conversation import ContextSpec, Turn  # noqa: E402
from text_fixtures import tiny_bert  # noqa: E402

LABELS = ["anger", "joy", "neutral"]


@pytest.fixture(scope="module")
def text_ckpt(tmp_path_factory):
    from transformers import AutoTokenizer

    from emofuse.encoders.text_classifier import TextClassifier
    from emofuse.inference.text_checkpoint import save_text_checkpoint

    root = tmp_path_factory.mktemp("text-ckpt")
    bert = tiny_bert(root / "bert")
    model = TextClassifier.from_pretrained(bert, len(LABELS)).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(bert))
    return save_text_checkpoint(root / "ckpt", model, tokenizer, LABELS,
                                ContextSpec(past=2, speakers=True, max_length=24))


def test_context_changes_the_answer_and_is_the_training_window(text_ckpt):
    from emofuse.inference.text_predictor import TextPredictor
    from emofuse.inputs.conversation import Window, encode_window

    predictor = TextPredictor(text_ckpt)
    alone = predictor.predict("i am happy", speaker="Joey")
    context = [Turn("angry hate stop", "Ross"), Turn("what", "Monica"), Turn("sad cry", "Ross")]
    with_context = predictor.predict("i am happy", context, speaker="Joey")
    assert alone.ok and with_context.ok and set(alone.probabilities) == set(LABELS)
    assert alone.probabilities != with_context.probabilities
    assert any("last 2 context turns" in w for w in with_context.warnings)
    window, _ = predictor.window("i am happy", context, "Joey")
    assert [t.text for t in window.past] == ["what", "sad cry"]  # the same window builder as training
    assert encode_window(predictor.ckpt.tokenizer, window, predictor.ckpt.context).ids[0] == \
        predictor.ckpt.tokenizer.cls_token_id


def test_bad_text_gets_a_clear_answer(text_ckpt):
    from emofuse.inference.text_predictor import TextPredictor

    predictor = TextPredictor(text_ckpt)
    empty, emoji, long, mojibake = predictor.predict_many([
        {"text": "  "}, {"text": "\U0001F621\U0001F621\U0001F621"}, {"text": "happy " * 10_000},
        {"text": "caf\ufffd au lait"}])
    assert not empty.ok and "empty" in empty.message
    assert not emoji.ok and "vocabulary" in emoji.message
    assert long.ok and any("only its beginning" in w for w in long.warnings)
    assert not mojibake.ok and "encoding" in mojibake.message


def test_cli_predicts_text_with_context(text_ckpt, tmp_path, capsys):
    dialogue = tmp_path / "dialogue.jsonl"
    dialogue.write_text('{"speaker": "Ross", "text": "what"}\n{"speaker": "Monica", "text": "wow really"}\n',
                        encoding="utf-8")
    out = tmp_path / "pred.json"
    rc = main(["predict", "--model", str(text_ckpt), "--text", "i am happy", "--speaker", "Joey",
               "--context", str(dialogue), "--json", str(out)])
    assert rc == 0
    pred = json.loads(out.read_text())["predictions"][0]
    assert pred["label"] in LABELS and pred["modalities_used"] == ["text"] and pred["transcript"] == "i am happy"


def test_cli_context_file_with_a_missing_field(text_ckpt, tmp_path, capsys):
    dialogue = tmp_path / "bad.jsonl"
    dialogue.write_text('{"speaker": "Ross"}\n', encoding="utf-8")
    rc = main(["predict", "--model", str(text_ckpt), "--text", "i am happy", "--context", str(dialogue)])
    err = capsys.readouterr().err
    assert rc == 2 and "bad.jsonl" in err and "line 1" in err and "'text'" in err


def test_cli_context_needs_a_text_model(tmp_path, capsys):
    dialogue = tmp_path / "d.jsonl"
    dialogue.write_text('{"text": "hi"}\n', encoding="utf-8")
    rc = main(["predict", "--text", "i am happy", "--context", str(dialogue)])
    assert rc == 2 and "fine-tuned text model" in capsys.readouterr().err


def test_train_text_on_a_generated_meld_then_predict(tmp_path, capsys):
    """`emofuse train-text` end to end on a MELD-format corpus with a tiny BERT recipe, then `predict`."""
    import yaml

    from text_fixtures import meld_corpus

    bert = tiny_bert(tmp_path / "bert")
    meld_corpus(tmp_path / "data" / "meld-text")
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(yaml.safe_dump({"encoder": str(bert), "context": {"past": 2, "speakers": True, "max_length": 32},
                                      "train": {"lr": 3e-3, "batch_size": 8, "max_epochs": 2, "monitor": "val_wf1"}}))
    out = tmp_path / "model"
    assert main(["train-text", str(recipe), "--dataset", "meld", "--data", str(tmp_path / "data"), "--out", str(out)]) == 0
    assert "test weighted_f1" in capsys.readouterr().out and not (tmp_path / "model.work").exists()
    config = json.loads((out / "config.json").read_text())
    assert config["dataset"] == "meld" and config["context"]["past"] == 2 and config["thresholds"] is None
    assert "NOT speaker-disjoint" in config["training"]["note"]
    assert main(["predict", "--model", str(out), "--text", "i am so happy", "--json", "-"]) == 0
    assert json.loads(capsys.readouterr().out)["predictions"][0]["label"] in config["labels"]


def test_multi_label_head_gets_dev_thresholds(tmp_path):
    """A multi-label corpus trains a sigmoid head; the checkpoint keeps per-class thresholds chosen on dev."""
    import numpy as np

    from emofuse.inference.text_predictor import TextPredictor
    from emofuse.training import train_text as tt
    from emofuse.training.text_data import TextSplits

    bert = tiny_bert(tmp_path / "bert")
    rng = np.random.default_rng(0)
    words = ["happy great", "sad cry", "angry hate"]

    def part(n):
        samples, targets = [], []
        for i in range(n):
            y = (rng.random(3) < 0.4).astype(np.float32)
            y[rng.integers(3)] = 1
            text = " ".join(w for w, on in zip(words, y) if on)
            samples.append(SimpleNamespace(id=f"c{i}", speaker="unknown", sources={"text": text}, meta={}))
            targets.append(y)
        return samples, np.stack(targets)

    parts = {p: part(n) for p, n in (("train", 96), ("dev", 32), ("test", 32))}
    splits = TextSplits("toy", {p: v[0] for p, v in parts.items()}, {p: v[1] for p, v in parts.items()},
                        ["joy", "sadness", "anger"], True, "toy")
    recipe = tmp_path / "ml.yaml"
    recipe.write_text(f"encoder: {bert}\nhead: {{multi_label: true}}\ncontext: {{max_length: 16}}\n"
                      "train: {lr: 0.003, batch_size: 8, max_epochs: 3, monitor: val_mf1}\n")
    import emofuse.training.text_data as td

    saved = td.text_splits
    td.text_splits = lambda dataset, root: splits
    try:
        result = tt.train_text(recipe, "goemotions", tmp_path, tmp_path / "ml")
    finally:
        td.text_splits = saved
    config = json.loads((tmp_path / "ml" / "config.json").read_text())
    assert config["classifier"]["multi_label"] and len(config["thresholds"]) == 3
    assert result.test["macro_f1"] > 0.5 and "micro_f1" in result.test
    predictor = TextPredictor(tmp_path / "ml")
    pred = predictor.predict("happy great sad cry")
    assert predictor.ckpt.multi_label and predictor.ckpt.thresholds == config["thresholds"]
    active = [n for n, t in zip(predictor.labels, config["thresholds"]) if pred.probabilities[n] >= t]
    assert pred.explanations["active_labels"] == active


def test_goemotions_probabilities_map_onto_meld_classes():
    import numpy as np

    from emofuse.data.goemotions import EKMAN_LABELS, GOEMOTIONS_LABELS
    from emofuse.data.meld import MELD_LABELS
    from emofuse.experiments.text_transfer import meld_probabilities

    probs = np.zeros((2, len(GOEMOTIONS_LABELS)))
    probs[0, GOEMOTIONS_LABELS.index("annoyance")] = 0.9  # anger's group
    probs[1, GOEMOTIONS_LABELS.index("curiosity")] = 0.7  # surprise's group
    probs[1, GOEMOTIONS_LABELS.index("gratitude")] = 0.6  # joy's group
    mapped = meld_probabilities(probs, GOEMOTIONS_LABELS)
    assert [MELD_LABELS[i] for i in mapped.argmax(-1)] == ["anger", "surprise"]
    assert mapped[1, MELD_LABELS.index("joy")] == 0.6
    ekman = np.eye(7)[[EKMAN_LABELS.index("fear")]]
    assert MELD_LABELS[meld_probabilities(ekman, EKMAN_LABELS).argmax()] == "fear"
