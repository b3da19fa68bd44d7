"""Write the shipped speech model's MODEL_CARD.md from measured results (nothing typed by hand).

    python scripts/write_model_card.py --checkpoint src/emofuse/assets/demo_model \
        --shift docs/results/ravdess_shift_robust_2026-11-29.json --recipe logreg_whisper_sp_robust \
        --histogram docs/results/shipped_histogram_2026-11-29.json

Every figure comes from the three files: the checkpoint's config.json (training and calibration),
the ``--protocol shift`` results row of the recipe (clean 6-fold and shift figures) and the
histogram of the shipped checkpoint's answers under the 22 corruptions.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def _pm(block: dict[str, Any], key: str) -> str:
    return f"{block[f'{key}_mean']:.3f} ± {block[f'{key}_std']:.3f}"


def _find_row(results: dict[str, Any], recipe: str) -> dict[str, Any]:
    for row in results["results"]:
        if row["model"] == recipe and row.get("shift"):
            return row
    raise SystemExit(f"no shift row for {recipe} in the results file")


def _shift_lines(row: dict[str, Any]) -> list[str]:
    shift, cal = row["shift"], row["calibration"]
    sent, gender, corr = shift["cross_sentence"], shift["cross_gender"], shift["corruption_summary"]
    lines = ["| protocol | within | across | gap |", "|---|---|---|---|",
             f"| cross-sentence (trained on statement {sent['trained_on']}), UA | {_pm(sent['within'], 'ua')} | "
             f"{_pm(sent['cross'], 'ua')} | {sent['within']['ua_mean'] - sent['cross']['ua_mean']:+.3f} |"]
    for direction in ("train_M", "train_F"):
        d = gender[direction]
        lines.append(f"| cross-gender, trained on {direction[-1]}, UA | {_pm(d['within'], 'ua')} | {_pm(d['cross'], 'ua')} | "
                     f"{d['within']['ua_mean'] - d['cross']['ua_mean']:+.3f} |")
    lines += ["", "| corruptions (22, test-time) | WA | UA |", "|---|---|---|",
              f"| clean | {row['wa_mean']:.3f} | {row['ua_mean']:.3f} |",
              f"| mean over corruptions | {corr['wa_mean']:.3f} | {corr['ua_mean']:.3f} |",
              f"| noise at 10 dB SNR (white, pink, babble) | {corr.get('wa_snr10_mean', float('nan')):.3f} | "
              f"{corr.get('ua_snr10_mean', float('nan')):.3f} |",
              f"| worst ({corr['ua_worst_corruption']}) | {corr['wa_worst']:.3f} | {corr['ua_worst']:.3f} |", "",
              "| corruption | WA | UA |", "|---|---|---|"]
    lines += [f"| {name} | {m['wa_mean']:.3f} | {m['ua_mean']:.3f} |" for name, m in shift["corruptions"].items()]
    lines += ["", "Calibration on the test folds (temperature and threshold fitted without the test actors: a neural "
              "recipe on each fold's validation actors, a logistic one out of fold over its training and validation "
              "actors; docs/calibration.md):",
              "", f"- ECE {_pm(cal, 'ece_before')} before, {_pm(cal, 'ece_after')} after temperature scaling",
              f"- answered (confidence at or above the threshold): {_pm(cal, 'coverage')} of the clips, "
              f"accuracy {_pm(cal, 'answered_accuracy')} on those"]
    return lines


def _weakest(row: dict[str, Any], n: int = 3) -> str:
    worst = sorted(row["shift"]["corruptions"].items(), key=lambda kv: kv[1]["ua_mean"])[:n]
    return ", ".join(f"{name} (UA {m['ua_mean']:.2f})" for name, m in worst)


def card(config: dict[str, Any], row: dict[str, Any], histogram: dict[str, Any], recipe: str, shift_file: str,
         histogram_file: str) -> str:
    meta, cal = config["meta"], config.get("calibration") or {}
    shares = ", ".join(f"{k} {v:.1%}" for k, v in sorted(histogram["shares"].items(), key=lambda kv: -kv[1]))
    return "\n".join([
        "# Model card: emofuse's shipped speech emotion model", "",
        f"- **Recipe**: `{recipe}` (`src/emofuse/configs/{recipe}.yaml`), model `{config['model']['name']}`",
        f"- **Input**: speech, any length and format `emofuse predict` reads; features: {', '.join(config['features']['audio']['names'])}"
        " (Whisper tiny.en encoder states, CTranslate2 int8)"
        + (", each clip brought to one active-speech level first" if config.get("input_plan", {}).get("utterance_norm") else ""),
        f"- **Output**: one of {len(config['labels'])} RAVDESS classes ({', '.join(config['labels'])}) with every class's "
        "probability; 'uncertain' below the confidence threshold; `--labels 6` / `7` / ... renormalise over common "
        "label sets (docs/calibration.md)",
        f"- **Trained**: `emofuse train {recipe} --fold 0`: the weights learned from "
        f"{len(meta.get('train_speakers', []))} of the 24 RAVDESS actors; validation actors "
        f"{', '.join(meta.get('val_speakers', []))} chose the epoch (or the regularisation, then trained too)",
        f"- **Calibration**: temperature {cal.get('temperature', 1.0):.3f}, threshold "
        f"{'none' if cal.get('threshold') is None else format(cal['threshold'], '.3f')} "
        f"(fitted on {cal.get('fitted_on', 'nothing: not calibrated')})", "",
        "## Training data and licence", "",
        "RAVDESS speech (Livingstone & Russo 2018): 24 professional actors (12 female, 12 male), North American English, "
        "two neutral sentences, 8 emotions, 1440 clips, one studio. Licence CC BY-NC-SA 4.0, so this model is for "
        "**non-commercial** use. Whisper tiny.en: MIT.", "",
        "## Clean 6-fold figures (same recipe, speaker-disjoint folds, test actors never trained on)", "",
        f"WA {_pm(row, 'wa')}, UA {_pm(row, 'ua')}, macro-F1 {_pm(row, 'macro_f1')} "
        f"(`{shift_file}`).", "",
        "## Shift figures (same folds, `emofuse benchmark ravdess --protocol shift`, docs/shift.md)", "",
        *_shift_lines(row), "",
        "## Answers under corruption (this checkpoint, every RAVDESS clip x 22 corruptions)", "",
        f"Share of each answer: {shares}; no class above {histogram['max_share']:.1%} "
        f"(`{histogram_file}`). These clips include the ones it was trained on.", "",
        "## Known failure modes", "",
        f"- Background speech and strong noise: the weakest conditions are {_weakest(row)}.",
        "- Acted speech of two fixed sentences by 24 actors in one studio: other languages, spontaneous speech, "
        "children and elderly voices, and other rooms were never seen; expect lower accuracy on them (the issue's "
        "other-corpus test scored a RAVDESS-trained model far below its RAVDESS figures).",
        "- calm and neutral are close in RAVDESS; mapping to 6-class sets drops calm (`--labels 6`).",
        "- One label per clip: long recordings with several emotions get one answer.", "",
        "## Intended use", "",
        "Research and demonstration of speech emotion recognition on short (1-10 s) clips of one speaker; a "
        "starting point to fine-tune on a user's own corpus. **Not** for decisions about people (hiring, "
        "health, policing, credit) and not for monitoring people without their consent.", "",
        "## Reproduce", "",
        "```bash", f"emofuse benchmark ravdess --protocol shift --models {recipe} --out shift.json",
        f"emofuse train {recipe} --fold 0 --out model/",
        "python -m emofuse.experiments.shift histogram --checkpoint model/ --out histogram.json",
        f"python scripts/write_model_card.py --checkpoint model/ --shift shift.json --recipe {recipe} "
        "--histogram histogram.json", "```", ""])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--shift", required=True)
    parser.add_argument("--recipe", required=True)
    parser.add_argument("--histogram", required=True)
    args = parser.parse_args()
    folder = Path(args.checkpoint)
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    row = _find_row(json.loads(Path(args.shift).read_text(encoding="utf-8")), args.recipe)
    histogram = json.loads(Path(args.histogram).read_text(encoding="utf-8"))
    text = card(config, row, histogram, args.recipe, args.shift, args.histogram)
    (folder / "MODEL_CARD.md").write_text(text, encoding="utf-8")
    print(f"wrote {folder / 'MODEL_CARD.md'}")


if __name__ == "__main__":
    main()
