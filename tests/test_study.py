"""kdcli study: a 2x2x1 grid end to end, resuming an interrupted cell, refusing changed settings,
and every bad axis value (one line, exit 2, nothing written). Tiny models only."""

from __future__ import annotations

import json
import os
import signal
from dataclasses import replace
from pathlib import Path

import pytest
import transformers
from conftest import leftovers
from training_helpers import MINI, one_thread, shared_models, train_config

from kdcli.core.errors import KdcliError
from kdcli.jobs.study import StudyConfig, study
from kdcli.training.loop import TrainingInterrupted

FAST_FLAGS = ["--lr", "3e-3", "--weight-decay", "0", "--batch-size", "8", "-q"]
VOLATILE = ("seconds", "path", "out", "files", "ran", "cached")


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    with one_thread():
        yield


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return shared_models(tmp_path_factory)


def _stable(report: dict) -> dict:
    """The report without timings and paths (they differ between two runs of the same grid)."""
    if isinstance(report, dict):
        return {k: _stable(v) for k, v in report.items() if k not in VOLATILE}
    if isinstance(report, list):
        return [_stable(v) for v in report]
    return report


def test_a_2x2x1_grid_end_to_end(models, cli, tmp_path):
    out = tmp_path / "study"
    args = [
        "study", models.teacher, "--data", MINI, "--out", out, "--inits", "teacher,pretrained",
        "--objectives", "kd,no-kd", "--num-layers", "2", "--seeds", "0", "--max-steps", "6",
        "--cache-dir", tmp_path / "cache", *FAST_FLAGS,
    ]  # fmt: skip
    result = cli(*args, "--json", tmp_path / "r.json")
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert report == json.loads((tmp_path / "r.json").read_text())
    names = [c["name"] for c in report["cells"]]
    assert names == [
        "teacher-kd-L2-s0", "teacher-no-kd-L2-s0", "pretrained-kd-L2-s0", "pretrained-no-kd-L2-s0",
    ]  # fmt: skip
    groups = [(g["init"], g["objective"]) for g in report["groups"]]
    assert groups == [("teacher", "kd"), ("teacher", "no-kd"), ("pretrained", "kd"),
                      ("pretrained", "no-kd")]  # fmt: skip
    teacher = report["teacher_scores"]
    assert set(teacher["languages"]) == {"ar-SA", "de-DE", "en-US", "ja-JP", "ru-RU"}
    for cell in report["cells"]:
        languages = cell["languages"]
        assert cell["accuracy"] == pytest.approx(sum(languages.values()) / len(languages))
        assert cell["retention"] == pytest.approx(cell["accuracy"] / teacher["accuracy"])
        folder = out / "cells" / cell["name"]
        model = transformers.AutoModelForSequenceClassification.from_pretrained(folder)
        assert model.config.num_hidden_layers == 2
        record = json.loads((folder / "kdcli.json").read_text())
        assert record["stage"] == "distill" and record["history"][0]["stage"] == "shrink"
        assert record["distillation"]["kd_loss"] == ("mse" if cell["objective"] == "kd" else None)
        source = record["history"][0]["source"]["resolved"]
        # the pretrained cells copy the encoder named in the teacher's kdcli.json
        expected = models.encoder if cell["init"] == "pretrained" else models.teacher
        assert source == str(Path(expected).resolve())
    for group in report["groups"]:  # one seed: no spread
        assert group["accuracy"]["std"] is None and group["accuracy"]["n"] == 1
    markdown = (out / "report.md").read_text()
    assert "copy of the pre-trained encoder" in markdown and "| KD (mse) |" in markdown
    assert "## Per language" in markdown and "| ar-SA |" in markdown
    csv_lines = (out / "report.csv").read_text().splitlines()
    assert len(csv_lines) == 1 + 6 + 4 * 6  # header, teacher 5+1, 4 cells x (5 + average)
    assert (out / "report.png").read_bytes()[:4] == b"\x89PNG"
    assert "pre-trained" in result.stderr and "fine-tuned" in result.stderr  # the table
    assert "4 cells trained now, 0 found finished" in result.stderr
    # a rerun finds every cell finished and writes the same report
    again = cli(*args)
    assert again.exit_code == 0, again.output
    assert "0 cells trained now, 4 found finished" in again.stderr
    assert _stable(json.loads((out / "report.json").read_text())) == _stable(report)
    # changing a setting every cell shares is refused, with the change named
    changed = cli(*[a if a != "3e-3" else "1e-3" for a in args])
    assert changed.exit_code == 2
    assert "other settings (train.lr 0.003 → 0.001)" in changed.stderr
    assert len(changed.stderr.strip().splitlines()) == 1
    assert leftovers(tmp_path) == []


