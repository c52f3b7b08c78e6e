"""`kdcli predict`: label every text of a file with any kdcli model, chunk by chunk.

The model is anything `open_predictor` opens: a PyTorch model directory or Hub id, a kdcli export
directory (fp32 or int8 ONNX) or an .onnx file, so the deployed model is run exactly as `eval` and
`export` verification run it. The file is read and written a chunk at a time, so its size is not
bounded by memory, and the output keeps every input column: `label` becomes the prediction (the
input's own label moves to `true_label`) with its `score` (softmax probability) and, with
`top_k > 1`, the `top_k` labels and scores. That makes the output a `--data` file for finetune and
distill as it stands: pseudo-labels for unlabelled text.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kdcli.core.errors import KdcliError, option_ref
from kdcli.core.progress import ProgressCallback, report
from kdcli.core.results import JsonResult
from kdcli.core.validation import check_choice, check_int, check_max_length
from kdcli.data.row_stream import RowFile, open_rows
from kdcli.data.sources import Columns
from kdcli.files.model_dirs import LoadOptions
from kdcli.files.row_files import check_row_file, row_writer
from kdcli.runtime.predictor import VARIANTS

if TYPE_CHECKING:
    import numpy as np

    from kdcli.runtime.predictor import Predictor

CHUNK = 4096  # texts tokenized, sorted by length and run together; bounds the memory in use
LABEL, SCORE, TOP_K, TRUE_LABEL = "label", "score", "top_k", "true_label"


@dataclass(frozen=True)
class PredictConfig:
    """Everything `kdcli predict` can be told."""

    model: str
    data: str | Path
    out: Path
    top_k: int = 1
    text_column: str | None = None
    label_column: str | None = None
    language_column: str | None = None
    variant: str = "auto"  # export directories: auto (int8 when present), fp32 or int8
    batch_size: int = 32
    max_length: int = 128
    threads: int | None = None
    device: str = "cpu"
    overwrite: bool = False
    revision: str | None = None
    allow_pickle: bool = False


@dataclass(frozen=True)
class PredictResult(JsonResult):
    out: Path
    model: str
    kind: str  # pytorch, onnx or onnx-int8
    rows: int
    columns: dict[str, str | None]  # the input columns used: text, label, language
    predicted: dict[str, int]  # label -> texts predicted as it, most frequent first
    top_k: int
    seconds: float
    texts_per_second: float
    accuracy: float | None = None  # with a label column: share of texts whose label matches
    accuracy_by_language: dict[str, float] | None = None
    notes: list[str] = field(default_factory=list)


def predict(config: PredictConfig, progress: ProgressCallback | None = None) -> PredictResult:
    """Label every text of `config.data` with `config.model` and write `config.out`."""
    from kdcli.runtime.predictor import open_predictor

    started = time.perf_counter()
    _check_options(config)
    out = Path(config.out)
    if out.exists() and out.resolve() == Path(config.data).expanduser().resolve():
        raise KdcliError(
            f"is the {option_ref('data')} file",
            option="out",
            value=out,
            fix="write the predictions to another file",
        )
    check_row_file(out, config.overwrite)
    rows = open_rows(
        config.data, Columns(config.text_column, config.label_column, config.language_column)
    )
    report(progress, "load model", 0, None)
    predictor = open_predictor(
        config.model,
        variant=config.variant,
        threads=config.threads,
        device=config.device,
        options=LoadOptions(config.revision, config.allow_pickle),
    )
    labels = _check_model(predictor, config)
    tally = _Tally(rows)
    with row_writer(out, config.overwrite) as writer:
        done = 0
        for chunk in rows.chunks(CHUNK):
            texts = [str(record[rows.text]) for record in chunk]
            logits = predictor.logits(
                texts, config.batch_size, config.max_length, _progress(progress, done, rows.rows)
            )
            writer.write(_labelled(chunk, logits, labels, rows, config.top_k, tally))
            done += len(chunk)
    seconds = time.perf_counter() - started
    return PredictResult(
        out=out,
        model=predictor.name,
        kind=predictor.kind,
        rows=writer.rows,
        columns={"text": rows.text, "label": rows.label, "language": rows.language},
        predicted=dict(tally.predicted.most_common()),
        top_k=config.top_k,
        seconds=seconds,
        texts_per_second=writer.rows / seconds if seconds else 0.0,
        accuracy=tally.accuracy(),
        accuracy_by_language=tally.accuracy_by_language(),
        notes=tally.notes(labels),
    )


def _progress(
    progress: ProgressCallback | None, base: int, total: int
) -> Callable[[int, int], None]:
    """The predictor's per-batch count within one chunk, as texts done of the whole file."""

    def batch_done(done: int, _: int) -> None:
        report(progress, "predict", base + done, total)

    return batch_done


