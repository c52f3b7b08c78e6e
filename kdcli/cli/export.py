"""`kdcli export`: options -> ExportConfig -> `kdcli.steps.export.export` -> summary (exit 1 on a
failed check)."""

from __future__ import annotations

from pathlib import Path

import typer

from kdcli.cli import render
from kdcli.cli.app import app
from kdcli.cli.options import (
    CONFIG_OPTION,
    JSON_OPTION,
    OVERWRITE_OPTION,
    PICKLE_OPTION,
    QUIET_OPTION,
    REVISION_OPTION,
    SEED_OPTION,
    TAG_SCHEME_OPTION,
    TASK_OPTION,
    check_json,
    parse_names,
    write_json,
)


@app.command()
def export(
    model: str = typer.Argument(
        ...,
        metavar="MODEL",
        help="Sequence- or token-classification model: a model directory or a Hub id.",
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Directory to write the ONNX export to."),
    onnx: bool = typer.Option(
        False, "--onnx", help="Export to ONNX (the only format, so also the default)."
    ),
    quantize: str = typer.Option(
        "none",
        "--quantize",
        help="int8: also write model_quantized.onnx (dynamic int8, for CPUs); auto: int8 when it "
        "passes verification on this CPU, else fp32 only (exit 0); none: fp32 only.",
    ),
    optimize: bool = typer.Option(
        False,
        "--optimize",
        help="Fuse attention, skip-LayerNorm and GELU into ONNX Runtime's ops (kept only if "
        "the fused graph passes --atol).",
    ),
    verify_data: str | None = typer.Option(
        None,
        "--verify-data",
        help="Verify on the test split of DATA (any --data spec; its dev split chooses the int8 "
        "mix); default: the data in the model's kdcli.json, else built-in sentences in 28 "
        "languages.",
    ),
    languages: str | None = typer.Option(
        None, "--languages", help="Only these languages of --verify-data, e.g. en-US,de-DE."
    ),
    verify_samples: int = typer.Option(
        20, "--verify-samples", help="At most this many --verify-data texts per language."
    ),
    atol: float = typer.Option(
        1e-4, "--atol", help="fp32 check: max |logit difference| allowed against PyTorch."
    ),
    min_agreement: float = typer.Option(
        0.99, "--min-agreement", help="int8 check: share of texts whose top-1 label must match."
    ),
    max_accuracy_drop: float = typer.Option(
        1.0,
        "--max-accuracy-drop",
        help="int8 check on labelled text: accuracy points int8 may lose (overall and per "
        "language) when it flips only near-ties.",
    ),
    reduce_range: bool | None = typer.Option(
        None,
        "--reduce-range/--no-reduce-range",
        help="7-bit int8 weights (default: only on x86 CPUs without VNNI).",
    ),
    per_channel: bool = typer.Option(
        True,
        "--per-channel/--per-tensor",
        help="One int8 scale per output channel (default) or one per weight matrix.",
    ),
    opset: int | None = typer.Option(
        None, "--opset", help="ONNX opset, 17 to 23 (default: the exporter's)."
    ),
    max_length: int = typer.Option(
        128, "--max-length", help="Truncate verification texts to this many tokens."
    ),
    batch_size: int = typer.Option(32, "--batch-size", help="Verification batch size."),
    threads: int | None = typer.Option(
        None, "--threads", help="CPU threads for verification and timing (default: all)."
    ),
    latency: bool = typer.Option(
        True,
        "--latency/--no-latency",
        help="Time PyTorch vs ONNX (batch 1 and batch 32) for the summary.",
    ),
    seed: int = SEED_OPTION,
    revision: str | None = REVISION_OPTION,
    task: str | None = TASK_OPTION,
    tag_scheme: str = TAG_SCHEME_OPTION,
    allow_pickle: bool = PICKLE_OPTION,
    overwrite: bool = OVERWRITE_OPTION,
    json_path: Path | None = JSON_OPTION,
    quiet: bool = QUIET_OPTION,
    config: Path | None = CONFIG_OPTION,
) -> None:
    """Export to ONNX (and int8) for CPU serving, verified against PyTorch on real text.

    Exits 1 when verification fails; the output is still written, marked failed in kdcli.json.
    """
    from kdcli.core.errors import CheckFailedError
    from kdcli.steps.export import ExportConfig, ExportResult
    from kdcli.steps.export import export as run_export

    check_json(json_path, overwrite, (model, verify_data, config))
    export_config = ExportConfig(
        source=model,
        out=out,
        quantize=quantize,
        optimize=optimize,
        verify_data=verify_data,
        languages=parse_names(languages),
        verify_samples=verify_samples,
        atol=atol,
        min_agreement=min_agreement,
        max_accuracy_drop=max_accuracy_drop,
        per_channel=per_channel,
        reduce_range=reduce_range,
        opset=opset,
        max_length=max_length,
        batch_size=batch_size,
        threads=threads,
        latency=latency,
        seed=seed,
        overwrite=overwrite,
        revision=revision,
        task=task,
        tag_scheme=tag_scheme,
        allow_pickle=allow_pickle,
    )
    try:
        with render.progress_bars(not quiet) as progress:
            result = run_export(export_config, progress)
    except CheckFailedError as err:
        if isinstance(err.result, ExportResult):  # written and marked failed: show what failed
            render.export_summary(err.result)
            write_json(json_path, err.result)
        raise
    render.export_summary(result)
    write_json(json_path, result)
    render.next_step(
        f"ONNX export written to {result.out}",
        f"kdcli eval {model} {result.out} --data DATA",
    )
