"""`kdcli finetune`: options -> FinetuneConfig -> `kdcli.steps.finetune.finetune` -> summary."""

from __future__ import annotations

from pathlib import Path

import typer

from kdcli.cli import render
from kdcli.cli.app import app
from kdcli.cli.options import (
    BATCHING_OPTION,
    BF16_OPTION,
    CONFIG_OPTION,
    DATA_OPTION,
    DATA_REVISION_OPTION,
    EPOCHS_OPTION,
    EVAL_BATCH_OPTION,
    GRAD_ACCUM_OPTION,
    JSON_OPTION,
    LABEL_COLUMN_OPTION,
    LANGUAGE_COLUMN_OPTION,
    LANGUAGES_OPTION,
    LOG_STEPS_OPTION,
    LR_OPTION,
    MAX_GRAD_NORM_OPTION,
    MAX_LENGTH_OPTION,
    MAX_STEPS_OPTION,
    OVERWRITE_OPTION,
    PATIENCE_OPTION,
    PICKLE_OPTION,
    QUIET_OPTION,
    REPORT_TO_OPTION,
    RESUME_OPTION,
    REVISION_OPTION,
    SAMPLES_OPTION,
    SAVE_STEPS_OPTION,
    SEED_OPTION,
    TAG_SCHEME_OPTION,
    TASK_OPTION,
    TEXT_COLUMN_OPTION,
    TRAIN_BATCH_OPTION,
    TRAIN_LANGUAGES_OPTION,
    TRAIN_THREADS_OPTION,
    WARMUP_OPTION,
    WEIGHT_DECAY_OPTION,
    check_json,
    write_json,
)
from kdcli.cli.training import is_main_process, run_training, train_config, train_data_config


@app.command()
def finetune(
    model: str = typer.Argument(
        ...,
        metavar="MODEL",
        help="Pretrained encoder (or classifier) to fine-tune: a model directory or a Hub id.",
    ),
    data: str = DATA_OPTION,
    out: Path = typer.Option(..., "--out", "-o", help="Directory to write the classifier to."),
    languages: str | None = LANGUAGES_OPTION,
    train_languages: str | None = TRAIN_LANGUAGES_OPTION,
    samples_per_language: int | None = SAMPLES_OPTION,
    text_column: str | None = TEXT_COLUMN_OPTION,
    label_column: str | None = LABEL_COLUMN_OPTION,
    language_column: str | None = LANGUAGE_COLUMN_OPTION,
    data_revision: str | None = DATA_REVISION_OPTION,
    task: str | None = TASK_OPTION,
    tag_scheme: str = TAG_SCHEME_OPTION,
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
    threads: int | None = TRAIN_THREADS_OPTION,
    save_steps: int = SAVE_STEPS_OPTION,
    log_steps: int = LOG_STEPS_OPTION,
    patience: int | None = PATIENCE_OPTION,
    report_to: str = REPORT_TO_OPTION,
    resume: bool = RESUME_OPTION,
    seed: int = SEED_OPTION,
    revision: str | None = REVISION_OPTION,
    allow_pickle: bool = PICKLE_OPTION,
    overwrite: bool = OVERWRITE_OPTION,
    json_path: Path | None = JSON_OPTION,
    quiet: bool = QUIET_OPTION,
    config: Path | None = CONFIG_OPTION,
) -> None:
    """Fine-tune MODEL into a classifier for the data's labels (cross-entropy): the teacher."""
    from kdcli.steps.finetune import FinetuneConfig
    from kdcli.steps.finetune import finetune as run_finetune

    params = dict(locals())
    check_json(json_path, overwrite, (model, data, config))
    finetune_config = FinetuneConfig(
        model=model,
        data=train_data_config(params),
        out=out,
        train=train_config(params),
        revision=revision,
        allow_pickle=allow_pickle,
        overwrite=overwrite,
        resume=resume,
    )
    result = run_training(run_finetune, finetune_config, quiet)
    if not is_main_process():
        return
    render.finetune_summary(result)
    write_json(json_path, result)
    half = max(1, result.num_layers // 2)
    render.next_step(
        f"classifier written to {result.out}",
        f"kdcli shrink {result.out} --num-layers {half} --out {result.out}-student",
    )
