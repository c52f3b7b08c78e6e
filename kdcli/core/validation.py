"""The validators of setting values, one message per kind of mistake.

Every step checks its config with these, so a setting several commands share (`batch_size 0`,
`max_length 1`, `threads 0`) gets the same message from every one of them. Each names the setting
by its library name (`option="batch_size"`); the CLI shows it as `--batch-size`.

Each step's typed config dataclass lives beside the function it configures (`ShrinkConfig` in
`steps/shrink.py`, ...); parsing command-line text such as `0,2,4` is the CLI's business.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from kdcli.core.errors import KdcliError

# The fewest tokens a text may be cut to: room for the special tokens around it.
MIN_MAX_LENGTH = 2


def check_int(option: str, value: object, minimum: int = 1, *, optional: bool = False) -> None:
    """An integer of at least `minimum` (None too, when the setting is optional)."""
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise KdcliError(f"must be an integer of at least {minimum}", option=option, value=value)
    if value < minimum:
        raise KdcliError(f"must be at least {minimum}", option=option, value=value)


def check_number(
    option: str,
    value: object,
    *,
    minimum: float | None = None,
    above: float | None = None,
    maximum: float | None = None,
    below: float | None = None,
    optional: bool = False,
) -> None:
    """A finite number within the given bounds (None too, when the setting is optional)."""
    if value is None and optional:
        return
    bounds = _bounds(minimum, above, maximum, below)
    if isinstance(value, float) and not math.isfinite(value):  # nan passes every comparison
        raise KdcliError(f"must be a finite number, {bounds}", option=option, value=value)
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or (minimum is not None and value < minimum)
        or (above is not None and value <= above)
        or (maximum is not None and value > maximum)
        or (below is not None and value >= below)
    ):
        raise KdcliError(f"must be {bounds}", option=option, value=value)


def check_max_length(value: object) -> None:
    """`max_length`, the token limit every command that tokenizes takes."""
    check_int("max_length", value, MIN_MAX_LENGTH)


def check_choice(option: str, value: str | None, choices: Sequence[str]) -> None:
    if value is not None and value not in choices:
        raise KdcliError(
            "is unknown", option=option, value=value, fix=f"choose one of {', '.join(choices)}"
        )


def check_names(option: str, value: object) -> list[str] | None:
    """A list of names (languages, ...) as a list: a string is one of the easy mistakes of the
    Python API (`languages="en-US,de-DE"` would be read letter by letter)."""
    if value is None:
        return None
    if not isinstance(value, list | tuple) or not all(isinstance(item, str) for item in value):
        raise KdcliError(
            "is not a list of names",
            option=option,
            value=value,
            fix='give a list such as ["en-US", "de-DE"]',
        )
    return list(value)


def _bounds(
    minimum: float | None, above: float | None, maximum: float | None, below: float | None
) -> str:
    """`between 0 and 1`, `zero or more`, `greater than zero and below 1`, ..."""
    if minimum is not None and maximum is not None:
        return f"between {_number(minimum)} and {_number(maximum)}"
    parts = []
    if minimum is not None:
        parts.append("zero or more" if minimum == 0 else f"at least {_number(minimum)}")
    if above is not None:
        parts.append("greater than zero" if above == 0 else f"greater than {_number(above)}")
    if maximum is not None:
        parts.append(f"at most {_number(maximum)}")
    if below is not None:
        parts.append(f"below {_number(below)}")
    return " and ".join(parts)


def _number(bound: float) -> str:
    return str(int(bound)) if float(bound).is_integer() else str(bound)
