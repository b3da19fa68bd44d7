"""Training the face-expression CNN (`emofuse.faces.encoders.fer_cnn_net.FerCNN`) on FER2013 with Lightning.

``emofuse train-face --out DIR`` runs `train_face`: the official Training part trains, PublicTest
picks the epoch (highest accuracy; never PrivateTest), and the weights of that epoch are written as
``model.safetensors`` + ``config.json`` (architecture, preprocessing, history, accuracies) + a model
card. Augmentation runs on whole batches on the training device (`augment_batch`): random scale,
rotation, translation and mirror through one affine resampling of each face, then random erasing.
An interrupted run resumes from ``DIR/work/last.ckpt`` (Lightning's checkpoint, read back with
``weights_only=True``: tensors and plain values only, nothing else is unpickled).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import lightning
import numpy as np
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import Tensor
from torch.nn import functional as F

from emofuse.atomic import atomic_write_text
from emofuse.data.fer2013 import FER_LABELS, FerSplit, load_fer2013
from emofuse.faces.encoders.fer_cnn_net import CROP, IMAGE, FerCNN, crop_theta, to_network_input  # noqa: F401


@dataclass
class FaceTrainConfig:
    """Settings of one `train_face` run (all saved in ``config.json``)."""

    max_epochs: int = 30
    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 1e-4
    label_smoothing: float = 0.1
    widths: tuple[int, ...] = (32, 64, 128, 256)
    dropout: float = 0.4
    max_scale: float = 0.15
    max_rotation_deg: float = 15.0
    max_shift: float = 0.1
    erase_prob: float = 0.5
    seed: int = 0
    accelerator: str = "auto"
    precision: str = "auto"
    limit_train: int | None = None  # first N training faces only (smoke tests)
    init: str | None = None  # a fer_cnn folder whose weights start the training (a warm restart)
    history: list[dict[str, float]] = field(default_factory=list, repr=False)


def augment_batch(images: Tensor, cfg: FaceTrainConfig, generator: torch.Generator | None = None) -> Tensor:
    """Randomly scaled, rotated, shifted, mirrored and partly erased training crops [N, 1, 40, 40]."""
    n = images.shape[0]

    def uniform(*shape: int) -> Tensor:
        return torch.rand(*shape, generator=generator) * 2 - 1

    theta = crop_theta(n, 1.0 + cfg.max_scale * uniform(n), math.radians(cfg.max_rotation_deg) * uniform(n),
                       cfg.max_shift * 2 * uniform(n, 2), torch.rand(n, generator=generator) < 0.5)
    x = to_network_input(images, theta)
    return random_erase(x, cfg.erase_prob, generator)


def random_erase(x: Tensor, prob: float, generator: torch.Generator | None = None) -> Tensor:
    """Zero one random rectangle (2–25 % of the area) in each crop with probability ``prob``."""
    n, _, h, w = x.shape
    area = (0.02 + 0.23 * torch.rand(n, generator=generator)) * h * w
    ratio = torch.exp((torch.rand(n, generator=generator) - 0.5) * 2 * math.log(3))
    eh = (area * ratio).sqrt().clamp(1, h).long()
    ew = (area / ratio).sqrt().clamp(1, w).long()
    top = (torch.rand(n, generator=generator) * (h - eh + 1)).long()
    left = (torch.rand(n, generator=generator) * (w - ew + 1)).long()
    rows, cols = torch.arange(h)[None, :, None], torch.arange(w)[None, None, :]
    box = ((rows >= top[:, None, None]) & (rows < (top + eh)[:, None, None])
           & (cols >= left[:, None, None]) & (cols < (left + ew)[:, None, None]))
    box &= (torch.rand(n, generator=generator) < prob)[:, None, None]
    return x.masked_fill(box[:, None].to(x.device), 0.0)


def predict_logits(net: FerCNN, images: Tensor, batch_size: int = 512) -> Tensor:
    """Test-time logits of faces [N, 48, 48]: the mean of the centre crop and its mirror image."""
    outs = []
    device = next(net.parameters()).device
    with torch.no_grad():
        for start in range(0, images.shape[0], batch_size):
            chunk = images[start:start + batch_size].to(device)
            n = chunk.shape[0]
            plain = net(to_network_input(chunk, crop_theta(n)))[1]
            mirrored = net(to_network_input(chunk, crop_theta(n, mirror=torch.ones(n, dtype=torch.bool))))[1]
            outs.append(((plain.float().softmax(-1) + mirrored.float().softmax(-1)) / 2).log().cpu())
    return torch.cat(outs)


class FaceExpressionTask(lightning.LightningModule):
    """Lightning task: cross-entropy with label smoothing on augmented crops; PublicTest accuracy as
    ``val_acc``; AdamW with a one-cycle learning rate."""

    def __init__(self, cfg: FaceTrainConfig, train: FerSplit, val: FerSplit) -> None:
        super().__init__()
        self.cfg = cfg
        self.net = FerCNN(len(FER_LABELS), tuple(cfg.widths), cfg.dropout).to(memory_format=torch.channels_last)
        self.train_images = torch.from_numpy(train.images)
        self.train_labels = torch.from_numpy(train.labels)
        self.val_images = torch.from_numpy(val.images)
        self.val_labels = torch.from_numpy(val.labels)
        self.generator = torch.Generator().manual_seed(cfg.seed)

    def train_dataloader(self) -> torch.utils.data.DataLoader:
        index = torch.arange(self.train_images.shape[0])
        return torch.utils.data.DataLoader(index, batch_size=self.cfg.batch_size, shuffle=True, drop_last=True,
                                           generator=torch.Generator().manual_seed(self.cfg.seed))

    def val_dataloader(self) -> torch.utils.data.DataLoader:
        return torch.utils.data.DataLoader(torch.arange(1), batch_size=1)  # one step scores all of PublicTest

    def training_step(self, index: Tensor, _: int) -> Tensor:
        index = index.cpu()
        x = augment_batch(self.train_images[index], self.cfg, self.generator).to(self.device)
        x = x.contiguous(memory_format=torch.channels_last)  # faster convolutions on CPU and GPU
        y = self.train_labels[index].to(self.device)
        loss = F.cross_entropy(self.net(x)[1], y, label_smoothing=self.cfg.label_smoothing)
        self.log("train_loss", loss, on_step=False, on_epoch=True, batch_size=len(index))
        return loss

    def validation_step(self, _: Tensor, __: int) -> None:
        logits = predict_logits(self.net, self.val_images)
        acc = (logits.argmax(-1) == self.val_labels).float().mean()
        self.log("val_acc", acc, on_step=False, on_epoch=True, batch_size=1)

    def on_validation_epoch_end(self) -> None:
        metrics = self.trainer.callback_metrics
        row = {"epoch": int(self.current_epoch), "val_acc": float(metrics.get("val_acc", float("nan"))),
               "train_loss": float(metrics.get("train_loss", float("nan"))),
               "lr": float(self.trainer.optimizers[0].param_groups[0]["lr"])}
        self.cfg.history.append(row)
        if self.trainer.is_global_zero:
            print(f"epoch {row['epoch']}: val_acc {row['val_acc']:.4f} train_loss {row['train_loss']:.4f}", flush=True)

    def configure_optimizers(self) -> Any:
        opt = torch.optim.AdamW(self.net.parameters(), lr=self.cfg.lr, weight_decay=self.cfg.weight_decay)
        steps = self.cfg.max_epochs * (self.train_images.shape[0] // self.cfg.batch_size)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=self.cfg.lr, total_steps=max(steps, 1),
                                                    pct_start=0.15)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


@dataclass
class FaceTrainResult:
    """Outcome of `train_face`: the output folder, the chosen epoch and the accuracies."""

    out_dir: Path
    best_epoch: int
    public_test_acc: float
    private_test_acc: float
    train_seconds: float


def train_face(out_dir: str | Path, data_root: str | Path | None = None, cfg: FaceTrainConfig | None = None,
               progress: bool = True, callbacks: tuple[lightning.Callback, ...] = ()) -> FaceTrainResult:
    """Train `FerCNN` on FER2013 Training, choose the epoch on PublicTest, write the weights to ``out_dir``
    and score PrivateTest once; resumes from ``out_dir/work/last.ckpt`` when it exists (the settings
    must be the same: `ConfigError` naming ``work/settings.json`` otherwise)."""
    from emofuse.training.config import TrainConfig
    from emofuse.training.fit import build_trainer

    cfg = cfg or FaceTrainConfig()
    out_dir = Path(out_dir)
    work = out_dir / "work"
    splits = load_fer2013(data_root)
    train = splits["Training"]
    if cfg.limit_train:
        train = FerSplit(train.name, train.images[:cfg.limit_train], train.labels[:cfg.limit_train])
    resume = work / "last.ckpt"
    check_resume_settings(work, cfg, resume.is_file())
    lightning.seed_everything(cfg.seed, workers=True, verbose=False)
    task = FaceExpressionTask(cfg, train, splits["PublicTest"])
    if cfg.init and not resume.is_file():
        load_initial_weights(task.net, Path(cfg.init))
    best = ModelCheckpoint(dirpath=work, filename="best", monitor="val_acc", mode="max", save_top_k=1, save_last=True)
    trainer = build_trainer(TrainConfig(max_epochs=cfg.max_epochs, accelerator=cfg.accelerator,
                                        precision=cfg.precision, progress=progress), work, [*callbacks, best],
                            deterministic=False, enable_checkpointing=True)
    started = time.perf_counter()
    trainer.fit(task, ckpt_path=str(resume) if resume.is_file() else None, weights_only=True)
    seconds = time.perf_counter() - started
    state = torch.load(best.best_model_path, map_location="cpu", weights_only=True)["state_dict"]
    task.load_state_dict(state)
    net = task.net.cpu().eval()
    private = splits["PrivateTest"]
    private_acc = float((predict_logits(net, torch.from_numpy(private.images)).argmax(-1).numpy()
                         == private.labels).mean())
    best_epoch = int(torch.load(best.best_model_path, map_location="cpu", weights_only=True)["epoch"])
    result = FaceTrainResult(out_dir, best_epoch, float(best.best_model_score), private_acc, seconds)
    save_face_model(net, cfg, result)
    return result


def load_initial_weights(net: FerCNN, folder: Path) -> None:
    """Start from the weights of a fer_cnn folder (``model.safetensors``) of the same architecture."""
    from safetensors.torch import load_file

    from emofuse.errors import DataError

    file = folder / "model.safetensors"
    if not file.is_file():
        raise DataError(file, "no fer_cnn weights to start from (a folder written by 'emofuse train-face')")
    try:
        net.load_state_dict(load_file(str(file)))
    except (RuntimeError, ValueError) as exc:
        raise DataError(file, f"weights of another architecture than --widths says ({exc})") from None


def check_resume_settings(work: Path, cfg: FaceTrainConfig, resuming: bool) -> None:
    """Record the run's settings in ``work/settings.json``; a resumed run must have the same ones."""
    from emofuse.errors import ConfigError

    settings = {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(cfg).items() if k != "history"}
    path = work / "settings.json"
    if resuming and path.is_file():
        saved = json.loads(path.read_text())
        changed = sorted(k for k in set(saved) | set(settings) if saved.get(k) != settings.get(k))
        if changed:
            raise ConfigError(f"{path}: an interrupted run with other settings ({', '.join(changed)}) is there; "
                              "rerun with the same settings to resume it, or use another --out")
    work.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(settings, indent=2) + "\n")


