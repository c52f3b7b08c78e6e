"""The command line: start-up cost, exit codes, one-line errors, --config, --json, and shrink."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import leftovers


def test_help_does_not_import_heavy_libraries():
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from kdcli.cli import app\n"
        "result = CliRunner().invoke(app, ['--help'])\n"
        "assert result.exit_code == 0, result.output\n"
        "for name in ['shrink', 'finetune', 'distill', 'eval', 'export']:\n"
        "    CliRunner().invoke(app, [name, '--help'])\n"
        "heavy = [m for m in ('torch', 'transformers', 'onnxruntime', 'onnx', 'datasets',\n"
        "         'accelerate', 'matplotlib', 'numpy') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert output.strip() == "[]"


def test_version_and_bare_command(cli):
    from kdcli import __version__

    result = cli("--version")
    assert result.exit_code == 0 and result.stdout.strip() == f"kdcli {__version__}"
    result = cli()
    assert result.exit_code == 0 and "shrink" in result.stdout


def test_usage_errors_are_one_line_with_exit_2(cli, tmp_path):
    result = cli("shrink")
    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Missing argument 'SOURCE'" in result.stderr
    result = cli("shrink", "x", "--out", tmp_path / "o", "--num-layers", "two")
    assert result.exit_code == 2
    assert "--num-layers" in result.stderr and "(got 'two')" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    result = cli("nosuchcommand")
    assert result.exit_code == 2 and "No such command" in result.stderr


def test_shrink_end_to_end_prints_a_summary_and_writes_json(cli, make_teacher, tmp_path):
    teacher = make_teacher("xlm-roberta")
    out = tmp_path / "student"
    result = cli("shrink", teacher, "--out", out, "--layers", "0,3", "--json", tmp_path / "r.json")
    assert result.exit_code == 0, result.stderr
    assert "parameters" in result.stderr and "kept teacher layers [0, 3]" in result.stderr
    assert f"kdcli distill --student {out}" in result.stderr
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["kept_layers"] == [0, 3]
    assert data["student_params"] < data["teacher_params"]
    assert (out / "model.safetensors").exists() and (out / "kdcli.json").exists()


def test_config_file_supplies_options_and_flags_win(cli, make_teacher, tmp_path):
    teacher = make_teacher("bert")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(f"source: {teacher}\nnum-layers: 2\nlayer_strategy: first\nhidden_size: 16\n")
    result = cli(
        "shrink", "--config", recipe, "--out", tmp_path / "a", "--json", tmp_path / "a.json"
    )
    assert result.exit_code == 0, result.stderr
    data = json.loads((tmp_path / "a.json").read_text())
    assert data["kept_layers"] == [0, 1] and data["student"]["hidden"] == 16
    result = cli(
        "shrink",
        "--config",
        recipe,
        "--out",
        tmp_path / "b",
        "--layer-strategy",
        "last",
        "--json",
        tmp_path / "b.json",
    )
    assert result.exit_code == 0, result.stderr
    assert json.loads((tmp_path / "b.json").read_text())["kept_layers"] == [2, 3]


def test_config_file_errors(cli, tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("num_layer: 2\n")
    result = cli("shrink", "x", "--out", tmp_path / "o", "--config", recipe)
    assert result.exit_code == 2
    assert "unknown option(s) num_layer" in result.stderr
    recipe.write_text("num_layers: [2\n")
    result = cli("shrink", "x", "--out", tmp_path / "o", "--config", recipe)
    assert result.exit_code == 2 and "is not valid YAML" in result.stderr
    result = cli("shrink", "x", "--out", tmp_path / "o", "--config", tmp_path / "none.yaml")
    assert result.exit_code == 2 and "does not exist" in result.stderr


def _bad_safetensors(kind: str, teacher: Path, tmp_path: Path) -> Path:
    broken = tmp_path / f"broken-{kind}"
    broken.mkdir()
    for f in teacher.iterdir():
        (broken / f.name).write_bytes(f.read_bytes())
    data = (teacher / "model.safetensors").read_bytes()
    if kind == "truncated":
        (broken / "model.safetensors").write_bytes(data[: len(data) // 2])
    else:
        (broken / "model.safetensors").write_bytes(b"\x00garbage" * 10)
    return broken


BAD_SHRINK = [
    (["--layers", "0,x"], "is not a list of integers"),
    (["--layers", "0,9"], "[9] out of range; the teacher has 4 layers"),
    (["--layers", "0,1,1"], "repeats [1]"),
    (["--layers", ""], "is empty"),
    (["--layers", "0,,2"], "is empty or has an empty item"),
    (["--layers", "2,0"], "is not in increasing order"),
    (["--layers", "0,1", "--num-layers", "2"], "--layers and --num-layers were both given"),
    (["--num-layers", "9"], "larger than the teacher's 4 layers"),
    (["--num-layers", "0"], "must be at least 1"),
    (["--num-layers", "3", "--layer-strategy", "every-other"], "use uniform instead"),
    (["--layer-strategy", "uniform"], "needs --num-layers N"),
    (["--num-layers", "2", "--layer-strategy", "middle"], "--layer-strategy 'middle' is unknown"),
    (["--hidden-size", "64"], "larger than the teacher's 32"),
    (["--intermediate-size", "65"], "larger than the teacher's 64"),
    (["--hidden-size", "16", "--num-heads", "3"], "does not divide the hidden size 16"),
    (["--num-heads", "2"], "wider than the teacher's 8"),
    (["--hidden-size", "10"], "fits neither whole 8-wide heads nor 4 heads"),
    (["--width-strategy", "random"], "--width-strategy 'random' is unknown"),
    (["--dtype", "int8"], "--dtype 'int8' is unknown"),
]


@pytest.mark.parametrize(("args", "message"), BAD_SHRINK)
def test_bad_shrink_options(cli, make_teacher, tmp_path, args, message):
    out = tmp_path / "student"
    result = cli("shrink", make_teacher("bert"), "--out", out, *args)
    assert result.exit_code == 2, result.stderr
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not out.exists() and leftovers(tmp_path) == []


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("missing-dir/", "does not exist"),
        ("./nope", "does not exist"),
        ("not_a_model", "is not a model directory (no config.json)"),
        ("truncated", "is truncated"),
        ("garbage", "is not a valid safetensors file"),
        ("pickle-only", "--allow-pickle"),
        ("no-weights", "holds no weights"),
    ],
)
def test_bad_sources(cli, make_teacher, tmp_path, source, message):
    teacher = make_teacher("bert")
    if source == "not_a_model":
        (tmp_path / source).mkdir()
        source = str(tmp_path / source)
    elif source in ("truncated", "garbage"):
        source = str(_bad_safetensors(source, teacher, tmp_path))
    elif source in ("pickle-only", "no-weights"):
        folder = tmp_path / source
        folder.mkdir()
        (folder / "config.json").write_text((teacher / "config.json").read_text())
        if source == "pickle-only":
            (folder / "pytorch_model.bin").write_bytes(b"not even read")
        source = str(folder)
    out = tmp_path / "student"
    result = cli("shrink", source, "--out", out, "--num-layers", "2")
    assert result.exit_code == 2, result.stderr
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not out.exists() and leftovers(tmp_path) == []


def test_hub_id_offline_names_the_model_and_hf_hub_offline(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = cli("shrink", "some-org/some-model", "--out", tmp_path / "s")
    assert result.exit_code == 2
    assert "'some-org/some-model'" in result.stderr and "HF_HUB_OFFLINE" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("value", "offline"),
    [("1", True), ("true", True), ("ON", True), (" yes ", True), ("0", False), ("", False),
     ("false", False), ("off", False)],
)  # fmt: skip
def test_hf_hub_offline_is_read_as_huggingface_hub_reads_it(monkeypatch, value, offline):
    from kdcli.files.model_dirs import hub_offline

    monkeypatch.setenv("HF_HUB_OFFLINE", value)
    assert hub_offline() is offline


def test_existing_output_needs_overwrite(cli, make_teacher, tmp_path):
    teacher = make_teacher("bert")
    out = tmp_path / "student"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    result = cli("shrink", teacher, "--out", out, "--num-layers", "2")
    assert result.exit_code == 2 and "--overwrite" in result.stderr
    assert (out / "keep.txt").read_text() == "mine"
    result = cli("shrink", teacher, "--out", out, "--num-layers", "2", "--overwrite")
    assert result.exit_code == 0, result.stderr
    assert not (out / "keep.txt").exists() and (out / "model.safetensors").exists()
    assert leftovers(tmp_path) == []


def test_unwritable_json_path_fails_before_any_work(cli, make_teacher, tmp_path):
    out = tmp_path / "student"
    result = cli("shrink", make_teacher("bert"), "--out", out, "--json", tmp_path / "no" / "r.json")
    assert result.exit_code == 2 and "does not exist" in result.stderr
    assert not out.exists()


def test_interrupted_shrink_leaves_nothing(cli, make_teacher, tmp_path, monkeypatch):
    import kdcli.steps.shrink

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(kdcli.steps.shrink, "copy_tensors", interrupted)
    out = tmp_path / "student"
    result = cli(
        "shrink", make_teacher("bert"), "--out", out, "--num-layers", "2", expect_interrupt=True
    )
    assert result.exit_code == 130
    assert "interrupted" in result.stderr
    assert not out.exists() and leftovers(tmp_path) == []


def test_json_dash_writes_the_result_to_stdout(cli, make_teacher, tmp_path):
    result = cli(
        "shrink", make_teacher("bert"), "--out", tmp_path / "s", "--num-layers", "2", "--json", "-"
    )
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["kept_layers"] == [0, 3]


# --- things a user hits in the first hour (issue 14) ---------------------------------------------

_INTERRUPTED_RUN = """
import os, signal, time

