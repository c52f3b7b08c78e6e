"""The shared behaviour of result objects: `to_dict()` is what `--json` writes."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any


class JsonResult:
    """Mixin for result dataclasses: a JSON-ready dict (paths as text, tuples as lists)."""

    def to_dict(self) -> dict[str, Any]:
        return _plain(asdict(self))  # type: ignore[call-overload]


def _plain(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value
