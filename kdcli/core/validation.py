"""Small validators of option values that every step shares: comma lists, positive numbers, choices.

Each step's typed config dataclass lives beside the function it configures (`ShrinkConfig` in
`steps/shrink.py`, ...); YAML `--config` files are the CLI's business (`cli/options.py`).
"""

from __future__ import annotations

from kdcli.core.errors import KdcliError


def parse_csv(value: str | list[str] | tuple[str, ...] | None) -> list[str] | None:
    """`en-US,de-DE` (or a YAML list) as a list of stripped, non-empty items."""
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else [str(v) for v in value]
    cleaned = [item.strip() for item in items if item.strip()]
    return cleaned or None


def check_positive(option: str, value: float | None, allow_zero: bool = False) -> None:
    if value is None:
        return
    if value < 0 or (value == 0 and not allow_zero):
        bound = "zero or more" if allow_zero else "greater than zero"
        raise KdcliError(f"{option} {value} must be {bound}")


def check_choice(option: str, value: str | None, choices: tuple[str, ...]) -> None:
    if value is not None and value not in choices:
        raise KdcliError(f"{option} {value!r} is unknown: choose one of {', '.join(choices)}")
