"""`kdcli eval`: the report from hand-made predictions, its files, and the command end to end."""

from __future__ import annotations

import csv
import io
import json
import random
from pathlib import Path

import pytest

from kdcli.data import Examples
from kdcli.errors import KdcliError
from kdcli.evaluate import ModelRun, build_report, unique_names
from kdcli.report_writers import (
    ReportOutputs,
    check_outputs,
    predictions_csv,
    predictions_jsonl,
    report_csv,
    report_json,
    report_markdown,
    write_outputs,
    write_plot,
)

LABELS = ("alarm_set", "play_music", "weather_query")


def small_examples() -> Examples:
    """Two languages, hand-checkable: en 4 examples, sw 2."""
    return Examples(
        ids=["1", "2", "3", "4", "1", "2"],
        texts=["wake me", "play jazz", "rain?", "alarm", "niamshe", "mvua?"],
        labels=[
            "alarm_set",
            "play_music",
            "weather_query",
            "alarm_set",
            "alarm_set",
            "weather_query",
        ],
        languages=["en-US", "en-US", "en-US", "en-US", "sw-KE", "sw-KE"],
        split="test",
        source="files:tiny",
    )


def small_report():
    examples = small_examples()
    teacher = ModelRun(
        "teacher",
        "runs/teacher",
        "pytorch",
        # en: 4/4 right; sw: 1/2 right
        ["alarm_set", "play_music", "weather_query", "alarm_set", "alarm_set", "alarm_set"],
        params=1_000_000,
        size_bytes=4_000_000,
    )
    student = ModelRun(
        "student",
        "runs/student",
        "onnx-int8",
        # en: 3/4 right; sw: 2/2 right
        ["alarm_set", "weather_query", "weather_query", "alarm_set", "alarm_set", "weather_query"],
        params=500_000,
        size_bytes=600_000,
    )
    return build_report(examples, [teacher, student])


def synthetic_report(languages: int, models: int, seed: int = 0):
    """Many languages with random predictions, for layout tests (55 like MASSIVE's 51+)."""
    rng = random.Random(seed)
    codes = [f"l{i:02d}-XX" for i in range(languages)]
    ids, texts, gold, langs = [], [], [], []
    for code in codes:
        for i in range(12):
            ids.append(str(i))
            texts.append(f"utterance {i}")
            gold.append(rng.choice(LABELS))
            langs.append(code)
    examples = Examples(ids, texts, gold, langs, "test", "files:synthetic")
    runs = []
    for m in range(models):
        predicted = [g if rng.random() < 0.9 - 0.1 * m else rng.choice(LABELS) for g in gold]
        runs.append(ModelRun(f"model-{m}", f"m{m}", "pytorch", predicted, 10, 40))
    return build_report(examples, runs)


# --- the report ----------------------------------------------------------------------------------


def test_report_scores_languages_aggregates_and_changes():
    report = small_report()
    teacher, student = report.models
    assert report.language_names == ["en-US", "sw-KE"]
    assert teacher.languages["en-US"].accuracy == 1.0
    assert teacher.languages["sw-KE"].accuracy == 0.5
    assert teacher.summary.average_accuracy == pytest.approx(0.75)
    assert teacher.summary.pooled_accuracy == pytest.approx(5 / 6)
    assert (teacher.summary.worst_language, teacher.summary.worst_accuracy) == ("sw-KE", 0.5)
    assert teacher.changes is None and teacher.average_change is None
    assert student.changes is not None and student.average_change is not None
    assert student.changes["en-US"].accuracy_delta == pytest.approx(-0.25)
    assert student.changes["en-US"].accuracy_retention == pytest.approx(75.0)
    assert student.changes["sw-KE"].accuracy_delta == pytest.approx(0.5)
    assert student.average_change.accuracy_delta == pytest.approx(0.875 - 0.75)
    assert student.summary.worst_language == "en-US"


