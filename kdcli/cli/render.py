"""Terminal output for the CLI: Rich progress bars, result tables, hints. Only the CLI uses it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Column, Table

from kdcli.core.formatting import count_text as count
from kdcli.core.formatting import size_text as size
from kdcli.core.progress import ProgressCallback, ProgressEvent

if TYPE_CHECKING:
    from kdcli.evaluation.metrics import Change
    from kdcli.evaluation.report import EvalReport
    from kdcli.evaluation.verification import Check
    from kdcli.steps.distill import DistillResult
    from kdcli.steps.export import ExportResult
    from kdcli.steps.finetune import FinetuneResult
    from kdcli.steps.predict import PredictResult
    from kdcli.steps.shrink import ShrinkResult
    from kdcli.training.job import TrainSummary
    from kdcli.vocab.shrink_step import VocabReport

console = Console(stderr=True)  # progress and tables; stdout stays clean for pipes
out = Console()


@contextlib.contextmanager
def progress_bars(enabled: bool = True) -> Iterator[ProgressCallback | None]:
    """A progress callback that draws one Rich bar per task name."""
    if not enabled:
        yield None
        return
    # In a narrow terminal the live numbers give way (cut with an ellipsis), never the step
    # count or the time left, and the bar shrinks before either.
    bars = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}", table_column=Column(no_wrap=True)),
        BarColumn(bar_width=None, table_column=Column(ratio=1, min_width=5)),
        MofNCompleteColumn(table_column=Column(no_wrap=True)),
        TimeElapsedColumn(table_column=Column(no_wrap=True)),
        TimeRemainingColumn(table_column=Column(no_wrap=True)),
        TextColumn(
            "{task.fields[info]}",
            table_column=Column(ratio=2, no_wrap=True, overflow="ellipsis"),
        ),
        console=console,
        transient=True,
        expand=True,
    )
    tasks: dict[str, TaskID] = {}

    def update(event: ProgressEvent) -> None:
        if not tasks:
            bars.start()  # lazily: a command that fails early leaves no empty bar behind
        info = "  ".join(f"{k} {_number(v)}" for k, v in event.info.items())
        if event.task not in tasks:
            tasks[event.task] = bars.add_task(event.task, total=event.total, info=info)
        bars.update(tasks[event.task], completed=event.done, total=event.total, info=info)

    try:
        yield update
    finally:
        if tasks:
            bars.stop()


def _number(value: float) -> str:
    if isinstance(value, int) or float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:.4g}"


def ratio(before: float, after: float) -> str:
    return f"{before / after:.2f}× smaller" if after else "-"


def error(message: str) -> None:
    # escape: messages hold brackets (pip install 'kdcli[export]') that Rich would eat as markup
    console.print(f"[bold red]Error:[/] {escape(message)}", highlight=False, soft_wrap=True)


def note(message: str) -> None:
    console.print(f"[yellow]Note:[/] {_wrapped(message, 6)}", highlight=False, soft_wrap=True)


def next_step(done: str, command: str) -> None:
    console.print(f"[green]✓[/] {_wrapped(done, 2)}", highlight=False, soft_wrap=True)
    code, _, comment = command.partition("  # ")
    lines = _command_lines(code.strip(), indent=8)
    if comment.strip():
        lines.append(" " * 8 + escape(f"# {comment.strip()}"))
    text = "\n".join(lines)
    console.print(f"  next: [bold]{text.lstrip()}[/]", highlight=False, soft_wrap=True)


def _wrapped(text: str, indent: int) -> str:
    """`text` wrapped at spaces to the terminal, continuation lines indented: the terminal
    would otherwise break it mid-word. A word longer than a line (a path) stays whole."""
    import textwrap

    if not console.is_terminal:  # a log file or a pipe: one line per message, as written
        return escape(text)
    width = max(console.width - indent, 20)
    lines = textwrap.wrap(text, width, break_long_words=False, break_on_hyphens=False)
    return ("\n" + " " * indent).join(escape(line) for line in lines)


def _command_lines(command: str, indent: int) -> list[str]:
    """A shell command cut at spaces into lines that end with ` \\`, so it still pastes into
    a shell as one command."""
    if not console.is_terminal:
        return [" " * indent + escape(command)]
    width = max(console.width - indent - 2, 20)
    lines: list[str] = []
    current = ""
    for word in command.split(" "):
        if current and len(current) + 1 + len(word) > width:
            lines.append(current)
            current = word
        else:
            current = f"{current} {word}" if current else word
    lines.append(current)
    return [
        " " * indent + escape(line) + (" \\" if index < len(lines) - 1 else "")
        for index, line in enumerate(lines)
    ]


def export_summary(result: ExportResult) -> None:
    """Size, latency and the verification checks: PyTorch fp32 vs ONNX fp32 vs ONNX int8."""
    v = result.verification
    title = escape(f"kdcli export: {result.source} → {result.out}")
    table = Table(title=title, title_justify="left")
    table.add_column("")
    kinds = ["pytorch", "onnx"] + (["onnx-int8"] if v.int8 else [])
    for kind in kinds:
        table.add_column(_EXPORT_COLUMNS[kind], justify="right")
    sizes = {"pytorch": result.pytorch_bytes, "onnx": result.fp32_bytes}
    sizes["onnx-int8"] = result.int8_bytes or 0
    table.add_row(
        "size on disk",
        *[size(sizes[k]) + _vs(sizes["pytorch"], sizes[k], "smaller", k) for k in kinds],
    )
    if result.latency:
        lat = result.latency
        base = lat["pytorch"]
        table.add_row(
            "batch 1 latency",
            *[
                f"{lat[k].batch1_ms:.1f} ms"
                + _spread(lat[k].batch1_low_ms, lat[k].batch1_high_ms, lat[k].batch1_ms)
                + _vs(base.batch1_ms, lat[k].batch1_ms, "faster", k)
                for k in kinds
            ],
        )
        table.add_row(
            "batch 32 throughput",
            *[
                f"{lat[k].texts_per_s:,.0f} texts/s"
                + _vs(lat[k].texts_per_s, base.texts_per_s, "faster", k)
                for k in kinds
            ],
        )
    checks = ["", _check_cell(_fp32_cell(v.fp32), v.fp32.passed)]
    if v.int8:
        checks.append(_check_cell(_int8_cell(v.int8), v.int8.passed))
    table.add_row("vs PyTorch", *checks)
    if v.int8 and v.int8.accuracy:
        accuracy = v.int8.accuracy
        table.add_row(
            "accuracy (gold labels)",
            f"{accuracy.pytorch:.1%}",
            "",
            f"{accuracy.export:.1%} ({(accuracy.export - accuracy.pytorch) * 100:+.1f})",
        )
    console.print(table)
    console.print(
        f"verified on {v.texts} texts in {len(v.languages)} languages ({v.source}) at batch "
        f"{' and '.join(map(str, v.batch_sizes))}"
        + (f"; int8 mix chosen on {v.selection_texts} other texts" if v.selection_texts else "")
        + f"; onnxruntime {result.onnxruntime_version}; {result.seconds:.1f} s",
        highlight=False,
    )
    if result.latency and result.machine is not None:
        rounds = next(iter(result.latency.values())).rounds
        console.print(
            f"speed: median of {rounds} interleaved rounds, on {result.machine.describe()}",
            highlight=False,
        )
    if result.fusions:
        fused = ", ".join(f"{name} {n}" for name, n in result.fusions.items())
        console.print(f"fused for ONNX Runtime: {fused}", highlight=False)
    if result.quantization:
        q = result.quantization
        console.print(
            f"int8: {'per-channel' if q.per_channel else 'per-tensor'} weights, reduce_range "
            f"{'on' if q.reduce_range else 'off'} ({q.reduce_range_reason}); "
            f"{q.quantized_nodes} nodes int8, {q.float_nodes} kept in float",
            highlight=False,
        )
        for kept in q.kept_float:
            where = f"layer {kept.layer}" if kept.layer is not None else kept.role
            console.print(
                f"  kept in float: {kept.module} ({where}): alone it flips {kept.flips} "
                f"of {v.selection_texts} selection texts (KL {kept.kl:.2g})",
                highlight=False,
            )
    if v.int8:
        worst = sorted((a, lang) for lang, a in v.int8.per_language.items() if a < 1.0)[:5]
        if worst:
            shown = ", ".join(f"{lang} {a:.0%}" for a, lang in worst)
            note(f"int8 disagrees with PyTorch most on: {shown}")
    for text in [*result.notes, *([result.speed_note] if result.speed_note else [])]:
        note(text)


def _spread(low: float, high: float, middle: float) -> str:
    return f" ±{100 * (high - low) / 2 / middle:.0f}%" if middle > 0 and high > low else ""


_EXPORT_COLUMNS = {"pytorch": "PyTorch fp32", "onnx": "ONNX fp32", "onnx-int8": "ONNX int8"}


def _fp32_cell(check: Check) -> str:
    if check.nonfinite:
        return f"{check.nonfinite} texts non-finite"
    return f"max |Δlogit| {check.max_abs_diff:.1e}"


def _int8_cell(check: Check) -> str:
    if check.nonfinite:
        return f"{check.nonfinite} texts non-finite"
    return check.agreement_text()


def _vs(before: float, after: float, word: str, kind: str) -> str:
    """A change against PyTorch fp32, e.g. " (3.9× smaller)"; nothing in PyTorch's own column."""
    if kind == "pytorch" or not after or not before:
        return ""
    if before >= after:
        return f" ({before / after:.1f}× {word})"
    return f" ({after / before:.1f}× {_OPPOSITE[word]})"


