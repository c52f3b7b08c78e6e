"""kdcli run: a recipe end to end, stages reused and redone by what changed, a failing stage
named, every bad recipe (one line, exit 2, nothing written), and the shipped recipes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import leftovers
from training_helpers import MINI, one_thread, shared_models

from kdcli.jobs.recipe import load_recipe, stage_config

ROOT = Path(__file__).parent.parent
RECIPES = ROOT / "examples" / "recipes"

RECIPE = """
defaults:
  data: {data}
  max-steps: 4
  lr: 3.0e-3
  batch-size: 8
  weight-decay: 0.0
stages:
  teacher:
    step: finetune
    model: {encoder}
  student:
    step: shrink
    source: "{{teacher}}"
    num-layers: 2
  student-kd:
    step: distill
    student: "{{student}}"
    teacher: "{{teacher}}"
    cache-dir: {cache}
report:
  speed: false
"""


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    with one_thread():
        yield


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return shared_models(tmp_path_factory)


def _recipe(tmp_path: Path, models, text: str = RECIPE) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(text.format(data=MINI, encoder=models.encoder, cache=tmp_path / "cache"))
    return path


def _stages(path: Path) -> dict[str, bool]:
    return {s["name"]: s["cached"] for s in json.loads(path.read_text())["stages"]}


def test_a_recipe_runs_once_and_a_rerun_redoes_only_what_changed(models, cli, tmp_path):
    recipe = _recipe(tmp_path, models)
    out = tmp_path / "job"
    result = cli("run", recipe, "--out", out, "-q", "--json", tmp_path / "1.json")
    assert result.exit_code == 0, result.output
    assert _stages(tmp_path / "1.json") == {"teacher": False, "student": False, "student-kd": False}
    record = json.loads((out / "student-kd" / "kdcli.json").read_text())
    assert [h["stage"] for h in record["history"]] == ["shrink", "finetune"]
    assert record["teacher"]["resolved"] == str((out / "teacher").resolve())
    report = json.loads((out / "report.json").read_text())
    assert [m["name"] for m in report["models"]] == ["teacher", "student-kd"]  # trained models
    assert report["split"] == "test" and (out / "report.md").is_file()
    assert "student-kd" in result.stderr and "average" in result.stderr
    again = cli("run", recipe, "--out", out, "-q", "--json", tmp_path / "2.json")
    assert again.exit_code == 0, again.output
    assert _stages(tmp_path / "2.json") == {"teacher": True, "student": True, "student-kd": True}
    changed = cli(
        "run", recipe, "--out", out, "-q", "--set", "student-kd.lr=1e-3", "--json",
        tmp_path / "3.json",
    )  # fmt: skip
    assert changed.exit_code == 0, changed.output
    assert _stages(tmp_path / "3.json") == {"teacher": True, "student": True, "student-kd": False}
    assert json.loads((out / "student-kd" / "kdcli.json").read_text())["settings"]["lr"] == 1e-3
    assert "--set student-kd.lr=1e-3" in changed.stderr  # the next command repeats the overrides
    assert leftovers(out) == [] and not list(out.glob("*.checkpoints"))


def test_a_failing_stage_stops_the_chain_named_and_keeps_the_stages_before_it(
    models, cli, tmp_path
):
    text = RECIPE.replace(
        "    cache-dir: {cache}\n", "    cache-dir: {cache}\n    kd-loss: huber\n"
    )
    recipe = _recipe(tmp_path, models, text)
    out = tmp_path / "job"
    result = cli("run", recipe, "--out", out, "-q")
    assert result.exit_code == 2
    assert "student-kd: --kd-loss 'huber' is unknown" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert (out / "teacher").is_dir() and not (out / "student-kd").exists()
    state = json.loads((out / "kdcli-job.json").read_text())
    assert sorted(state["units"]) == ["student", "teacher"]
    fixed = cli("run", recipe, "--out", out, "-q", "--set", "student-kd.kd-loss=mse",
                "--json", tmp_path / "r.json")  # fmt: skip
    assert fixed.exit_code == 0, fixed.output
    assert _stages(tmp_path / "r.json")["teacher"] is True


@pytest.mark.parametrize(
    ("edit", "sets", "message"),
    [
        (("step: shrink", "step: prune"), [], "stage student: step 'prune' is unknown"),
        (
            ("num-layers: 2", "num-layer: 2"),
            [],
            "stage student (shrink): unknown option(s) num-layer",
        ),
        (('"{{student}}"', '"{{nobody}}"'), [], "refers to {nobody}, which is not a stage"),
        (('source: "{{teacher}}"', 'source: "{{student-kd}}"'), [], "which comes later"),
        (("model: {encoder}", "model: null"), [], "teacher (finetune): model is required"),
        (("stages:", "stages: {{}}\nunused:"), [], "needs a `stages:` mapping"),
        (("defaults:", "extras: 1\ndefaults:"), [], "unknown top-level key(s) extras"),
        (("max-steps: 4", "max-step: 4"), [], "defaults: no stage takes max_step"),
        ((), ["teacher"], "--set 'teacher' is not STAGE.OPTION=VALUE"),
        ((), ["nobody.epochs=1"], "the recipe has no stage 'nobody'"),
        ((), ["teacher.lr=2"], "stage teacher: --lr 2.0 must be greater than zero and below 1"),
        ((), ["teacher.lr=fast"], "stage teacher: lr 'fast' is not a number"),
    ],
)
def test_bad_recipes_exit_2_with_one_line_and_nothing_written(
    models, cli, tmp_path, edit, sets, message
):
    text = RECIPE.replace(*edit) if edit else RECIPE
    recipe = _recipe(tmp_path, models, text)
    out = tmp_path / "job"
    result = cli("run", recipe, "--out", out, *[x for s in sets for x in ("--set", s)])
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not out.exists() and leftovers(tmp_path) == []


@pytest.mark.parametrize("name", ["demo.yaml", "study.yaml"])
def test_the_shipped_recipes_build_every_stage(name, models, tmp_path):
    stages, report = load_recipe(RECIPES / name, [f"teacher.model={models.encoder}"])
    for stage in stages:
        config = stage_config(stage, tmp_path)
        assert getattr(config, "out", tmp_path / stage.name) == tmp_path / stage.name
    assert report is not None
    data = stages[0].options["data"]
    assert Path(data).resolve() == (ROOT / "examples" / "data" / "massive-sample").resolve()


@pytest.mark.slow
def test_make_demo_runs_the_demo_recipe_offline(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    encoder = tmp_path / "encoder"
    made = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "make_tiny_model.py"), str(encoder)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    out = tmp_path / "run"
    done = subprocess.run(
        ["kdcli", "run", str(RECIPES / "demo.yaml"), "--out", str(out), "--quiet",
         "--set", f"teacher.model={encoder}", "--set", f"student-kd.cache-dir={tmp_path / 'c'}",
         "--set", f"scratch-kd.cache-dir={tmp_path / 'c'}"],
        capture_output=True, text=True, env=env, timeout=3000,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    names = [model["name"] for model in report["models"]]
    assert names == ["teacher", "student-kd", "scratch-kd", "deploy"]
    assert report["models"][-1]["kind"] == "onnx-int8"
    accuracy = {m["name"]: m["average"]["accuracy"] for m in report["models"]}
    assert accuracy["teacher"] >= 0.6 and accuracy["student-kd"] > accuracy["scratch-kd"]
    assert all(m["speed"] for m in report["models"])


def test_the_summary_names_the_report_of_a_study_or_search_stage(monkeypatch, tmp_path):
    from kdcli.cli import job_views
    from kdcli.jobs.recipe import RecipeResult, StageResult

    study_files = [str(tmp_path / "study" / "report.json"), str(tmp_path / "study" / "report.md")]
    stages = [
        StageResult("teacher", "finetune", tmp_path / "teacher", False, 1.0, {"out": "teacher"}),
        StageResult("study", "study", tmp_path / "study", True, 2.0, {"files": study_files}),
    ]
    result = RecipeResult(Path("r.yaml"), tmp_path, stages, None, [], 3.0)
    monkeypatch.setattr(job_views.console, "width", 200)
    with job_views.console.capture() as captured:
        job_views.recipe_summary(result)
    shown = captured.get()
    assert f"study: study report in {study_files[1]}" in shown
    assert "teacher: finetune report" not in shown
