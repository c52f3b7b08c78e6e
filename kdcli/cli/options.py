"""Options that several commands share, each defined once, and the `--config FILE.yaml` loader.

`--config` works for every command: its keys are the command's option names, its values become
defaults, and flags given on the command line win.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import typer

from kdcli.core.errors import KdcliError

# Settings the command line does not spell `--field-name`: arguments, and `kdcli run --set`.
ARGUMENTS = {"models": "MODEL", "model": "MODEL", "source": "SOURCE", "sets": "--set"}


def option_name(name: str) -> str:
    """How the command line names a library setting: `batch_size` -> `--batch-size`."""
    return ARGUMENTS.get(name) or "--" + name.replace("_", "-")


def parse_names(value: str | None) -> list[str] | None:
    """`en-US,de-DE` as a list of stripped, non-empty items (None: not given)."""
    if value is None:
        return None
    items = [item.strip() for item in value.split(",") if item.strip()]
    return items or None


def parse_ints(option: str, value: str | None, example: str = "0,2,4") -> list[int] | None:
    """`0,2,4` as a list of integers, for the library setting `option`."""
    if value is None:
        return None
    parts = [part.strip() for part in value.split(",")]
    fix = f"give comma-separated integers such as {example}"
    if not value.strip() or any(part == "" for part in parts):
        raise KdcliError("is empty or has an empty item", option=option, value=value, fix=fix)
    try:
        return [int(part) for part in parts]
    except ValueError as err:
        raise KdcliError("is not a list of integers", option=option, value=value, fix=fix) from err


def load_yaml_options(path: Path) -> dict[str, Any]:
    """A `--config FILE.yaml` as {option_name: value}; `num-layers` and `num_layers` both work."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise KdcliError(f"--config {path} does not exist: give the path of a YAML file")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise KdcliError(
            f"--config {path} is not valid YAML: {' '.join(str(err).split())}"
        ) from err
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise KdcliError(f"--config {path} must hold a mapping of option: value")
    return {str(key).replace("-", "_"): value for key, value in data.items()}


def check_known(options: dict[str, Any], known: set[str], where: str) -> None:
    unknown = sorted(set(options) - known)
    if unknown:
        allowed = ", ".join(sorted(k.replace("_", "-") for k in known))
        raise KdcliError(
            f"{where}: unknown option(s) {', '.join(unknown)}; allowed options are: {allowed}"
        )


def _load_config_file(
    ctx: typer.Context, param: typer.CallbackParam, value: Path | None
) -> Path | None:
    """`--config FILE.yaml`: its values become defaults, so explicit flags still win."""
    if value is None:
        return None
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
OVERWRITE_OPTION = typer.Option(
    False, "--overwrite", help="Replace --out (and the --json file) if they exist."
)
SEED_OPTION = typer.Option(0, "--seed", help="Random seed (same inputs + seed = same output).")
REVISION_OPTION = typer.Option(None, "--revision", help="Hub revision (branch, tag or commit).")
PICKLE_OPTION = typer.Option(
    False,
    "--allow-pickle",
    help="Allow a pickle checkpoint (pytorch_model.bin), loaded with weights_only=True.",
)
QUIET_OPTION = typer.Option(False, "--quiet", "-q", help="No progress bars.")


def parse_percent(option: str, text: str | None) -> float | None:
    """A percentage as users write it (`0.5%`, `0.5`, `2`) -> a share (0.005, 0.005, 0.02), for
    the library setting `option`."""
    if text is None:
        return None
    try:
        value = float(str(text).strip().removesuffix("%"))
    except ValueError:
        raise KdcliError(
            "is not a percentage", option=option, value=text, fix="write e.g. 0.5% or 2"
        ) from None
    if not 0.0 <= value <= 100.0:
        raise KdcliError("must be between 0% and 100%", option=option, value=text)
    return value / 100.0


def check_json(path: Path | None, overwrite: bool = False, inputs: Sequence[Any] = ()) -> None:
    """`--json PATH` can be written: not an existing file without --overwrite, never an input."""
    if path is not None:
        from kdcli.files.outputs import check_output_file

        check_output_file(path, "json", overwrite, local_inputs(*inputs))


def local_inputs(*values: Any) -> list[str]:
    """The options' values that name local files or folders (models, data, --config): what a
    result file must never overwrite. Lists (several MODELs) are flattened; None is skipped."""
    found: list[str] = []
    for value in values:
        items = value if isinstance(value, list | tuple) else [value]
        found += [str(item) for item in items if item is not None and str(item)]
    return [item for item in found if Path(item).expanduser().exists()]


def write_json(path: Path | None, result: Any) -> None:
    if path is not None:
        from kdcli.files.outputs import write_text_atomic
        from kdcli.files.provenance import dumps

        write_text_atomic(path, dumps(result.to_dict()) + "\n")


# --- data and training options (finetune and distill; eval reuses the data ones) ------------------

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
TASK_OPTION = typer.Option(
    None,
    "--task",
    help="sequence-classification or token-classification (slots, named entities); default: "
    "the model's head, else what the data holds (MASSIVE: intents).",
)
TAG_SCHEME_OPTION = typer.Option(
    "auto",
    "--tag-scheme",
    help="Token classification: the data's tag scheme, auto, iob1, iob2 or bioes (kept as IOB2).",
)
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
MAX_LENGTH_OPTION = typer.Option(128, "--max-length", help="Truncate texts to this many tokens.")
WARMUP_OPTION = typer.Option(
    0.06, "--warmup-ratio", help="Share of the steps for linear warmup; then linear decay to 0."
)
MAX_GRAD_NORM_OPTION = typer.Option(
    None,
    "--max-grad-norm",
    help="Clip the gradient's total norm to this value (default: no clipping).",
)
WEIGHT_DECAY_OPTION = typer.Option(
    0.01, "--weight-decay", help="AdamW weight decay (not applied to biases and norms)."
)
BATCHING_OPTION = typer.Option(
    "length-grouped",
    "--batching",
    help="length-grouped (texts of similar length together: little padding) or random (as a "
    "plain loop: about twice the compute; see docs/training.md for what each measured).",
)
EVAL_BATCH_OPTION = typer.Option(
    64, "--eval-batch-size", help="Examples per batch for dev evaluation and the teacher."
)
BF16_OPTION = typer.Option(False, "--bf16", help="Compute in bfloat16 (autocast) for speed.")
TRAIN_THREADS_OPTION = typer.Option(
    None,
    "--threads",
    help="CPU threads for PyTorch (default: PyTorch's, every core; set it when other work "
    "shares the cores).",
)
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

# --- whole jobs (run, study, search) ------------------------------------------------------------

JOBS_OPTION = typer.Option(
    1,
    "--jobs",
    help="Run N cells at once on this machine, the CPU threads divided between them.",
)
CACHE_DIR_OPTION = typer.Option(
    None,
    "--cache-dir",
    help="Where teacher outputs are cached (default: $KDCLI_CACHE or ~/.cache/kdcli).",
)
JOB_OVERWRITE_OPTION = typer.Option(
    False, "--overwrite", help="Start over: empty --out first (also after changed settings)."
)
