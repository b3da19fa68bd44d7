"""A GoEmotions model scored on MELD through the explicit label mapping (``python -m
emofuse.experiments.text_transfer --model DIR``): 28 GoEmotions classes -> Ekman 7 (a group's
probability is its members' maximum, `emofuse.data.goemotions.EKMAN_MAPPING`) -> MELD's 7
(`GOEMOTIONS_TO_MELD`), argmax, scored on MELD's official test split. Zero-shot: no MELD data trains
or tunes anything. An Ekman-7 model skips the first step."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def meld_probabilities(probs: np.ndarray, classes: Sequence[str]) -> np.ndarray:
    """``probs [N, C]`` over GoEmotions classes (28 or Ekman 7) as ``[N, 7]`` in MELD's class order."""
    from emofuse.data.goemotions import EKMAN_LABELS, EKMAN_MAPPING, GOEMOTIONS_TO_MELD
    from emofuse.data.meld import MELD_LABELS
    from emofuse.evaluation.multilabel import group_columns

    if list(classes) != list(EKMAN_LABELS):
        probs, _ = group_columns(probs, None, classes, {e: EKMAN_MAPPING[e] for e in EKMAN_LABELS})
    to_meld = [EKMAN_LABELS.index(next(g for g, m in GOEMOTIONS_TO_MELD.items() if m == name)) for name in MELD_LABELS]
    return np.asarray(probs)[:, to_meld]


def score_on_meld(model_dir: str | Path, data_root: str | Path, batch: int = 64) -> dict[str, Any]:
    """WA, UA, macro and weighted F1 of the mapped model on MELD test (no context: one utterance)."""
    from emofuse.data.meld import MELD_LABELS, NOT_SPEAKER_DISJOINT
    from emofuse.evaluation.metrics import classification_metrics
    from emofuse.inference.text_predictor import TextPredictor
    from emofuse.training.text_data import text_splits

    predictor = TextPredictor(model_dir)
    splits = text_splits("meld", data_root)
    texts = [{"text": s.sources["text"]} for s in splits.samples["test"]]
    rows = [p for k in range(0, len(texts), batch) for p in predictor.predict_many(texts[k:k + batch])]
    probs = np.array([[p.probabilities.get(c, 0.0) for c in predictor.labels] for p in rows])
    mapped = meld_probabilities(probs, predictor.labels)
    metrics = classification_metrics(splits.targets["test"], mapped.argmax(-1), MELD_LABELS)
    return {"model": str(model_dir), "trained_on": predictor.ckpt.record.get("dataset"), "scored_on": "meld test",
            "mapping": "GoEmotions 28 -> Ekman 7 (max over members) -> MELD 7", "note": NOT_SPEAKER_DISJOINT,
            "failed": sum(not p.ok for p in rows),
            **{k: metrics[k] for k in ("n", "wa", "ua", "macro_f1", "weighted_f1", "per_class", "confusion")}}


def main(argv: Sequence[str] | None = None) -> int:
    from emofuse.paths import data_root

    parser = argparse.ArgumentParser(prog="python -m emofuse.experiments.text_transfer", description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="a GoEmotions text checkpoint (emofuse train-text --dataset goemotions)")
    parser.add_argument("--data", help="data root (default: $EMOFUSE_DATA or ../shared/data)")
    parser.add_argument("--out", type=Path, help="write the row as JSON here")
    args = parser.parse_args(argv)
    row = score_on_meld(args.model, data_root(args.data))
    print(json.dumps({k: v for k, v in row.items() if k not in ("per_class", "confusion")}))
    if args.out:
        from emofuse.atomic import atomic_write_text

        atomic_write_text(args.out, json.dumps(row, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