def save_face_model(net: FerCNN, cfg: FaceTrainConfig, result: FaceTrainResult) -> None:
    """``model.safetensors`` + ``config.json`` in ``result.out_dir`` (atomic writes)."""
    from safetensors.torch import save_file

    out = result.out_dir
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / ".model.safetensors.tmp"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp))
    tmp.replace(out / "model.safetensors")
    settings = {k: v for k, v in asdict(cfg).items() if k != "history"}
    config = {"architecture": "FerCNN", "widths": list(cfg.widths), "dropout": cfg.dropout,
              "classes": list(FER_LABELS), "input": {"size": IMAGE, "grey": True, "crop": CROP,
                                                     "normalisation": "per-image zero mean, unit variance",
                                                     "test_time": "centre crop + mirror, probabilities averaged"},
              "trained_on": "FER2013 Training (28,709 faces); epoch chosen on PublicTest (3,589)",
              "best_epoch": result.best_epoch, "public_test_acc": result.public_test_acc,
              "private_test_acc": result.private_test_acc, "train_seconds": round(result.train_seconds, 1),
              "settings": settings, "history": cfg.history,
              "params": int(sum(p.numel() for p in net.parameters()))}
    atomic_write_text(out / "config.json", json.dumps(config, indent=2) + "\n")
    atomic_write_text(out / "MODEL_CARD.md", model_card(config))


