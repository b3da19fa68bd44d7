"""Face detectors: registry, the haar and mtcnn detectors, the MTCNN port and its shipped weights.

Data-free tests use images whose answer is known (blank, noise: no face). Real-data tests decode
frames of the actor-05 RAVDESS videos and the CREMA-D clip with PyAV (no pixels are committed).
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import pytest

from emofuse.errors import ConfigError, DataError
from emofuse.faces.detectors import (Face, FaceDetector, get_detector, largest_first, list_detectors,
                                     register_detector)
from emofuse.faces.haar import HaarDetector, landmarks_from_eyes
from emofuse.faces.detectors import nms
from emofuse.faces.mtcnn import WEIGHTS, MTCNNDetector, load_cascade

NOTICE = WEIGHTS.parent / "NOTICE.md"


@pytest.fixture(autouse=True)
def _one_thread():
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ----------------------------------------------------------------------------------------- registry
def test_registry_names_settings_and_errors():
    assert list_detectors()[:2] == ["haar", "mtcnn"]
    assert isinstance(get_detector("haar"), HaarDetector)
    mtcnn = get_detector("mtcnn", min_face=0.2)
    assert isinstance(mtcnn, MTCNNDetector) and mtcnn.min_face == 0.2
    assert get_detector(mtcnn.config()).config() == mtcnn.config()  # a config dict rebuilds the detector
    assert get_detector({"name": "haar", "landmarks": False}).landmarks is False
    with pytest.raises(ConfigError, match="unknown face detector 'blaze'.*haar, mtcnn"):
        get_detector("blaze")
    with pytest.raises(ConfigError, match="bad settings"):
        get_detector("haar", min_face_size=3)
    with pytest.raises(ConfigError):
        get_detector("mtcnn", thresholds=(0.6, 0.7))
    with pytest.raises(ConfigError):
        get_detector("haar", scale_factor=1.0)
    with pytest.raises(ValueError, match="already registered"):
        register_detector(HaarDetector)
    with pytest.raises(TypeError):
        register_detector(object)


def test_a_registered_detector_is_found_by_name():
    class Fixed(FaceDetector):
        name = "test_fixed_detector"

        def detect(self, image):
            return [Face(np.array([0, 0, 4, 4]), 1.0)]

    from emofuse.faces.detectors import _DETECTORS

    register_detector(Fixed)
    try:
        assert "test_fixed_detector" in list_detectors()
        assert get_detector("test_fixed_detector").detect(np.zeros((8, 8, 3), np.uint8))[0].box.dtype == np.float32
    finally:
        _DETECTORS._items.pop(Fixed.name, None)


def test_face_record_and_order():
    small = Face([0, 0, 10, 10], 0.9, np.zeros(10))
    big = Face(np.array([0, 0, 30, 20], dtype=np.float64), 0.5)
    assert small.box.dtype == np.float32 and small.landmarks.shape == (5, 2)
    assert big.area == 600 and big.centre.tolist() == [15, 10]
    assert largest_first([small, big]) == [big, small]


@pytest.mark.parametrize("name", ["haar", "mtcnn"])
def test_images_without_a_face_give_no_face(name):
    detector = get_detector(name)
    rng = np.random.default_rng(0)
    for image in (np.full((720, 1280, 3), 128, np.uint8), np.zeros((224, 224, 3), np.uint8),
                  rng.integers(0, 256, (360, 480, 3), dtype=np.uint8)):
        assert detector.detect(image) == []
    with pytest.raises(ConfigError, match="uint8 RGB"):
        detector.detect(np.zeros((32, 32), np.uint8))


# ----------------------------------------------------------------------------------------- parts
def test_haar_landmarks_from_two_eyes_follow_the_eye_line():
    level = landmarks_from_eyes([40, 50], [80, 50])
    assert level.shape == (5, 2) and level.dtype == np.float32
    nose, mouth_l, mouth_r = level[2:]
    assert 50 < nose[1] < mouth_l[1] and 50 < nose[1] < mouth_r[1]  # below the eyes, mouth below the nose
    assert mouth_l[0] < nose[0] < mouth_r[0]
    # turning the eyes turns the whole template the same way (distances preserved)
    a = np.deg2rad(30)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    centre = np.array([60, 50])
    left, right = rot @ (np.array([40, 50]) - centre) + centre, rot @ (np.array([80, 50]) - centre) + centre
    np.testing.assert_allclose(landmarks_from_eyes(left, right), (rot @ (level - centre).T).T + centre, atol=1e-4)


def test_nms_union_and_min():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [2, 2, 6, 6]], dtype=np.float32)
    scores = np.array([0.9, 0.8, 0.7, 0.95])
    assert nms(boxes, scores, 0.5).tolist() == [3, 0, 2]  # box 1 overlaps box 0 (IoU 0.68) and goes
    # "min": the small box inside box 0 overlaps it fully by the smaller area
    assert nms(boxes, scores, 0.7, method="min").tolist() == [3, 2]
    assert nms(np.zeros((0, 4)), np.zeros(0), 0.5).tolist() == []


def test_mtcnn_pyramid_starts_at_the_smallest_face():
    det = MTCNNDetector(min_face=0.1, min_face_px=20)
    scales = det.scales(360, 640)
    assert scales[0] == pytest.approx(12 / 36)
    assert np.allclose(np.diff(np.log(scales)), np.log(0.709))
    assert 360 * scales[-1] >= 12 > 360 * scales[-1] * 0.709
    assert MTCNNDetector(min_face=0.01).scales(360, 640)[0] == pytest.approx(12 / 20)  # the pixel floor
    assert len(MTCNNDetector(min_face=0.3).scales(360, 640)) < len(scales)


def test_shipped_mtcnn_weights_and_notice():
    from safetensors import safe_open

    with safe_open(str(WEIGHTS), "pt") as f:
        keys = set(f.keys())
        assert f.get_tensor("onet.dense6_3.weight").shape == (10, 256)  # the 5 landmarks' head
    assert {k.split(".")[0] for k in keys} == {"pnet", "rnet", "onet"}
    assert {"pnet.conv1.weight", "rnet.dense4.weight", "onet.prelu5.weight"} <= keys
    model = load_cascade()
    assert sum(p.numel() for p in model.parameters()) == sum(
        np.prod(safe_open(str(WEIGHTS), "pt").get_slice(k).get_shape()) for k in keys)
    text = NOTICE.read_text()
    assert "MIT License" in text and "Copyright (c) 2019 Timothy Esler" in text and "facenet-pytorch==2.6.0" in text
    for net in ("pnet", "rnet", "onet"):
        assert re.search(rf"data/{net}\.pt` \| \d+ \| `[0-9a-f]{{64}}`", text)
    assert hashlib.sha256(WEIGHTS.read_bytes()).hexdigest() in text


def test_mtcnn_weights_that_are_not_mtcnn_are_refused(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(DataError, match="bad.safetensors"):
        load_cascade(str(bad))
    from safetensors.numpy import save_file

    other = tmp_path / "other.safetensors"
    save_file({"pnet.conv1.weight": np.zeros((1, 1), np.float32)}, str(other))
    with pytest.raises(DataError, match="other.safetensors: not the MTCNN weights"):
        load_cascade(str(other))


# ----------------------------------------------------------------------------------------- real data
ACTOR05 = "ravdess-actor05-video"


def decode(path: Path, every: int = 1, only: int | None = None) -> list[np.ndarray]:
    """RGB frames of ``path`` (every ``every``-th one, or only frame number ``only``)."""
    import av

    frames = []
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if (only is None and i % every == 0) or i == only:
                frames.append(frame.to_ndarray(format="rgb24"))
            if only is not None and i >= only:
                break
    return frames


@pytest.fixture(scope="module")
def actor05(data_root_dir: Path) -> Path:
    folder = data_root_dir / ACTOR05
    if not (folder / "mp4").is_dir() or not (folder / "facecrop").is_dir():
        pytest.skip(f"real data missing: the RAVDESS actor-05 videos (mp4/, facecrop/) not found at {folder}")
    return folder


# facenet-pytorch 2.6.0 `MTCNN(min_face_size=36, keep_all=True).detect(image, landmarks=True)` on these frames
# (720p frames first shrunk to 640x360 with cv2.INTER_AREA), run once with a numpy batched_nms standing in for
# torchvision's: box, probability, landmarks
REFERENCE = {
    ("mp4/01-01-03-01-01-02-05.mp4", 30): (
        [236.56, 81.2, 416.51, 320.45], 0.99963,
        [[281.54, 169.3], [358.99, 164.28], [318.83, 216.35], [286.14, 253.33], [363.58, 247.98]]),
    ("mp4/01-01-08-01-02-01-05.mp4", 60): (
        [248.9, 65.41, 414.1, 292.21], 0.99999,
        [[289.21, 153.78], [366.54, 155.41], [323.07, 198.15], [296.89, 241.53], [357.31, 242.8]]),
}


@pytest.mark.realdata
@pytest.mark.parametrize("clip, index", sorted(REFERENCE))
def test_mtcnn_port_matches_the_original_on_real_frames(actor05, clip, index):
    box, prob, marks = REFERENCE[clip, index]
    image = decode(actor05 / clip, only=index)[0]
    assert image.shape == (720, 1280, 3)
    faces = MTCNNDetector().detect(image)  # shrinks to 640 first: coordinates come back x2
    assert len(faces) == 1
    np.testing.assert_allclose(faces[0].box, np.array(box) * 2, atol=0.05)
    np.testing.assert_allclose(faces[0].landmarks, np.array(marks) * 2, atol=0.05)
    assert faces[0].score == pytest.approx(prob, abs=1e-4)


def check_face_geometry(f: Face) -> None:
    left, right, nose, mouth_l, mouth_r = f.landmarks
    assert left[0] < right[0] and mouth_l[0] < mouth_r[0]
    assert max(left[1], right[1]) < nose[1] < min(mouth_l[1], mouth_r[1])  # eyes above the nose above the mouth
    x0, y0, x1, y1 = f.box
    assert ((f.landmarks >= [x0, y0]) & (f.landmarks <= [x1, y1])).all()


@pytest.mark.realdata
def test_one_face_with_sensible_landmarks_in_a_720p_frame(actor05):
    image = decode(actor05 / "mp4" / "01-01-04-01-01-01-05.mp4", only=45)[0]
    (mt,) = get_detector("mtcnn").detect(image)
    check_face_geometry(mt)
    assert mt.score > 0.99 and 150 < mt.width < 600
    (haar,) = get_detector("haar").detect(image)
    from emofuse.faces.track import box_iou

    assert box_iou(haar.box, mt.box[None])[0] > 0.5
    assert haar.landmarks is not None  # both eyes found: eye landmarks close to MTCNN's
    assert np.abs(haar.landmarks[:2] - mt.landmarks[:2]).max() < 0.1 * mt.width


@pytest.mark.realdata
def test_haar_keeps_one_face_per_head(cremad_dir):
    # frame 32 of the CREMA-D clip: besides the face, the padded cascade also fires on a larger,
    # weakly supported window around the head; the overlapping weaker window is dropped
    image = decode(cremad_dir / "1001_DFA_ANG_XX.flv", only=32)[0]
    (mt,) = get_detector("mtcnn").detect(image)
    faces = get_detector("haar").detect(image)
    from emofuse.faces.track import box_iou

    assert len(faces) == 1 and box_iou(faces[0].box, mt.box[None])[0] > 0.6


def share_with_face(detector: FaceDetector, frames: list[np.ndarray]) -> float:
    return float(np.mean([bool(detector.detect(f)) for f in frames]))


@pytest.mark.realdata
@pytest.mark.parametrize("name", ["haar", "mtcnn"])
def test_detectors_find_the_face_in_most_real_frames(actor05, data_root_dir, name):
    detector = get_detector(name)
    mp4 = [f for p in sorted((actor05 / "mp4").glob("*.mp4")) for f in decode(p, every=15)]
    crops = [decode(p, only=7)[0] for p in sorted((actor05 / "facecrop").glob("*.avi"))]
    assert len(mp4) >= 6 * 6 and len(crops) == 60
    assert share_with_face(detector, mp4) >= 0.95
    assert share_with_face(detector, crops) >= 0.9
    cremad = data_root_dir / "cremad-sample" / "1001_DFA_ANG_XX.flv"
    if cremad.is_file():
        assert share_with_face(detector, decode(cremad, every=4)) >= 0.9
    for f in get_detector(name).detect(crops[0])[:1]:
        if f.landmarks is not None:
            check_face_geometry(f)
