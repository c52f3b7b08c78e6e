"""The per-language report of `kdcli eval`: every model's scores on one split, compared with the
first model. Pure data and scoring (no model runs here): `steps/evaluate.py` runs the models,
`report_files.py` writes the report's files, the CLI draws its tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kdcli.core.errors import KdcliError
from kdcli.data.splits import Examples
from kdcli.data.tags import TagCounts
from kdcli.evaluation.metrics import (
    Aggregate,
    Change,
    LanguageScore,
    aggregate,
    aggregate_tokens,
    compare_average,
    compare_languages,
    f1_noise,
    paired_average_p,
    paired_language_p,
    score_languages,
    score_token_languages,
)
from kdcli.files.provenance import lineage, read_provenance

if TYPE_CHECKING:
    from kdcli.core.machine import MachineState


@dataclass(frozen=True)
class Speed:
    """Inference speed on this machine, tokenization excluded: the latency of one text at a time
    (per round the median over `samples` texts) and throughput at `batch_size`, each the median
    of `rounds` rounds interleaved with the other models, with the fastest and slowest round
    (threads None: the runtime's default)."""

    latency_ms: float
    throughput: float
    batch_size: int
    samples: int
    threads: int | None
    latency_low_ms: float | None = None  # the fastest and slowest of the timing rounds
    latency_high_ms: float | None = None
    throughput_low: float | None = None
    throughput_high: float | None = None
    rounds: int = 1

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
    predictions: list[Any] = field(repr=False)  # a label, or (token classification) tags per word
    changes: dict[str, Change] | None = None
    average_change: Change | None = None
    speed: Speed | None = None
    seconds: float = 0.0
    lineage: list[str] = field(default_factory=list)  # from its kdcli.json, oldest step first
    pooled_type_f1: dict[str, float] | None = None  # token classification, all languages
    warning: str | None = None  # an export that failed its verification, or a CPU mismatch

    def to_dict(self) -> dict[str, Any]:
        """The documented JSON shape (docs/report.md); keys may be added, never renamed."""
        s = self.summary
        average: dict[str, Any] = {"accuracy": s.average_accuracy, "macro_f1": s.average_macro_f1}
        pooled: dict[str, Any] = {"accuracy": s.pooled_accuracy, "n": s.n}
        worst: dict[str, Any] = {"language": s.worst_language, "accuracy": s.worst_accuracy}
        if s.average_f1 is not None:  # token classification: entity scores
            average["f1"] = s.average_f1
            pooled.update(precision=s.pooled_precision, recall=s.pooled_recall, f1=s.pooled_f1)
            pooled["type_f1"] = dict(self.pooled_type_f1 or {})
            worst["f1"] = s.worst_f1
        return {
            "name": self.name,
            "path": self.path,
            "kind": self.kind,
            "languages": {lang: score.to_dict() for lang, score in self.languages.items()},
            "average": average,
            "pooled": pooled,
            "worst": worst,
            "params": self.params,
            "size_bytes": self.size_bytes,
            "vs_first": self._changes_dict(),
            "speed": self.speed.to_dict() if self.speed else None,
            "seconds": self.seconds,
            "lineage": list(self.lineage),
            "warning": self.warning,
        }

    def _changes_dict(self) -> dict[str, Any] | None:
        if self.changes is None or self.average_change is None:
            return None
        return {
            "languages": {lang: c.to_dict() for lang, c in self.changes.items()},
            "average": self.average_change.to_dict(),
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
    gold: list[Any] = field(repr=False)  # labels, or (token classification) tags per word
    example_languages: list[str] = field(repr=False)
    notes: list[str] = field(default_factory=list)
    task: str = "sequence-classification"
    words: list[list[str]] | None = field(default=None, repr=False)
    machine: MachineState | None = None  # what --speed measured on

    @property
    def language_names(self) -> list[str]:
        return list(self.models[0].languages) if self.models else []

    @property
    def metric_names(self) -> tuple[str, str]:
        """The two scores tables show, as `LanguageScore.first` and `.second` hold them."""
        if self.task == "token-classification":
            return "entity F1", "word accuracy"
        return "accuracy", "macro-F1"

    @property
    def paired_test(self) -> str:
        """How changes against the first model are tested, in words for captions."""
        if self.task == "token-classification":
            return "paired bootstrap over the same sentences"
        return "paired test on the same examples"

    def to_dict(self) -> dict[str, Any]:
        return {
            "split": self.split,
            "data": self.data,
            "task": self.task,
            "n": len(self.gold),
            "models": [m.to_dict() for m in self.models],
            "notes": list(self.notes),
            "machine": self.machine.to_dict() if self.machine else None,
        }


@dataclass(frozen=True)
class ModelRun:
    """What running one model produced: the raw material of an EvalResult."""

    name: str
    path: str
    kind: str
    predictions: list[Any]
    params: int
    size_bytes: int
    speed: Speed | None = None
    seconds: float = 0.0


def build_report(
    examples: Examples,
    runs: Sequence[ModelRun],
    notes: Sequence[str] = (),
    machine: MachineState | None = None,
) -> EvalReport:
    """Score every run per language and compare each with the first. Pure: no models needed.
    `notes` (about the run, e.g. a --max-length cut) follow the data's own notes."""
    if not runs:
        raise ValueError("no model runs to report")
    scored = (
        _score_tokens(examples.tags, runs, examples.languages)
        if examples.tags is not None
        else _score_labels(examples.labels, runs, examples.languages)
    )
    results: list[EvalResult] = []
    for run, score in zip(runs, scored, strict=True):
        first = results[0] if results else None
        results.append(
            EvalResult(
                name=run.name,
                path=run.path,
                kind=run.kind,
                languages=score.languages,
                summary=score.summary,
                params=run.params,
                size_bytes=run.size_bytes,
                predictions=list(run.predictions),
                changes=(
                    compare_languages(first.languages, score.languages, score.languages_p)
                    if first
                    else None
                ),
                average_change=(
                    compare_average(first.summary, score.summary, score.average_p)
                    if first
                    else None
                ),
                speed=run.speed,
                seconds=run.seconds,
                lineage=_lineage(run.path),
                pooled_type_f1=score.type_f1,
                warning=export_warning(run.path, run.kind),
            )
        )
    return EvalReport(
        split=examples.split,
        data=examples.source,
        models=results,
        ids=list(examples.ids),
        texts=list(examples.texts),
        gold=list(examples.tags if examples.tags is not None else examples.labels),
        example_languages=list(examples.languages),
        notes=[
            *examples.notes,
            *notes,
            *(f"{result.name}: {result.warning}" for result in results if result.warning),
        ],
        task=examples.task,
        words=examples.words,
        machine=machine,
    )


@dataclass(frozen=True)
class _Scored:
    """One model's scores, and its paired tests' p-values against the first model (None for
    the first) per language and of the average over languages."""

    languages: dict[str, LanguageScore]
    summary: Aggregate
    type_f1: dict[str, float] | None = None  # token classification, all languages pooled
    languages_p: dict[str, float] | None = None
    average_p: float | None = None


def _score_labels(
    gold: Sequence[str], runs: Sequence[ModelRun], languages: Sequence[str]
) -> list[_Scored]:
    """Sequence classification: accuracy with its Wilson interval; McNemar per language and a
    paired z-test of the average, on right/wrong per example."""
    scored: list[_Scored] = []
    right: list[list[bool]] = []
    for run in runs:
        scores = score_languages(gold, run.predictions, languages)
        right.append([p == g for p, g in zip(run.predictions, gold, strict=True)])
        tested = len(right) > 1
        scored.append(
            _Scored(
                scores,
                aggregate(scores),
                languages_p=paired_language_p(right[0], right[-1], languages) if tested else None,
                average_p=paired_average_p(right[0], right[-1], languages) if tested else None,
            )
        )
    return scored


def _score_tokens(
    gold: Sequence[Sequence[str]], runs: Sequence[ModelRun], languages: Sequence[str]
) -> list[_Scored]:
    """Token classification: entity scores per language, the entity F1's bootstrap interval,
    and paired bootstrap tests of its changes (all models at once: they share resamples)."""
    scored = []
    sentences = []
    for run in runs:
        scores, counts, per_sentence = score_token_languages(gold, run.predictions, languages)
        pooled = TagCounts()
        for language_counts in counts.values():
            pooled.merge(language_counts)
        scored.append(_Scored(scores, aggregate_tokens(scores, counts), pooled.type_f1()))
        sentences.append(per_sentence)
    result = []
    for plain, noise in zip(scored, f1_noise(sentences), strict=True):
        bounded = {}
        for language, score in plain.languages.items():
            low, high = noise.intervals[language]
            bounded[language] = replace(score, f1_low=low, f1_high=high)
        result.append(
            replace(plain, languages=bounded, languages_p=noise.p_values, average_p=noise.average_p)
        )
    return result


def export_warning(path: str, kind: str) -> str | None:
    """Why the scores of a kdcli export may not be what its user expects: the export failed
    its own verification, or its int8 file needs CPU features this CPU lacks."""
    folder = Path(path)
    folder = folder.parent if folder.suffix == ".onnx" else folder
    try:
        record = read_provenance(folder) if folder.is_dir() else None
    except KdcliError:
        return None
    if not record or record.get("stage") != "export":
        return None
    warnings = []
    if record.get("passed") is False:
        warnings.append(f"kdcli export marked it FAILED ({_failure(record)})")
    quantization = record.get("quantization") or {}
    if kind == "onnx-int8" and quantization.get("reduce_range") is False:
        from kdcli.runtime.onnx_graph import cpu_int8
        from kdcli.runtime.predictor import EXACT_INT8_KERNELS

        cpu = cpu_int8()
        if cpu.reduce_range:  # this CPU needs 7-bit weights; the file has 8-bit ones
            warnings.append(
                f"its int8 weights use all 8 bits, which this CPU ({cpu.reason}) can saturate: "
                f"kdcli runs it on {EXACT_INT8_KERNELS}; serve it with that option, "
                "or re-export with --reduce-range to serve on this CPU"
            )
    return "; ".join(warnings) or None


def _failure(record: dict[str, Any]) -> str:
    verification = record.get("verification") or {}
    reasons = []
    for key, word in (("fp32", "fp32"), ("int8", "int8")):
        check = verification.get(key) or {}
        if check.get("passed") is False:
            reason = check.get("failure") or (
                f"top-1 agreement {check.get('agreement', 0):.1%}"
                if key == "int8"
                else f"max |Δlogit| {check.get('max_abs_diff', 0):.2g}"
            )
            reasons.append(f"{word}: {reason}")
    return "; ".join(reasons) or "verification failed"


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
