"""Faults a hostile or unlucky user meets: result files over inputs, two runs on one output, a
too-long --max-length, a full disk, damaged checkpoints, odd --out paths, inconsistent models,
malformed kdcli.json, odd texts. Each case: a clear line, the documented exit code, no data lost,
nothing half-written left behind.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import leftovers
from training_helpers import MINI, make_encoder, one_thread, write_jsonl

MINI_LABELS = ("alarm_set", "weather_query", "play_music", "datetime_query", "takeaway_order")


def one_line_error(result, code: int = 2) -> str:
    """The command failed with `code` and said why in one line; returns that line."""
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) >= 1 and lines[-1].startswith("Error: "), result.stderr
    return " ".join(result.stderr.split())


@pytest.fixture(scope="module")
def classifier(tmp_path_factory) -> Path:
    """An untrained XLM-R classifier with the labels of massive-mini (eval only needs labels)."""
    from factories import make_model_dir

    return make_model_dir(
        tmp_path_factory.mktemp("faults") / "classifier", "xlm-roberta", labels=MINI_LABELS
    )


@pytest.fixture(scope="module")
def encoder(tmp_path_factory) -> Path:
    return make_encoder(tmp_path_factory.mktemp("faults-encoder") / "encoder", layers=2)


@contextlib.contextmanager
def small_disk(path: Path, size: str, options: str = "") -> Iterator[Path]:
    """A real filesystem of `size` at `path` (tmpfs; needs root): what a full disk does."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a small filesystem needs root")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}{options}", "tmpfs", str(path)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(folder: Path, leave: int = 0) -> None:
    """Fill the filesystem of `folder` up to `leave` bytes."""
    free = os.statvfs(folder).f_bavail * os.statvfs(folder).f_frsize
    with contextlib.suppress(OSError), (folder / "filler").open("wb") as handle:
        handle.write(b"\0" * max(free - leave, 0))


# --- result files: never over an existing file without --overwrite, never over an input -------


def test_eval_refuses_to_write_predictions_over_its_data(cli, classifier, tmp_path):
    data = write_jsonl(
        tmp_path / "data.jsonl",
        [{"text": "wake me up", "label": "alarm_set", "language": "en-US"}] * 3,
    )
    before = data.read_bytes()
    for extra in ([], ["--overwrite"]):
        result = cli("eval", classifier, "--data", data, "--predictions", data, *extra)
        line = one_line_error(result)
        assert f"--predictions {data} would overwrite the input {data}" in line
        assert data.read_bytes() == before


def test_result_files_are_not_replaced_without_overwrite(cli, classifier, tmp_path):
    report = tmp_path / "report.md"
    report.write_text("my notes", encoding="utf-8")
    result = cli("eval", classifier, "--data", MINI, "--markdown", report, "-q")
    assert "--markdown" in one_line_error(result) and "--overwrite" in result.stderr
    assert report.read_text(encoding="utf-8") == "my notes"
    result = cli("eval", classifier, "--data", MINI, "--markdown", report, "-q", "--overwrite")
    assert result.exit_code == 0, result.output
    assert report.read_text(encoding="utf-8").startswith("Split `test`")


def test_json_of_other_commands_needs_overwrite_and_spares_inputs(cli, make_teacher, tmp_path):
    teacher = make_teacher("bert")
    existing = tmp_path / "r.json"
    existing.write_text("{}", encoding="utf-8")
    result = cli(
        "shrink", teacher, "--out", tmp_path / "s", "--num-layers", "2", "--json", existing
    )
    assert "--json" in one_line_error(result) and not (tmp_path / "s").exists()
    result = cli(
        "shrink", teacher, "--out", tmp_path / "s", "--num-layers", "2", "--overwrite",
        "--json", teacher / "config.json",
    )  # fmt: skip
    assert "would overwrite the input" in one_line_error(result)
    assert json.loads((teacher / "config.json").read_text())["model_type"] == "bert"


