"""Face tracking (one person across frames) and face crops, on scripted detections and drawn images."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from emofuse.errors import ConfigError
from emofuse.faces.crops import crop_face, crop_transform, imagenet_normalize
from emofuse.faces.detectors import Face, FaceDetector
from emofuse.faces.track import FaceTracker, box_iou, track_detections, track_faces


def face(x0, y0, x1, y1, score=1.0, landmarks=None) -> Face:
    return Face(np.array([x0, y0, x1, y1]), score, landmarks)


class ScriptedDetector(FaceDetector):
    """Returns the scripted faces of frame i for the i-th image (the image's first pixel holds i)."""

    name = "scripted"

    def __init__(self, script: list[list[Face]]) -> None:
        self.script = script
        self.calls = 0

    def detect(self, image: np.ndarray) -> list[Face]:
        self.calls += 1
        return list(self.script[int(image[0, 0, 0])])


def run(script: list[list[Face]], **cfg) -> list[Face | None]:
    images = [np.full((4, 4, 3), i, dtype=np.uint8) for i in range(len(script))]
    detector = ScriptedDetector(script)
    out = track_faces(images, detector, **cfg)
    assert detector.calls == len(images) and len(out) == len(images)
    return out


# person A (large, moving right) and person B (small, growing larger than A)
A = [face(100 + 20 * t, 100, 200 + 20 * t, 200) for t in range(6)]
B = [face(400, 100, 440 + 40 * t, 140 + 40 * t) for t in range(6)]


def test_largest_face_is_kept_and_followed_after_the_other_grows():
    script = [[B[t], A[t]] for t in range(6)]  # B listed first: order must not matter
    out = run(script)
    assert all(o is A[t] for t, o in enumerate(out))
    assert B[5].area > A[5].area  # the other person ends larger, and is still not taken


def test_a_frame_without_the_face_gets_none_and_the_face_is_found_again():
    script = [[A[0], B[0]], [B[1]], [], [A[1], B[1]]]
    out = run(script)
    assert out[0] is A[0]
    assert out[1] is None  # B is there but is another person: nothing is invented
    assert out[2] is None
    assert out[3] is A[1]


def test_no_face_before_the_first_detection():
    out = run([[], [], [A[0]], [A[1]]])
    assert out[:2] == [None, None] and out[2] is A[0] and out[3] is A[1]


def test_nearest_centre_when_the_boxes_no_longer_overlap_enough():
    start = face(100, 100, 200, 200)
    jumped = face(160, 120, 260, 220)  # IoU 0.19 < 0.3, centre moved 63 px < 0.75 * 100
    too_far = face(300, 100, 400, 200)  # centre 200 px away
    assert box_iou(start.box, jumped.box[None])[0] < 0.3
    assert run([[start], [jumped]])[1] is jumped
    assert run([[start], [too_far]])[1] is None
    assert run([[start], [jumped]], max_shift=0.5)[1] is None


def test_nearest_centre_needs_a_similar_size():
    start = face(100, 100, 200, 200)
    tiny = face(170, 150, 190, 170)  # centre close, but 5x smaller
    assert run([[start], [tiny]])[1] is None
    assert run([[start], [tiny]], max_scale=6.0)[1] is tiny


def test_reacquire_after_a_gap_takes_the_largest_face_again():
    far = face(600, 100, 700, 200)
    script = [[A[0]], [far], [far], [far], [far]]
    out = run(script, reacquire_after=3)
    assert out[0] is A[0] and out[1:4] == [None, None, None] and out[4] is far
    assert run(script, reacquire_after=None)[1:] == [None] * 4


def test_tracker_settings_are_checked():
    with pytest.raises(ConfigError):
        FaceTracker(min_iou=0.0)
    with pytest.raises(ConfigError):
        FaceTracker(reacquire_after=0)
    assert track_detections([[A[0]], [A[1]]]) == [A[0], A[1]]


def test_box_iou():
    assert box_iou(np.array([0, 0, 10, 10]), np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]])) \
        == pytest.approx([1.0, 1 / 3, 0.0])


# ----------------------------------------------------------------------------------------- crops
def gradient_image(h: int = 120, w: int = 160) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def test_known_box_gives_the_exact_pixels_rgb_and_grey():
    image = gradient_image()
    f = face(40, 30, 80, 70)
    crop = crop_face(image, f, size=40, grey=False, margin=0.0, align=False)
    assert crop.dtype == np.uint8 and crop.shape == (40, 40, 3)
    np.testing.assert_array_equal(crop, image[30:70, 40:80])
    grey = crop_face(image, f, size=40, grey=True, margin=0.0, align=False)
    assert grey.shape == (40, 40)
    np.testing.assert_array_equal(grey, cv2.cvtColor(image[30:70, 40:80], cv2.COLOR_RGB2GRAY))


