"""IEMOCAP loader (the release layout ``Session1`` ... ``Session5``).

Per session: ``dialog/EmoEvaluation/<dialog>.txt`` holds one summary line per utterance
(``[start - end]<TAB>utt_id<TAB>label<TAB>[V, A, D]``), ``sentences/wav/<dialog>/<utt>.wav`` the
audio and ``dialog/transcriptions/<dialog>.txt`` the text (``utt_id [start-end]: text``).
The speaker of ``Ses01F_impro01_M003`` is ``"Ses01M"`` (session + gender of the utterance's
speaker, the first letter after the last underscore).
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from pathlib import Path

from emofuse.data.manifest import MissingReport, read_text_robust
from emofuse.data.record import Sample
from emofuse.data.specs import DatasetSpec, register_dataset
from emofuse.errors import DataError

log = logging.getLogger("emofuse.data")

#: the usual 4-class setup, in this order
IEMOCAP_LABELS = ["neutral", "happy", "angry", "sad"]
#: every EmoEvaluation code -> label name
CODES = {
    "neu": "neutral", "hap": "happy", "exc": "excited", "ang": "angry", "sad": "sad",
    "fru": "frustrated", "sur": "surprised", "fea": "fearful", "dis": "disgust", "oth": "other",
    "xxx": "no_agreement",
}
IEMOCAP_ALL_LABELS = list(CODES.values())
_EVAL_LINE = re.compile(
    r"^\[\s*([\d.]+)\s*-\s*([\d.]+)\s*\]\s+(Ses(\d\d)[FM]_\S+_([FM])\w*)\s+(\w+)\s+"
    r"\[\s*([-\d.]+)\s*,\s*([-\d.]+)\s*,\s*([-\d.]+)\s*\]\s*$"
)
_TRANSCRIPT_LINE = re.compile(r"^(Ses\d\d[FM]_\S+_[FM]\w*)\s+\[[^\]]*\]:\s?(.*)$")


def _read_transcripts(path: Path) -> dict[str, str]:
    texts: dict[str, str] = {}
    for line in read_text_robust(path).splitlines():
        m = _TRANSCRIPT_LINE.match(line.strip())
        if m:
            texts[m.group(1)] = m.group(2).strip()
    return texts


def _parse_evaluation(path: Path, session: int) -> list[dict]:
    """The utterance summary lines of one EmoEvaluation file (detail lines are skipped)."""
    utterances = []
    for n, line in enumerate(read_text_robust(path).splitlines(), start=1):
        if not line.startswith("["):
            continue  # per-annotator detail lines ("C-E1: ...", "A-E2: ...") and headers
        m = _EVAL_LINE.match(line.strip())
        if not m:
            raise DataError(path, f"line {n}: malformed evaluation line {line.strip()!r}")
        start, end, utt, sess, gender, code, v, a, d = m.groups()
        if int(sess) != session:
            raise DataError(path, f"line {n}: utterance {utt} is not from Session{session}")
        if code not in CODES:
            raise DataError(path, f"line {n}: unknown emotion code {code!r} for {utt} (known: {', '.join(CODES)})")
        utterances.append({"id": utt, "start": float(start), "end": float(end), "gender": gender,
                           "code": code, "valence": float(v), "activation": float(a), "dominance": float(d)})
    return utterances


def prepare_iemocap(root: str | Path, *, four_class: bool = True, excited_as_happy: bool = True,
                    strict: bool = False) -> list[Sample]:
    """Load IEMOCAP utterances with audio and transcript sources.

    Args:
        root: folder holding ``Session1`` ... ``Session5`` (any subset present).
        four_class: keep only neutral/happy/angry/sad (others are dropped and counted in a log line).
        excited_as_happy: map ``exc`` to ``happy`` (the common 4-class setup merges them).
        strict: raise instead of warning when a wav or transcript is missing.
    """
    root = Path(root)
    sessions = sorted(p for p in root.glob("Session[0-9]*") if p.is_dir()) if root.is_dir() else []
    if not sessions:
        raise DataError(root, "no SessionN folders found (IEMOCAP root)")
    mapping = dict(CODES)
    if excited_as_happy:
        mapping["exc"] = "happy"
    missing_wav = MissingReport(root, "wav file", strict)
    missing_text = MissingReport(root, "transcript", strict)
    samples: list[Sample] = []
    kept, dropped = Counter(), Counter()
    for session_dir in sessions:
        session = int(session_dir.name.removeprefix("Session"))
        eval_dir = session_dir / "dialog" / "EmoEvaluation"
        eval_files = sorted(eval_dir.glob("*.txt"))
        if not eval_files:
            raise DataError(eval_dir, "no EmoEvaluation files")
        for eval_file in eval_files:
            dialog = eval_file.stem
            transcript_file = session_dir / "dialog" / "transcriptions" / f"{dialog}.txt"
            texts = _read_transcripts(transcript_file) if transcript_file.is_file() else {}
            for utt in _parse_evaluation(eval_file, session):
                label = mapping[utt["code"]]
                if four_class and label not in IEMOCAP_LABELS:
                    dropped[utt["code"]] += 1
                    continue
                kept[utt["code"]] += 1
                sources: dict = {}
                wav = session_dir / "sentences" / "wav" / dialog / f"{utt['id']}.wav"
                if wav.is_file():
                    sources["audio"] = wav
                else:
                    missing_wav.add(utt["id"], str(wav))
                if utt["id"] in texts:
                    sources["text"] = texts[utt["id"]]
                else:
                    missing_text.add(utt["id"], str(transcript_file))
                meta = {"session": session, "dialog": dialog, "gender": utt["gender"],
                        "improvised": "_impro" in dialog, "start": utt["start"], "end": utt["end"],
                        "emotion_code": utt["code"], "valence": utt["valence"],
                        "activation": utt["activation"], "dominance": utt["dominance"]}
                samples.append(Sample(id=utt["id"], speaker=f"Ses{session:02d}{utt['gender']}",
                                      dataset="iemocap", label=label, sources=sources, meta=meta))
    missing_wav.summary()
    missing_text.summary()
    log.info("%s: IEMOCAP kept %d utterances %s; dropped %d outside the 4 classes %s",
             root, sum(kept.values()), dict(kept), sum(dropped.values()), dict(dropped))
    ids = Counter(s.id for s in samples)
    dup = [i for i, c in ids.items() if c > 1]
    if dup:
        raise DataError(root, f"duplicate utterance ids in EmoEvaluation files: {', '.join(dup[:5])}")
    if not samples:
        raise DataError(root, "no IEMOCAP utterances left")
    return samples


# ---------------------------------------------------------------------------------------------
# The dataset specification (see emofuse.data.specs).

def _folds_protocol() -> dict:
    from emofuse.data.splits import rotating_folds

    groups = [[f"Ses{s:02d}F", f"Ses{s:02d}M"] for s in range(1, 6)]
    return {
        "dataset": "iemocap", "group_by": "speaker",
        "protocol": "leave-one-session-out: test = both speakers of session k, validation = both speakers of "
                    "session k+1 (cyclically), train = the other 3 sessions.",
        "folds": rotating_folds(groups, lambda k: groups[(k + 1) % 5]),
    }


def _speaker_folds_protocol() -> dict:
    """Speaker-independent within sessions: each session has one female and one male speaker."""
    speakers = [f"Ses{s:02d}{g}" for s in range(1, 6) for g in "FM"]
    folds = []
    for test in speakers:
        val = test[:-1] + ("M" if test.endswith("F") else "F")
        folds.append({"name": f"{test}", "train": [g for g in speakers if g[:5] != test[:5]], "val": [val],
                      "test": [test]})
    return {
        "dataset": "iemocap_speaker", "group_by": "speaker",
        "protocol": "leave-one-speaker-out within sessions: test = one speaker of session k, validation = the "
                    "other speaker of session k, train = the 8 speakers of the other 4 sessions (10 folds).",
        "folds": folds,
    }


register_dataset(DatasetSpec(
    # the same corpus and loader, folds that test each speaker alone (the session's other speaker validates)
    name="iemocap_speaker", folder="iemocap", labels=tuple(IEMOCAP_LABELS), loader=prepare_iemocap,
    folds="iemocap_speaker", modalities=frozenset({"audio", "text", "meta"}),
    default_recipes=("text_audio_attention_iemocap",), folds_protocol=_speaker_folds_protocol,
))


register_dataset(DatasetSpec(
    name="iemocap", folder="iemocap", labels=tuple(IEMOCAP_LABELS), loader=prepare_iemocap, folds="iemocap",
    modalities=frozenset({"audio", "text", "meta"}),  # speech + transcripts, speaker gender
    default_recipes=("logreg_egemaps", "logreg_whisper", "logreg_minilm", "attention_pooling_audio",
                     "text_audio_attention"),
    folds_protocol=_folds_protocol,
))
