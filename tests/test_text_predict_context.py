"""`emofuse predict --text ... --context dialogue.jsonl --model TEXT_CHECKPOINT` and `TextPredictor`."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("transformers")

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
