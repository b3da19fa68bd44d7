"""emofuse serve as a real process with the shipped model, on a free loopback port: the bad-upload corpus
(every bad upload a clear 4xx, no 5xx, no leaked temporary file, the server alive and its memory bounded),
the same probabilities as `Predictor`, a timeline, a reduced load run, and audio + face for a real video.

The full load measurement (200 requests, 8 clients, the 429 path on a queue of 1) is
``python -m emofuse.service.loadtest`` (docs/service.md)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from service_corpus import BAD, VALID, bad_uploads, run_corpus  # noqa: E402
from service_support import live_server, request_folders  # noqa: E402

from emofuse.inference.predictor import sample_clips  # noqa: E402
from emofuse.service.loadtest import load, predict, request  # noqa: E402

#: the server's peak resident memory over the whole corpus stays under this (model + PyTorch + FFmpeg)
PEAK_RSS_MB = 1500


@pytest.fixture(scope="module")
def server():
    return live_server()


def test_bad_upload_corpus_gets_clear_4xx_and_leaves_nothing_behind(server, tmp_path):
    cases = bad_uploads(tmp_path)
    bad = [c for c in cases if c.kind == BAD]
    valid = [c for c in cases if c.kind == VALID]
    assert len(bad) >= 60
    tally = run_corpus(server.url, cases)
    summary = (f"{len(bad)} bad uploads: {tally.clear_4xx} clear 4xx, {tally.other_4xx} other 4xx, "
               f"{tally.server_errors} 5xx or no answer, {len(tally.failed_exchanges)} failed exchanges; "
               f"{tally.valid_ok}/{len(valid)} unusual valid uploads answered; peak RSS {server.peak_rss_mb():.0f} MB")
    print(summary)
    assert tally.failed_exchanges == [], tally.failed_exchanges
    assert tally.unexpected == [], "\n".join(tally.unexpected)
    assert tally.clear_4xx == len(bad) and tally.server_errors == 0 and tally.valid_ok == len(valid), \
        summary + "; not clear: " + "; ".join(tally.unclear)
    assert server.alive() and request(f"{server.url}/healthz").body["status"] == "ok"
    assert request_folders(server) == []  # no temporary file left behind
    assert server.peak_rss_mb() < PEAK_RSS_MB


def test_api_gives_the_predictors_probabilities(server):
    from emofuse.inference.predictor import Predictor

    clip = sample_clips()[0]
    reply = predict(server.url, clip.read_bytes(), clip.name)
    assert reply.status == 200, reply.body
    expected = Predictor().predict_file(clip)
    assert reply.body["label"] == expected.label and reply.body["status"] == expected.status
    assert reply.body["probabilities"] == pytest.approx(expected.probabilities, abs=1e-6)
    assert set(reply.body["probabilities"]) == set(expected.probabilities)  # every class
    assert reply.body["modalities_used"] == ["audio"] and reply.body["modality_weights"] == {"audio": 1.0}
    assert reply.body["transcript"] is None and reply.body["input"]["format"] == "flac"
    models = request(f"{server.url}/v1/models").body
    assert models["model"]["labels"] == list(expected.probabilities)
    assert models["model_card"].startswith("#") and models["model"]["modalities"] == ["audio"]


def test_timeline_through_the_api(server):
    clip = sample_clips()[2]  # 4.4 s
    reply = predict(server.url, clip.read_bytes(), clip.name, query="segments=2.0:1.0")
    assert reply.status == 200, reply.body
    timeline = reply.body["timeline"]
    assert timeline["window"] == 2.0 and timeline["hop"] == 1.0 and len(timeline["segments"]) >= 3
    first = timeline["segments"][0]
    assert (first["start"], first["end"]) == (0.0, 2.0) and {"label", "probabilities", "status"} <= set(first)
    assert "path" not in timeline and reply.body["filename"] == clip.name


def test_reduced_load_run_loses_nothing(server):
    clip = sample_clips()[0]
    result = load(server.url, clip.read_bytes(), clip.name, requests=16, clients=4)
    assert result["statuses"] == {"200": 16} and result["lost"] == 0
    assert request_folders(server) == []


@pytest.mark.realdata
def test_video_goes_through_audio_and_face(server, ravdess_video):
    videos = sorted((ravdess_video / "ravdess-actor05-video" / "mp4").glob("*.mp4"))
    if not videos:
        pytest.skip(f"real data missing: no mp4 under {ravdess_video / 'ravdess-actor05-video' / 'mp4'}")
    reply = predict(server.url, videos[0].read_bytes(), videos[0].name, query="explain=true")
    assert reply.status == 200, reply.body
    assert reply.body["modalities_used"] == ["audio", "face"]
    assert set(reply.body["modality_weights"]) == {"audio", "face"}
    assert sum(reply.body["modality_weights"].values()) == pytest.approx(1.0)
    assert reply.body["face_crops_png"].startswith("data:image/png;base64,")
