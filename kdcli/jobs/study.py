"""`kdcli study`: the ablation of "The Privileged Students" on the user's own teacher and data.

The grid is initialization × objective × depth × seed:

- initialization: `teacher` (layers copied from the fine-tuned teacher, the study's winner),
  `pretrained` (the same layers copied from the pre-trained encoder the teacher was fine-tuned
  from: `base`, or the one in the teacher's kdcli.json) or `random` (the same shape, fresh
  weights);
- objective: `kd` (distillation from the teacher: logit MSE, the study's choice, or KL) or `no-kd`
  (cross-entropy on the labels only);
- depth: `num_layers` (default half the teacher's, as in the study: 12 -> 6) and seeds.

Every cell is a `kdcli shrink` (students are shared where the seed does not matter: a copy is the
same for every seed) and a `kdcli distill` into `DIR/cells/<cell>/`, an ordinary kdcli output;
then a `kdcli eval` on `split`. The training data and its sampling are the same for every cell;
the seed changes the training order, the new head and the random initialization. All of it runs
on the job runner (`runner.py`): a rerun skips finished cells and resumes an interrupted one;
growing the grid (another seed, another depth) reuses the finished cells, while changing a
setting that every cell shares is refused unless `overwrite`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from kdcli.core.errors import KdcliError, option_ref
from kdcli.core.progress import ProgressCallback
from kdcli.core.validation import check_choice, check_int
from kdcli.data.splits import DataConfig, normalize_split
from kdcli.jobs import inputs
from kdcli.jobs.runner import Job, Unit, check_job_dir
from kdcli.jobs.step_work import EvalWork, StepWork
from kdcli.jobs.study_report import (
    StudyResult,
    TeacherScores,
    build_cells,
    build_groups,
    report_files,
    write_report,
)
from kdcli.steps.distill import KD_LOSSES, DistillConfig
from kdcli.steps.shrink import ShrinkConfig
from kdcli.surgery.selection import LAYER_STRATEGIES
from kdcli.training.loop import TrainConfig

INITS = ("teacher", "pretrained", "random")
OBJECTIVES = ("kd", "no-kd")
DEFAULT_SEEDS = (0, 1, 2)
KIND = "study"


@dataclass(frozen=True)
class StudyConfig:
    """Everything `kdcli study` can be told. Axis values may be lists or comma-separated text."""

    teacher: str
    data: DataConfig | str
    out: Path
    base: str | None = None
    inits: str | Sequence[str] = INITS
    objectives: str | Sequence[str] = OBJECTIVES
    num_layers: str | Sequence[int] | None = None  # default: half the teacher's layers
    seeds: str | Sequence[int] = DEFAULT_SEEDS
    kd_loss: str = "mse"
    layer_strategy: str = "uniform"
    split: str = "test"
    train: TrainConfig = field(default_factory=TrainConfig)
    cache_dir: Path | None = None
    jobs: int = 1
    allow_pickle: bool = False
    overwrite: bool = False


@dataclass(frozen=True)
class Cell:
    """One point of the grid."""

    init: str
    objective: str
    num_layers: int
    seed: int

    @property
    def name(self) -> str:
        return f"{self.init}-{self.objective}-L{self.num_layers}-s{self.seed}"

    @property
    def student(self) -> str:
        """The shrink output it trains: copies do not depend on the seed, random weights do."""
        seed = f"-s{self.seed}" if self.init == "random" else ""
        return f"{self.init}-L{self.num_layers}{seed}"


@dataclass(frozen=True)
class _Plan:
    """A checked study: resolved inputs, the grid and the job's settings."""

    config: StudyConfig
    teacher: inputs.Teacher
    base: str | None
    data: DataConfig
    split: str
    cells: list[Cell]
    layer_strategy: str

    def settings(self) -> dict[str, Any]:
        """What every cell shares: a finished grid is refused when one of these changes."""
        config = self.config
        return {
            "teacher": self.teacher.name,
            "teacher_sha256": self.teacher.sha256,
            "base": self.base,
            "data": self.data.settings(),
            "split": self.split,
            "kd_loss": config.kd_loss,
            "layer_strategy": self.layer_strategy,
            "train": {k: v for k, v in config.train.identity().items() if k != "seed"},
        }


def study(config: StudyConfig, progress: ProgressCallback | None = None) -> StudyResult:
    """Run (or resume) the grid of `config` and write its report into `config.out`."""
    started = time.perf_counter()
    plan = _check(config)
    root = Path(config.out).absolute()
    job = Job.open(root, KIND, plan.settings(), overwrite=config.overwrite, fixed_settings=True)
    units = _units(plan, root)
    summary = job.run(units, jobs=config.jobs, progress=progress, label="cells")
    teacher = TeacherScores.from_eval(plan.teacher.name, job.result("teacher-eval"))
    rows = [
        (
            cell,
            str(root / "cells" / cell.name),
            job.result(f"evals/{cell.name}"),
            job.records[f"cells/{cell.name}"].seconds,
        )
        for cell in plan.cells
    ]
    cells = build_cells(rows, teacher)
    groups = build_groups(cells)
    ran = len({u for u in summary.ran if u.startswith("cells/")})
    result = StudyResult(
        out=Path(config.out),
        teacher=plan.teacher.name,
        base=plan.base,
        data=plan.data.data,
        split=plan.split,
        kd_loss=config.kd_loss,
        teacher_scores=teacher,
        groups=groups,
        cells=cells,
        files=[],
        ran=ran,
        cached=len(plan.cells) - ran,
        seconds=0.0,
        notes=_notes(plan),
    )
    result = replace(result, files=report_files(root), seconds=time.perf_counter() - started)
    if job.ranks.main:
        write_report(result, root)
    return result


