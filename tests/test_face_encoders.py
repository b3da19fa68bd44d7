"""Face encoders (#12 item 3): the registry and base class, the mini-Xception port against Keras,
EfficientNet-Lite0 features, and the torchvision-style ResNet-18 / MobileNetV2 weight loading."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import torch

from emofuse.errors import ConfigError, DataError
from emofuse.faces.encoders import FER_CLASSES, FaceEncoder, get_face_encoder, list_face_encoders, register_face_encoder

REFERENCE = Path(__file__).parent / "data" / "mini_xception_keras_reference.npz"


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


# -- registry and base class ---------------------------------------------------------------------


def test_registry_lists_the_built_in_encoders():
    names = list_face_encoders()
    for name in ("mini_xception", "efficientnet_lite0", "resnet18", "mobilenet_v2"):
        assert name in names
    with pytest.raises(ConfigError, match="unknown face encoder 'nope'.*mini_xception"):
        get_face_encoder("nope")
    with pytest.raises(ConfigError, match="bad settings"):
        get_face_encoder("mini_xception", colour=True)
    assert FER_CLASSES == ("angry", "disgust", "fearful", "happy", "sad", "surprised", "neutral")


@register_face_encoder
class _MeanEncoder(FaceEncoder):
    """A test encoder: the embedding is the mean of the normalised crop per channel, plus the batch size."""

    name: ClassVar[str] = "test_mean_encoder"
    input_size = 8
    embed_dim = 2
    classes = ("a", "b")

    def __init__(self, grey: bool = True, batch_size: int = 3) -> None:
        self.grey, self.batch_size, self.calls = grey, batch_size, []

    def forward(self, x):
        self.calls.append(x.shape)
        emb = torch.stack([x.mean(dim=(1, 2, 3)), torch.full((len(x),), float(x.shape[1]))], dim=1)
        return emb, -emb


def test_base_encode_batches_resizes_and_converts():
    enc = get_face_encoder({"name": "test_mean_encoder", "batch_size": 3})
    crops = np.random.default_rng(0).integers(0, 256, (7, 8, 8), dtype=np.uint8)
    emb, logits = enc.encode(crops)
    assert emb.dtype == np.float32 and emb.shape == (7, 2) and logits.shape == (7, 2)
    assert [c[0] for c in enc.calls] == [3, 3, 1]  # batches of batch_size
    np.testing.assert_allclose(emb[:, 0], crops.reshape(7, -1).mean(1) / 255.0, rtol=1e-5)
    assert enc.encode(np.zeros((0, 8, 8), np.uint8))[0].shape == (0, 2)
    # other sizes are resized; RGB crops become grey for a grey encoder (and grey -> RGB otherwise)
    big = np.full((2, 32, 20, 3), 100, np.uint8)
    assert np.allclose(enc.encode(big)[0][:, 0], 100 / 255.0, atol=1e-3)
    assert enc.calls[-1] == (2, 1, 8, 8)
    rgb = _MeanEncoder(grey=False)
    rgb.encode(np.full((1, 8, 8), 7, np.uint8))
    assert rgb.calls[-1] == (1, 3, 8, 8)
    with pytest.raises(ConfigError, match="uint8"):
        enc.encode(crops.astype(np.float32))
    with pytest.raises(ConfigError, match=r"\[N, S, S\]"):
        enc.encode(np.zeros((8, 8), np.uint8))
    assert enc.identity() == {"name": "test_mean_encoder", "weights_sha256": None}


# -- mini-Xception -------------------------------------------------------------------------------


def test_mini_xception_agrees_with_keras_reference():
    """Probabilities of the port equal the stored Keras forward pass (scripts/make_mini_xception_reference.py)."""
    ref = np.load(REFERENCE, allow_pickle=False)
    enc = get_face_encoder("mini_xception")
    emb, logits = enc.encode(ref["faces"])
    assert emb.shape == (8, 128) and logits.shape == (8, 7) and enc.classes == FER_CLASSES
    assert np.abs(_softmax(logits.astype(np.float64)) - ref["probs"]).max() < 1e-4
    assert len(set(ref["probs"].argmax(1).tolist())) >= 3  # the faces are not all one class


def _keras_weights(state: dict[str, np.ndarray], prefix: str, kind: str) -> dict[str, np.ndarray]:
    """The port's weights of one layer in Keras layout (the inverse of the converter)."""
    if kind == "Conv2D":
        w = {"kernel": state[f"{prefix}.weight"].transpose(2, 3, 1, 0)}
        if f"{prefix}.bias" in state:
            w["bias"] = state[f"{prefix}.bias"]
        return w
    if kind == "SeparableConv2D":
        return {"depthwise_kernel": state[f"{prefix}.depthwise.weight"].transpose(2, 3, 0, 1),
                "pointwise_kernel": state[f"{prefix}.pointwise.weight"].transpose(2, 3, 1, 0)}
    return {"gamma": state[f"{prefix}.weight"], "beta": state[f"{prefix}.bias"],
            "moving_mean": state[f"{prefix}.running_mean"], "moving_variance": state[f"{prefix}.running_var"]}


