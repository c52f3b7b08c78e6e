"""`kdcli eval`: the report from hand-made predictions, its files, and the command end to end."""

from __future__ import annotations

import csv
import io
import json
import random
from pathlib import Path

import pytest

from kdcli.core.errors import KdcliError
from kdcli.data.splits import Examples
from kdcli.evaluation.report import ModelRun, build_report
from kdcli.evaluation.report_files import (
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
from kdcli.steps.evaluate import unique_names

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
            assert set(score) == {"n", "accuracy", "macro_f1", "accuracy_low", "accuracy_high"}
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
        "accuracy_low": pytest.approx(0.0945, abs=1e-4),  # Wilson, 1 of 2
        "accuracy_high": pytest.approx(0.9055, abs=1e-4),
    }
    assert teacher["average"]["accuracy"] == 0.75
    assert teacher["worst"] == {"language": "sw-KE", "accuracy": 0.5}
    assert teacher["vs_first"] is None
    assert student["vs_first"]["languages"]["en-US"]["accuracy_delta"] == pytest.approx(-0.25)
    assert student["vs_first"]["average"]["accuracy_retention"] == pytest.approx(87.5 / 0.75)


def test_every_report_format_shows_intervals_and_which_changes_may_be_noise():
    """40 examples a language: a 95% interval of about +-14 points, and a 2-point change that
    is not significant; a 20-point one that is."""
    languages, gold, first, second = [], [], [], []
    for language, flips in (("de-DE", 1), ("fr-FR", 8)):
        for i in range(40):
            languages.append(language)
            gold.append("a")
            first.append("a" if i < 30 else "b")  # 75% right
            second.append("a" if i < 30 + flips else "b")  # one more right / eight more right
    examples = Examples([str(i) for i in range(80)], ["t"] * 80, gold, languages, "test", "x")
    report = build_report(
        examples,
        [ModelRun("teacher", "t", "pytorch", first, 1, 1),
         ModelRun("student", "s", "pytorch", second, 1, 1)],
    )  # fmt: skip
    teacher, student = report.models
    score = teacher.languages["de-DE"]
    assert (score.accuracy_low, score.accuracy_high) == pytest.approx((0.598, 0.858), abs=1e-3)
    assert student.changes["de-DE"].significant is False  # +2.5 points: 1 of 1 disagreement
    assert student.changes["fr-FR"].significant is True  # +20 points: 8 of 8
    assert student.changes["de-DE"].p_value == pytest.approx(1.0)
    assert student.changes["fr-FR"].p_value == pytest.approx(2 / 2**8)
    assert student.average_change.significant is True

    data = json.loads(report_json(report))
    assert data["models"][0]["languages"]["de-DE"]["accuracy_low"] == pytest.approx(0.598, abs=1e-3)
    assert data["models"][1]["vs_first"]["languages"]["de-DE"]["significant"] is False
    rows = {(r["model"], r["language"]): r for r in csv.DictReader(io.StringIO(report_csv(report)))}
    assert rows[("student", "de-DE")]["accuracy_delta_significant"] == "false"
    assert float(rows[("student", "fr-FR")]["accuracy_delta_p"]) == pytest.approx(2 / 2**8)
    assert float(rows[("teacher", "de-DE")]["accuracy_high"]) == pytest.approx(0.858, abs=1e-3)
    markdown = report_markdown(report)
    assert "| de-DE | 40 | 75.0 [59.8–85.8] |" in markdown
    assert "77.5 [62.5–87.7] (+2.5, 103.3%, n.s.)" in markdown
    assert "95.0 [83.5–98.6] (+20.0, 126.7%)" in markdown


