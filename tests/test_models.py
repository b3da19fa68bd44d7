"""One test suite parametrized over every registered model (the timm pattern)."""

from __future__ import annotations

import itertools

import pytest
import torch

from emofuse.models import create_model, list_models
from emofuse.models.registry import _REGISTRY

NUM_CLASSES = 5


def _spec(name: str) -> tuple[dict[str, int], dict[str, int], dict]:
    cls = _REGISTRY[name]
    dims = dict(getattr(cls, "test_input_dims", {"audio": 12, "face": 7}))
    lens = dict(getattr(cls, "test_seq_lens", {}))
    kwargs = dict(getattr(cls, "test_kwargs", {}))
    return dims, lens, kwargs


def _batch(dims, lens, batch_size, seed=0, drop=()):
    g = torch.Generator().manual_seed(seed)
    inputs, masks = {}, {}
    for m, d in dims.items():
        t = lens.get(m, 6)
        inputs[m] = torch.randn(batch_size, t, d, generator=g)
        mask = torch.ones(batch_size, t, dtype=torch.bool)
        if t > 2 and batch_size > 1:
            mask[1, t // 2:] = False  # ragged lengths
        if m in drop:
            mask[:] = False
            inputs[m] = torch.zeros_like(inputs[m])
        masks[m] = mask
    return inputs, masks


def _make(name):
    dims, lens, kwargs = _spec(name)
    torch.manual_seed(0)
    return create_model(name, num_classes=NUM_CLASSES, input_dims=dims, **kwargs), dims, lens


MODELS = list_models()


def test_registry_not_empty():
    assert len(MODELS) >= 3


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("batch_size", [1, 3])
def test_forward_shape_and_finite(name, batch_size):
    model, dims, lens = _make(name)
    model.eval()
    out = model(*_batch(dims, lens, batch_size))
    assert out.logits.shape == (batch_size, NUM_CLASSES)
    assert torch.isfinite(out.logits).all()
    for key, value in out.explanations.items():
        assert value.shape[0] == batch_size, key
        assert torch.isfinite(value).all(), key


@pytest.mark.parametrize("name", MODELS)
def test_every_parameter_gets_gradient(name):
    model, dims, lens = _make(name)
    model.train()
    out = model(*_batch(dims, lens, 3))
    loss = torch.nn.functional.cross_entropy(out.logits, torch.tensor([0, 1, 2]))
    loss = loss + sum(out.aux_losses.values(), torch.zeros(()))
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and (p.grad is None or not torch.isfinite(p.grad).all() or p.grad.abs().sum() == 0)]
    assert not missing, f"parameters without gradient: {missing}"


@pytest.mark.parametrize("name", MODELS)
def test_every_modality_subset(name):
    model, dims, lens = _make(name)
    model.eval()
    mods = list(dims)
    outputs = {}
    for r in range(0, len(mods)):
        for dropped in itertools.combinations(mods, r):
            if len(dropped) == len(mods):
                continue
            out = model(*_batch(dims, lens, 3, drop=dropped))
            assert torch.isfinite(out.logits).all(), f"{name} non-finite with {dropped} absent"
            outputs[dropped] = out.logits
    # every modality counts: dropping any of them changes the logits (the absence is seen, not ignored)
    full = outputs.pop(())
    for dropped, logits in outputs.items():
        assert not torch.allclose(logits, full, atol=1e-6), f"{name}: same logits with {dropped} absent"


@pytest.mark.parametrize("name", MODELS)
def test_absent_modality_does_not_leak(name):
    """Values under an all-False mask must not change the output: for every modality, absent from
    the whole batch or from one sample only (the other samples' logits must not move either)."""
    model, dims, lens = _make(name)
    model.eval()
    if len(dims) < 2:
        pytest.skip("single-modality model")
    g = torch.Generator().manual_seed(1)
    for m in dims:
        inputs, masks = _batch(dims, lens, 2, drop=(m,))
        out1 = model(inputs, masks).logits
        inputs[m] = torch.randn(inputs[m].shape, generator=g) * 10
        torch.testing.assert_close(model(inputs, masks).logits, out1, msg=f"{name}: absent {m} leaks")
        inputs, masks = _batch(dims, lens, 3)
        masks[m][0] = False  # absent for sample 0 only
        out1 = model(inputs, masks).logits
        inputs[m][0] = torch.randn(inputs[m][0].shape, generator=g) * 10
        torch.testing.assert_close(model(inputs, masks).logits, out1,
                                   msg=f"{name}: {m} absent from one sample leaks")


@pytest.mark.parametrize("name", MODELS)
def test_eval_is_deterministic(name):
    model, dims, lens = _make(name)
    model.eval()
    batch = _batch(dims, lens, 3, seed=1)
    torch.testing.assert_close(model(*batch).logits, model(*batch).logits)
    model2, _, _ = _make(name)
    model2.eval()
    torch.testing.assert_close(model(*batch).logits, model2(*batch).logits)


@pytest.mark.parametrize("name", MODELS)
def test_checkpoint_round_trip(name, tmp_path):
    from emofuse.inference.checkpoint import load_checkpoint, save_checkpoint

    model, dims, lens = _make(name)
    model.eval()
    batch = _batch(dims, lens, 3, seed=2)
    save_checkpoint(tmp_path / "ckpt", model, labels=[f"c{i}" for i in range(NUM_CLASSES)], features={m: {"name": "test"} for m in dims})
    loaded = load_checkpoint(tmp_path / "ckpt")
    loaded.model.eval()
    torch.testing.assert_close(model(*batch).logits, loaded.model(*batch).logits)
    assert loaded.labels == [f"c{i}" for i in range(NUM_CLASSES)]