def _port_layers() -> list[tuple[str, str, dict[str, np.ndarray]]]:
    from emofuse.faces.encoders.mini_xception import MiniXceptionNet, _torch_layers

    state = {k: v.numpy() for k, v in get_face_encoder("mini_xception").net.state_dict().items()}
    return [(p, k, _keras_weights(state, p, k)) for p, k in _torch_layers(MiniXceptionNet())]


def _keras_h5_from_port(path: Path, drop: str | None = None) -> None:
    """Write the shipped weights back into a Keras-2 HDF5 weights layout (layer groups in model order)."""
    import h5py

    counters: dict[str, int] = {}
    with h5py.File(path, "w") as f:
        root = f.create_group("model_weights")
        names = []
        for _, kind, w in _port_layers():
            counters[kind] = counters.get(kind, 0) + 1
            name = f"{kind.lower()}_{counters[kind]}"
            if name == drop:
                continue
            names.append(name)
            group = root.create_group(name)
            group.attrs["weight_names"] = [f"{name}_1/{k}:0".encode() for k in w]
            for k, v in w.items():
                group.create_dataset(f"{name}_1/{k}:0", data=v)
        root.attrs["layer_names"] = [n.encode() for n in names]
        f.attrs["model_config"] = json.dumps({"class_name": "Model", "config": {"layers": []}})


def test_mini_xception_reads_keras_hdf5_and_fingerprints_weights(tmp_path):
    h5 = tmp_path / "emotion_model.hdf5"
    _keras_h5_from_port(h5)
    faces = np.load(REFERENCE, allow_pickle=False)["faces"]
    shipped = get_face_encoder("mini_xception")
    from_h5 = get_face_encoder("mini_xception", weights=str(h5))
    for a, b in zip(shipped.encode(faces), from_h5.encode(faces)):
        np.testing.assert_array_equal(a, b)
    assert from_h5.identity()["weights_sha256"] != shipped.identity()["weights_sha256"]
    copy = tmp_path / "moved.hdf5"
    shutil.copy(h5, copy)
    assert get_face_encoder("mini_xception", weights=copy).identity() == from_h5.identity()

    broken = tmp_path / "broken.hdf5"
    _keras_h5_from_port(broken, drop="batchnormalization_3")
    with pytest.raises(DataError, match="broken.hdf5.*not the mini-Xception architecture"):
        get_face_encoder("mini_xception", weights=broken)
    with pytest.raises(DataError, match="missing.hdf5.*not found"):
        get_face_encoder("mini_xception", weights=tmp_path / "missing.hdf5")


