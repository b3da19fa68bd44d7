"""Dataset specifications (emofuse.data.specs) and the folds generated for a corpus without
packaged ones (emofuse.data.splits.generate): the registry is the one list of corpora."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from emofuse.data.record import Sample
from emofuse.data.specs import (DatasetSpec, dataset_name, folds_file_for, get_dataset, list_datasets, load_dataset,
                                register_dataset, unregister_dataset)
from emofuse.errors import ConfigError, DataError
from emofuse.data.splits import check_disjoint, check_folds_file, load_folds, partition
from emofuse.data.splits.generate import manifest_folds, speaker_folds

CORPORA = {"ravdess": ("emofuse.data.ravdess", "RAVDESS_LABELS"), "cremad": ("emofuse.data.cremad", "CREMAD_LABELS"),
           "iemocap": ("emofuse.data.iemocap", "IEMOCAP_LABELS"), "meld": ("emofuse.data.meld", "MELD_LABELS")}


@pytest.mark.parametrize("name", sorted(CORPORA))
def test_registry_covers_the_four_corpora(name):
    import importlib

    module, labels = CORPORA[name]
    spec = get_dataset(name)
    assert spec.labels == tuple(getattr(importlib.import_module(module), labels))
    assert spec.loader.__module__ == module  # declared by the corpus's own module
    assert spec.folds == name and load_folds(name)  # its packaged folds file
    assert spec.modalities and spec.default_recipes
    assert spec.speaker_independent == (name != "meld")
    if not spec.speaker_independent:
        assert "NOT speaker-disjoint" in spec.note
    assert name in list_datasets()


def test_ravdess_spec_finds_its_action_unit_table(tmp_path):
    spec = get_dataset("ravdess")
    assert spec.loader_options(tmp_path) == {}
    table = tmp_path / "ravdess-openface-au" / "au_clip_means.csv"
    table.parent.mkdir()
    table.write_text("clip_id\n")
    assert spec.loader_options(tmp_path) == {"au_csv": table}


def test_spec_is_checked():
    def loader(root, *, strict=False):
        return []

    with pytest.raises(ConfigError, match="lowercase"):
        DatasetSpec("Bad Name", "x", ("a",), loader, None, frozenset({"audio"}))
    with pytest.raises(ConfigError, match="distinct"):
        DatasetSpec("toy", "x", ("a", "a"), loader, None, frozenset({"audio"}))
    with pytest.raises(ConfigError, match="note"):
        DatasetSpec("toy", "x", ("a",), loader, None, frozenset({"audio"}), speaker_independent=False)
    with pytest.raises(ConfigError, match="already registered"):
        register_dataset(DatasetSpec("ravdess", "x", ("a",), loader, None, frozenset({"audio"})))
    with pytest.raises(ConfigError, match="unknown dataset 'nope'.*ravdess.*CSV manifest"):
        get_dataset("nope")


# ---------------------------------------------------------------------------------------------
# A corpus added in one place: a throwaway spec shows up in every command.

TOY_SPEAKERS = ["a1", "a2", "a3", "a4"]


def _toy_loader(root: Path, *, strict: bool = False) -> list[Sample]:
    """Four speakers, two clips each, from the files in ``root`` (one per speaker)."""
    return [Sample(id=f"{p.stem}_{i}", speaker=p.stem, dataset="toycorpus", label=("low", "high")[i],
                   sources={"face": np.full(3, i, dtype=np.float32)})
            for p in sorted(root.glob("*.txt")) for i in (0, 1)]


@pytest.fixture
def toy(tmp_path):
    spec = register_dataset(DatasetSpec(
        name="toycorpus", folder="toy-folder", labels=("low", "high"), loader=_toy_loader, folds=None,
        modalities=frozenset({"face"}), default_recipes=("logreg_au",)))
    folder = tmp_path / "toy-folder"
    folder.mkdir()
    for speaker in TOY_SPEAKERS:
        (folder / f"{speaker}.txt").write_text("")
    yield spec, tmp_path
    unregister_dataset("toycorpus")


def test_a_registered_spec_reaches_every_command(toy, capsys):
    from emofuse.experiments import lineup
    from emofuse.cli import main
    from emofuse.data import DATASETS, default_labels, prepare
    from emofuse.data.splits import SPLIT_DATASETS

    spec, root = toy
    for command in ("prepare", "extract", "train", "evaluate", "benchmark", "ablation"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        assert "toycorpus" in capsys.readouterr().out, command
    assert "toycorpus" in DATASETS and default_labels("toycorpus") == ["low", "high"]
    assert "toycorpus" not in SPLIT_DATASETS  # no packaged folds: they are generated
    assert len(prepare("toycorpus", root / "toy-folder")) == 8
    assert [r.name for r in lineup.resolve_recipes("default", "toycorpus")] == ["logreg_au"]
    assert lineup.DATASET_DIRS["toycorpus"] == "toy-folder"
    assert "logreg_au" in [r.name for r in lineup.resolve_recipes("all", "toycorpus")]
    assert not [r for r in lineup.resolve_recipes("all", "toycorpus") if set(r.modalities) - {"face"}]
    assert main(["prepare", "toycorpus", "--data", str(root), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "toycorpus: 8 samples, 4 speakers" in out and out.index("  low: 4") < out.index("  high: 4")
    data = load_dataset("toycorpus", root, num_folds=4)
    assert len(data.folds) == 4 and data.labels == ["low", "high"] and data.key.startswith("toycorpus@")


def test_packaged_folds_refuse_fold_options(tmp_path):
    with pytest.raises(ConfigError, match="packaged folds"):
        load_dataset("ravdess", tmp_path, num_folds=3)


def test_benchmark_title_says_when_folds_are_not_speaker_disjoint():
    from emofuse.evaluation.results import table_title

    assert table_title("meld", [1]) == "meld: official train/dev/test split (dialogue-disjoint, NOT speaker-disjoint)"
    assert table_title("ravdess", [1] * 6) == "ravdess: 6 speaker-disjoint folds"


def test_textless_datasets_come_from_the_specs():
    from emofuse.experiments import ablation

    assert ablation.TEXTLESS_DATASETS == ("cremad", "deap_arousal", "deap_valence", "ravdess")
    faces = [Sample(id="x", speaker="s", dataset="ravdess", label="calm",
                    sources={"text": "Kids are talking by the door", "face": np.zeros(3)})]
    assert ablation.dataset_modalities(faces, "ravdess") == ["face"]
    assert ablation.dataset_modalities(faces, None) == ["text", "face"]


# ---------------------------------------------------------------------------------------------
# Generated folds.

SPEAKERS = [f"s{i}" for i in range(1, 9)]


def _samples(speakers=SPEAKERS, per=2):
    return [Sample(id=f"{sp}_{i}", speaker=sp, dataset="t", label="ab"[i % 2]) for sp in speakers for i in range(per)]


@pytest.mark.parametrize("seed", [0, 1, 7])
@pytest.mark.parametrize("k", [3, 5, 8])
def test_generated_folds_are_speaker_disjoint_and_cover_every_speaker(k, seed):
    samples = _samples()
    folds = speaker_folds(SPEAKERS, k, seed)
    check_folds_file(folds)
    assert len(folds) == k and sorted(g for f in folds for g in f.test) == SPEAKERS
    for f in folds:
        tr, va, te = partition(samples, f)
        assert tr and va and te and len(tr) + len(va) + len(te) == len(samples)
        check_disjoint(samples, tr, va, te)
        other_tests = {g for o in folds if o is not f for g in o.test}
        assert set(f.val) <= other_tests  # validation speakers come from the training side, not the test


def test_generated_folds_are_deterministic_per_seed():
    assert speaker_folds(SPEAKERS, 4, 3) == speaker_folds(list(reversed(SPEAKERS)), 4, 3)
    assert speaker_folds(SPEAKERS, 4, 0) != speaker_folds(SPEAKERS, 4, 1)
    # seed 0 deals the sorted speakers round-robin (the protocol ablations always used)
    assert [f.test for f in speaker_folds(SPEAKERS, 4)] == [("s1", "s5"), ("s2", "s6"), ("s3", "s7"), ("s4", "s8")]
    assert speaker_folds(SPEAKERS, 4)[0].val == ("s2", "s6")


def test_number_of_folds_defaults_and_limits():
    assert len(speaker_folds(SPEAKERS)) == 5
    assert len(speaker_folds(SPEAKERS[:4])) == 4  # fewer speakers than 5: one fold each
    with pytest.raises(ConfigError, match="at least 3 speakers"):
        speaker_folds(SPEAKERS[:2])
    with pytest.raises(ConfigError, match="at least 3"):
        speaker_folds(SPEAKERS, 2)
    with pytest.raises(ConfigError, match="--num-folds 8 or fewer"):
        speaker_folds(SPEAKERS, 9)
    with pytest.raises(ConfigError, match="fold-seed"):
        speaker_folds(SPEAKERS, 3, -1)


def test_folds_file_is_written_reused_and_refused_when_speakers_change(tmp_path):
    path = tmp_path / "mine.folds.json"
    folds, created = manifest_folds(_samples(), path, dataset="mine", num_folds=3, seed=2)
    assert created and path.is_file()
    saved = json.loads(path.read_text())
    assert saved["num_folds"] == 3 and saved["fold_seed"] == 2 and saved["group_by"] == "speaker"
    assert load_folds(path) == folds  # the packaged files' format, checked by check_folds_file

    # reused as written (even when edited by hand), with or without K/seed given
    saved["folds"][0]["train"], saved["folds"][0]["val"] = saved["folds"][0]["val"], saved["folds"][0]["train"]
    path.write_text(json.dumps(saved))
    again, created = manifest_folds(_samples(), path, dataset="mine")
    assert not created and again[0].train == folds[0].val
    assert manifest_folds(_samples(), path, dataset="mine", num_folds=3, seed=2)[0] == again

    with pytest.raises(ConfigError, match=r"new speakers s9.*delete .*mine.folds.json"):
        manifest_folds(_samples([*SPEAKERS, "s9"]), path, dataset="mine")
    with pytest.raises(ConfigError, match="speakers no longer in it s8"):
        manifest_folds(_samples(SPEAKERS[:-1]), path, dataset="mine")
    with pytest.raises(ConfigError, match="holds 3 folds but --num-folds 4"):
        manifest_folds(_samples(), path, dataset="mine", num_folds=4)
    with pytest.raises(ConfigError, match="--fold-seed 2 but --fold-seed 5"):
        manifest_folds(_samples(), path, dataset="mine", seed=5)
    path.write_text("{not json")
    with pytest.raises(DataError, match="delete it"):
        manifest_folds(_samples(), path, dataset="mine")
    with pytest.raises(DataError, match="folds file not found"):
        manifest_folds(_samples(), tmp_path / "none.json", dataset="mine", must_exist=True)
    assert manifest_folds(_samples(), None, dataset="mine")[0] == speaker_folds(SPEAKERS)  # in memory only


def test_speaker_names_that_json_escapes_survive_the_folds_file(tmp_path):
    speakers = ['a"1', "b\\2", "c,3", "d 4"]
    path = tmp_path / "odd.folds.json"
    folds, _ = manifest_folds(_samples(speakers), path, dataset="odd", num_folds=3)
    assert load_folds(path) == folds


# ---------------------------------------------------------------------------------------------
# CSV manifests through load_dataset.

def _manifest(folder: Path, rows: list[str], header: str = "id,speaker,label,audio,signal") -> Path:
    path = folder / "My Corpus.csv"
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def test_manifest_dataset_reads_labels_modalities_and_signal_files(tmp_path):
    (tmp_path / "sig").mkdir()
    rows = []
    for i, speaker in enumerate(["p1", "p2", "p3", "p1", "p2", "p3"]):
        np.savez(tmp_path / "sig" / f"c{i}.npz", data=np.zeros((10, 2), dtype=np.float32), rate=np.float32(4.0))
        (tmp_path / f"c{i}.wav").write_bytes(b"")
        rows.append(f"c{i},{speaker},{'zeta' if i % 2 else 'alpha'},c{i}.wav,sig/c{i}.npz")
    rows.append("c9,p3,,c0.wav,")  # unlabelled: left out
    csv = _manifest(tmp_path, rows)
    data = load_dataset(csv, folds_file=folds_file_for(tmp_path / "out", csv))
    assert data.name == "my_corpus" and data.labels == ["alpha", "zeta"]
    assert data.spec.modalities == {"audio", "signal"} and data.spec.folds is None
    assert len(data.samples) == 6 and data.samples[0].sources["signal"] == tmp_path / "sig" / "c0.npz"
    assert isinstance(data.samples[0].sources["signal"], Path)
    assert len(data.folds) == 3 and data.folds_file == tmp_path / "out" / "my_corpus.folds.json"
    assert data.folds_file.is_file()
    assert load_dataset(csv, make_folds=False).folds == []


def test_manifest_signal_must_be_an_npz_file(tmp_path):
    (tmp_path / "c0.csv.txt").write_text("")
    csv = _manifest(tmp_path, ["c0,p1,a,,c0.csv.txt"])
    with pytest.raises(DataError, match="not a .npz file"):
        load_dataset(csv)


def test_manifest_names_never_shadow_a_registered_corpus(tmp_path):
    assert dataset_name(tmp_path / "ravdess.csv") == "manifest_ravdess"
    assert dataset_name(tmp_path / "2024 data.csv") == "manifest_2024_data"
    assert dataset_name("meld") == "meld"


def test_ablation_writes_and_reuses_the_manifest_folds(tmp_path):
    from emofuse.experiments.ablation import load_ablation_data

    rows = [f"c{i},p{i % 4},{'ab'[i % 2]},c{i}.wav" for i in range(8)]
    for i in range(8):
        (tmp_path / f"c{i}.wav").write_bytes(b"")
    csv = _manifest(tmp_path, rows, header="id,speaker,label,audio")
    samples, labels, folds, name = load_ablation_data(str(csv), None, num_folds=3, folds_dir=tmp_path / "res")
    assert labels == ["a", "b"] and len(folds) == 3 and name == "my_corpus"
    assert (tmp_path / "res" / "my_corpus.folds.json").is_file()
    with pytest.raises(ConfigError, match="holds 3 folds"):
        load_ablation_data(str(csv), None, num_folds=4, folds_dir=tmp_path / "res")
