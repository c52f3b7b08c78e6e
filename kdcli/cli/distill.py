"""`kdcli distill`: options -> DistillConfig -> `kdcli.steps.distill.distill` -> summary."""

from __future__ import annotations

from pathlib import Path

import typer

from kdcli.cli import render
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
def distill(
    student: str = typer.Option(
        ...,
        "--student",
        help="The student: a kdcli shrink output, any classifier with the teacher's labels, or "
        "a bare encoder (it gets a head with the teacher's labels).",
    ),
    data: str = DATA_OPTION,
    out: Path = typer.Option(..., "--out", "-o", help="Directory to write the student to."),
    teacher: str | None = typer.Option(
        None,
        "--teacher",
        help="The fine-tuned teacher (default: the one named in the student's kdcli.json).",
    ),
    kd_loss: str = typer.Option(
        "mse",
        "--kd-loss",
        help="mse: mean squared error between logits (the study's choice); kl: KL divergence "
        "of temperature-softened outputs, times T².",
    ),
    alpha: float | None = typer.Option(
        None,
        "--alpha",
        help="Weight of the distillation loss; 1 - alpha goes to cross-entropy on the gold "
        "labels (default 0.5).",
    ),
    temperature: float | None = typer.Option(
        None, "--temperature", help="Softmax temperature of --kd-loss kl (default 2.0)."
    ),
    no_kd: bool = typer.Option(
        False,
        "--no-kd",
        help="No teacher: plain fine-tuning of the student (the study's no-KD baseline).",
    ),
    hidden_loss_weight: float = typer.Option(
        0.0,
        "--hidden-loss-weight",
        help="Add this times the MSE between student and teacher hidden states (student layer i "
        "vs the teacher layer it was copied from; a learned projection when widths differ).",
    ),
    cache_dir: Path | None = CACHE_DIR_OPTION,
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
    teacher_revision: str | None = typer.Option(
        None, "--teacher-revision", help="Hub revision of the teacher."
    ),
    student_revision: str | None = typer.Option(
        None, "--student-revision", help="Hub revision of the student."
    ),
    allow_pickle: bool = PICKLE_OPTION,
    overwrite: bool = OVERWRITE_OPTION,
    json_path: Path | None = JSON_OPTION,
    quiet: bool = QUIET_OPTION,
    config: Path | None = CONFIG_OPTION,
) -> None:
    """Train a student to match a fine-tuned teacher's logits (and the gold labels)."""
    from kdcli.steps.distill import DistillConfig
    from kdcli.steps.distill import distill as run_distill

    params = dict(locals())
    check_json(json_path, overwrite, (student, teacher, data, config))
    distill_config = DistillConfig(
        student=student,
        data=train_data_config(params),
        out=out,
        teacher=teacher,
        kd_loss=kd_loss,
        alpha=alpha,
        temperature=temperature,
        no_kd=no_kd,
        hidden_loss_weight=hidden_loss_weight,
        cache_dir=cache_dir,
        train=train_config(params),
        teacher_revision=teacher_revision,
        student_revision=student_revision,
        allow_pickle=allow_pickle,
        overwrite=overwrite,
        resume=resume,
    )
    result = run_training(run_distill, distill_config, quiet)
    if not is_main_process():
        return
    render.distill_summary(result)
    write_json(json_path, result)
    models = f"{result.teacher} {result.out}" if result.teacher else str(result.out)
    render.next_step(
        f"student written to {result.out}",
        f"kdcli eval {models} --data {data} --split test",
    )
