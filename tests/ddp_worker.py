"""One process of the 2-process training test (`test_ddp_processes.py`), started by torchrun.

``python -m torch.distributed.run --standalone --nproc_per_node 2 tests/ddp_worker.py OUT``: trains
one fold of noisy synthetic data with ``devices=2, strategy="ddp"`` on the CPU (gloo) through
`run_kfold`, and each rank writes what the test compares to ``OUT/rank<r>.json``."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np

from emofuse.data.record import Sample
from emofuse.data.splits import Fold
from emofuse.training import TrainConfig, run_kfold
from emofuse.training.distributed import global_rank, world_size
from test_training import MeanLinear

#: validation speakers hold 25 samples: an odd count, so the distributed sampler pads a rank's share
FOLD = Fold("f1", train=("s0", "s1", "s2", "s3"), val=("s4",), test=("s5",))


def noisy_data(per_speaker: tuple[int, ...] = (30, 30, 30, 30, 25, 20), seed: int = 3):
    """Three overlapping classes (accuracy well below 1, so a half of the validation set scores
    differently from the whole)."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(3, 6))
    samples, audio = [], []
    for spk, count in enumerate(per_speaker):
        for j in range(count):
            y = int(rng.integers(3))
            samples.append(Sample(id=f"s{spk}_{j:02d}", speaker=f"s{spk}", dataset="synthetic",
                                  label=["neutral", "happy", "sad"][y]))
            audio.append(rng.normal(size=(int(rng.integers(2, 6)), 6)) * 2.0 + centers[y])
    return samples, {"audio": audio}, ["neutral", "happy", "sad"]


def main(out: Path) -> None:
    samples, feats, names = noisy_data()
    cfg = TrainConfig(accelerator="cpu", devices=2, strategy="ddp", max_epochs=4, lr=0.05, batch_size=8,
                      patience=10, warmup_ratio=0.0, seed=7)
    seen: dict[str, list] = {}

    def record(fold, model, info):
        seen["val_wa"] = float(np.mean(np.asarray(info["val_probs"]).argmax(1) == np.asarray(info["val_y"])))
        seen["n_val"] = len(info["val_y"])

    result = run_kfold(samples, feats, names, [FOLD], lambda: MeanLinear(3, {"audio": 6}), cfg,
                       out_dir=out / "kfold", progress=True, on_fold_end=record)
    run = result.runs[0]
    report = {"rank": global_rank(), "world_size": world_size(), "history": run.history, "best_epoch": run.best_epoch,
              "metrics": {k: run.metrics[k] for k in ("wa", "ua")}, "local_rank": os.environ.get("LOCAL_RANK"),
              **seen}
    (out / f"rank{global_rank()}.json").write_text(json.dumps(report))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
