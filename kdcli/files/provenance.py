"""`kdcli.json`: what was done to a model, from what, with which settings.

Each stage writes one record and carries the records of its input model in `history`, newest first,
so a distilled student still knows which teacher layers it was copied from. Records hold no
timestamps or timings, so the same inputs and seed give byte-identical files.
"""

from __future__ import annotations

import json
import os
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
    """The record in `model_dir`, or None for models made elsewhere. A record of the wrong shape
    (not an object, a history that is not a list of objects) is an error; fields of the wrong
    type inside a record are read as missing (see `entry_field`)."""
    path = Path(model_dir) / PROVENANCE_FILE
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise KdcliError(f"{path} is not valid JSON ({err}): fix or delete the file") from err
    if not isinstance(record, dict):
        raise KdcliError(f"{path} does not hold a JSON object: fix or delete the file")
    history = record.get("history", [])
    if not isinstance(history, list) or not all(isinstance(h, dict) for h in history):
        raise KdcliError(
            f"{path} is malformed (its history is not a list of records): fix or delete the file"
        )
    return record


def entry_field(entry: Any, *keys: str) -> Any:
    """entry[k1][k2]... or None when a level is missing or not an object: hand-edited or
    foreign kdcli.json files are read without crashing."""
    value = entry
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def lineage_entries(record: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Every stage record of a model's lineage, newest first: its own, then its history (a
    malformed history, not a list of records, is read as none)."""
    if not isinstance(record, dict):
        return []
    history = record.get("history")
    older = [h for h in history if isinstance(h, dict)] if isinstance(history, list) else []
    return [record, *older]


def with_history(
    record: dict[str, Any],
    parent: dict[str, Any] | None,
    parent_dir: Path | None = None,
    out: Path | None = None,
) -> dict[str, Any]:
    """`record` followed by the parent's record and the parent's own history. Given where the
    parent lives and where the new record goes, the paths of the parent's records are made
    relative to the new folder (a record's paths are relative to its own kdcli.json)."""
    if parent is None:
        return record
    older = lineage_entries(parent)
    older[0] = {k: v for k, v in older[0].items() if k != "history"}
    if parent_dir is not None and out is not None:
        older = [_rebased(entry, Path(parent_dir), Path(out)) for entry in older]
    return {**record, "history": older}


# --- paths in records ---------------------------------------------------------------------------
# A local model or data set is recorded as {"model": <its folder name>, "path": <relative to the
# folder that holds this kdcli.json>, "resolved": <absolute, when it was written>}: the folders
# can move together (the relative path still holds) or apart (the absolute one may), and the
# record never depends on the directory kdcli ran in. Hub models are {"model": id, "revision"}.


def describe_local(path: Path, out: Path) -> dict[str, str]:
    """`path` as a record of the output `out` stores it."""
    resolved = Path(path).resolve()
    return {
        "model": resolved.name,
        "path": os.path.relpath(resolved, Path(out).resolve()),
        "resolved": str(resolved),
    }


def recorded_path(description: Any, model_dir: Path) -> str | None:
    """The local path a record's {"path", "resolved"} names, found from `model_dir` (the
    folder of the kdcli.json) or at its absolute path; None when neither exists. Records written
    before paths were recorded this way hold only "model", as the user typed it."""
    if not isinstance(description, dict):
        return None
    relative, resolved = description.get("path"), description.get("resolved")
    if isinstance(relative, str) and relative:
        candidate = Path(os.path.normpath(Path(model_dir) / relative))
        if candidate.exists():
            return str(candidate)
    if isinstance(resolved, str) and resolved and Path(resolved).exists():
        return resolved
    if relative is None and resolved is None and isinstance(description.get("model"), str):
        return str(description["model"])  # a Hub id, or an old record's path
    return None


def recorded_model(record: dict[str, Any] | None, key: str, model_dir: Path) -> str | None:
    """The model that field `key` (source, teacher, student) of the newest record names."""
    return recorded_path(entry_field(record, key), model_dir)


def _rebased(entry: dict[str, Any], parent_dir: Path, out: Path) -> dict[str, Any]:
    rebased = dict(entry)
    for key, value in entry.items():
        if isinstance(value, dict) and isinstance(value.get("path"), str):
            found = recorded_path(value, parent_dir)
            if found is not None:
                rebased[key] = {**value, **describe_local(Path(found), out)}
                rebased[key]["model"] = value.get("model", rebased[key]["model"])
    return rebased


def write_provenance(out_dir: Path, record: dict[str, Any]) -> Path:
    path = Path(out_dir) / PROVENANCE_FILE
    path.write_text(dumps(record) + "\n", encoding="utf-8")
    return path


def find_stage(record: dict[str, Any] | None, stage: str) -> dict[str, Any] | None:
    """The newest record of `stage` in a model's lineage (itself first, then its history)."""
    return next((entry for entry in lineage_entries(record) if entry.get("stage") == stage), None)


def dumps(data: Any) -> str:
    """The one JSON style of kdcli's files: readable, stable, UTF-8; objects indented, and a list
    of numbers (or of short number lists, like kept-index ranges) on one line. Indented one
    number per line, a trimmed vocabulary's 70,000 kept ranges took 3 MB in every later
    stage's kdcli.json instead of 0.9 MB."""
    plain = json.loads(json.dumps(data, ensure_ascii=False, default=_json_default))
    return _dumps(plain, 0)


def _dumps(value: Any, level: int) -> str:
    if isinstance(value, dict) and value:
        inner = "  " * (level + 1)
        items = [
            f"{inner}{json.dumps(key, ensure_ascii=False)}: {_dumps(item, level + 1)}"
            for key, item in value.items()
        ]
        return "{\n" + ",\n".join(items) + "\n" + "  " * level + "}"
    if isinstance(value, list) and value and not _flat(value):
        inner = "  " * (level + 1)
        items = [inner + _dumps(item, level + 1) for item in value]
        return "[\n" + ",\n".join(items) + "\n" + "  " * level + "]"
    return json.dumps(value, ensure_ascii=False)


def _flat(items: list[Any]) -> bool:
    """Numbers, or lists of at most a few numbers: one line reads better than one per line."""
    return all(
        _number(x) or (isinstance(x, list) and len(x) <= 4 and all(map(_number, x))) for x in items
    )


def _number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


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
        kept = entry_field(entry, "layers", "kept")
        kept_text = ",".join(map(str, kept)) if isinstance(kept, list) else "?"
        vocab = entry_field(entry, "vocab", "student")
        trimmed = f", vocab {vocab:,}" if isinstance(vocab, int) else ""
        return f"shrink ({entry.get('init', '?')}, layers {kept_text}{trimmed})"
    if stage == "distill":
        loss = entry_field(entry, "distillation", "kd_loss")
        alpha = entry_field(entry, "distillation", "alpha")
        return f"distill ({loss}, α {alpha})" if loss else "distill (no KD)"
    if stage == "export":
        quantize = entry_field(entry, "settings", "quantize")
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
