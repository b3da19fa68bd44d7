"""Run the bad-input corpus (`emofuse.diagnostics.corpus`) through a Predictor and count what happens.

``python -m emofuse.diagnostics.bad_inputs [--out report.json] [--keep DIR]`` generates the corpus,
predicts each file with the shipped demo model in a separate subprocess under a time limit, measures
the subprocess's peak memory and wall time, and prints the counts: correct results (and among them
clear errors), crashes, hangs, wrong-but-silent results and the peak memory over inputs. It exits 1
when a target is missed (any crash, hang, wrong-but-silent or unclear result, or a file over 1 GB).

Verdicts (`judge`) for one case:
- ``correct``: a status the case expects; an error or no-speech message names the file; an "ok"
  carries the warning the case asks for.
- ``wrong_silent``: a label where none is right (non-speech, broken input), or "ok" without an
  expected warning.
- ``mismatch``: a clear, label-less status of another kind than expected (e.g. an error for speech).
- ``unclear_error``: a label-less status whose message does not name the file, or does not say
  what the case asks (`Case.wording`, e.g. "not an audio file" for random bytes).
- ``crash``: an exception that is not an `emofuse.errors.EmofuseError`, or a subprocess that died.
- ``hang``: the time limit was hit, or a refusal that must be instant (`Case.max_seconds`, e.g. a
  header declaring 1 Hz) took longer in ``predict_file``. ``over_memory``: the memory cap was hit (killed, or MemoryError).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import re
import resource
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from emofuse.diagnostics.corpus import Case, generate
# statuses that carry a label ("uncertain": below a calibrated checkpoint's threshold, a best guess)
from emofuse.inference.predictor import ANSWERED

VERDICTS = ("correct", "mismatch", "unclear_error", "wrong_silent", "crash", "hang", "over_memory")
#: verdicts that miss the targets of issue #10 (zero of each)
FAILURES = ("unclear_error", "wrong_silent", "crash", "hang", "over_memory")
#: peak memory target for any single input
MEMORY_TARGET_MB = 1024
_MARK = "@@bad_inputs_result@@"
_MODULE = "emofuse.diagnostics.bad_inputs"


@dataclass
class Outcome:
    """What running one file gave."""

    status: str | None = None  # Prediction.status; None when no result came back
    label: str | None = None
    message: str | None = None
    warnings: list[str] = field(default_factory=list)
    #: Python warnings (warnings.warn) raised while predicting, for information
    python_warnings: list[str] = field(default_factory=list)
    crash: str | None = None  # "Type: message" of a non-emofuse exception, or how the subprocess died
    hang: bool = False
    over_memory: bool = False
    seconds: float | None = None  # wall time: the subprocess (model loading included), or predict_file in-process
    predict_seconds: float | None = None  # predict_file alone
    peak_rss_mb: float | None = None


class CaseTimeout(BaseException):
    """Raised by the alarm of `run_in_process` (a BaseException, so no ``except Exception`` swallows it)."""


def predict_like_cli(predictor: Any, path: Path) -> Any:
    """What ``emofuse predict FILE`` does with ``predictor``: a file with a video track through the shipped
    audio-visual model built on it (`emofuse.inference.audio_visual`), any other file through it."""
    from emofuse.cli.predict import _is_video

    if not _is_video(str(path)):
        return predictor.predict_file(path)
    if getattr(predictor, "_audio_visual", None) is None:
        from emofuse.inference.audio_visual import AudioVisualPredictor

        predictor._audio_visual = AudioVisualPredictor(audio_predictor=predictor)
    return predictor._audio_visual.predict_file(path)


def predict_outcome(predictor: Any, path: Path) -> Outcome:
    """`predict_like_cli` on ``path``: a raised `EmofuseError` becomes its label-less status
    (`Prediction.failed`), any other exception a crash."""
    from emofuse.errors import EmofuseError
    from emofuse.inference.predictor import Prediction

    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            pred = predict_like_cli(predictor, path)
        except EmofuseError as exc:
            pred = Prediction.failed(path, exc)
        except MemoryError as exc:
            return Outcome(over_memory=True, crash=f"MemoryError: {exc}", predict_seconds=time.perf_counter() - start)
        except Exception as exc:  # noqa: BLE001  (what we are here to count)
            return Outcome(crash=f"{type(exc).__name__}: {exc}", predict_seconds=time.perf_counter() - start)
    return Outcome(status=pred.status, label=pred.label, message=pred.message, warnings=list(pred.warnings),
                   python_warnings=[str(w.message) for w in caught], predict_seconds=time.perf_counter() - start)


def names_file(path: Path | None, message: str | None) -> bool:
    """Whether ``message`` names the file (its path as given, or its name)."""
    if path is None or not message:
        return False
    return str(path) in message or path.name in message


def judge(case: Case, outcome: Outcome) -> str:
    """The verdict (one of `VERDICTS`) for ``outcome`` on ``case``; see the module docstring."""
    if outcome.hang or (case.max_seconds is not None and (outcome.predict_seconds or 0.0) > case.max_seconds):
        return "hang"
    if outcome.over_memory:
        return "over_memory"
    if outcome.crash is not None or outcome.status is None:
        return "crash"
    if outcome.status in ANSWERED:
        if "ok" not in case.expected:
            return "wrong_silent"
        if case.warn is not None and not any(re.search(case.warn, w, re.IGNORECASE) for w in outcome.warnings):
            return "wrong_silent"
        return "correct" if outcome.label is not None else "mismatch"
    if outcome.label is not None:
        return "wrong_silent"
    if outcome.status not in case.expected:
        return "mismatch"
    if not names_file(case.path, outcome.message):
        return "unclear_error"
    problem = (outcome.message or "").replace(str(case.path), "")  # the words, not the path (loop_a.wav)
    if case.wording is not None and not re.search(case.wording, problem, re.IGNORECASE):
        return "unclear_error"
    return "correct"


# ---------------------------------------------------------------- running


@contextlib.contextmanager
def memory_cap(extra_mb: int) -> Iterator[None]:
    """Limit this process's address space to its current size plus ``extra_mb`` (a runaway
    allocation raises MemoryError instead of taking the machine); restored on exit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = _vm_kb("VmSize", os.getpid()) * 1024 + extra_mb * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (limit if hard == resource.RLIM_INFINITY else min(limit, hard), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def _vm_kb(field_name: str, pid: int) -> int:
    """A ``/proc/PID/status`` memory field in kB (0 when the process is gone)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    match = re.search(rf"^{field_name}:\s+(\d+) kB", text, re.MULTILINE)
    return int(match.group(1)) if match else 0


def run_in_process(predictor: Any, case: Case, timeout_s: int) -> Outcome:
    """One case in this process with a ``signal.alarm`` guard (main thread only). An alarm cannot
    stop C code that never returns to Python; use `run_in_subprocess` for hard limits."""
    def on_alarm(signum: int, frame: Any) -> None:
        raise CaseTimeout(f"{case.name}: over {timeout_s} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    start = time.perf_counter()
    signal.alarm(timeout_s)
    try:
        outcome = predict_outcome(predictor, case.path)
    except CaseTimeout:
        outcome = Outcome(hang=True)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    outcome.seconds = time.perf_counter() - start
    return outcome


def run_in_subprocess(path: Path, timeout_s: float, max_memory_mb: int) -> Outcome:
    """One file in a fresh ``python -m emofuse.diagnostics.bad_inputs --child`` (model loading
    included), killed after ``timeout_s`` or above ``max_memory_mb`` of resident memory."""
    cmd = [sys.executable, "-m", _MODULE, "--child", "--max-memory-mb", str(max_memory_mb), "--", str(path)]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, errors="replace")
    peak_kb, hang, over = 0, False, False
    while True:
        try:
            out, err = proc.communicate(timeout=0.1)
            break
        except subprocess.TimeoutExpired:
            peak_kb = max(peak_kb, _vm_kb("VmHWM", proc.pid))
            hang = time.perf_counter() - start > timeout_s
            over = peak_kb > max_memory_mb * 1024
            if hang or over:
                proc.kill()
                out, err = proc.communicate()
                break
    outcome = _child_outcome(out, err, proc.returncode) if not (hang or over) else Outcome(hang=hang, over_memory=over)
    outcome.seconds = time.perf_counter() - start
    outcome.peak_rss_mb = round(max(peak_kb / 1024, outcome.peak_rss_mb or 0.0), 1)
    return outcome


def _child_outcome(out: str, err: str, returncode: int) -> Outcome:
    lines = [line for line in out.splitlines() if line.startswith(_MARK)]
    if not lines:
        tail = (err.strip().splitlines() or ["(no output)"])[-1]
        how = f"killed by signal {-returncode}" if returncode < 0 else f"exit {returncode}"
        return Outcome(crash=f"subprocess {how} without a result: {tail}")
    data = json.loads(lines[-1][len(_MARK):])
    outcome = Outcome(**{k: v for k, v in data.items() if k in Outcome.__dataclass_fields__})
    if returncode not in (0, 3):
        outcome.crash = outcome.crash or f"subprocess exit {returncode}"
    return outcome


def child_main(path: str, max_memory_mb: int) -> int:
    """The subprocess side: predict ``path`` with the demo model, print one marked JSON line."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = (max_memory_mb + 6144) * 2**20  # a backstop; the parent watches resident memory
    resource.setrlimit(resource.RLIMIT_AS, (limit if hard == resource.RLIM_INFINITY else min(limit, hard), hard))
    from emofuse.inference.predictor import Predictor

    predictor = Predictor()
    outcome = predict_outcome(predictor, Path(path))
    # VmHWM, not getrusage's ru_maxrss: after exec, ru_maxrss (and RUSAGE_CHILDREN's in the parent)
    # still counts the parent's memory copied by fork, e.g. 1 GB for a pytest process holding torch
    outcome.peak_rss_mb = _vm_kb("VmHWM", os.getpid()) / 1024
    print(_MARK + json.dumps(asdict(outcome)), flush=True)
    return 3 if outcome.crash else 0


# ---------------------------------------------------------------- counting and reporting


def summarize(cases: Sequence[Case], outcomes: Sequence[Outcome | None]) -> dict[str, Any]:
    """The counts of issue #10 and one record per case."""
    records, reference = [], {}
    for case, outcome in zip(cases, outcomes):
        if outcome is not None and case.name.startswith("ref_") and outcome.status in ANSWERED:
            reference[case.source] = outcome.label
    for case, outcome in zip(cases, outcomes):
        record = {"name": case.name, "file": None if case.path is None else str(case.path),
                  "expected": list(case.expected), "warning_expected": case.warn, "description": case.description,
                  "slow": case.slow}
        if outcome is None:
            record.update(verdict="skipped", skipped=case.skipped)
        else:
            record.update(verdict=judge(case, outcome), **asdict(outcome))
            if outcome.status in ANSWERED and reference.get(case.source) is not None:
                record["label_matches_source"] = outcome.label == reference[case.source]
        records.append(record)
    run = [r for r in records if r["verdict"] != "skipped"]
    verdicts = Counter(r["verdict"] for r in run)
    correct = Counter(r["status"] for r in run if r["verdict"] == "correct")
    peaks = [r["peak_rss_mb"] for r in run if r.get("peak_rss_mb") is not None]
    matches = [r["label_matches_source"] for r in run if "label_matches_source" in r]
    counts = {
        "cases": len(records), "run": len(run), "skipped": len(records) - len(run),
        "correct": verdicts["correct"], "correct_ok": correct["ok"],
        "correct_no_speech": correct["no_speech"] + correct["too_short"], "correct_error": correct["error"],
        "clear_errors": sum(1 for r in run if r.get("status") == "error" and r.get("label") is None
                            and names_file(Path(r["file"]) if r["file"] else None, r.get("message"))),
        **{v: verdicts[v] for v in VERDICTS if v != "correct"},
        "peak_memory_mb": max(peaks) if peaks else None,
        "over_memory_target": sum(1 for p in peaks if p > MEMORY_TARGET_MB),
        "label_matches_source": f"{sum(matches)}/{len(matches)}",
    }
    return {"counts": counts, "cases": records}


def format_counts(counts: dict[str, Any]) -> str:
    """Markdown table of `summarize`'s counts."""
    peak = counts["peak_memory_mb"]
    rows = [
        ("inputs run (skipped)", f"{counts['run']} ({counts['skipped']})"),
        ("correct results", counts["correct"]),
        ("  - a label, as expected", counts["correct_ok"]),
        ("  - no_speech / too_short, as expected", counts["correct_no_speech"]),
        ("  - a clear error naming the file, as expected", counts["correct_error"]),
        ("clear errors (status error, file named; all inputs)", counts["clear_errors"]),
        ("other clear refusals (another status than expected)", counts["mismatch"]),
        ("unclear errors (file or problem not named)", counts["unclear_error"]),
        ("crashes", counts["crash"]),
        ("hangs", counts["hang"]),
        ("wrong-but-silent results", counts["wrong_silent"]),
        ("over the memory cap (killed)", counts["over_memory"]),
        ("peak memory, max over inputs", "n/a" if peak is None else f"{peak:.0f} MB"),
        (f"inputs over {MEMORY_TARGET_MB} MB", counts["over_memory_target"]),
        ("ok labels equal to the source clip's", counts["label_matches_source"]),
    ]
    return "\n".join(["| outcome | count |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows])


def format_cases(records: Sequence[dict[str, Any]], every: bool = False) -> str:
    """One line per case that is not correct (``every``: all cases)."""
    lines = []
    for r in records:
        if not every and r["verdict"] in ("correct", "skipped"):
            continue
        got = r.get("skipped") or r.get("crash") or ("time limit hit" if r.get("hang") else "memory cap hit"
                                                     if r.get("over_memory") else
                                                     f"{r.get('status')} {r.get('label') or ''}".strip())
        detail = r.get("message") or "; ".join(r.get("warnings") or [])
        lines.append(f"{r['verdict']:>13}  {r['name']:<24} expected {'/'.join(r['expected'])}"
                     f"{' + warning' if r['warning_expected'] is not None else ''}, got {got}"
                     f"{': ' + detail[:160] if detail else ''}")
    return "\n".join(lines)


def missed_targets(counts: dict[str, Any]) -> bool:
    return any(counts[v] for v in FAILURES) or bool(counts["over_memory_target"])


def _machine() -> dict[str, Any]:
    return {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count(),
            "load_average": [round(x, 2) for x in os.getloadavg()]}


def run_corpus(folder: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Generate the corpus in ``folder`` and run every case (subprocesses, or in this process)."""
    only = set(args.only.split(",")) if args.only else None
    cases = generate(folder, include_slow=not args.skip_slow, only=only)
    outcomes: list[Outcome | None] = []
    predictor = None
    for i, case in enumerate(cases, 1):
        if case.skipped:
            outcomes.append(None)
            continue
        if args.in_process:
            if predictor is None:
                from emofuse.inference.predictor import Predictor

                predictor = Predictor()
            with memory_cap(args.max_memory_mb):
                outcome = run_in_process(predictor, case, int(args.timeout))
        else:
            outcome = run_in_subprocess(case.path, args.timeout, args.max_memory_mb)
        outcomes.append(outcome)
        print(f"[{i}/{len(cases)}] {case.name}: {judge(case, outcome)} ({outcome.seconds:.1f} s)", file=sys.stderr)
    return summarize(cases, outcomes)


def main(argv: list[str] | None = None) -> int:
    """``python -m emofuse.diagnostics.bad_inputs [--out report.json] [--keep DIR]``"""
    parser = argparse.ArgumentParser(prog="python -m emofuse.diagnostics.bad_inputs",
                                     description="Run a generated corpus of bad and unusual media files through "
                                                 "the demo model and count the outcomes.")
    parser.add_argument("--out", type=Path, help="write the counts and every case's outcome to this JSON file")
    parser.add_argument("--keep", type=Path, help="generate the corpus into this folder and keep it")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per file (default 60)")
    parser.add_argument("--max-memory-mb", type=int, default=4096, help="kill a file's run above this (default 4096)")
    parser.add_argument("--only", help="comma-separated case names")
    parser.add_argument("--skip-slow", action="store_true", help="leave out long files (10 min of silence)")
    parser.add_argument("--in-process", action="store_true",
                        help="one process and one model load for all files (fast; no per-file memory figure)")
    parser.add_argument("--all", action="store_true", help="list every case, not only those that are not correct")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("path", nargs="?", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child_main(args.path, args.max_memory_mb)
    started, machine = dt.datetime.now(dt.timezone.utc), _machine()
    with contextlib.ExitStack() as stack:
        folder = args.keep or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="emofuse-bad-inputs-")))
        report = run_corpus(folder, args)
    report.update(date=started.isoformat(timespec="seconds"), command=" ".join([parser.prog, *(argv or sys.argv[1:])]),
                  mode="in-process" if args.in_process else "subprocess per file", timeout_s=args.timeout,
                  machine={**machine, "load_average_at_end": _machine()["load_average"]})
    print(format_cases(report["cases"], every=args.all))
    print()
    print(format_counts(report["counts"]))
    if args.out:
        from emofuse.atomic import atomic_write_text

        atomic_write_text(args.out, json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    return 1 if missed_targets(report["counts"]) else 0


if __name__ == "__main__":
    sys.exit(main())
