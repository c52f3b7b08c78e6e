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
    parse_percent,
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
        help="Trim the vocabulary for the languages of this DATA (massive, a MASSIVE folder, a "
        "jsonl/csv/parquet file or a hub dataset): its train texts choose the tokens, its dev "
        "and test texts check that unseen text keeps its tokens.",
    ),
    vocab_keep: str = typer.Option(
        "auto",
        "--vocab-keep",
        help="With --vocab-from, which tokens to keep: data (those its train texts use), "
        "alphabet (+ every token spelled with its languages' letters), script (+ every token "
        "of its languages' scripts), or auto: the smallest within --max-changed.",
    ),
    vocab_size: int | None = typer.Option(
        None,
        "--vocab-size",
        help="With --vocab-from: keep at most N tokens (the data's, most frequent first, then "
        "the languages' most probable).",
    ),
    max_changed: str | None = typer.Option(
        None,
        "--max-changed",
        help="With --vocab-from: the share of held-out texts allowed to tokenize differently, "
        "in percent (default 0.5%); above it the student is marked failed and kdcli exits 1.",
    ),
    vocab_check: str | None = typer.Option(
        None,
        "--vocab-check",
        help="With --vocab-from: DATA whose dev and test texts are the held-out texts (default: "
        "those of --vocab-from).",
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
    """Build a smaller student whose weights are copied from the teacher (layers, width).

    Exits 1 when the trimmed vocabulary changes more held-out texts than --max-changed allows;
    the student is still written, marked failed in kdcli.json.
    """
    from kdcli.core.errors import CheckFailedError
    from kdcli.steps.shrink import ShrinkConfig, ShrinkResult
    from kdcli.steps.shrink import shrink as run_shrink

    check_json(json_path, overwrite, (source, vocab_from, vocab_check, calib_data, config))
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
        vocab_keep=vocab_keep,
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        max_changed=parse_percent("max_changed", max_changed),
        vocab_check=vocab_check,
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
    try:
        with render.progress_bars(not quiet) as progress:
            result = run_shrink(shrink_config, progress)
    except CheckFailedError as err:
        if isinstance(err.result, ShrinkResult):  # written and marked failed: show what failed
            render.shrink_summary(err.result)
            write_json(json_path, err.result)
        raise
    render.shrink_summary(result)
    write_json(json_path, result)
    render.next_step(
        f"student written to {result.out}",
        f"kdcli distill --student {result.out} --data DATA --out {result.out}-kd",
    )