def test_an_output_folder_never_replaces_an_input(cli, make_teacher, tmp_path):
    teacher = make_teacher("bert")
    result = cli("shrink", teacher, "--out", teacher, "--num-layers", "2", "--overwrite")
    assert "would overwrite the input" in one_line_error(result)
    result = cli("shrink", teacher, "--out", teacher.parent, "--num-layers", "2", "--overwrite")
    assert "would overwrite the input" in one_line_error(result)
    assert (teacher / "model.safetensors").is_file()


# --- odd --out paths and what killed runs leave -------------------------------------------------


def test_empty_out_and_current_folder_are_refused(cli, make_teacher, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "keep.txt").write_text("mine", encoding="utf-8")
    for out in ("", "."):
        result = cli("shrink", make_teacher("bert"), "--out", out, "--overwrite")
        assert "is the folder kdcli runs in" in one_line_error(result)
    assert (tmp_path / "keep.txt").read_text(encoding="utf-8") == "mine"


def test_dangling_symlink_out_is_refused(cli, make_teacher, tmp_path):
    link = tmp_path / "student"
    link.symlink_to(tmp_path / "nowhere")
    result = cli("shrink", make_teacher("bert"), "--out", link, "--num-layers", "2")
    assert "broken symbolic link" in one_line_error(result)
    assert link.is_symlink() and not (tmp_path / "nowhere").exists()


def test_symlinked_out_with_overwrite_replaces_the_target_and_keeps_the_link(
    cli, make_teacher, tmp_path
):
    teacher = make_teacher("bert")
    real = tmp_path / "real"
    real.mkdir()
    (real / "old.txt").write_text("old", encoding="utf-8")
    link = tmp_path / "student"
    link.symlink_to(real)
    result = cli("shrink", teacher, "--out", link, "--num-layers", "2", "--overwrite", "-q")
    assert result.exit_code == 0, result.output
    assert link.is_symlink() and (link / "model.safetensors").is_file()
    assert (real / "model.safetensors").is_file() and not (real / "old.txt").exists()
    assert leftovers(tmp_path) == []


def test_stale_temporary_folders_are_reported_and_removed(cli, make_teacher, tmp_path):
    stale = tmp_path / "student.tmp-abc123"
    stale.mkdir()
    (stale / "model.safetensors").write_bytes(b"half")
    (tmp_path / "student.old-xyz").mkdir()
    result = cli("shrink", make_teacher("bert"), "--out", tmp_path / "student", "--num-layers", "2")
    assert result.exit_code == 0, result.output
    text = " ".join(result.stderr.split())
    assert "removed 2 temporary folders that an interrupted earlier run left" in text
    assert leftovers(tmp_path) == []


def test_outputs_follow_the_umask(make_teacher, tmp_path):
    from kdcli.steps.shrink import ShrinkConfig, shrink

    old = os.umask(0o022)
    try:
        shrink(ShrinkConfig(str(make_teacher("bert")), out=tmp_path / "s", num_layers=2))
    finally:
        os.umask(old)
    assert (tmp_path / "s").stat().st_mode & 0o777 == 0o755
    assert (tmp_path / "s" / "config.json").stat().st_mode & 0o777 == 0o644


def test_result_files_follow_the_umask(tmp_path):
    from kdcli.files.outputs import write_text_atomic

    old = os.umask(0o002)
    try:
        write_text_atomic(tmp_path / "r.json", "{}")
    finally:
        os.umask(old)
    assert (tmp_path / "r.json").stat().st_mode & 0o777 == 0o664


# --- two runs on one output -----------------------------------------------------------------------

_HOLD = """
import sys, time
from pathlib import Path
from kdcli.files.outputs import output_lock
with output_lock(Path(sys.argv[1])):
    print("locked", flush=True)
    time.sleep(60)
"""


@contextlib.contextmanager
def held_by_another_process(out: Path) -> Iterator[int]:
    child = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(out)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "locked"
        yield child.pid
    finally:
        child.kill()
        child.wait()


