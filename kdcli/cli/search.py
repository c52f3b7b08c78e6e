"""`kdcli search`: options -> SearchConfig -> `kdcli.jobs.search.search` -> the answer."""

from __future__ import annotations

from pathlib import Path

import typer

from kdcli.cli import job_views, render
from kdcli.cli.app import app
from kdcli.cli.options import (
    BATCHING_OPTION,
    BF16_OPTION,
    CACHE_DIR_OPTION,
    CONFIG_OPTION,
    DATA_OPTION,
    DATA_REVISION_OPTION,
    EPOCHS_OPTION,
    EVAL_BATCH_OPTION,
    GRAD_ACCUM_OPTION,
    JOB_OVERWRITE_OPTION,
    JOBS_OPTION,
    JSON_OPTION,
    LABEL_COLUMN_OPTION,
    LANGUAGE_COLUMN_OPTION,
    LANGUAGES_OPTION,
    LOG_STEPS_OPTION,
    LR_OPTION,
    MAX_GRAD_NORM_OPTION,
    MAX_LENGTH_OPTION,
    MAX_STEPS_OPTION,
    PATIENCE_OPTION,
    PICKLE_OPTION,
    QUIET_OPTION,
    SAMPLES_OPTION,
    SAVE_STEPS_OPTION,
    SEED_OPTION,
    TEXT_COLUMN_OPTION,
    TRAIN_BATCH_OPTION,
    TRAIN_LANGUAGES_OPTION,
    WARMUP_OPTION,
    WEIGHT_DECAY_OPTION,
    check_json,
    write_json,
)
from kdcli.cli.training import is_main_process, train_config, train_data_config


