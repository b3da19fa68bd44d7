"""Calibration and the single-speaker check of the audio-visual late fusion.

``python -m emofuse.experiments.av_eval calibrate --out DIR`` fits the two temperatures of an
audio-visual model on validation data only: the audio checkpoint's own validation speakers (RAVDESS),
and FER2013 PublicTest for the face encoder; it writes ``DIR/config.json``.

``python -m emofuse.experiments.av_eval actor05 --audio-checkpoint CKPT --out results.json`` scores the
60 speech takes of RAVDESS actor 05: audio from ``ravdess-speech-16k/Actor_05``, faces from the
``ravdess-actor05-video/facecrop`` clips of the same takes, the audio model trained with actor 05 held
out (fold 2: test actors 5-8). Rows: audio only, face only, audio + face. **One speaker only: a check
that the parts work together, not an accuracy benchmark.** It also reports the share of frames in
which each detector finds a face on the 720p mp4s, the face-crop clips and the CREMA-D flv.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

from emofuse.inference.late_fusion import fit_temperature, late_fusion, softmax

ACTOR05 = Path("ravdess-actor05-video")
CREMAD_SAMPLE = Path("cremad-sample") / "1001_DFA_ANG_XX.flv"


def checkpoint_probs(checkpoint: Path, samples: list[Any], cache_dir: str | None) -> tuple[np.ndarray, list[str]]:
    """A checkpoint's (or seed ensemble's) class probabilities for ``samples``, through its input plan."""
    from emofuse.evaluation.evaluate import view_averaged_probs
    from emofuse.features.store import FeatureStore
    from emofuse.inference.checkpoint import load_members

    members = load_members([checkpoint])
    store = FeatureStore(samples, cache_dir, progress=False)
    y = [0] * len(samples)
    probs = np.mean([view_averaged_probs(m, m.input_plan, store, y) for m in members], axis=0)
    return probs, list(members[0].labels)


def ravdess_samples(data_root: str | Path | None, speakers: set[str]) -> list[Any]:
    """RAVDESS speech samples of ``speakers`` (two-digit actor ids)."""
    from emofuse.data.specs import load_dataset

    return [s for s in load_dataset("ravdess", data_root).samples if f"{int(s.speaker):02d}" in speakers]


def audio_temperature(checkpoint: Path, data_root: str | Path | None, cache_dir: str | None) -> dict[str, Any]:
    """Temperature of an audio checkpoint fitted on its validation speakers (never its test speakers);
    1.0 for a checkpoint with a calibration block (`emofuse train` fitted one already)."""
    from emofuse.inference.checkpoint import load_members

    member = load_members([checkpoint])[0]
    if member.calibration:  # calibrated by emofuse train: its probabilities are used as they are
        return {"temperature": 1.0, "fit_on": "none: the audio checkpoint carries its own calibration "
                                              f"({member.calibration.get('fitted_on', 'emofuse train')})"}
    meta = member.meta
    speakers = {f"{int(s):02d}" for s in meta["val_speakers"]}
    samples = ravdess_samples(data_root, speakers)
    probs, labels = checkpoint_probs(checkpoint, samples, cache_dir)
    y = np.array([labels.index(s.label) for s in samples])
    t = fit_temperature(np.log(np.clip(probs, 1e-12, 1)), y)
    return {"temperature": round(t, 4), "fit_on": f"RAVDESS validation speakers {sorted(speakers)} of the checkpoint "
                                                 f"({len(samples)} clips)"}


def face_temperature(encoder: Any, data_root: str | Path | None) -> dict[str, Any]:
    """Temperature of a face encoder's expression head fitted on FER2013 PublicTest (validation)."""
    from emofuse.data.fer2013 import load_fer2013

    val = load_fer2013(data_root)["PublicTest"]
    logits = np.concatenate([encoder.encode(val.images[i:i + 1024])[1] for i in range(0, len(val), 1024)])
    return {"temperature": round(fit_temperature(logits, val.labels), 4),
            "fit_on": f"FER2013 PublicTest ({len(val)} faces)"}


def fused_prediction(audio_probs: np.ndarray | None, face_logits: np.ndarray | None, face_share: float,
                     labels: list[str], face_classes: list[str], t_audio: float, t_face: float) -> np.ndarray:
    """`emofuse.inference.late_fusion.late_fusion` on precomputed parts (None: absent), calibrated as
    `emofuse.inference.audio_visual.AudioVisualPredictor` calibrates them."""
    audio = None if audio_probs is None else softmax(np.log(np.clip(audio_probs, 1e-12, 1)), t_audio)
    face = None if face_logits is None or not len(face_logits) else softmax(face_logits, t_face).mean(0)
    return late_fusion(audio, face, face_share, labels, face_classes)[0]


