"""Every fusion design that reads a face runs on real-shaped face sequences (#12 item 4).

Face sequences are ``[B, T, 64]`` per-frame face embeddings where frames without a face are masked
(`emofuse.training.data.collate` turns the extractor's NaN rows into mask False): the mask has holes
inside a clip, not only padding at its end, and a clip may have no face at all. For each registered
model that accepts ``face`` (with the other modalities it needs), the test checks finite logits and
gradients, that the values at masked frames never reach the output, and that a clip without any
face gives what the model gives with the face modality absent.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from emofuse.errors import ConfigError
from emofuse.models import create_model, list_models
from emofuse.models.registry import _REGISTRY

FACE_DIM, FACE_T, AUDIO_DIM = 64, 8, 384
NUM_CLASSES = 5
#: models whose design has no face input (they are built for other modality pairs)
NO_FACE = {"text_audio_attention"}
ATOL = 1e-5


#: further settings under test: ``model[variant]`` -> model_kwargs added to the model's test ones
VARIANTS = {"tfn[face_lstm]": {"sequence_subnet": ["text", "face"]}}


def _setup(name: str) -> tuple[dict[str, int], dict[str, int], dict]:
    """Input sizes (face 64, audio 384, other modalities at the model's test sizes), sequence
    lengths and small hyper-parameters; a face given as a vector in the model's tests is a sequence here."""
    cls = _REGISTRY[name.split("[")[0]]
    dims = dict(getattr(cls, "test_input_dims", {"audio": 12, "face": 7}))
    dims.update(face=FACE_DIM, **({"audio": AUDIO_DIM} if "audio" in dims else {}))
    lens = {m: getattr(cls, "test_seq_lens", {}).get(m, 6) for m in dims}
    lens["face"] = FACE_T
    kwargs = dict(getattr(cls, "test_kwargs", {}))
    if "vector_modalities" in kwargs:
        kwargs["vector_modalities"] = [m for m in kwargs["vector_modalities"] if m != "face"]
    return dims, lens, {**kwargs, **VARIANTS.get(name, {})}


def _model(name: str) -> tuple[nn.Module, dict[str, int], dict[str, int]]:
    dims, lens, kwargs = _setup(name)
    torch.manual_seed(0)
    model = create_model(name.split("[")[0], num_classes=NUM_CLASSES, input_dims=dims, **kwargs)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():  # BatchNorm statistics that are not the identity
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.running_mean.copy_(torch.randn(module.running_mean.shape, generator=g))
                module.running_var.copy_(torch.rand(module.running_var.shape, generator=g) + 0.5)
    return model, dims, lens


#: face frames with a face, per sample: all, holes inside, holes and a missing tail, none at all
FACE_VALID = [list(range(FACE_T)), [0, 1, 3, 4, 6, 7], [1, 2, 4], []]


def _batch(dims: dict[str, int], lens: dict[str, int]) -> tuple[dict, dict]:
    """Four clips; masked face frames hold zeros, as `collate` gives them."""
    g = torch.Generator().manual_seed(2)
    inputs, masks = {}, {}
    b = len(FACE_VALID)
    for m, d in dims.items():
        inputs[m] = torch.randn(b, lens[m], d, generator=g)
        masks[m] = torch.ones(b, lens[m], dtype=torch.bool)
    masks["face"] = torch.zeros(b, FACE_T, dtype=torch.bool)
    for i, valid in enumerate(FACE_VALID):
        masks["face"][i, valid] = True
    inputs["face"] = inputs["face"] * masks["face"].unsqueeze(-1)
    return inputs, masks


def _face_models() -> list[str]:
    names = []
    for name in [*list_models(), *VARIANTS]:
        dims, _, kwargs = _setup(name)
        try:
            create_model(name.split("[")[0], num_classes=NUM_CLASSES, input_dims=dims, **kwargs)
        except ConfigError:
            continue
        names.append(name)
    return names


FACE_MODELS = _face_models()


def test_every_model_but_the_text_audio_design_takes_face_sequences():
    assert set(list_models()) - set(FACE_MODELS) == NO_FACE and set(VARIANTS) <= set(FACE_MODELS)


@pytest.mark.parametrize("name", FACE_MODELS)
def test_finite_logits_and_gradients_on_face_sequences(name):
    model, dims, lens = _model(name)
    inputs, masks = _batch(dims, lens)
    model.train()
    out = model(inputs, masks)
    assert out.logits.shape == (len(FACE_VALID), NUM_CLASSES) and torch.isfinite(out.logits).all()
    loss = nn.functional.cross_entropy(out.logits, torch.arange(len(FACE_VALID)) % NUM_CLASSES)
    loss = loss + sum(out.aux_losses.values(), torch.zeros(()))
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads), f"{name}: NaN or infinite gradients"
    model.eval()
    with torch.no_grad():
        assert torch.isfinite(model(inputs, masks).logits).all()


@pytest.mark.parametrize("name", FACE_MODELS)
def test_values_at_masked_face_frames_do_not_reach_the_output(name):
    model, dims, lens = _model(name)
    inputs, masks = _batch(dims, lens)
    model.eval()
    garbage = dict(inputs)
    noise = 10.0 * torch.randn(inputs["face"].shape, generator=torch.Generator().manual_seed(5))
    garbage["face"] = torch.where(masks["face"].unsqueeze(-1), inputs["face"], noise)
    with torch.no_grad():
        reference, changed = model(inputs, masks).logits, model(garbage, masks).logits
    diff = (reference - changed).abs().max().item()
    assert diff <= ATOL, f"{name}: values at masked face frames change the logits by {diff:.2e}"


@pytest.mark.parametrize("name", FACE_MODELS)
def test_a_clip_without_any_face_equals_the_clip_without_the_face_modality(name):
    model, dims, lens = _model(name)
    inputs, masks = _batch(dims, lens)
    model.eval()
    last = len(FACE_VALID) - 1  # the clip in which no frame has a face
    with torch.no_grad():
        batched = model(inputs, masks).logits[last]
        alone_x = {m: x[last:last + 1] for m, x in inputs.items()}
        alone_m = {m: k[last:last + 1] for m, k in masks.items()}
        # the face modality absent, as `collate` gives it for a batch without any face: [1, 1, D] zeros, masked
        alone_x["face"] = torch.zeros(1, 1, FACE_DIM)
        alone_m["face"] = torch.zeros(1, 1, dtype=torch.bool)
        absent = model(alone_x, alone_m).logits[0]
    diff = (batched - absent).abs().max().item()
    assert diff <= ATOL, f"{name}: a clip without faces differs from the clip without the face modality by {diff:.2e}"


@pytest.mark.parametrize("name", FACE_MODELS)
def test_every_face_frame_with_a_face_is_read(name):
    """Masks with holes are not prefixes: a model must read the frames after a hole too (a
    recurrent encoder packing the first ``mask.sum()`` frames would drop them)."""
    model, dims, lens = _model(name)
    inputs, masks = _batch(dims, lens)
    model.eval()
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        reference = model(inputs, masks).logits
        for i, valid in enumerate(FACE_VALID):
            for t in valid:
                moved = dict(inputs)
                moved["face"] = inputs["face"].clone()
                moved["face"][i, t] += 3.0 * torch.randn(FACE_DIM, generator=g)  # not a constant: LayerNorm
                diff = (model(moved, masks).logits[i] - reference[i]).abs().max().item()
                assert diff > 0.0, f"{name}: face frame {t} of clip {i} does not reach the output"
