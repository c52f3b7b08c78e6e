"""The files `kdcli eval` writes: JSON, CSV, Markdown, a PNG plot and per-example predictions.

Every writer renders the whole file in memory and writes it atomically, so a failed or interrupted
run never leaves half a file. `check_outputs` validates every path (and that matplotlib is there
for a plot) *before* any model runs. The formats are documented in docs/report.md.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kdcli.core.errors import KdcliError, option_ref
from kdcli.core.formatting import count_text, size_text
from kdcli.files.outputs import check_output_file, save_figure_atomic, write_text_atomic

if TYPE_CHECKING:
    from kdcli.evaluation.metrics import Change
    from kdcli.evaluation.report import EvalReport, EvalResult

PLOT_SUFFIXES = (".png", ".svg", ".pdf")
PREDICTION_SUFFIXES = (".csv", ".jsonl")
AVERAGE_ROW = "(average)"  # parentheses: no locale or language code can look like this
POOLED_ROW = "(pooled)"
CSV_COLUMNS = (
    "model",
    "kind",
    "path",
    "language",
    "n",
    "accuracy",
    "macro_f1",
    "accuracy_delta",
    "macro_f1_delta",
    "accuracy_retention",
    "macro_f1_retention",
    # token classification only (empty for sequence classification): entity scores, strict
    "precision",
    "recall",
    "f1",
    "f1_delta",
    "f1_retention",
    # sequence classification only (empty for token classification)
    "accuracy_low",  # the accuracy's 95% Wilson interval
    "accuracy_high",
    "accuracy_delta_p",  # paired test of the change vs the first model
    "accuracy_delta_significant",
    # token classification only (empty for sequence classification)
    "f1_low",  # the entity F1's 95% bootstrap interval
    "f1_high",
    "f1_delta_p",  # paired bootstrap test of the entity F1 change vs the first model
    "f1_delta_significant",
)


@dataclass(frozen=True)
class ReportOutputs:
    """Where `kdcli eval` writes its files (None: not wanted)."""

    json: Path | None = None
    csv: Path | None = None
    markdown: Path | None = None
    plot: Path | None = None
    predictions: Path | None = None

    def named(self) -> list[tuple[str, Path]]:
        pairs = [
            ("json", self.json),
            ("csv", self.csv),
            ("markdown", self.markdown),
            ("plot", self.plot),
            ("predictions", self.predictions),
        ]
        return [(option, Path(path)) for option, path in pairs if path is not None]


def check_outputs(
    outputs: ReportOutputs, overwrite: bool = False, inputs: Sequence[str | Path] = ()
) -> None:
    """Fail before any model runs when an output could not be written: an existing file
    (without `overwrite`), an input (the data, a model's files), a folder, ..."""
    seen: dict[Path, str] = {}
    for option, path in outputs.named():
        check_output_file(path, option, overwrite, inputs)
        key = path.absolute()
        if key in seen:
            raise KdcliError(
                f"is also given to {option_ref(seen[key])}",
                option=option,
                value=path,
                fix="use different files",
            )
        seen[key] = option
    if outputs.plot is not None:
        _check_suffix("plot", outputs.plot, PLOT_SUFFIXES)
        if importlib.util.find_spec("matplotlib") is None:
            raise KdcliError(
                "needs matplotlib, which is not installed",
                option="plot",
                value=outputs.plot,
                fix="pip install 'kdcli[plot]'",
            )
    if outputs.predictions is not None:
        _check_suffix("predictions", outputs.predictions, PREDICTION_SUFFIXES)


def _check_suffix(option: str, path: Path, allowed: tuple[str, ...]) -> None:
    if path.suffix.lower() not in allowed:
        raise KdcliError(
            f": unsupported file type {path.suffix or '(none)'!r}; end the name with "
            f"{' or '.join(allowed)}",
            option=option,
            value=path,
        )


def write_outputs(report: EvalReport, outputs: ReportOutputs) -> list[Path]:
    """Write every requested file; returns the paths written, in option order."""
    writers: dict[str, Callable[[EvalReport, Path], None]] = {
        "json": write_json,
        "csv": write_csv,
        "markdown": write_markdown,
        "plot": write_plot,
        "predictions": write_predictions,
    }
    written = []
    for option, path in outputs.named():
        writers[option](report, path)
        written.append(path)
    return written


# --- number formats (shared with the terminal table) -------------------------------------------


def percent(value: float) -> str:
    """A fraction as a percentage with one decimal: 0.8512 -> 85.1."""
    return f"{100 * value:.1f}"


def points(delta: float) -> str:
    """A difference of fractions in percentage points, always signed: -0.015 -> -1.5."""
    text = f"{100 * delta:+.1f}"
    return "+0.0" if text == "-0.0" else text


def retention_text(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}%"


# --- JSON ---------------------------------------------------------------------------------------


def report_json(report: EvalReport) -> str:
    from kdcli.files.provenance import dumps

    return dumps(report.to_dict()) + "\n"


def write_json(report: EvalReport, path: Path) -> None:
    write_text_atomic(path, report_json(report))


# --- CSV (tidy: one row per model and language) ------------------------------------------------


def report_csv(report: EvalReport) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for result in report.models:
        for language, score in result.languages.items():
            change = result.changes[language] if result.changes else None
            entity = (score.precision, score.recall, score.f1)
            writer.writerow(
                _csv_row(
                    result,
                    language,
                    score.n,
                    score.accuracy,
                    score.macro_f1,
                    change,
                    entity,
                    score.interval,
                )
            )
        s = result.summary
        writer.writerow(
            _csv_row(
                result,
                AVERAGE_ROW,
                s.n,
                s.average_accuracy,
                s.average_macro_f1,
                result.average_change,
                (None, None, s.average_f1),
            )
        )
        pooled = (s.pooled_precision, s.pooled_recall, s.pooled_f1)
        writer.writerow(_csv_row(result, POOLED_ROW, s.n, s.pooled_accuracy, None, None, pooled))
    return buffer.getvalue()


def _csv_row(
    result: EvalResult,
    language: str,
    n: int,
    accuracy: float,
    macro_f1: float | None,
    change: Change | None,
    entity: tuple[float | None, float | None, float | None] = (None, None, None),
    interval: tuple[float, float] | None = None,
) -> list[object]:
    def number(value: float | None) -> object:
        return "" if value is None else repr(float(value))

    significant = change.significant if change else None
    # the interval and the test are of the headline score: accuracy, or entity F1
    tested: list[object] = [
        number(interval[0] if interval else None),
        number(interval[1] if interval else None),
        number(change.p_value if change else None),
        "" if significant is None else str(significant).lower(),
    ]
    blank: list[object] = [""] * len(tested)
    tokens = result.summary.average_f1 is not None
    return [
        result.name,
        result.kind,
        result.path,
        language,
        n,
        number(accuracy),
        number(macro_f1),
        number(change.accuracy_delta if change else None),
        number(change.macro_f1_delta if change else None),
        number(change.accuracy_retention if change else None),
        number(change.macro_f1_retention if change else None),
        *(number(value) for value in entity),
        number(change.f1_delta if change else None),
        number(change.f1_retention if change else None),
        *(blank if tokens else tested),
        *(tested if tokens else blank),
    ]


def write_csv(report: EvalReport, path: Path) -> None:
    write_text_atomic(path, report_csv(report))


# --- Markdown (the terminal table, for papers and pull requests) -------------------------------


def report_markdown(report: EvalReport) -> str:
    """Languages as rows, models as columns (accuracy and macro-F1 in %; token classification:
    entity F1 and word accuracy), then the summaries; token classification adds the F1 of
    every entity type."""
    first, second = report.metric_names
    short = ("acc", "F1") if report.task == "sequence-classification" else ("F1", "acc")
    header = ["language", "n"]
    for result in report.models:
        header += [f"{result.name} {short[0]}", f"{result.name} {short[1]}"]
    rows = [_markdown_language_row(report, lang) for lang in report.language_names]
    rows += _markdown_summary_rows(report)
    facts_header = ["", *(m.name for m in report.models)]
    lines = [
        f"Split `{report.split}` of `{report.data}`: {first} and {second} in %; "
        f"for later models, (change in points vs {report.models[0].name}, retention)."
        + _markdown_noise_text(report),
        "",
        _md_line(header),
        _md_line(["---", "---:"] + ["---:"] * (2 * len(report.models))),
        *(_md_line(row) for row in rows),
        "",
        _md_line(facts_header),
        _md_line(["---"] + ["---:"] * len(report.models)),
        *(_md_line([label, *cells]) for label, cells in facts_rows(report.models)),
        *_markdown_type_rows(report),
    ]
    speed = speed_line(report)
    lines += ["", speed] if speed else []
    warnings = [f"- **Warning**: {m.name}: {m.warning}" for m in report.models if m.warning]
    if warnings:
        lines += ["", *warnings]
    return "\n".join(lines) + "\n"


def _markdown_noise_text(report: EvalReport) -> str:
    metric = report.metric_names[0]
    return (
        f" {metric[:1].upper()}{metric[1:]} with its 95% interval [low–high]; *n.s.*: the "
        f"change is not significant (p ≥ 0.05, {report.paired_test}), it may be noise."
    )


def _markdown_type_rows(report: EvalReport) -> list[str]:
    """Token classification: entity F1 per type (all languages pooled) for every model."""
    if report.task != "token-classification":
        return []
    per_model = [pooled_type_f1(result) for result in report.models]
    types = sorted({kind for scores in per_model for kind in scores})
    return [
        "",
        "Entity F1 per type in %, all languages pooled:",
        "",
        _md_line(["type", *(m.name for m in report.models)]),
        _md_line(["---"] + ["---:"] * len(report.models)),
        *(
            _md_line([kind, *(percent(s[kind]) if kind in s else "" for s in per_model)])
            for kind in types
        ),
    ]


def pooled_type_f1(result: EvalResult) -> dict[str, float]:
    """F1 per entity type, all languages pooled (from the counts, not a mean of ratios)."""
    return dict(result.pooled_type_f1 or {})


def _md_line(cells: list[str]) -> str:
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


def _markdown_language_row(report: EvalReport, language: str) -> list[str]:
    first = report.models[0].languages[language]
    row = [language, str(first.n)]
    for result in report.models:
        score = result.languages[language]
        change = result.changes[language] if result.changes else None
        row += score_cells(score.first, score.second, change, score.interval)
    return row


def score_cells(
    first: float,
    second: float,
    change: Change | None,
    interval: tuple[float, float] | None = None,
) -> list[str]:
    """Plain-text cells of the two headline scores (accuracy and macro-F1; token
    classification: entity F1 and word accuracy): the first's 95% interval when given, and
    the change vs the first model when there is one, marked n.s. when it is not significant."""
    shown = percent(first)
    if interval is not None:
        shown += f" [{percent(interval[0])}–{percent(interval[1])}]"
    if change is None:
        return [shown, percent(second)]
    noise = ", n.s." if change.significant is False else ""
    return [
        f"{shown} ({points(change.first_delta)}, {retention_text(change.first_retention)}{noise})",
        f"{percent(second)} ({points(change.second_delta)})",
    ]


def _markdown_summary_rows(report: EvalReport) -> list[list[str]]:
    n = str(report.models[0].summary.n)
    average = ["**average**", n]
    pooled = ["**pooled**", n]
    worst = ["**worst**", ""]
    for result in report.models:
        s = result.summary
        average += [f"**{cell}**" for cell in _average_cells(result)]
        pooled += [percent(s.pooled_first), ""]
        worst += [f"{s.worst_language} {percent(s.worst_first)}", ""]
    return [average, pooled, worst]


def _average_cells(result: EvalResult) -> list[str]:
    s = result.summary
    return score_cells(s.average_first, s.average_second, result.average_change)


def facts_rows(models: list[EvalResult]) -> list[tuple[str, list[str]]]:
    """Per-model facts as (row label, one cell per model): kind, size, and speed if measured.
    Later models also show how they compare with the first (2.0x smaller, 3.1x faster)."""
    rows = [("kind", [m.kind for m in models])]
    if any(m.warning for m in models):
        rows.append(
            ("warning", ["⚠ " + _short_warning(m.warning) if m.warning else "" for m in models])
        )
    if any(m.lineage for m in models):
        rows.append(("made by", [" → ".join(m.lineage) or "-" for m in models]))
    rows += [
        ("parameters", _compared(models, lambda m: m.params, count_text, "smaller", "larger")),
        ("size on disk", _compared(models, lambda m: m.size_bytes, size_text, "smaller", "larger")),
    ]
    timed = [m.speed for m in models if m.speed]
    if timed:
        rows.append(
            (
                "latency (batch 1)",
                _compared(
                    models,
                    lambda m: m.speed.latency_ms if m.speed else None,
                    lambda v: f"{v:.2f} ms",
                    "faster",
                    "slower",
                    lambda m: (
                        _spread(m.speed.latency_low_ms, m.speed.latency_high_ms, m.speed.latency_ms)
                        if m.speed
                        else ""
                    ),
                ),
            )
        )
        rows.append(
            (
                f"throughput (batch {timed[0].batch_size})",
                _compared(
                    models,
                    # inverted, so that "smaller is better" holds for the ratio below
                    lambda m: 1 / m.speed.throughput if m.speed and m.speed.throughput else None,
                    lambda v: f"{1 / v:,.0f}/s",
                    "faster",
                    "slower",
                    lambda m: (
                        _spread(m.speed.throughput_low, m.speed.throughput_high, m.speed.throughput)
                        if m.speed
                        else ""
                    ),
                ),
            )
        )
    return rows


def _spread(low: float | None, high: float | None, middle: float) -> str:
    """` ±6%`: half the range between the fastest and slowest timing round."""
    if low is None or high is None or middle <= 0:
        return ""
    return f" ±{100 * (high - low) / 2 / middle:.0f}%"


def speed_line(report: EvalReport) -> str | None:
    """How the speed rows were measured, and on what (None without --speed)."""
    timed = [m.speed for m in report.models if m.speed]
    if not timed or report.machine is None:
        return None
    return (
        f"Speed: median of {timed[0].rounds} rounds interleaved across the models (± half the "
        f"range between the fastest and slowest round), on {report.machine.describe()}."
    )


def _short_warning(warning: str) -> str:
    """The first clause of a warning, short enough for a table cell (the whole is in notes)."""
    return warning.split(" (", 1)[0].split(";", 1)[0]


def _compared(
    models: list[EvalResult],
    value: Callable[[EvalResult], float | None],
    text: Callable[[Any], str],
    better: str,
    worse: str,
    extra: Callable[[EvalResult], str] | None = None,
) -> list[str]:
    """One cell per model; later models add `(Nx better|worse)` against the first, where a
    smaller value is better (fewer parameters, fewer bytes, fewer milliseconds)."""
    reference = value(models[0])
    cells = []
    for index, model in enumerate(models):
        own = value(model)
        if own is None:
            cells.append("")
            continue
        cell = text(own) + (extra(model) if extra else "")
        if index and reference and own and own != reference:
            ratio, word = (reference / own, better) if own < reference else (own / reference, worse)
            cell += f" ({ratio:.1f}x {word})"
        cells.append(cell)
    return cells


def write_markdown(report: EvalReport, path: Path) -> None:
    write_text_atomic(path, report_markdown(report))


# --- per-example predictions -------------------------------------------------------------------


def tagged_text(words: list[str], tags: list[str]) -> str:
    """Words with their entities in MASSIVE's notation: `wake me at [time : five am]`. An
    I- tag that continues no entity is shown as it was predicted: `[I-time : am]`."""
    from kdcli.data.tags import entities

    spans = {entity.start: entity for entity in entities(tags)}
    parts: list[str] = []
    index = 0
    while index < len(words):
        if index in spans:
            entity = spans[index]
            parts.append(f"[{entity.type} : {' '.join(words[entity.start : entity.end])}]")
            index = entity.end
            continue
        tag = tags[index]
        parts.append(words[index] if tag == "O" else f"[{tag} : {words[index]}]")
        index += 1
    return " ".join(parts)


def _shown(report: EvalReport, index: int, value: Any) -> Any:
    """A label as it is, or for token classification the tags as tagged text."""
    if report.words is None:
        return value
    return tagged_text(report.words[index], value)


def predictions_csv(report: EvalReport) -> str:
    """id, language, gold, one `predicted:<model>` column per model, text (token
    classification: gold and predictions as tagged text, `[type : words]`)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(
        ["id", "language", "gold", *(f"predicted:{m.name}" for m in report.models), "text"]
    )
    for index, example_id in enumerate(report.ids):
        writer.writerow(
            [
                example_id,
                report.example_languages[index],
                _shown(report, index, report.gold[index]),
                *(_shown(report, index, m.predictions[index]) for m in report.models),
                report.texts[index],
            ]
        )
    return buffer.getvalue()


def predictions_jsonl(report: EvalReport) -> str:
    """One object per example: id, language, gold, predicted {model: label}, text; token
    classification adds the words and every model's tags per word (`gold` and `predicted`
    are then tagged text)."""
    lines = []
    for index, example_id in enumerate(report.ids):
        record: dict[str, Any] = {
            "id": example_id,
            "language": report.example_languages[index],
            "gold": _shown(report, index, report.gold[index]),
            "predicted": {
                m.name: _shown(report, index, m.predictions[index]) for m in report.models
            },
            "text": report.texts[index],
        }
        if report.words is not None:
            record["words"] = report.words[index]
            record["gold_tags"] = report.gold[index]
            record["predicted_tags"] = {m.name: m.predictions[index] for m in report.models}
        lines.append(json.dumps(record, ensure_ascii=False))
    return "\n".join(lines) + "\n"


def write_predictions(report: EvalReport, path: Path) -> None:
    path = Path(path)
    text = predictions_jsonl(report) if path.suffix.lower() == ".jsonl" else predictions_csv(report)
    write_text_atomic(path, text)


# --- plot ---------------------------------------------------------------------------------------


def write_plot(report: EvalReport, path: Path) -> None:
    """Per-language accuracy as grouped horizontal bars, one colour per model.

    Horizontal bars keep 50+ language names readable: the figure grows in height with the number
    of languages. Languages are sorted by the first model's accuracy, lowest at the top, so the
    languages that suffer are seen first; dashed lines mark each model's macro-average.
    """
    try:
        import matplotlib
    except ImportError as err:
        raise KdcliError(
            "needs matplotlib", option="plot", value=path, fix="pip install 'kdcli[plot]'"
        ) from err
    matplotlib.use("Agg")  # files only, no display: works on servers and in CI
    from matplotlib import pyplot as plt

    figure = _draw_plot(plt, report)
    save_figure_atomic(figure, Path(path))
    plt.close(figure)


def _draw_plot(plt: Any, report: EvalReport) -> Any:
    models = report.models
    first = models[0].languages
    languages = sorted(first, key=lambda lang: (first[lang].accuracy, lang))
    count = len(models)
    group = 0.8  # share of each language's row the bars fill
    bar = group / count
    # Each language row gets a fixed height (more with more models), so 50+ languages stay legible.
    height = max(3.5, (0.14 + 0.07 * count) * len(languages) + 1.8)
    figure, axes = plt.subplots(figsize=(9, height))
    colours = plt.get_cmap("tab10" if count <= 10 else "tab20").colors
    for row in range(0, len(languages), 2):  # banded rows: the eye finds a language's group
        axes.axhspan(row - 0.5, row + 0.5, color="0.94", zorder=0)
    for index, result in enumerate(models):
        colour = colours[index % len(colours)]
        offsets = [row - group / 2 + bar * (index + 0.5) for row in range(len(languages))]
        values = [100 * result.languages[lang].first for lang in languages]
        label = f"{result.name} (average {percent(result.summary.average_first)})"
        axes.barh(offsets, values, height=bar, color=colour, label=label, zorder=2)
        axes.axvline(100 * result.summary.average_first, color=colour, ls="--", lw=1, zorder=3)
    axes.set_yticks(range(len(languages)))
    axes.set_yticklabels(languages, fontsize=9)
    axes.set_ylim(len(languages) - 0.5, -0.5)  # first (lowest accuracy) at the top
    axes.set_xlim(0, 100)
    axes.set_xlabel(f"{report.metric_names[0]} (%)")
    axes.tick_params(axis="x", labeltop=len(languages) > 20)  # tall figures: a scale on top too
    axes.grid(axis="x", alpha=0.4, zorder=1)
    # Title and legend sit above the axes in a band of fixed height (in inches), so they never
    # overlap each other or the top scale whatever the figure's height.
    legend_rows = -(-count // 3)
    band = 0.3 + 0.22 * legend_rows + (0.25 if len(languages) > 20 else 0.0)
    metric = report.metric_names[0]
    figure.suptitle(
        f"{metric[:1].upper()}{metric[1:]} per language, {report.split} split "
        "(dashed: average over languages)",
        fontsize=11,
        y=1 - 0.08 / height,
        va="top",
    )
    handles, labels = axes.get_legend_handles_labels()
    figure.legend(
        handles,
        labels,
        loc="upper center",
        bbox_to_anchor=(0.5, 1 - 0.4 / height),
        ncol=min(count, 3),
        fontsize=9,
        frameon=False,
    )
    figure.tight_layout(rect=(0, 0, 1, 1 - band / height))
    return figure
