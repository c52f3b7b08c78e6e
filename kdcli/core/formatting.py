"""Human-readable numbers, shared by the terminal summaries and the report files."""

from __future__ import annotations


def size_text(num_bytes: float) -> str:
    """Bytes in decimal units: 942.0 MB, 1.1 GB."""
    value = float(num_bytes)
    for unit in ("B", "KB", "MB"):
        if value < 1000:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"


def count_text(number: int) -> str:
    """A parameter count: 687.5K, 278.0M."""
    if number >= 1_000_000:
        return f"{number / 1e6:.1f}M"
    if number >= 1_000:
        return f"{number / 1e3:.1f}K"
    return str(number)
