"""Word error rate: text normalisation and a Levenshtein word alignment.

``WER = (S + D + I) / N``: substitutions, deletions (reference words the hypothesis misses) and
insertions (hypothesis words not in the reference) of a minimum-edit alignment, over ``N``
reference words. Texts are normalised first (`normalise_words`): lowercased, punctuation removed
(apostrophes inside words kept), whitespace split. Corpus WER (`summarise`) sums errors and
reference words over all utterances (not the mean of per-utterance rates).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "`": "'"})
_NOT_WORD = re.compile(r"[^\w']+")


def normalise_words(text: str) -> list[str]:
    """Lowercase words of ``text`` with punctuation removed: ``"Kids are talking, by the door."``
    -> ``["kids", "are", "talking", "by", "the", "door"]``; ``don't`` keeps its apostrophe, a hyphen
    splits (``"by-the"`` -> ``["by", "the"]``)."""
    text = unicodedata.normalize("NFKC", text).translate(_APOSTROPHES).lower()
    words = (w.strip("'_") for w in _NOT_WORD.split(text))
    return [w for w in words if w]


@dataclass(frozen=True)
class Alignment:
    """A minimum-edit alignment of hypothesis to reference words.

    ``ops`` lists, in order, ``(op, ref_word, hyp_word)`` with op ``"="`` (hit), ``"S"``, ``"D"``
    (``hyp_word`` None) or ``"I"`` (``ref_word`` None)."""

    ops: tuple[tuple[str, str | None, str | None], ...]

    def count(self, op: str) -> int:
        return sum(1 for o, _, _ in self.ops if o == op)

    @property
    def hits(self) -> int:
        return self.count("=")

    @property
    def substitutions(self) -> int:
        return self.count("S")

    @property
    def deletions(self) -> int:
        return self.count("D")

    @property
    def insertions(self) -> int:
        return self.count("I")

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    @property
    def ref_words(self) -> int:
        return self.hits + self.substitutions + self.deletions

    @property
    def wer(self) -> float:
        """Errors over reference words (inf for an empty reference with insertions, 0 when both are empty)."""
        n = self.ref_words
        return self.errors / n if n else (float("inf") if self.errors else 0.0)


def align_words(reference: Sequence[str], hypothesis: Sequence[str]) -> Alignment:
    """Levenshtein alignment of two word lists (unit costs). Among equally cheap alignments the
    backtrace prefers a hit or substitution, then a deletion, then an insertion."""
    ref, hyp = list(reference), list(hypothesis)
    n, m = len(ref), len(hyp)
    cost = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(1, n + 1):
        cost[i][0] = i
    for j in range(1, m + 1):
        cost[0][j] = j
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            diag = cost[i - 1][j - 1] + (ref[i - 1] != hyp[j - 1])
            cost[i][j] = min(diag, cost[i - 1][j] + 1, cost[i][j - 1] + 1)
    ops: list[tuple[str, str | None, str | None]] = []
    i, j = n, m
    while i > 0 or j > 0:
        if i > 0 and j > 0 and cost[i][j] == cost[i - 1][j - 1] + (ref[i - 1] != hyp[j - 1]):
            ops.append(("=" if ref[i - 1] == hyp[j - 1] else "S", ref[i - 1], hyp[j - 1]))
            i, j = i - 1, j - 1
        elif i > 0 and cost[i][j] == cost[i - 1][j] + 1:
            ops.append(("D", ref[i - 1], None))
            i -= 1
        else:
            ops.append(("I", None, hyp[j - 1]))
            j -= 1
    return Alignment(tuple(reversed(ops)))


def align_texts(reference: str, hypothesis: str) -> Alignment:
    """`align_words` of the normalised texts."""
    return align_words(normalise_words(reference), normalise_words(hypothesis))


def summarise(alignments: Iterable[Alignment]) -> dict[str, float | int]:
    """Corpus figures of several utterances: ``wer`` (summed errors / summed reference words),
    ``substitutions``, ``deletions``, ``insertions``, ``hits``, ``ref_words``, ``utterances`` and
    ``exact`` (the share of utterances without any error)."""
    items = list(alignments)
    s = sum(a.substitutions for a in items)
    d = sum(a.deletions for a in items)
    ins = sum(a.insertions for a in items)
    n = sum(a.ref_words for a in items)
    return {"wer": (s + d + ins) / n if n else float("nan"), "substitutions": s, "deletions": d,
            "insertions": ins, "hits": sum(a.hits for a in items), "ref_words": n, "utterances": len(items),
            "exact": sum(1 for a in items if a.errors == 0) / len(items) if items else float("nan")}