import kdcli.steps.evaluate


def test_first(cli, monkeypatch):
    def interrupted(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)  # the user's Ctrl-C while kdcli works (no timer
        time.sleep(60)  # to race: on a busy machine 1 s can end before the work starts)

    monkeypatch.setattr(kdcli.steps.evaluate, "evaluate", interrupted)
    # as in a terminal: a run started in the background inherits an ignored SIGINT
    signal.signal(signal.SIGINT, signal.default_int_handler)
    cli("eval", "model", "--data", "data")


def test_second():
    pass
"""


def test_ctrl_c_stops_the_test_run(tmp_path):
    """kdcli turns Ctrl-C into exit code 130; run in-process by the `cli` fixture, that must
    stop pytest (make test) rather than fail one test and go on to the next."""
    conftest = Path(__file__).parent / "conftest.py"
    (tmp_path / "conftest.py").write_text(
        "import importlib.util, sys\n"
        f"sys.path.insert(0, {str(conftest.parent)!r})\n"
        f"spec = importlib.util.spec_from_file_location('kdcli_conftest', {str(conftest)!r})\n"
        "module = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(module)\n"
        "cli = module.cli\n"
    )
    (tmp_path / "test_run.py").write_text(_INTERRUPTED_RUN)
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2, run.stdout + run.stderr  # pytest's "interrupted"
    assert "KeyboardInterrupt" in run.stdout and "test_second" not in run.stdout


def test_help_shows_arguments_as_users_write_them(cli):
    result = cli("eval", "--help")
    assert "Usage: kdcli eval [OPTIONS] MODEL..." in result.stdout
    assert "{MODEL}" not in result.stdout and "<list[str]>" not in result.stdout
    assert "Usage: kdcli shrink [OPTIONS] SOURCE\n" in cli("shrink", "--help").stdout
    for command in ("finetune", "shrink", "distill", "export", "predict", "run", "study", "search"):
        shown = cli(command, "--help").stdout
        assert "<list[" not in shown and "{" not in shown, command


def test_counts_are_plural_only_when_they_should_be():
    from kdcli.cli.render import plural

    assert plural(1, "epoch") == "1 epoch" and plural(30, "step") == "30 steps"
    assert plural(1234, "training example") == "1,234 training examples"


@pytest.fixture
def terminal(monkeypatch):
    """The CLI's console as an 80-column terminal, recording what it prints."""
    import io

    from rich.console import Console

    from kdcli.cli import render

    fake = Console(file=io.StringIO(), width=80, force_terminal=True, color_system=None)
    monkeypatch.setattr(render, "console", fake)
    return fake