def test_the_terminal_table_marks_noise(monkeypatch):
    from kdcli.cli import render

    monkeypatch.setattr(render.console, "width", 140)
    with render.console.capture() as captured:
        render.console.print(render.eval_table(small_report()))
    text = captured.get()
    assert "± the 95% interval" in text and "~ when not significant" in " ".join(text.split())
    assert "±" in text and "~" in text


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
    assert lines[2].startswith(  # 4 and 2 examples: wide intervals, changes that may be noise
        "| en-US | 4 | 100.0 [51.0–100.0] | 100.0 | 75.0 [30.1–95.4] (-25.0, 75.0%, n.s.) |"
    )
    assert lines[3].startswith(
        "| sw-KE | 2 | 50.0 [9.5–90.5] | 33.3 | 100.0 [34.2–100.0] (+50.0, 200.0%, n.s.) | "
        "100.0 (+66.7)"
    )
    assert "| **average** | 6 | **75.0** |" in text
    assert "| **worst** |  | sw-KE 50.0 |  | en-US 75.0 |  |" in text
    facts = text.split("\n\n")[-1].splitlines()
    assert facts == [
        "|  | teacher | student |",
        "| --- | ---: | ---: |",
        "| kind | pytorch | onnx-int8 |",
        "| parameters | 1.0M | 500.0K (2.0x smaller) |",
        "| size on disk | 4.0 MB | 600.0 KB (6.7x smaller) |",
    ]


def test_speed_rows_compare_with_the_first_model():
    from dataclasses import replace

    from kdcli.evaluation.report import Speed
    from kdcli.evaluation.report_files import facts_rows

    report = small_report()
    teacher, student = report.models
    models = [
        replace(teacher, speed=Speed(10.0, 100.0, 32, 32, None)),
        replace(student, speed=Speed(2.5, 400.0, 32, 32, 2)),
    ]
    rows = dict(facts_rows(models))
    assert rows["latency (batch 1)"] == ["10.00 ms", "2.50 ms (4.0x faster)"]
    assert rows["throughput (batch 32)"] == ["100/s", "400/s (4.0x faster)"]
    slower = [models[1], models[0]]
    assert dict(facts_rows(slower))["latency (batch 1)"][1] == "10.00 ms (4.0x slower)"


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
        (lambda d: ReportOutputs(csv=d / "missing" / "r.csv"), "csv .* does not exist"),
        (lambda d: ReportOutputs(markdown=d), "markdown .* is a directory"),
        (lambda d: ReportOutputs(plot=d / "plot.jpg"), "plot .*'.jpg'.*.png or .svg or .pdf"),
        (lambda d: ReportOutputs(predictions=d / "p.txt"), "predictions .*'.txt'.*.csv or"),
        (
            lambda d: ReportOutputs(json=d / "same", csv=d / "same"),
            "csv .*same is also given to json",
        ),
    ],
)
def test_bad_output_paths_are_refused_before_any_work(tmp_path, outputs, message):
    with pytest.raises(KdcliError, match=message):
        check_outputs(outputs(tmp_path))


def test_unwritable_output_folder_is_refused(tmp_path, monkeypatch):
    import kdcli.files.outputs

    # The tests may run as root, who can write anywhere: simulate a read-only folder.
    folder = tmp_path / "ro"
    folder.mkdir()
    real = kdcli.files.outputs.os.access
    monkeypatch.setattr(
        kdcli.files.outputs.os, "access", lambda p, mode: Path(p) != folder and real(p, mode)
    )
    with pytest.raises(KdcliError, match=r"json .* not writable"):
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
    assert unique_names(["t", "x/m", "x/m"], ["pytorch"] * 3) == ["t", "m #2", "m #3"]
    assert unique_names(["e/model.onnx", "e/model_quantized.onnx"], ["onnx", "onnx-int8"]) == [
        "e (onnx)",
        "e (onnx-int8)",
    ]
    assert unique_names(["xlm-roberta-base"], ["pytorch"]) == ["xlm-roberta-base"]


def test_terminal_table_shows_languages_summaries_and_coloured_changes():
    from rich.console import Console

    from kdcli.cli.render import eval_table

    console = Console(file=io.StringIO(), record=True, width=160, color_system="standard")
    console.print(eval_table(small_report()))
    text = console.export_text(clear=False)
    assert "en-US" in text and "sw-KE" in text and "average" in text and "worst" in text
    assert "75.0 ±45 -25.0~ 75%" in text  # ±: the 95% interval; ~: may be noise
    assert "100.0 ±66 +50.0~ 200%" in text
    styled = console.export_text(styles=True)
    assert "\x1b[31m-25.0~ 75%" in styled  # a loss of a point or more: red
    assert "\x1b[32m+50.0~ 200%" in styled  # a gain: green


