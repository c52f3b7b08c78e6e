"""The `kdcli` command line: Typer wiring only.

Each command turns its options into one config object, calls one library function, and renders the
result it returns. Heavy libraries are imported inside the commands so `kdcli --help` stays fast.
Errors: bad input (KdcliError, click usage errors) -> one line on stderr and exit 2; a failed check
-> exit 1; Ctrl-C -> exit 130.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import typer
from typer.core import TyperGroup

from kdcli._version import __version__
from kdcli.cli import render
from kdcli.core.errors import CheckFailedError, KdcliError

WORKFLOW = ("finetune", "shrink", "distill", "eval", "export")


class KdcliGroup(TyperGroup):
    """Turns every error into one clear line and the documented exit code."""

    def list_commands(self, ctx: Any) -> list[str]:
        """Commands in workflow order, as the help lists them."""
        names = super().list_commands(ctx)
        return sorted(names, key=lambda n: WORKFLOW.index(n) if n in WORKFLOW else len(WORKFLOW))

    def main(  # type: ignore[override]
        self,
        args: Any = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        _quiet_libraries()
        try:
            code = super().main(
                args=args,
                prog_name=prog_name,
                complete_var=complete_var,
                standalone_mode=False,
                **extra,
            )
            code = code if isinstance(code, int) else 0
            if code == 130:  # Typer turns Ctrl-C into Exit(130) before it reaches us
                render.error("interrupted; nothing half-written was left behind")
        except KdcliError as err:
            render.error(str(err))
            code = 2
        except CheckFailedError as err:
            render.error(str(err))
            code = 1
        except KeyboardInterrupt:
            render.error("interrupted; nothing half-written was left behind")
            code = 130
        except Exception as err:
            code = _click_error(err, list(sys.argv[1:] if args is None else args))
        if standalone_mode:
            sys.exit(code)
        return code


def _kind(err: BaseException, name: str) -> bool:
    # Typer vendors its own copy of click, so match click's exceptions by class name.
    return any(cls.__name__ == name for cls in type(err).__mro__)


def _click_error(err: Exception, args: list[str]) -> int:
    """Print click's usage errors as one line; re-raise anything that is not click's."""
    ctx = getattr(err, "ctx", None)
    if _kind(err, "NoArgsIsHelpError"):
        typer.echo(ctx.get_help() if ctx else "")
        return 0
    if _kind(err, "Abort"):
        render.error("interrupted; nothing half-written was left behind")
        return 130
    if not _kind(err, "ClickException"):
        raise err
    message = err.format_message()  # type: ignore[attr-defined]
    if _kind(err, "BadParameter"):
        value = _given_value(getattr(err, "param", None), args)
        message = message if value is None else f"{message} (got {value!r})"
    if _kind(err, "UsageError"):
        command = ctx.command_path if ctx else "kdcli"
        message = f"{message} (see '{command} --help')"
    render.error(message)
    return int(err.exit_code)  # type: ignore[attr-defined]


def _given_value(param: Any, args: list[str]) -> str | None:
    """What the user typed for an option (click's own message does not always say)."""
    for name in getattr(param, "opts", []):
        for index, arg in enumerate(args):
            if arg == name and index + 1 < len(args):
                return args[index + 1]
            if arg.startswith(name + "="):
                return arg[len(name) + 1 :]
    return None


def _quiet_libraries() -> None:
    """Keep the terminal for kdcli's own progress bars and tables (users may override)."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


app = typer.Typer(
    cls=KdcliGroup,
    name="kdcli",
    help="Make multilingual transformer classifiers small and fast without losing languages.\n\n"
    "Workflow: finetune (a teacher) -> shrink (a student copied from it) -> distill -> eval "
    "(per language) -> export (ONNX / int8). Docs: docs/cli.md.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"kdcli {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Show the version and exit."
    ),
) -> None:
    """Make multilingual transformer classifiers small and fast without losing languages.

    Workflow: finetune (a teacher) -> shrink (copy-weight student) -> distill -> eval -> export.
    """


def _load_config_file(
    ctx: typer.Context, param: typer.CallbackParam, value: Path | None
) -> Path | None:
    """`--config FILE.yaml`: its values become defaults, so explicit flags still win."""
    if value is None:
        return None
    from kdcli.core.validation import check_known, load_yaml_options

    options = load_yaml_options(value)
    params = {p.name: p for p in ctx.command.params if p.name and p.name != param.name}
    check_known(options, set(params), f"--config {value}")
    for name, option in list(options.items()):
        many = params[name].multiple or params[name].nargs == -1  # e.g. `kdcli eval MODEL...`
        if isinstance(option, list) and not many:
            options[name] = ",".join(str(item) for item in option)
        elif many and not isinstance(option, list):
            options[name] = [option]  # `model: teacher/` means one model, not its characters
    ctx.default_map = {**(ctx.default_map or {}), **options}
    return value


CONFIG_OPTION = typer.Option(
    None,
    "--config",
    callback=_load_config_file,
    is_eager=True,
    help="YAML file of options (keys as option names); flags given on the command line win.",
)
JSON_OPTION = typer.Option(
    None, "--json", help="Also write the result as JSON to this file (- for stdout)."
)
OVERWRITE_OPTION = typer.Option(False, "--overwrite", help="Replace --out if it exists.")
SEED_OPTION = typer.Option(0, "--seed", help="Random seed (same inputs + seed = same output).")
REVISION_OPTION = typer.Option(None, "--revision", help="Hub revision (branch, tag or commit).")
PICKLE_OPTION = typer.Option(
    False,
    "--allow-pickle",
    help="Allow a pickle checkpoint (pytorch_model.bin), loaded with weights_only=True.",
)
QUIET_OPTION = typer.Option(False, "--quiet", "-q", help="No progress bars.")


def _check_json(path: Path | None) -> None:
    if path is not None:
        from kdcli.files.outputs import check_output_file

        check_output_file(path, "--json")


def _write_json(path: Path | None, result: Any) -> None:
    if path is not None:
        from kdcli.files.outputs import write_text_atomic
        from kdcli.files.provenance import dumps

        write_text_atomic(path, dumps(result.to_dict()) + "\n")


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

    _check_json(json_path)
    shrink_config = ShrinkConfig(
        source=source,
        out=out,
        layers=layers,
        num_layers=num_layers,
        layer_strategy=layer_strategy,
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_heads=num_heads,
        width_strategy=width_strategy,
        vocab_from=vocab_from,
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        languages=languages,
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
    _write_json(json_path, result)
    render.next_step(
        f"student written to {result.out}",
        f"kdcli distill --student {result.out} --data DATA --out {result.out}-kd",
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
    languages: str | None = typer.Option(
        None, "--languages", help="Only these languages, e.g. en-US,de-DE (default: all)."
    ),
    text_column: str | None = typer.Option(None, "--text-column", help="Text column of files."),
    label_column: str | None = typer.Option(None, "--label-column", help="Label column of files."),
    language_column: str | None = typer.Option(
        None, "--language-column", help="Language column of files."
    ),
    batch_size: int = typer.Option(
        64, "--batch-size", help="Examples per batch (batches are sorted by length)."
    ),
    max_length: int = typer.Option(128, "--max-length", help="Truncate texts to this many tokens."),
    threads: int | None = typer.Option(
        None, "--threads", help="CPU threads for inference (default: the library's choice)."
    ),
    speed: bool = typer.Option(
        False,
        "--speed",
        help="Also measure latency (batch 1, median ms) and throughput (batch 32, examples/s).",
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
    quiet: bool = QUIET_OPTION,
    config: Path | None = CONFIG_OPTION,
) -> None:
    """Per-language accuracy and macro-F1 of one or more models, side by side, with deltas."""
    from kdcli.evaluation.report_files import ReportOutputs, check_outputs, write_outputs
    from kdcli.steps.evaluate import EvalConfig, evaluate

    outputs = ReportOutputs(
        json=json_path,
        csv=csv_path,
        markdown=markdown_path,
        plot=plot_path,
        predictions=predictions_path,
    )
    check_outputs(outputs)
    eval_config = EvalConfig(
        models=model,
        data=data,
        split=split,
        languages=languages,
        batch_size=batch_size,
        max_length=max_length,
        threads=threads,
        speed=speed,
        text_column=text_column,
        label_column=label_column,
        language_column=language_column,
        allow_pickle=allow_pickle,
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
    from kdcli.core.validation import parse_csv

    pytorch = [m for m in report.models if m.kind == "pytorch"]
    if pytorch and len(pytorch) == len(report.models):
        name = pytorch[-1].path
        return f"kdcli export {name} --onnx --quantize int8 --out {name.rstrip('/')}-onnx"
    again = f"kdcli eval {' '.join(m.path for m in report.models)} --data {config.data}"
    again += f" --split {report.split}"
    if config.languages:
        again += f" --languages {','.join(parse_csv(config.languages) or [])}"
    if not config.speed:
        return f"{again} --speed"
    if outputs.markdown is None:
        return f"{again} --markdown report.md --plot report.png"
    return f"{again} --predictions errors.csv    # per-example predictions, for error analysis"


# --- finetune and distill: the options they share ---------------------------------------------

DATA_OPTION = typer.Option(
    ...,
    "--data",
    help="massive (Amazon MASSIVE from the Hub), a MASSIVE release (tarball or folder), a "
    ".jsonl/.csv/.parquet file or folder, or a Hub dataset id.",
)
LANGUAGES_OPTION = typer.Option(
    None, "--languages", help="Only these languages, e.g. en-US,de-DE (default: all)."
)
TRAIN_LANGUAGES_OPTION = typer.Option(
    None,
    "--train-languages",
    help="Train on these languages only, evaluate on all (zero-shot transfer), e.g. en-US.",
)
SAMPLES_OPTION = typer.Option(
    None,
    "--samples-per-language",
    help="At most N training examples per language, drawn with --seed (low-resource setting).",
)
TEXT_COLUMN_OPTION = typer.Option(None, "--text-column", help="Text column of files.")
LABEL_COLUMN_OPTION = typer.Option(None, "--label-column", help="Label column of files.")
LANGUAGE_COLUMN_OPTION = typer.Option(None, "--language-column", help="Language column of files.")
DATA_REVISION_OPTION = typer.Option(
    None, "--data-revision", help="Hub revision of the dataset (branch, tag or commit)."
)
EPOCHS_OPTION = typer.Option(3, "--epochs", help="Passes over the training data.")
MAX_STEPS_OPTION = typer.Option(
    None, "--max-steps", help="Stop after this many optimizer steps (overrides --epochs)."
)
LR_OPTION = typer.Option(5e-5, "--lr", help="Peak learning rate of AdamW (the study: 5e-5).")
TRAIN_BATCH_OPTION = typer.Option(
    32, "--batch-size", help="Training examples per batch and process (the study: 32)."
)
GRAD_ACCUM_OPTION = typer.Option(
    1, "--grad-accum", help="Accumulate gradients over N batches per optimizer step."
)
TRAIN_MAX_LENGTH_OPTION = typer.Option(
    128, "--max-length", help="Truncate texts to this many tokens."
)
WARMUP_OPTION = typer.Option(
    0.0, "--warmup-ratio", help="Share of the steps for linear warmup; then linear decay to 0."
)
WEIGHT_DECAY_OPTION = typer.Option(
    0.01, "--weight-decay", help="AdamW weight decay (not applied to biases and norms)."
)
EVAL_BATCH_OPTION = typer.Option(
    64, "--eval-batch-size", help="Examples per batch for dev evaluation and the teacher."
)
BF16_OPTION = typer.Option(False, "--bf16", help="Compute in bfloat16 (autocast) for speed.")
SAVE_STEPS_OPTION = typer.Option(
    500,
    "--save-steps",
    help="Checkpoint every N optimizer steps (and at every epoch end); 0: epoch ends only.",
)
LOG_STEPS_OPTION = typer.Option(
    10, "--log-steps", help="Write the mean training loss to metrics.jsonl every N steps."
)
PATIENCE_OPTION = typer.Option(
    None, "--patience", help="Stop after N epochs without a better dev accuracy."
)
REPORT_TO_OPTION = typer.Option(
    "none", "--report-to", help="none, or tensorboard (needs kdcli[tensorboard])."
)
RESUME_OPTION = typer.Option(
    False,
    "--resume",
    help="Continue the interrupted run of the same command from its last checkpoint "
    "(in OUT.checkpoints).",
)


def _is_main_process() -> bool:
    """Under `accelerate launch` / torchrun only rank 0 draws progress and tables."""
    return os.environ.get("RANK", "0") == "0"


def _train_data_config(params: dict[str, Any]) -> Any:
    """The DataConfig of finetune/distill, from the command's parameters of the same names."""
    from kdcli.core.validation import parse_csv
    from kdcli.data.splits import DataConfig

    return DataConfig(
        data=params["data"],
        languages=parse_csv(params["languages"]),
        train_languages=parse_csv(params["train_languages"]),
        samples_per_language=params["samples_per_language"],
        text_column=params["text_column"],
        label_column=params["label_column"],
        language_column=params["language_column"],
        revision=params["data_revision"],
        seed=params["seed"],
    )


def _train_config(params: dict[str, Any]) -> Any:
    """The TrainConfig of finetune/distill: its fields are named like the options."""
    from dataclasses import fields

    from kdcli.training.loop import TrainConfig

    return TrainConfig(**{f.name: params[f.name] for f in fields(TrainConfig)})


def _run_training(run: Any, config: Any, quiet: bool) -> Any:
    """Call the library with progress bars; Ctrl-C says where its checkpoint went."""
    from kdcli.training.loop import TrainingInterrupted

    try:
        with render.progress_bars(not quiet and _is_main_process()) as progress:
            return run(config, progress)
    except TrainingInterrupted as err:
        render.note(str(err))
        raise


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
    epochs: int = EPOCHS_OPTION,
    max_steps: int | None = MAX_STEPS_OPTION,
    lr: float = LR_OPTION,
    batch_size: int = TRAIN_BATCH_OPTION,
    grad_accum: int = GRAD_ACCUM_OPTION,
    max_length: int = TRAIN_MAX_LENGTH_OPTION,
    warmup_ratio: float = WARMUP_OPTION,
    weight_decay: float = WEIGHT_DECAY_OPTION,
    eval_batch_size: int = EVAL_BATCH_OPTION,
    bf16: bool = BF16_OPTION,
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
    _check_json(json_path)
    finetune_config = FinetuneConfig(
        model=model,
        data=_train_data_config(params),
        out=out,
        train=_train_config(params),
        revision=revision,
        allow_pickle=allow_pickle,
        overwrite=overwrite,
        resume=resume,
    )
    result = _run_training(run_finetune, finetune_config, quiet)
    if not _is_main_process():
        return
    render.finetune_summary(result)
    _write_json(json_path, result)
    half = max(1, result.num_layers // 2)
    render.next_step(
        f"classifier written to {result.out}",
        f"kdcli shrink {result.out} --num-layers {half} --out {result.out}-student",
    )


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
    cache_dir: Path | None = typer.Option(
        None,
        "--cache-dir",
        help="Where teacher outputs are cached (default: $KDCLI_CACHE or ~/.cache/kdcli).",
    ),
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
    max_length: int = TRAIN_MAX_LENGTH_OPTION,
    warmup_ratio: float = WARMUP_OPTION,
    weight_decay: float = WEIGHT_DECAY_OPTION,
    eval_batch_size: int = EVAL_BATCH_OPTION,
    bf16: bool = BF16_OPTION,
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
    _check_json(json_path)
    distill_config = DistillConfig(
        student=student,
        data=_train_data_config(params),
        out=out,
        teacher=teacher,
        kd_loss=kd_loss,
        alpha=alpha,
        temperature=temperature,
        no_kd=no_kd,
        hidden_loss_weight=hidden_loss_weight,
        cache_dir=cache_dir,
        train=_train_config(params),
        teacher_revision=teacher_revision,
        student_revision=student_revision,
        allow_pickle=allow_pickle,
        overwrite=overwrite,
        resume=resume,
    )
    result = _run_training(run_distill, distill_config, quiet)
    if not _is_main_process():
        return
    render.distill_summary(result)
    _write_json(json_path, result)
    models = f"{result.teacher} {result.out}" if result.teacher else str(result.out)
    render.next_step(
        f"student written to {result.out}",
        f"kdcli eval {models} --data {data} --split test",
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
        help="int8: also write model_quantized.onnx (dynamic int8, for CPUs); none: fp32 only.",
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
        help="Verify on the test split of DATA (any --data spec); default: built-in sentences "
        "in 28 languages.",
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
    from kdcli.steps.export import ExportConfig
    from kdcli.steps.export import export as run_export

    _check_json(json_path)
    export_config = ExportConfig(
        source=model,
        out=out,
        quantize=quantize,
        optimize=optimize,
        verify_data=verify_data,
        languages=languages,
        verify_samples=verify_samples,
        atol=atol,
        min_agreement=min_agreement,
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
        allow_pickle=allow_pickle,
    )
    try:
        with render.progress_bars(not quiet) as progress:
            result = run_export(export_config, progress)
    except CheckFailedError as err:
        render.export_summary(err.result)
        _write_json(json_path, err.result)
        raise
    render.export_summary(result)
    _write_json(json_path, result)
    render.next_step(
        f"ONNX export written to {result.out}",
        f"kdcli eval {model} {result.out} --data DATA",
    )


def main() -> None:
    app()


if __name__ == "__main__":
    main()
