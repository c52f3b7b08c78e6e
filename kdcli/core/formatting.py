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


def duration_text(seconds: float) -> str:
    """A wall time: 42 s, 3m 05s, 1h 02m."""
    total = round(max(0.0, float(seconds)))
    if total < 60:
        return f"{total} s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"
