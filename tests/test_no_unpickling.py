"""Nothing user-loaded is ever unpickled.

Every load path (checkpoint, seed ensemble, feature cache ``.npz``, text cache, transcript cache,
transcript mappings, folds files, manifest face arrays) runs with the unpickling functions replaced
by ones that record the call and raise; pickled files put where a checkpoint or cache file belongs
must be refused (or recomputed), and a malicious pickle's payload must never run. A static scan
keeps `pickle`, `torch.load` without ``weights_only=True`` and ``np.load`` without
``allow_pickle=False`` out of the package.
"""

from __future__ import annotations

import ast
import io
import json
import os
import pickle
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

import emofuse
from emofuse.errors import DataError

SRC = Path(emofuse.__file__).resolve().parent
DEMO = SRC / "assets" / "demo_model"


class Unpickled(BaseException):
    """Raised by the guarded loaders; a BaseException so that broad ``except Exception`` blocks in
    the code under test cannot turn an unpickling attempt into an ordinary error."""


@pytest.fixture
def no_unpickling(monkeypatch):
    """Replace every unpickling entry point; yields the list of attempts (must stay empty)."""
    import torch

    attempts: list[str] = []

    def refuse(what):
        def guarded(*args, **kwargs):
            attempts.append(what)
            raise Unpickled(what)
        return guarded

    real_np_load, real_torch_load = np.load, torch.load

    def np_load(*args, **kwargs):
        if kwargs.get("allow_pickle", False):
            attempts.append("np.load(allow_pickle=True)")
            raise Unpickled("np.load(allow_pickle=True)")
        return real_np_load(*args, **kwargs)

    def torch_load(*args, **kwargs):
        if kwargs.get("weights_only") is not True:
            attempts.append("torch.load without weights_only=True")
            raise Unpickled("torch.load without weights_only=True")
        return real_torch_load(*args, **kwargs)

    monkeypatch.setattr(pickle, "load", refuse("pickle.load"))
    monkeypatch.setattr(pickle, "loads", refuse("pickle.loads"))
    monkeypatch.setattr(pickle, "Unpickler", refuse("pickle.Unpickler"))
    monkeypatch.setattr(np, "load", np_load)
    monkeypatch.setattr(torch, "load", torch_load)
    yield attempts
    assert attempts == [], f"load paths tried to unpickle: {attempts}"


