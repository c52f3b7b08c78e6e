"""`kdcli shrink`: options -> ShrinkConfig -> `kdcli.steps.shrink.shrink` -> summary."""

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
    check_json,
    parse_ints,
    parse_names,
    write_json,
)


@app.command()
def shrink(
    source: str = typer.Argument(
        ..., metavar="SOURCE", help="Teacher: a model directory or a Hugging Face Hub id."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Directory to write the student to."),
    layers: str | None = typer.Option(
        None, "--layers", help="Teacher layers to keep, e.g. 0,2,4,7,9,11 (DistilBERT's choice)."
    ),
    num_layers: int | None = typer.Option(
        None, "--num-layers", help="Number of layers to keep, chosen by --layer-strategy."
    ),
    layer_strategy: str | None = typer.Option(
        None,
        "--layer-strategy",
        help="uniform (maximally spaced, first and last kept; the default), first, last, "
        "every-other (0,2,4,...), importance (the layers that change their input most on "
        "--calib-data).",
    ),
    hidden_size: int | None = typer.Option(
        None, "--hidden-size", help="Student hidden size (default: the teacher's)."
    ),
    intermediate_size: int | None = typer.Option(
        None, "--intermediate-size", help="Student feed-forward size (default: the teacher's)."
    ),
    num_heads: int | None = typer.Option(
        None,
        "--num-heads",
        help="Student attention heads. Unset: keep the teacher's head size and drop whole heads "
        "when --hidden-size allows it, else keep the head count with narrower heads.",
    ),
    width_strategy: str = typer.Option(
        "first",
        "--width-strategy",
        help="Which channels/heads/neurons to keep: first (first k), magnitude (largest "
        "weights) or activation (largest mean activation on --calib-data).",
    ),
    vocab_from: str | None = typer.Option(
        None,
        "--vocab-from",
        help="Trim the vocabulary to the tokens this DATA's train texts need (massive, a MASSIVE "
        "folder, a jsonl/csv/parquet file or a hub dataset); its dev split measures unknown "
        "tokens.",
    ),
    vocab_size: int | None = typer.Option(
        None, "--vocab-size", help="With --vocab-from: keep at most N tokens, most frequent first."
    ),
    min_frequency: int | None = typer.Option(
        None,
        "--min-frequency",
        help="With --vocab-from: keep only tokens seen at least K times in DATA.",
    ),
    languages: str | None = typer.Option(
        None,
        "--languages",
        help="Use only these languages of --vocab-from / --calib-data, e.g. en-US,de-DE.",
    ),
    calib_data: str | None = typer.Option(
        None,
        "--calib-data",
        help="DATA whose train texts rank channels (--width-strategy activation) and layers "
        "(--layer-strategy importance).",
    ),
    calib_samples: int | None = typer.Option(
        None,
        "--calib-samples",
        help="How many --calib-data texts to run, spread evenly over languages (default 512).",
    ),
    random_init: bool = typer.Option(
        False, "--random-init", help="Same student shape, fresh random weights (the baseline)."
    ),
    dtype: str | None = typer.Option(
        None, "--dtype", help="float32, float16 or bfloat16 (default: the teacher's)."
    ),
    seed: int = SEED_OPTION,
    revision: str | None = REVISION_OPTION,
    allow_pickle: bool = PICKLE_OPTION,
    overwrite: bool = OVERWRITE_OPTION,
    json_path: Path | None = JSON_OPTION,
    quiet: bool = QUIET_OPTION,
    config: Path | None = CONFIG_OPTION,
) -> None:
    """Build a smaller student whose weights are copied from the teacher (layers, width)."""
    from kdcli.steps.shrink import ShrinkConfig
    from kdcli.steps.shrink import shrink as run_shrink

    check_json(json_path, overwrite, (source, vocab_from, calib_data, config))
    shrink_config = ShrinkConfig(
        source=source,
        out=out,
        layers=parse_ints("layers", layers, example="0,2,4,7,9,11"),
        num_layers=num_layers,
        layer_strategy=layer_strategy,
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_heads=num_heads,
        width_strategy=width_strategy,
        vocab_from=vocab_from,
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        languages=parse_names(languages),
        calib_data=calib_data,
        calib_samples=calib_samples,
        random_init=random_init,
        dtype=dtype,
        seed=seed,
        overwrite=overwrite,
        revision=revision,
        allow_pickle=allow_pickle,
    )
    with render.progress_bars(not quiet) as progress:
        result = run_shrink(shrink_config, progress)
    render.shrink_summary(result)
    write_json(json_path, result)
    render.next_step(
        f"student written to {result.out}",
        f"kdcli distill --student {result.out} --data DATA --out {result.out}-kd",
    )