def test_mini_xception_against_live_keras():
    """When Keras 3 is importable: rebuild the Keras mini-Xception, give it the port's weights, and
    compare its softmax output with the port's on the reference faces."""
    keras = pytest.importorskip("keras")
    from keras import layers

    made: list = []  # weighted layers in creation order = the port's layer order

    def conv_bn(conv, x, relu: bool = False):
        made.extend([conv, layers.BatchNormalization()])
        y = made[-1](conv(x))
        return layers.Activation("relu")(y) if relu else y

    def block(x, filters):
        y = conv_bn(layers.SeparableConv2D(filters, 3, padding="same", use_bias=False), x, relu=True)
        y = conv_bn(layers.SeparableConv2D(filters, 3, padding="same", use_bias=False), y)
        res = conv_bn(layers.Conv2D(filters, 1, strides=2, padding="same", use_bias=False), x)
        return layers.add([layers.MaxPooling2D(3, strides=2, padding="same")(y), res])

    inp = keras.Input((64, 64, 1))
    x = inp
    for _ in range(2):
        x = conv_bn(layers.Conv2D(8, 3, use_bias=False), x, relu=True)
    for filters in (16, 32, 64, 128):
        x = block(x, filters)
    made.append(layers.Conv2D(7, 3, padding="same"))
    x = layers.GlobalAveragePooling2D()(made[-1](x))
    model = keras.Model(inp, layers.Activation("softmax")(x))
    port = _port_layers()
    assert len(made) == len(port)
    for layer, (_, kind, w) in zip(made, port):
        assert type(layer).__name__ == kind
        layer.set_weights([w[v.name.split("/")[-1].split(":")[0]] for v in layer.weights])
    faces = np.load(REFERENCE, allow_pickle=False)["faces"]
    keras_probs = np.asarray(model.predict(((faces / 255.0 - 0.5) * 2.0)[..., None].astype(np.float32), verbose=0))
    port_probs = _softmax(get_face_encoder("mini_xception").encode(faces)[1].astype(np.float64))
    assert np.abs(port_probs - keras_probs).max() < 1e-4


@pytest.mark.realdata
def test_mini_xception_fer2013_public_test_accuracy(data_root_dir):
    """On the first 500 FER2013 PublicTest faces the port is well above chance (~0.65 on the full set)."""
    path = data_root_dir / "fer2013" / "fer2013.npz"
    if not path.is_file():
        pytest.skip(f"real data missing: FER2013 not found at {path}")
    with np.load(path, allow_pickle=False) as data:
        public = data["usage"].astype(str) == "PublicTest"
        images, labels = data["images"][public][:500], data["labels"][public][:500]
    _, logits = get_face_encoder("mini_xception").encode(images)
    assert (logits.argmax(1) == labels).mean() > 0.5


# -- EfficientNet-Lite0 --------------------------------------------------------------------------


def test_efficientnet_lite0_gives_imagenet_features(tmp_path):
    enc = get_face_encoder("efficientnet_lite0")
    faces = np.random.default_rng(1).integers(0, 256, (2, 224, 224, 3), dtype=np.uint8)
    emb, logits = enc.encode(faces)
    assert emb.shape == (2, 1280) and emb.dtype == np.float32 and logits is None and np.isfinite(emb).all()
    # ImageNet normalisation, then the pooled last feature map
    mean, std = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    x = (torch.from_numpy(faces).float().permute(0, 3, 1, 2) / 255 - mean) / std
    with torch.no_grad():
        np.testing.assert_allclose(emb, enc.net.extract_features(x).mean(dim=(2, 3)).numpy(), rtol=1e-4, atol=1e-5)
    # the packaged file is the published one (torch-hub names carry the SHA-256 prefix: ...-57934424.pth)
    assert enc.identity()["weights_sha256"].startswith("57934424")
    assert enc.encode(faces[:, ::2, ::2, 0].copy())[0].shape == (2, 1280)  # grey 112x112 crops: resized, repeated
    with pytest.raises(DataError, match="other.pth.*weights file not found"):
        get_face_encoder("efficientnet_lite0", weights=tmp_path / "other.pth")


# -- ResNet-18 / MobileNetV2 ---------------------------------------------------------------------

TORCHVISION = json.loads((Path(__file__).parent / "data" / "torchvision_state_dict_shapes.json").read_text())
BACKBONES = {"resnet18": ("fc.", 512), "mobilenet_v2": ("classifier.1.", 1280)}


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_backbone_parameter_names_are_torchvisions(name):
    head, dim = BACKBONES[name]
    ours = {k: list(v.shape) for k, v in get_face_encoder(name).net.state_dict().items()}
    theirs = TORCHVISION[name]
    assert ours == {k: v for k, v in theirs.items() if not k.startswith(head.split(".")[0])}
    assert theirs[f"{head}weight"] == [1000, dim]


