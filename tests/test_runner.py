"""The job runner under run/study/search: caching by key, redoing what changed, failures named,
parallel units, the deadline, and the job directory's settings (no models: toy units)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from kdcli.core.errors import CheckFailedError, KdcliError
from kdcli.jobs.runner import STATE_FILE, Job, Unit, check_job_dir


@dataclass(frozen=True)
class Write:
    """A toy unit: writes `text` into `folder/name` and counts its runs in `folder/runs.log`."""

    folder: str
    name: str
    text: str
    fail: str = ""  # "kdcli", "check" or "" (succeed)
    sleep: float = 0.0

    @property
    def output(self) -> Path:
        return Path(self.folder) / self.name

    def identity(self) -> dict:
        return {"name": self.name, "text": self.text}

    def clear(self) -> None:
        self.output.unlink(missing_ok=True)
        with (Path(self.folder) / "cleared.log").open("a") as log:
            log.write(self.name + "\n")

    def __call__(self, progress) -> dict:
        time.sleep(self.sleep)
        if progress is not None:
            from kdcli.core.progress import ProgressEvent

            progress(ProgressEvent("write", 1, 1))
        if self.fail == "kdcli":
            raise KdcliError(f"bad value in {self.name}")
        if self.fail == "check":
            raise CheckFailedError(f"{self.name} did not verify")
        with (Path(self.folder) / "runs.log").open("a") as log:
            log.write(self.name + "\n")
        self.output.write_text(self.text)
        return {"written": self.name, "length": len(self.text)}


def _runs(folder: Path) -> list[str]:
    log = folder / "runs.log"
    return log.read_text().split() if log.exists() else []


def _chain(folder: Path, **texts: str) -> list[Unit]:
    """a -> b -> c, each needing the one before."""
    names = ["a", "b", "c"]
    return [
        Unit(name, Write(str(folder), name, texts.get(name, name)), needs=tuple(names[:i][-1:]))
        for i, name in enumerate(names)
    ]


def _open(root: Path, settings: dict | None = None, **kwargs) -> Job:
    options = {"overwrite": False, "fixed_settings": False, **kwargs}
    return Job.open(root, "test", settings or {}, **options)


def test_a_rerun_skips_finished_units_and_redoes_what_changed_and_what_uses_it(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    summary = _open(tmp_path / "job").run(_chain(work))
    assert summary.ran == ["a", "b", "c"] and _runs(work) == ["a", "b", "c"]
    state = json.loads((tmp_path / "job" / STATE_FILE).read_text())
    assert state["units"]["b"]["result"] == {"written": "b", "length": 1}
    again = _open(tmp_path / "job").run(_chain(work))
    assert again.cached == ["a", "b", "c"] and again.ran == []
    changed = _open(tmp_path / "job").run(_chain(work, b="B2"))
    assert changed.cached == ["a"] and changed.ran == ["b", "c"]  # c uses b: it reruns too
    assert (work / "b").read_text() == "B2"
    assert (work / "cleared.log").read_text().split() == ["b", "c"]  # old outputs went first
    (work / "c").unlink()  # an output removed by hand is made again
    assert _open(tmp_path / "job").run(_chain(work, b="B2")).ran == ["c"]


def test_a_failure_names_the_unit_keeps_what_finished_and_a_rerun_retries_it(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    units = _chain(work)
    units[1] = Unit("b", Write(str(work), "b", "b", fail="kdcli"), needs=("a",))
    with pytest.raises(KdcliError, match=r"^b: bad value in b$"):
        _open(tmp_path / "job").run(units)
    assert _runs(work) == ["a"]  # c never started
    state = json.loads((tmp_path / "job" / STATE_FILE).read_text())
    assert list(state["units"]) == ["a"] and state["started"] == {"b": state["started"]["b"]}
    summary = _open(tmp_path / "job").run(_chain(work))
    assert summary.cached == ["a"] and summary.ran == ["b", "c"]
    failing = [Unit("x", Write(str(work), "x", "x", fail="check"))]
    with pytest.raises(CheckFailedError, match=r"^x failed: x did not verify$"):
        _open(tmp_path / "job").run(failing)


def test_parallel_units_run_in_worker_processes_and_record_the_same_results(tmp_path):
    serial, parallel = tmp_path / "serial", tmp_path / "parallel"
    results = {}
    events = []
    for folder, jobs in ((serial, 1), (parallel, 2)):
        folder.mkdir()
        units = [
            Unit(f"u{i}", Write(str(folder), f"u{i}", f"text {i}", sleep=0.5)) for i in range(4)
        ]
        units.append(Unit("last", Write(str(folder), "last", "z"), needs=("u0", "u3")))
        job = _open(tmp_path / f"job-{jobs}")
        summary = job.run(units, jobs=jobs, progress=events.append, label="cells")
        assert sorted(summary.ran) == ["last", "u0", "u1", "u2", "u3"]
        assert summary.ran[-1] == "last"  # after the units it needs
        results[jobs] = {n: r.result for n, r in job.records.items()}
    assert results[1] == results[2]
    assert sorted(_runs(parallel)) == sorted(_runs(serial))
    tasks = {e.task for e in events}
    assert {"cells", "u0 › write", "u0 › finished"} <= tasks
    final = [e for e in events if e.task == "cells"][-1]
    assert (final.done, final.total) == (5, 5)


def test_units_grouped_as_one_cell_and_preparation_are_counted_as_cells(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    units = [
        Unit("prep", Write(str(work), "prep", "p"), counted=False),
        Unit("cells/x", Write(str(work), "x", "x"), needs=("prep",), group="x"),
        Unit("evals/x", Write(str(work), "xe", "x"), needs=("cells/x",), group="x"),
        Unit("cells/y", Write(str(work), "y", "y"), needs=("prep",), group="y"),
    ]
    events = []
    _open(tmp_path / "job").run(units, progress=events.append, label="cells")
    counts = [(e.done, e.total) for e in events if e.task == "cells"]
    assert counts[0] == (0, 2) and counts[-1] == (2, 2)
    assert (1, 2) in counts  # x counts once both of its units are done


def test_no_unit_starts_after_the_deadline(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    summary = _open(tmp_path / "job").run(_chain(work), deadline=time.monotonic() - 1)
    assert summary.ran == [] and summary.not_started == ["a", "b", "c"]


def test_a_job_with_other_settings_is_refused_unless_overwrite(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    root = tmp_path / "job"
    _open(root, {"lr": 0.1, "epochs": 3}, fixed_settings=True).run(_chain(work))
    with pytest.raises(KdcliError) as err:
        _open(root, {"lr": 0.2, "epochs": 3}, fixed_settings=True)
    message = str(err.value)
    assert "lr 0.1 → 0.2" in message and "pass overwrite to start over" in message
    assert "\n" not in message
    job = _open(root, {"lr": 0.2, "epochs": 3}, fixed_settings=True, overwrite=True)
    assert job.records == {}  # started over


def test_the_output_must_be_free_or_a_job_of_the_same_kind(tmp_path):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "file.txt").write_text("mine")
    with pytest.raises(KdcliError, match="not a kdcli study directory"):
        check_job_dir(tmp_path / "busy", "study", overwrite=False)
    _open(tmp_path / "job")
    with pytest.raises(KdcliError, match="holds a kdcli test job, not a study"):
        check_job_dir(tmp_path / "job", "study", overwrite=False)
    (tmp_path / "file").write_text("x")
    with pytest.raises(KdcliError, match="is not a directory"):
        check_job_dir(tmp_path / "file", "study", overwrite=True)
    check_job_dir(tmp_path / "new", "study", overwrite=False)  # free: fine
    assert not (tmp_path / "new").exists()


def test_units_that_need_each_other_in_a_cycle_are_refused(tmp_path):
    units = [
        Unit("a", Write(str(tmp_path), "a", "a"), needs=("b",)),
        Unit("b", Write(str(tmp_path), "b", "b"), needs=("a",)),
    ]
    with pytest.raises(KdcliError, match="cycle"):
        _open(tmp_path / "job").run(units)
