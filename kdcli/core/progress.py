"""Progress reporting without a UI dependency.

The library reports progress by calling a plain callback; the CLI turns the events into Rich
progress bars. Library code never prints.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ProgressEvent:
    """`done` of `total` units of `task` are done; `info` holds live numbers (loss, samples/s)."""

    task: str
    done: int
    total: int | None = None
    info: dict[str, float] = field(default_factory=dict)


ProgressCallback = Callable[[ProgressEvent], None]


def report(
    callback: ProgressCallback | None,
    task: str,
    done: int,
    total: int | None = None,
    **info: float,
) -> None:
    """Send one progress event if anybody listens."""
    if callback is not None:
        callback(ProgressEvent(task, done, total, dict(info)))
