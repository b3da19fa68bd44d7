"""Memory and time of the naive vs factorised Tucker projection (`emofuse.models.tucker`).

    python -m emofuse.experiments.tucker_memory --batch-size 1 8 32

prints one JSON object per batch size (see `tucker_memory_benchmark` for the fields).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Sequence
from typing import Any

import torch

from emofuse.models.tucker import tucker_core, tucker_core_naive


def _naive_intermediate_bytes(b: int, t: int, da: int, dv: int, rt: int, ra: int, rv: int, itemsize: int) -> int:
    """Peak bytes of live tensors in `tucker_core_naive` (input + output of the largest step)."""
    x, m1, m2, g = b * t * da * dv, b * rt * da * dv, b * rt * ra * dv, b * rt * ra * rv
    return itemsize * max(x + m1, m1 + m2, m2 + g)


def _factorised_intermediate_bytes(b: int, t: int, da: int, dv: int, rt: int, ra: int, rv: int, itemsize: int) -> int:
    """Peak bytes of live intermediates in `tucker_core` (projections, left factor, core)."""
    pa, pv, left, g = b * t * ra, b * t * rv, b * t * rt * ra, b * rt * ra * rv
    return itemsize * (pa + pv + max(2 * left, left + g))


def _profiled_allocated_bytes(fn) -> int:
    """Total bytes allocated by CPU ops while running ``fn`` (torch.profiler, profile_memory=True)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    return int(sum(max(e.self_cpu_memory_usage, 0) for e in prof.events()))


def tucker_memory_benchmark(batch_size: int = 8, time_steps: int = 60, d_audio: int = 256, d_visual: int = 256,
                            ranks: Sequence[int] = (30, 128, 128), repeats: int = 3, seed: int = 0) -> dict[str, Any]:
    """Compare naive vs factorised Tucker projection at the published sizes.

    Reports, for each method: ``analytic_peak_bytes`` (exact byte count of the live
    intermediates, computed from the shapes, not measured), ``profiler_allocated_bytes`` (total
    bytes allocated by ops, measured with torch.profiler; a sum of allocations, not a peak) and
    ``wall_s_median`` (measured wall time of one forward, median of ``repeats``); plus the
    maximum absolute difference of the two cores.
    """
    rt, ra, rv = (int(r) for r in ranks)
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(batch_size, time_steps, d_audio, generator=g)
    v = torch.randn(batch_size, time_steps, d_visual, generator=g)
    at = torch.randn(time_steps, rt, generator=g) / math.sqrt(time_steps)
    aa = torch.randn(d_audio, ra, generator=g) / math.sqrt(d_audio)
    av = torch.randn(d_visual, rv, generator=g) / math.sqrt(d_visual)
    shape = (batch_size, time_steps, d_audio, d_visual, rt, ra, rv, a.element_size())
    result: dict[str, Any] = {"batch_size": batch_size, "time_steps": time_steps, "d_audio": d_audio,
                              "d_visual": d_visual, "ranks": [rt, ra, rv], "threads": torch.get_num_threads()}
    outputs = {}
    for name, fn, analytic in (("naive", tucker_core_naive, _naive_intermediate_bytes),
                               ("factorised", tucker_core, _factorised_intermediate_bytes)):
        with torch.no_grad():
            outputs[name] = fn(a, v, at, aa, av)
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                fn(a, v, at, aa, av)
                times.append(time.perf_counter() - start)
            allocated = _profiled_allocated_bytes(lambda: fn(a, v, at, aa, av))
        result[name] = {"analytic_peak_bytes": analytic(*shape), "profiler_allocated_bytes": allocated,
                        "wall_s_median": sorted(times)[len(times) // 2]}
    result["max_abs_diff"] = float((outputs["naive"] - outputs["factorised"]).abs().max())
    result["max_abs_core"] = float(outputs["naive"].abs().max())
    return result


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: one JSON line per ``--batch-size``."""
    parser = argparse.ArgumentParser(prog="python -m emofuse.experiments.tucker_memory",
                                     description="naive vs factorised Tucker projection: bytes and time")
    parser.add_argument("--batch-size", type=int, nargs="+", default=[8])
    parser.add_argument("--time-steps", type=int, default=60)
    parser.add_argument("--d-audio", type=int, default=256)
    parser.add_argument("--d-visual", type=int, default=256)
    parser.add_argument("--ranks", type=int, nargs=3, default=[30, 128, 128], metavar=("R_T", "R_A", "R_V"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for batch_size in args.batch_size:
        result = tucker_memory_benchmark(batch_size, args.time_steps, args.d_audio, args.d_visual, tuple(args.ranks),
                                         args.repeats, args.seed)
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
