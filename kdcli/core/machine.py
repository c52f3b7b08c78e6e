"""What machine this is, in the words benchmarks and speed reports print beside their figures.

int8 and timing results depend on the CPU's instruction set (a VNNI CPU runs int8 products that
an AVX2-only one emulates), so every such figure names it. A timing also means little without
the machine's load: the same model measured a minute apart on a shared machine gave 63 ms and
272 ms, so speed reports say when other work competed for the cores (`MachineState`).
"""

from __future__ import annotations

import contextlib
import os
import platform
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

# The instruction-set extensions that change what kdcli measures, most capable first.
ISA_FLAGS = ("amx_int8", "avx512_vnni", "avx_vnni", "avx512f", "avx2", "asimddp", "asimd")
UNSTEADY = 0.25  # rounds whose fastest and slowest differ by more than this share of the median


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """torch's thread count is process-wide: set it for one call and put it back (None: leave
    torch's own choice, every core)."""
    if threads is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def cpu_flags() -> set[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where there is none)."""
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.is_file():
        return set()
    for line in cpuinfo.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith(("flags", "Features")):
            return set(line.split(":", 1)[1].split())
    return set()


def cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def isa() -> str:
    """e.g. "avx512_vnni+avx512f+avx2" or "avx2": the extensions from ISA_FLAGS it has."""
    flags = cpu_flags()
    return "+".join(f for f in ISA_FLAGS if f in flags) or platform.machine()


def cpu_summary() -> str:
    """One line: CPU model, cores, instruction set."""
    return f"{cpu_model()}, {os.cpu_count()} cores, ISA {isa()}"


@dataclass(frozen=True)
class MachineState:
    """What a speed figure was measured on. `load` is the 1-minute load average (the larger of
    before and after timing); `busy` means more runnable tasks than cores, so kdcli's work
    waited for others'."""

    cpu: str
    isa: str
    cpus: int
    load: float | None
    busy: bool

    def describe(self) -> str:
        load = f", load {self.load:.1f}" if self.load is not None else ""
        busy = " — busy" if self.busy else ""
        return f"{self.cpu}, ISA {self.isa}, {self.cpus} cores{load}{busy}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_average() -> float | None:
    try:
        return os.getloadavg()[0]
    except (OSError, AttributeError):  # not on every platform
        return None


def machine_state(load_before: float | None = None) -> MachineState:
    """The machine now; `load_before` is the load average taken when timing began."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cpus = cpus or 1
    loads = [x for x in (load_before, load_average()) if x is not None]
    load = max(loads) if loads else None
    return MachineState(cpu_model(), isa(), cpus, load, load is not None and load > cpus)


def spread(low: float, high: float, middle: float) -> float:
    """How far apart the fastest and slowest rounds were, as a share of the median."""
    return (high - low) / middle if middle > 0 else 0.0


def speed_warning(state: MachineState, worst_spread: float) -> str | None:
    """A note when the figures should not be trusted: a busy machine or unsteady rounds."""
    reasons = []
    if state.busy and state.load is not None:
        reasons.append(f"the machine was busy (load {state.load:.1f} on {state.cpus} cores)")
    if worst_spread > UNSTEADY:
        reasons.append(f"timing rounds differed by up to {worst_spread:.0%}")
    if not reasons:
        return None
    return (
        f"speed figures are unreliable: {' and '.join(reasons)}; measure again on a quiet "
        "machine (compare ratios measured in one run, never figures from different runs)"
    )