class _Payload:
    """Unpickling this creates ``marker`` (stands for arbitrary code run by a malicious pickle)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (str(self.marker),)


def _evil_bytes(marker: Path) -> bytes:
    return pickle.dumps({"weight": _Payload(marker)})


def _evil_npy(marker: Path) -> bytes:
    buf = io.BytesIO()
    arr = np.empty(1, dtype=object)
    arr[0] = _Payload(marker)
    np.save(buf, arr, allow_pickle=True)
    return buf.getvalue()


@dataclass
class _Extractor:
    """The smallest stand-in a `FeatureCache` needs (name, config, identity, dim)."""

    name: str = "stub"
    dim: int = 3

    def config(self) -> dict:
        return {"d": self.dim}

    def identity(self) -> dict:
        return {}


def _copy_demo(dest: Path) -> Path:
    shutil.copytree(DEMO, dest)
    return dest


# --------------------------------------------------------------------------------------------
# Every load path, run under the guard


def test_checkpoint_and_ensemble_load_without_unpickling(no_unpickling, tmp_path):
    from emofuse.inference.checkpoint import load_checkpoint, load_members, save_ensemble
    from emofuse.inference.predictor import Predictor

    ckpt = load_checkpoint(DEMO)
    assert ckpt.extras, "the demo model carries standardisation statistics (extras.safetensors is read)"
    ens = tmp_path / "ens"
    _copy_demo(ens / "seed_0")
    _copy_demo(ens / "seed_1")
    save_ensemble(ens, ["seed_0", "seed_1"])
    assert len(load_members([ens])) == 2
    assert Predictor(ens).labels == ckpt.labels


def test_cache_and_data_files_load_without_unpickling(no_unpickling, tmp_path):
    from emofuse.inference.asr import cached_transcript
    from emofuse.data.manifest import prepare_manifest
    from emofuse.features.cache import FeatureCache, load_feature_file
    from emofuse.features.text import TextFeatureCache
    from emofuse.inference.predictor import load_transcripts
    from emofuse.data.splits import load_folds

    clip = tmp_path / "clip.wav"
    clip.write_bytes(b"RIFF0000WAVE")
    feats = np.arange(6, dtype=np.float32).reshape(2, 3)
    cache = FeatureCache(tmp_path / "cache", _Extractor())
    cache.put(clip, feats)
    np.testing.assert_array_equal(cache.get(clip), feats)
    text_cache = TextFeatureCache(tmp_path / "cache", _Extractor(name="text"))
    text_cache.put("hello there", feats)
    np.testing.assert_array_equal(text_cache.get("hello there"), feats)
    np.save(tmp_path / "face.npy", feats)
    np.savez(tmp_path / "face.npz", features=feats)
    np.testing.assert_array_equal(load_feature_file(tmp_path / "face.npy"), feats)
    np.testing.assert_array_equal(load_feature_file(tmp_path / "face.npz"), feats)

    class Transcriber:
        def config(self):
            return {"stub": 1}

        def __call__(self, wave, sr):
            return "computed"

    assert cached_transcript(clip, Transcriber(), lambda: np.zeros(16), cache_dir=tmp_path / "cache") == "computed"
    assert cached_transcript(clip, Transcriber(), lambda: 1 / 0, cache_dir=tmp_path / "cache") == "computed"

    (tmp_path / "t.json").write_text(json.dumps({"clip.wav": "hi"}))
    (tmp_path / "t.csv").write_text("file,text\nclip.wav,hi\n")
    assert load_transcripts(tmp_path / "t.json") == {"clip.wav": "hi"} == load_transcripts(tmp_path / "t.csv")

    folds = load_folds("ravdess")
    custom = tmp_path / "folds.json"
    custom.write_text(json.dumps({"dataset": "x", "folds": [{"name": f.name, "train": list(f.train), "val": list(f.val),
                                                             "test": list(f.test)} for f in folds]}))
    assert [f.test for f in load_folds(str(custom))] == [f.test for f in folds]

    (tmp_path / "m.csv").write_text("id,speaker,label,face_npy\na,s1,sad,face.npy\n")
    (sample,) = prepare_manifest(tmp_path / "m.csv")
    np.testing.assert_array_equal(sample.sources["face"], feats)


# --------------------------------------------------------------------------------------------
# Pickles where safetensors / npz / npy belong are refused, and their payload never runs


@pytest.mark.parametrize("victim", ["model.safetensors", "extras.safetensors"])
@pytest.mark.parametrize("kind", ["pickle", "torch.save"])
def test_checkpoint_whose_files_are_pickles_is_refused(no_unpickling, tmp_path, victim, kind):
    import torch

    from emofuse.inference.checkpoint import load_checkpoint

    ckpt = _copy_demo(tmp_path / "ckpt")
    marker = tmp_path / "payload_ran"
    if kind == "pickle":
        (ckpt / victim).write_bytes(_evil_bytes(marker))
    else:  # torch's own zip-of-pickles format, with a payload inside
        torch.save({"weight": _Payload(marker)}, ckpt / victim)
    with pytest.raises(DataError, match=victim.replace(".", r"\.")):
        load_checkpoint(ckpt)
    assert not marker.exists()


def test_ensemble_member_that_is_a_pickle_is_refused(no_unpickling, tmp_path):
    from emofuse.inference.checkpoint import load_members, save_ensemble

    ens = tmp_path / "ens"
    _copy_demo(ens / "seed_0")
    _copy_demo(ens / "seed_1")
    marker = tmp_path / "payload_ran"
    (ens / "seed_1" / "model.safetensors").write_bytes(_evil_bytes(marker))
    save_ensemble(ens, ["seed_0", "seed_1"])
    with pytest.raises(DataError, match="seed_1"):
        load_members([ens])
    assert not marker.exists()


def test_pickled_cache_entries_are_recomputed_not_unpickled(no_unpickling, tmp_path):
    from emofuse.features.cache import CacheWarning, FeatureCache
    from emofuse.features.text import TextFeatureCache

    clip = tmp_path / "clip.wav"
    clip.write_bytes(b"RIFF0000WAVE")
    marker = tmp_path / "payload_ran"
    for cache, key in ((FeatureCache(tmp_path / "c", _Extractor()), clip),
                       (TextFeatureCache(tmp_path / "c", _Extractor(name="text")), "some text")):
        entry = cache.entry_path(key)
        entry.parent.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        np.savez(buf, features=np.array([_Payload(marker)], dtype=object), allow_pickle=True)
        entry.write_bytes(buf.getvalue())
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert cache.get(key) is None
        assert any(issubclass(w.category, CacheWarning) for w in caught)
        assert not entry.exists()
    assert not marker.exists()


@pytest.mark.parametrize("name", ["face.npy", "face.npz", "face.pkl"])
def test_pickled_feature_files_are_refused(no_unpickling, tmp_path, name):
    from emofuse.data.manifest import prepare_manifest
    from emofuse.features.cache import load_feature_file

    marker = tmp_path / "payload_ran"
    path = tmp_path / name
    if name.endswith(".npz"):
        buf = io.BytesIO()
        np.savez(buf, features=np.array([_Payload(marker)], dtype=object), allow_pickle=True)
        path.write_bytes(buf.getvalue())
    elif name.endswith(".npy"):
        path.write_bytes(_evil_npy(marker))
    else:
        path.write_bytes(_evil_bytes(marker))
    with pytest.raises(DataError, match=name.replace(".", r"\.")):
        load_feature_file(path)
    (tmp_path / "m.csv").write_text(f"id,speaker,label,face_npy\na,s1,sad,{name}\n")
    with pytest.raises(DataError, match=name.replace(".", r"\.")):
        prepare_manifest(tmp_path / "m.csv")
    assert not marker.exists()


# --------------------------------------------------------------------------------------------
# Static scan of the package


_PICKLERS = {"pickle", "_pickle", "cPickle", "dill", "cloudpickle", "joblib", "shelve", "marshal"}


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def _keyword(call: ast.Call, name: str):
    for kw in call.keywords:
        if kw.arg == name:
            return kw.value.value if isinstance(kw.value, ast.Constant) else "<not a constant>"
    return None


def unpickling_uses(source: str) -> list[str]:
    """Lines of ``source`` that import an unpickler, call ``torch.load`` without a literal
    ``weights_only=True``, ``np.load`` without a literal ``allow_pickle=False``, or a pandas/numpy
    pickle reader."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [f"{node.lineno}: import {a.name}" for a in node.names if a.name.split(".")[0] in _PICKLERS]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in _PICKLERS:
            found.append(f"{node.lineno}: from {node.module} import ...")
        elif isinstance(node, ast.Call):
            name = _dotted(node.func)
            if name.endswith("torch.load"):
                if _keyword(node, "weights_only") is not True:
                    found.append(f"{node.lineno}: {name}( without weights_only=True")
            elif name in ("np.load", "numpy.load"):
                if _keyword(node, "allow_pickle") is not False:
                    found.append(f"{node.lineno}: {name}( without allow_pickle=False")
            elif name.split(".")[-1] in ("read_pickle", "load_pickle", "loads") and name.split(".")[0] in (
                    "pd", "pandas", *_PICKLERS):
                found.append(f"{node.lineno}: {name}(")
            if name in ("__import__", "importlib.import_module") and any(
                    isinstance(a, ast.Constant) and str(a.value).split(".")[0] in _PICKLERS for a in node.args):
                found.append(f"{node.lineno}: {name}({node.args[0].value!r})")
            if _keyword(node, "allow_pickle") is True:
                found.append(f"{node.lineno}: {name}(allow_pickle=True)")
    return found


def test_scan_catches_what_it_claims():
    bad = ["import pickle", "from joblib import load", "torch.load(f)", "torch.load(f, weights_only=False)",
           "np.load(f)", "np.load(f, allow_pickle=True)", "numpy.load(f, allow_pickle=flag)", "pd.read_pickle(f)",
           "np.save(f, a, allow_pickle=True)",
           "__import__('pickle').loads(b)", "importlib.import_module('dill')"]
    for line in bad:
        assert unpickling_uses(line), line
    for line in ["torch.load(f, weights_only=True)", "np.load(f, allow_pickle=False)", "json.loads(s)",
                 "load_file(p)"]:
        assert not unpickling_uses(line), line


def test_package_source_never_unpickles():
    files = sorted(SRC.rglob("*.py"))
    assert len(files) > 30
    found = {str(f.relative_to(SRC)): hits for f in files if (hits := unpickling_uses(f.read_text(encoding="utf-8")))}
    assert found == {}, f"possible unpickling in the package: {found}"
