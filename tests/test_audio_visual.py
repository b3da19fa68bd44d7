"""Audio-visual prediction: the audio checkpoint and a face encoder joined by reliability-weighted late
fusion, on generated videos whose speech is a shipped RAVDESS clip and whose "face" a bright square that a
test detector finds; the CLI routes video files to it; realdata: a real RAVDESS actor-05 mp4."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from videogen import write_video  # noqa: E402

from emofuse.faces.detectors import _DETECTORS, Face, FaceDetector, register_detector  # noqa: E402
from emofuse.faces.encoders.base import _ENCODERS, FaceEncoder, register_face_encoder  # noqa: E402
from emofuse.inference.audio_visual import AudioVisualPredictor  # noqa: E402
from emofuse.inference.late_fusion import confidence, map_face_to_audio, softmax  # noqa: E402
from emofuse.inference.predictor import Predictor, sample_clips  # noqa: E402

FPS = 10.0


class SquareDetector(FaceDetector):
    """The box around pixels brighter than 128, when there are at least 20."""

    name = "test_av_square"

    def detect(self, image):
        ys, xs = np.nonzero(image.mean(axis=2) > 128)
        if len(xs) < 20:
            return []
        return [Face(box=np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32), score=1.0)]


class HappyEncoder(FaceEncoder):
    """Every face says "happy" with a fixed confidence; 7 FER classes."""

    name = "test_av_happy"
    input_size = 8
    grey = True
    embed_dim = 2
    classes = ("angry", "disgust", "fearful", "happy", "sad", "surprised", "neutral")

    def forward(self, x):
        import torch

        logits = torch.zeros(x.shape[0], 7)
        logits[:, 3] = 3.0
        return torch.zeros(x.shape[0], 2), logits


@pytest.fixture(scope="module", autouse=True)
def fakes():
    register_detector(SquareDetector)
    register_face_encoder(HappyEncoder)
    yield
    _DETECTORS._items.pop(SquareDetector.name, None)
    _ENCODERS._items.pop(HappyEncoder.name, None)


def speech() -> np.ndarray:
    from emofuse.media.audio import load_audio

    return load_audio(sample_clips()[0])


def clip(path: Path, face_frames: set[int], seconds: float = 3.0, audio="speech") -> Path:
    n = int(seconds * FPS)
    frames = np.full((n, 64, 96, 3), 10, np.uint8)
    for i in face_frames:
        frames[i, 20:44, 30:54] = 255
    wave = speech() if audio == "speech" else audio
    return write_video(path, frames, FPS, audio=wave)


def av(**face) -> AudioVisualPredictor:
    return AudioVisualPredictor(face={"detector": SquareDetector.name, "encoder": HappyEncoder.name,
                                      "sampler": "2fps", **face})


def test_fusion_weights_follow_availability_and_confidence(tmp_path):
    video = clip(tmp_path / "half.mp4", set(range(0, 15)))  # a face in the first 1.5 s of 3 s
    predictor = av()
    pred = predictor.predict_file(video)
    exp = pred.explanations
    assert pred.ok and exp["modalities"] == ["audio", "face"]
    assert exp["face_share"] == pytest.approx(0.5)  # 2 fps: frames at 0, 0.5, ..., 2.5 s; 3 of 6 have the square
    audio_only = Predictor().predict_file(video)
    labels = predictor.labels
    p_audio = softmax(np.log([audio_only.probabilities[lab] for lab in labels]), predictor.audio_temperature)
    face = softmax(np.eye(7)[3] * 3.0, predictor.face_temperature)
    c_audio, c_face = confidence(p_audio), confidence(face)
    w_face = 0.5 * c_face / (0.5 * c_face + c_audio)
    assert exp["modality_weights"][1] == pytest.approx(w_face, rel=1e-4)
    mapped = map_face_to_audio(face, HappyEncoder.classes, labels, p_audio)
    expected = (1 - w_face) * p_audio + w_face * mapped
    assert [pred.probabilities[lab] for lab in labels] == pytest.approx(expected.tolist(), rel=1e-4)
    assert sum(pred.probabilities.values()) == pytest.approx(1.0)
    assert exp["face_probabilities"]["happy"] == pytest.approx(face[3], rel=1e-4)


def test_no_face_in_any_frame_is_the_audio_alone(tmp_path):
    pred = av().predict_file(clip(tmp_path / "noface.mp4", set()))
    assert pred.explanations["face_share"] == 0.0 and pred.modalities_used == ["audio"]
    assert pred.explanations["modality_weights"] == [1.0]
    assert any("no face found" in w for w in pred.warnings)


def test_no_speech_is_the_face_alone(tmp_path):
    pred = av().predict_file(clip(tmp_path / "mute.mp4", set(range(30)), audio="silent"))
    assert pred.ok and pred.label == "happy" and pred.modalities_used == ["face"]
    assert any("no usable speech" in w for w in pred.warnings)


def test_a_video_without_an_audio_track_is_predicted_from_the_face(tmp_path):
    frames = np.full((30, 64, 96, 3), 10, np.uint8)
    frames[:, 20:44, 30:54] = 255
    pred = av().predict_file(write_video(tmp_path / "silent_film.mp4", frames, FPS))
    assert pred.ok and pred.label == "happy" and pred.modalities_used == ["face"]
    assert any("no audio track" in w for w in pred.warnings), pred.warnings
    empty = av().predict_file(write_video(tmp_path / "dark_film.mp4", np.full((30, 64, 96, 3), 10, np.uint8), FPS))
    assert not empty.ok and "no audio track in file, and no face" in empty.message and "dark_film.mp4" in empty.message


def test_neither_speech_nor_face_gets_no_label(tmp_path):
    pred = av().predict_file(clip(tmp_path / "nothing.mp4", set(), audio="silent"))
    assert not pred.ok and pred.status == "no_speech"


def test_explain_dir_holds_crops_frames_and_plot(tmp_path):
    video = clip(tmp_path / "half.mp4", set(range(0, 15)))
    pred = av().predict_file(video, explain_dir=tmp_path / "why")
    names = sorted(Path(f).name for f in pred.explanations["files"])
    assert names == ["face_crops.png", "face_frames.csv", "modality_weights.png", "prediction.json"]
    rows = (tmp_path / "why" / "face_frames.csv").read_text().splitlines()
    assert len(rows) == 1 + 6 and rows[1].split(",")[1] == "1" and rows[-1].split(",")[1] == "0"
    saved = json.loads((tmp_path / "why" / "prediction.json").read_text())
    assert saved["label"] == pred.label and len(saved["explanations"]["face_per_frame"]) == 6


def test_cli_routes_video_files_to_the_audio_visual_model(tmp_path, capsys):
    from emofuse.cli import main

    model = tmp_path / "av"
    model.mkdir()
    config = json.loads((Path(__file__).parents[1] / "src/emofuse/assets/av_model/config.json").read_text())
    config["face"].update(detector=SquareDetector.name, encoder=HappyEncoder.name, sampler="2fps")
    (model / "config.json").write_text(json.dumps(config))
    video = clip(tmp_path / "half.mp4", set(range(0, 15)))
    flac = sample_clips()[0]
    out = tmp_path / "p.json"
    assert main(["predict", str(video), str(flac), "--av-model", str(model), "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "modality weights: audio" in printed and "frames with a face: 50% of 6 sampled" in printed
    by_path = {p["path"]: p for p in json.loads(out.read_text())["predictions"]}
    assert by_path[str(video)]["explanations"]["face_share"] == pytest.approx(0.5)
    assert by_path[str(video)]["modalities_used"] == ["audio", "face"]
    assert "face_share" not in by_path[str(flac)]["explanations"]  # an audio file: the audio model, as before
    expected = Predictor().predict_file(flac)
    assert by_path[str(flac)]["probabilities"] == pytest.approx(expected.probabilities)


def test_cli_no_face_is_the_audio_prediction(tmp_path):
    from emofuse.cli import main

    video = clip(tmp_path / "half.mp4", set(range(0, 15)))
    a = tmp_path / "a.json"
    assert main(["predict", str(video), "--no-face", "--json", str(a)]) == 0
    pred = json.loads(a.read_text())["predictions"][0]
    expected = Predictor().predict_file(video)
    assert pred["label"] == expected.label
    assert pred["probabilities"] == pytest.approx(expected.probabilities)
    assert "face_share" not in pred["explanations"]


@pytest.mark.realdata
def test_real_actor05_mp4_through_the_shipped_model(data_root_dir, tmp_path, capsys):
    """One real 720p RAVDESS take (actor 05, happy) through `emofuse predict` with the shipped audio-visual model:
    a face in every sampled frame, both modalities weighted, every class's probability printed."""
    from emofuse.cli import main

    clip = data_root_dir / "ravdess-actor05-video" / "mp4" / "01-01-03-01-01-02-05.mp4"
    if not clip.is_file():
        pytest.skip(f"real data missing: {clip}")
    out = tmp_path / "p.json"
    assert main(["predict", str(clip), "--json", str(out), "--explain", str(tmp_path / "why")]) == 0
    pred = json.loads(out.read_text())["predictions"][0]
    exp = pred["explanations"]
    assert exp["face_share"] == 1.0 and exp["modalities"] == ["audio", "face"]
    assert all(0.05 < w < 0.95 for w in exp["modality_weights"])
    assert len(pred["probabilities"]) == 8 and pred["modalities_used"] == ["audio", "face"]
    assert (tmp_path / "why" / clip.name / "face_crops.png").is_file()
    assert "frames with a face: 100%" in capsys.readouterr().out
