"""What machine this is, in the words benchmarks and speed reports print beside their figures.

int8 and timing results depend on the CPU's instruction set (a VNNI CPU runs int8 products that
an AVX2-only one emulates), so every such figure names it.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

# The instruction-set extensions that change what kdcli measures, most capable first.
ISA_FLAGS = ("amx_int8", "avx512_vnni", "avx_vnni", "avx512f", "avx2", "asimddp", "asimd")


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