def test_paths_in_json_are_strings(tmp_path):
    data = json.loads(report_json(small_report()))
    assert data["models"][1]["path"] == "runs/student"
    assert Path(data["models"][1]["path"]).name == "student"


# --- end to end on tiny models --------------------------------------------------------------------

MINI = Path(__file__).parent / "data" / "massive-mini"
MINI_LABELS = ("alarm_set", "weather_query", "play_music", "datetime_query", "takeaway_order")


def _train_briefly(model_dir: Path, steps: int) -> None:
    """A few optimizer steps on massive-mini so predictions depend on the text (a random tiny
    model predicts one class for everything, which would hide ordering bugs)."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from kdcli.data.splits import DataConfig, load_split

    train = load_split(DataConfig(str(MINI)), "train")
    model = AutoModelForSequenceClassification.from_pretrained(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    batch = tokenizer(
        train.texts, padding=True, truncation=True, max_length=32, return_tensors="pt"
    )
    labels = torch.tensor([model.config.label2id[label] for label in train.labels])
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(0)
    model.train()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a 32-wide model: more threads only wait on each other
    for _ in range(steps):
        pick = torch.randint(0, len(labels), (32,), generator=generator)
        loss = model(
            input_ids=batch["input_ids"][pick],
            attention_mask=batch["attention_mask"][pick],
            labels=labels[pick],
        ).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    torch.set_num_threads(threads)
    model.eval().save_pretrained(model_dir)


@pytest.fixture(scope="session")
def models(tmp_path_factory) -> dict[str, Path]:
    """A tiny XLM-R 'teacher' trained a little on massive-mini, and an untrained 2-layer
    'student' (only the teacher's predictions need to vary)."""
    from factories import make_model_dir

    root = tmp_path_factory.mktemp("eval-models")
    from kdcli.data.splits import DataConfig, load_split

    teacher = make_model_dir(root / "teacher", "xlm-roberta", labels=MINI_LABELS, seed=1)
    student = make_model_dir(root / "student", "xlm-roberta", labels=MINI_LABELS, seed=2, layers=2)
    # The trained tokenizer differs between processes (the trainer breaks ties at random), so
    # train until the predictions vary rather than for a fixed number of steps.
    texts = load_split(DataConfig(str(MINI)), "test").texts
    for _ in range(10):
        _train_briefly(teacher, 20)
        if len(set(_reference_predictions(teacher, texts))) > 1:
            break
    return {"teacher": teacher, "student": student}


def _reference_predictions(model_dir: Path, texts: list[str]) -> list[str]:
    """What a user gets from transformers one text at a time: no batching, no padding."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    predicted = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model: more threads only wait on each other
    with torch.inference_mode():
        for text in texts:
            logits = model(**tokenizer(text, truncation=True, max_length=128, return_tensors="pt"))
            predicted.append(model.config.id2label[int(logits.logits.argmax())])
    torch.set_num_threads(threads)
    return predicted


def test_evaluate_matches_unbatched_transformers_predictions(models):
    from kdcli.data.splits import DataConfig, load_split
    from kdcli.steps.evaluate import EvalConfig, evaluate

    report = evaluate(EvalConfig([str(models["teacher"])], str(MINI), batch_size=7, threads=1))
    examples = load_split(DataConfig(str(MINI)), "test")
    expected = _reference_predictions(models["teacher"], examples.texts)
    assert len(set(expected)) > 1, "the fixture model should not predict a single class"
    assert report.models[0].predictions == expected
    assert report.ids == examples.ids
    by_hand = sum(p == g for p, g in zip(expected, examples.labels, strict=True)) / len(expected)
    assert report.models[0].summary.pooled_accuracy == pytest.approx(by_hand)


def test_each_model_runs_once_over_the_whole_split(models, monkeypatch):
    import kdcli.runtime.predictor

    calls = []
    real = kdcli.runtime.predictor.Predictor.logits

    def counted(self, texts, *args, **kwargs):
        calls.append(len(texts))
        return real(self, texts, *args, **kwargs)

    monkeypatch.setattr(kdcli.runtime.predictor.Predictor, "logits", counted)
    from kdcli.steps.evaluate import EvalConfig, evaluate

    evaluate(EvalConfig([str(models["teacher"]), str(models["student"])], str(MINI)))
    assert calls == [50, 50]  # 5 languages x 10 test examples, one call per model


def test_cli_eval_end_to_end_writes_every_file(cli, models, tmp_path):
    pytest.importorskip("matplotlib")
    files = {
        "--json": tmp_path / "report.json",
        "--csv": tmp_path / "report.csv",
        "--markdown": tmp_path / "report.md",
        "--plot": tmp_path / "report.png",
        "--predictions": tmp_path / "predictions.csv",
    }
    args = [option_value for option, path in files.items() for option_value in (option, path)]
    result = cli(
        "eval",
        models["teacher"],
        models["student"],
        "--data",
        MINI,
        "--speed",
        "--threads",
        "1",
        "-q",
        *args,
    )
    assert result.exit_code == 0, result.stderr
    for language in ("ar-SA", "de-DE", "en-US", "ja-JP", "ru-RU"):
        assert language in result.stderr
    assert "average" in result.stderr and "worst" in result.stderr
    assert "latency (batch 1)" in result.stderr
    assert f"kdcli export {models['student']} --onnx" in result.stderr
    data = json.loads(files["--json"].read_text())
    assert [m["name"] for m in data["models"]] == ["teacher", "student"]
    assert data["models"][0]["path"] == str(models["teacher"])
    assert sum(s["n"] for s in data["models"][1]["languages"].values()) == 50
    student = data["models"][1]
    assert student["params"] < data["models"][0]["params"]
    assert student["speed"]["latency_ms"] > 0 and student["speed"]["throughput"] > 0
    assert student["speed"]["batch_size"] == 32 and student["speed"]["threads"] == 1
    speed = student["speed"]  # interleaved rounds: median and the fastest and slowest round
    assert speed["rounds"] == 5
    assert speed["latency_low_ms"] <= speed["latency_ms"] <= speed["latency_high_ms"]
    assert speed["throughput_low"] <= speed["throughput"] <= speed["throughput_high"]
    assert data["machine"]["cpus"] >= 1 and data["machine"]["isa"]
    assert "Speed: median of 5 rounds interleaved" in " ".join(result.stderr.split())
    assert data["machine"]["isa"] in " ".join(result.stderr.split())
    assert files["--markdown"].read_text().startswith("Split `test`")
    assert files["--plot"].read_bytes()[:4] == b"\x89PNG"
    rows = list(csv.DictReader(files["--predictions"].open(encoding="utf-8")))
    assert len(rows) == 50 and set(rows[0]) >= {"predicted:teacher", "predicted:student"}
    assert leftovers_of(tmp_path) == []


def leftovers_of(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".tmp-" in p.name)


def test_languages_option_restricts_the_report(cli, models, tmp_path):
    out = tmp_path / "r.json"
    result = cli(
        "eval", models["student"], "--data", MINI, "--languages", "ja-JP,de-DE", "--json", out
    )
    assert result.exit_code == 0, result.stderr
    assert list(json.loads(out.read_text())["models"][0]["languages"]) == ["de-DE", "ja-JP"]


def test_config_file_lists_models_and_flags_win(cli, models, tmp_path):
    recipe = tmp_path / "eval.yaml"
    recipe.write_text(
        f"model: [{models['teacher']}, {models['student']}]\ndata: {MINI}\nlanguages: en-US\n"
    )
    out = tmp_path / "r.json"
    result = cli("eval", "--config", recipe, "--languages", "ru-RU", "--json", out)
    assert result.exit_code == 0, result.stderr
    data = json.loads(out.read_text())
    assert [m["name"] for m in data["models"]] == ["teacher", "student"]
    assert list(data["models"][0]["languages"]) == ["ru-RU"]


@pytest.fixture
def no_model_runs(monkeypatch):
    """Bad input must be found before any model is loaded: loading one fails this test."""
    import kdcli.runtime.predictor

    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded before the input was checked")

    monkeypatch.setattr(kdcli.runtime.predictor, "open_predictor", refuse)


def _one_line_error(result) -> str:
    assert result.exit_code == 2, (result.exit_code, result.stderr, result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_unknown_language_lists_the_available_ones(cli, models, no_model_runs):
    line = _one_line_error(cli("eval", models["teacher"], "--data", MINI, "--languages", "xx-XX"))
    assert "xx-XX" in line and "available: ar-SA, de-DE, en-US, ja-JP, ru-RU" in line


def test_empty_split_is_refused(cli, models, tmp_path, no_model_runs):
    data = tmp_path / "only-train.jsonl"
    data.write_text(
        json.dumps({"text": "wake me", "label": "alarm_set", "language": "en", "split": "train"})
        + "\n"
    )
    line = _one_line_error(cli("eval", models["teacher"], "--data", data))
    assert "test split is empty" in line


def test_a_folder_that_is_neither_model_nor_export(cli, models, tmp_path, no_model_runs):
    folder = tmp_path / "just-a-folder"
    folder.mkdir()
    (folder / "notes.txt").write_text("hello")
    line = _one_line_error(cli("eval", models["teacher"], folder, "--data", MINI))
    assert str(folder) in line and "neither a model directory" in line


@pytest.mark.parametrize("name", ["nope", "nope/model.onnx"])
def test_a_missing_path_is_refused(cli, models, tmp_path, no_model_runs, name):
    line = _one_line_error(cli("eval", models["teacher"], tmp_path / name, "--data", MINI))
    assert str(tmp_path / name) in line and "does not exist" in line


def test_export_without_tokenizer_files(cli, models, tmp_path, no_model_runs):
    pytest.importorskip("onnxruntime")
    export = tmp_path / "export"
    export.mkdir()
    (export / "model.onnx").write_bytes(b"not used: the check comes first")
    (export / "config.json").write_text((models["teacher"] / "config.json").read_text())
    line = _one_line_error(cli("eval", models["teacher"], export, "--data", MINI))
    assert str(export) in line and "no tokenizer files" in line


def test_labels_a_model_does_not_know_count_as_errors_with_a_note(cli, make_teacher, tmp_path):
    other = make_teacher("bert")  # labels alarm_set, play_music, weather_query only
    result = cli("eval", other, "--data", MINI, "-q", "--json", tmp_path / "r.json")
    assert result.exit_code == 0, result.output
    text = " ".join(result.stderr.split())
    assert f"{other} does not know the labels datetime_query, takeaway_order: its" in text
    assert "count as errors" in text
    report = json.loads((tmp_path / "r.json").read_text())
    assert any("datetime_query, takeaway_order" in note for note in report["notes"])
    rows = _predictions(cli, other, tmp_path)
    assert any(r["gold"] == "datetime_query" for r in rows)
    assert all(r["predicted"] != r["gold"] for r in rows if r["gold"] == "datetime_query")


def _predictions(cli, model, tmp_path):
    out = tmp_path / "p.jsonl"
    result = cli("eval", model, "--data", MINI, "-q", "--predictions", out, "--overwrite")
    assert result.exit_code == 0, result.output
    return [
        {"gold": r["gold"], "predicted": next(iter(r["predicted"].values()))}
        for r in map(json.loads, out.read_text().splitlines())
    ]


def test_a_model_that_knows_none_of_the_labels_is_refused(cli, tmp_path, no_model_runs):
    from factories import make_model_dir

    other = make_model_dir(tmp_path / "other", "bert", labels=("a", "b"))
    line = _one_line_error(cli("eval", other, "--data", MINI))
    assert "does not know the label(s)" in line and "datetime_query" in line


def test_unwritable_output_is_refused_before_models_run(cli, models, tmp_path, no_model_runs):
    line = _one_line_error(
        cli("eval", models["teacher"], "--data", MINI, "--csv", tmp_path / "no" / "r.csv")
    )
    assert "--csv" in line and "does not exist" in line


@pytest.mark.parametrize(
    ("option", "value"), [("--batch-size", "0"), ("--max-length", "-1"), ("--threads", "0")]
)
def test_bad_numbers_are_refused(cli, models, option, value, no_model_runs):
    line = _one_line_error(cli("eval", models["teacher"], "--data", MINI, option, value))
    assert option in line


def test_a_model_without_classification_head(cli, make_teacher, no_model_runs):
    encoder = make_teacher("xlm-roberta", head="encoder")
    line = _one_line_error(cli("eval", encoder, "--data", MINI))
    assert "is a encoder model" in line and "fine-tune it first" in line


def test_one_table_holds_pytorch_and_its_onnx_exports(cli, models, tmp_path):
    """The student, its export dir (int8 picked when present) and its fp32 file, side by side."""
    pytest.importorskip("onnxruntime")
    from kdcli.steps.export import ExportConfig, export

    exported = tmp_path / "student-onnx"
    export(ExportConfig(str(models["student"]), exported, quantize="int8", latency=False))
    out = tmp_path / "r.json"
    result = cli(
        "eval", models["student"], exported, exported / "model.onnx", "--data", MINI, "--json", out
    )
    assert result.exit_code == 0, result.stderr
    torch_result, int8, fp32 = json.loads(out.read_text())["models"]
    assert [m["kind"] for m in (torch_result, int8, fp32)] == ["pytorch", "onnx-int8", "onnx"]
    assert [m["name"] for m in (int8, fp32)] == ["student-onnx (onnx-int8)", "student-onnx (onnx)"]
    # fp32 ONNX is the same function: the same scores; every export counts the same weights
    assert fp32["languages"] == torch_result["languages"]
    assert fp32["params"] == int8["params"] == torch_result["params"]
    assert int8["size_bytes"] < fp32["size_bytes"]
    assert sum(s["n"] for s in int8["languages"].values()) == 50
    # an export is in the table already: the hint is to time them all
    assert f"kdcli eval {models['student']} {exported} {exported / 'model.onnx'}" in result.stderr
    assert "--speed" in result.stderr


def test_progress_is_reported_batch_by_batch(models):
    from kdcli.steps.evaluate import EvalConfig, evaluate

    events = []
    evaluate(EvalConfig([str(models["student"])], str(MINI), batch_size=16), events.append)
    done = [(e.task, e.done, e.total) for e in events]
    assert done[0] == ("eval student", 0, 50)
    assert [d for _, d, _ in done[1:]] == [16, 32, 48, 50]  # one event per batch


def test_change_colours_green_yellow_red():
    from kdcli.cli.render import _change_colour

    assert _change_colour(0.0) == "green" and _change_colour(0.02) == "green"
    assert _change_colour(-0.004) == "yellow"  # under one point lost
    assert _change_colour(-0.01) == "red" and _change_colour(-0.2) == "red"


def test_the_json_documented_in_docs_report_md_is_what_kdcli_writes():
    from dataclasses import replace

    from kdcli.evaluation.report import Speed

    text = (Path(__file__).parent.parent / "docs" / "report.md").read_text(encoding="utf-8")
    documented = json.loads(text.split("```json\n", 1)[1].split("\n```", 1)[0])
    report = small_report()
    timed = replace(report.models[1], speed=Speed(1.0, 2.0, 32, 32, 1))
    written = json.loads(report_json(replace(report, models=[report.models[0], timed])))
    assert set(documented) == set(written)
    doc_model, model = documented["models"][0], written["models"][1]
    assert set(doc_model) == set(model)
    for key in ("average", "pooled", "worst", "speed"):
        assert set(doc_model[key]) == set(model[key]), key
    assert set(next(iter(doc_model["languages"].values()))) == set(model["languages"]["en-US"])
    assert set(documented["machine"]) == {"cpu", "isa", "cpus", "load", "busy"}
    assert set(doc_model["vs_first"]) == set(model["vs_first"])
    doc_change = next(iter(doc_model["vs_first"]["languages"].values()))
    assert set(doc_change) == set(model["vs_first"]["languages"]["en-US"])
    assert set(doc_model["vs_first"]["average"]) == set(model["vs_first"]["average"])


def test_speed_texts_take_every_language_in_turn():
    from kdcli.steps.evaluate import speed_texts

    examples = small_examples()  # en-US: 4 texts, sw-KE: 2
    assert speed_texts(examples, 3) == ["wake me", "niamshe", "play jazz"]
    assert speed_texts(examples, 100) == [
        "wake me",
        "niamshe",
        "play jazz",
        "mvua?",
        "rain?",
        "alarm",
    ]
