"""The one job runner under `kdcli run`, `kdcli study` and `kdcli search`.

A job is a directory and the units of work done in it. A unit is a name, a `Work` (one kdcli step
on its typed config, or a small computation) and the units it needs. The runner

- **caches**: a unit's key is the hash of its work's identity and of the keys of the units it
  needs; the job's state file (`kdcli-job.json`) records the key and result of every finished
  unit, so a rerun skips a unit whose key (and output) is unchanged and redoes what changed, what
  depends on it, and what failed;
- **resumes**: work that trains hands its own checkpoints (`<out>.checkpoints/`) to the step's
  `--resume`, so an interrupted cell continues where it stopped instead of starting over;
- **runs cells in parallel**: with `jobs > 1`, N units run at once in N worker processes (each
  with the machine's CPU threads divided between them, `pool.py`); with `jobs == 1` units run
  in this process, in order;
- **reports progress**: `ProgressEvent(label, done, total, running=, cached=)` for the whole
  job, and every unit's own events as `"<unit> › <task>"` (a `"<unit> › finished"` event ends
  them), which the CLI draws as one grid view;
- **stops** at the first failure (the failed unit named in the error; finished units stay
  recorded) and, given a deadline, starts no unit after it.

Under `accelerate launch` / `torchrun` every process runs the same job: training units run on all
processes (each cell uses all of them), the others on the main process while the rest wait.
The job directory must then be on a filesystem every process sees.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from kdcli.core.errors import CheckFailedError, KdcliError, option_ref
from kdcli.core.progress import ProgressCallback, ProgressEvent, report
from kdcli.files.outputs import write_text_atomic
from kdcli.files.provenance import dumps

STATE_FILE = "kdcli-job.json"
SUBTASK = " › "  # "<unit> › <task>": a unit's own progress events
FINISHED = "finished"  # "<unit> › finished": the unit is done, its bars can go
STATE_VERSION = 1


class Work(Protocol):
    """What a unit does. Instances must pickle (they run in worker processes with `jobs > 1`)."""

    def identity(self) -> dict[str, Any]:
        """Everything that decides the work's result (its cache key is a hash of this)."""
        ...

    def __call__(self, progress: ProgressCallback | None) -> dict[str, Any]:
        """Do the work; return a JSON-ready record of what it made."""
        ...


@dataclass(frozen=True)
class Unit:
    """One piece of a job. Units of one `group` (e.g. a cell's training and its evaluation)
    count as one in the progress view; `counted=False` leaves preparation work out of it."""

    name: str
    work: Any  # a Work
    needs: tuple[str, ...] = ()
    group: str | None = None  # None: the unit is its own group
    counted: bool = True

    @property
    def group_name(self) -> str:
        return self.group or self.name


@dataclass(frozen=True)
class UnitRecord:
    """A finished unit as the state file keeps it."""

    key: str
    result: dict[str, Any]
    seconds: float


@dataclass
class RunSummary:
    """What one `Job.run` call did: units run now, found done, and not started (deadline)."""

    ran: list[str] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)
    not_started: list[str] = field(default_factory=list)


def check_job_dir(root: Path, kind: str, overwrite: bool) -> None:
    """Before any work: `root` is free, a job of this kind (to resume), or --overwrite is given."""
    root = Path(root)
    out, replace = option_ref("out"), f"pass {option_ref('overwrite')} to replace it"
    if root.exists() and not root.is_dir():
        raise KdcliError(
            "exists and is not a directory", option="out", value=root, fix=f"choose another {out}"
        )
    if overwrite or not root.is_dir():
        return
    state = _read_state(root)
    if state is None and any(root.iterdir()):
        raise KdcliError(
            f"exists and is not a kdcli {kind} directory",
            option="out",
            value=root,
            fix=f"choose another {out}, or {replace}",
        )
    if state is not None and state.get("kind") != kind:
        raise KdcliError(
            f"holds a kdcli {state.get('kind')} job, not a {kind}",
            option="out",
            value=root,
            fix=f"choose another {out}, or {replace}",
        )
    parent = root.absolute().parent
    if not os.access(parent, os.W_OK):
        raise KdcliError(
            f"cannot write into {parent}", fix=f"choose an {out} in a writable directory"
        )


