"""`emofuse train-face` on a small synthetic FER2013-format file: augmentation, training, epoch choice on
PublicTest, saved weights, resume, and the errors of a bad file."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from emofuse.data.fer2013 import FER_LABELS, load_fer2013
from emofuse.errors import DataError
from emofuse.training.face import (FaceTrainConfig, augment_batch, crop_theta, random_erase, to_network_input,
                                   train_face)


def synthetic_fer(path, per_class=(40, 12, 12), seed=0):
    """A FER2013-format npz whose class k is a bright bar at a class-specific height, with noise."""
    rng = np.random.default_rng(seed)
    images, labels, usage = [], [], []
    for part, n in zip(("Training", "PublicTest", "PrivateTest"), per_class):
        for k in range(len(FER_LABELS)):
            for _ in range(n):
                img = rng.normal(100, 20, (48, 48))
                row = 6 + 5 * k
                img[row:row + 4, 8:40] += 120
                images.append(np.clip(img, 0, 255).astype(np.uint8))
                labels.append(k)
                usage.append(part)
    np.savez_compressed(path, images=np.stack(images), labels=np.array(labels, np.int8),
                        label_names=np.array(FER_LABELS), usage=np.array(usage))
    return path


def test_centre_crop_theta_takes_the_middle_40_pixels():
    images = torch.from_numpy(np.random.default_rng(1).integers(0, 255, (2, 48, 48), dtype=np.uint8))
    out = to_network_input(images, crop_theta(2))
    x = images.float()
    ref = (x - x.mean((1, 2), keepdim=True)) / x.std((1, 2), keepdim=True)
    assert out.shape == (2, 1, 40, 40)
    assert torch.allclose(out[:, 0], ref[:, 4:44, 4:44], atol=1e-4)
    mirrored = to_network_input(images, crop_theta(2, mirror=torch.ones(2, dtype=torch.bool)))
    assert torch.allclose(mirrored, out.flip(-1), atol=1e-4)


def test_augmentation_changes_crops_and_erasing_zeroes_a_rectangle():
    images = torch.from_numpy(np.random.default_rng(2).integers(1, 255, (8, 48, 48), dtype=np.uint8))
    cfg = FaceTrainConfig()
    a = augment_batch(images, cfg, torch.Generator().manual_seed(0))
    b = augment_batch(images, cfg, torch.Generator().manual_seed(1))
    assert a.shape == (8, 1, 40, 40) and not torch.allclose(a, b)
    x = torch.ones(16, 1, 40, 40)
    erased = random_erase(x, 1.0, torch.Generator().manual_seed(0))
    zeros = (erased == 0).sum(dim=(1, 2, 3))
    assert (zeros >= 1).all() and (zeros <= 0.26 * 1600).all()
    rows = (erased[:, 0] == 0).any(-1).sum(-1)
    cols = (erased[:, 0] == 0).any(-2).sum(-1)
    assert torch.equal(zeros, rows * cols)  # one axis-aligned rectangle per crop
    assert torch.equal(random_erase(x, 0.0), x)


def test_train_face_learns_saves_and_resumes(tmp_path):
    data = synthetic_fer(tmp_path / "fer.npz")
    import lightning

    class Interrupt(lightning.Callback):
        def on_train_epoch_end(self, trainer, module):
            if trainer.current_epoch == 1:
                raise KeyboardInterrupt  # as a user's Ctrl-C; epoch 0 is saved, epoch 1 is not

    def settings():
        return FaceTrainConfig(max_epochs=4, batch_size=32, widths=(8, 16, 32, 32), lr=5e-3, max_rotation_deg=5)

    with pytest.raises((KeyboardInterrupt, SystemExit)):
        train_face(tmp_path / "out", data, settings(), progress=False, callbacks=(Interrupt(),))
    assert (tmp_path / "out" / "work" / "last.ckpt").is_file()
    assert not (tmp_path / "out" / "model.safetensors").exists()
    cfg = settings()
    result = train_face(tmp_path / "out", data, cfg, progress=False)
    assert [row["epoch"] for row in cfg.history] == [1, 2, 3]  # resumed after the saved epoch 0
    assert result.public_test_acc > 0.6  # chance is 1/7
    assert 0 < result.private_test_acc <= 1
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert config["classes"] == list(FER_LABELS) and config["best_epoch"] == result.best_epoch
    assert config["public_test_acc"] == pytest.approx(result.public_test_acc)
    card = (tmp_path / "out" / "MODEL_CARD.md").read_text()
    assert "research-only" in card and f"{result.private_test_acc:.4f}" in card
    from safetensors.torch import load_file

    weights = load_file(str(tmp_path / "out" / "model.safetensors"))
    assert weights["head.1.weight"].shape == (7, 32)


def test_resume_with_other_settings_is_refused(tmp_path):
    from emofuse.errors import ConfigError
    from emofuse.training.face import check_resume_settings

    check_resume_settings(tmp_path, FaceTrainConfig(max_epochs=3), resuming=False)
    check_resume_settings(tmp_path, FaceTrainConfig(max_epochs=3), resuming=True)
    with pytest.raises(ConfigError, match="max_epochs"):
        check_resume_settings(tmp_path, FaceTrainConfig(max_epochs=5), resuming=True)


def test_bad_fer_file_is_named(tmp_path):
    bad = tmp_path / "fer.npz"
    np.savez(bad, images=np.zeros((3, 32, 32), np.uint8), labels=np.zeros(3, np.int8), usage=np.array(["Training"] * 3))
    with pytest.raises(DataError, match="48, 48") as err:
        load_fer2013(bad)
    assert str(bad) in str(err.value)
    with pytest.raises(DataError, match="not found"):
        load_fer2013(tmp_path / "missing.npz")


def test_init_starts_from_earlier_weights(tmp_path):
    data = synthetic_fer(tmp_path / "fer.npz")

    def cfg(**kw):
        return FaceTrainConfig(max_epochs=2, batch_size=32, widths=(8, 16, 32, 32), lr=5e-3, max_rotation_deg=5, **kw)

    first = train_face(tmp_path / "a", data, cfg(), progress=False)
    from safetensors.torch import load_file

    from emofuse.faces.encoders.fer_cnn_net import FerCNN
    from emofuse.training.face import load_initial_weights

    net = FerCNN(7, (8, 16, 32, 32))
    load_initial_weights(net, tmp_path / "a")
    saved = load_file(str(tmp_path / "a" / "model.safetensors"))
    assert all(torch.equal(v, saved[k]) for k, v in net.state_dict().items())
    frozen = dict(max_epochs=1, batch_size=32, widths=(8, 16, 32, 32), lr=1e-9)  # the weights barely move
    warm, cold = FaceTrainConfig(init=str(tmp_path / "a"), **frozen), FaceTrainConfig(**frozen)
    train_face(tmp_path / "b", data, warm, progress=False)
    train_face(tmp_path / "c", data, cold, progress=False)
    conv = [k for k, v in saved.items() if v.ndim == 4]  # conv kernels: BatchNorm statistics still move
    after_warm = load_file(str(tmp_path / "b" / "model.safetensors"))
    after_cold = load_file(str(tmp_path / "c" / "model.safetensors"))
    assert all(torch.allclose(after_warm[k], saved[k], atol=1e-5) for k in conv)
    assert not any(torch.allclose(after_cold[k], saved[k], atol=1e-2) for k in conv)
    with pytest.raises(DataError, match="no fer_cnn weights"):
        load_initial_weights(net, tmp_path / "missing")
    with pytest.raises(DataError, match="another architecture"):
        load_initial_weights(FerCNN(7, (4, 8, 16, 16)), tmp_path / "a")