def _faces(n: int = 2, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 224, 224, 3), dtype=np.uint8)


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_backbone_weights_round_trip_through_safetensors_and_pth(name, tmp_path, caplog):
    from safetensors.torch import save_file

    with caplog.at_level("WARNING"):
        random = get_face_encoder(name, seed=3)
    assert "random initialisation" in caplog.text
    faces = _faces()
    emb, logits = random.encode(faces)
    assert emb.shape == (2, BACKBONES[name][1]) and logits is None and random.identity()["seed"] == 3
    np.testing.assert_array_equal(emb, get_face_encoder(name, seed=3).encode(faces)[0])  # seeded
    assert not np.array_equal(emb, get_face_encoder(name, seed=4).encode(faces)[0])
    state = {k: v.contiguous() for k, v in random.net.state_dict().items()}
    save_file(state, str(tmp_path / "w.safetensors"))
    torch.save(state, tmp_path / "w.pth")
    for file in ("w.safetensors", "w.pth"):
        loaded = get_face_encoder(name, weights=tmp_path / file)
        np.testing.assert_array_equal(loaded.encode(faces)[0], emb)
        assert len(loaded.identity()["weights_sha256"]) == 64 and "seed" not in loaded.identity()


def test_backbone_classifier_heads(tmp_path):
    trunk = {k: v.contiguous() for k, v in get_face_encoder("mobilenet_v2").net.state_dict().items()}
    g = torch.Generator().manual_seed(0)

    def save(n_out: int, file: str) -> Path:
        head = {"classifier.1.weight": torch.randn(n_out, 1280, generator=g), "classifier.1.bias": torch.zeros(n_out)}
        torch.save({"state_dict": {**trunk, **head}}, tmp_path / file)  # a checkpoint dict holding the state dict
        return tmp_path / file

    fer = get_face_encoder("mobilenet_v2", weights=save(7, "fer.pth"))
    emb, logits = fer.encode(_faces(1))
    assert fer.classes == FER_CLASSES and logits.shape == (1, 7)
    np.testing.assert_allclose(logits, fer.head(torch.from_numpy(emb)).detach().numpy(), rtol=1e-5, atol=1e-5)
    imagenet = get_face_encoder("mobilenet_v2", weights=save(1000, "imagenet.pth"))
    assert imagenet.classes is None and imagenet.encode(_faces(1))[1] is None
    with pytest.raises(DataError, match="five.pth.*5 outputs but 7 classes"):
        get_face_encoder("mobilenet_v2", weights=save(5, "five.pth"))
    five = get_face_encoder("mobilenet_v2", weights=tmp_path / "five.pth", classes=list("abcde"))
    assert five.classes == tuple("abcde") and five.identity()["classes"] == list("abcde")


def test_backbone_bad_weight_files_name_the_file_and_the_problem(tmp_path):
    from safetensors.torch import save_file

    mobilenet = {k: v.contiguous() for k, v in get_face_encoder("mobilenet_v2").net.state_dict().items()}
    save_file(mobilenet, str(tmp_path / "mobilenet.safetensors"))
    with pytest.raises(DataError, match=r"mobilenet.safetensors.*missing keys \(e.g. conv1.weight.*unexpected keys"):
        get_face_encoder("resnet18", weights=tmp_path / "mobilenet.safetensors")
    resnet = {k: v.contiguous() for k, v in get_face_encoder("resnet18").net.state_dict().items()}
    resnet["layer1.0.conv1.weight"] = torch.zeros(64, 64, 1, 1)
    save_file(resnet, str(tmp_path / "shape.safetensors"))
    with pytest.raises(DataError, match=r"shape.safetensors.*shape mismatch layer1.0.conv1.weight: file \(64, 64, 1, 1"):
        get_face_encoder("resnet18", weights=tmp_path / "shape.safetensors")
    with pytest.raises(DataError, match="nowhere.pth.*not found"):
        get_face_encoder("resnet18", weights=tmp_path / "nowhere.pth")
    (tmp_path / "text.pth").write_text("not a checkpoint")
    with pytest.raises(DataError, match="text.pth.*cannot read weights"):
        get_face_encoder("resnet18", weights=tmp_path / "text.pth")
    torch.save({"conv1.weight": "a string"}, tmp_path / "strings.pth")
    with pytest.raises(DataError, match="strings.pth.*not a state dict"):
        get_face_encoder("resnet18", weights=tmp_path / "strings.pth")
    (tmp_path / "w.onnx").write_bytes(b"x")
    with pytest.raises(DataError, match="w.onnx.*unknown weights format"):
        get_face_encoder("resnet18", weights=tmp_path / "w.onnx")
