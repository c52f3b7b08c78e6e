"""Worker processes that run a job's units side by side (`--jobs N`).

Each worker is a fresh (spawned) Python process, so each has its own PyTorch with its own thread
pool, its own random state and its own Ctrl-C handling; the machine's CPU threads are divided
between the workers (a worker with all of them would make N workers fight over every core).
Progress events come back through one queue and are forwarded by the main process.
"""

from __future__ import annotations

import os
import queue as queue_module
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

from kdcli.core.progress import ProgressEvent

_EVENTS: Any = None  # the worker's end of the progress queue (set by _start_worker)


def available_cpus() -> int:
    """CPU cores this process may run on (the affinity mask, not the machine's total)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS and Windows have no affinity mask
        return os.cpu_count() or 1


def threads_per_worker(workers: int) -> int:
    return max(1, available_cpus() // max(1, workers))


class WorkerPool:
    """`workers` processes; `submit(name, work)` runs `work(progress)` in one of them."""

    def __init__(self, workers: int) -> None:
        import multiprocessing

        context = multiprocessing.get_context("spawn")
        self._events = context.Queue()
        self._executor = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=context,
            initializer=_start_worker,
            initargs=(self._events, threads_per_worker(workers)),
        )

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self._executor.shutdown(wait=True)
        self._events.close()

    def submit(self, name: str, work: Any) -> Future:
        return self._executor.submit(_run, name, work)

    def forward_events(self, forward: Callable[[str, ProgressEvent], None] | None) -> None:
        """Hand every queued progress event to `forward(unit, event)`."""
        while True:
            try:
                name, event = self._events.get_nowait()
            except queue_module.Empty:
                return
            if forward is not None:
                forward(name, event)

    def cancel(self) -> None:
        """Start nothing more; wait for the running units (Ctrl-C lets training checkpoint)."""
        self._executor.shutdown(wait=True, cancel_futures=True)


def _start_worker(events: Any, threads: int) -> None:
    global _EVENTS
    _EVENTS = events
    # set before torch is imported (by the first unit), which sizes its thread pools from them
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _run(name: str, work: Any) -> dict[str, Any]:
    def progress(event: ProgressEvent) -> None:
        _EVENTS.put((name, event))

    return work(progress)
