"""Which process may write files and print: rank zero of a multi-process run.

A run launched by ``torchrun``, SLURM or Lightning's own launcher has one process per device;
only global rank zero writes results, reports and checkpoints and prints progress, so that a
file is written once and a console shows each line once. One plain process is rank zero.

The rank is read, in this order, from an initialised ``torch.distributed`` process group, the
``RANK`` variable (torchrun), ``SLURM_PROCID`` (srun), and ``LOCAL_RANK`` together with
``NODE_RANK``/``GROUP_RANK`` (Lightning's launcher sets those for the processes it starts). This
module does not import PyTorch: when it is not imported, no process group can exist.

Not everything is guarded: the feature cache is written by every rank (each computes its own
shard, `launch_shard`), and Lightning already shows its progress bar on rank zero only.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar, overload

F = TypeVar("F", bound=Callable[..., Any])


def _env_int(name: str) -> int | None:
    value = os.environ.get(name, "").strip()
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        return None


def global_rank() -> int:
    """This process's global rank (0 for a plain single-process run)."""
    dist = getattr(sys.modules.get("torch"), "distributed", None)
    if dist is not None and dist.is_available() and dist.is_initialized():
        return int(dist.get_rank())
    for name in ("RANK", "SLURM_PROCID"):
        rank = _env_int(name)
        if rank is not None:
            return rank
    local = _env_int("LOCAL_RANK")
    if local is None:
        return 0
    node = _env_int("NODE_RANK") or _env_int("GROUP_RANK") or 0
    return local if node == 0 else node * max(1, _env_int("LOCAL_WORLD_SIZE") or 1) + local


def world_size() -> int:
    """How many processes this launch has (1 for a plain run): the process group's size, else
    ``WORLD_SIZE`` (torchrun, Lightning's launcher) or ``SLURM_STEP_NUM_TASKS`` (srun; a batch
    script run without srun is one process)."""
    dist = getattr(sys.modules.get("torch"), "distributed", None)
    if dist is not None and dist.is_available() and dist.is_initialized():
        return int(dist.get_world_size())
    for name in ("WORLD_SIZE", "SLURM_STEP_NUM_TASKS"):
        size = _env_int(name)
        if size is not None and size >= 1:
            return size
    return 1


def launch_shard() -> tuple[int, int] | None:
    """``(k, n)`` (1-based) for this process of a multi-process launch, None for a plain run: the
    shard of a dataset this rank extracts or predicts (`emofuse.features.driver.parse_shard`)."""
    size = world_size()
    if size <= 1:
        return None
    rank = global_rank()
    if not 0 <= rank < size:
        from emofuse.errors import ConfigError

        raise ConfigError(f"this process has rank {rank} but the launch has {size} processes (check RANK/WORLD_SIZE "
                          "or SLURM_PROCID/SLURM_STEP_NUM_TASKS)")
    return rank + 1, size


def is_rank_zero() -> bool:
    """True in the process that writes files and prints (global rank zero, or no multi-process run)."""
    return global_rank() == 0


@overload
def rank_zero_only(fn: F) -> F: ...
@overload
def rank_zero_only(fn: None = None, *, default: Any = None) -> Callable[[F], F]: ...


def rank_zero_only(fn: Callable[..., Any] | None = None, *, default: Any = None) -> Any:
    """Decorator: the function runs on rank zero only; other ranks get ``default`` back.

    The rank is checked at every call (not when decorating). Use as ``@rank_zero_only`` or
    ``@rank_zero_only(default=...)``.
    """
    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if is_rank_zero():
                return func(*args, **kwargs)
            return default
        return wrapper

    return decorate if fn is None else decorate(fn)


@rank_zero_only
def rank_zero_print(*args: Any, **kwargs: Any) -> None:
    """`print` on rank zero only (progress lines and tables of commands that may run in several processes)."""
    print(*args, **kwargs)
