"""`kdcli eval`: options -> EvalConfig -> `kdcli.steps.evaluate.evaluate` -> tables and files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from kdcli.cli import render
from kdcli.cli.app import app
from kdcli.cli.options import (
    CONFIG_OPTION,
    JSON_OPTION,
    LABEL_COLUMN_OPTION,
    LANGUAGE_COLUMN_OPTION,
    LANGUAGES_OPTION,
    MAX_LENGTH_OPTION,
    PICKLE_OPTION,
    QUIET_OPTION,
    TAG_SCHEME_OPTION,
    TASK_OPTION,
    TEXT_COLUMN_OPTION,
    local_inputs,
    parse_names,
)


@app.command("eval")
def eval_command(
    model: list[str] = typer.Argument(
        ...,
        metavar="MODEL",
        help="Models to compare, the first is the reference: model directories, Hub ids, or "
        "`kdcli export` directories (ONNX fp32 or int8).",
    ),
    data: str = typer.Option(
        ...,
        "--data",
        help="massive, a MASSIVE release (tarball or folder), a .jsonl/.csv/.parquet file or "
        "folder, or a Hub dataset id.",
    ),
    split: str = typer.Option("test", "--split", help="train, dev (validation) or test."),
    languages: str | None = LANGUAGES_OPTION,
    text_column: str | None = TEXT_COLUMN_OPTION,
    label_column: str | None = LABEL_COLUMN_OPTION,
    language_column: str | None = LANGUAGE_COLUMN_OPTION,
    task: str | None = TASK_OPTION,
    tag_scheme: str = TAG_SCHEME_OPTION,
    batch_size: int = typer.Option(
        64, "--batch-size", help="Examples per batch (batches are sorted by length)."
    ),
    max_length: int = MAX_LENGTH_OPTION,
    threads: int | None = typer.Option(
        None, "--threads", help="CPU threads for inference (default: the library's choice)."
    ),
    speed: bool = typer.Option(
        False,
        "--speed",
        help="Also measure latency (batch 1, median ms) and throughput (batch 32, examples/s), "
        "all models side by side in interleaved rounds.",
    ),
    json_path: Path | None = JSON_OPTION,
    csv_path: Path | None = typer.Option(
        None, "--csv", help="Also write one row per model and language as CSV."
    ),
    markdown_path: Path | None = typer.Option(
        None, "--markdown", help="Also write the table as Markdown (for papers and PRs)."
    ),
    plot_path: Path | None = typer.Option(
        None,
        "--plot",
        help="Also draw per-language accuracy bars (.png, .svg or .pdf; needs kdcli[plot]).",
    ),
    predictions_path: Path | None = typer.Option(
        None,
        "--predictions",
        help="Also write per-example predictions (.csv or .jsonl): id, language, gold, one "
        "column per model.",
    ),
    allow_pickle: bool = PICKLE_OPTION,
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace result files (--json, --csv, ...) that exist."
    ),
    quiet: bool = QUIET_OPTION,
    config: Path | None = CONFIG_OPTION,
) -> None:
    """Per-language accuracy and macro-F1 of one or more models, side by side, with deltas
    (token classifiers: entity F1, word accuracy and F1 per entity type)."""
    from kdcli.evaluation.report_files import ReportOutputs, check_outputs, write_outputs
    from kdcli.steps.evaluate import EvalConfig, evaluate

    outputs = ReportOutputs(
        json=json_path,
        csv=csv_path,
        markdown=markdown_path,
        plot=plot_path,
        predictions=predictions_path,
    )
    check_outputs(outputs, overwrite, local_inputs(model, data, config))
    eval_config = EvalConfig(
        models=model,
        data=data,
        split=split,
        languages=parse_names(languages),
        batch_size=batch_size,
        max_length=max_length,
        threads=threads,
        speed=speed,
        text_column=text_column,
        label_column=label_column,
        language_column=language_column,
        allow_pickle=allow_pickle,
        task=task,
        tag_scheme=tag_scheme,
    )
    with render.progress_bars(not quiet) as progress:
        report = evaluate(eval_config, progress)
    render.eval_summary(report)
    written = write_outputs(report, outputs)
    render.next_step(_eval_done(report, written), _eval_next(report, eval_config, outputs))


def _eval_done(report: Any, written: list[Path]) -> str:
    models = len(report.models)
    done = (
        f"evaluated {models} model{'s' if models > 1 else ''} on {len(report.gold):,} "
        f"{report.split} examples in {len(report.language_names)} languages"
    )
    return done + (f"; wrote {', '.join(map(str, written))}" if written else "")


def _eval_next(report: Any, config: Any, outputs: Any) -> str:
    """Export the last PyTorch model; with an export in the table, time the models; when they
    are timed, write the report to share."""
    pytorch = [m for m in report.models if m.kind == "pytorch"]
    if pytorch and len(pytorch) == len(report.models):
        name = pytorch[-1].path
        return f"kdcli export {name} --onnx --quantize int8 --out {name.rstrip('/')}-onnx"
    again = f"kdcli eval {' '.join(m.path for m in report.models)} --data {config.data}"
    again += f" --split {report.split}"
    if config.languages:
        again += f" --languages {','.join(config.languages)}"
    if not config.speed:
        return f"{again} --speed"
    if outputs.markdown is None:
        return f"{again} --markdown report.md --plot report.png"
    return f"{again} --predictions errors.csv    # per-example predictions, for error analysis"
