"""Shift protocols: speaker-disjoint folds that also change what is said or who says it.

Every protocol is derived from a corpus's speaker-disjoint folds (`emofuse.data.splits`), so the
test speakers are never trained on, and adds one shift between training and test:

- **cross-sentence** (`sentence_folds`): training and validation speakers contribute only their
  clips of the first sentence (RAVDESS ``statement`` 01, CREMA-D's first ``sentence`` code); the
  test speakers are scored on *every* sentence, so one training run gives the within-sentence
  score (test speakers, same sentence) and the cross-sentence score (test speakers, other
  sentences). The groups are composite (``speaker+meta.statement``).
- **cross-gender** (`gender_folds`): training and validation speakers of one gender; the test
  speakers of both genders, scored separately (within-gender and cross-gender, same run).
- **corruptions** are test-time: the models trained on the plain folds are scored on corrupted
  copies of their test clips (`emofuse.experiments.shift`).

`check_speaker_disjoint` refuses any derived fold whose partitions share a speaker.
`subset_scores` scores a subset of a run's test clips; `corruption_summary` makes the
ImageNet-C-style mean / worst / drop figures.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from emofuse.data.record import Sample
from emofuse.data.splits import Fold, check_disjoint, partition
from emofuse.errors import ConfigError
from emofuse.evaluation.metrics import aggregate, classification_metrics

#: meta keys that name the sentence a clip speaks (RAVDESS, CREMA-D)
SENTENCE_KEYS = ("statement", "sentence")
GENDERS = ("M", "F")
#: test-time SNR whose noise corruptions the issue's target compares with clean
TARGET_SNR_DB = 10


def sentence_key(samples: Sequence[Sample]) -> str:
    """The meta key naming each clip's sentence (`ConfigError` when the corpus has none)."""
    for key in SENTENCE_KEYS:
        if samples and all(key in s.meta for s in samples):
            return key
    name = samples[0].dataset if samples else "the corpus"
    raise ConfigError(f"the cross-sentence protocol needs a sentence per clip (meta {' or '.join(SENTENCE_KEYS)}); "
                      f"{name} has none")


def gender_of(sample: Sample) -> str:
    """``"M"`` or ``"F"`` from ``sample.meta["gender"]`` (`ConfigError` naming the clip otherwise)."""
    value = str(sample.meta.get("gender", "")).strip().upper()[:1]
    if value not in GENDERS:
        raise ConfigError(f"the cross-gender protocol needs each speaker's gender; {sample.dataset} clip "
                          f"{sample.id} has meta gender {sample.meta.get('gender')!r}")
    return value


def _speaker_folds(folds: Sequence[Fold]) -> None:
    bad = [f.name for f in folds if f.group_by != "speaker"]
    if bad:
        raise ConfigError(f"shift protocols derive from speaker-disjoint folds; folds {', '.join(bad)} group by "
                          f"{folds[0].group_by}")


def sentence_folds(samples: Sequence[Sample], folds: Sequence[Fold]) -> tuple[list[Fold], str, str]:
    """``(folds, key, training sentence)``: each fold trained and validated on the first sentence
    of its training / validation speakers and tested on every sentence of its test speakers."""
    _speaker_folds(folds)
    key = sentence_key(samples)
    sentences = sorted({str(s.meta[key]) for s in samples})
    if len(sentences) < 2:
        raise ConfigError(f"the cross-sentence protocol needs at least two sentences; {key} is always {sentences}")
    first = sentences[0]
    out = [Fold(name=f"{f.name}-{key}{first}", train=tuple(f"{g}|{first}" for g in f.train),
                val=tuple(f"{g}|{first}" for g in f.val),
                test=tuple(f"{g}|{s}" for g in f.test for s in sentences), group_by=f"speaker+meta.{key}")
           for f in folds]
    return out, key, first


def gender_folds(samples: Sequence[Sample], folds: Sequence[Fold], gender: str) -> list[Fold]:
    """Each fold with training and validation speakers of ``gender`` only; every test speaker kept.
    When none of a fold's validation speakers has that gender, its last training speaker of that
    gender validates instead (never a test speaker)."""
    _speaker_folds(folds)
    by_speaker = {s.speaker: gender_of(s) for s in samples}
    group = {s.speaker: f"{s.speaker}|{s.meta['gender']}" for s in samples}  # speaker+meta.gender groups
    out = []
    for f in folds:
        train = tuple(g for g in f.train if by_speaker.get(g) == gender)
        val = tuple(g for g in f.val if by_speaker.get(g) == gender)
        if not val and len(train) > 1:
            train, val = train[:-1], train[-1:]
        if not train or not val:
            raise ConfigError(f"fold {f.name}: too few {gender} speakers to train and validate on")
        # composite groups: the other gender's training speakers are left out by design (logged at INFO)
        out.append(Fold(name=f"{f.name}-train{gender}", train=tuple(group[g] for g in train),
                        val=tuple(group[g] for g in val), test=tuple(group[g] for g in f.test if g in group),
                        group_by="speaker+meta.gender"))
    return out


def check_speaker_disjoint(samples: Sequence[Sample], folds: Sequence[Fold]) -> None:
    """`SpeakerOverlapError` when any derived fold's train / validation / test share a speaker."""
    for fold in folds:
        tr, va, te = partition(list(samples), fold)
        check_disjoint(samples, tr, va, te, "speaker")


