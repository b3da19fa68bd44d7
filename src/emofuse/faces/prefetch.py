"""Run an iterator a few items ahead on a helper thread: `prefetched`.

The face path decodes video frames (PyAV: FFmpeg runs without Python's global lock) while it searches the
previous frame for a face (PyTorch, OpenCV: also without the lock), so the two overlap on two cores. The
items, their order, and the errors are those of the iterator itself: an error is raised to the consumer at
the place of the item that failed, and closing the consumer early stops and closes the iterator on the
helper thread (which owns it). Warnings are issued by the helper thread as the iterator issues them.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import TypeVar

T = TypeVar("T")

_END = object()


def prefetched(items: Iterator[T], depth: int = 2) -> Iterator[T]:
    """``items``, produced up to ``depth`` ahead on a helper thread (``depth`` 0: in this thread)."""
    if depth <= 0:
        yield from items
        return
    ready: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                if stop.is_set():
                    break
                ready.put((True, item))
            ready.put((True, _END))
        except BaseException as exc:  # handed to the consumer, raised there
            ready.put((False, exc))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    worker = threading.Thread(target=produce, name="emofuse-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            ok, item = ready.get()
            if not ok:
                raise item
            if item is _END:
                return
            yield item
    finally:
        stop.set()
        while worker.is_alive():  # let a producer blocked on a full queue finish
            try:
                ready.get(timeout=0.05)
            except queue.Empty:
                pass
        worker.join()