def model_card(config: dict[str, Any]) -> str:
    """The model card of a trained `FerCNN` (what it is, its data and licence, its scores, its limits)."""
    history = config.get("history") or []
    return f"""# fer_cnn — emofuse's face-expression CNN

**What**: a VGG-style CNN (widths {config['widths']}, {config['params']:,} parameters) mapping a 48×48 grey face
to the 7 FER2013 expressions ({', '.join(config['classes'])}) and a {config['widths'][-1]}-value embedding
(global average pool). Input: each face standardised to zero mean and unit variance; the centre 40×40 crop and
its mirror image are averaged. Trained by `emofuse train-face` (`emofuse.training.face`).

**Data**: FER2013 (Goodfellow et al. 2013; ICML 2013 representation-learning challenge). Training part only
(28,709 faces), with random scale, rotation, shift, mirror and erasing. The epoch was chosen on PublicTest
(3,589 faces, validation); PrivateTest (3,589) was scored once, after training.
**FER2013 is research-only data with no open licence, and so are these weights: use them for research.**
The images are web photos; FER2013 has no subject ids (its split is not subject-independent), duplicate
images cross its parts, and its labels are noisy (human agreement is about 65 %).

**Scores** (one training run, seed {config['settings']['seed']}): PublicTest accuracy
{config['public_test_acc']:.4f} (epoch {config['best_epoch']} of {len(history)} run), PrivateTest accuracy
{config['private_test_acc']:.4f}. Training took {config['train_seconds']:.0f} s on the machine named in
docs/benchmarks.md.

**Limits**: trained on posed and spontaneous web faces, mostly frontal, grey and small; it has not been
checked for differences between groups of people. Faces in video are detected, cropped and aligned by
emofuse (`emofuse.faces`) before it sees them; a wrong crop gives a wrong answer. It knows no "calm".
"""


def evaluate_face_split(net: FerCNN, split: FerSplit) -> np.ndarray:
    """Predicted class indices of a FER2013 part (test-time centre crop + mirror)."""
    return predict_logits(net, torch.from_numpy(split.images)).argmax(-1).numpy()