def test_a_second_run_on_the_same_output_exits_2_and_leaves_the_first_alone(cli, encoder, tmp_path):
    out = tmp_path / "teacher"
    area = tmp_path / "teacher.checkpoints"
    area.mkdir()
    (area / "metrics.jsonl").write_text('{"step": 1}\n', encoding="utf-8")
    with held_by_another_process(out) as pid:
        result = cli("finetune", encoder, "--data", MINI, "--out", out, "--overwrite")
        line = one_line_error(result)
        assert f"output {out} is being written by another kdcli run (process {pid})" in line
        assert (area / "metrics.jsonl").read_text(encoding="utf-8") == '{"step": 1}\n'
        result = cli("shrink", encoder, "--out", out, "--num-layers", "1")
        assert "being written by another kdcli run" in one_line_error(result)
    assert not out.exists()


def test_the_lock_is_released_and_gone_after_a_run(make_teacher, tmp_path):
    from kdcli.files.outputs import lock_path, output_lock
    from kdcli.steps.shrink import ShrinkConfig, shrink

    out = tmp_path / "s"
    shrink(ShrinkConfig(str(make_teacher("bert")), out=out, num_layers=2))
    assert not lock_path(out).exists()
    with output_lock(out), output_lock(out):  # the same process may nest it
        assert lock_path(out).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s"]


# --- --max-length beyond the model's positions --------------------------------------------------


@pytest.fixture(scope="module")
def short_model(tmp_path_factory) -> Path:
    """A BERT classifier with 32 positions whose tokenizer claims no limit (as many do)."""
    from factories import make_model_dir, make_tokenizer
    from training_helpers import fixture_texts

    tokenizer = make_tokenizer("wordpiece", fixture_texts(), vocab_size=300)
    tokenizer.model_max_length = int(1e30)
    return make_model_dir(
        tmp_path_factory.mktemp("short") / "model",
        "bert",
        tokenizer=tokenizer,
        labels=MINI_LABELS,
        max_position_embeddings=32,
    )


def long_texts(tmp_path: Path) -> Path:
    words = " ".join(["weather"] * 60)
    rows = [
        {"text": f"{words} {i}", "label": label, "language": "en-US", "split": split}
        for i, label in enumerate(MINI_LABELS * 4)
        for split in ("train", "dev", "test")
    ]
    return write_jsonl(tmp_path / "long.jsonl", rows)


def test_eval_cuts_max_length_to_the_models_positions(cli, short_model, tmp_path):
    result = cli("eval", short_model, "--data", long_texts(tmp_path), "--max-length", "200", "-q")
    assert result.exit_code == 0, result.output
    text = " ".join(result.stderr.split())
    assert "--max-length 200 is more than" in text and "(32 tokens" in text


def test_finetune_cuts_max_length_to_the_models_positions(cli, short_model, tmp_path):
    with one_thread():
        result = cli(
            "finetune", short_model, "--data", long_texts(tmp_path), "--out", tmp_path / "o",
            "--max-length", "200", "--max-steps", "1", "-q",
        )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "texts are cut at 32 tokens" in " ".join(result.stderr.split())


def test_roberta_positions_start_after_the_padding_index():
    from kdcli.files.model_dirs import token_limit

    assert token_limit({"model_type": "xlm-roberta", "max_position_embeddings": 514}) == 512
    assert token_limit({"model_type": "bert", "max_position_embeddings": 512}) == 512
    assert token_limit({"model_type": "roberta", "max_position_embeddings": 66,
                        "pad_token_id": 1}) == 64  # fmt: skip
    assert token_limit({"model_type": "bert"}) is None


# --- a full disk: "no space left on device at PATH", exit 1, nothing left ------------------------


def test_shrink_on_a_full_disk(cli, make_teacher, tmp_path):
    with small_disk(tmp_path / "disk", "64k") as disk:
        result = cli("shrink", make_teacher("xlm-roberta"), "--out", disk / "student", "-q")
        line = one_line_error(result, code=1)
        assert f"no space left on device at {disk}" in line
        assert sorted(p.name for p in disk.iterdir()) == []