def _check_options(config: PredictConfig) -> None:
    check_choice("variant", config.variant, VARIANTS)
    check_int("top_k", config.top_k)
    check_int("batch_size", config.batch_size)
    check_int("threads", config.threads, optional=True)
    check_max_length(config.max_length)


def _check_model(predictor: Predictor, config: PredictConfig) -> list[str]:
    """The model's label names by id; a model that does not label whole texts is refused."""
    if predictor.head != "sequence-classification":
        raise KdcliError(
            f"{predictor.name} is a {predictor.head} model: kdcli predict labels whole texts; "
            "use a sequence classifier"
        )
    labels = [predictor.id2label[i] for i in sorted(predictor.id2label)]
    if config.top_k > len(labels):
        raise KdcliError(
            f"is more than the {len(labels)} labels of {predictor.name}",
            option="top_k",
            value=config.top_k,
            fix=f"choose at most {len(labels)}",
        )
    return labels


def _labelled(
    chunk: list[dict[str, Any]],
    logits: np.ndarray,
    labels: list[str],
    rows: RowFile,
    top_k: int,
    tally: _Tally,
) -> list[dict[str, Any]]:
    """Each input record with the prediction in `label` (its own label in `true_label`)."""
    import numpy as np

    shifted = logits - logits.max(axis=1, keepdims=True)
    probs = np.exp(shifted)
    probs /= probs.sum(axis=1, keepdims=True)
    order = np.argsort(-probs, axis=1, kind="stable")[:, :top_k]
    labelled = []
    for record, row_probs, best in zip(chunk, probs, order, strict=True):
        result = {k: v for k, v in record.items() if k != rows.label}
        result[LABEL] = labels[best[0]]
        result[SCORE] = round(float(row_probs[best[0]]), 6)
        if top_k > 1:
            result[TOP_K] = [
                {"label": labels[i], "score": round(float(row_probs[i]), 6)} for i in best
            ]
        if rows.label is not None:
            result[TRUE_LABEL] = record[rows.label]
        tally.add(record, result[LABEL])
        labelled.append(result)
    return labelled


class _Tally:
    """Predicted labels, and accuracy (overall and per language) where the file has labels."""

    def __init__(self, rows: RowFile) -> None:
        self.rows = rows
        self.predicted: Counter[str] = Counter()
        self.right: Counter[str] = Counter()
        self.seen: Counter[str] = Counter()
        self.gold: Counter[str] = Counter()

    def add(self, record: dict[str, Any], label: str) -> None:
        self.predicted[label] += 1
        if self.rows.label is None:
            return
        gold = str(record.get(self.rows.label))
        language = str(record.get(self.rows.language, "und")) if self.rows.language else "und"
        self.gold[gold] += 1
        self.seen[language] += 1
        self.right[language] += int(gold == label)

    def accuracy(self) -> float | None:
        total = sum(self.seen.values())
        return sum(self.right.values()) / total if total else None

    def accuracy_by_language(self) -> dict[str, float] | None:
        if self.rows.language is None or not self.seen:
            return None
        return {k: self.right[k] / self.seen[k] for k in sorted(self.seen)}

    def notes(self, labels: list[str]) -> list[str]:
        unknown = sorted(set(self.gold) - set(labels))
        if not unknown:
            return []
        count = sum(self.gold[g] for g in unknown)
        shown = ", ".join(unknown[:5]) + (", ..." if len(unknown) > 5 else "")
        return [
            f"{count} texts have labels the model does not know ({shown}): they count as wrong "
            f"in the accuracy; check {option_ref('label_column')} {self.rows.label}"
        ]
