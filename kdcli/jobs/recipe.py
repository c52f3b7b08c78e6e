"""`kdcli run RECIPE.yaml`: a whole chain of kdcli steps declared once, run, cached and resumed.

A recipe names its stages; each stage is one step (`finetune`, `shrink`, `distill`, `eval`,
`export`, or a whole `study` / `search`) with the options of that step, and refers to an earlier
stage's output as `{stage}`:

    defaults:                  # given to every stage whose step has the option
      data: ../data/massive-sample
    stages:
      teacher:  {step: finetune, model: xlm-roberta-base, epochs: 5}
      student:  {step: shrink, source: "{teacher}", num-layers: 6}
      distilled: {step: distill, student: "{student}", teacher: "{teacher}"}
      deploy:   {step: export, source: "{distilled}", quantize: int8}
    report:                    # the final report (optional; these are the defaults)
      split: test

Each stage writes `DIR/<stage>/`. Relative paths in the recipe are relative to the recipe's
folder; values given with `--set stage.option=value` are relative to the working directory. The
job ends with one report: `kdcli eval` of every model the recipe trained or exported (the first
is the reference), with latency, sizes and lineage, in `DIR/report.{md,json,csv,png}`.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from kdcli.core.errors import KdcliError, option_ref
from kdcli.core.progress import ProgressCallback
from kdcli.core.results import JsonResult
from kdcli.core.validation import check_int
from kdcli.data.splits import DataConfig
from kdcli.jobs.runner import Job, Unit, check_job_dir
from kdcli.jobs.step_work import EvalWork, StepWork
from kdcli.training.loop import TrainConfig

KIND = "run"
STEPS = ("finetune", "shrink", "distill", "eval", "export", "study", "search")
MODEL_STEPS = ("finetune", "distill", "export")  # their outputs go into the final report
STAGE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
REFERENCE = re.compile(r"\{([^{}]*)\}")
RESERVED = ("report", "defaults")
# The data options of training steps (and study, search): DataConfig's fields under their CLI
# names (the seed is the training's --seed).
DATA_OPTIONS = {
    ("data_revision" if f.name == "revision" else f.name): f.name
    for f in fields(DataConfig)
    if f.name != "seed"
}
TRAIN_OPTIONS = tuple(f.name for f in fields(TrainConfig))
NOT_OPTIONS = ("out", "overwrite", "resume", "train")  # set by the runner, not by a recipe
ALIASES = {"export": {"model": "source"}, "eval": {"model": "models"}}
REPORT_OPTIONS = ("data", "split", "models", "languages", "speed", "threads", "batch_size")


@dataclass(frozen=True)
class RecipeConfig:
    """Everything `kdcli run` can be told."""

    recipe: Path
    out: Path
    sets: Sequence[str] = ()  # "stage.option=value" overrides
    jobs: int = 1
    overwrite: bool = False


@dataclass(frozen=True)
class StageResult:
    name: str
    step: str
    out: Path | None
    cached: bool  # done by an earlier run, unchanged
    seconds: float
    result: dict[str, Any] = field(repr=False)


@dataclass(frozen=True)
class RecipeResult(JsonResult):
    recipe: Path
    out: Path
    stages: list[StageResult]
    report: dict[str, Any] | None  # the final `kdcli eval` (EvalReport.to_dict())
    files: list[Path]
    seconds: float
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Stage:
    name: str
    step: str
    options: dict[str, Any]


def run_recipe(config: RecipeConfig, progress: ProgressCallback | None = None) -> RecipeResult:
    """Run (or continue) the recipe; stages already done with the same options are skipped."""
    started = time.perf_counter()
    check_int("jobs", config.jobs)
    check_job_dir(Path(config.out), KIND, config.overwrite)
    root = Path(config.out).absolute()
    stages, report = load_recipe(Path(config.recipe), config.sets)
    units = [_unit(stage, root) for stage in stages]
    report_unit = _report_unit(stages, report, root)
    settings = {"recipe": str(Path(config.recipe).absolute())}
    job = Job.open(root, KIND, settings, overwrite=config.overwrite, fixed_settings=False)
    everything = units + ([report_unit] if report_unit else [])
    summary = job.run(everything, jobs=config.jobs, progress=progress, label="stages")
    results = []
    for stage, unit in zip(stages, units, strict=True):
        record = job.records[unit.name]
        results.append(
            StageResult(
                stage.name,
                stage.step,
                getattr(unit.work, "output", None),
                unit.name in summary.cached,
                record.seconds,
                record.result,
            )
        )
    final = job.result("report") if report_unit else None
    files = [root / name for name in _REPORT_NAMES if (root / name).exists()] if final else []
    notes = [] if report_unit else ["no stage trains or exports a model: no final report"]
    return RecipeResult(
        recipe=Path(config.recipe),
        out=Path(config.out),
        stages=results,
        report=final,
        files=files,
        seconds=time.perf_counter() - started,
        notes=notes,
    )


_REPORT_NAMES = ("report.md", "report.json", "report.csv", "report.png")


# --- reading a recipe --------------------------------------------------------------------------


def load_recipe(path: Path, sets: Sequence[str] = ()) -> tuple[list[Stage], dict[str, Any] | None]:
    """The stages (options resolved: defaults, --set, relative paths; references kept) and the
    final report's options (None: no report)."""
    import yaml

    if not path.is_file():
        raise KdcliError(f"recipe {path} does not exist: give the path of a recipe YAML file")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise KdcliError(f"recipe {path} is not valid YAML: {' '.join(str(err).split())}") from err
    if not isinstance(data, dict) or not isinstance(data.get("stages"), dict) or not data["stages"]:
        raise KdcliError(f"recipe {path} needs a `stages:` mapping of stage name to its options")
    unknown = sorted(set(data) - {"stages", "defaults", "report"})
    if unknown:
        raise KdcliError(
            f"recipe {path}: unknown top-level key(s) {', '.join(unknown)}; allowed are "
            "stages, defaults, report"
        )
    base = path.absolute().parent
    stages = _stages(data["stages"], path)
    defaults = _options(data.get("defaults") or {}, f"recipe {path}, defaults")
    report = data.get("report", {})
    if report is not False:
        report = _options(report or {}, f"recipe {path}, report")
    _apply_sets(stages, defaults, report, sets)
    _apply_defaults(stages, defaults, path)
    names = [s.name for s in stages]
    resolved = [
        Stage(s.name, s.step, {k: _resolve(v, base, names, s.name) for k, v in s.options.items()})
        for s in stages
    ]
    if report is False:
        return resolved, None
    report = {k: _resolve(v, base, names, "report") for k, v in report.items()}
    unknown = sorted(set(report) - set(REPORT_OPTIONS))
    if unknown:
        raise KdcliError(
            f"recipe {path}, report: unknown option(s) {', '.join(unknown)}; allowed are "
            f"{', '.join(REPORT_OPTIONS)}"
        )
    return resolved, report