def _check(config: StudyConfig) -> _Plan:
    """Every option, the teacher, the base and the data, before anything is written."""
    inits = inputs.choices("inits", config.inits, INITS)
    objectives = inputs.choices("objectives", config.objectives, OBJECTIVES)
    seeds = inputs.integers("seeds", config.seeds, minimum=0)
    check_choice("kd_loss", config.kd_loss, KD_LOSSES)
    strategies = tuple(s for s in LAYER_STRATEGIES if s != "importance")
    check_choice("layer_strategy", config.layer_strategy, strategies)
    check_int("jobs", config.jobs)
    if config.base is not None and "pretrained" not in inits:
        raise KdcliError(
            "is only used by the pretrained initialization",
            option="base",
            value=config.base,
            fix=f"add pretrained to {option_ref('inits')} or drop {option_ref('base')}",
        )
    split = normalize_split(config.split)
    config.train.check()
    check_job_dir(Path(config.out), KIND, config.overwrite)
    teacher = inputs.load_teacher(inputs.absolute(config.teacher), config.allow_pickle)
    layers = teacher.dims["layers"]
    if config.num_layers is None:
        depths = [max(1, layers // 2)]
    else:
        depths = inputs.integers("num_layers", config.num_layers, minimum=1)
        too_deep = [n for n in depths if n >= layers]
        if too_deep:
            raise KdcliError(
                f"is not smaller than the teacher's {layers} layers",
                option="num_layers",
                value=too_deep[0],
                fix=f"give depths below {layers}, e.g. {max(1, layers // 2)}",
            )
    base = _base(config, teacher) if "pretrained" in inits else None
    data = inputs.data_config(config.data)
    inputs.check_data(data, split)
    cells = [
        Cell(init, objective, depth, seed)
        for init in inits
        for objective in objectives
        for depth in depths
        for seed in seeds
    ]
    return _Plan(config, teacher, base, data, split, cells, config.layer_strategy)


def _base(config: StudyConfig, teacher: inputs.Teacher) -> str:
    """The pre-trained encoder of the `pretrained` initialization, checked to exist."""
    from kdcli.files.model_dirs import LoadOptions, read_config_dict, resolve_model

    base = config.base or teacher.base_model()
    if base is None:
        raise KdcliError(
            f"the pretrained initialization needs the encoder {teacher.name} was fine-tuned "
            "from, and its kdcli.json does not name one",
            fix=f"pass {option_ref('base')} MODEL, or drop pretrained from {option_ref('inits')}",
        )
    ref = resolve_model(inputs.absolute(base), LoadOptions(allow_pickle=config.allow_pickle))
    base_config = read_config_dict(ref)
    from kdcli.surgery.architectures import architecture_for

    base_layers = architecture_for(base_config, ref.name).teacher_dims(base_config)["layers"]
    if base_layers != teacher.dims["layers"]:
        raise KdcliError(
            f"has {base_layers} layers and the teacher {teacher.dims['layers']}: the pretrained "
            "initialization copies the teacher's layers from its own pre-trained encoder",
            option="base",
            value=base,
            fix=f"pass that one as {option_ref('base')}",
        )
    return ref.name


def _units(plan: _Plan, root: Path) -> list[Unit]:
    config = plan.config
    teacher = plan.teacher.name
    units = [
        Unit(
            "teacher-eval",
            EvalWork(inputs.eval_config(plan.data, [teacher], plan.split, config.train)),
            counted=False,
        )
    ]
    students: dict[str, Unit] = {}
    for cell in plan.cells:
        if cell.student not in students:
            source = plan.base if cell.init == "pretrained" else teacher
            assert source is not None
            shrink = ShrinkConfig(
                source,
                out=root / "students" / cell.student,
                num_layers=cell.num_layers,
                layer_strategy=plan.layer_strategy,
                random_init=cell.init == "random",
                seed=cell.seed if cell.init == "random" else 0,
                allow_pickle=config.allow_pickle,
            )
            students[cell.student] = Unit(
                f"students/{cell.student}", StepWork("shrink", shrink), counted=False
            )
    units += students.values()
    for cell in plan.cells:
        out = root / "cells" / cell.name
        distill = DistillConfig(
            student=str(root / "students" / cell.student),
            data=plan.data,
            out=out,
            teacher=teacher,
            kd_loss=config.kd_loss if cell.objective == "kd" else "mse",
            no_kd=cell.objective == "no-kd",
            cache_dir=config.cache_dir,
            train=replace(config.train, seed=cell.seed),
            allow_pickle=config.allow_pickle,
        )
        evaluation = inputs.eval_config(plan.data, [str(out)], plan.split, config.train)
        units += [
            Unit(
                f"cells/{cell.name}",
                StepWork("distill", distill),
                needs=(f"students/{cell.student}",),
                group=cell.name,
            ),
            Unit(
                f"evals/{cell.name}",
                EvalWork(evaluation),
                needs=(f"cells/{cell.name}",),
                group=cell.name,
            ),
        ]
    return units


def _notes(plan: _Plan) -> list[str]:
    notes = []
    if "pretrained" in {c.init for c in plan.cells} and plan.config.base is None:
        notes.append(f"pretrained initialization from {plan.base} (the teacher's kdcli.json)")
    return notes