@app.command()
def search(
    teacher: str = typer.Argument(
        ..., metavar="TEACHER", help="The fine-tuned teacher: a model directory or a Hub id."
    ),
    data: str = DATA_OPTION,
    out: Path = typer.Option(
        ..., "--out", "-o", help="Directory of the search: model/, export/, search.json, plot."
    ),
    min_retention: float | None = typer.Option(
        None,
        "--min-retention",
        help="Keep at least this share of the teacher's macro accuracy, e.g. 0.98 (the "
        "default when no accuracy constraint is given).",
    ),
    min_language_retention: float | None = typer.Option(
        None,
        "--min-language-retention",
        help="Keep at least this share of the teacher's accuracy on every language, e.g. 0.95.",
    ),
    max_size: str | None = typer.Option(
        None, "--max-size", help="Largest exported model file, e.g. 50MB."
    ),
    max_latency: str | None = typer.Option(
        None,
        "--max-latency",
        help="Slowest batch-1 latency of the exported model on this machine, e.g. 5ms.",
    ),
    budget: str | None = typer.Option(
        None, "--budget", help="Wall time for the whole search, e.g. 2h or 90m."
    ),
    objective: str = typer.Option(
        "size",
        "--objective",
        help="What to minimise among the models that qualify: size or latency.",
    ),
    depths: str | None = typer.Option(
        None,
        "--depths",
        help="Layer counts to try, e.g. 3,4,6 (default: 1/4, 1/3, 1/2, 2/3 and all of the "
        "teacher's).",
    ),
    layer_strategies: str = typer.Option(
        "uniform,importance",
        "--layer-strategies",
        help="How layers are chosen: uniform, importance (on the training data), first, last, "
        "every-other.",
    ),
    widths: str = typer.Option(
        "1,0.75,0.5", "--widths", help="Fractions of the teacher's width to try."
    ),
    vocab: str = typer.Option(
        "full,trimmed", "--vocab", help="full and/or trimmed (to the tokens the data needs)."
    ),
    formats: str = typer.Option("fp32,int8", "--formats", help="Export formats: fp32 and/or int8."),
    split: str = typer.Option(
        "dev", "--split", help="The split the constraints are checked on (dev by default)."
    ),
    short_fraction: float = typer.Option(
        0.25,
        "--short-fraction",
        help="Length of the ranking runs, as a share of the full training's steps.",
    ),
    allowance: float = typer.Option(
        0.05,
        "--allowance",
        help="How far below the targets a short run may score and still be trained in full "
        "(grows to the largest gain a full run showed; a larger share of the gap to the teacher "
        "that full runs closed counts too).",
    ),
    exhaustive: bool = typer.Option(
        False, "--exhaustive", help="Train every shape that fits in full (no short runs)."
    ),
    kd_loss: str = typer.Option("mse", "--kd-loss", help="Distillation loss: mse or kl."),
    jobs: int = JOBS_OPTION,
    cache_dir: Path | None = CACHE_DIR_OPTION,
    languages: str | None = LANGUAGES_OPTION,
    train_languages: str | None = TRAIN_LANGUAGES_OPTION,
    samples_per_language: int | None = SAMPLES_OPTION,
    text_column: str | None = TEXT_COLUMN_OPTION,
    label_column: str | None = LABEL_COLUMN_OPTION,
    language_column: str | None = LANGUAGE_COLUMN_OPTION,
    data_revision: str | None = DATA_REVISION_OPTION,
    epochs: int = EPOCHS_OPTION,
    max_steps: int | None = MAX_STEPS_OPTION,
    lr: float = LR_OPTION,
    batch_size: int = TRAIN_BATCH_OPTION,
    grad_accum: int = GRAD_ACCUM_OPTION,
    max_length: int = MAX_LENGTH_OPTION,
    warmup_ratio: float = WARMUP_OPTION,
    max_grad_norm: float | None = MAX_GRAD_NORM_OPTION,
    weight_decay: float = WEIGHT_DECAY_OPTION,
    batching: str = BATCHING_OPTION,
    eval_batch_size: int = EVAL_BATCH_OPTION,
    bf16: bool = BF16_OPTION,
    save_steps: int = SAVE_STEPS_OPTION,
    log_steps: int = LOG_STEPS_OPTION,
    patience: int | None = PATIENCE_OPTION,
    seed: int = SEED_OPTION,
    allow_pickle: bool = PICKLE_OPTION,
    overwrite: bool = JOB_OVERWRITE_OPTION,
    json_path: Path | None = JSON_OPTION,
    quiet: bool = QUIET_OPTION,
    config: Path | None = CONFIG_OPTION,
) -> None:
    """The smallest (or fastest) student that meets your accuracy, size and latency limits."""
    from kdcli.core.errors import CheckFailedError
    from kdcli.jobs.search import SearchConfig, SearchResult
    from kdcli.jobs.search import search as run_search

    # sequence classification: the teacher's head and the data decide
    params = {**locals(), "report_to": "none", "task": None, "tag_scheme": "auto"}
    # a rerun resumes the search and rewrites its --json result (--overwrite would start over)
    check_json(json_path, True, (teacher, data, config))
    search_config = SearchConfig(
        teacher=teacher,
        data=train_data_config(params),
        out=out,
        min_retention=min_retention,
        min_language_retention=min_language_retention,
        max_size=max_size,
        max_latency=max_latency,
        budget=budget,
        objective=objective,
        depths=depths,
        layer_strategies=layer_strategies,
        widths=widths,
        vocab=vocab,
        formats=formats,
        split=split,
        short_fraction=short_fraction,
        allowance=allowance,
        exhaustive=exhaustive,
        kd_loss=kd_loss,
        train=train_config(params),
        cache_dir=cache_dir,
        jobs=jobs,
        allow_pickle=allow_pickle,
        overwrite=overwrite,
    )
    try:
        with job_views.job_progress(not quiet and is_main_process()) as progress:
            result = run_search(search_config, progress)
    except CheckFailedError as err:
        if isinstance(err.result, SearchResult) and is_main_process():
            job_views.search_summary(err.result)
            write_json(json_path, err.result)
        raise
    except KeyboardInterrupt:
        render.note(f"rerun the same command to resume: finished work in {out} is kept")
        raise
    if not is_main_process():
        return
    job_views.search_summary(result)
    write_json(json_path, result)
    render.console.print(f"[bold]{result.answer}[/]", highlight=False, soft_wrap=True)
    render.next_step(
        f"model in {result.model}, verified export in {result.export}; every candidate in "
        f"{out}/search.json",
        f"kdcli eval {teacher} {result.export} --data {data} --split test --speed",
    )
