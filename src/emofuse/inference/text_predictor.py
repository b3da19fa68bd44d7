"""Prediction with a fine-tuned text checkpoint (`emofuse.inference.text_checkpoint`): one utterance,
optionally with the dialogue turns before it (and after it, for a model trained with future turns),
laid out by the same `emofuse.inputs.conversation.encode_window` the model was trained with."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from emofuse.errors import DataError
from emofuse.inference.predictor import Prediction
from emofuse.inference.text_checkpoint import TextCheckpoint, load_text_checkpoint
from emofuse.inputs.conversation import Turn, Window, encode_window

#: longest text accepted (characters); longer input is refused before tokenisation
MAX_TEXT_CHARS = 200_000


class TextPredictor:
    """Loads a fine-tuned text checkpoint once; `predict` answers one utterance, `predict_many` a batch."""

    def __init__(self, checkpoint: str | Path | TextCheckpoint) -> None:
        self.ckpt = checkpoint if isinstance(checkpoint, TextCheckpoint) else load_text_checkpoint(checkpoint)
        self.model = self.ckpt.model.eval()

    @property
    def labels(self) -> list[str]:
        return list(self.ckpt.labels)

    def window(self, text: str, context: Sequence[Turn] = (), speaker: str | None = None,
               after: Sequence[Turn] = ()) -> tuple[Window, list[str]]:
        """The window the model reads and the warnings about what it leaves out."""
        spec, warnings = self.ckpt.context, []
        _check_text(text)
        if context and spec.past == 0:
            warnings.append("the model was trained without dialogue context: the context turns are ignored")
        elif len(context) > spec.past:
            warnings.append(f"the model reads the last {spec.past} context turns; {len(context) - spec.past} older ones ignored")
        if after and spec.future == 0:
            warnings.append("the model was trained without future turns: the turns after the target are ignored")
        past = list(context)[-spec.past:] if spec.past else []
        future = list(after)[:spec.future] if spec.future else []
        if speaker is None and spec.speakers and context:
            warnings.append("the model was trained with speaker names: give --speaker for the target turn")
        return Window(Turn(text.strip(), speaker), past, future), warnings

    @torch.no_grad()
    def predict_many(self, items: Sequence[dict[str, Any]]) -> list[Prediction]:
        """One `Prediction` per item ``{"text", "context"?, "speaker"?, "after"?}``; an item that cannot
        be read (empty text, emoji only, ...) gets a label-less result naming the problem."""
        windows, notes, failed = [], [], {}
        for i, item in enumerate(items):
            try:
                window, warnings = self.window(item["text"], item.get("context", ()), item.get("speaker"),
                                               item.get("after", ()))
                encoded = encode_window(self.ckpt.tokenizer, window, self.ckpt.context, where=f"text {i + 1}")
            except DataError as exc:
                failed[i] = exc
                continue
            if encoded.target_truncated:
                warnings.append(f"the text is longer than the model's {self.ckpt.context.max_length} tokens: "
                                "only its beginning was read")
            windows.append((i, encoded.as_array()))
            notes.append(warnings)
        probs = self._probabilities([w for _, w in windows]) if windows else np.zeros((0, len(self.labels)))
        out: list[Prediction | None] = [None] * len(items)
        for (i, _), p, warnings in zip(windows, probs, notes):
            out[i] = self._prediction(items[i]["text"], p, warnings)
        for i, exc in failed.items():
            out[i] = Prediction.failed(None, exc)
        return [p for p in out if p is not None]

    def predict(self, text: str, context: Sequence[Turn] = (), speaker: str | None = None,
                after: Sequence[Turn] = ()) -> Prediction:
        """The emotion of ``text`` said after the ``context`` turns (oldest first)."""
        return self.predict_many([{"text": text, "context": context, "speaker": speaker, "after": after}])[0]

    def _probabilities(self, arrays: list[np.ndarray]) -> np.ndarray:
        from emofuse.training.text import TokenDataset, predict_logits

        logits = torch.from_numpy(predict_logits(self.model, TokenDataset(arrays, None)))
        return self.model.probabilities(logits).numpy()

    def _prediction(self, text: str, p: np.ndarray, warnings: list[str]) -> Prediction:
        probabilities = {name: float(v) for name, v in zip(self.labels, p)}
        explanations: dict[str, Any] = {}
        if self.ckpt.multi_label:
            thresholds = self.ckpt.thresholds or [0.5] * len(self.labels)
            explanations["active_labels"] = [n for n, v, t in zip(self.labels, p, thresholds) if v >= t]
            explanations["thresholds"] = dict(zip(self.labels, thresholds))
        best = int(np.argmax(p))
        return Prediction(path=None, label=self.labels[best], probabilities=probabilities, modalities_used=["text"],
                          explanations=explanations, transcript=text, transcript_source="given",
                          warnings=warnings, confidence=float(p[best]))


def _check_text(text: Any) -> None:
    if not isinstance(text, str):
        raise DataError("text", f"must be a string, got {type(text).__name__}")
    if not text.strip():
        raise DataError("text", "is empty: give the utterance to read")
    if len(text) > MAX_TEXT_CHARS:
        raise DataError("text", f"is {len(text):,} characters long (limit {MAX_TEXT_CHARS:,}): split it into utterances")
    if "\ufffd" in text:
        raise DataError("text", "contains U+FFFD replacement characters: it was decoded with the wrong encoding "
                                "(save it as UTF-8)")