def _stages(raw: dict[Any, Any], path: Path) -> list[Stage]:
    stages = []
    for name, options in raw.items():
        name = str(name)
        if not STAGE_NAME.match(name) or name in RESERVED:
            raise KdcliError(
                f"recipe {path}: stage name {name!r} is not allowed: use letters, digits, - _ . "
                f"(not {' or '.join(RESERVED)})"
            )
        if not isinstance(options, dict) or "step" not in options:
            raise KdcliError(
                f"recipe {path}, stage {name}: give its step, e.g. `step: finetune`, and options"
            )
        step = str(options["step"])
        if step not in STEPS:
            raise KdcliError(
                f"recipe {path}, stage {name}: step {step!r} is unknown; choose one of "
                f"{', '.join(STEPS)}"
            )
        rest = {k: v for k, v in options.items() if k != "step"}
        stages.append(Stage(name, step, _options(rest, f"recipe {path}, stage {name}")))
    return stages


def _options(raw: Any, where: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise KdcliError(f"{where}: give a mapping of option: value")
    return {str(key).replace("-", "_"): value for key, value in raw.items()}


def _apply_sets(
    stages: list[Stage], defaults: dict[str, Any], report: Any, sets: Sequence[str]
) -> None:
    """`--set stage.option=value` (also `defaults.option=` and `report.option=`): the value is
    read as YAML, so numbers and lists keep their type; paths are relative to the working dir."""
    import yaml

    targets = {s.name: s.options for s in stages} | {"defaults": defaults}
    if isinstance(report, dict):
        targets["report"] = report
    for item in sets:
        where, equals, text = item.partition("=")
        stage, dot, option = where.partition(".")
        if not equals or not dot or not option:
            raise KdcliError(
                "is not STAGE.OPTION=VALUE", option="sets", value=item, fix="e.g. teacher.epochs=1"
            )
        if stage not in targets:
            raise KdcliError(
                f": the recipe has no stage {stage!r}",
                option="sets",
                value=item,
                fix=f"its stages are {', '.join(s.name for s in stages)}",
            )
        try:
            value = yaml.safe_load(text) if text else None
        except yaml.YAMLError as err:
            raise KdcliError(": the value is not valid YAML", option="sets", value=item) from err
        if isinstance(value, str) and Path(value).expanduser().exists():
            value = str(Path(value).expanduser().absolute())
        targets[stage][option.replace("-", "_")] = value


def _apply_defaults(stages: list[Stage], defaults: dict[str, Any], path: Path) -> None:
    used = set()
    for stage in stages:
        known = step_options(stage.step)
        for option, value in defaults.items():
            if option in known and option not in stage.options:
                stage.options[option] = value
                used.add(option)
    unused = sorted(set(defaults) - used - {o for s in stages for o in s.options})
    if unused:
        raise KdcliError(
            f"recipe {path}, defaults: no stage takes {', '.join(unused)}: check the spelling "
            "or remove it"
        )


def _resolve(value: Any, base: Path, stages: list[str], stage: str) -> Any:
    """`{name}` -> that stage's output folder (kept as a placeholder until the job's directory
    is known); a relative path that exists beside the recipe -> an absolute path."""
    if isinstance(value, list):
        return [_resolve(v, base, stages, stage) for v in value]
    if not isinstance(value, str):
        return value
    for name in REFERENCE.findall(value):
        if name not in stages:
            raise KdcliError(
                f"stage {stage}: {value!r} refers to {{{name}}}, which is not a stage of the "
                f"recipe; its stages are {', '.join(stages)}"
            )
        if stage in stages and stages.index(name) >= stages.index(stage):
            raise KdcliError(
                f"stage {stage}: {value!r} refers to {{{name}}}, which comes later: a stage "
                "can only use the outputs of stages above it"
            )
    if REFERENCE.search(value):
        return value
    candidate = base / Path(value).expanduser()
    if not Path(value).is_absolute() and candidate.exists():
        return os.path.normpath(candidate)
    return value


def references(value: Any) -> list[str]:
    """The stages a resolved option value refers to."""
    if isinstance(value, list):
        return [name for item in value for name in references(item)]
    return REFERENCE.findall(value) if isinstance(value, str) else []


def _fill(value: Any, root: Path) -> Any:
    if isinstance(value, list):
        return [_fill(v, root) for v in value]
    if isinstance(value, str):
        return REFERENCE.sub(lambda m: str(root / m.group(1)), value)
    return value


# --- stages as step configs --------------------------------------------------------------------


def step_options(step: str) -> set[str]:
    """The option names a stage of `step` accepts (the step's config fields, under the CLI's
    names, with the data and training options of training steps spelled out)."""
    config_type = _config_type(step)
    names = {f.name for f in fields(config_type)} - set(NOT_OPTIONS)
    if any(f.name == "train" for f in fields(config_type)):  # data is a DataConfig too
        names |= set(DATA_OPTIONS) | set(TRAIN_OPTIONS)
    return names | set(ALIASES.get(step, {}))


def _config_type(step: str) -> Any:
    from kdcli.jobs.search import SearchConfig
    from kdcli.jobs.study import StudyConfig
    from kdcli.steps.distill import DistillConfig
    from kdcli.steps.evaluate import EvalConfig
    from kdcli.steps.export import ExportConfig
    from kdcli.steps.finetune import FinetuneConfig
    from kdcli.steps.shrink import ShrinkConfig

    return {
        "finetune": FinetuneConfig,
        "shrink": ShrinkConfig,
        "distill": DistillConfig,
        "eval": EvalConfig,
        "export": ExportConfig,
        "study": StudyConfig,
        "search": SearchConfig,
    }[step]


def stage_config(stage: Stage, root: Path) -> Any:
    """The step's typed config for a stage (its output: `root/<stage>`)."""
    config_type = _config_type(stage.step)
    options = {
        ALIASES.get(stage.step, {}).get(k, k): _fill(v, root) for k, v in stage.options.items()
    }
    known = step_options(stage.step)
    unknown = sorted(set(stage.options) - known)
    if unknown:
        raise KdcliError(
            f"stage {stage.name} ({stage.step}): unknown option(s) "
            f"{', '.join(u.replace('_', '-') for u in unknown)}; {stage.step} takes "
            f"{', '.join(sorted(k.replace('_', '-') for k in known))}"
        )
    names = {f.name for f in fields(config_type)}
    try:
        kwargs = _typed(config_type, {k: v for k, v in options.items() if k in names})
        if "train" in names:
            if "data" in options:  # the data options become one DataConfig
                kwargs["data"] = _data_config(options)
            train_options = _typed(
                TrainConfig, {k: options[k] for k in TRAIN_OPTIONS if k in options}
            )
            train = TrainConfig(**train_options)
            train.check()
            kwargs["train"] = train
    except KdcliError as err:  # about one option of this stage: say which stage
        raise KdcliError(f"stage {stage.name}: {err.text()}") from err
    if "out" in names:
        kwargs["out"] = root / stage.name
    if stage.step == "eval" and isinstance(kwargs.get("models"), str):
        kwargs["models"] = [kwargs["models"]]
    required = [
        f.name
        for f in fields(config_type)
        if kwargs.get(f.name) is None and _required(f) and f.name not in NOT_OPTIONS
    ]
    if required:
        raise KdcliError(
            f"stage {stage.name} ({stage.step}): {', '.join(required)} is required",
            fix=f"set it in the recipe or pass {option_ref('sets')} "
            f"{stage.name}.{required[0].replace('_', '-')}=VALUE",
        )
    return config_type(**kwargs)


def _typed(config_type: Any, options: dict[str, Any]) -> dict[str, Any]:
    """Values as the config's field types want them, as the command line would give them: YAML
    reads `1e-4` as text and `--set` values arrive as text; a value of the wrong kind is an
    error naming the option."""
    import typing

    try:
        hints = typing.get_type_hints(config_type)
    except (NameError, TypeError):  # an annotation only known to type checkers: leave values be
        return dict(options)
    return {name: _coerce(name, value, hints.get(name)) for name, value in options.items()}


def _coerce(name: str, value: Any, hint: Any) -> Any:
    import types
    import typing

    if value is None or hint is None:
        return value
    kinds = (
        set(typing.get_args(hint))
        if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union
        else {hint}
    )
    option = name.replace("_", "-")
    items = _list_item_type(kinds)
    if items is not None and isinstance(value, str | int | float | list | tuple):
        return _coerce_list(option, value, items)
    if bool in kinds and isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    if isinstance(value, str) and str not in kinds and (float in kinds or int in kinds):
        try:
            return int(value) if int in kinds and float not in kinds else float(value)
        except ValueError as err:
            raise KdcliError(f"{option} {value!r} is not a number") from err
    if isinstance(value, int) and not isinstance(value, bool) and float in kinds:
        return value if int in kinds else float(value)
    if isinstance(value, float) and int in kinds and float not in kinds and value.is_integer():
        return int(value)
    return value


def _list_item_type(kinds: set[Any]) -> type | None:
    """int or str when a field takes a list of them (layers, languages), else None."""
    import collections.abc
    import typing

    for kind in kinds:
        if typing.get_origin(kind) in (list, collections.abc.Sequence):
            item = (typing.get_args(kind) or (str,))[0]
            return item if item in (int, str) else None
    return None


def _coerce_list(option: str, value: Any, item: type) -> list[Any]:
    """`0,2,4` (text, as --set gives it) or a YAML list as the list a typed config takes."""
    parts = value if isinstance(value, list | tuple) else str(value).split(",")
    texts = [str(part).strip() for part in parts]
    if not texts or any(not text for text in texts):
        raise KdcliError(f"{option} {value!r} is empty or has an empty item: give e.g. 0,2,4")
    if item is str:
        return texts
    try:
        return [int(text) for text in texts]
    except ValueError as err:
        raise KdcliError(f"{option} {value!r} is not a list of integers: give e.g. 0,2,4") from err


def _required(f: Any) -> bool:
    from dataclasses import MISSING

    return f.default is MISSING and f.default_factory is MISSING


def _data_config(options: dict[str, Any]) -> DataConfig:
    values = _typed(DataConfig, {f: options[o] for o, f in DATA_OPTIONS.items() if o in options})
    values["data"] = str(values["data"])
    return DataConfig(**values, seed=int(options.get("seed", 0) or 0))


def _unit(stage: Stage, root: Path) -> Unit:
    config = stage_config(stage, root)
    needs = tuple(dict.fromkeys(n for v in stage.options.values() for n in references(v)))
    if stage.step == "eval":
        return Unit(stage.name, EvalWork(config, root / stage.name), needs=needs)
    return Unit(stage.name, StepWork(stage.step, config), needs=needs)


def _report_unit(stages: list[Stage], report: dict[str, Any] | None, root: Path) -> Unit | None:
    """The final `kdcli eval`: every trained or exported model, on `report.data`'s split."""
    if report is None:
        return None
    from kdcli.steps.evaluate import EvalConfig

    models = report.get("models")
    if models is None:
        chosen = [s.name for s in stages if s.step in MODEL_STEPS]
    else:
        chosen = [m.strip("{}") for m in ([models] if isinstance(models, str) else models)]
        missing = [m for m in chosen if m not in {s.name for s in stages}]
        if missing:
            raise KdcliError(
                f"report: models {', '.join(missing)} are not stages of the recipe; name stages "
                f"that make models: {', '.join(s.name for s in stages if s.step in MODEL_STEPS)}"
            )
    if not chosen:
        return None
    data = report.get("data") or next(
        (
            s.options["data"]
            for s in stages
            if s.step in ("finetune", "distill") and "data" in s.options
        ),
        None,
    )
    if data is None:
        raise KdcliError("report: give report.data (the data to score the models on)")
    config = EvalConfig(
        models=[str(root / name) for name in chosen],
        data=_fill(data, root),
        split=str(report.get("split", "test")),
        languages=report.get("languages"),
        batch_size=int(report.get("batch_size", 64)),
        threads=report.get("threads"),
        speed=bool(report.get("speed", True)),
    )
    return Unit("report", EvalWork(config, root), needs=tuple(chosen))
