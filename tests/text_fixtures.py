"""Tiny randomly initialised BERT models with a word-level vocabulary, and a generated MELD-format corpus,
for the text fine-tuning tests (no download, a few hundred parameters per layer)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

WORDS = ("i am so happy today great wonderful love this sad cry lost terrible angry hate stop it now what wow "
         "really no way scared afraid help me gross yuck okay fine sure the a you we they he she is are was "
         "and but not joey rachel ross monica chandler phoebe").split()
EMOTION_WORDS = {"joy": "happy great wonderful love", "sadness": "sad cry lost terrible",
                 "anger": "angry hate stop it now", "surprise": "what wow really no way",
                 "fear": "scared afraid help me", "disgust": "gross yuck", "neutral": "okay fine sure"}


def tiny_bert(folder: Path, *, layers: int = 2, hidden: int = 16, type_vocab_size: int = 2, seed: int = 0) -> Path:
    """Save a random BERT (``layers`` x ``hidden``) and its WordPiece tokenizer into ``folder``."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ":", ".", ",", "?", "!", *WORDS]
    BertTokenizerFast(vocab={w: i for i, w in enumerate(vocab)}, do_lower_case=True).save_pretrained(str(folder))
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(vocab), hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=2,
                        intermediate_size=2 * hidden, max_position_embeddings=256, type_vocab_size=type_vocab_size)
    BertModel(config).save_pretrained(str(folder))
    return folder


HEADER = ["Sr No.", "Utterance", "Speaker", "Emotion", "Sentiment", "Dialogue_ID", "Utterance_ID", "Season",
          "Episode", "StartTime", "EndTime"]


def meld_corpus(root: Path, dialogues: dict[str, int] | None = None, turns: int = 4, seed: int = 0) -> Path:
    """MELD's three CSV files with learnable text: each utterance says its emotion's words."""
    import random

    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    labels = sorted(EMOTION_WORDS)
    speakers = ["Joey", "Rachel", "Ross", "Monica"]
    for split, count in (dialogues or {"train": 30, "dev": 6, "test": 6}).items():
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(HEADER)
        n = 0
        for d in range(count):
            for u in range(turns):
                n += 1
                emotion = rng.choice(labels)
                words = EMOTION_WORDS[emotion].split()
                text = " ".join(rng.choice(words) for _ in range(rng.randint(2, 5))) + "."
                writer.writerow([n, text, rng.choice(speakers), emotion, "neutral", d, u, 1, 1,
                                 "00:00:01,000", "00:00:02,000"])
        (root / f"{split}_sent_emo.csv").write_text(out.getvalue(), encoding="utf-8")
    return root
