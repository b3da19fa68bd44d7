"""Bounded concurrency: ``workers`` model replicas, each used by one thread at a time, and at most
``queue`` requests waiting for one. A request that finds every place taken is refused at once (429
with ``Retry-After``), never buffered without bound. The blocking work (decoding, features, the
model) runs in the gate's thread pool, off the event loop.
"""

from __future__ import annotations

import math
import queue as queue_module
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Generic, TypeVar

E = TypeVar("E")


class Ticket:
    """One request's place in the gate, from `Gate.reserve` until released (idempotent)."""

    def __init__(self, gate: "Gate[Any]") -> None:
        self._gate, self._released = gate, False

    def release(self) -> None:
        with self._gate._lock:
            if not self._released:
                self._released = True
                self._gate._pending -= 1


class Gate(Generic[E]):
    """``len(engines)`` workers, each with its own engine, and a waiting queue of ``queue`` places."""

    def __init__(self, engines: Sequence[E], queue: int) -> None:
        if not engines:
            raise ValueError("the gate needs at least one engine")
        if queue < 0:
            raise ValueError(f"the queue size must be >= 0, got {queue}")
        self.workers, self.queue = len(engines), queue
        self._free: queue_module.SimpleQueue[E] = queue_module.SimpleQueue()
        for engine in engines:
            self._free.put(engine)
        self._engines = list(engines)
        self._executor = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="emofuse-serve")
        self._lock = threading.Lock()
        self._pending = 0
        self._mean_seconds = 0.5  # running mean of a job's duration, for Retry-After
        self.served = 0

    @property
    def engines(self) -> list[E]:
        return list(self._engines)

    @property
    def pending(self) -> int:
        """Requests holding a place: running or waiting."""
        return self._pending

    def reserve(self) -> Ticket | None:
        """A place for one request, or None when ``workers + queue`` requests already hold one."""
        with self._lock:
            if self._pending >= self.workers + self.queue:
                return None
            self._pending += 1
        return Ticket(self)

    def retry_after(self) -> int:
        """Seconds a refused client should wait: the queue's expected drain time, at least 1."""
        with self._lock:
            return max(1, math.ceil(self._pending * self._mean_seconds / self.workers))

    def submit(self, ticket: Ticket, job: Callable[[E], Any]) -> Future:
        """Run ``job(engine)`` on a free worker; the ticket is released when the job ends (even when
        the request that waited for it has given up)."""
        def run() -> Any:
            engine = self._free.get()
            start = time.perf_counter()
            try:
                return job(engine)
            finally:
                self._free.put(engine)
                with self._lock:
                    self._mean_seconds = 0.8 * self._mean_seconds + 0.2 * (time.perf_counter() - start)
                    self.served += 1

        future = self._executor.submit(run)
        future.add_done_callback(lambda _: ticket.release())
        return future

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