def actor05_takes(data_root: Path) -> list[dict[str, Any]]:
    """The 60 face-crop clips of actor 05 with their label and the matching speech take."""
    import csv

    rows = list(csv.DictReader(open(data_root / ACTOR05 / "manifest.csv", newline="")))
    takes = []
    for row in rows:
        if row["kind"] != "facecrop_avi":
            continue
        speech = data_root / "ravdess-speech-16k" / "Actor_05" / f"03-{row['take_id']}.flac"
        takes.append({"video": data_root / ACTOR05 / row["path"], "audio": speech, "label": row["label"],
                      "id": row["take_id"]})
    return takes


def actor05_eval(audio_checkpoint: Path, data_root: Path, cache_dir: str | None, av_config: dict[str, Any],
                 progress: bool = True) -> dict[str, Any]:
    """Rows (results format) for audio only, face only and audio + face on actor 05's 60 takes."""
    from emofuse.data.record import Sample
    from emofuse.evaluation.metrics import aggregate, classification_metrics
    from emofuse.faces.pipeline import analyse_video
    from emofuse.inference.checkpoint import load_members

    meta = load_members([audio_checkpoint])[0].meta
    held_out = {f"{int(s):02d}" for s in meta.get("test_speakers", "").split(",") if s} if isinstance(
        meta.get("test_speakers"), str) else {f"{int(s):02d}" for s in meta.get("test_speakers", [])}
    if "05" not in held_out:
        raise ValueError(f"{audio_checkpoint}: actor 05 is not among its test speakers {sorted(held_out)}")
    takes = actor05_takes(data_root)
    samples = [Sample(id=t["id"], speaker="05", dataset="ravdess", label=t["label"], sources={"audio": t["audio"]})
               for t in takes]
    audio_probs, labels = checkpoint_probs(audio_checkpoint, samples, cache_dir)
    t_audio = audio_temperature(audio_checkpoint, data_root, cache_dir)
    parts = _face_parts(av_config)
    t_face = face_temperature(parts["encoder"], data_root)
    faces, seconds = [], time.perf_counter()
    for take in takes:
        faces.append(analyse_video(take["video"], parts["sampler"], parts["detector"], parts["encoder"]))
    face_seconds = time.perf_counter() - seconds
    y = [labels.index(t["label"]) for t in takes]
    classes = list(faces[0].classes)
    preds = {"audio": [], "face": [], "audio+face": []}
    for a, f in zip(audio_probs, faces):
        logits = f.logits[f.mask]
        preds["audio"].append(a.argmax())
        preds["face"].append(fused_prediction(None, logits, f.face_share, labels, classes, 1, t_face["temperature"])
                             .argmax() if len(logits) else -1)
        preds["audio+face"].append(fused_prediction(a, logits, f.face_share, labels, classes, t_audio["temperature"],
                                                    t_face["temperature"]).argmax())
    rows = []
    for name, p in preds.items():
        metrics = classification_metrics(y, [max(int(v), 0) for v in p], labels)
        agg = aggregate([metrics])
        row = {"model": f"late_fusion_{name}", "modalities": name.split("+"), "n": len(y),
               **{f"{k}_{s}": agg[f"{k}_{s}"] for k in ("wa", "ua", "macro_f1", "weighted_f1") for s in ("mean", "std")},
               "train_seconds": None, "confusion": np.asarray(metrics["confusion"]).tolist()}
        rows.append(row)
        if progress:
            print(f"actor 05, {name}: WA {row['wa_mean']:.3f} UA {row['ua_mean']:.3f}", file=sys.stderr)
    share = float(np.mean([f.face_share for f in faces]))
    return {"dataset": "ravdess actor 05 (60 takes, ONE speaker: not an accuracy benchmark)",
            "date": date.today().isoformat(), "audio_checkpoint": str(audio_checkpoint), "labels": labels,
            "calibration": {"audio": t_audio, "face": t_face}, "face_settings": _face_settings(av_config),
            "face_share_mean": share, "face_seconds_total": round(face_seconds, 2), "results": rows}


def _face_settings(av_config: dict[str, Any]) -> dict[str, Any]:
    face = av_config.get("face", {})
    return {k: face.get(k, d) for k, d in (("sampler", "2fps_8"), ("detector", "haar"), ("encoder", "fer_cnn"))}


def _face_parts(av_config: dict[str, Any]) -> dict[str, Any]:
    from emofuse.faces.detectors import get_detector
    from emofuse.faces.encoders import get_face_encoder
    from emofuse.media.sampling import get_sampler

    s = _face_settings(av_config)
    return {"sampler": get_sampler(s["sampler"]), "detector": get_detector(s["detector"]),
            "encoder": get_face_encoder(s["encoder"])}