_OPPOSITE = {"smaller": "larger", "faster": "slower"}


def _check_cell(text: str, passed: bool) -> str:
    return f"[green]{text} ✓[/]" if passed else f"[bold red]{text} ✗[/]"


def shrink_summary(result: ShrinkResult) -> None:
    table = Table(title=f"kdcli shrink: {result.source} → {result.out}", title_justify="left")
    table.add_column("")
    table.add_column("teacher", justify="right")
    table.add_column("student", justify="right")
    table.add_column("change", justify="right")
    t, s = result.teacher, result.student
    table.add_row(
        "parameters",
        count(result.teacher_params),
        count(result.student_params),
        ratio(result.teacher_params, result.student_params),
    )
    table.add_row(
        "size on disk",
        size(result.teacher_bytes),
        size(result.student_bytes),
        ratio(result.teacher_bytes, result.student_bytes),
    )
    if result.teacher_params and result.student_params:
        table.add_row(
            "in token embeddings",
            f"{result.teacher_embedding_params / result.teacher_params:.0%}",
            f"{result.student_embedding_params / result.student_params:.0%}",
            "",
        )
    if result.vocab is not None:
        v = result.vocab
        table.add_row("vocabulary", f"{v.teacher:,}", f"{v.student:,}", ratio(v.teacher, v.student))
    table.add_row("layers", str(t.layers), str(s.layers), "")
    table.add_row("hidden size", str(t.hidden), str(s.hidden), "")
    table.add_row("intermediate size", str(t.intermediate), str(s.intermediate), "")
    table.add_row("attention heads", str(t.heads), str(s.heads), "")
    console.print(table)
    kept = ", ".join(map(str, result.kept_layers))
    init = "weights copied from the teacher" if result.init == "copy" else "random initialisation"
    console.print(
        f"architecture {result.architecture}, head {result.head}, {init}; "
        f"kept teacher layers [{kept}]; {result.seconds:.1f} s",
        highlight=False,
    )
    if result.vocab is not None:
        console.print(_vocab_line(result.vocab), highlight=False, soft_wrap=True)
    if result.layer_importance:
        scores = ", ".join(f"{i}: {v:.3g}" for i, v in enumerate(result.layer_importance))
        console.print(
            f"layer importance (1 − cos between a layer's input and output, "
            f"{result.calibration_samples} calibration texts): {scores}",
            highlight=False,
            soft_wrap=True,
        )
    for text in result.notes:
        note(text)