def test_shrink_on_a_full_disk_injected(cli, make_teacher, tmp_path, monkeypatch):
    import kdcli.steps.shrink

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(kdcli.steps.shrink, "copy_tensors", full)
    result = cli("shrink", make_teacher("bert"), "--out", tmp_path / "s", "--num-layers", "2")
    assert f"no space left on device at {tmp_path}" in one_line_error(result, code=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_eval_json_on_a_full_disk(cli, classifier, tmp_path):
    with small_disk(tmp_path / "disk", "64k") as disk:
        fill(disk, leave=0)
        out = disk / "report.json"
        result = cli("eval", classifier, "--data", MINI, "--json", out, "-q")
        assert f"no space left on device at {disk}" in one_line_error(result, code=1)
        assert not out.exists() and not list(disk.glob(".report.json*"))


def test_a_training_checkpoint_on_a_full_disk(cli, encoder, tmp_path):
    with small_disk(tmp_path / "disk", "256k") as disk, one_thread():
        result = cli(
            "finetune", encoder, "--data", MINI, "--out", disk / "teacher", "--max-steps", "2",
            "--save-steps", "1", "-q",
        )  # fmt: skip
        line = one_line_error(result, code=1)
        assert f"no space left on device at {disk / 'teacher.checkpoints'}" in line
        assert "saving the checkpoint of step 1" in line
        assert sorted(p.name for p in disk.iterdir()) == []


def test_export_on_a_full_disk_is_not_blamed_on_the_model(cli, make_teacher, tmp_path):
    pytest.importorskip("onnxruntime")
    with small_disk(tmp_path / "disk", "128k") as disk:
        result = cli("export", make_teacher("bert"), "--onnx", "--out", disk / "deploy", "-q")
        line = one_line_error(result, code=1)
        assert f"no space left on device at {disk}" in line and "model type" not in line
        assert sorted(p.name for p in disk.iterdir()) == []


def test_teacher_outputs_on_a_full_disk_leave_no_partial_cache(tmp_path):
    import torch

    from kdcli.cli.options import option_name
    from kdcli.core.errors import DiskFullError
    from kdcli.training import teacher_cache

    outputs = teacher_cache.TeacherOutputs(torch.zeros(64, 5), {1: torch.zeros(4096, 32)}, None)
    key = teacher_cache.CacheKey("t", "c", "i", (1,), False)
    with small_disk(tmp_path / "disk", "64k") as disk:
        with pytest.raises(DiskFullError) as caught:
            teacher_cache.save(outputs, disk / "cache" / "teacher.safetensors", key)
        assert f"no space left on device at {disk / 'cache'}" in str(caught.value)
        assert "--cache-dir" in caught.value.render(option_name)
        assert list((disk / "cache").iterdir()) == []


def test_an_output_in_a_read_only_folder_is_one_line(cli, make_teacher, tmp_path):
    with small_disk(tmp_path / "ro", "64k", ",ro") as folder:
        out = folder / "new" / "student"
        line = one_line_error(cli("shrink", make_teacher("bert"), "--out", out))
        assert f"cannot write {out}" in line and "Read-only file system" in line


# --- --resume from a damaged checkpoint -------------------------------------------------------


@pytest.mark.parametrize("damage", ["module.safetensors", "state.pt", "state.json"])
def test_resume_from_a_damaged_checkpoint_says_so(cli, encoder, tmp_path, monkeypatch, damage):
    from kdcli.cli import render
    from kdcli.training.checkpoints import CheckpointArea

    @contextlib.contextmanager
    def crash_at_step_3(enabled=True):
        def callback(event):
            if event.task == "train" and event.done == 3:
                raise KeyboardInterrupt  # killed after the checkpoint of step 2

        yield callback

    monkeypatch.setattr(render, "progress_bars", crash_at_step_3)
    out = tmp_path / "o"
    args = ["finetune", encoder, "--data", MINI, "--out", out, "--max-steps", "4"]
    with one_thread():
        assert cli(*args, "--save-steps", "2", expect_interrupt=True).exit_code == 130
        latest = CheckpointArea(out).latest()
        assert latest is not None
        file = latest / damage
        file.write_bytes(file.read_bytes()[: len(file.read_bytes()) // 2])
        result = cli(*args, "--save-steps", "2", "--resume")
    line = one_line_error(result)
    assert f"checkpoint {latest} is damaged" in line
    assert "pass --overwrite instead of --resume to start over" in line


# --- full disk detection -----------------------------------------------------------------------


def test_disk_full_is_recognised_through_library_wrappers():
    from kdcli.core.errors import KdcliError, is_disk_full

    assert is_disk_full(OSError(errno.ENOSPC, "No space left on device"))
    assert is_disk_full(RuntimeError("I/O error: No space left on device (os error 28)"))
    try:
        try:
            raise OSError(errno.EDQUOT, "Disk quota exceeded")
        except OSError as err:
            raise KdcliError("cannot save") from err
    except KdcliError as wrapped:
        assert is_disk_full(wrapped)
    assert not is_disk_full(OSError(errno.EACCES, "Permission denied"))


# --- odd data: list-valued and invisible texts, duplicate ids, one file without splits ----------


def test_list_valued_texts_and_labels_are_refused(cli, classifier, tmp_path):
    data = write_jsonl(
        tmp_path / "d.jsonl",
        [
            {"text": "wake me up", "label": "alarm_set", "language": "en-US"},
            {"text": ["wake", "me", "up"], "label": "alarm_set", "language": "en-US"},
        ],
    )
    line = one_line_error(cli("eval", classifier, "--data", data))
    assert f"{data}, line 2: text column 'text' holds a list" in line
    assert "give one string per row" in line
    data = write_jsonl(
        tmp_path / "l.jsonl",
        [{"text": "wake me up", "label": ["alarm_set", "play_music"], "language": "en-US"}],
    )
    line = one_line_error(cli("eval", classifier, "--data", data))
    assert "label column 'label' holds a list" in line and "single-label" in line


def test_blank_invisible_texts_and_duplicate_ids_are_noted(cli, classifier, tmp_path):
    rows = [
        {"id": "1", "text": "wake me up", "label": "alarm_set", "language": "en-US"},
        {"id": "2", "text": "", "label": "alarm_set", "language": "en-US"},
        {"id": "3", "text": "   \t", "label": "play_music", "language": "en-US"},
        {"id": "4", "text": "\u200b\u200d\ufeff", "label": "play_music", "language": "en-US"},
        {"id": "1", "text": "play jazz", "label": "play_music", "language": "en-US"},
        {"id": "1", "text": "spiel jazz", "label": "play_music", "language": "de-DE"},
    ]
    data = write_jsonl(tmp_path / "d.jsonl", [{**r, "split": "test"} for r in rows])
    result = cli("eval", classifier, "--data", data, "-q")
    assert result.exit_code == 0, result.output
    text = " ".join(result.stderr.split())
    assert "3 test examples with no visible text" in text and "ids 2, 3, 4" in text
    assert "1 id of the test split occur more than once in the same language (1 (en-US))" in text


def test_one_file_without_a_split_column_is_split_announced_and_recorded(cli, encoder, tmp_path):
    from kdcli.data.splits import DataConfig, load_split

    rows = [
        json.loads(line)
        for f in sorted((MINI / "data").glob("*.jsonl"))
        for line in f.read_text("utf-8").splitlines()
    ]
    unsplit = [{k: v for k, v in r.items() if k != "partition"} for r in rows]
    data = write_jsonl(tmp_path / "all.jsonl", unsplit)
    parts = {s: load_split(DataConfig(str(data)), s) for s in ("train", "dev", "test")}
    keys = {s: {(lang, i) for lang, i in zip(p.languages, p.ids, strict=True)}
            for s, p in parts.items()}  # fmt: skip
    assert not keys["train"] & keys["dev"] and not keys["train"] & keys["test"]
    assert not keys["dev"] & keys["test"]
    assert sum(len(p) for p in parts.values()) == len(unsplit)
    for part in parts.values():  # every language in every part, about 80/10/10
        assert part.language_names() == ["ar-SA", "de-DE", "en-US", "ja-JP", "ru-RU"]
    assert len(parts["test"]) == len(parts["dev"]) == pytest.approx(len(unsplit) / 10, abs=5)
    assert parts["test"].split_rule and "80% train / 10% dev / 10% test" in parts["test"].split_rule
    shuffled = write_jsonl(tmp_path / "shuffled.jsonl", unsplit[::-1])
    again = load_split(DataConfig(str(shuffled)), "test")  # row order does not matter
    assert sorted(zip(again.languages, again.ids, strict=True)) == sorted(keys["test"])

    with one_thread():
        result = cli(
            "finetune", encoder, "--data", data, "--out", tmp_path / "o", "--max-steps", "1", "-q"
        )
    assert result.exit_code == 0, result.output
    text = " ".join(result.stderr.split())
    assert f"{data} has no split column, so kdcli splits it per language and label" in text
    record = json.loads((tmp_path / "o" / "kdcli.json").read_text())
    assert record["data"]["split_rule"] == parts["train"].split_rule
    assert record["data"]["train_examples"] == len(parts["train"])


def test_a_file_too_small_to_split_is_refused(tmp_path):
    from kdcli.core.errors import KdcliError
    from kdcli.data.splits import DataConfig, load_split

    data = write_jsonl(tmp_path / "d.jsonl", [{"text": "a", "label": "x"}] * 3)
    with pytest.raises(KdcliError, match="no split column and too few rows"):
        load_split(DataConfig(str(data)), "dev")


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("examples/data/massive-smaple", "no such file or folder: check the path; did you mean"),
        ("tests/data/massive-mni", "no such file or folder: check the path; did you mean"),
        ("no/such/dir/here", "no such file or folder: check the path (no/such/dir"),
    ],
)
def test_a_mistyped_data_path_is_a_missing_path(spec, expected, monkeypatch):
    from kdcli.core.errors import KdcliError
    from kdcli.data import sources

    monkeypatch.chdir(Path(__file__).parent.parent)
    with pytest.raises(KdcliError, match=expected.replace("(", r"\(")):
        sources.resolve(spec)
    assert sources.resolve("owner/dataset").kind == "hub"  # a Hub id stays one


def test_an_unreachable_hub_says_one_line_without_retry_noise(cli, classifier, monkeypatch, caplog):
    import logging

    import huggingface_hub

    def unreachable(self, *args, **kwargs):
        for attempt in range(1, 6):
            logging.getLogger("huggingface_hub.utils._http").warning(
                "Retrying in %ds [Retry %d/5].", attempt, attempt
            )
        raise OSError("Name or service not known")

    monkeypatch.setattr(huggingface_hub.HfApi, "list_repo_files", unreachable)
    with caplog.at_level(logging.WARNING):
        result = cli("eval", classifier, "--data", "massive")
    assert "cannot reach AmazonScience/massive" in one_line_error(result)
    assert not [r for r in caplog.records if r.name.startswith("huggingface_hub")]


# --- inconsistent inputs: teachers, exports given to shrink, malformed kdcli.json -----------------


def copy_model(source: Path, target: Path) -> Path:
    import shutil

    shutil.copytree(source, target)
    return target


def test_shrink_refuses_a_teacher_whose_config_disagrees_with_its_weights(
    cli, make_teacher, tmp_path
):
    teacher = copy_model(make_teacher("bert"), tmp_path / "teacher")
    config = json.loads((teacher / "config.json").read_text())
    rows = config["vocab_size"]
    config["vocab_size"] = rows + 10
    (teacher / "config.json").write_text(json.dumps(config))
    result = cli("shrink", teacher, "--out", tmp_path / "s", "--num-layers", "2")
    line = one_line_error(result)
    assert "its config.json and its weights disagree" in line
    assert f"config.json says vocab_size {rows + 10}, the token embeddings have {rows} rows" in line
    assert not (tmp_path / "s").exists()


def test_shrink_says_when_the_student_gets_no_tokenizer(cli, make_teacher, tmp_path):
    from kdcli.files.model_dirs import TOKENIZER_FILES

    teacher = copy_model(make_teacher("bert"), tmp_path / "teacher")
    for name in TOKENIZER_FILES:
        (teacher / name).unlink(missing_ok=True)
    result = cli("shrink", teacher, "--out", tmp_path / "s", "--num-layers", "2", "-q")
    assert result.exit_code == 0, result.output
    text = " ".join(result.stderr.split())
    assert "has no tokenizer files" in text and "so neither has the student" in text
    notes = json.loads((tmp_path / "s" / "kdcli.json").read_text())["notes"]
    assert any("no tokenizer files" in note for note in notes)


def test_an_export_given_to_shrink_names_its_pytorch_source(cli, make_teacher, tmp_path):
    teacher = copy_model(make_teacher("bert"), tmp_path / "teacher")
    export = tmp_path / "deploy"
    export.mkdir()
    (export / "config.json").write_text((teacher / "config.json").read_text())
    (export / "model.onnx").write_bytes(b"onnx")
    record = {"stage": "export", "source": {"model": "teacher", "path": "../teacher",
                                            "resolved": str(teacher)}}  # fmt: skip
    (export / "kdcli.json").write_text(json.dumps(record))
    line = one_line_error(cli("shrink", export, "--out", tmp_path / "s", "--num-layers", "2"))
    assert f"{export} is a kdcli export (ONNX, no PyTorch weights)" in line
    assert f"pass the PyTorch model it was exported from, {teacher}" in line
    assert "save_pretrained" not in line


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        ({"stage": "shrink", "source": "teacher", "layers": "0,1"}, "--teacher is missing"),
        ({"stage": "shrink", "history": "x"}, "is malformed (its history is not a list"),
        ({"stage": "shrink", "history": [1, 2]}, "is malformed (its history is not a list"),
        ({"stage": "distill", "teacher": ["t"], "history": [{"stage": 3}]}, "--teacher is missing"),
        ([1, 2], "does not hold a JSON object"),
    ],
)
def test_a_malformed_kdcli_json_is_a_clear_error(cli, make_teacher, tmp_path, record, expected):
    student = copy_model(make_teacher("bert"), tmp_path / "student")
    (student / "kdcli.json").write_text(json.dumps(record))
    result = cli("distill", "--student", student, "--data", MINI, "--out", tmp_path / "o")
    assert expected in one_line_error(result)


