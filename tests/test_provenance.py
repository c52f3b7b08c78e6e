"""kdcli.json: records, history, and the lineage eval shows."""

from __future__ import annotations

import json

import pytest

from kdcli.core.errors import KdcliError
from kdcli.files.provenance import find_stage, lineage, make_record, read_provenance, with_history


def test_history_keeps_the_parents_records_newest_first(tmp_path):
    finetune = make_record("finetune", {"lr": 5e-5})
    shrink = with_history(make_record("shrink", {}, init="copy", layers={"kept": [0, 2]}), finetune)
    distill = with_history(
        make_record("distill", {}, distillation={"kd_loss": "mse", "alpha": 0.5}), shrink
    )
    assert [h["stage"] for h in distill["history"]] == ["shrink", "finetune"]
    assert "history" not in distill["history"][0]
    assert find_stage(distill, "shrink")["layers"]["kept"] == [0, 2]
    assert find_stage(distill, "export") is None
    exported = with_history(make_record("export", {"quantize": "int8"}), distill)
    assert lineage(exported) == [
        "finetune",
        "shrink (copy, layers 0,2)",
        "distill (mse, α 0.5)",
        "export (int8)",
    ]
    no_kd = make_record("distill", {}, distillation={"kd_loss": None})
    assert lineage(no_kd) == ["distill (no KD)"] and lineage(None) == []


def test_reading_a_broken_record_is_a_clear_error(tmp_path):
    assert read_provenance(tmp_path) is None
    (tmp_path / "kdcli.json").write_text("{broken")
    with pytest.raises(KdcliError, match="is not valid JSON"):
        read_provenance(tmp_path)
    (tmp_path / "kdcli.json").write_text(json.dumps([1, 2]))
    with pytest.raises(KdcliError, match="does not hold a JSON object"):
        read_provenance(tmp_path)


# --- paths that survive moving and sharing the folders --------------------------------------------


def test_distill_finds_the_recorded_teacher_from_any_folder_and_after_a_move(
    cli, tmp_path, monkeypatch, tmp_path_factory
):
    import shutil

    from training_helpers import MINI, one_thread, shared_models

    models = shared_models(tmp_path_factory)
    work = tmp_path / "work"
    work.mkdir()
    shutil.copytree(models.teacher, work / "teacher")
    monkeypatch.chdir(work)
    assert cli("shrink", "teacher", "--out", "student", "--num-layers", "1", "-q").exit_code == 0
    record = json.loads((work / "student" / "kdcli.json").read_text())
    assert record["source"]["model"] == "teacher" and record["source"]["path"] == "../teacher"
    assert record["source"]["resolved"] == str((work / "teacher").resolve())

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # "teacher" does not exist here
    args = ["--data", MINI, "--max-steps", "1", "--cache-dir", tmp_path / "cache", "-q"]
    with one_thread():
        result = cli("distill", "--student", work / "student", "--out", tmp_path / "kd", *args)
    assert result.exit_code == 0, result.output

    moved = tmp_path / "moved"
    shutil.move(work, moved)  # teacher and student move together: the relative path holds
    with one_thread():
        result = cli("distill", "--student", moved / "student", "--out", tmp_path / "kd2", *args)
    assert result.exit_code == 0, result.output
    assert f"teacher {moved / 'student' / '..' / 'teacher'}" not in result.stderr
    assert f"teacher {moved / 'teacher'} taken from" in " ".join(result.stderr.split())


def test_history_paths_are_relative_to_the_folder_that_holds_them(tmp_path):
    from kdcli.files.provenance import describe_local, recorded_path

    (tmp_path / "a" / "teacher").mkdir(parents=True)
    a, b = tmp_path / "a", tmp_path / "b"
    parent = make_record("shrink", {}, source=describe_local(a / "teacher", a / "student"))
    child = with_history(make_record("distill", {}), parent, a / "student", b / "kd")
    source = child["history"][0]["source"]
    assert source["path"] == "../../a/teacher"
    assert recorded_path(source, tmp_path / "b" / "kd") == str(tmp_path / "a" / "teacher")


def test_model_cards_name_the_base_model_show_results_and_no_local_paths(
    tmp_path, tmp_path_factory
):
    import shutil
    from dataclasses import replace

    from training_helpers import MINI, one_thread, shared_models, train_config

    from kdcli.steps.distill import DistillConfig, distill
    from kdcli.steps.shrink import ShrinkConfig, shrink

    models = shared_models(tmp_path_factory)
    teacher = shutil.copytree(models.teacher, tmp_path / "teacher")
    record = json.loads((teacher / "kdcli.json").read_text())
    record["source"] = {"model": "intfloat/multilingual-e5-small", "revision": "c007d7e"}
    (teacher / "kdcli.json").write_text(json.dumps(record))  # as if fine-tuned from the Hub
    shrink(ShrinkConfig(str(teacher), out=tmp_path / "student", num_layers=1))
    with one_thread():
        config = DistillConfig(
            str(tmp_path / "student"), str(MINI), tmp_path / "kd", cache_dir=tmp_path / "cache"
        )
        distill(replace(config, train=train_config(max_steps=2)))
    for folder in ("student", "kd"):
        card = (tmp_path / folder / "README.md").read_text()
        assert "base_model: intfloat/multilingual-e5-small" in card
        assert str(tmp_path) not in card and str(MINI.parent) not in card
    card = (tmp_path / "kd" / "README.md").read_text()
    assert "## Results" in card and "| ja-JP |" in card
    assert "language:\n- ar\n- de\n- en\n- ja\n- ru" in card
    assert "# student distilled by kdcli" in card and "massive-mini" in card


def test_kdcli_json_puts_number_lists_on_one_line_and_reads_back_the_same():
    from pathlib import Path

    import numpy as np

    from kdcli.files.provenance import dumps, to_ranges

    kept = [i for i in range(10_000) if i % 3]  # 3,334 ranges
    record = {
        "vocab": {"kept": to_ranges(kept), "levels": ["forced", "data"], "size": np.int64(7)},
        "layers": {"kept": [0, 2, 5], "flags": [True, False]},
        "path": Path("a/b"),
        "empty": {"list": [], "dict": {}},
    }
    text = dumps(record)
    lines = text.splitlines()
    assert '    "kept": [[1, 3], [4, 6], ' in text and len(lines) < 30
    assert '    "kept": [0, 2, 5],' in lines
    assert '      "forced",' in lines  # strings keep one per line
    assert "      true," in lines  # so do booleans: flags, not numbers
    assert json.loads(text) == {**record, "path": "a/b", "vocab": {**record["vocab"], "size": 7}}
    assert dumps(json.loads(text)) == text