def test_json_has_exactly_the_documented_shape():
    data = json.loads(report_json(small_report()))
    assert data["split"] == "test"
    assert [m["name"] for m in data["models"]] == ["teacher", "student"]
    documented = {"name", "path", "languages", "average", "pooled", "worst", "params", "size_bytes"}
    for model in data["models"]:
        assert documented <= set(model)
        assert isinstance(model["name"], str) and isinstance(model["path"], str)
        for language, score in model["languages"].items():
            assert isinstance(language, str)
            assert set(score) == {"n", "accuracy", "macro_f1"}
            assert isinstance(score["n"], int)
            assert isinstance(score["accuracy"], float) and isinstance(score["macro_f1"], float)
        assert {"accuracy", "macro_f1"} <= set(model["average"])
        assert "accuracy" in model["pooled"]
        assert {"language", "accuracy"} <= set(model["worst"])
        assert isinstance(model["params"], int) and isinstance(model["size_bytes"], int)
    teacher, student = data["models"]
    assert teacher["languages"]["sw-KE"] == {
        "n": 2,
        "accuracy": 0.5,
        "macro_f1": pytest.approx(1 / 3),
    }
    assert teacher["average"]["accuracy"] == 0.75
    assert teacher["worst"] == {"language": "sw-KE", "accuracy": 0.5}
    assert teacher["vs_first"] is None
    assert student["vs_first"]["languages"]["en-US"]["accuracy_delta"] == pytest.approx(-0.25)
    assert student["vs_first"]["average"]["accuracy_retention"] == pytest.approx(87.5 / 0.75)


def test_csv_is_one_row_per_model_and_language_plus_aggregates():
    rows = list(csv.DictReader(io.StringIO(report_csv(small_report()))))
    assert [(r["model"], r["language"]) for r in rows] == [
        ("teacher", "en-US"),
        ("teacher", "sw-KE"),
        ("teacher", "(average)"),
        ("teacher", "(pooled)"),
        ("student", "en-US"),
        ("student", "sw-KE"),
        ("student", "(average)"),
        ("student", "(pooled)"),
    ]
    en_student = rows[4]
    assert float(en_student["accuracy"]) == 0.75
    assert float(en_student["accuracy_delta"]) == pytest.approx(-0.25)
    assert float(en_student["accuracy_retention"]) == pytest.approx(75.0)
    assert rows[0]["accuracy_delta"] == ""  # the first model is the reference
    assert rows[3]["macro_f1"] == "" and float(rows[3]["accuracy"]) == pytest.approx(5 / 6)
    assert rows[2]["n"] == "6"


def test_markdown_table_has_languages_as_rows_and_models_as_columns():
    text = report_markdown(small_report())
    lines = [line for line in text.splitlines() if line.startswith("|")]
    assert lines[0] == ("| language | n | teacher acc | teacher F1 | student acc | student F1 |")
    assert lines[2].startswith("| en-US | 4 | 100.0 | 100.0 | 75.0 (-25.0, 75.0%) |")
    assert lines[3].startswith("| sw-KE | 2 | 50.0 | 33.3 | 100.0 (+50.0, 200.0%) | 100.0 (+66.7)")
    assert "| **average** | 6 | **75.0** |" in text
    assert "| **worst** |  | sw-KE 50.0 |  | en-US 75.0 |  |" in text
    assert "| size on disk |  | 4.0 MB |  | 600.0 KB |  |" in text
    assert "| kind |  | pytorch |  | onnx-int8 |  |" in text


def test_predictions_one_column_per_model_csv_and_jsonl():
    report = small_report()
    rows = list(csv.reader(io.StringIO(predictions_csv(report))))
    assert rows[0] == ["id", "language", "gold", "predicted:teacher", "predicted:student", "text"]
    assert rows[2] == ["2", "en-US", "play_music", "play_music", "weather_query", "play jazz"]
    assert len(rows) == 7
    records = [json.loads(line) for line in predictions_jsonl(report).splitlines()]
    assert records[5] == {
        "id": "2",
        "language": "sw-KE",
        "gold": "weather_query",
        "predicted": {"teacher": "alarm_set", "student": "weather_query"},
        "text": "mvua?",
    }


def test_plot_with_55_languages_grows_tall_enough_to_read(tmp_path):
    pytest.importorskip("matplotlib")
    from PIL import Image

    small, large = tmp_path / "small.png", tmp_path / "large.png"
    write_plot(synthetic_report(5, 2), small)
    write_plot(synthetic_report(55, 3), large)
    assert large.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    small_w, small_h = Image.open(small).size
    large_w, large_h = Image.open(large).size
    assert small_w == large_w and small_h < large_h
    # every language row keeps at least ~25 px (a 9 pt label is ~14 px at 110 dpi)
    assert large_h / 55 >= 25
    assert not [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name]


