"""What `study` and `search` check before a job starts: axis values, the teacher, the data.

Every check here raises a one-line `KdcliError` naming the option, before the job directory is
made, so a bad value leaves nothing behind.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kdcli.core.errors import KdcliError, option_ref
from kdcli.data.splits import DataConfig, Examples, load_split
from kdcli.files.model_dirs import (
    LoadOptions,
    ModelRef,
    content_hash,
    head_kind,
    read_config_dict,
    resolve_model,
    weight_files,
)
from kdcli.files.provenance import find_stage, read_provenance, recorded_path
from kdcli.surgery.architectures import architecture_for


def as_list(option: str, value: str | Sequence[Any] | None) -> list[str]:
    """`3,6` or a YAML/Python list as stripped text items (for the setting `option`); an empty
    list is an error."""
    if value is None:
        raise KdcliError("is empty", option=option, fix="give at least one value")
    items = value.split(",") if isinstance(value, str) else [str(v) for v in value]
    cleaned = [item.strip() for item in items]
    if not cleaned or any(not item for item in cleaned):
        raise KdcliError(
            "is empty or has an empty item",
            option=option,
            value=_given(value),
            fix="give comma-separated values",
        )
    repeated = sorted({item for item in cleaned if cleaned.count(item) > 1})
    if repeated:
        raise KdcliError(
            f"repeats {', '.join(repeated)}",
            option=option,
            value=_given(value),
            fix="give each once",
        )
    return cleaned


def choices(option: str, value: str | Sequence[Any] | None, allowed: Sequence[str]) -> list[str]:
    items = as_list(option, value)
    unknown = [item for item in items if item not in allowed]
    if unknown:
        raise KdcliError(
            f": {', '.join(unknown)} is unknown",
            option=option,
            value=_given(value),
            fix=f"choose from {', '.join(allowed)}",
        )
    return items


def integers(
    option: str, value: str | Sequence[Any] | None, minimum: int, maximum: int | None = None
) -> list[int]:
    items = as_list(option, value)
    try:
        numbers = [int(item) for item in items]
    except ValueError as err:
        raise KdcliError(
            "is not a list of integers",
            option=option,
            value=_given(value),
            fix=f"give e.g. {option_ref(option)} 0,1,2",
        ) from err
    bad = [n for n in numbers if n < minimum or (maximum is not None and n > maximum)]
    if bad:
        bounds = f"at least {minimum}" + (f" and at most {maximum}" if maximum is not None else "")
        raise KdcliError(
            f": {bad[0]} is out of range", option=option, value=_given(value), fix=f"give {bounds}"
        )
    return numbers


def fractions(option: str, value: str | Sequence[Any] | None) -> list[float]:
    """Factors in (0, 1], e.g. widths `1,0.75,0.5`."""
    items = as_list(option, value)
    try:
        numbers = [float(item) for item in items]
    except ValueError as err:
        raise KdcliError(
            "is not a list of numbers",
            option=option,
            value=_given(value),
            fix=f"give e.g. {option_ref(option)} 1,0.75,0.5",
        ) from err
    bad = [n for n in numbers if not 0 < n <= 1]
    if bad:
        raise KdcliError(
            f": {bad[0]:g} is out of range",
            option=option,
            value=_given(value),
            fix="give fractions of the teacher's width above 0 and at most 1",
        )
    return numbers


def _given(value: Any) -> object:
    """A value as errors show it: a list comma-separated, text quoted."""
    return ",".join(map(str, value)) if isinstance(value, list | tuple) else value


def absolute(value: str) -> str:
    """A local path as an absolute path (so a job's records do not depend on the working
    directory); anything else (a Hub id, `massive`) unchanged."""
    path = Path(value).expanduser()
    return str(path.absolute()) if path.exists() else value


@dataclass(frozen=True)
class Teacher:
    """The fine-tuned teacher of a study or a search, as far as the checks need it."""

    ref: ModelRef
    config: dict[str, Any]
    dims: dict[str, int]  # layers, hidden, intermediate, heads
    record: dict[str, Any] | None
    sha256: str

    @property
    def name(self) -> str:
        return self.ref.name

    @property
    def vocab_size(self) -> int:
        return int(self.config.get("vocab_size") or 0)

    def base_model(self) -> str | None:
        """The pre-trained encoder it was fine-tuned from, per its kdcli.json (a local one found
        from the teacher's folder, as kdcli.json records it; None when it is gone)."""
        finetune = find_stage(self.record, "finetune")
        return recorded_path((finetune or {}).get("source"), self.ref.path)


def load_teacher(name: str, allow_pickle: bool = False) -> Teacher:
    ref = resolve_model(name, LoadOptions(allow_pickle=allow_pickle))
    config = read_config_dict(ref)
    kind = head_kind(config, ref.name)
    if kind != "sequence-classification":
        raise KdcliError(
            f"teacher {ref.name} has no sequence-classification head ({kind}): fine-tune it "
            "first with kdcli finetune"
        )
    dims = architecture_for(config, ref.name).teacher_dims(config)
    files = weight_files(ref, allow_pickle)
    return Teacher(ref, config, dims, read_provenance(ref.path), content_hash(files))


def data_config(data: DataConfig | str) -> DataConfig:
    """The job's data with local paths made absolute."""
    if isinstance(data, DataConfig):
        from dataclasses import replace

        return replace(data, data=absolute(data.data))
    return DataConfig(absolute(str(data)))


def check_data(data: DataConfig, split: str) -> Examples:
    """Read the split the job reports on (and fail now, not after the first cell trained)."""
    return load_split(data, split)


def eval_config(data: DataConfig, models: Sequence[str], split: str, train: Any) -> Any:
    """The `kdcli eval` of some models on the job's data."""
    from kdcli.steps.evaluate import EvalConfig

    return EvalConfig(
        models=list(models),
        data=data.data,
        split=split,
        languages=list(data.languages) if data.languages else None,
        batch_size=train.eval_batch_size,
        max_length=train.max_length,
        text_column=data.text_column,
        label_column=data.label_column,
        language_column=data.language_column,
    )
