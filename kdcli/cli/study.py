"""`kdcli study`: options -> StudyConfig -> `kdcli.jobs.study.study` -> the study's table."""

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
def study(
    teacher: str = typer.Argument(
        ..., metavar="TEACHER", help="The fine-tuned teacher: a model directory or a Hub id."
    ),
    data: str = DATA_OPTION,
    out: Path = typer.Option(
        ..., "--out", "-o", help="Directory of the study: cells/, report.md/json/csv/png."
    ),
    inits: str = typer.Option(
        "teacher,pretrained,random",
        "--inits",
        help="Student initializations: teacher (copy of the fine-tuned teacher), pretrained "
        "(copy of the pre-trained encoder), random.",
    ),
    objectives: str = typer.Option(
        "kd,no-kd", "--objectives", help="kd (distil from the teacher) and/or no-kd (labels only)."
    ),
    num_layers: str | None = typer.Option(
        None,
        "--num-layers",
        help="Student depths, e.g. 6 or 3,6 (default: half the teacher's layers, as the study).",
    ),
    seeds: str = typer.Option("0,1,2", "--seeds", help="Seeds; every cell runs once per seed."),
    base: str | None = typer.Option(
        None,
        "--base",
        help="The pre-trained encoder of --inits pretrained (default: the model the teacher's "
        "kdcli.json says it was fine-tuned from).",
    ),
    kd_loss: str = typer.Option(
        "mse", "--kd-loss", help="The KD cells' loss: mse on logits (the study's) or kl."
    ),
    layer_strategy: str = typer.Option(
        "uniform",
        "--layer-strategy",
        help="Which teacher layers a student keeps: uniform, first, last or every-other.",
    ),
    split: str = typer.Option(
        "test", "--split", help="The split the report scores (dev picks each cell's epoch)."
    ),
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
    allow_pickle: bool = PICKLE_OPTION,
    overwrite: bool = JOB_OVERWRITE_OPTION,
    json_path: Path | None = JSON_OPTION,
    quiet: bool = QUIET_OPTION,
    config: Path | None = CONFIG_OPTION,
) -> None:
    """The study's ablation on your data: initialization × KD × depth × seeds, as a table."""
    from kdcli.jobs.study import StudyConfig
    from kdcli.jobs.study import study as run_study

    # one data sample and training recipe for every cell; --seeds varies the training seed
    params = {**locals(), "seed": 0, "report_to": "none", "task": None, "tag_scheme": "auto"}
    # a rerun resumes the study and rewrites its --json result (--overwrite would start over)
    check_json(json_path, True, (teacher, data, base, config))
    study_config = StudyConfig(
        teacher=teacher,
        data=train_data_config(params),
        out=out,
        base=base,
        inits=inits,
        objectives=objectives,
        num_layers=num_layers,
        seeds=seeds,
        kd_loss=kd_loss,
        layer_strategy=layer_strategy,
        split=split,
        train=train_config(params),
        cache_dir=cache_dir,
        jobs=jobs,
        allow_pickle=allow_pickle,
        overwrite=overwrite,
    )
    try:
        with job_views.job_progress(not quiet and is_main_process()) as progress:
            result = run_study(study_config, progress)
    except KeyboardInterrupt:
        render.note(f"rerun the same command to resume: finished cells in {out} are kept")
        raise
    if not is_main_process():
        return
    job_views.study_summary(result)
    write_json(json_path, result)
    best = max(result.cells, key=lambda c: (c.accuracy, c.name))
    render.next_step(
        f"report written to {', '.join(str(p) for p in result.files)}",
        f"kdcli export {best.path} --onnx --quantize int8 --out {best.path}-onnx    "
        "# the best cell",
    )