def test_margin_makes_a_square_about_the_box_and_size_resizes():
    image = gradient_image()
    f = face(40, 30, 80, 60)  # 40 wide, 30 high: square of side 40 * 1.5 = 60 about centre (60, 45)
    crop = crop_face(image, f, size=60, grey=False, margin=0.5, align=False)
    np.testing.assert_array_equal(crop, image[15:75, 30:90])
    for size, grey, shape in ((48, True, (48, 48)), (64, True, (64, 64)), (224, False, (224, 224, 3))):
        assert crop_face(image, f, size=size, grey=grey).shape == shape
    small = crop_face(image, f, size=30, grey=False, margin=0.5, align=False)
    np.testing.assert_array_equal(small, cv2.resize(image[15:75, 30:90], (30, 30), interpolation=cv2.INTER_AREA))


def test_boxes_partly_outside_the_image_use_the_border_mode():
    image = gradient_image()
    f = face(-10, -10, 30, 30)
    rep = crop_face(image, f, size=40, grey=False, margin=0.0, align=False)
    np.testing.assert_array_equal(rep[10:, 10:], image[:30, :30])
    np.testing.assert_array_equal(rep[:10, 10:], np.repeat(image[:1, :30], 10, axis=0))
    np.testing.assert_array_equal(rep[10:, :10], np.repeat(image[:30, :1], 10, axis=1))
    const = crop_face(image, f, size=40, grey=False, margin=0.0, align=False, border="constant")
    assert not const[:10].any() and not const[:, :10].any()
    np.testing.assert_array_equal(const[10:, 10:], image[:30, :30])
    whole_outside = crop_face(image, face(500, 500, 540, 540), size=16, grey=True, border="constant")
    assert whole_outside.shape == (16, 16) and not whole_outside.any()


def tilted_eyes(angle_deg: float, centre=(100.0, 90.0), dist: float = 40.0) -> np.ndarray:
    a = np.deg2rad(angle_deg)
    half = 0.5 * dist * np.array([np.cos(a), np.sin(a)])
    left, right = np.array(centre) - half, np.array(centre) + half
    rest = np.array([[100, 115], [85, 135], [115, 135]], dtype=np.float64)
    return np.vstack([left, right, rest]).astype(np.float32)


@pytest.mark.parametrize("angle", [25.0, -15.0])
def test_alignment_levels_a_tilted_eye_pair(angle):
    marks = tilted_eyes(angle)
    f = face(60, 50, 140, 150, landmarks=marks)
    matrix = crop_transform(f, size=96)
    eyes = (matrix[:, :2] @ marks[:2].T.astype(np.float64) + matrix[:, 2:]).T
    assert eyes[0, 1] == pytest.approx(eyes[1, 1], abs=1e-6)
    assert eyes[1, 0] - eyes[0, 0] == pytest.approx(40.0 * 96 / 120, rel=1e-6)  # distance kept, scaled
    # the pixels follow the same transform: two bright dots at the eyes land on one row of the crop
    image = np.zeros((200, 220, 3), dtype=np.uint8)
    for x, y in marks[:2]:
        cv2.circle(image, (int(round(x)), int(round(y))), 3, (255, 255, 255), -1)
    crop = crop_face(image, f, size=96, grey=True)
    ys, xs = np.nonzero(crop > 128)
    left, right = xs < 48, xs >= 48
    assert abs(ys[left].mean() - ys[right].mean()) < 1.0
    assert abs(ys[left].mean() - eyes[0, 1]) < 1.0 and abs(xs[left].mean() - eyes[0, 0]) < 1.0
    unaligned = crop_face(image, f, size=96, grey=True, align=False)
    ys, xs = np.nonzero(unaligned > 128)
    assert abs(ys[xs < 48].mean() - ys[xs >= 48].mean()) > 5.0


def test_align_without_landmarks_is_a_plain_crop():
    image = gradient_image()
    f = face(40, 30, 80, 70)
    np.testing.assert_array_equal(crop_face(image, f, 32, False), crop_face(image, f, 32, False, align=False))


def test_crop_settings_and_inputs_are_checked():
    image = gradient_image()
    with pytest.raises(ConfigError):
        crop_face(image, face(0, 0, 10, 10), 32, False, border="wrap")
    with pytest.raises(ConfigError):
        crop_face(image[..., 0], face(0, 0, 10, 10), 32, True)


def test_imagenet_normalize():
    crops = np.zeros((2, 4, 4, 3), dtype=np.uint8)
    crops[1] = 255
    x = imagenet_normalize(crops)
    assert x.dtype == np.float32 and x.shape == (2, 3, 4, 4)
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    np.testing.assert_allclose(x[0, :, 0, 0], -mean / std, rtol=1e-6)
    np.testing.assert_allclose(x[1, :, 2, 3], (1 - mean) / std, rtol=1e-6)
    assert imagenet_normalize(crops[0]).shape == (1, 3, 4, 4)
    with pytest.raises(ConfigError):
        imagenet_normalize(crops.astype(np.float32))
