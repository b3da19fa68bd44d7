"""Face encoders: the `FaceEncoder` base class, the FER class order and the encoder registry.

An encoder takes face crops (uint8, grey [N, S, S] or RGB [N, S, S, 3]) and returns per-face
embeddings [N, embed_dim] and, when it has an expression head, logits [N, len(classes)].
Subclasses build a network and implement `forward`; the base class checks and resizes the
crops (`_prepare`), normalises them (`normalise`), batches them under ``torch.no_grad`` (`encode`)
and fingerprints the weights (`identity`).

Built-in encoders live in the modules of this package and register themselves on import;
`get_face_encoder` and `list_face_encoders` import every module here on first use
(`pkgutil` discovery), so adding an encoder is adding one module.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import pkgutil
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from emofuse.errors import ConfigError, DataError
from emofuse.registry import Registry

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

#: FER2013 label order (0..6), spelled as the project spells its emotions.
FER_CLASSES: tuple[str, ...] = ("angry", "disgust", "fearful", "happy", "sad", "surprised", "neutral")

#: ImageNet channel mean / std (RGB, on [0, 1] pixels).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class FaceEncoder:
    """Base class: subclass, set the class attributes, build ``self.net`` and implement `forward`.

    Attributes:
        name: registry name.
        input_size: side S of the square crops the network takes.
        grey: True for one grey channel, False for RGB.
        embed_dim: length of one embedding.
        classes: names of the logits (None when the encoder has no expression head).
        batch_size: faces per forward pass in `encode`.
    """

    name: ClassVar[str] = ""
    input_size: int = 0
    grey: bool = True
    embed_dim: int = 0
    classes: tuple[str, ...] | None = None
    batch_size: int = 64

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Embeddings [n, embed_dim] and logits [n, C] (or None) of a normalised batch ``x`` [n, C, S, S]."""
        raise NotImplementedError

    def weight_files(self) -> list[Path]:
        """The files the weights were read from (fingerprinted by `identity`; [] for random weights)."""
        return []

    def config(self) -> dict[str, Any]:
        """The settings that change the result (with ``name``), for cache keys and reports."""
        return {"name": self.name}

    def identity(self) -> dict[str, Any]:
        """`config` plus a fingerprint of the weights: SHA-256 of the weight file(s).

        The ``weights`` path itself is left out when files are fingerprinted, so a moved or copied
        file keeps its identity."""
        files = self.weight_files()
        cfg = self.config()
        if files:
            cfg.pop("weights", None)
        digests = [file_sha256(f) for f in files]
        if len(digests) == 1:
            sha = digests[0]
        elif digests:
            sha = hashlib.sha256("".join(digests).encode()).hexdigest()
        else:
            sha = None
        return {**cfg, "weights_sha256": sha}

    # -- input handling -------------------------------------------------------------------
    def _prepare(self, crops: np.ndarray) -> np.ndarray:
        """``crops`` as uint8 [N, S, S] (grey) or [N, S, S, 3] (RGB) at ``input_size``.

        Accepts uint8 [N, H, W], [N, H, W, 1] or [N, H, W, 3]; converts RGB to grey (or grey to
        RGB by repeating the channel) to match the encoder and resizes other sizes with
        ``cv2.INTER_AREA`` (bilinear when enlarging; `ConfigError` for another dtype or shape).
        """
        crops = np.asarray(crops)
        if crops.dtype != np.uint8:
            raise ConfigError(f"face encoder {self.name!r} takes uint8 crops, got {crops.dtype}")
        if crops.ndim == 4 and crops.shape[3] == 1:
            crops = crops[..., 0]
        if not (crops.ndim == 3 or (crops.ndim == 4 and crops.shape[3] == 3)):
            raise ConfigError(
                f"face encoder {self.name!r} takes crops [N, S, S] (grey) or [N, S, S, 3] (RGB), got {crops.shape}"
            )
        if crops.shape[0] and 0 in crops.shape[1:3]:
            raise ConfigError(f"face encoder {self.name!r}: empty crops {crops.shape}")
        crops = _convert_channels(crops, self.grey)
        s = self.input_size
        if crops.shape[1:3] != (s, s) and len(crops):
            import cv2

            # INTER_AREA to shrink; bilinear to enlarge (what the fer package does for 48 -> 64)
            shrink = crops.shape[1] * crops.shape[2] > s * s
            mode = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
            crops = np.stack([cv2.resize(c, (s, s), interpolation=mode) for c in crops])
        return np.ascontiguousarray(crops)

    def normalise(self, crops: np.ndarray) -> torch.Tensor:
        """Float tensor [n, C, S, S] from prepared uint8 crops (default: grey x/255; RGB ImageNet norm)."""
        import torch

        x = torch.from_numpy(crops).float().div_(255.0)
        if self.grey:
            return x.unsqueeze(1)
        mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        return (x.permute(0, 3, 1, 2) - mean) / std

    def encode(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Embeddings float32 [N, embed_dim] and logits float32 [N, C] (None without a head)."""
        import torch

        crops = self._prepare(crops)
        embs: list[np.ndarray] = []
        logits: list[np.ndarray] = []
        with torch.no_grad():
            for start in range(0, len(crops), max(1, int(self.batch_size))):
                emb, logit = self.forward(self.normalise(crops[start : start + self.batch_size]))
                embs.append(emb.float().cpu().numpy())
                if logit is not None:
                    logits.append(logit.float().cpu().numpy())
        n_cls = len(self.classes) if self.classes else 0
        emb_out = np.concatenate(embs) if embs else np.zeros((0, self.embed_dim), np.float32)
        if self.classes is None:
            return emb_out.astype(np.float32, copy=False), None
        logit_out = np.concatenate(logits) if logits else np.zeros((0, n_cls), np.float32)
        return emb_out.astype(np.float32, copy=False), logit_out.astype(np.float32, copy=False)


def _convert_channels(crops: np.ndarray, grey: bool) -> np.ndarray:
    if grey and crops.ndim == 4:
        w = np.array([0.299, 0.587, 0.114], np.float32)  # ITU-R BT.601, as cv2.COLOR_RGB2GRAY
        return np.clip(np.rint(crops.astype(np.float32) @ w), 0, 255).astype(np.uint8)
    if not grey and crops.ndim == 3:
        return np.repeat(crops[..., None], 3, axis=3)
    return crops


_SHA_CACHE: dict[tuple[str, int, int], str] = {}


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes (remembered per path, size and mtime; `DataError` if unreadable)."""
    path = Path(path)
    try:
        st = path.stat()
        key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
        if key not in _SHA_CACHE:
            h = hashlib.sha256()
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
            _SHA_CACHE[key] = h.hexdigest()
        return _SHA_CACHE[key]
    except OSError as exc:
        raise DataError(path, f"cannot read weights: {exc.strerror or exc}") from exc


def read_state_dict(path: str | Path) -> dict[str, Any]:
    """Tensors of a weights file: ``.safetensors``, or ``.pth`` / ``.pt`` / ``.bin`` read with
    ``torch.load(weights_only=True)`` (nothing is unpickled). A checkpoint dict holding a
    ``state_dict`` / ``model`` entry gives that entry. `DataError` naming the file otherwise."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise DataError(path, "weights file not found")
    suffix = path.suffix.lower()
    try:
        if suffix == ".safetensors":
            from safetensors.torch import load_file

            state: Any = load_file(str(path))
        elif suffix in (".pth", ".pt", ".bin", ".ckpt"):
            state = torch.load(path, map_location="cpu", weights_only=True)
        else:
            raise DataError(path, f"unknown weights format {suffix!r}; use .safetensors, .pth or .pt")
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001 - any reader failure is a bad file
        raise DataError(path, f"cannot read weights: {type(exc).__name__}: {exc}") from exc
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise DataError(path, "not a state dict (a mapping of parameter names to tensors)")
    return state


def load_checked(net: Any, state: dict[str, Any], path: str | Path, optional: tuple[str, ...] = ()) -> list[str]:
    """Load ``state`` into ``net`` strictly; keys starting with one of ``optional`` (and BatchNorm
    ``num_batches_tracked`` counters) may be missing.

    Returns the missing optional keys. Raises `DataError` naming ``path`` and a few missing or
    unexpected keys, or the first tensors whose shapes differ.
    """
    import torch

    own = net.state_dict()
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in own]
    bad_missing = [k for k in missing if not (optional and k.startswith(optional))]
    if bad_missing or unexpected:
        parts = []
        if bad_missing:
            parts.append(f"{len(bad_missing)} missing keys (e.g. {', '.join(bad_missing[:4])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (e.g. {', '.join(unexpected[:4])})")
        raise DataError(path, f"weights do not fit {type(net).__name__}: " + "; ".join(parts))
    shapes = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(v.shape)}"
        for k, v in own.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    if shapes:
        raise DataError(path, f"weights do not fit {type(net).__name__}: shape mismatch " + "; ".join(shapes[:3]))
    with torch.no_grad():
        net.load_state_dict({k: torch.as_tensor(v) for k, v in state.items()}, strict=False)
    return missing


_ENCODERS: Registry[type[FaceEncoder]] = Registry("face encoder", "unknown face encoder", "choose one of")
_LOADED = False


def register_face_encoder(cls: type[FaceEncoder]) -> type[FaceEncoder]:
    """Class decorator: register a `FaceEncoder` subclass under its ``name``."""
    if not (isinstance(cls, type) and issubclass(cls, FaceEncoder)):
        raise TypeError(f"register_face_encoder takes a FaceEncoder subclass, got {cls!r}")
    _ENCODERS.add(cls.name, cls)
    return cls


def _load_builtins() -> None:
    """Import every public module of this package once (each registers its encoders)."""
    global _LOADED
    if _LOADED:
        return
    package = importlib.import_module(__package__ or "emofuse.faces.encoders")
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if not info.name.startswith("_") and info.name != "base":
            importlib.import_module(f"{package.__name__}.{info.name}")
    _LOADED = True


def get_face_encoder(name: str | dict[str, Any], **cfg: Any) -> FaceEncoder:
    """An encoder by name with its settings (``cfg``), or from a config dict ``{"name": ..., **cfg}``.

    Raises:
        ConfigError: unknown name (listing the known ones) or an unknown setting.
        DataError: a weights file that is missing or unusable (names the file).
    """
    _load_builtins()
    return _ENCODERS.build(name, **cfg)


def list_face_encoders() -> list[str]:
    """Names of the registered face encoders."""
    _load_builtins()
    return _ENCODERS.names()
