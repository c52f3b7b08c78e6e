"""The runner's units of work that are kdcli steps: one public step function on its typed config.

A step unit always owns its output (it lives inside the job's directory and only runs when it is
not done), so it runs with `overwrite`; a training step whose checkpoint area holds a checkpoint
(an interrupted earlier run) runs with `resume`, which continues exactly where it stopped.
"""

from __future__ import annotations

import importlib
from dataclasses import asdict, dataclass, fields, is_dataclass, replace
from pathlib import Path
from typing import Any

from kdcli.core.errors import CheckFailedError
from kdcli.core.progress import ProgressCallback

STEPS = {
    "finetune": "kdcli.steps.finetune",
    "shrink": "kdcli.steps.shrink",
    "distill": "kdcli.steps.distill",
    "eval": "kdcli.steps.evaluate",
    "export": "kdcli.steps.export",
    "study": "kdcli.jobs.study",
    "search": "kdcli.jobs.search",
}
FUNCTIONS = {"eval": "evaluate"}  # the function of a step, where it is not named like the step
TRAINING_STEPS = ("finetune", "distill")
JOB_STEPS = ("study", "search")  # whole jobs as steps of a recipe: they resume by themselves
# Settings of a config that say how to write, not what: they never change a unit's key.
NOT_IDENTITY = ("overwrite", "resume")


def config_identity(config: Any) -> dict[str, Any]:
    """A step config's settings as a dict (nested configs included), minus how-to-write flags."""
    data = asdict(config) if is_dataclass(config) and not isinstance(config, type) else dict(config)
    return {k: v for k, v in data.items() if k not in NOT_IDENTITY}


@dataclass(frozen=True)
class StepWork:
    """Run `kdcli.<step>(config)`; the unit's record is the result's `to_dict()`.

    `record_failed_checks`: a failed check (an export that does not verify) is recorded as the
    result (`passed: false`) instead of stopping the job; the search uses it to rule out a
    candidate.
    """

    step: str
    config: Any
    record_failed_checks: bool = False

    @property
    def output(self) -> Path | None:
        out = getattr(self.config, "out", None)
        return Path(out) if out is not None else None

    @property
    def all_ranks(self) -> bool:
        """Training uses every process of a distributed launch; other steps run on one."""
        return self.step in TRAINING_STEPS

    def identity(self) -> dict[str, Any]:
        return {"step": self.step, "config": config_identity(self.config)}

    def clear(self) -> None:
        """Remove what an earlier run under other settings left: output and checkpoints."""
        if self.output is not None:
            remove_output(self.output)

    def __call__(self, progress: ProgressCallback | None) -> dict[str, Any]:
        module = importlib.import_module(STEPS[self.step])
        function = getattr(module, FUNCTIONS.get(self.step, self.step))
        try:
            result = function(self._fresh(), progress)
        except CheckFailedError as err:
            if not self.record_failed_checks or err.result is None:
                raise
            result = err.result
        return result.to_dict()

    def _fresh(self) -> Any:
        config = self.config
        names = {f.name for f in fields(config)}
        changes: dict[str, Any] = {}
        if "overwrite" in names and self.step not in JOB_STEPS:
            changes["overwrite"] = True
        if "resume" in names and self.output is not None:
            from kdcli.training.checkpoints import CheckpointArea

            changes["resume"] = CheckpointArea(self.output).latest() is not None
        return replace(config, **changes)


def remove_output(out: Path) -> None:
    """An output directory and the checkpoint area beside it."""
    import shutil

    out = Path(out)
    for path in (out, out.parent / f"{out.name}.checkpoints"):
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


@dataclass(frozen=True)
class EvalWork:
    """`kdcli eval` of some models; with `out`, its report files go into that folder too."""

    config: Any  # EvalConfig
    out: Path | None = None

    @property
    def output(self) -> Path | None:
        return Path(self.out) / "report.json" if self.out is not None else None

    def identity(self) -> dict[str, Any]:
        return {"step": "eval", "config": config_identity(self.config), "out": self.out}

    def __call__(self, progress: ProgressCallback | None) -> dict[str, Any]:
        from kdcli.steps.evaluate import evaluate

        report = evaluate(self.config, progress)
        if self.out is not None:
            write_eval_files(report, Path(self.out))
        return report.to_dict()


REPORT_FILES = ("report.json", "report.csv", "report.md", "report.png")


def write_eval_files(report: Any, folder: Path) -> list[Path]:
    """report.json, report.csv, report.md (and report.png with matplotlib), each atomically;
    report.json last, so its presence means the others are there."""
    import importlib.util

    from kdcli.evaluation.report_files import ReportOutputs, write_outputs

    folder.mkdir(parents=True, exist_ok=True)
    plot = importlib.util.find_spec("matplotlib") is not None
    written = write_outputs(
        report,
        ReportOutputs(
            csv=folder / "report.csv",
            markdown=folder / "report.md",
            plot=folder / "report.png" if plot else None,
        ),
    )
    return written + write_outputs(report, ReportOutputs(json=folder / "report.json"))
