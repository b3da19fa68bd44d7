"""Training in 2 CPU processes (gloo), launched by torchrun: validation metrics over the whole
validation set on every rank, one process printing and writing, a seeded data order per rank."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from emofuse.training import FeatureDataset
from emofuse.training.datamodule import make_loader

HERE = Path(__file__).parent


def test_two_processes_gather_validation_and_write_once(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get(
        "PYTHONPATH", "")])}
    for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "SLURM_PROCID", "SLURM_STEP_NUM_TASKS", "NODE_RANK"):
        env.pop(name, None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(HERE / "ddp_worker.py"), str(tmp_path)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=170)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2]
    zero, one = ranks
    # the validation metrics are the whole set's (25 samples), identical on both ranks ...
    assert zero["history"] == one["history"] and zero["n_val"] == 25
    best = zero["history"][zero["best_epoch"]]
    # ... and equal to the kept model's accuracy recomputed over the whole set: one rank's 13 would differ
    assert best["val_wa"] == pytest.approx(zero["val_wa"]) and round(best["val_wa"] * 25, 6) % 1 == 0
    assert 0.2 < best["val_wa"] < 1.0
    assert zero["metrics"] == one["metrics"]  # both ranks score the same weights on the test speakers
    # rank zero alone prints the fold's line and writes kfold.json
    assert done.stderr.count("fold f1 seed 0: WA") == 1
    assert sorted(p.name for p in (tmp_path / "kfold").iterdir()) == ["confusion.png", "kfold.json"]


def _ids(loader) -> list[str]:
    return [i for batch in loader for i in batch["ids"]]


def test_each_rank_reads_a_seeded_disjoint_share():
    from ddp_worker import noisy_data

    samples, feats, _ = noisy_data((9, 9, 9, 9, 9, 8))
    ds = FeatureDataset(feats, [0] * len(samples), [s.id for s in samples])  # 53 samples
    shares = []
    for rank in (0, 1):
        loader = make_loader(ds, 9, shuffle=True, seed=4, replica=(rank, 2))
        loader.sampler.set_epoch(0)
        first = _ids(loader)
        assert first == _ids(loader)  # the same epoch gives the same order
        loader.sampler.set_epoch(1)
        assert _ids(loader) != first  # a new epoch reshuffles
        loader.sampler.set_epoch(0)
        shares.append(first)
    # 27 each (one padded); a batch of one sample is not trained on (27 = 3 x 9: none here)
    assert [len(s) for s in shares] == [27, 27]
    assert set(shares[0]) | set(shares[1]) == set(ds.ids)
    assert len(set(shares[0]) & set(shares[1])) == 1  # the one padding sample
    other = make_loader(ds, 9, shuffle=True, seed=5, replica=(0, 2))
    other.sampler.set_epoch(0)
    assert _ids(other) != shares[0]
    single = make_loader(ds, 9, shuffle=True, seed=4)  # one process: the loader it always was
    assert single.sampler.__class__.__name__ == "RandomSampler"


def test_a_share_ending_in_one_sample_drops_it():
    from ddp_worker import noisy_data

    samples, feats, _ = noisy_data((10, 10, 10, 10, 10, 8))  # 58: shares of 29 = 3 x 9 + 2 ... batch 7: 4 x 7 + 1
    ds = FeatureDataset(feats, [0] * len(samples), [s.id for s in samples])
    loader = make_loader(ds, 7, shuffle=True, replica=(1, 2))
    assert loader.drop_last and all(len(b["ids"]) == 7 for b in loader)
    assert not make_loader(ds, 7, shuffle=True).drop_last  # 58 = 8 x 7 + 2 in one process