def detector_face_shares(data_root: Path, detectors: tuple[str, ...] = ("haar", "mtcnn")) -> list[dict[str, Any]]:
    """Share of frames (every frame) in which each detector finds a face, per kind of video, and ms per frame."""
    from emofuse.faces.detectors import get_detector
    from emofuse.media.video import read_frames

    groups = {"actor05 720p mp4 (6)": sorted((data_root / ACTOR05 / "mp4").glob("*.mp4")),
              "actor05 face-crop avi (60)": sorted((data_root / ACTOR05 / "facecrop").glob("*.avi")),
              "CREMA-D flv (1)": [data_root / CREMAD_SAMPLE]}
    rows = []
    for group, files in groups.items():
        images = [f.image for path in files for f in read_frames(path, "all")]
        for name in detectors:
            detector = get_detector(name)
            start = time.perf_counter()
            found = sum(bool(detector.detect(img)) for img in images)
            ms = (time.perf_counter() - start) / len(images) * 1000
            rows.append({"videos": group, "detector": name, "frames": len(images), "with_face": found,
                         "share": round(found / len(images), 4), "ms_per_frame": round(ms, 1)})
            print(f"{group} {name}: {found}/{len(images)} frames with a face, {ms:.1f} ms/frame", file=sys.stderr)
    return rows


def calibrate(out_dir: Path, data_root: Path, cache_dir: str | None, base: dict[str, Any]) -> dict[str, Any]:
    """Fit both temperatures on validation data and write the audio-visual model's ``config.json``."""
    from emofuse.evaluation.reports import write_json_atomic
    from emofuse.inference.audio_visual import AV_FORMAT, resolve_audio_checkpoint

    checkpoint = resolve_audio_checkpoint({**base, "_folder": str(out_dir)})
    t_audio = audio_temperature(checkpoint, data_root, cache_dir)
    t_face = face_temperature(_face_parts(base)["encoder"], data_root)
    config = {"format": AV_FORMAT, "version": 1,
              "audio": {**base["audio"], "temperature": t_audio["temperature"]},
              "face": {**_face_settings(base), "temperature": t_face["temperature"]},
              "class_map": base.get("class_map"),
              "calibration": {"audio": t_audio["fit_on"], "face": t_face["fit_on"], "date": date.today().isoformat(),
                              "command": "python -m emofuse.experiments.av_eval calibrate --out " + str(out_dir)},
              "fusion": "w_m = a_m c_m / sum_j a_j c_j; a: availability (speech present; share of frames with a "
                        "face), c: 1 - normalised entropy of the calibrated probabilities"}
    write_json_atomic(out_dir / "config.json", {k: v for k, v in config.items() if v is not None})
    return config


def main(argv: list[str] | None = None) -> int:
    """``calibrate`` or ``actor05`` (see the module docstring)."""
    from emofuse.evaluation.reports import write_json_atomic
    from emofuse.inference.audio_visual import load_av_config
    from emofuse.inference.late_fusion import FACE_TO_AUDIO
    from emofuse.paths import data_root as default_data

    parser = argparse.ArgumentParser(prog="python -m emofuse.experiments.av_eval")
    parser.add_argument("task", choices=("calibrate", "actor05"))
    parser.add_argument("--out", required=True)
    parser.add_argument("--data")
    parser.add_argument("--cache")
    parser.add_argument("--audio-checkpoint", help="actor05: an audio checkpoint whose test speakers include 05")
    parser.add_argument("--model", help="audio-visual model folder for the face settings (default: the shipped one)")
    args = parser.parse_args(argv)
    data = Path(args.data) if args.data else default_data()
    if args.task == "calibrate":
        base = {"audio": {"checkpoint": "demo_model"},
                "face": {"sampler": "2fps", "detector": {"name": "mtcnn", "max_side": 320}, "encoder": "fer_cnn"},
                "class_map": {k: list(v) for k, v in FACE_TO_AUDIO.items()}}
        print(calibrate(Path(args.out), data, args.cache, base))
        return 0
    from emofuse.evaluation.results import machine_description

    results = actor05_eval(Path(args.audio_checkpoint), data, args.cache, load_av_config(args.model))
    results.update(machine=machine_description(), folds=["actor 05 (the audio checkpoint's test speakers)"],
                   seeds=[0], command="python -m emofuse.experiments.av_eval " + " ".join(sys.argv[1:]))
    results["detectors"] = detector_face_shares(data)
    write_json_atomic(args.out, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
