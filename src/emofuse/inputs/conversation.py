"""Conversation input for fine-tuned text encoders (EmoBERTa / CoMPM style): one token sequence per
target utterance holding up to ``past`` previous and ``future`` following turns of its dialogue.

Layout (BERT-style tokenizers; RoBERTa's ``<s>``/``</s>`` take the same places)::

    [CLS] past_1 ... past_k [SEP] target [SEP] future_1 ... future_j [SEP]

* A turn reads ``"Speaker: text"`` when ``speakers`` is on, else ``"text"``.
* The target is marked by the separators around it and, when the encoder has two segment types
  (``type_vocab_size >= 2``, e.g. BERT/MiniLM), by segment id 1 on its tokens: the context is
  "sentence A" and the target "sentence B", as in BERT's pre-training pairs.
* Truncation keeps the target whole. The remaining budget of ``max_length`` goes to past turns,
  nearest first (a turn that does not fit whole keeps its last tokens, then the window stops), then
  to future turns, nearest first (a turn that does not fit whole keeps its first tokens). Only a
  target longer than ``max_length`` on its own is cut (its head is kept, and the window says so).
* Windows never cross dialogues, and future turns are read only when ``future > 0``.

`windows_for_samples` builds the turns of a dataset's windows; `encode_window` turns one window
into token ids. Training, evaluation and prediction all go through these two functions.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from emofuse.errors import ConfigError, DataError


@dataclass(frozen=True)
class ContextSpec:
    """How many turns around the target a window holds, and how they read (see the module docstring)."""

    past: int = 0
    future: int = 0
    speakers: bool = False
    max_length: int = 512  # the published default (RoBERTa / EmoBERTa); recipes set less for CPU budgets

    def __post_init__(self) -> None:
        for name in ("past", "future"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"context.{name}={value!r} must be a non-negative integer")
        if not isinstance(self.speakers, bool):
            raise ConfigError(f"context.speakers={self.speakers!r} must be true or false")
        if isinstance(self.max_length, bool) or not isinstance(self.max_length, int) or not 8 <= self.max_length <= 4096:
            raise ConfigError(f"context.max_length={self.max_length!r} must be an integer in [8, 4096]")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any, where: str = "context") -> "ContextSpec":
        """A spec from its JSON/YAML form; unknown keys raise `ConfigError` naming them."""
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            raise ConfigError(f"{where} must be a mapping (past, future, speakers, max_length), got {type(data).__name__}")
        unknown = sorted(set(data) - {"past", "future", "speakers", "max_length"})
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; valid: past, future, speakers, max_length")
        try:
            return cls(**dict(data))
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None


@dataclass(frozen=True)
class Turn:
    """One utterance of a dialogue."""

    text: str
    speaker: str | None = None

    def render(self, speakers: bool) -> str:
        return f"{self.speaker}: {self.text}" if speakers and self.speaker else self.text


@dataclass
class Window:
    """A target turn with the turns before (oldest first) and after it that the window may read."""

    target: Turn
    past: list[Turn] = field(default_factory=list)
    future: list[Turn] = field(default_factory=list)


@dataclass
class EncodedWindow:
    """Token ids and segment ids of one window, and what truncation did."""

    ids: list[int]
    segments: list[int]
    target_truncated: bool = False
    past_turns: int = 0
    future_turns: int = 0

    def as_array(self) -> np.ndarray:
        """``[T, 2]`` float32: token id, segment id (the form `FeatureDataset` and `collate` carry)."""
        return np.stack([np.asarray(self.ids, np.float32), np.asarray(self.segments, np.float32)], axis=1)


def windows_for_samples(samples: Sequence[Any], spec: ContextSpec) -> list[Window]:
    """One window per sample: its dialogue's turns around it (``meta.dialogue`` groups, ordered by
    ``meta.utterance_id``); a sample without a dialogue is a window of itself alone."""
    dialogues: dict[str, list[int]] = defaultdict(list)
    for i, s in enumerate(samples):
        key = s.meta.get("dialogue")
        if key is not None:
            dialogues[str(key)].append(i)
    position: dict[int, tuple[list[int], int]] = {}
    for members in dialogues.values():
        ordered = sorted(members, key=lambda i: (int(samples[i].meta.get("utterance_id", 0)), i))
        for k, i in enumerate(ordered):
            position[i] = (ordered, k)
    windows = []
    for i, s in enumerate(samples):
        if i not in position:
            windows.append(Window(_turn(s)))
            continue
        ordered, k = position[i]
        past = [_turn(samples[j]) for j in ordered[max(0, k - spec.past):k]] if spec.past else []
        future = [_turn(samples[j]) for j in ordered[k + 1:k + 1 + spec.future]] if spec.future else []
        windows.append(Window(_turn(s), past, future))
    return windows


def _turn(sample: Any) -> Turn:
    text = sample.sources.get("text")
    if not isinstance(text, str) or not text.strip():
        raise DataError(sample.id, "has no text to read (empty transcript)")
    return Turn(text, sample.speaker or None)


def uses_segments(tokenizer_or_config: Any) -> bool:
    """Whether the encoder has a second segment type to mark the target with."""
    return int(getattr(tokenizer_or_config, "type_vocab_size", 1) or 1) >= 2


def encode_window(tokenizer: Any, window: Window, spec: ContextSpec, *, mark_target: bool = True,
                  where: str = "text") -> EncodedWindow:
    """Token ids of ``window`` laid out and truncated as the module docstring says.

    ``mark_target``: give the target's tokens segment id 1 (only for encoders with two segment types).
    Raises `DataError` naming ``where`` when the target has no token the vocabulary knows."""
    cls, sep = _special_ids(tokenizer)
    _check_known(tokenizer, window.target.text, where)
    target = _pieces(tokenizer, window.target.render(spec.speakers))
    has_past, has_future = bool(window.past) and spec.past > 0, bool(window.future) and spec.future > 0
    specials = 2 + int(has_past) + int(has_future)
    budget = spec.max_length - specials
    truncated = len(target) > budget
    target = target[:budget]
    budget -= len(target)
    past, used_past = _fit(tokenizer, window.past[::-1] if has_past else [], spec, budget, keep="tail")
    budget -= sum(map(len, past))
    future, used_future = _fit(tokenizer, window.future if has_future else [], spec, budget, keep="head")
    before = [t for turn in reversed(past) for t in turn]
    after = [t for turn in future for t in turn]
    mark = 1 if mark_target and (has_past or has_future) else 0
    ids, segments = [cls], [0]
    if has_past:
        ids += before + [sep]
        segments += [0] * (len(before) + 1)
    ids += target + [sep]
    segments += [mark] * (len(target) + 1)
    if has_future:
        ids += after + [sep]
        segments += [0] * (len(after) + 1)
    return EncodedWindow(ids, segments, truncated, used_past, used_future)


def _fit(tokenizer: Any, turns: Sequence[Turn], spec: ContextSpec, budget: int, keep: str) -> tuple[list[list[int]], int]:
    """Whole turns while they fit the budget, then one turn cut to the rest (``keep`` its head or tail)."""
    out: list[list[int]] = []
    whole = 0
    for turn in turns:
        if budget <= 0:
            break
        pieces = _pieces(tokenizer, turn.render(spec.speakers))
        if len(pieces) <= budget:
            out.append(pieces)
            whole += 1
            budget -= len(pieces)
            continue
        out.append(pieces[-budget:] if keep == "tail" else pieces[:budget])
        break
    return out, whole


def _pieces(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False, truncation=False, verbose=False)["input_ids"])


def _special_ids(tokenizer: Any) -> tuple[int, int]:
    cls = tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id
    sep = tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id
    if cls is None or sep is None:
        raise ConfigError(f"tokenizer {type(tokenizer).__name__} has no [CLS]/<s> or [SEP]/</s> token")
    return int(cls), int(sep)


def _check_known(tokenizer: Any, text: str, where: str) -> None:
    pieces = _pieces(tokenizer, text)
    unk = tokenizer.unk_token_id
    if not pieces:
        raise DataError(where, "the text is empty (nothing to read)")
    if unk is not None and all(p == unk for p in pieces):
        raise DataError(where, f"no word of {text[:40]!r} is in the encoder's vocabulary (emoji or symbols "
                               "only?): the model cannot read it")


def read_context_file(path: Any) -> list[Turn]:
    """Previous turns from a JSON Lines file, oldest first: one object per line with ``text`` and
    optionally ``speaker``. Errors name the file, the line and the field."""
    import json
    from pathlib import Path

    file = Path(path)
    try:
        raw = file.read_bytes()
    except OSError as exc:
        raise DataError(file, f"cannot read the context file ({exc.strerror or exc})") from None
    try:
        content = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(file, f"not UTF-8 text (byte {exc.start}: {raw[exc.start:exc.start + 1]!r}); save it as UTF-8") from None
    turns = []
    for number, line in enumerate(content.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except ValueError as exc:
            raise DataError(file, f"line {number}: not a JSON object ({exc})") from None
        if not isinstance(item, dict):
            raise DataError(file, f"line {number}: must be a JSON object with 'text' (and 'speaker'), got {type(item).__name__}")
        text, speaker = item.get("text"), item.get("speaker")
        if not isinstance(text, str) or not text.strip():
            raise DataError(file, f"line {number}: field 'text' is missing or empty")
        if speaker is not None and not isinstance(speaker, str):
            raise DataError(file, f"line {number}: field 'speaker' must be a string")
        turns.append(Turn(text.strip(), speaker.strip() if speaker else None))
    return turns
