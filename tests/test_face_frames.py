"""Face sequences from video: `emofuse.faces.pipeline.analyse_video` and the ``face_frames`` feature,
cached per clip x configuration, resumed and sharded by the one driver (#12 item 4).

Generated videos (tests/videogen.py) show a bright square, the "face", on a dark background in some
frames and nothing in others; a tiny detector finds the square and a tiny encoder describes the
crop, both registered by the tests (no model weights needed).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from videogen import write_video  # noqa: E402

from emofuse.data.record import Sample  # noqa: E402
from emofuse.errors import ConfigError, DataError  # noqa: E402
from emofuse.faces.detectors import _DETECTORS, Face, FaceDetector, register_detector  # noqa: E402
from emofuse.faces.encoders.base import _ENCODERS, FaceEncoder, register_face_encoder  # noqa: E402
from emofuse.features import FeatureCache, get_extractor  # noqa: E402
from emofuse.features.base import _REGISTRY, register  # noqa: E402
from emofuse.features.driver import extract  # noqa: E402
from emofuse.features.face_frames import FaceFrames  # noqa: E402

FPS, SECONDS, H, W, SIDE = 10.0, 2.0, 64, 96, 24
SAMPLER = "4fps_8"  # frames at 0, 0.25, ..., 1.75 s: video frames 0, 2, 5, ... 17 at 10 fps


class BrightSquare(FaceDetector):
    """The box around the pixels brighter than 128 (none: fewer than 20 such pixels); eyes as landmarks."""

    name = "test_bright_square"

    def detect(self, image: np.ndarray) -> list[Face]:
        ys, xs = np.nonzero(image.mean(axis=2) > 128)
        if len(xs) < 20:
            return []
        box = [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
        return [Face(box=np.array(box, np.float32), score=1.0)]


class MeanCrop(FaceEncoder):
    """8x8 grey crops -> three functions of the pixels in [0, 1]; logits for 2 classes. ``weights``: a
    file whose first byte scales the embedding (so a changed file changes the numbers)."""

    name = "test_mean_crop"
    input_size = 8
    grey = True
    embed_dim = 3
    classes = ("dark", "bright")

    def __init__(self, weights: str | None = None) -> None:
        self.weights = weights
        self.scale = 1.0 if weights is None else 1.0 + Path(weights).read_bytes()[0] / 255.0

    def weight_files(self) -> list[Path]:
        return [] if self.weights is None else [Path(self.weights)]

    def config(self) -> dict:
        return {"name": self.name, "weights": self.weights}

    def forward(self, x):
        import torch

        flat = x.flatten(1)
        mean = flat.mean(1)  # three features pointing different ways as the brightness grows (a
        # model's per-frame LayerNorm would erase features that all grow together)
        emb = self.scale * torch.stack([mean, 10 * (mean - 0.52) ** 2, 1 - flat.amax(1)], dim=1)
        return emb, torch.stack([-flat.mean(1), flat.mean(1)], dim=1)


@dataclass
class FakeFaceFrames(FaceFrames):
    """``face_frames`` with the test detector and encoder as defaults (recipes name features without settings)."""

    name = "test_face_frames"
    sampler: str | dict = SAMPLER
    detector: str | dict = BrightSquare.name
    encoder: str | dict = MeanCrop.name


@pytest.fixture(scope="module", autouse=True)
def fake_face_models():
    register_detector(BrightSquare)
    register_face_encoder(MeanCrop)
    register(FakeFaceFrames)
    yield
    _DETECTORS._items.pop(BrightSquare.name, None)
    _ENCODERS._items.pop(MeanCrop.name, None)
    _REGISTRY.pop(FakeFaceFrames.name, None)


def _frames(face_frames: set[int], level: int = 255, x0: int = 30) -> np.ndarray:
    """``SECONDS * FPS`` frames; those in ``face_frames`` hold a ``SIDE``-pixel square of ``level`` at ``x0``."""
    frames = np.full((int(SECONDS * FPS), H, W, 3), 10, np.uint8)
    for i in face_frames:
        frames[i, 20:20 + SIDE, x0:x0 + SIDE] = level
    return frames


def _video(path: Path, face_frames: set[int], **kwargs) -> Path:
    return write_video(path, _frames(face_frames, **kwargs), FPS)


def _settings(**extra) -> dict:
    return {"sampler": SAMPLER, "detector": BrightSquare.name, "encoder": MeanCrop.name, **extra}


# ---------------------------------------------------------------- analyse_video


def test_frames_without_a_face_are_masked_never_invented(tmp_path):
    from emofuse.faces.pipeline import analyse_video

    no_face = {5, 8, 12}  # sampled frames 2 (video frame 5) and 5 (video frame 12) have no square
    path = _video(tmp_path / "gaps.mp4", set(range(20)) - no_face)
    faces = analyse_video(path, SAMPLER, BrightSquare.name, MeanCrop.name)
    assert len(faces) == 8 and faces.frame_indices.tolist() == [0, 2, 5, 7, 10, 12, 15, 17]
    np.testing.assert_allclose(faces.times, np.arange(8) * 0.25, atol=0.051)
    assert faces.mask.tolist() == [True, True, False, True, True, False, True, True]
    assert faces.face_share == pytest.approx(6 / 8)
    assert np.isnan(faces.boxes[~faces.mask]).all() and np.isnan(faces.embeddings[~faces.mask]).all()
    assert np.isnan(faces.logits[~faces.mask]).all() and faces.classes == ("dark", "bright")
    np.testing.assert_allclose(faces.boxes[faces.mask], np.tile([30, 20, 54, 44], (6, 1)), atol=2)
    assert faces.crops.shape == (8, 8, 8) and faces.crops.dtype == np.uint8 and not faces.crops[~faces.mask].any()
    assert np.isfinite(faces.embeddings[faces.mask]).all() and faces.crops[faces.mask].max() > 200
    both = faces.features("both")
    assert both.shape == (8, 5) and np.isnan(both[~faces.mask]).all() and np.isfinite(both[faces.mask]).all()
    with pytest.raises(ConfigError, match="output"):
        faces.features("pixels")


def test_a_clip_without_any_face_and_a_file_that_is_not_a_video(tmp_path):
    from emofuse.faces.pipeline import analyse_video

    faces = analyse_video(_video(tmp_path / "empty.mp4", set()), SAMPLER, BrightSquare(), MeanCrop())
    assert not faces.mask.any() and faces.face_share == 0.0 and np.isnan(faces.embeddings).all()
    bad = tmp_path / "text.mp4"
    bad.write_text("not a video")
    with pytest.raises(DataError) as info:
        analyse_video(bad, SAMPLER, BrightSquare(), MeanCrop())
    assert info.value.path == bad


def test_the_encoder_gets_crops_at_its_size_and_colour(tmp_path):
    from emofuse.faces.pipeline import analyse_video

    class RGB16(MeanCrop):
        name = "test_rgb16"
        input_size, grey = 16, False

    faces = analyse_video(_video(tmp_path / "v.mp4", set(range(20))), SAMPLER, BrightSquare(), RGB16())
    assert faces.crops.shape == (8, 16, 16, 3) and faces.mask.all()


# ---------------------------------------------------------------- the face_frames feature


def _corpus(tmp_path: Path, n: int = 6) -> list[Sample]:
    """``n`` clips; clip 0 has no face at all, the others a face whose brightness and place vary."""
    samples = []
    (tmp_path / "clips").mkdir(exist_ok=True)
    for i in range(n):
        faces = set() if i == 0 else set(range(20)) - {3 * i}  # clip i lacks the face in video frame 3i
        path = _video(tmp_path / "clips" / f"c{i}.mp4", faces, level=150 + 20 * i, x0=10 + 8 * i)
        samples.append(Sample(id=f"c{i}", speaker=f"s{i % 2}", dataset="t", label="happy", sources={"video": path}))
    return samples


class _Count:
    """Counts the clips ``face_frames`` computes."""

    def __init__(self, monkeypatch) -> None:
        from emofuse.features.face_frames import FaceFrames

        self.clips = 0
        original = FaceFrames.process

        def process(ext, inputs):
            self.clips += len(inputs)
            return original(ext, inputs)

        monkeypatch.setattr(FaceFrames, "process", process)


def test_face_frames_declarations_and_settings():
    ext = get_extractor("face_frames", **_settings())
    assert (ext.source, ext.modality, ext.produces, ext.missing_rows) == ("video", "face", "sequence", True)
    assert ext.frame_rate == 4.0 and ext.dim == 3
    assert get_extractor("face_frames", **_settings(output="both")).dim == 5
    assert get_extractor("face_frames", **_settings(sampler="15_over_3.6s")).frame_rate is None
    assert get_extractor("face_frames").config() == {"sampler": "2fps_8", "detector": "haar", "encoder": "fer_cnn",
                                                    "output": "embedding", "margin": 0.2}
    with pytest.raises(ConfigError, match="output"):
        get_extractor("face_frames", output="pixels")
    with pytest.raises(ConfigError, match="frame sampler"):
        get_extractor("face_frames", sampler="sometimes")
    with pytest.raises(ConfigError, match="margin"):
        get_extractor("face_frames", margin=-1)


def test_extract_caches_per_clip_and_a_second_run_reads_the_cache(tmp_path, monkeypatch):
    samples = _corpus(tmp_path)
    count = _Count(monkeypatch)
    ext = get_extractor("face_frames", **_settings())
    first = extract(ext, samples, tmp_path / "cache", progress=False)
    assert count.clips == 6 and all(a.shape == (8, 3) for a in first)
    assert np.isnan(first[0]).all()  # no face in the clip: every row NaN, cached as such
    assert [int(np.isnan(a[:, 0]).sum()) for a in first[1:]] == [0, 0, 0, 1, 1]  # video frames 12, 15 are sampled
    again = extract(get_extractor("face_frames", **_settings()), samples, tmp_path / "cache", progress=False)
    assert count.clips == 6  # all read from the cache
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    folder = FeatureCache(tmp_path / "cache", ext).folder
    assert len(list(folder.glob("*.npz"))) == 6


def test_two_shards_fill_the_cache_together_and_resume(tmp_path, monkeypatch):
    samples = _corpus(tmp_path)
    count = _Count(monkeypatch)
    ext = get_extractor("face_frames", **_settings())
    part1 = extract(ext, samples, tmp_path / "cache", progress=False, shard=(1, 2))
    assert count.clips == 3 and sum(a is not None for a in part1) == 3
    extract(ext, samples, tmp_path / "cache", progress=False, shard=(2, 2))
    assert count.clips == 6
    full = extract(ext, samples, tmp_path / "cache", progress=False)
    assert count.clips == 6 and all(a is not None for a in full)


def test_a_changed_configuration_or_weights_file_misses_the_cache(tmp_path, monkeypatch):
    samples = _corpus(tmp_path, n=2)
    count = _Count(monkeypatch)
    weights = tmp_path / "w.bin"
    weights.write_bytes(b"\x10")
    encoder = {"name": MeanCrop.name, "weights": str(weights)}
    base = extract(get_extractor("face_frames", **_settings(encoder=encoder)), samples, tmp_path / "c", progress=False)
    assert count.clips == 2
    extract(get_extractor("face_frames", **_settings(encoder=encoder, margin=0.5)), samples, tmp_path / "c",
            progress=False)
    assert count.clips == 4  # another margin: computed again
    weights.write_bytes(b"\x80")  # same path, new weights: new entries, other numbers
    changed = extract(get_extractor("face_frames", **_settings(encoder=encoder)), samples, tmp_path / "c",
                      progress=False)
    assert count.clips == 6 and not np.allclose(base[1][0], changed[1][0])
    moved = tmp_path / "moved.bin"
    moved.write_bytes(b"\x80")  # same weights elsewhere: the fingerprint, not the path, keys the cache
    extract(get_extractor("face_frames", **_settings(encoder={"name": MeanCrop.name, "weights": str(moved)})),
            samples, tmp_path / "c", progress=False)
    assert count.clips == 8  # the weights path is a setting (config), so a moved file is a new config ...
    # ... but the same path with the same bytes again is a hit
    extract(get_extractor("face_frames", **_settings(encoder=encoder)), samples, tmp_path / "c", progress=False)
    assert count.clips == 8


def test_face_sequences_become_masked_model_inputs(tmp_path):
    from emofuse.features.store import FeatureStore
    from emofuse.inputs.plan import InputPlan, ModalityPlan
    from emofuse.training.data import FeatureDataset, collate

    samples = _corpus(tmp_path, n=5)
    plan = InputPlan({"face": ModalityPlan(("test_face_frames",), {"test_face_frames": FakeFaceFrames().config()})})
    arrays = plan.arrays(FeatureStore(samples, tmp_path / "cache", progress=False))
    assert arrays["face"][0] is None  # no face in the clip: the modality is absent
    batch = collate([FeatureDataset(arrays, None, [s.id for s in samples], dims={"face": 3})[i] for i in range(5)])
    assert batch["masks"]["face"].sum(1).tolist() == [0, 8, 8, 8, 7]
    assert np.isfinite(batch["inputs"]["face"].numpy()).all()


# ---------------------------------------------------------------- training on face sequences

LABELS = ("angry", "calm", "happy")


@pytest.fixture(scope="module")
def video_corpus(tmp_path_factory) -> Path:
    """6 speakers x 3 labels x 2 takes: one tone (the same for every clip) and a video whose face
    brightness tells the label; some frames lack the face, one clip has none."""
    import soundfile as sf

    root = tmp_path_factory.mktemp("videos")
    rng = np.random.default_rng(0)
    lines = ["id,speaker,label,audio,video"]
    for s in range(6):
        for k, label in enumerate(LABELS):
            for take in range(2):
                sid = f"p{s}_{label}_{take}"
                t = np.arange(4800) / 16000
                sf.write(root / f"{sid}.wav", 0.3 * np.sin(2 * np.pi * 300 * t), 16000)  # the same for all
                faces = set() if sid == "p0_calm_0" else set(range(20)) - set(rng.choice(20, 4, replace=False).tolist())
                _video(root / f"{sid}.mp4", faces, level=140 + 50 * k, x0=int(rng.integers(5, 60)))
                lines.append(f"{sid},p{s},{label},{sid}.wav,{sid}.mp4")
    (root / "corpus.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


@pytest.mark.parametrize("model", ["attention_pooling", "tucker_fusion"])
def test_train_and_evaluate_a_fusion_model_on_face_sequences(video_corpus, tmp_path, capsys, model):
    from emofuse.cli import main

    kwargs = {"tucker_fusion": "{d_model: 16, t_common: 8, heads: 2, ranks: [4, 4, 4], pool_dim: 8, gru_hidden: 8, "
                               "cnn_channels: [4, 8]}",
              "attention_pooling": "{hidden: 16, embed_dim: 8}"}[model]
    recipe = tmp_path / "faces.yaml"
    recipe.write_text(f"model: {model}\nmodel_kwargs: {kwargs}\n"
                      "features: {audio: [mfcc], face: [test_face_frames]}\n"
                      "train: {lr: 1.0e-2, batch_size: 4, max_epochs: 60, patience: 60}\n", encoding="utf-8")
    csv, cache, ckpt = str(video_corpus / "corpus.csv"), str(tmp_path / "cache"), tmp_path / "ckpt"
    rc = main(["--threads", "1", "train", str(recipe), "--dataset", csv, "--fold", "1", "--num-folds", "3",
               "--out", str(ckpt), "--cache", cache, "--quiet"])
    err = capsys.readouterr().err
    assert rc == 0, err
    config = json.loads((ckpt / "config.json").read_text())
    assert config["input_plan"]["modalities"]["face"]["names"] == ["test_face_frames"]
    rc = main(["--threads", "1", "evaluate", str(ckpt), "--dataset", csv, "--fold", "1", "--cache", cache])
    out, err = capsys.readouterr()
    assert rc == 0, err
    wa = json.loads(out)["wa"]
    assert wa > 0.7, wa  # chance is 1/3: only the face tells the labels apart

    # the Python API predicts a clip from its audio and its video (given as the "video" source)
    from emofuse.inference.predictor import Predictor

    predictor = Predictor(ckpt, min_speech=0, cache_dir=cache)
    clip = video_corpus / "p5_happy_1"
    both = predictor.predict_file(clip.with_suffix(".wav"), sources={"video": clip.with_suffix(".mp4")})
    assert both.ok and both.modalities_used == ["audio", "face"] and both.label == "happy", both
    blind = video_corpus / "p0_calm_0"  # no face in any frame: the face modality is absent
    alone = predictor.predict_file(blind.with_suffix(".wav"), sources={"video": blind.with_suffix(".mp4")})
    assert alone.ok and alone.modalities_used == ["audio"]

    # a file with both tracks is its own video source: no sources= needed
    import soundfile as sf

    from emofuse.media.video import read_frames

    wave, rate = sf.read(str(clip.with_suffix(".wav")), dtype="float32")
    frames = [f.image for f in read_frames(clip.with_suffix(".mp4"), "all")]
    joined = write_video(tmp_path / "joined.mp4", frames, FPS, audio=wave, audio_rate=rate)
    own = predictor.predict_file(joined)
    assert own.ok and own.modalities_used == ["audio", "face"] and own.label == "happy", own


# ---------------------------------------------------------------- real data (skipped without it)


def test_real_face_crop_clip_with_haar_and_mini_xception(ravdess_video, tmp_path):
    """One RAVDESS actor-05 face-crop clip (a single speaker: a shape and plumbing check, not accuracy)."""
    clip = sorted((ravdess_video / "ravdess-actor05-video" / "facecrop").glob("*.avi"))[0]
    ext = get_extractor("face_frames", encoder="mini_xception", output="both")
    sample = Sample(id=clip.stem, speaker="05", dataset="ravdess", label=None, sources={"video": clip})
    (features,) = extract(ext, [sample], tmp_path / "cache", progress=False)
    assert features.shape == (8, ext.dim) and ext.dim == 128 + 7
    found = ~np.isnan(features[:, 0])
    assert found.mean() >= 0.75 and np.isfinite(features[found]).all()
    assert ext.identity()["encoder"]["weights_sha256"]