def subset_scores(y_true: Sequence[int], probs: np.ndarray, keep: Sequence[bool],
                  labels: Sequence[str]) -> dict[str, Any]:
    """`classification_metrics` of the clips where ``keep`` is true."""
    mask = np.asarray(keep, dtype=bool)
    if not mask.any():
        raise ConfigError("a shift subset has no test clip")
    y = np.asarray(y_true)[mask]
    return classification_metrics(y, np.asarray(probs)[mask].argmax(axis=1), list(labels))


def split_runs(runs: Sequence[Any], samples_by_id: Mapping[str, Sample], labels: Sequence[str],
               side: Callable[[Sample], str]) -> dict[str, dict[str, Any]]:
    """Aggregate (over runs) of the test clips split by ``side(sample)``: {side value: aggregate}."""
    per_side: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        sides = [side(samples_by_id[i]) for i in run.ids]
        for value in sorted(set(sides)):
            keep = [s == value for s in sides]
            per_side.setdefault(value, []).append(subset_scores(run.y_true, run.probs, keep, labels))
    return {value: _headline(aggregate(metrics)) for value, metrics in per_side.items()}


def _headline(agg: Mapping[str, Any]) -> dict[str, float]:
    keys = [f"{k}_{s}" for k in ("wa", "ua", "macro_f1", "weighted_f1") for s in ("mean", "std")]
    return {k: float(agg[k]) for k in keys if k in agg}


def corruption_summary(clean: Mapping[str, float], corrupted: Mapping[str, Mapping[str, float]],
                       levels: Mapping[str, float | None] | None = None) -> dict[str, Any]:
    """ImageNet-C-style summary: mean and worst WA / UA over the corruptions, their drop from clean,
    and the mean over the noise corruptions at `TARGET_SNR_DB` (``levels``: name -> SNR or None)."""
    if not corrupted:
        raise ConfigError("no corruption was evaluated")
    out: dict[str, Any] = {}
    for key in ("wa", "ua"):
        values = {name: float(m[f"{key}_mean"]) for name, m in corrupted.items()}
        worst = min(values, key=values.get)  # type: ignore[arg-type]
        out[f"{key}_mean"] = float(np.mean(list(values.values())))
        out[f"{key}_worst"] = values[worst]
        out[f"{key}_worst_corruption"] = worst
        out[f"{key}_drop"] = float(clean[f"{key}_mean"]) - out[f"{key}_mean"]
        at_target = [v for n, v in values.items() if levels and levels.get(n) == TARGET_SNR_DB]
        if at_target:
            out[f"{key}_snr{TARGET_SNR_DB}_mean"] = float(np.mean(at_target))
            out[f"{key}_snr{TARGET_SNR_DB}_drop"] = float(clean[f"{key}_mean"]) - float(np.mean(at_target))
    out["n_corruptions"] = len(corrupted)
    return out


SHIFT_COLUMNS = ("model", "clean WA", "clean UA", "sentence UA within → cross", "gender UA within → cross (gap)",
                 "corruption UA mean (drop)", "worst corruption UA", f"{TARGET_SNR_DB} dB noise UA (drop)",
                 "ECE before → after", "answered (accuracy)")


def shift_row_cells(row: Mapping[str, Any]) -> list[str]:
    """One results row of ``--protocol shift`` as `SHIFT_COLUMNS` cells."""
    shift, cal = row["shift"], row.get("calibration", {})
    sent, gender, corr = shift["cross_sentence"], shift["cross_gender"], shift["corruption_summary"]
    snr = corr.get(f"ua_snr{TARGET_SNR_DB}_mean")
    cells = [str(row["model"]), f"{row['wa_mean']:.3f}", f"{row['ua_mean']:.3f}",
             f"{sent['within']['ua_mean']:.3f} → {sent['cross']['ua_mean']:.3f}",
             f"{gender['within_ua_mean']:.3f} → {gender['cross_ua_mean']:.3f} ({gender['ua_gap']:+.3f})",
             f"{corr['ua_mean']:.3f} ({corr['ua_drop']:+.3f})",
             f"{corr['ua_worst']:.3f} ({corr['ua_worst_corruption']})",
             "n/a" if snr is None else f"{snr:.3f} ({corr[f'ua_snr{TARGET_SNR_DB}_drop']:+.3f})"]
    if cal.get("ece_before_mean") is not None:
        cells += [f"{cal['ece_before_mean']:.3f} → {cal['ece_after_mean']:.3f}",
                  f"{cal['coverage_mean']:.2f} ({cal['answered_accuracy_mean']:.3f})"]
    else:
        cells += ["n/a", "n/a"]
    return cells


def shift_table(results: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> str:
    """Markdown table of every row that has shift results ("" when none has)."""
    rows = results["results"] if isinstance(results, Mapping) else list(results)
    rows = [r for r in rows if r.get("shift")]
    if not rows:
        return ""
    lines = ["| " + " | ".join(SHIFT_COLUMNS) + " |", "|" + "|".join("---" for _ in SHIFT_COLUMNS) + "|"]
    lines += ["| " + " | ".join(shift_row_cells(r)) + " |" for r in rows]
    return "\n".join(lines) + "\n"
