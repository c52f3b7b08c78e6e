"""The per-language report of `kdcli eval`: every model's scores on one split, compared with the
first model. Pure data and scoring (no model runs here): `steps/evaluate.py` runs the models,
`report_files.py` writes the report's files, the CLI draws its tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kdcli.core.errors import KdcliError
from kdcli.data.splits import Examples
from kdcli.evaluation.metrics import (
    Aggregate,
    Change,
    LanguageScore,
    aggregate,
    compare_average,
    compare_languages,
    score_languages,
)
from kdcli.files.provenance import lineage, read_provenance


@dataclass(frozen=True)
class Speed:
    """Inference speed on this machine, tokenization excluded: the median latency of one text
    at a time over `samples` texts, and throughput at `batch_size` (threads None: the runtime's
    default)."""

    latency_ms: float
    throughput: float
    batch_size: int
    samples: int
    threads: int | None

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
    lineage: list[str] = field(default_factory=list)  # from its kdcli.json, oldest step first

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
            "lineage": list(self.lineage),
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
                lineage=_lineage(run.path),
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


def _lineage(path: str) -> list[str]:
    """What kdcli did to make a local model (its kdcli.json), for the report's "made by" row."""
    folder = Path(path)
    folder = folder.parent if folder.suffix == ".onnx" else folder
    if not folder.is_dir():
        return []
    try:
        return lineage(read_provenance(folder))
    except KdcliError:
        return ["(unreadable kdcli.json)"]
