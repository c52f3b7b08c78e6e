"""`kdcli eval`: per-language metrics of one or more models on one split, side by side.

Models are PyTorch model directories / Hub ids or `kdcli export` ONNX directories (fp32 or int8),
all run through `kdcli.runtime.predictor`. The data is read once; every model is checked (it
exists, it has a tokenizer, it knows the data's labels) before the first one runs, then each model
runs once over the whole split and its predictions are scored per language
(`kdcli.evaluation.report`). The first model is the reference: the others get per-language deltas
and retention against it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kdcli.core.errors import KdcliError, option_ref
from kdcli.core.progress import ProgressCallback, report
from kdcli.core.validation import check_int, check_max_length, check_names
from kdcli.data.languages import by_language, round_robin
from kdcli.data.splits import (
    DataConfig,
    Examples,
    check_config,
    label_ids,
    load_split,
    normalize_split,
    tag_ids,
)
from kdcli.evaluation.report import EvalReport, ModelRun, Speed, build_report
from kdcli.files.model_dirs import (
    LoadOptions,
    check_tokenizer_files,
    clamp_max_length,
    label_names,
    read_config_dict,
    resolve_model,
)

if TYPE_CHECKING:
    from kdcli.core.machine import MachineState
    from kdcli.runtime.predictor import Latency, Predictor

SPEED_BATCH = 32  # the throughput batch size the report promises
LATENCY_TEXTS = 32  # single-text forward passes whose median is the latency
SPEED_ROUNDS = 5  # interleaved timing rounds: the report gives their median and spread


@dataclass(frozen=True)
class EvalConfig:
    """Everything `kdcli eval` can be told (output files are the CLI's business)."""

    models: Sequence[str]
    data: str
    split: str = "test"
    languages: Sequence[str] | None = None
    batch_size: int = 64
    max_length: int = 128
    threads: int | None = None
    speed: bool = False
    text_column: str | None = None
    label_column: str | None = None
    language_column: str | None = None
    allow_pickle: bool = False
    task: str | None = None  # None: the models' heads decide
    tag_scheme: str = "auto"

    def data_config(self, task: str | None = None) -> DataConfig:
        return DataConfig(
            data=self.data,
            languages=check_names("languages", self.languages),
            text_column=self.text_column,
            label_column=self.label_column,
            language_column=self.language_column,
            task=task or self.task,
            tag_scheme=self.tag_scheme,
        )


def unique_names(paths: Sequence[str], kinds: Sequence[str]) -> list[str]:
    """Short column names for the models: the folder name, made unique where two collide.

    Only colliding names change: first by the model kind (one export dir as fp32 and as int8),
    then by adding the parent folder (`run1/student` vs `run2/student`), then by their position.
    """
    names = [_short_name(p) for p in paths]
    steps = (
        lambda i: f"{_short_name(paths[i])} ({kinds[i]})",
        lambda i: _short_name(paths[i], parts=2),
        lambda i: f"{_short_name(paths[i])} #{i + 1}",
    )
    for step in steps:
        clashing = [i for i, name in enumerate(names) if names.count(name) > 1]
        if not clashing:
            break
        names = [step(i) if i in clashing else name for i, name in enumerate(names)]
    return names


def _short_name(path: str, parts: int = 1) -> str:
    folder = Path(path).parent if path.endswith(".onnx") else Path(path)  # name the export dir
    pieces = [p for p in folder.parts if p not in ("/", ".", "")]
    return "/".join(pieces[-parts:]) if pieces else str(path)


def check_options(config: EvalConfig) -> None:
    """Everything that can be checked without reading data or models."""
    if not config.models:
        raise KdcliError(
            f"no {option_ref('models')} given",
            fix="pass one or more model directories, Hub ids or exports",
        )
    check_int("batch_size", config.batch_size)
    check_max_length(config.max_length)
    check_int("threads", config.threads, optional=True)
    normalize_split(config.split)
    check_config(config.data_config())


@dataclass(frozen=True)
class ModelCheck:
    """What the cheap check of one MODEL found, before any weights are loaded."""

    reference: str
    kind: str
    labels: list[str]
    head: str = "sequence-classification"
    config: dict[str, Any] = field(default_factory=dict, repr=False)  # its config.json


def evaluate(config: EvalConfig, progress: ProgressCallback | None = None) -> EvalReport:
    """Score every model of `config` on its split, per language, side by side.

    Everything that can be wrong with the input is found before the first model runs: options,
    the data (languages, an empty split), each model (kind, tokenizer files, labels the data
    needs). Models are then loaded one at a time, so only one is in memory.
    """
    check_options(config)
    options = LoadOptions(allow_pickle=config.allow_pickle)
    checks = [check_model(model, options) for model in config.models]
    task = _task(config, checks)
    examples = load_split(config.data_config(task), config.split)
    if examples.task != task:
        raise KdcliError(
            f"holds {examples.task} examples, but the models are {task} models",
            option="data",
            value=config.data,
            fix="evaluate them on data of their task",
        )
    notes: list[str] = []
    for check in checks:
        if examples.tags is not None:  # a tag the model lacks breaks the spans it scores
            tag_ids(examples, {tag: i for i, tag in enumerate(check.labels)}, check.reference)
        elif note := _unknown_labels(examples, check):
            notes.append(note)
    names = unique_names([c.reference for c in checks], [c.kind for c in checks])
    _, note = clamp_max_length(config.max_length, {c.reference: c.config for c in checks})
    notes += [note] if note else []
    runs, predictors = [], {}
    for check, name in zip(checks, names, strict=True):
        run, predictor = _run_model(check.reference, name, examples, config, options, progress)
        runs.append(run)
        if config.speed:  # kept, to be timed side by side once every model has run
            predictors[name] = predictor
    machine = None
    if config.speed:
        runs, machine, warning = _time_models(runs, predictors, examples, config, progress)
        notes += [warning] if warning else []
    return build_report(examples, runs, notes=notes, machine=machine)


def _time_models(
    runs: list[ModelRun],
    predictors: dict[str, Predictor],
    examples: Examples,
    config: EvalConfig,
    progress: ProgressCallback | None,
) -> tuple[list[ModelRun], MachineState, str | None]:
    """Every model timed in interleaved rounds (so a machine that gets busier slows them all
    alike), and what the machine was doing meanwhile."""
    from kdcli.core.machine import load_average, machine_state, speed_warning
    from kdcli.runtime.predictor import measure_latency

    report(progress, "time models", 0, None)
    texts = speed_texts(examples, max(LATENCY_TEXTS, SPEED_BATCH))
    load = load_average()
    timed = measure_latency(
        predictors, texts, SPEED_BATCH, config.max_length, SPEED_ROUNDS, LATENCY_TEXTS
    )
    machine = machine_state(load)
    speeds = {name: _speed(latency, len(texts), config) for name, latency in timed.items()}
    warning = speed_warning(machine, max(latency.spread for latency in timed.values()))
    return [replace(run, speed=speeds[run.name]) for run in runs], machine, warning


def _unknown_labels(examples: Examples, check: ModelCheck) -> str | None:
    """A note when the data has labels the model does not know: it cannot predict them, so their
    examples count as its errors and the report is still made. A model that knows none of the
    data's labels is for other data: an error."""
    known = set(check.labels)
    unknown = sorted(set(examples.labels) - known)
    if not unknown:
        return None
    if not known & set(examples.labels):
        label_ids(examples, {label: i for i, label in enumerate(check.labels)}, check.reference)
    count = sum(1 for label in examples.labels if label in set(unknown))
    shown = ", ".join(unknown[:8]) + (f" (+{len(unknown) - 8} more)" if len(unknown) > 8 else "")
    return (
        f"{check.reference} does not know the label{'s' if len(unknown) > 1 else ''} {shown}: "
        f"its {count} {examples.split} example{'s' if count > 1 else ''} with "
        f"{'them' if len(unknown) > 1 else 'it'} count as errors"
    )


def _task(config: EvalConfig, checks: Sequence[ModelCheck]) -> str:
    """All models must have the same kind of head; `task`, when given, must be it."""
    heads = sorted({check.head for check in checks})
    if len(heads) > 1:
        kinds = ", ".join(f"{c.reference} ({c.head})" for c in checks)
        raise KdcliError(f"the models do not share a task: {kinds}; compare models of one task")
    if config.task is not None and config.task != heads[0]:
        raise KdcliError(
            f", but {checks[0].reference} is a {heads[0]} model",
            option="task",
            value=config.task,
            fix=f"drop {option_ref('task')}",
        )
    return heads[0]


def check_model(reference: str, options: LoadOptions | None = None) -> ModelCheck:
    """Find what MODEL is (PyTorch model or kdcli export) and that kdcli eval can run it,
    reading only small files (config.json, file names): no weights are loaded."""
    from kdcli.runtime.predictor import export_config, export_file, import_onnxruntime, onnx_kind

    onnx_file = export_file(reference)
    if onnx_file is not None:
        import_onnxruntime()  # a clear error now rather than after other models ran
        folder, kind = onnx_file.parent, onnx_kind(onnx_file)
        config = export_config(folder, reference)
    else:
        ref = resolve_model(reference, options)
        folder, kind, config = ref.path, "pytorch", read_config_dict(ref)
    check_tokenizer_files(folder, reference)
    head, labels = _labels(config, reference)
    return ModelCheck(reference, kind, labels, head, config)


def _labels(config: dict[str, Any], name: str) -> tuple[str, list[str]]:
    """The model's head and label names in id order, from config.json; a model without a
    classification head cannot be evaluated."""
    from kdcli.files.model_dirs import head_kind

    head = head_kind(config, name)
    if head not in ("sequence-classification", "token-classification"):
        raise KdcliError(
            f"{name} is a {head} model: kdcli eval scores sequence and token classifiers",
            fix="fine-tune it first (kdcli finetune)",
        )
    return head, label_names(config)


def _run_model(
    reference: str,
    name: str,
    examples: Examples,
    config: EvalConfig,
    options: LoadOptions,
    progress: ProgressCallback | None,
) -> tuple[ModelRun, Predictor]:
    """Load one model and predict the whole split once; returns the run and the model."""
    from kdcli.runtime.predictor import open_predictor

    started = time.perf_counter()
    task = f"eval {name}"
    report(progress, task, 0, len(examples))
    predictor = open_predictor(reference, threads=config.threads, options=options)
    batches = dict(
        batch_size=config.batch_size,
        max_length=config.max_length,
        progress=lambda done, total: report(progress, task, done, total),
    )
    predicted: list[Any]
    if examples.words is not None:
        predicted = predictor.word_tags(examples.words, **batches)  # type: ignore[arg-type]
    else:
        logits = predictor.logits(examples.texts, **batches)  # type: ignore[arg-type]
        predicted = [predictor.id2label[int(i)] for i in logits.argmax(axis=-1)]
    run = ModelRun(
        name=name,
        path=reference,
        kind=predictor.kind,
        predictions=predicted,
        params=int(predictor.num_parameters or 0),
        size_bytes=predictor.size_bytes,
        seconds=time.perf_counter() - started,
    )
    return run, predictor


def _speed(latency: Latency, texts: int, config: EvalConfig) -> Speed:
    return Speed(
        latency_ms=latency.batch1_ms,
        throughput=latency.texts_per_s,
        batch_size=latency.batch_size,
        samples=min(LATENCY_TEXTS, texts),
        threads=config.threads,
        latency_low_ms=latency.batch1_low_ms,
        latency_high_ms=latency.batch1_high_ms,
        throughput_low=latency.batch_size * 1000.0 / latency.batch_high_ms,
        throughput_high=latency.batch_size * 1000.0 / latency.batch_low_ms,
        rounds=latency.rounds,
    )


def speed_texts(examples: Examples, count: int) -> list[str]:
    """Up to `count` texts taken from every language in turn, so timings see each script."""
    chosen = round_robin(list(by_language(examples.languages).values()), count)
    return [examples.texts[i] for i in chosen]