def test_eval_shows_a_malformed_lineage_without_failing(cli, classifier, tmp_path):
    model = copy_model(classifier, tmp_path / "model")
    bad = {"stage": "shrink", "layers": 5, "vocab": {"student": "many"}, "history": [{}]}
    (model / "kdcli.json").write_text(json.dumps(bad))
    result = cli("eval", model, "--data", MINI, "-q", "--json", tmp_path / "r.json")
    assert result.exit_code == 0, result.output
    lineage = json.loads((tmp_path / "r.json").read_text())["models"][0]["lineage"]
    assert lineage == ["?", "shrink (?, layers ?)"]


# --- messages -----------------------------------------------------------------------------------


class NotATensor:
    """Something a pickle checkpoint can hold that weights_only=True refuses."""


def test_the_pickle_refusal_is_one_line_without_torchs_advice(cli, make_teacher, tmp_path):
    import torch
    from safetensors.torch import load_file

    teacher = copy_model(make_teacher("bert"), tmp_path / "teacher")
    state = dict(load_file(teacher / "model.safetensors"))
    (teacher / "model.safetensors").unlink()
    torch.save({**state, "extra": NotATensor()}, teacher / "pytorch_model.bin")
    result = cli("shrink", teacher, "--out", tmp_path / "s", "--num-layers", "2", "--allow-pickle")
    line = one_line_error(result)
    assert len(result.stderr.strip().splitlines()) == 1
    assert "cannot be loaded safely (it holds test_faults.NotATensor, not only tensors)" in line
    assert "weights_only=False" not in line and "convert it to safetensors" in line