def test_notes_and_next_steps_wrap_at_words_in_a_terminal(terminal):
    from kdcli.cli import render

    words = [f"word{i:02d}-{'x' * (i % 7)}" for i in range(40)]
    render.note(" ".join(words))
    command = "kdcli eval " + " ".join(f"/some/long/folder/model-{i}" for i in range(6))
    render.next_step("evaluated " + " ".join(words[:20]), command + "  # a comment")
    lines = terminal.file.getvalue().splitlines()
    assert all(len(line) <= 80 for line in lines)
    printed = " ".join(" ".join(lines).split())
    for word in words:
        assert word in printed  # never cut inside a word
    commands = [line for line in lines if line.rstrip().endswith("\\")]
    assert len(commands) >= 2  # the command continues over lines the shell joins back
    joined = " ".join(line.strip().removeprefix("next:").strip(" \\") for line in lines[-6:])
    assert command in " ".join(joined.split())


def test_progress_bars_keep_the_step_count_and_time_left_at_80_columns(terminal):
    from kdcli.cli import render
    from kdcli.core.progress import ProgressEvent

    info = {"epoch": 2, "loss": 1.2345678, "ce": 1.1234, "kd": 0.2345, "samples/s": 123.45}
    with render.progress_bars(True) as update:
        update(ProgressEvent("train", 1200, 3000, info))
        update(ProgressEvent("train", 1201, 3000, info))
    shown = terminal.file.getvalue().split("\r")[-2]
    # the step count, the time spent and the time left stay whole; the live numbers give way
    assert re.search(r"1201/3000 \d:\d\d:\d\d (-:--:--|\d:\d\d:\d\d)", shown), shown
    assert "epoch 2" in shown
