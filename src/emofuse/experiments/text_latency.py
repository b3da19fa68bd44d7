"""CPU latency of a fine-tuned text model: one MELD test utterance at a time, with the dialogue turns
before it that the model reads (``python -m emofuse.experiments.text_latency --model DIR``).

Reports the median and 95th percentile over ``--n`` utterances after a warm-up, the tokens per window,
and the batch throughput (all test utterances in batches of 64), with the thread count used.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def measure(model_dir: str | Path, data_root: str | Path, n: int = 200, threads: int = 2) -> dict[str, Any]:
    """Latency of `TextPredictor.predict` on the first ``n`` MELD test utterances with their context."""
    import torch

    from emofuse.inference.text_predictor import TextPredictor
    from emofuse.inputs.conversation import windows_for_samples
    from emofuse.training.text_data import text_splits

    torch.set_num_threads(threads)
    predictor = TextPredictor(model_dir)
    samples = text_splits("meld", data_root).samples["test"]
    windows = windows_for_samples(samples, predictor.ckpt.context)
    items = [{"text": w.target.text, "speaker": w.target.speaker, "context": w.past} for w in windows]
    for item in items[:10]:
        predictor.predict_many([item])
    times = []
    for item in items[:n]:
        start = time.perf_counter()
        predictor.predict_many([item])
        times.append(time.perf_counter() - start)
    start = time.perf_counter()
    for k in range(0, len(items), 64):
        predictor.predict_many(items[k:k + 64])
    batch_seconds = time.perf_counter() - start
    ms = np.array(times) * 1000
    return {"model": str(model_dir), "context": predictor.ckpt.context.to_dict(), "threads": threads,
            "n": len(times), "median_ms": float(np.median(ms)), "p95_ms": float(np.percentile(ms, 95)),
            "batch64_utterances_per_s": len(items) / batch_seconds, "test_utterances": len(items)}


def main(argv: Sequence[str] | None = None) -> int:
    from emofuse.paths import data_root

    parser = argparse.ArgumentParser(prog="python -m emofuse.experiments.text_latency", description=__doc__.split("\n")[0])
    parser.add_argument("--model", action="append", required=True, help="fine-tuned text checkpoint (repeatable)")
    parser.add_argument("--data", help="data root (default: $EMOFUSE_DATA or ../shared/data)")
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, help="write the rows as JSON here")
    args = parser.parse_args(argv)
    rows = [measure(m, data_root(args.data), args.n, args.threads) for m in args.model]
    for row in rows:
        print(json.dumps(row))
    if args.out:
        from emofuse.atomic import atomic_write_text

        atomic_write_text(args.out, json.dumps({"results": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
