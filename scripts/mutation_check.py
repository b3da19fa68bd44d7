#!/usr/bin/env python
"""Mutation check: plant deliberate bugs in core code paths and count how many the tests catch.

Each mutation below is data: an id, one line on what it breaks, a code ``snippet`` that must occur
exactly once in ``src/emofuse/**/*.py`` (found by content, not by line number, so it survives
files being moved), its ``replacement`` and the tests to run. For every mutation the script copies
the repository's ``src/``, ``tests/`` (and the files the tests read) to a temporary folder, applies
the mutation there, and runs the chosen tests on the copy with ``PYTHONPATH`` pointing at the
copy's ``src/``: "caught" = the tests fail, "survived" = they pass. The unmutated copy runs first
and must pass. A snippet not found exactly once is reported as stale (the code moved: update the
snippet) and makes the script exit non-zero. The repository itself is never modified.

    OMP_NUM_THREADS=1 python scripts/mutation_check.py [--root REPO] [--only ID,...] [--json OUT]
                                                       [--jobs N] [--timeout S] [--machine M] [--list]

Exit status: 0 when every mutation is caught; 1 when one survived, timed out or is stale; 3 when
the unmutated copy fails its tests.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: what is copied into each temporary tree (absent entries are skipped)
COPIED = ("src", "tests", "docs", "pyproject.toml", "conftest.py", "README.md", "LICENSE")
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", ".pytest_cache")


@dataclass(frozen=True)
class Mutation:
    id: str
    what: str
    snippet: str
    replacement: str
    tests: tuple[str, ...]


T_PAD = "tests/test_padding_invariance.py"
T_GAPS = "tests/test_mutation_gaps.py"

MUTATIONS: tuple[Mutation, ...] = (
    Mutation("masked_mean_ignores_mask", "masked_mean averages padded frames too (mask ignored)",
             "    return (x * m).sum(1) / m.sum(1).clamp_min(1.0)",
             "    return x.mean(1)",
             (T_PAD, "tests/test_models.py")),
    Mutation("masked_mean_full_length", "masked_mean divides by the padded length, not the valid count",
             "    return (x * m).sum(1) / m.sum(1).clamp_min(1.0)",
             "    return (x * m).sum(1) / x.shape[1]",
             (T_PAD, "tests/test_models.py")),
    Mutation("attention_pool_unmasked", "attentive pooling's softmax runs over padded frames too",
             'scores = self.score(x).squeeze(-1).masked_fill(~mask, float("-inf"))',
             "scores = self.score(x).squeeze(-1)",
             (T_PAD,)),
    Mutation("collate_mask_covers_padding", "collate marks padded frames as valid",
             "mask[i, : a.shape[0]] = ~missing",
             "mask[i, :] = True",
             ("tests/test_training.py::test_collate_pads_ragged_and_masks_absent_modalities", T_GAPS)),
    Mutation("tucker_conv_reads_padding", "LogMelCNN no longer re-zeroes padding between conv blocks (#17 item 1)",
             "            if isinstance(layer, nn.MaxPool2d):  # end of a block: re-zero padding before the next conv\n"
             "                h = h * frames",
             "            pass",
             (T_PAD, "tests/test_tucker.py")),
    Mutation("resampling_skipped", "audio at another sample rate is not resampled to 16 kHz",
             "self._stream = None if sr == target_sr else soxr.ResampleStream(",
             "self._stream = None if True else soxr.ResampleStream(",
             ("tests/test_audio.py",)),
    Mutation("downmix_first_channel", "stereo is down-mixed by taking the left channel instead of the mean",
             "mono = block.mean(axis=1, dtype=np.float32) if block.shape[1] > 1 else block[:, 0]",
             "mono = block[:, 0]",
             ("tests/test_audio.py",)),
    Mutation("standardiser_fit_on_test", "k-fold fits the feature standardiser on the test partition",
             "stats = fit_standardizer(columns, train_idx)",
             "stats = fit_standardizer(columns, test_idx)",
             ("tests/test_training.py::test_run_kfold_standardize_extra_tests_and_fold_callback", T_GAPS)),
    Mutation("standardiser_wrong_axis", "standardiser uses one mean/std over all dimensions, not per dimension",
             "        mean = stacked.mean(0)\n        std = stacked.std(0)",
             "        mean = np.full(stacked.shape[1], stacked.mean())\n"
             "        std = np.full(stacked.shape[1], stacked.std())",
             ("tests/test_training.py::test_run_kfold_standardize_extra_tests_and_fold_callback", T_GAPS)),
    Mutation("fold_speaker_overlap", "partition check ignores speakers shared between train/val/test",
             "        shared = groups[a] & groups[b]",
             "        shared = set()",
             ("tests/test_splits.py", "tests/test_training.py::test_run_kfold_rejects_unknown_label_and_overlapping_fold",
              T_GAPS)),
    Mutation("checkpoint_extras_unpickled", "checkpoint extras that are not safetensors are unpickled (pickle fallback)",
             "        extras = load_file(str(path), device=map_location)\n    except Exception as exc:",
             "        try:\n            extras = load_file(str(path), device=map_location)\n"
             "        except Exception:\n            import pickle\n\n"
             "            extras = pickle.loads(path.read_bytes())\n"
             "    except Exception as exc:",
             # the run-time checks first: the static source scan (last) would catch it on its own
             ("tests/test_checkpoint_validation.py::test_pickled_extras_are_refused_and_never_unpickled",
              "tests/test_no_unpickling.py")),
    Mutation("checkpoint_nan_weights", "checkpoint weights holding NaN/inf are accepted",
             "broken = [k for k, v in state.items() if v.is_floating_point() and not _finite(v)]",
             "broken = []",
             ("tests/test_checkpoint_validation.py",)),
    Mutation("resume_key_ignores_code", "benchmark run key leaves out the code fingerprint (resume reuses old rows)",
             '"code": code_fingerprint(recipe),',
             '"code": "fixed",',
             ("tests/test_benchmark.py::test_run_key_tracks_what_changes_the_numbers",
              "tests/test_benchmark.py::test_a_stored_row_from_older_code_is_not_reused")),
    Mutation("ensemble_first_member", "an ensemble predicts with its first member only",
             "        mean = np.mean(probs, axis=0)\n        explanations: dict[str, Any] = {}",
             "        mean = probs[0]\n        explanations: dict[str, Any] = {}",
             ("tests/test_ensemble.py::test_ensemble_predictor_averages_members_each_with_its_own_standardisation",)),
    Mutation("tta_first_view", "test-time averaging keeps only the original input, dropping the test views",
             "    outputs = [predict(x) for x in inputs]\n",
             "    outputs = [predict(x) for x in inputs][:1]\n",
             ("tests/test_augment.py",)),
    Mutation("ua_is_wa", "UA is computed as plain accuracy (WA)",
             '"ua": unweighted_accuracy(t, p)}',
             '"ua": float(accuracy_score(t, p))}',
             ("tests/test_metrics.py",)),
    Mutation("label_order_sorted", "checkpoints store the label names sorted, not in class-index order",
             '        "labels": list(labels),',
             '        "labels": sorted(labels),',
             ("tests/test_cli.py::test_demo_model_is_right_on_the_unseen_sample_clips", T_GAPS)),
    Mutation("label_index_sorted", "k-fold numbers the classes in sorted-name order, not the given label order",
             "    index = {name: i for i, name in enumerate(label_names)}",
             "    index = {name: i for i, name in enumerate(sorted(label_names))}",
             ("tests/test_training.py::test_run_kfold_per_fold_metrics_and_outputs", T_GAPS)),
    Mutation("seed_ensemble_first_seed", "a k-fold seed ensemble scores only its first seed's probabilities",
             "            probs = np.mean([r.probs for r in runs], axis=0)",
             "            probs = runs[0].probs",
             ("tests/test_training.py::test_seed_ensemble_averages_probabilities_per_fold",)),
    Mutation("standardiser_no_scaling", "standardisation subtracts the mean but does not divide by the std",
             "((a - mean) / std).astype(np.float32)",
             "(a - mean).astype(np.float32)",
             ("tests/test_ensemble.py::test_ensemble_predictor_averages_members_each_with_its_own_standardisation",
              "tests/test_training.py::test_run_kfold_standardize_extra_tests_and_fold_callback", T_GAPS)),
    Mutation("best_epoch_max_mode_inverted", "with a metric to maximise (val_ua), the lowest epoch is kept as best",
             "monitor=monitor, mode=mode, save_top_k=1,",
             'monitor=monitor, mode="min" if mode == "max" else mode, save_top_k=1,',
             ("tests/test_training.py::test_fit_restores_best_epoch_not_last", T_GAPS)),
    Mutation("fold_std_population", "fold/seed std uses the population formula (ddof=0), not the sample std",
             'out[f"{k}_std"] = float(values.std(ddof=1)) if values.size > 1 else 0.0',
             'out[f"{k}_std"] = float(values.std(ddof=0)) if values.size > 1 else 0.0',
             ("tests/test_metrics.py",)),
    Mutation("best_epoch_not_restored", "fit keeps the last epoch's weights instead of the best validation epoch's",
             '        task.load_state_dict(state["state_dict"])\n        return int(state["epoch"])',
             '        return int(state["epoch"])',
             ("tests/test_training.py::test_fit_restores_best_epoch_not_last",)),
)


# ---------------------------------------------------------------------------------------------
# snippet lookup (also used by tests/test_mutation_check.py, without running any tests)

def source_files(src: Path) -> list[Path]:
    """Every ``*.py`` file under ``src/emofuse`` (sorted)."""
    return sorted(p for p in (src / "emofuse").rglob("*.py") if "__pycache__" not in p.parts)


def locate(mutation: Mutation, src: Path) -> tuple[Path | None, str]:
    """``(file, problem)``: the one file holding the snippet and ``""``, or ``None`` and why not."""
    if mutation.snippet == mutation.replacement:
        return None, "replacement equals the snippet"
    hits = [(p, p.read_text(encoding="utf-8").count(mutation.snippet)) for p in source_files(src)]
    hits = [(p, n) for p, n in hits if n]
    total = sum(n for _, n in hits)
    if total == 0:
        return None, "stale: snippet not found"
    if total > 1:
        where = ", ".join(f"{p.relative_to(src)} ({n}x)" for p, n in hits)
        return None, f"stale: snippet found {total} times ({where})"
    return hits[0][0], ""


def mutated_text(mutation: Mutation, path: Path) -> str:
    text = path.read_text(encoding="utf-8")
    return text.replace(mutation.snippet, mutation.replacement, 1)


# ---------------------------------------------------------------------------------------------
# running

@dataclass
class Result:
    id: str
    what: str
    tests: list[str]
    status: str  # caught | survived | timeout | stale | error
    seconds: float
    file: str = ""
    detail: str = ""


def copy_tree(root: Path, dest: Path) -> None:
    for name in COPIED:
        src = root / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=IGNORED)
        elif src.is_file():
            shutil.copy2(src, dest / name)


def child_env(copy: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(copy / "src"), *filter(None, [env.get("PYTHONPATH")])])
    env.setdefault("OMP_NUM_THREADS", "1")
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def check_import(copy: Path, env: dict[str, str]) -> str:
    """``""`` when the child imports ``emofuse`` from the copy, else the path it imported."""
    out = subprocess.run([sys.executable, "-c", "import emofuse; print(emofuse.__file__)"], cwd=copy, env=env,
                         capture_output=True, text=True, timeout=120)
    where = out.stdout.strip()
    inside = where and Path(where).resolve().is_relative_to((copy / "src").resolve())
    return "" if inside else f"emofuse imported from {where or out.stderr.strip()[-300:]}, not the copy"


def run_pytest(copy: Path, tests: list[str], timeout: float) -> tuple[str, str]:
    """``(status, detail)``: ``passed``/``failed``/``timeout``/``error`` and a short excerpt."""
    env = child_env(copy)
    problem = check_import(copy, env)
    if problem:
        return "error", problem
    cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *tests]
    try:
        out = subprocess.run(cmd, cwd=copy, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timeout", f"over {timeout:.0f} s"
    text = out.stdout + out.stderr
    if out.returncode == 0:
        return "passed", last_line(text)
    failed = re.findall(r"^(?:FAILED|ERROR) (\S+)", text, flags=re.M)
    if out.returncode in (1, 2) or failed:
        return "failed", (failed[0] if failed else last_line(text))
    return "error", f"pytest exit {out.returncode}: {last_line(text)}"


def last_line(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1][:200] if lines else ""


def run_mutation(mutation: Mutation, root: Path, timeout: float) -> Result:
    start = time.monotonic()
    res = Result(mutation.id, mutation.what, list(mutation.tests), "error", 0.0)
    target, problem = locate(mutation, root / "src")
    if target is None:
        res.status, res.detail = ("stale" if problem.startswith("stale") else "error"), problem
        return res
    res.file = str(target.relative_to(root))
    with tempfile.TemporaryDirectory(prefix=f"mutation-{mutation.id}-") as tmp:
        copy = Path(tmp)
        copy_tree(root, copy)
        copied = copy / res.file
        copied.write_text(mutated_text(mutation, copied), encoding="utf-8")
        outcome, res.detail = run_pytest(copy, list(mutation.tests), timeout)
    res.status = {"passed": "survived", "failed": "caught"}.get(outcome, outcome)
    res.seconds = round(time.monotonic() - start, 1)
    return res


def run_baseline(root: Path, tests: list[str], timeout: float) -> tuple[str, str, float]:
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="mutation-baseline-") as tmp:
        copy_tree(root, Path(tmp))
        outcome, detail = run_pytest(Path(tmp), tests, timeout)
    return outcome, detail, round(time.monotonic() - start, 1)


def table(results: list[Result]) -> str:
    rows = [("id", "what", "tests", "result", "s")]
    rows += [(r.id, r.what, " ".join(t.removeprefix("tests/") for t in r.tests), r.status, f"{r.seconds:.0f}")
             for r in results]
    widths = [min(max(len(row[i]) for row in rows), cap) for i, cap in enumerate((30, 70, 60, 8, 5))]
    lines = []
    for row in rows:
        lines.append("  ".join(cell[:w].ljust(w) for cell, w in zip(row, widths)))
    return "\n".join(lines)


def select(only: str | None) -> list[Mutation]:
    if not only:
        return list(MUTATIONS)
    wanted = [w.strip() for w in only.split(",") if w.strip()]
    known = {m.id: m for m in MUTATIONS}
    unknown = [w for w in wanted if w not in known]
    if unknown:
        raise SystemExit(f"unknown mutation id(s): {', '.join(unknown)}; known: {', '.join(known)}")
    return [known[w] for w in wanted]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", type=Path, default=REPO, help="repository to copy (default: this script's)")
    ap.add_argument("--only", help="comma-separated mutation ids")
    ap.add_argument("--json", type=Path, help="write the results here")
    ap.add_argument("--jobs", type=int, default=1, help="mutations run at once (default 1)")
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds per pytest run (default 600)")
    ap.add_argument("--machine", help="machine description for the JSON (default: from platform)")
    ap.add_argument("--list", action="store_true", help="check the snippets and list the mutations; run nothing")
    args = ap.parse_args(argv)
    root = args.root.resolve()
    mutations = select(args.only)
    if args.list:
        stale = 0
        for m in mutations:
            target, problem = locate(m, root / "src")
            stale += target is None
            print(f"{m.id:30s} {problem or target.relative_to(root)}")
        return 1 if stale else 0
    tests = sorted({t for m in mutations for t in m.tests})
    outcome, detail, secs = run_baseline(root, tests, args.timeout)
    print(f"unmutated copy: {outcome} in {secs:.0f} s ({detail})", flush=True)
    if outcome != "passed":
        print("the unmutated tests must pass first: aborting", file=sys.stderr)
        return 3
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        results = []
        for r in pool.map(lambda m: run_mutation(m, root, args.timeout), mutations):
            print(f"  {r.id}: {r.status} ({r.seconds:.0f} s) {r.detail}", flush=True)
            results.append(r)
    print(table(results))
    caught = sum(r.status == "caught" for r in results)
    print(f"caught {caught} of {len(results)}")
    if args.json:
        report = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                  "machine": args.machine or f"{platform.machine()} {os.cpu_count()}-core CPU, {platform.system()}",
                  "command": shlex.join(["python", "scripts/mutation_check.py", *(argv or sys.argv[1:])]),
                  "baseline": {"status": outcome, "seconds": secs, "tests": tests},
                  "caught": caught, "total": len(results), "results": [asdict(r) for r in results]}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.json.with_name(args.json.name + ".tmp")
        tmp.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, args.json)
    return 0 if caught == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
