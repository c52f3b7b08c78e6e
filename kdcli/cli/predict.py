"""`kdcli predict`: options -> PredictConfig -> `kdcli.steps.predict.predict` -> summary."""

from __future__ import annotations

from pathlib import Path

import typer

from kdcli.cli import render
from kdcli.cli.app import app
from kdcli.cli.options import (
    CONFIG_OPTION,
    JSON_OPTION,
    LABEL_COLUMN_OPTION,
    LANGUAGE_COLUMN_OPTION,
    MAX_LENGTH_OPTION,
    OVERWRITE_OPTION,
    PICKLE_OPTION,
    QUIET_OPTION,
    REVISION_OPTION,
    TEXT_COLUMN_OPTION,
    check_json,
    write_json,
)


@app.command()
def predict(
    model: str = typer.Argument(
        ...,
        metavar="MODEL",
        help="A model directory, a Hugging Face Hub id, a `kdcli export` directory or an .onnx "
        "file.",
    ),
    data: Path = typer.Option(
        ..., "--data", help="The texts: one .jsonl, .csv or .parquet file, labelled or not."
    ),
    out: Path = typer.Option(
        ...,
        "--out",
        "-o",
        help="Where to write the predictions (.jsonl, .csv or .parquet): every input column, "
        "with label, score and top_k.",
    ),
    top_k: int = typer.Option(
        1, "--top-k", help="Also write the K most probable labels and their scores (K > 1)."
    ),
    text_column: str | None = TEXT_COLUMN_OPTION,
    label_column: str | None = LABEL_COLUMN_OPTION,
    language_column: str | None = LANGUAGE_COLUMN_OPTION,
    variant: str = typer.Option(
        "auto",
        "--variant",
        help="For export directories: auto (int8 when there is one), fp32 or int8.",
    ),
    batch_size: int = typer.Option(
        32, "--batch-size", help="Texts per batch (batches are sorted by length)."
    ),
    max_length: int = MAX_LENGTH_OPTION,
    threads: int | None = typer.Option(
        None, "--threads", help="CPU threads for inference (default: the library's choice)."
    ),
    device: str = typer.Option(
        "cpu", "--device", help="cpu, cuda, cuda:1, mps, ... for PyTorch models (ONNX: cpu)."
    ),
    revision: str | None = REVISION_OPTION,
    allow_pickle: bool = PICKLE_OPTION,
    overwrite: bool = OVERWRITE_OPTION,
    json_path: Path | None = JSON_OPTION,
    quiet: bool = QUIET_OPTION,
    config: Path | None = CONFIG_OPTION,
) -> None:
    """Label every text of a file with a model; the output is --data for finetune and distill."""
    from kdcli.steps.predict import PredictConfig
    from kdcli.steps.predict import predict as run_predict

    check_json(json_path, overwrite, (model, data, config))
    predict_config = PredictConfig(
        model=model,
        data=data,
        out=out,
        top_k=top_k,
        text_column=text_column,
        label_column=label_column,
        language_column=language_column,
        variant=variant,
        batch_size=batch_size,
        max_length=max_length,
        threads=threads,
        device=device,
        overwrite=overwrite,
        revision=revision,
        allow_pickle=allow_pickle,
    )
    with render.progress_bars(not quiet) as progress:
        result = run_predict(predict_config, progress)
    render.predict_summary(result)
    write_json(json_path, result)
    render.next_step(
        f"{result.rows:,} predictions written to {result.out}",
        f"kdcli distill --teacher {model} --student STUDENT --data {result.out} --out STUDENT-kd"
        "    # pseudo-labelled data",
    )
