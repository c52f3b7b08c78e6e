"""The examples run: the tiny model builder, the recipes, and (slow) the whole tiny pipeline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from training_helpers import MINI, digest, one_thread, shared_models

ROOT = Path(__file__).parent.parent
EXAMPLES = ROOT / "examples"


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    with one_thread():
        yield


def _make_tiny(out: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / "make_tiny_model.py"), str(out), *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_make_tiny_model_builds_the_same_loadable_encoder_every_time(tmp_path):
    import importlib.util

    import transformers

    spec = importlib.util.spec_from_file_location(
        "make_tiny_model", EXAMPLES / "make_tiny_model.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for name in ("a", "b"):
        module.build(tmp_path / name, layers=1, hidden=32, heads=2, vocab_size=500, seed=0)
    assert digest(tmp_path / "a") == digest(tmp_path / "b")
    tokenizer = transformers.AutoTokenizer.from_pretrained(tmp_path / "a")
    model = transformers.AutoModel.from_pretrained(tmp_path / "a")
    assert model.config.model_type == "xlm-roberta" and model.config.num_hidden_layers == 1
    for locale in ("ja-JP", "ru-RU", "hi-IN", "ar-SA", "zh-CN"):
        line = (module.SAMPLE / "data" / f"{locale}.jsonl").read_text("utf-8").splitlines()[0]
        ids = tokenizer(json.loads(line)["utt"])["input_ids"]
        assert tokenizer.unk_token_id not in ids  # every character of the sample is known
    refused = _make_tiny(tmp_path / "a")
    assert refused.returncode != 0 and "not empty" in refused.stderr


@pytest.mark.parametrize(
    ("command", "recipe"),
    [
        ("finetune", "study-teacher.yaml"),
        ("finetune", "tiny.yaml"),
        ("distill", "study-distill.yaml"),
        ("distill", "tiny.yaml"),
        ("finetune", "minilm-slots.yaml"),  # token classification: the sample's slots
    ],
)
def test_the_recipes_are_valid_configs(command, recipe, cli, tmp_path, tmp_path_factory):
    models = shared_models(tmp_path_factory)
    source = ["--student", models.student] if command == "distill" else [models.encoder]
    extra = ["--cache-dir", tmp_path / "cache"] if command == "distill" else []
    result = cli(
        command, *source, "--data", MINI, "--out", tmp_path / "o",
        "--config", EXAMPLES / "recipes" / recipe, "--max-steps", "1", "-q", *extra,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    settings = json.loads((tmp_path / "o" / "kdcli.json").read_text())["settings"]
    if recipe.startswith("study"):
        assert (settings["lr"], settings["batch_size"], settings["seed"]) == (5e-5, 32, 42)


@pytest.mark.slow
def test_the_tiny_pipeline_runs_offline_end_to_end(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable, "HF_HUB_OFFLINE": "1"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env.pop("KDCLI_CACHE", None)
    out = tmp_path / "demo"
    done = subprocess.run(
        ["bash", str(EXAMPLES / "tiny_pipeline.sh"), str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=1200,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    teacher = json.loads((out / "teacher.json").read_text())
    student = json.loads((out / "student-kd.json").read_text())
    assert teacher["training"]["dev_accuracy"] >= 0.6  # 10 intents: chance is 0.1
    assert student["training"]["dev_accuracy"] >= 0.5
    assert student["teacher"] == str(out / "teacher")  # taken from the student's kdcli.json
    assert len(student["training"]["dev_per_language"]) == 10
    record = json.loads((out / "student-kd" / "kdcli.json").read_text())
    assert [h["stage"] for h in record["history"]] == ["shrink", "finetune"]
    assert list((out / "cache" / "teacher-outputs").glob("*.safetensors"))
    assert not list(out.glob("*.checkpoints")) and not list(out.glob("*.tmp-*"))
    deploy = json.loads((out / "deploy.json").read_text())
    assert (out / "deploy" / "model_quantized.onnx").exists()
    assert deploy["passed"], deploy
    report = json.loads((out / "report.json").read_text())
    names = [model["name"] for model in report["models"]]
    assert names == ["teacher", "student-kd", "student-scratch-kd", "deploy"]
    assert all(len(model["languages"]) == 10 for model in report["models"])
    assert (out / "report.md").read_text().count("|") > 40


@pytest.mark.slow
def test_the_tiny_slots_pipeline_runs_offline_end_to_end(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable, "HF_HUB_OFFLINE": "1"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env.pop("KDCLI_CACHE", None)
    out = tmp_path / "demo"
    done = subprocess.run(
        ["bash", str(EXAMPLES / "tiny_slots.sh"), str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=1200,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    teacher = json.loads((out / "slots.json").read_text())["training"]
    student = json.loads((out / "slots-kd.json").read_text())["training"]
    assert teacher["task"] == student["task"] == "token-classification"
    assert teacher["dev_f1"] >= 0.5 and len(student["dev_per_language_f1"]) == 10
    deploy = json.loads((out / "slots-deploy.json").read_text())
    assert deploy["passed"] and deploy["head"] == "token-classification", deploy
    report = json.loads((out / "slots-report.json").read_text())
    assert report["task"] == "token-classification"
    assert [len(model["languages"]) for model in report["models"]] == [10, 10, 10]
    assert "[time : " in (out / "slots-predictions.jsonl").read_text(encoding="utf-8")


@pytest.mark.slow
def test_every_shrink_mode_of_the_example_script_runs(tmp_path):
    encoder = tmp_path / "encoder"
    assert _make_tiny(encoder).returncode == 0
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    out = tmp_path / "modes"
    done = subprocess.run(
        ["bash", str(EXAMPLES / "shrink_modes.sh"), str(encoder), str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    kept = {
        name: json.loads((out / name / "kdcli.json").read_text())["layers"]["kept"]
        for name in ("explicit", "uniform", "first", "last", "every-other")
    }
    assert kept == {
        "explicit": [0, 1],
        "uniform": [0, 3],
        "first": [0, 1],
        "last": [2, 3],
        "every-other": [0, 2],
    }
    vocab = json.loads((out / "vocab-en-de" / "kdcli.json").read_text())["vocab"]
    assert vocab["student"] < vocab["teacher"] and vocab["changed_texts"] == 0
    assert vocab["passed"] and vocab["held_out_share"] <= vocab["max_changed"]
    data_only = json.loads((out / "vocab-en-de-data" / "kdcli.json").read_text())["vocab"]
    assert data_only["level"] == "data" and data_only["student"] <= vocab["student"]
    assert json.loads((out / "random-init" / "kdcli.json").read_text())["init"] == "random"
