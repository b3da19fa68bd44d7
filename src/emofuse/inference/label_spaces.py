"""Label spaces: RAVDESS's 8 classes mapped onto the class sets of other corpora.

A model trained on RAVDESS answers over neutral, calm, happy, sad, angry, fearful, disgust and
surprised. Another corpus usually has fewer classes; scoring on it (or reporting to a user who knows
only those classes) needs the model's probabilities over the classes the two share. `restrict` keeps
the mapped classes, renames them to the target's names and **renormalises** their probabilities to
sum to 1. The probability of a class with no counterpart (always ``calm``; ``surprised`` in the
6-class sets) is **dropped**, not moved to another class: that is how the issue-13 cross-corpus
scoring was done, and moving calm's mass to neutral would invent a neutral prior.

| space | classes (target name ← RAVDESS class) | like |
|---|---|---|
| ``8`` | the model's own 8 classes | RAVDESS |
| ``6`` | neutral, happy, sad, angry, fearful, disgust | CREMA-D (same names) |
| ``cremad`` | angry, disgust, fearful, happy, neutral, sad (CREMA-D's order) | CREMA-D |
| ``7`` | the 6 + surprised | FER2013 (Ekman's 6 + neutral) |
| ``fer`` | angry, disgust, fearful, happy, sad, surprised, neutral (FER2013's order) | FER2013 |
| ``meld`` | anger←angry, disgust, fear←fearful, joy←happy, neutral, sadness←sad, surprise←surprised | MELD |
| ``emodb`` | anger←angry, disgust, fear←fearful, happiness←happy, neutral, sadness←sad | EMO-DB |

EMO-DB's seventh class, **boredom**, has no RAVDESS counterpart: the ``emodb`` space never predicts it
(`LabelSpace.unmapped`), so a boredom clip is always wrong under it. EMO-DB's "fear" is its
anxiety/fear class. A model whose classes already carry the target's names (e.g. a MELD model's
``joy``) is mapped by those names too.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from emofuse.errors import ConfigError


@dataclass(frozen=True)
class LabelSpace:
    """A target class set: ``classes`` pairs each target name with the RAVDESS class it stands for
    (``None`` for the model's own classes); ``unmapped`` lists target classes no RAVDESS class covers."""

    name: str
    description: str
    classes: tuple[tuple[str, str], ...] = ()
    unmapped: tuple[str, ...] = ()

    @property
    def identity(self) -> bool:
        return not self.classes

    @property
    def names(self) -> list[str]:
        """The target class names the space reports (the mapped ones, in the target's order)."""
        return [target for target, _ in self.classes]


def _same(*names: str) -> tuple[tuple[str, str], ...]:
    return tuple((n, n) for n in names)


LABEL_SPACES: dict[str, LabelSpace] = {s.name: s for s in (
    LabelSpace("8", "the model's own classes (RAVDESS: 8)"),
    LabelSpace("6", "6 classes shared with CREMA-D: calm and surprised dropped",
               _same("neutral", "happy", "sad", "angry", "fearful", "disgust")),
    LabelSpace("cremad", "CREMA-D's 6 classes in its order: calm and surprised dropped",
               _same("angry", "disgust", "fearful", "happy", "neutral", "sad")),
    LabelSpace("7", "7 classes (Ekman's 6 + neutral, FER2013-like): calm dropped",
               _same("neutral", "happy", "sad", "angry", "fearful", "disgust", "surprised")),
    LabelSpace("fer", "FER2013's 7 classes in its order: calm dropped",
               _same("angry", "disgust", "fearful", "happy", "sad", "surprised", "neutral")),
    LabelSpace("meld", "MELD's 7 classes and names: calm dropped",
               (("anger", "angry"), ("disgust", "disgust"), ("fear", "fearful"), ("joy", "happy"),
                ("neutral", "neutral"), ("sadness", "sad"), ("surprise", "surprised"))),
    LabelSpace("emodb", "EMO-DB-like: 6 of its 7 classes (no boredom in RAVDESS); calm and surprised dropped",
               (("anger", "angry"), ("disgust", "disgust"), ("fear", "fearful"), ("happiness", "happy"),
                ("neutral", "neutral"), ("sadness", "sad")), unmapped=("boredom",)),
)}


def list_label_spaces() -> list[str]:
    return list(LABEL_SPACES)


def get_label_space(space: str | LabelSpace) -> LabelSpace:
    """A space by name (``ConfigError`` listing the known ones otherwise)."""
    if isinstance(space, LabelSpace):
        return space
    key = str(space).strip().lower().replace("-", "")
    if key not in LABEL_SPACES:
        raise ConfigError(f"unknown label space {space!r}; known: {', '.join(LABEL_SPACES)}")
    return LABEL_SPACES[key]


def space_indices(labels: Sequence[str], space: str | LabelSpace) -> tuple[list[int], list[str]]:
    """``(model class index of each target class, target names)``; a target class is found under its
    RAVDESS name or its own name. ``ConfigError`` when the model lacks one."""
    s = get_label_space(space)
    labels = list(labels)
    if s.identity:
        return list(range(len(labels))), labels
    index = {lab: i for i, lab in enumerate(labels)}
    found, missing = [], []
    for target, source in s.classes:
        i = index.get(source, index.get(target))
        (missing.append(target) if i is None else found.append(i))
    if missing:
        raise ConfigError(f"label space {s.name!r} needs the classes {', '.join(missing)}, which the model "
                          f"({', '.join(labels)}) does not have")
    return found, s.names


def restrict(probs: np.ndarray, labels: Sequence[str], space: str | LabelSpace) -> tuple[np.ndarray, list[str]]:
    """``(probs', labels')``: the probabilities (one clip, or ``N x C``) over the space's classes,
    renormalised to sum to 1 (uniform where the kept classes had no mass); dropped classes' mass is
    discarded (see the module docstring)."""
    idx, names = space_indices(labels, space)
    p = np.asarray(probs, dtype=np.float64)
    if p.shape[-1] != len(labels):
        raise ValueError(f"probabilities over {p.shape[-1]} classes for {len(labels)} labels")
    kept = p[..., idx]
    total = kept.sum(axis=-1, keepdims=True)
    uniform = np.full_like(kept, 1.0 / len(idx))
    return np.where(total > 0, kept / np.where(total > 0, total, 1.0), uniform), names


def restrict_targets(y: Sequence[int] | np.ndarray, labels: Sequence[str], space: str | LabelSpace
                     ) -> tuple[np.ndarray, np.ndarray]:
    """True class indices in the model's classes → ``(indices in the space's classes, kept mask)``;
    clips of a dropped class (e.g. calm) are not kept (their index is -1)."""
    idx, _ = space_indices(labels, space)
    position = {model_i: k for k, model_i in enumerate(idx)}
    out = np.array([position.get(int(v), -1) for v in np.asarray(y)], dtype=np.int64)
    return out, out >= 0


def restrict_prediction(prediction: Any, space: str | LabelSpace) -> Any:
    """A `Prediction` over the space's classes (a copy; label-less results unchanged). The label is
    the argmax of the renormalised probabilities; a calibrated checkpoint's abstention is decided on the
    model's own calibrated probability of that label (``confidence``), before renormalisation, so a
    clip whose mass sat on a dropped class stays "uncertain". The dropped classes' probabilities are kept
    in ``explanations["label_space"]``."""
    s = get_label_space(space)
    if prediction.label is None or not prediction.probabilities or s.identity:
        return prediction
    labels = list(prediction.probabilities)
    full = np.array([prediction.probabilities[lab] for lab in labels])
    probs, names = restrict(full, labels, s)
    idx, _ = space_indices(labels, s)
    best = int(probs.argmax())
    confidence = float(full[idx[best]])
    status = prediction.status
    if status in ("ok", "uncertain") and prediction.threshold is not None:
        status = "uncertain" if confidence < prediction.threshold else "ok"
    dropped = {lab: float(p) for i, (lab, p) in enumerate(zip(labels, full)) if i not in idx}
    explanations = {**prediction.explanations,
                    "label_space": {"name": s.name, "dropped": dropped, "unmapped": list(s.unmapped)}}
    return dataclasses.replace(prediction, label=names[best], probabilities=dict(zip(names, map(float, probs))),
                               status=status, confidence=confidence, explanations=explanations)