def test_write_outputs_writes_every_requested_file(tmp_path):
    outputs = ReportOutputs(
        json=tmp_path / "r.json",
        csv=tmp_path / "r.csv",
        markdown=tmp_path / "r.md",
        predictions=tmp_path / "p.jsonl",
    )
    check_outputs(outputs)
    written = write_outputs(small_report(), outputs)
    assert written == [outputs.json, outputs.csv, outputs.markdown, outputs.predictions]
    assert json.loads(outputs.json.read_text())["models"][0]["name"] == "teacher"
    assert outputs.predictions.read_text().count("\n") == 6


@pytest.mark.parametrize(
    ("outputs", "message"),
    [
        (lambda d: ReportOutputs(csv=d / "missing" / "r.csv"), "--csv .* does not exist"),
        (lambda d: ReportOutputs(markdown=d), "--markdown .* is a directory"),
        (lambda d: ReportOutputs(plot=d / "plot.jpg"), "--plot .*'.jpg'.*.png or .svg or .pdf"),
        (lambda d: ReportOutputs(predictions=d / "p.txt"), "--predictions .*'.txt'.*.csv or"),
        (
            lambda d: ReportOutputs(json=d / "same", csv=d / "same"),
            "--csv .*same is also given to --json",
        ),
    ],
)
def test_bad_output_paths_are_refused_before_any_work(tmp_path, outputs, message):
    with pytest.raises(KdcliError, match=message):
        check_outputs(outputs(tmp_path))


def test_unwritable_output_folder_is_refused(tmp_path, monkeypatch):
    import kdcli.outputs

    # The tests may run as root, who can write anywhere: simulate a read-only folder.
    folder = tmp_path / "ro"
    folder.mkdir()
    real = kdcli.outputs.os.access
    monkeypatch.setattr(
        kdcli.outputs.os, "access", lambda p, mode: Path(p) != folder and real(p, mode)
    )
    with pytest.raises(KdcliError, match=r"--json .* not writable"):
        check_outputs(ReportOutputs(json=folder / "r.json"))


def test_plot_without_matplotlib_names_the_extra(tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "matplotlib" else real(name, *a),
    )
    with pytest.raises(KdcliError, match=r"pip install 'kdcli\[plot\]'"):
        check_outputs(ReportOutputs(plot=tmp_path / "p.png"))


def test_unique_names_for_models_that_share_a_folder_name():
    assert unique_names(["runs/teacher", "runs/student"], ["pytorch", "pytorch"]) == [
        "teacher",
        "student",
    ]
    assert unique_names(["exp/onnx", "exp/onnx"], ["onnx", "onnx-int8"]) == [
        "onnx (onnx)",
        "onnx (onnx-int8)",
    ]
    assert unique_names(["a/model", "b/model", "c"], ["pytorch"] * 3) == ["a/model", "b/model", "c"]
    assert unique_names(["x/m", "x/m"], ["pytorch", "pytorch"]) == ["m #1", "m #2"]
    assert unique_names(["xlm-roberta-base"], ["pytorch"]) == ["xlm-roberta-base"]


def test_terminal_table_shows_languages_summaries_and_coloured_changes():
    from rich.console import Console

    from kdcli.render import eval_table

    console = Console(file=io.StringIO(), record=True, width=160, color_system="standard")
    console.print(eval_table(small_report()))
    text = console.export_text(clear=False)
    assert "en-US" in text and "sw-KE" in text and "average" in text and "worst" in text
    assert "75.0 -25.0 75.0%" in text
    assert "100.0 +50.0 200.0%" in text
    styled = console.export_text(styles=True)
    assert "\x1b[31m-25.0 75.0%" in styled  # a loss of a point or more: red
    assert "\x1b[32m+50.0 200.0%" in styled  # a gain: green


def test_paths_in_json_are_strings(tmp_path):
    data = json.loads(report_json(small_report()))
    assert data["models"][1]["path"] == "runs/student"
    assert Path(data["models"][1]["path"]).name == "student"