def test_a_model_that_needs_remote_code_is_refused_without_a_flag_kdcli_lacks(
    cli, classifier, tmp_path
):
    model = copy_model(classifier, tmp_path / "custom")
    config = json.loads((model / "config.json").read_text())
    config.update(
        model_type="my-custom-encoder",
        architectures=["MyCustomForSequenceClassification"],
        auto_map={"AutoConfig": "modeling.MyConfig",
                  "AutoModelForSequenceClassification": "modeling.MyModel"},
    )  # fmt: skip
    (model / "config.json").write_text(json.dumps(config))
    line = one_line_error(cli("eval", model, "--data", MINI, "-q"))
    assert "needs Python code from its own repository" in line
    assert "kdcli never runs downloaded code" in line and "trust_remote_code" not in line


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--kd-loss", "kl", "--temperature", "inf"], "--temperature inf must be a finite number"),
        (["--hidden-loss-weight", "nan"], "--hidden-loss-weight nan must be a finite number"),
        (["--weight-decay", "nan"], "--weight-decay nan must be a finite number, zero or more"),
    ],
)
def test_non_finite_numbers_are_named_as_such(cli, make_teacher, tmp_path, args, expected):
    result = cli(
        "distill", "--student", make_teacher("bert"), "--teacher", make_teacher("bert"),
        "--data", MINI, "--out", tmp_path / "o", *args,
    )  # fmt: skip
    assert expected in one_line_error(result)