def _vocab_line(v: VocabReport) -> str:
    same = v.texts - v.changed_texts
    worst = v.worst_language()
    most = f"; most: {worst[0]} {worst[1]:.1%}" if worst and worst[1] > 0 else ""
    verdict = "within" if v.passed else "[red]OVER[/red]"
    return (
        f"vocabulary: kept {v.student:,} of {v.teacher:,} {v.tokenizer} tokens (level {v.level}; "
        f"{v.used:,} seen in the data, {v.fallback:,} fallback characters); same tokens on "
        f"{same:,} of {v.texts:,} data texts; {v.held_out_changed:,} of {v.held_out_texts:,} "
        f"held-out texts tokenize differently ({v.held_out_share:.2%}, {verdict} "
        f"--max-changed {v.max_changed:.2%}{most}); unknown tokens on them: "
        f"{v.unk_rate_teacher:.2%} → {v.unk_rate_student:.2%}"
    )


def predict_summary(result: PredictResult) -> None:
    """How many texts, how fast, which labels; accuracy when the file had labels."""
    kinds = {"pytorch": "PyTorch", "onnx": "ONNX fp32", "onnx-int8": "ONNX int8"}
    console.print(
        escape(
            f"kdcli predict: {result.model} ({kinds.get(result.kind, result.kind)}) on "
            f"{result.rows:,} texts, {result.seconds:.1f} s ({result.texts_per_second:,.0f} "
            f"texts/s) → {result.out}"
        ),
        highlight=False,
    )
    table = Table(title_justify="left")
    table.add_column("predicted label")
    table.add_column("texts", justify="right")
    table.add_column("share", justify="right")
    shown = list(result.predicted.items())
    for label, n in shown[:10]:
        table.add_row(escape(label), f"{n:,}", f"{n / result.rows:.1%}")
    if len(shown) > 10:
        rest = sum(n for _, n in shown[10:])
        table.add_row(f"{len(shown) - 10} more", f"{rest:,}", f"{rest / result.rows:.1%}")
    console.print(table)
    if result.accuracy is not None:
        line = f"accuracy against --label-column {result.columns['label']}: {result.accuracy:.1%}"
        if result.accuracy_by_language:
            worst = min(result.accuracy_by_language.items(), key=lambda item: item[1])
            line += f" (worst language {worst[0]}: {worst[1]:.1%})"
        console.print(escape(line), highlight=False)
    for text in result.notes:
        note(text)


