"""`kdcli eval`: per-language metrics of one or more models on one split, side by side.

Models are PyTorch model directories / Hub ids or `kdcli export` ONNX directories (fp32 or int8),
all run through `kdcli.inference`. The data is read once; every model is checked (it exists, it has
a tokenizer, it knows the data's labels) before the first one runs, then each model runs once over
the whole split and its predictions are scored per language. The first model is the reference:
the others get per-language deltas and retention against it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kdcli.config import check_positive, parse_csv
from kdcli.data import DataConfig, Examples, label_ids, load_split, normalize_split
from kdcli.errors import KdcliError
from kdcli.metrics import (
    Aggregate,
    Change,
    LanguageScore,
    aggregate,
    compare_average,
    compare_languages,
    score_languages,
)
from kdcli.progress import ProgressCallback, report

SPEED_BATCH = 32  # the throughput batch size the report promises
SPEED_SAMPLES = 256  # examples timed for throughput (fewer if the split is smaller)
LATENCY_SAMPLES = 50  # single-example runs whose median is the latency


@dataclass(frozen=True)
class EvalConfig:
    """Everything `kdcli eval` can be told (output files are the CLI's business)."""

    models: Sequence[str]
    data: str
    split: str = "test"
    languages: str | Sequence[str] | None = None
    batch_size: int = 64
    max_length: int = 128
    threads: int | None = None
    speed: bool = False
    text_column: str | None = None
    label_column: str | None = None
    language_column: str | None = None
    revision: str | None = None
    data_revision: str | None = None
    allow_pickle: bool = False

    def data_config(self) -> DataConfig:
        return DataConfig(
            data=self.data,
            languages=parse_csv(self.languages),
            text_column=self.text_column,
            label_column=self.label_column,
            language_column=self.language_column,
            revision=self.data_revision,
        )


@dataclass(frozen=True)
class Speed:
    """Inference speed on this machine: batch-1 median latency and batch-32 throughput."""

    latency_ms: float
    throughput: float
    batch_size: int
    samples: int
    threads: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class EvalResult:
    """One model's scores on the split, and how it compares with the first model."""

    name: str
    path: str
    kind: str
    languages: dict[str, LanguageScore]
    summary: Aggregate
    params: int
    size_bytes: int
    predictions: list[str] = field(repr=False)
    changes: dict[str, Change] | None = None
    average_change: Change | None = None
    speed: Speed | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """The documented JSON shape (docs/report.md); keys may be added, never renamed."""
        s = self.summary
        return {
            "name": self.name,
            "path": self.path,
            "kind": self.kind,
            "languages": {lang: asdict(score) for lang, score in self.languages.items()},
            "average": {"accuracy": s.average_accuracy, "macro_f1": s.average_macro_f1},
            "pooled": {"accuracy": s.pooled_accuracy, "n": s.n},
            "worst": {"language": s.worst_language, "accuracy": s.worst_accuracy},
            "params": self.params,
            "size_bytes": self.size_bytes,
            "vs_first": self._changes_dict(),
            "speed": self.speed.to_dict() if self.speed else None,
            "seconds": self.seconds,
        }

    def _changes_dict(self) -> dict[str, Any] | None:
        if self.changes is None or self.average_change is None:
            return None
        return {
            "languages": {lang: asdict(c) for lang, c in self.changes.items()},
            "average": asdict(self.average_change),
        }


@dataclass(frozen=True)
class EvalReport:
    """All models on one split. `ids`, `texts`, `gold` and `example_languages` are the examples
    in data order; each result's `predictions` is parallel to them."""

    split: str
    data: str
    models: list[EvalResult]
    ids: list[str] = field(repr=False)
    texts: list[str] = field(repr=False)
    gold: list[str] = field(repr=False)
    example_languages: list[str] = field(repr=False)
    notes: list[str] = field(default_factory=list)

    @property
    def language_names(self) -> list[str]:
        return list(self.models[0].languages) if self.models else []

    def to_dict(self) -> dict[str, Any]:
        return {
            "split": self.split,
            "data": self.data,
            "n": len(self.gold),
            "models": [m.to_dict() for m in self.models],
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class ModelRun:
    """What running one model produced: the raw material of an EvalResult."""

    name: str
    path: str
    kind: str
    predictions: list[str]
    params: int
    size_bytes: int
    speed: Speed | None = None
    seconds: float = 0.0


def build_report(examples: Examples, runs: Sequence[ModelRun]) -> EvalReport:
    """Score every run per language and compare each with the first. Pure: no models needed."""
    if not runs:
        raise ValueError("no model runs to report")
    results: list[EvalResult] = []
    for run in runs:
        scores = score_languages(examples.labels, run.predictions, examples.languages)
        summary = aggregate(scores)
        first = results[0] if results else None
        results.append(
            EvalResult(
                name=run.name,
                path=run.path,
                kind=run.kind,
                languages=scores,
                summary=summary,
                params=run.params,
                size_bytes=run.size_bytes,
                predictions=list(run.predictions),
                changes=compare_languages(first.languages, scores) if first else None,
                average_change=compare_average(first.summary, summary) if first else None,
                speed=run.speed,
                seconds=run.seconds,
            )
        )
    return EvalReport(
        split=examples.split,
        data=examples.source,
        models=results,
        ids=list(examples.ids),
        texts=list(examples.texts),
        gold=list(examples.labels),
        example_languages=list(examples.languages),
        notes=list(examples.notes),
    )


def unique_names(paths: Sequence[str], kinds: Sequence[str]) -> list[str]:
    """Short column names for the models: the folder name, made unique where two collide.

    Collisions are resolved first by the model kind (the same export dir as fp32 and int8), then
    by adding parent folders (`run1/student` vs `run2/student`), then by a number.
    """
    names = [_short_name(p) for p in paths]
    if len(set(names)) == len(names):
        return names
    with_kind = [
        f"{n} ({k})" if names.count(n) > 1 else n for n, k in zip(names, kinds, strict=True)
    ]
    if len(set(with_kind)) == len(with_kind):
        return with_kind
    longer = [_short_name(p, parts=2) if names.count(n) > 1 else n for n, p in zip(names, paths)]
    if len(set(longer)) == len(longer):
        return longer
    return [f"{n} #{i + 1}" for i, n in enumerate(names)]


def _short_name(path: str, parts: int = 1) -> str:
    pieces = [p for p in Path(path).parts if p not in ("/", ".", "")]
    return "/".join(pieces[-parts:]) if pieces else str(path)


def check_options(config: EvalConfig) -> None:
    """Everything that can be checked without reading data or models."""
    if not config.models:
        raise KdcliError("no MODEL given: pass one or more model directories, Hub ids or exports")
    check_positive("--batch-size", config.batch_size)
    check_positive("--max-length", config.max_length)
    check_positive("--threads", config.threads)
    normalize_split(config.split)
