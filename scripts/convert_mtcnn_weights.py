"""Convert the MTCNN weights of the facenet-pytorch wheel to one safetensors file for emofuse.

facenet-pytorch pins torch<2.3 and numpy<2, so it is never installed: fetch the wheel only and
read its three state dicts (plain tensors, loaded with ``weights_only=True``)::

    pip download --no-deps facenet-pytorch==2.6.0 -d /tmp/mtcnn
    python scripts/convert_mtcnn_weights.py /tmp/mtcnn/facenet_pytorch-2.6.0-py3-none-any.whl

writes ``src/emofuse/assets/faces/mtcnn/mtcnn.safetensors`` (tensors named ``pnet.*``, ``rnet.*``,
``onet.*``, the parameter names of `emofuse.faces.mtcnn`) and ``NOTICE.md`` (the MIT licence of
facenet-pytorch, the wheel, and the SHA-256 of each original file).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import zipfile
from pathlib import Path

NETS = ("pnet", "rnet", "onet")
WHEEL_VERSION = "2.6.0"
OUT_DIR = Path(__file__).resolve().parents[1] / "src" / "emofuse" / "assets" / "faces" / "mtcnn"


def read_wheel(wheel: Path) -> tuple[dict[str, bytes], str]:
    """The bytes of ``data/{pnet,rnet,onet}.pt`` and the licence text inside ``wheel``."""
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        files = {net: zf.read(f"facenet_pytorch/data/{net}.pt") for net in NETS}
        licence = next(n for n in names if n.endswith(".dist-info/LICENSE.md") or n.endswith(".dist-info/LICENSE"))
        return files, zf.read(licence).decode("utf-8")


def convert(files: dict[str, bytes]) -> dict:
    """One flat dict of float32 tensors ``<net>.<parameter>``."""
    import torch

    tensors = {}
    for net, data in files.items():
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        for key, value in state.items():
            tensors[f"{net}.{key}"] = value.detach().to(torch.float32).contiguous()
    return tensors


def notice(wheel: Path, files: dict[str, bytes], licence: str, out_sha: str) -> str:
    """The NOTICE.md text: origin, hashes and the licence."""
    rows = "\n".join(
        f"| `facenet_pytorch/data/{net}.pt` | {len(data)} | `{hashlib.sha256(data).hexdigest()}` |"
        for net, data in files.items())
    wheel_sha = hashlib.sha256(wheel.read_bytes()).hexdigest()
    return f"""# MTCNN weights (P-Net, R-Net, O-Net)

`mtcnn.safetensors` holds the MTCNN face-detector weights (Zhang et al., 2016, "Joint Face Detection
and Alignment using Multi-task Cascaded Convolutional Networks") as shipped in the wheel
`facenet_pytorch-{WHEEL_VERSION}-py3-none-any.whl` (PyPI `facenet-pytorch=={WHEEL_VERSION}`,
SHA-256 `{wheel_sha}`), converted unchanged (float32) by `scripts/convert_mtcnn_weights.py`.
Tensor names are `<net>.<parameter>` with the parameter names of the original modules.

| original file | bytes | SHA-256 |
|---|---|---|
{rows}

`mtcnn.safetensors` SHA-256: `{out_sha}`

facenet-pytorch is not a dependency of emofuse; the weights are distributed here under its licence:

{licence.strip()}
"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wheel", type=Path, help=f"facenet_pytorch-{WHEEL_VERSION}-py3-none-any.whl")
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="output folder")
    args = parser.parse_args(argv)
    from safetensors.torch import save

    from emofuse.atomic import atomic_write_bytes, atomic_write_text

    files, licence = read_wheel(args.wheel)
    blob = save(convert(files), metadata={"source": f"facenet-pytorch=={WHEEL_VERSION}", "format": "pt"})
    atomic_write_bytes(args.out / "mtcnn.safetensors", blob)
    atomic_write_text(args.out / "NOTICE.md", notice(args.wheel, files, licence, hashlib.sha256(blob).hexdigest()))
    print(f"wrote {args.out / 'mtcnn.safetensors'} ({len(blob)} bytes) and NOTICE.md")


if __name__ == "__main__":
    main()
