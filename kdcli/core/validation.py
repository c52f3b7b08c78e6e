"""Shared option handling: YAML config files and small validation helpers.

Each command's typed config dataclass lives beside the function it configures (`ShrinkConfig` in
`shrink.py`, ...); this module holds what they share.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kdcli.core.errors import KdcliError


def load_yaml_options(path: Path) -> dict[str, Any]:
    """A `--config FILE.yaml` as {option_name: value}; `num-layers` and `num_layers` both work."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise KdcliError(f"--config {path} does not exist: give the path of a YAML file")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise KdcliError(
            f"--config {path} is not valid YAML: {' '.join(str(err).split())}"
        ) from err
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise KdcliError(f"--config {path} must hold a mapping of option: value")
    return {str(key).replace("-", "_"): value for key, value in data.items()}


def check_known(options: dict[str, Any], known: set[str], where: str) -> None:
    unknown = sorted(set(options) - known)
    if unknown:
        allowed = ", ".join(sorted(k.replace("_", "-") for k in known))
        raise KdcliError(
            f"{where}: unknown option(s) {', '.join(unknown)}; allowed options are: {allowed}"
        )


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