def eval_summary(report: EvalReport) -> None:
    """The per-language table (languages as rows, models as columns), then the data's notes."""
    from kdcli.evaluation.report_files import speed_line

    console.print(eval_table(report))
    console.print(eval_facts_table(report))
    speed = speed_line(report)
    if speed:
        console.print(speed, highlight=False)
    for text in report.notes:
        note(text)


def eval_table(report: EvalReport) -> Table:
    """Accuracy and macro-F1 in %; later models show their change vs the first, coloured:
    green = no loss, yellow = a loss under 1 point, red = 1 point or more."""
    from kdcli.evaluation.report_files import percent

    models = report.models
    first_name, second_name = report.metric_names
    # A narrow terminal gets the first score only; the second stays in --json/--csv/--markdown.
    with_f1 = console.width >= 16 + 30 * len(models)
    metrics = (
        f"{first_name} / {second_name}"
        if with_f1
        else f"{first_name} ({second_name}: see --markdown/--json)"
    )
    table = Table(
        title=f"kdcli eval: {report.split} split of {report.data}",
        title_justify="left",
        caption=_eval_caption(report, metrics),
        caption_justify="left",
    )
    table.add_column("language", no_wrap=True)
    table.add_column("n", justify="right")
    for result in models:
        table.add_column(f"{result.name}\n{first_name}", justify="right", overflow="fold")
        if with_f1:
            table.add_column(second_name, justify="right")
    keep = slice(None) if with_f1 else slice(0, 1)
    for language in report.language_names:
        row = [language, str(models[0].languages[language].n)]
        for result in models:
            score = result.languages[language]
            change = result.changes[language] if result.changes else None
            row += _score_cells(score.first, score.second, change, score.interval)[keep]
        table.add_row(*row)
    table.add_section()
    average = ["[bold]average[/]", str(models[0].summary.n)]
    pooled = ["pooled", ""]
    worst = ["worst", ""]
    blank = [""] if with_f1 else []
    for result in models:
        s = result.summary
        cells = _score_cells(s.average_first, s.average_second, result.average_change)
        average += [f"[bold]{cell}[/]" for cell in cells[keep]]
        pooled += [percent(s.pooled_first), *blank]
        worst += [f"{s.worst_language} {percent(s.worst_first)}", *blank]
    table.add_row(*average)
    table.add_row(*pooled)
    table.add_row(*worst)
    return table


def _eval_caption(report: EvalReport, metrics: str) -> str:
    caption = f"{metrics} in %, ± the 95% interval"
    if len(report.models) > 1:
        caption += (
            f"; changes in points vs {report.models[0].name}, ~ when not significant "
            f"(p ≥ 0.05, {report.paired_test}: may be noise)"
        )
    return caption


def eval_facts_table(report: EvalReport) -> Table:
    """Per-model facts, models as columns: kind, parameters, size, and speed with --speed."""
    from kdcli.evaluation.report_files import facts_rows

    table = Table()
    table.add_column("", no_wrap=True)
    for result in report.models:
        table.add_column(result.name, justify="right")
    for label, cells in facts_rows(report.models):
        table.add_row(label, *cells)
    return table


