"""Work split across processes: each rank's shard from the launcher's variables, the cache check
(``extract --verify``), batch prediction in shards (resumable, merged) and the training options."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from emofuse.cli import main
from emofuse.data.record import Sample
from emofuse.errors import ConfigError, DataError
from emofuse.features import FeatureCache, extract_features, get_extractor
from emofuse.features.verify import verify_cache
from emofuse.inference.batch import list_media, merge, predict_batch
from emofuse.training.distributed import launch_shard

SR = 16000
LAUNCH_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_STEP_NUM_TASKS",
                    "NODE_RANK", "GROUP_RANK")


@pytest.fixture
def launch(monkeypatch):
    """``launch(**variables)``: this process as one of a launch (no variables: a plain run)."""
    def set_variables(**variables: str) -> None:
        for name in LAUNCH_VARIABLES:
            monkeypatch.delenv(name, raising=False)
        for name, value in variables.items():
            monkeypatch.setenv(name, value)
    set_variables()
    return set_variables


@pytest.fixture()
def clips(tmp_path: Path) -> list[Path]:
    folder = tmp_path / "audio"
    folder.mkdir()
    rng = np.random.default_rng(1)
    paths = []
    for i in range(6):
        path = folder / f"clip{i}.wav"
        sf.write(path, (0.1 * rng.standard_normal(int(SR * (0.3 + 0.05 * i)))).astype(np.float32), SR)
        paths.append(path)
    return paths


def _samples(clips: list[Path]) -> list[Sample]:
    return [Sample(id=p.stem, speaker=f"s{i % 3}", dataset="x", label="neutral", sources={"audio": p})
            for i, p in enumerate(clips)]


def test_each_rank_of_a_launch_takes_its_shard(launch):
    assert launch_shard() is None
    launch(RANK="1", WORLD_SIZE="3")  # torchrun
    assert launch_shard() == (2, 3)
    launch(SLURM_PROCID="2", SLURM_STEP_NUM_TASKS="4", SLURM_NTASKS="4")  # srun
    assert launch_shard() == (3, 4)
    launch(SLURM_PROCID="0", SLURM_NTASKS="4")  # a batch script run without srun: one process
    assert launch_shard() is None
    launch(RANK="3", WORLD_SIZE="2")
    with pytest.raises(ConfigError, match="rank 3 but the launch has 2"):
        launch_shard()


def test_verify_lists_missing_and_corrupt_entries(clips, tmp_path):
    cache_dir = tmp_path / "cache"
    extractor = get_extractor("mfcc")
    extract_features(clips, extractor, cache_dir, progress=False)
    cache = FeatureCache(cache_dir, extractor)
    good = verify_cache(extractor, _samples(clips), cache_dir)
    assert (good.inputs, good.ok, good.problems) == (6, 6, [])
    dim = np.load(cache.entry_path(clips[0]))["features"].shape[1]
    cache.entry_path(clips[0]).unlink()
    cache.entry_path(clips[1]).write_bytes(b"not a zip file")
    np.savez(cache.entry_path(clips[2]), features=np.full((4, dim), np.nan, np.float32))
    np.savez(cache.entry_path(clips[3]), features=np.zeros((4, dim + 1), np.float32))
    np.savez(cache.entry_path(clips[4]), other=np.zeros((4, dim), np.float32))
    report = verify_cache(extractor, _samples(clips), cache_dir)
    found = {p.sample: p.problem for p in report.problems}
    assert report.ok == 1 and report.missing == 1 and report.corrupt == 4
    assert found["clip0"] == "missing" and found["clip1"].startswith("unreadable")
    assert found["clip2"] == "NaN or infinite values" and f"expected [T, {dim}]" in found["clip3"]
    assert found["clip4"] == "no 'features' array"
    assert all(p.entry.endswith(".npz") and p.source.endswith(f"{p.sample}.wav") for p in report.problems)
    assert cache.entry_path(clips[1]).exists()  # verifying deletes nothing


def _manifest(clips: list[Path], tmp_path: Path) -> Path:
    path = tmp_path / "set.csv"
    rows = [f"{p.stem},s{i % 3},neutral,{p}" for i, p in enumerate(clips)]
    path.write_text("id,speaker,label,audio\n" + "\n".join(rows) + "\n")
    return path


def test_extract_takes_the_rank_shard_and_verify_reports_the_rest(launch, clips, tmp_path, capsys):
    manifest, cache = _manifest(clips, tmp_path), str(tmp_path / "cache")
    command = ["extract", str(manifest), "--features", "mfcc", "--cache", cache, "--quiet"]
    launch(RANK="0", WORLD_SIZE="2")
    assert main(command) == 0
    assert "[rank 0] mfcc: 3/6 clips cached (after shard 1/2)" in capsys.readouterr().out
    launch()
    assert main([*command, "--verify"]) == 2  # the other rank has not run: its entries are missing
    out = capsys.readouterr().out
    assert "mfcc: 3/6 entries good, 3 missing, 0 corrupt" in out
    assert sorted(line.split()[1] for line in out.splitlines() if line.startswith("  missing:")) == \
        ["clip1", "clip3", "clip5"]
    launch(RANK="1", WORLD_SIZE="2")
    assert main(command) == 0
    launch()
    assert main([*command, "--verify"]) == 0
    assert "6/6 entries good, 0 missing, 0 corrupt" in capsys.readouterr().out


class FakePrediction:
    def __init__(self, path: str) -> None:
        self.path, self.ok = path, not path.endswith("clip4.wav")

    def to_dict(self) -> dict:
        return {"path": self.path, "status": "ok" if self.ok else "no_speech", "label": "calm" if self.ok else None}


def test_batch_prediction_in_shards_resumes_and_merges(clips, tmp_path):
    files = list_media(clips[0].parent)
    assert files == [str(p) for p in clips]
    calls: list[list[str]] = []

    def predict(chunk):
        calls.append(chunk)
        return [FakePrediction(p) for p in chunk]

    def dies_after_one(chunk):
        if calls:
            raise KeyboardInterrupt  # the process is stopped after its first file
        return predict(chunk)

    out = tmp_path / "preds"
    with pytest.raises(KeyboardInterrupt):
        predict_batch(dies_after_one, files, out, (1, 2), flush_every=1)
    assert [r["path"] for r in map(json.loads, (out / "shard-00001-of-00002.jsonl").read_text().splitlines())] == \
        files[:1]
    calls.clear()
    first = predict_batch(predict, files, out, (1, 2), flush_every=1)  # the rerun predicts only the rest
    assert calls == [[files[2]], [files[4]]] and (first.skipped, first.predicted, first.failed) == (1, 2, 1)
    assert first.merged is None and not (out / "predictions.jsonl").exists()  # shard 2 has not run
    second = predict_batch(predict, files, out, (2, 2))
    assert second.merged == out / "predictions.jsonl"
    merged = [json.loads(line) for line in second.merged.read_text().splitlines()]
    assert [r["path"] for r in merged] == files and [r["status"] for r in merged].count("no_speech") == 1
    calls.clear()
    again = predict_batch(predict, files, out)  # one process, everything predicted already
    assert calls == [] and again.skipped == 6 and again.merged is not None
    assert merge(files + [str(tmp_path / "new.wav")], out) is None


def test_batch_lists_a_manifest_and_refuses_what_it_cannot_read(clips, tmp_path):
    manifest = tmp_path / "list.csv"
    manifest.write_text("path,label\n" + "\n".join(f"audio/{p.name},x" for p in clips[:2]) + "\n")
    assert list_media(manifest) == [str(tmp_path / "audio" / p.name) for p in clips[:2]]
    (tmp_path / "bad.csv").write_text("name\nclip.wav\n")
    with pytest.raises(DataError, match="no file column"):
        list_media(tmp_path / "bad.csv")
    with pytest.raises(DataError, match="neither a folder nor"):
        list_media(tmp_path / "missing")
    out = tmp_path / "preds"
    (out / "shard-00001-of-00001.jsonl").parent.mkdir()
    (out / "shard-00001-of-00001.jsonl").write_text("{not json\n")
    with pytest.raises(DataError, match="line 1 is not JSON"):
        predict_batch(lambda chunk: [], [str(clips[0])], out)


def test_predict_batch_command_with_the_shipped_model(launch, tmp_path, capsys):
    from emofuse.inference.predictor import sample_clips

    folder = sample_clips()[0].parent
    out = tmp_path / "preds"
    launch(RANK="1", WORLD_SIZE="2")
    assert main(["predict", "--batch", str(folder), "--out", str(out)]) == 0
    assert "shard 2/2: 1 predicted" in capsys.readouterr().out and not (out / "predictions.jsonl").exists()
    launch()
    assert main(["predict", "--batch", str(folder), "--out", str(out)]) == 0
    assert "1 already in" in capsys.readouterr().out
    merged = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert [r["path"] for r in merged] == [str(p) for p in sample_clips()] and all(r["label"] for r in merged)
    assert main(["predict", "--batch", str(folder)]) == 2  # no --out
    assert main(["predict", str(sample_clips()[0]), "--shard", "1/2"]) == 2  # --shard without --batch


def test_training_commands_take_the_process_options(tmp_path):
    from emofuse.cli import build_parser
    from emofuse.cli.common import hardware
    from emofuse.evaluation.results import run_key
    from emofuse.recipes import load_recipe
    from emofuse.training.recipe import with_hardware

    args = build_parser().parse_args(["benchmark", "ravdess", "--devices", "2", "--num-nodes", "3", "--strategy", "ddp",
                                      "--accelerator", "cpu"])
    settings = hardware(args)
    assert settings == {"devices": 2, "num_nodes": 3, "strategy": "ddp", "accelerator": "cpu"}
    assert hardware(build_parser().parse_args(["train", "attention_pooling_audio", "--out", "x"])) == {}
    with pytest.raises(ConfigError, match="train.devices=0"):
        hardware(build_parser().parse_args(["train", "attention_pooling_audio", "--out", "x", "--devices", "0"]))
    neural, classical = load_recipe("attention_pooling_audio"), load_recipe("logreg_whisper")
    two = with_hardware(neural, settings)
    assert two.train == {**neural.train, **settings} and neural.train.get("devices") is None
    assert with_hardware(neural, {}) is neural and with_hardware(classical, settings) is classical
    key = lambda r: run_key(r, "ravdess", ["1"], [0], None, False)  # noqa: E731
    assert key(two) != key(neural)  # rows of 2 processes are not mistaken for 1 process's
    assert main(["train", "attention_pooling_audio", "--out", str(tmp_path / "m"), "--devices", "0"]) == 2
