"""`kdcli search`: the smallest (or fastest) student that meets the user's constraints.

The space (`search_space.py`): depths x layer strategies x widths are *shapes* to train; each
trained shape is deployed as four *variants*: full or trimmed vocabulary x fp32 or int8 ONNX.
Training is what costs, so the search spends it only where it can pay off:

1. **Free**: the teacher is scored once; each shape's size is estimated from the teacher's
   tensor shapes, and a variant that cannot fit `max_size` is dropped before anything is built.
2. **Seconds per shape**: each remaining shape is copied out of the teacher (`kdcli shrink`,
   untrained), which gives its exact parameter count. With a latency limit (or the `latency`
   objective), the untrained shapes are exported and timed, cheapest first: weights do not change
   speed, so a shape that is too slow untrained is too slow trained, and every deeper-and-wider
   shape is dropped with it without being measured.
3. **Short runs**: every shape that can meet the size and latency limits is distilled for a
   fraction of the full training (`short_fraction`, cheapest first); its dev retention (macro
   and worst language) ranks it.
4. **Full runs, in objective order**: variants are taken smallest (or fastest) first; a variant's
   shape is trained in full only when its short run is *promising*: what a full run may still
   add could take it to every accuracy target. That is `allowance` points, grown to the largest
   gain a full run has shown over its short run, or the largest share of its gap to the teacher
   a full run has closed, whichever is more. The trained model is trimmed, exported (verified
   against PyTorch, int8 included), measured and scored on `split`; the first variant that meets
   every constraint is the answer, since every smaller one was ruled out.

`exhaustive` trains every feasible shape in full and scores every variant (the baseline of
`benchmarks/bench_search.py`). Everything runs on the job runner, so a search resumes where it
stopped and `budget` stops it (with the best found so far) when the time is up.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from kdcli.core.errors import CheckFailedError, KdcliError
from kdcli.core.progress import ProgressCallback
from kdcli.core.validation import check_choice, check_int, check_number
from kdcli.data.splits import DataConfig, load_split, normalize_split
from kdcli.jobs import inputs
from kdcli.jobs import search_space as space
from kdcli.jobs.runner import Job, Unit, check_job_dir
from kdcli.jobs.search_report import (
    Candidate,
    SearchResult,
    answer_line,
    best_candidates,
    constraints_text,
    failure_message,
    report_files,
    write_files,
)
from kdcli.jobs.step_work import EvalWork, StepWork
from kdcli.steps.distill import KD_LOSSES, DistillConfig
from kdcli.steps.export import ExportConfig
from kdcli.steps.shrink import ShrinkConfig
from kdcli.surgery.selection import LAYER_STRATEGIES
from kdcli.training.loop import TrainConfig, plan_steps

KIND = "search"
OBJECTIVES = ("size", "latency")
VOCABS = ("full", "trimmed")
FORMATS = ("fp32", "int8")
DEFAULT_MIN_RETENTION = 0.98
PROBE_TEXTS = 4  # per language: probes time the graph, they do not judge accuracy
BEST_SHOWN = 3


@dataclass(frozen=True)
class SearchConfig:
    """Everything `kdcli search` can be told. List options take lists or comma-separated text."""

    teacher: str
    data: DataConfig | str
    out: Path
    min_retention: float | None = None  # default 0.98 when no accuracy constraint is given
    min_language_retention: float | None = None
    max_size: str | int | None = None  # e.g. "50MB"
    max_latency: str | float | None = None  # e.g. "5ms": batch 1, this machine, exported form
    budget: str | float | None = None  # e.g. "2h": wall time of the whole search
    objective: str = "size"
    depths: str | Sequence[int] | None = None  # default: 1/4, 1/3, 1/2, 2/3 and all layers
    layer_strategies: str | Sequence[str] = ("uniform", "importance")
    widths: str | Sequence[float] = (1.0, 0.75, 0.5)
    vocab: str | Sequence[str] = VOCABS
    formats: str | Sequence[str] = FORMATS
    split: str = "dev"
    short_fraction: float = 0.25
    allowance: float = 0.05
    exhaustive: bool = False
    kd_loss: str = "mse"
    train: TrainConfig = field(default_factory=TrainConfig)
    cache_dir: Path | None = None
    jobs: int = 1
    allow_pickle: bool = False
    overwrite: bool = False


@dataclass(frozen=True)
class _Plan:
    config: SearchConfig
    teacher: inputs.Teacher
    data: DataConfig
    split: str
    min_retention: float | None
    min_language_retention: float | None
    max_size: int | None
    max_latency: float | None
    budget: float | None
    shapes: list[space.Shape]
    vocabs: list[str]
    formats: list[str]
    short_steps: int
    sizes: space.TeacherSizes

    @property
    def measures_latency(self) -> bool:
        return self.max_latency is not None or self.config.objective == "latency"

    def settings(self) -> dict[str, Any]:
        """What decides every unit: a search is refused when one of these changes."""
        config = self.config
        return {
            "teacher": self.teacher.name,
            "teacher_sha256": self.teacher.sha256,
            "data": self.data.settings(),
            "split": self.split,
            "kd_loss": config.kd_loss,
            "train": config.train.identity(),
            "short_steps": self.short_steps,
        }

    def constraints(self) -> dict[str, Any]:
        return {
            "min_retention": self.min_retention,
            "min_language_retention": self.min_language_retention,
            "max_size": self.max_size,
            "max_latency_ms": self.max_latency,
            "budget_s": self.budget,
        }


def search(config: SearchConfig, progress: ProgressCallback | None = None) -> SearchResult:
    """Search (or resume searching) the space of `config`; write the answer into `config.out`.

    Raises CheckFailedError (with the result, files written) when no candidate meets the
    constraints.
    """
    started = time.perf_counter()
    plan = _check(config)
    root = Path(config.out).absolute()
    job = Job.open(root, KIND, plan.settings(), overwrite=config.overwrite, fixed_settings=True)
    run = _Search(plan, job, root, progress)
    run.run()
    result = run.result(Path(config.out), time.perf_counter() - started)

    result = replace(result, files=report_files(result, root))
    if job.ranks.main:
        write_files(result, root)
    if result.chosen is None:
        raise CheckFailedError(failure_message(result), result)
    return result


# --- checks --------------------------------------------------------------------------------------


def _check(config: SearchConfig) -> _Plan:
    check_choice("objective", config.objective, OBJECTIVES)
    check_choice("kd_loss", config.kd_loss, KD_LOSSES)
    min_retention = space.parse_fraction("min_retention", config.min_retention)
    min_language = space.parse_fraction("min_language_retention", config.min_language_retention)
    if min_retention is None and min_language is None:
        min_retention = DEFAULT_MIN_RETENTION
    max_size = space.parse_size("max_size", config.max_size)
    max_latency = space.parse_latency("max_latency", config.max_latency)
    budget = space.parse_duration("budget", config.budget)
    strategies = inputs.choices("layer_strategies", config.layer_strategies, LAYER_STRATEGIES)
    widths = sorted(inputs.fractions("widths", config.widths), reverse=True)
    vocabs = inputs.choices("vocab", config.vocab, VOCABS)
    formats = inputs.choices("formats", config.formats, FORMATS)
    short_fraction = space.parse_fraction("short_fraction", config.short_fraction)
    check_number("allowance", config.allowance, minimum=0, below=1)
    check_int("jobs", config.jobs)
    split = normalize_split(config.split)
    config.train.check()
    check_job_dir(Path(config.out), KIND, config.overwrite)
    teacher = inputs.load_teacher(inputs.absolute(config.teacher), config.allow_pickle)
    layers = teacher.dims["layers"]
    if config.depths is None:
        depths = space.default_depths(layers)
    else:
        depths = sorted(inputs.integers("depths", config.depths, minimum=1, maximum=layers))
    data = inputs.data_config(config.data)
    train_split = load_split(data, "train")
    inputs.check_data(data, split)
    shapes = space.build_shapes(depths, strategies, widths, teacher.dims)
    full_steps = plan_steps(len(train_split), config.train, 1).total_steps
    assert short_fraction is not None
    short_steps = max(1, math.ceil(short_fraction * full_steps))
    return _Plan(
        config=config,
        teacher=teacher,
        data=data,
        split=split,
        min_retention=min_retention,
        min_language_retention=min_language,
        max_size=max_size,
        max_latency=max_latency,
        budget=budget,
        shapes=shapes,
        vocabs=vocabs,
        formats=formats,
        short_steps=short_steps,
        sizes=_teacher_sizes(teacher, config.allow_pickle),
    )


def _teacher_sizes(teacher: inputs.Teacher, allow_pickle: bool) -> space.TeacherSizes:
    from kdcli.files.model_dirs import open_checkpoint

    with open_checkpoint(teacher.ref, allow_pickle) as checkpoint:
        shapes = {name: info.shape for name, info in checkpoint.infos().items()}
    return space.TeacherSizes.from_tensors(
        shapes, teacher.vocab_size, teacher.dims["hidden"], teacher.dims["layers"]
    )


# --- the search ----------------------------------------------------------------------------------


@dataclass
class _Track:
    """What is known about one variant so far."""

    variant: space.Variant
    status: str = "not reached"
    reason: str = ""
    size: float | None = None
    size_measured: bool = False
    latency: float | None = None
    retention: float | None = None
    worst_retention: float | None = None
    worst_language: str | None = None
    languages: dict[str, float] | None = None
    seconds: float = 0.0
    path: str | None = None

    @property
    def open(self) -> bool:
        """Still a candidate (not pruned, not yet judged)."""
        return self.status == "not reached"


class _Search:
    def __init__(
        self, plan: _Plan, job: Job, root: Path, progress: ProgressCallback | None
    ) -> None:
        self.plan = plan
        self.job = job
        self.root = root
        self.progress = progress
        self.deadline = time.monotonic() + plan.budget if plan.budget else None
        self.budget_reached = False
        self.tracks = {
            v.name: _Track(v)
            for shape in plan.shapes
            for v in (
                space.Variant(shape, vocab, fmt) for vocab in plan.vocabs for fmt in plan.formats
            )
        }
        self.shapes = {shape.name: shape for shape in plan.shapes}
        self.short: dict[str, tuple[float, float]] = {}  # shape -> (retention, worst retention)
        self.full: set[str] = set()
        self.probed: set[str] = set()
        self.vocab_rows: int | None = None
        self.allowance = plan.config.allowance
        self.closes = 0.0  # the largest share of its gap to the teacher a full run has closed
        self.overhead: dict[str, float] = {}  # format -> measured minus estimated size
        self.chosen: str | None = None

    # --- the phases ----------------------------------------------------------------------------

    def run(self) -> None:
        self._prepare()
        self._prune_by_size()
        self._build_shapes()
        self._prune_by_size()
        if self.plan.measures_latency:
            self._probe()
        if self.plan.config.exhaustive:
            self._train_all()
        else:
            self._short_runs()
            self._full_runs()
        self._finish()

    def _phase(self, units: list[Unit], label: str) -> bool:
        """Run units; False when the budget stopped them."""
        if not units:
            return True
        summary = self.job.run(
            units, jobs=self.plan.config.jobs, progress=self.progress, label=label,
            deadline=self.deadline,
        )  # fmt: skip
        if summary.not_started:
            self.budget_reached = True
            return False
        return True

    def _prepare(self) -> None:
        plan = self.plan
        units = [
            Unit(
                "teacher-dev",
                EvalWork(self._eval_config([plan.teacher.name], "dev")),
                counted=False,
            )
        ]
        if plan.split != "dev":
            units.append(
                Unit(
                    "teacher-eval",
                    EvalWork(self._eval_config([plan.teacher.name], plan.split)),
                    counted=False,
                )
            )
        if "trimmed" in plan.vocabs:
            units.append(
                Unit(
                    "vocab",
                    StepWork(
                        "shrink",
                        self._trim_config(plan.teacher.name, self.root / "vocab", num_layers=1),
                    ),
                    counted=False,
                )
            )
        if not self._phase(units, "prepare"):
            raise KdcliError(
                f"{plan.budget:g}s ran out before the teacher was scored",
                option="budget",
                fix="give more time",
            )
        self.teacher_dev = _languages(self.job.result("teacher-dev"))
        self.teacher_split = _languages(
            self.job.result("teacher-dev" if plan.split == "dev" else "teacher-eval")
        )
        if "trimmed" in plan.vocabs:
            vocab = (self.job.result("vocab") or {}).get("vocab") or {}
            self.vocab_rows = int(vocab.get("student") or plan.teacher.vocab_size)

    def _prune_by_size(self) -> None:
        """Refresh every open variant's size and drop those that cannot fit --max-size.

        The order uses the best estimate (`_size`); pruning uses a lower bound (a measurement,
        or parameters times bytes per parameter: graph overhead and weights int8 keeps in float
        only add to it), so a variant that could fit is never dropped."""
        limit = self.plan.max_size
        for track in self.tracks.values():
            if not track.open:
                continue
            track.size = self._size(track.variant)
            bound = track.size if track.size_measured else self._estimate(track.variant)
            if limit is not None and bound > limit:
                track.status = "pruned"
                track.reason = (
                    f"{'size' if track.size_measured else 'size at least'} "
                    f"{_mb(bound)} > --max-size {_mb(limit)}"
                )

    def _size(self, variant: space.Variant) -> float:
        """Bytes of the variant's ONNX file: measured by a probe, else estimated from parameter
        counts and corrected by what the exports measured so far."""
        shape = variant.shape
        probe = self.job.result(f"probes/{shape.name}")
        measured = (probe or {}).get("int8_bytes" if variant.format == "int8" else "fp32_bytes")
        if measured:
            full = self._estimate(replace(variant, vocab="full"))
            self.tracks[variant.name].size_measured = variant.vocab == "full"
            return float(measured) - (full - self._estimate(variant))
        return self._estimate(variant) + self.overhead.get(variant.format, 0.0)

    def _estimate(self, variant: space.Variant) -> float:
        """Parameters times bytes per parameter (a trimmed vocabulary has fewer rows)."""
        shape = variant.shape
        params = self._params(shape)
        if variant.vocab == "trimmed" and self.vocab_rows is not None:
            params -= (self.plan.teacher.vocab_size - self.vocab_rows) * shape.hidden
        return params * space.bytes_per_param(variant.format)

    def _params(self, shape: space.Shape) -> float:
        record = self.job.result(f"shapes/{shape.name}")
        if record is not None:
            return float(record["student_params"])
        if shape.is_teacher:
            return float(self.plan.sizes.params(shape))
        return self.plan.sizes.params(shape)

    def _live_shapes(self) -> list[space.Shape]:
        """Shapes with at least one variant still in the running, cheapest first."""
        alive = {t.variant.shape.name for t in self.tracks.values() if t.open}
        return [s for s in self.plan.shapes if s.name in alive]

    def _build_shapes(self) -> None:
        units = [
            Unit(
                f"shapes/{shape.name}", StepWork("shrink", self._shape_config(shape)), counted=False
            )
            for shape in self._live_shapes()
            if not shape.is_teacher
        ]
        self._phase(units, "shapes")

    def _probe(self) -> None:
        """Export and time the untrained shapes, cheapest first; a shape too slow rules out
        every shape at least as deep and as wide without being measured."""
        limit = self.plan.max_latency
        for shape in self._live_shapes():
            if not any(t.open for t in self._tracks_of(shape)):
                continue
            slow = self._too_slow_dominated(shape)
            if slow is not None:
                for track in self._tracks_of(shape):
                    if track.open:
                        track.status = "pruned"
                        track.reason = f"slower than {slow}, which already misses --max-latency"
                continue
            unit = Unit(
                f"probes/{shape.name}",
                StepWork("export", self._probe_config(shape), record_failed_checks=True),
                counted=False,
            )
            if not self._phase([unit], "measure"):
                return
            self.probed.add(shape.name)
            record = self.job.result(unit.name) or {}
            for track in self._tracks_of(shape):
                track.latency = _latency(record, track.variant.format)
                track.size = self._size(track.variant)
                if not track.open:
                    continue
                if limit is not None and track.latency is not None and track.latency > limit:
                    track.status = "pruned"
                    track.reason = f"latency {track.latency:.2f} ms > --max-latency {limit:g} ms"
                elif self.plan.max_size is not None and track.size > self.plan.max_size:
                    track.status = "pruned"
                    track.reason = f"size {_mb(track.size)} > --max-size {_mb(self.plan.max_size)}"

    def _too_slow_dominated(self, shape: space.Shape) -> str | None:
        """A measured shape that `shape` dominates and whose every variant missed the limit."""
        if self.plan.max_latency is None:
            return None
        for other in self.plan.shapes:
            if other.name not in self.probed or other.name == shape.name:
                continue
            tracks = self._tracks_of(other)
            slow = all(t.latency is not None and t.latency > self.plan.max_latency for t in tracks)
            if slow and shape.dominates(other):
                return other.name
        return None

    def _short_runs(self) -> None:
        shapes = [s for s in self._live_shapes() if not s.is_teacher]
        units = [
            Unit(
                f"short/{shape.name}",
                StepWork("distill", self._distill_config(shape, short=True)),
                needs=(f"shapes/{shape.name}",),
            )
            for shape in shapes
        ]
        self._phase(units, "short runs")
        for shape in shapes:
            record = self.job.result(f"short/{shape.name}")
            if record is not None:
                self.short[shape.name] = self._dev_retention(record)

    def _dev_retention(self, record: dict[str, Any]) -> tuple[float, float]:
        per_language = record["training"]["dev_per_language"]
        return _retention(per_language, self.teacher_dev)

    def _promising(self, shape: space.Shape) -> bool:
        if shape.is_teacher or shape.name in self.full:
            return True
        if shape.name not in self.short:
            return False
        retention, worst = self.short[shape.name]
        return space.promising(
            retention, worst, self.plan.min_retention, self.plan.min_language_retention,
            self.allowance, self.closes,
        )  # fmt: skip

    def _ordered(self) -> list[_Track]:
        """Open variants by objective (estimated or measured), then cheapest shape."""
        self._prune_by_size()
        key = "latency" if self.plan.config.objective == "latency" else "size"
        return sorted(
            (t for t in self.tracks.values() if t.open),
            key=lambda t: (
                getattr(t, key) if getattr(t, key) is not None else math.inf,
                t.variant.shape.compute,
                t.variant.name,
            ),
        )

    def _full_runs(self) -> None:
        """Smallest first: train a promising shape in full, judge its variants; stop at the first
        variant that meets everything."""
        while not self.budget_reached:
            order = [t for t in self._ordered() if self._promising(t.variant.shape)]
            if not order:
                break
            untrained = [
                t.variant.shape
                for t in order
                if t.variant.shape.name not in self.full and not t.variant.shape.is_teacher
            ]
            first = order[0].variant.shape
            if first.name not in self.full and not first.is_teacher:
                batch = list(dict.fromkeys(s.name for s in untrained))[: self.plan.config.jobs]
                if not self._train([self.shapes[name] for name in batch]):
                    break
                continue
            if not self._judge(order[0]):
                break
            if order[0].status == "meets":
                self.chosen = order[0].variant.name
                break
        for track in self.tracks.values():
            if not track.open:
                continue
            shape = track.variant.shape
            ranked = shape.name in self.short or shape.is_teacher
            if self.budget_reached and not ranked:
                track.status, track.reason = (
                    "over budget",
                    "the budget ran out before its short run",
                )
            elif not self._promising(shape):
                track.status = "unpromising"
                track.reason = self._unpromising_reason(shape)
            elif self.budget_reached:
                track.status, track.reason = "over budget", "the budget ran out first"
            elif self.chosen is not None:
                word = "slower" if self.plan.config.objective == "latency" else "larger"
                track.reason = f"{word} than {self.chosen}, which meets every constraint"

    def _train_all(self) -> None:
        shapes = [s for s in self._live_shapes() if not s.is_teacher]
        if not self._train(shapes):
            return
        for track in self._ordered():
            if not self._judge(track):
                break
        meeting = [t for t in self._ordered_all() if t.status == "meets"]
        if meeting:
            self.chosen = meeting[0].variant.name
        for track in self.tracks.values():
            if track.open and self.budget_reached:
                track.status, track.reason = "over budget", "the budget ran out first"

    def _ordered_all(self) -> list[_Track]:
        key = "latency" if self.plan.config.objective == "latency" else "size"
        judged = [t for t in self.tracks.values() if getattr(t, key) is not None]
        return sorted(
            judged, key=lambda t: (getattr(t, key), t.variant.shape.compute, t.variant.name)
        )

    def _train(self, shapes: Sequence[space.Shape]) -> bool:
        units = [
            Unit(
                f"full/{shape.name}",
                StepWork("distill", self._distill_config(shape, short=False)),
                needs=(f"shapes/{shape.name}",),
            )
            for shape in shapes
        ]
        done = self._phase(units, "full runs")
        for shape in shapes:
            record = self.job.result(f"full/{shape.name}")
            if record is None:
                continue
            self.full.add(shape.name)
            if shape.name in self.short:  # learn how much a full run adds to a short one
                self.allowance, self.closes = space.full_run_gain(
                    self.short[shape.name], self._dev_retention(record), self.allowance, self.closes
                )
        return done

    def _judge(self, track: _Track) -> bool:
        """Trim, export, measure and score one variant; False when the budget stopped it."""
        variant = track.variant
        shape = variant.shape
        units = []
        trained = self._trained_dir(shape)
        source = trained
        if variant.vocab == "trimmed":
            trim = Unit(
                f"trimmed/{shape.name}",
                StepWork(
                    "shrink", self._trim_config(str(trained), self.root / "trimmed" / shape.name)
                ),
                needs=self._trained_needs(shape),
                counted=False,
            )
            units.append(trim)
            source = self.root / "trimmed" / shape.name
        export_name = f"exports/{shape.name}-{variant.vocab}"
        export_out = self.root / "exports" / f"{shape.name}-{variant.vocab}"
        needs = (
            (f"trimmed/{shape.name}",) if variant.vocab == "trimmed" else self._trained_needs(shape)
        )
        export_work = StepWork(
            "export", self._export_config(str(source), export_out), record_failed_checks=True
        )
        units.append(Unit(export_name, export_work, needs=needs, group=variant.name))
        onnx = export_out / ("model_quantized.onnx" if variant.format == "int8" else "model.onnx")
        units.append(
            Unit(
                f"evals/{variant.name}",
                EvalWork(self._eval_config([str(onnx)], self.plan.split)),
                needs=(export_name,),
                group=variant.name,
            )
        )
        if not self._phase(units, "candidates"):
            return False
        export = self.job.result(export_name) or {}
        evaluation = self.job.result(f"evals/{variant.name}")
        track.path = str(onnx)
        track.size = float(
            export.get("int8_bytes" if variant.format == "int8" else "fp32_bytes") or 0
        )
        track.size_measured = True
        self.overhead[variant.format] = track.size - self._estimate(variant)
        track.latency = _latency(export, variant.format)
        track.languages = _languages(evaluation)
        track.retention, track.worst_retention = _retention(track.languages, self.teacher_split)
        track.worst_language = _worst_share_language(track.languages, self.teacher_split)
        track.seconds = sum(
            self._seconds(name)
            for name in (
                f"full/{shape.name}",
                export_name,
                f"evals/{variant.name}",
                f"trimmed/{shape.name}",
            )
        )
        verified = _verified(export, variant.format)
        misses = self._misses(track)
        if not verified:
            track.status = "unverified"
            track.reason = f"the {variant.format} export does not match PyTorch closely enough"
        elif misses:
            track.status = "fails"
            track.reason = "; ".join(misses)
        else:
            track.status = "meets"
            track.reason = "meets every constraint"
        return True

    def _misses(self, track: _Track) -> list[str]:
        plan = self.plan
        misses = []
        if plan.min_retention is not None and (track.retention or 0) < plan.min_retention:
            misses.append(
                f"retention {100 * (track.retention or 0):.1f}% < {100 * plan.min_retention:g}%"
            )
        if (
            plan.min_language_retention is not None
            and (track.worst_retention or 0) < plan.min_language_retention
        ):
            kept = 100 * (track.worst_retention or 0)
            target = 100 * plan.min_language_retention
            misses.append(f"{track.worst_language} keeps {kept:.1f}% < {target:g}%")
        if plan.max_size is not None and track.size is not None and track.size > plan.max_size:
            misses.append(f"size {_mb(track.size)} > {_mb(plan.max_size)}")
        if (
            plan.max_latency is not None
            and track.latency is not None
            and track.latency > plan.max_latency
        ):
            misses.append(f"latency {track.latency:.2f} ms > {plan.max_latency:g} ms")
        return misses

    def _unpromising_reason(self, shape: space.Shape) -> str:
        if shape.name not in self.short:
            return "no short run"
        retention, worst = self.short[shape.name]
        return (
            f"short run: retention {100 * retention:.1f}%, worst language {100 * worst:.1f}%; "
            "a full run was not expected to reach the targets (it may add "
            f"{100 * self.allowance:.0f} points or close {100 * self.closes:.0f}% of the gap to "
            "the teacher, whichever is more)"
        )

    def _finish(self) -> None:
        if self.chosen is None or not self.job.ranks.main:
            return
        track = self.tracks[self.chosen]
        track.status = "chosen"
        shape = track.variant.shape
        model = (
            self._trained_dir(shape)
            if track.variant.vocab == "full"
            else self.root / "trimmed" / shape.name
        )
        export = self.root / "exports" / f"{shape.name}-{track.variant.vocab}"
        _copy_dir(Path(model), self.root / "model")
        _copy_dir(export, self.root / "export")

    # --- configs -------------------------------------------------------------------------------

    def _trained_dir(self, shape: space.Shape) -> Path:
        return (
            Path(self.plan.teacher.ref.path)
            if shape.is_teacher
            else self.root / "full" / shape.name
        )

    def _trained_needs(self, shape: space.Shape) -> tuple[str, ...]:
        return () if shape.is_teacher else (f"full/{shape.name}",)

    def _seconds(self, unit: str) -> float:
        record = self.job.records.get(unit)
        return record.seconds if record is not None else 0.0

    def _tracks_of(self, shape: space.Shape) -> list[_Track]:
        return [t for t in self.tracks.values() if t.variant.shape.name == shape.name]

    def _eval_config(self, models: list[str], split: str) -> Any:
        return inputs.eval_config(self.plan.data, models, split, self.plan.config.train)

    def _shape_config(self, shape: space.Shape) -> ShrinkConfig:
        plan = self.plan
        full_depth = shape.num_layers == plan.teacher.dims["layers"]
        narrower = shape.width < 1.0
        importance = shape.strategy == "importance"
        return ShrinkConfig(
            plan.teacher.name,
            out=self.root / "shapes" / shape.name,
            num_layers=None if full_depth else shape.num_layers,
            layer_strategy=None if full_depth else shape.strategy,
            hidden_size=shape.hidden if narrower else None,
            intermediate_size=shape.intermediate if narrower else None,
            width_strategy="magnitude" if narrower else "first",
            calib_data=plan.data.data if importance else None,
            languages=list(plan.data.languages) if importance and plan.data.languages else None,
            allow_pickle=plan.config.allow_pickle,
        )

    def _trim_config(self, source: str, out: Path, num_layers: int | None = None) -> ShrinkConfig:
        plan = self.plan
        return ShrinkConfig(
            source,
            out=out,
            num_layers=num_layers,
            vocab_from=plan.data.data,
            languages=list(plan.data.languages) if plan.data.languages else None,
            allow_pickle=plan.config.allow_pickle,
        )

    def _probe_config(self, shape: space.Shape) -> ExportConfig:
        plan = self.plan
        source = plan.teacher.name if shape.is_teacher else str(self.root / "shapes" / shape.name)
        return ExportConfig(
            source,
            out=self.root / "probes" / shape.name,
            quantize="int8" if "int8" in plan.formats else "none",
            verify_data=plan.data.data,
            languages=list(plan.data.languages) if plan.data.languages else None,
            verify_samples=PROBE_TEXTS,
            atol=1e9,  # untrained: only the graph's size and speed matter here
            min_agreement=0.0,
            max_length=plan.config.train.max_length,
            allow_pickle=plan.config.allow_pickle,
        )

    def _export_config(self, source: str, out: Path) -> ExportConfig:
        plan = self.plan
        return ExportConfig(
            source,
            out=out,
            quantize="int8" if "int8" in plan.formats else "none",
            verify_data=plan.data.data,
            languages=list(plan.data.languages) if plan.data.languages else None,
            max_length=plan.config.train.max_length,
        )

    def _distill_config(self, shape: space.Shape, short: bool) -> DistillConfig:
        plan = self.plan
        train = plan.config.train
        if short:
            train = replace(train, max_steps=plan.short_steps)
        return DistillConfig(
            student=str(self.root / "shapes" / shape.name),
            data=plan.data,
            out=self.root / ("short" if short else "full") / shape.name,
            teacher=plan.teacher.name,
            kd_loss=plan.config.kd_loss,
            cache_dir=plan.config.cache_dir,
            train=train,
            allow_pickle=plan.config.allow_pickle,
        )

    # --- the result ----------------------------------------------------------------------------

    def result(self, out: Path, seconds: float) -> SearchResult:

        candidates = [self._candidate(t) for t in self.tracks.values()]
        chosen = next((c for c in candidates if c.name == self.chosen), None)
        plan = self.plan
        result = SearchResult(
            out=out,
            teacher=plan.teacher.name,
            data=plan.data.data,
            split=plan.split,
            objective=plan.config.objective,
            constraints=plan.constraints(),
            constraints_text=constraints_text(plan.constraints()),
            teacher_accuracy=sum(self.teacher_split.values()) / len(self.teacher_split),
            teacher_languages=self.teacher_split,
            chosen=chosen,
            answer="",
            best=[],
            candidates=candidates,
            trained_full=len(self.full),
            trained_short=len(self.short),
            probed=len(self.probed),
            model=self.root / "model" if chosen else None,
            export=self.root / "export" if chosen else None,
            files=[],
            budget_reached=self.budget_reached,
            exhaustive=plan.config.exhaustive,
            seconds=seconds,
        )
        return replace(
            result,
            answer=answer_line(result) if chosen else "",
            best=best_candidates(result, BEST_SHOWN),
        )

    def _candidate(self, track: _Track) -> Candidate:
        variant = track.variant
        shape = variant.shape
        record = self.job.result(f"shapes/{shape.name}") or {}
        kept = record.get("kept_layers") or (
            list(range(shape.num_layers)) if shape.is_teacher else None
        )
        short = self.short.get(shape.name)
        vocab_size = self.vocab_rows if variant.vocab == "trimmed" else self.plan.teacher.vocab_size
        return Candidate(
            name=variant.name,
            shape=shape.name,
            num_layers=shape.num_layers,
            teacher_layers=shape.teacher_layers,
            layer_strategy=shape.strategy,
            kept_layers=kept,
            width=shape.width,
            hidden=shape.hidden,
            intermediate=shape.intermediate,
            heads=shape.heads,
            vocab=variant.vocab,
            vocab_size=int(vocab_size or 0),
            format=variant.format,
            status=track.status,
            reason=track.reason,
            size_bytes=None if track.size is None else int(track.size),
            size_measured=track.size_measured,
            latency_ms=track.latency,
            short_retention=short[0] if short else None,
            short_worst_retention=short[1] if short else None,
            retention=track.retention,
            worst_retention=track.worst_retention,
            worst_language=track.worst_language,
            languages=track.languages,
            seconds=track.seconds,
            path=track.path,
        )


# --- helpers -------------------------------------------------------------------------------------


def _languages(record: dict[str, Any] | None) -> dict[str, float]:
    if not record or not record.get("models"):
        raise ValueError("an evaluation record without models")
    return {lang: float(s["accuracy"]) for lang, s in record["models"][0]["languages"].items()}


def _retention(languages: dict[str, float], teacher: dict[str, float]) -> tuple[float, float]:
    """Macro accuracy as a share of the teacher's, and the lowest per-language share."""
    macro = sum(languages.values()) / len(languages)
    teacher_macro = sum(teacher[lang] for lang in languages) / len(languages)
    shares = [languages[lang] / teacher[lang] if teacher.get(lang) else 1.0 for lang in languages]
    return (macro / teacher_macro if teacher_macro else 1.0), min(shares)


def _worst_share_language(languages: dict[str, float], teacher: dict[str, float]) -> str:
    shares = {
        lang: value / teacher[lang] if teacher.get(lang) else 1.0
        for lang, value in languages.items()
    }
    return min(sorted(shares), key=lambda lang: shares[lang])


def _latency(export: dict[str, Any], fmt: str) -> float | None:
    timing = (export.get("latency") or {}).get("onnx-int8" if fmt == "int8" else "onnx")
    return float(timing["batch1_ms"]) if timing else None


def _verified(export: dict[str, Any], fmt: str) -> bool:
    check = (export.get("verification") or {}).get(fmt)
    return bool(check and check.get("passed"))


def _mb(size: float) -> str:
    from kdcli.core.formatting import size_text

    return size_text(size)


def _copy_dir(source: Path, target: Path) -> None:
    """A fresh copy of `source` at `target` (built beside it, renamed into place)."""
    import shutil

    from kdcli.files.outputs import atomic_output_dir

    with atomic_output_dir(target, overwrite=True) as tmp:
        shutil.rmtree(tmp)
        shutil.copytree(source, tmp)