def _score_cells(
    first: float,
    second: float,
    change: Change | None,
    interval: tuple[float, float] | None = None,
) -> list[str]:
    """The two headline scores (accuracy and macro-F1; token classification: entity F1 and
    word accuracy), with the first's 95% interval when given and the change vs the first
    model, coloured; `~` marks a change that is not significant (it may be noise)."""
    from kdcli.evaluation.report_files import percent, points

    shown = percent(first)
    if interval is not None:  # the larger side of the 95% interval, in whole points
        half = max(interval[1] - first, first - interval[0])
        shown += f" [dim]±{100 * half:.0f}[/]"
    if change is None:
        return [shown, percent(second)]
    noise = change.significant is False
    first_colour = _change_colour(change.first_delta)
    second_colour = _change_colour(change.second_delta)
    retained = change.first_retention
    return [
        # whole percents keep the cell narrow enough for four models in 120 columns
        f"{shown} [{first_colour}]{points(change.first_delta)}{'~' if noise else ''} "
        f"{'n/a' if retained is None else f'{retained:.0f}%'}[/]",
        f"{percent(second)} [{second_colour}]{points(change.second_delta)}[/]",
    ]


def _change_colour(delta: float) -> str:
    if delta >= -0.0005:  # rounds to +0.0 or better: no loss worth flagging
        return "green"
    return "yellow" if delta > -0.01 else "red"


def finetune_summary(result: FinetuneResult) -> None:
    _training_summary(f"kdcli finetune: {result.model} → {result.out}", result.training)
    for text in result.notes:
        note(text)


def distill_summary(result: DistillResult) -> None:
    title = f"kdcli distill: {result.teacher or '(no teacher)'} → {result.student} → {result.out}"
    _training_summary(title, result.training)
    if result.kd_loss is None:
        loss = "no distillation (cross-entropy on the labels only)"
    else:
        loss = f"{result.kd_loss} on logits, alpha {result.alpha:g}"
        if result.temperature is not None:
            loss += f", temperature {result.temperature:g}"
        if result.hidden_loss_weight:
            loss += f", hidden states × {result.hidden_loss_weight:g}"
        loss += f"; teacher outputs: cache {result.teacher_cache} ({result.teacher_seconds:.1f} s)"
    console.print(loss, highlight=False)
    for text in result.notes:
        note(text)


def _training_summary(title: str, summary: TrainSummary) -> None:
    """Per-language dev accuracy of the kept (best) epoch (token classification: entity F1
    and word accuracy), then the run in one line."""
    console.print(f"[bold]{title}[/]", highlight=False, soft_wrap=True)
    table = Table()
    table.add_column("language")
    f1 = summary.dev_per_language_f1
    if f1 is not None:
        table.add_column("dev entity F1", justify="right")
    table.add_column("dev accuracy" if f1 is None else "word accuracy", justify="right")
    for language, accuracy in summary.dev_per_language.items():
        cells = [f"{f1[language]:.4f}"] if f1 is not None else []
        table.add_row(language, *cells, f"{accuracy:.4f}")
    all_f1 = [f"[bold]{summary.dev_f1:.4f}[/]"] if summary.dev_f1 is not None else []
    table.add_row("[bold]all[/]", *all_f1, f"[bold]{summary.dev_accuracy:.4f}[/]")
    console.print(table)
    stopped = ", stopped early" if summary.stopped_early else ""
    resumed = f", resumed at step {summary.resumed_from}" if summary.resumed_from else ""
    console.print(
        f"{plural(summary.train_examples, 'training example')}, "
        f"{plural(len(summary.languages), 'language')}, {plural(summary.labels, 'label')}; "
        f"{plural(summary.steps, 'step')} in {plural(summary.epochs, 'epoch')}{stopped}"
        f"{resumed}; kept epoch {summary.best_epoch} "
        f"(best dev {'accuracy' if f1 is None else 'entity F1'}); "
        f"{summary.samples_per_s:,.0f} samples/s, {summary.seconds:.1f} s",
        highlight=False,
    )


def plural(number: int, noun: str) -> str:
    """`1 epoch`, `30 steps`, `1,234 training examples`."""
    return f"{number:,} {noun}{'' if number == 1 else 's'}"
