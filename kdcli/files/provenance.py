"""`kdcli.json`: what was done to a model, from what, with which settings.

Each stage writes one record and carries the records of its input model in `history`, newest first,
so a distilled student still knows which teacher layers it was copied from. Records hold no
timestamps or timings, so the same inputs and seed give byte-identical files.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kdcli._version import __version__
from kdcli.core.errors import KdcliError

PROVENANCE_FILE = "kdcli.json"


def make_record(stage: str, settings: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """A provenance record for `stage` with its resolved settings and any stage-specific fields."""
    return {"kdcli_version": __version__, "stage": stage, "settings": settings, **fields}


def read_provenance(model_dir: Path) -> dict[str, Any] | None:
    """The record in `model_dir`, or None for models made elsewhere."""
    path = Path(model_dir) / PROVENANCE_FILE
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise KdcliError(f"{path} is not valid JSON ({err}): fix or delete the file") from err
    if not isinstance(record, dict):
        raise KdcliError(f"{path} does not hold a JSON object: fix or delete the file")
    return record


def with_history(record: dict[str, Any], parent: dict[str, Any] | None) -> dict[str, Any]:
    """`record` followed by the parent's record and the parent's own history."""
    if parent is None:
        return record
    older = [{k: v for k, v in parent.items() if k != "history"}, *parent.get("history", [])]
    return {**record, "history": older}


def write_provenance(out_dir: Path, record: dict[str, Any]) -> Path:
    path = Path(out_dir) / PROVENANCE_FILE
    path.write_text(dumps(record) + "\n", encoding="utf-8")
    return path


def lineage_entries(record: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Every stage record of a model's lineage, newest first: its own, then its history."""
    if record is None:
        return []
    return [record, *record.get("history", [])]


def find_stage(record: dict[str, Any] | None, stage: str) -> dict[str, Any] | None:
    """The newest record of `stage` in a model's lineage (itself first, then its history)."""
    return next((entry for entry in lineage_entries(record) if entry.get("stage") == stage), None)


def dumps(data: Any) -> str:
    """The one JSON style of kdcli's files: readable, stable, UTF-8."""
    return json.dumps(data, indent=2, ensure_ascii=False, default=_json_default)


def _json_default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"cannot store {type(value).__name__} in kdcli.json")


def lineage(record: dict[str, Any] | None) -> list[str]:
    """How a model was made, oldest step first, one short phrase per kdcli stage."""
    return [_step_phrase(entry) for entry in reversed(lineage_entries(record))]


def _step_phrase(entry: dict[str, Any]) -> str:
    stage = str(entry.get("stage", "?"))
    if stage == "shrink":
        kept = ",".join(map(str, (entry.get("layers") or {}).get("kept", [])))
        vocab = entry.get("vocab")
        trimmed = f", vocab {vocab['student']:,}" if isinstance(vocab, dict) else ""
        return f"shrink ({entry.get('init', '?')}, layers {kept}{trimmed})"
    if stage == "distill":
        method = entry.get("distillation") or {}
        loss = method.get("kd_loss")
        return f"distill ({loss}, α {method.get('alpha')})" if loss else "distill (no KD)"
    if stage == "export":
        quantize = (entry.get("settings") or {}).get("quantize")
        return f"export ({'int8' if quantize == 'int8' else 'fp32'})"
    return stage


def to_ranges(indices: Sequence[int]) -> list[list[int]]:
    """[0,1,2,5,6] -> [[0,3],[5,7]]: compact, exact storage of kept indices in kdcli.json."""
    ranges: list[list[int]] = []
    for i in indices:
        if ranges and ranges[-1][1] == i:
            ranges[-1][1] = i + 1
        else:
            ranges.append([i, i + 1])
    return ranges


def from_ranges(ranges: Sequence[Sequence[int]]) -> list[int]:
    return [i for start, stop in ranges for i in range(start, stop)]