def test_resume_after_an_interrupted_cell_gives_the_same_report(models, tmp_path):
    def config(out):
        return StudyConfig(
            str(models.teacher), str(MINI), out, inits="teacher,random", objectives="kd",
            num_layers="2", seeds="0", train=train_config(max_steps=8),
            cache_dir=tmp_path / "cache",
        )  # fmt: skip

    uninterrupted = study(config(tmp_path / "a"))
    assert (uninterrupted.ran, uninterrupted.cached) == (2, 0)

    def ctrl_c(event):
        if event.task == "cells/random-kd-L2-s0 › train" and event.done == 4:
            os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C sends

    out = tmp_path / "b"
    with pytest.raises(TrainingInterrupted):
        study(config(out), progress=ctrl_c)
    assert (out / "cells" / "teacher-kd-L2-s0").is_dir()
    assert not (out / "cells" / "random-kd-L2-s0").exists()
    assert list((out / "cells" / "random-kd-L2-s0.checkpoints").glob("checkpoint-*"))
    resumed = study(config(out))
    assert (resumed.ran, resumed.cached) == (1, 1)
    state = json.loads((out / "kdcli-job.json").read_text())
    assert state["units"]["cells/random-kd-L2-s0"]["result"]["training"]["resumed_from"] == 4
    first = json.loads((tmp_path / "a" / "report.json").read_text())
    second = json.loads((out / "report.json").read_text())
    assert _stable(second) == _stable(first)
    assert uninterrupted.cells[1].languages == resumed.cells[1].languages


def test_a_grown_grid_reuses_its_finished_cells(models, tmp_path):
    base = StudyConfig(
        str(models.teacher), str(MINI), tmp_path / "s", inits="random", objectives="no-kd",
        num_layers="1", seeds="0", train=train_config(max_steps=2),
    )  # fmt: skip
    assert study(base).ran == 1
    grown = study(replace(base, seeds="0,1"))
    assert (grown.ran, grown.cached) == (1, 1)
    group = grown.groups[0]
    assert group.seeds == [0, 1] and group.accuracy.n == 2 and group.accuracy.std is not None
    # random students differ by seed; their shrink outputs are kept apart
    assert sorted(p.name for p in (tmp_path / "s" / "students").iterdir()) == [
        "random-L1-s0", "random-L1-s1",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--inits", "teacher,foo"], "--inits 'teacher,foo': foo is unknown: choose from teacher"),
        (["--objectives", "kd,kd"], "--objectives 'kd,kd' repeats kd"),
        (["--seeds", "0,x"], "--seeds '0,x' is not a list of integers"),
        (["--seeds", "0,,1"], "is empty or has an empty item"),
        (["--num-layers", "4"], "--num-layers 4 is not smaller than the teacher's 4 layers"),
        (["--num-layers", "0"], "--num-layers '0': 0 is out of range"),
        (["--inits", "random", "--base", "x"], "--base 'x' is only used by the pretrained"),
        (["--kd-loss", "l2"], "--kd-loss 'l2' is unknown"),
        (["--jobs", "0"], "--jobs 0 must be at least 1"),
        (["--split", "validate"], "--split 'validate' is unknown"),
        (["--lr", "2"], "--lr 2.0 must be greater than zero and below 1"),
    ],
)
def test_bad_axis_values_exit_2_with_one_line_and_nothing_written(
    models, cli, tmp_path, args, message
):
    out = tmp_path / "study"
    result = cli("study", models.teacher, "--data", MINI, "--out", out, *args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not out.exists() and leftovers(tmp_path) == []


def test_the_pretrained_initialization_needs_a_base_model(models, tmp_path, make_teacher):
    teacher = make_teacher("bert", head="sequence-classification")  # no kdcli.json
    with pytest.raises(KdcliError, match="pass base MODEL, or drop pretrained from inits"):
        study(StudyConfig(str(teacher), str(MINI), tmp_path / "s", inits="pretrained"))
    assert not (tmp_path / "s").exists()
    with pytest.raises(KdcliError, match="has no sequence-classification head"):
        study(StudyConfig(str(models.encoder), str(MINI), tmp_path / "s"))


@pytest.mark.slow  # two worker processes, each importing torch
def test_cells_run_side_by_side_with_jobs_give_the_same_report(models, tmp_path, monkeypatch):
    """Units are handed to the two workers at once. (Counting cells running at once instead
    depended on timing: on a busy machine one cell could finish before the other started.)"""
    from kdcli.jobs.pool import WorkerPool

    in_flight: set = set()
    most = [0]
    submit = WorkerPool.submit

    def counted(pool, name, work):
        future = submit(pool, name, work)
        in_flight.add(future)
        most[0] = max(most[0], len(in_flight))
        future.add_done_callback(in_flight.discard)
        return future

    monkeypatch.setattr(WorkerPool, "submit", counted)

    def config(out, jobs):
        return StudyConfig(
            str(models.teacher), str(MINI), out, inits="teacher", objectives="kd,no-kd",
            num_layers="2", seeds="0", train=train_config(max_steps=4),
            cache_dir=tmp_path / "cache", jobs=jobs,
        )  # fmt: skip

    study(config(tmp_path / "one", 1))
    events = []
    parallel = study(config(tmp_path / "two", 2), progress=events.append)
    assert parallel.ran == 2
    first = json.loads((tmp_path / "one" / "report.json").read_text())
    second = json.loads((tmp_path / "two" / "report.json").read_text())
    assert _stable(second) == _stable(first)
    assert most[0] == 2
    assert any(e.task == "cells/teacher-no-kd-L2-s0 › train" for e in events)  # from the worker