def settings_differences(recorded: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """`name old → new` for every setting that differs (both as JSON would store them)."""
    before, after = _flat(_plain(recorded)), _flat(_plain(current))
    names = sorted(set(before) | set(after))
    return [
        f"{name} {_shown(before.get(name))} → {_shown(after.get(name))}"
        for name in names
        if before.get(name) != after.get(name)
    ]


def _flat(settings: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested settings as `train.lr`-style names, so a difference names the one value."""
    flat: dict[str, Any] = {}
    for name, value in settings.items():
        if isinstance(value, dict) and value:
            flat.update(_flat(value, f"{prefix}{name}."))
        else:
            flat[f"{prefix}{name}"] = value
    return flat


def _shown(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(map(str, value)) or "[]"
    return json.dumps(value, ensure_ascii=False) if isinstance(value, dict) else str(value)


class Job:
    """A job directory: its kind, its settings and the record of every finished unit."""

    def __init__(self, root: Path, kind: str, settings: dict[str, Any]) -> None:
        self.root = Path(root)
        self.kind = kind
        self.settings = _plain(settings)
        self.records: dict[str, UnitRecord] = {}
        self.started: dict[str, str] = {}  # units begun and not finished: name -> key
        self.keys: dict[str, str] = {}  # every unit seen by this process, to key its dependants
        self.ranks = _Ranks()

    @classmethod
    def open(
        cls,
        root: Path,
        kind: str,
        settings: dict[str, Any],
        *,
        overwrite: bool,
        fixed_settings: bool,
    ) -> Job:
        """Create the job directory or reopen it to resume.

        `fixed_settings`: a job made with other settings is refused (unless `overwrite`) rather
        than redone unit by unit, because its finished units would silently mix two settings.
        `overwrite` starts over: the directory is emptied first.
        """
        check_job_dir(root, kind, overwrite)
        job = cls(root, kind, settings)
        if job.ranks.main:
            job._prepare(overwrite, fixed_settings)
        job.ranks.wait()
        job._load()
        return job

    def _prepare(self, overwrite: bool, fixed_settings: bool) -> None:
        state = _read_state(self.root)
        if overwrite and self.root.exists():
            shutil.rmtree(self.root)
            state = None
        if state is not None and fixed_settings:
            differences = settings_differences(state.get("settings", {}), self.settings)
            if differences:
                shown = "; ".join(differences[:5])
                more = f"; +{len(differences) - 5} more" if len(differences) > 5 else ""
                raise KdcliError(
                    f"{self.root} holds a {self.kind} made with other settings ({shown}{more})",
                    fix=f"rerun with its settings to resume it, choose another "
                    f"{option_ref('out')}, or pass {option_ref('overwrite')} to start over",
                )
        self.root.mkdir(parents=True, exist_ok=True)
        self._write_state((state or {}).get("units", {}), (state or {}).get("started", {}))

    def _load(self) -> None:
        state = _read_state(self.root) or {}
        self.records = {
            name: UnitRecord(entry["key"], entry["result"], float(entry.get("seconds", 0.0)))
            for name, entry in state.get("units", {}).items()
        }
        self.started = dict(state.get("started", {}))

    def _write_state(
        self, units: dict[str, Any] | None = None, started: dict[str, str] | None = None
    ) -> None:
        if units is None:
            units = {
                name: {"key": r.key, "seconds": r.seconds, "result": r.result}
                for name, r in sorted(self.records.items())
            }
        state = {
            "version": STATE_VERSION,
            "kind": self.kind,
            "settings": self.settings,
            "units": units,
            "started": self.started if started is None else started,
        }
        write_text_atomic(self.root / STATE_FILE, dumps(state) + "\n")

    # --- units ---------------------------------------------------------------------------------

    def result(self, name: str) -> dict[str, Any] | None:
        """The recorded result of a unit this process ran or found done (None: not done)."""
        record = self.records.get(name)
        if record is None or self.keys.get(name, record.key) != record.key:
            return None
        return record.result

    def is_done(self, unit: Unit) -> bool:
        self._key_units([unit])
        record = self.records.get(unit.name)
        if record is None or record.key != self.keys[unit.name]:
            return False
        output = getattr(unit.work, "output", None)
        return output is None or Path(output).exists()

    def _key_units(self, units: Sequence[Unit]) -> None:
        for unit in _in_order(units, set(self.keys)):
            needs = {}
            for need in unit.needs:
                if need not in self.keys:
                    raise ValueError(f"unit {unit.name} needs {need}, which is not known")
                needs[need] = self.keys[need]
            identity = {"work": _plain(unit.work.identity()), "needs": needs}
            text = json.dumps(identity, sort_keys=True, ensure_ascii=False)
            self.keys[unit.name] = hashlib.sha256(text.encode("utf-8")).hexdigest()

    def run(
        self,
        units: Sequence[Unit],
        *,
        jobs: int = 1,
        progress: ProgressCallback | None = None,
        label: str = "units",
        deadline: float | None = None,
    ) -> RunSummary:
        """Run every unit that is not done yet (dependencies first); see the module docstring.

        `deadline` (time.monotonic()): no unit starts after it; those are `not_started`.
        """
        self._key_units(units)
        summary = RunSummary()
        todo = []
        for unit in _in_order(units, set()):
            if self.is_done(unit):
                summary.cached.append(unit.name)
            else:
                todo.append(unit)
        if self.ranks.main:
            for unit in todo:
                self._clear_if_stale(unit)
        tally = _Tally(progress, label, todo, [u for u in units if u.name in summary.cached])
        tally.show()
        if not todo:
            return summary
        if jobs > 1 and self.ranks.world > 1:
            raise KdcliError(
                "runs cells side by side on one machine; under torchrun or accelerate launch "
                "each cell already uses every process",
                option="jobs",
                value=jobs,
                fix=f"drop {option_ref('jobs')}",
            )
        if jobs > 1:
            self._run_parallel(todo, jobs, progress, tally, deadline, summary)
        else:
            self._run_in_order(todo, progress, tally, deadline, summary)
        return summary

    def _run_in_order(
        self,
        todo: list[Unit],
        progress: ProgressCallback | None,
        tally: _Tally,
        deadline: float | None,
        summary: RunSummary,
    ) -> None:
        for unit in todo:
            if _past(deadline) or any(need in summary.not_started for need in unit.needs):
                summary.not_started.append(unit.name)
                continue
            tally.started(unit)
            self._begin(unit)
            started = time.perf_counter()
            result: dict[str, Any] | None = None
            try:
                if self.ranks.main or getattr(unit.work, "all_ranks", False):
                    result = unit.work(_prefixed(progress, unit.name))
            except (KdcliError, CheckFailedError) as err:
                raise _named(err, unit.name) from err
            finally:
                report(progress, f"{unit.name}{SUBTASK}{FINISHED}", 1, 1)
            self._finish(unit, result, time.perf_counter() - started)
            summary.ran.append(unit.name)
            tally.finished(unit)

    def _run_parallel(
        self,
        todo: list[Unit],
        jobs: int,
        progress: ProgressCallback | None,
        tally: _Tally,
        deadline: float | None,
        summary: RunSummary,
    ) -> None:
        from concurrent.futures import FIRST_COMPLETED, wait

        from kdcli.jobs.pool import WorkerPool

        waiting = list(todo)
        running: dict[Any, tuple[Unit, float]] = {}
        failure: BaseException | None = None
        with WorkerPool(min(jobs, len(todo))) as pool:
            try:
                while waiting or running:
                    if failure is None:
                        for unit in _ready(waiting, running, jobs, deadline):
                            waiting.remove(unit)
                            self._begin(unit)
                            running[pool.submit(unit.name, unit.work)] = (unit, time.perf_counter())
                            tally.started(unit)
                    if not running:
                        summary.not_started += [u.name for u in waiting]
                        break
                    finished, _ = wait(list(running), timeout=0.2, return_when=FIRST_COMPLETED)
                    pool.forward_events(_prefixed_by_unit(progress))
                    for future in finished:
                        unit, started = running.pop(future)
                        report(progress, f"{unit.name}{SUBTASK}{FINISHED}", 1, 1)
                        error = future.exception()
                        if error is not None:
                            failure = failure or _named(error, unit.name)
                            tally.finished(unit, failed=True)
                            continue
                        self._finish(unit, future.result(), time.perf_counter() - started)
                        summary.ran.append(unit.name)
                        tally.finished(unit)
                    if failure is not None and not running:
                        break
            except BaseException:
                pool.cancel()
                raise
        if failure is not None:
            raise failure

    def _clear_if_stale(self, unit: Unit) -> None:
        """A unit begun or finished under another key (its settings or inputs changed) starts
        over: what it left (an output, a checkpoint area) belongs to the old settings."""
        key = self.keys[unit.name]
        record = self.records.get(unit.name)
        begun = self.started.get(unit.name)
        stale = (record is not None and record.key != key) or (begun is not None and begun != key)
        clear = getattr(unit.work, "clear", None)
        if stale and clear is not None:
            clear()

    def _begin(self, unit: Unit) -> None:
        if self.ranks.main:
            self.started[unit.name] = self.keys[unit.name]
            self._write_state()

    def _finish(self, unit: Unit, result: dict[str, Any] | None, seconds: float) -> None:
        self.ranks.wait()
        if self.ranks.main:
            assert result is not None
            self.records[unit.name] = UnitRecord(self.keys[unit.name], _plain(result), seconds)
            self.started.pop(unit.name, None)
            self._write_state()
        self.ranks.wait()
        if not self.ranks.main:
            self._load()


def _ready(
    waiting: list[Unit], running: dict[Any, tuple[Unit, float]], jobs: int, deadline: float | None
) -> list[Unit]:
    """Units whose dependencies are done, as many as there are free workers, in order."""
    if _past(deadline):
        return []
    pending = {u.name for u in waiting} | {unit.name for unit, _ in running.values()}
    ready = [u for u in waiting if not any(need in pending for need in u.needs)]
    return ready[: max(0, jobs - len(running))]


def _in_order(units: Sequence[Unit], known: set[str]) -> list[Unit]:
    """Units with every dependency before its dependants (stable otherwise)."""
    by_name = {unit.name: unit for unit in units}
    if len(by_name) != len(units):
        raise ValueError("unit names must be unique")
    placed: list[Unit] = []
    seen = set(known)
    remaining = list(units)
    while remaining:
        progressed = False
        for unit in list(remaining):
            if all(need in seen or need not in by_name for need in unit.needs):
                placed.append(unit)
                seen.add(unit.name)
                remaining.remove(unit)
                progressed = True
        if not progressed:
            names = ", ".join(u.name for u in remaining)
            raise KdcliError(f"the units {names} depend on each other in a cycle: break the cycle")
    return placed


def _past(deadline: float | None) -> bool:
    return deadline is not None and time.monotonic() >= deadline


def _named(error: BaseException, unit: str) -> BaseException:
    """The error, with the unit that raised it named (the CLI still maps it to its exit code)."""
    # text(): the message with its settings still marked, named when the CLI renders it
    if isinstance(error, KdcliError):
        return KdcliError(f"{unit}: {error.text()}")
    if isinstance(error, CheckFailedError):
        return CheckFailedError(f"{unit} failed: {error.text()}", error.result)
    return error


def _prefixed(progress: ProgressCallback | None, unit: str) -> ProgressCallback | None:
    if progress is None:
        return None

    def forward(event: ProgressEvent) -> None:
        progress(ProgressEvent(f"{unit}{SUBTASK}{event.task}", event.done, event.total, event.info))

    return forward


def _prefixed_by_unit(
    progress: ProgressCallback | None,
) -> Callable[[str, ProgressEvent], None] | None:
    if progress is None:
        return None
    return lambda unit, event: progress(
        ProgressEvent(f"{unit}{SUBTASK}{event.task}", event.done, event.total, event.info)
    )


def _read_state(root: Path) -> dict[str, Any] | None:
    path = Path(root) / STATE_FILE
    if not path.is_file():
        return None
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as err:
        raise KdcliError(
            f"{path} is unreadable ({type(err).__name__})",
            fix=f"pass {option_ref('overwrite')} to start the job over",
        ) from err
    return state if isinstance(state, dict) else None


def _plain(value: Any) -> Any:
    """As JSON stores it: paths as text, tuples as lists."""
    return json.loads(dumps(value))


class _Tally:
    """The job-wide progress event: groups (cells) done, running and left, and those found done."""

    def __init__(
        self,
        progress: ProgressCallback | None,
        label: str,
        todo: Sequence[Unit],
        cached: Sequence[Unit],
    ) -> None:
        self.progress = progress
        self.label = label
        self.left: dict[str, int] = {}
        for unit in todo:
            if unit.counted:
                self.left[unit.group_name] = self.left.get(unit.group_name, 0) + 1
        self.cached = len({u.group_name for u in cached if u.counted} - set(self.left))
        self.running: dict[str, int] = {}
        self.failed = 0

    def show(self) -> None:
        done = sum(1 for count in self.left.values() if count == 0)
        report(
            self.progress, self.label, done, len(self.left),
            running=len(self.running), cached=self.cached, failed=self.failed,
        )  # fmt: skip

    def started(self, unit: Unit) -> None:
        if unit.counted:
            self.running[unit.group_name] = self.running.get(unit.group_name, 0) + 1
        self.show()

    def finished(self, unit: Unit, failed: bool = False) -> None:
        if unit.counted:
            group = unit.group_name
            self.running[group] -= 1
            if not self.running[group]:
                del self.running[group]
            if failed:
                self.failed += 1
            else:
                self.left[group] -= 1
        self.show()


class _Ranks:
    """This process's place under `accelerate launch` / `torchrun` (one process otherwise)."""

    def __init__(self) -> None:
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.main = os.environ.get("RANK", "0") == "0"
        self._state: Any = None

    def wait(self) -> None:
        if self.world <= 1:
            return
        if self._state is None:
            import torch
            from accelerate import PartialState

            self._state = PartialState(cpu=not torch.cuda.is_available())
        self._state.wait_for_everyone()