def test_free_space_is_said_in_a_readable_unit(tmp_path, monkeypatch):
    import shutil

    from kdcli.core.errors import KdcliError
    from kdcli.training import teacher_cache

    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(1, 1, 420_000))
    with pytest.raises(KdcliError) as caught:
        teacher_cache.check_space(tmp_path, examples=1000, labels=10, tokens=10_000, widths=64)
    assert "need 1.3 MB but only 420.0 KB are free" in str(caught.value)
    assert "0.0 GB" not in str(caught.value)


# --- real processes: two runs at once, a killed run and its resume (slow) -------------------------


def _finetune_process(encoder: Path, out: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    args = [sys.executable, "-m", "kdcli.cli", "finetune", str(encoder), "--data", str(MINI)]
    args += ["--out", str(out), "--lr", "3e-3", "--batch-size", "8", "-q", *extra]
    pipe = subprocess.PIPE
    return subprocess.Popen(args, env=env, stdout=pipe, stderr=pipe, text=True)


@pytest.mark.slow
def test_two_real_runs_on_one_output_one_trains_the_other_exits_2(encoder, tmp_path):
    out = tmp_path / "teacher"
    first = _finetune_process(encoder, out, "--max-steps", "40", "--save-steps", "5")
    while not (tmp_path / f".{out.name}.kdcli-lock").exists() and first.poll() is None:
        time.sleep(0.05)
    second = _finetune_process(encoder, out, "--max-steps", "40", "--overwrite")
    _, err = second.communicate(timeout=300)
    assert second.returncode == 2 and "being written by another kdcli run" in err
    _, err = first.communicate(timeout=1200)
    assert first.returncode == 0, err
    lines = (out / "metrics.jsonl").read_text().splitlines()
    steps = [json.loads(line)["step"] for line in lines if '"train"' in line]
    assert steps == sorted(steps) and len(steps) == len(set(steps))  # one run's log, in order
    assert leftovers(tmp_path) == [] and not (tmp_path / "teacher.checkpoints").exists()


@pytest.mark.slow
def test_a_killed_run_resumes_and_cleans_up_after_itself(encoder, tmp_path):
    out = tmp_path / "teacher"
    area = tmp_path / "teacher.checkpoints"
    steps = ("--max-steps", "150", "--save-steps", "3")  # long enough to be killed mid-training
    run = _finetune_process(encoder, out, *steps)
    while not any(area.glob("checkpoint-*[0-9]")) and run.poll() is None:
        time.sleep(0.05)  # a checkpoint appears complete (written as *.tmp, then renamed)
    os.kill(run.pid, signal.SIGKILL)  # no Ctrl-C handler runs: like a crash or the OOM killer
    run.wait()
    assert not out.exists(), "the run finished before it was killed: give it more steps"
    stale = tmp_path / "teacher.tmp-killed"  # what a kill during the final rename leaves
    stale.mkdir()
    resumed = _finetune_process(encoder, out, *steps, "--resume")
    _, err = resumed.communicate(timeout=1200)
    assert resumed.returncode == 0, err
    said = " ".join(err.split())
    assert "temporary folder" in said and "teacher.tmp-killed" in said, said
    assert (out / "model.safetensors").is_file() and not area.exists()
    assert leftovers(tmp_path) == [] and not (tmp_path / ".teacher.kdcli-lock").exists()
