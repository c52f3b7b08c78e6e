"""kdcli eval and kdcli export for token classifiers: per-language entity F1 (checked against
seqeval), every report format, and export verification per word."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import pytest
import torch
from factories import FAMILIES

MINI = Path(__file__).parent / "data" / "massive-mini"


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def two_models(slot_teacher, tmp_path_factory) -> tuple[Path, Path]:
    """The slot teacher and a half-depth copy of it (not distilled: a different model)."""
    from typer.testing import CliRunner

    from kdcli.cli import app

    student = tmp_path_factory.mktemp("slot-student") / "student"
    result = CliRunner().invoke(
        app, ["shrink", str(slot_teacher), "--num-layers", "2", "--out", str(student), "--quiet"]
    )
    assert result.exit_code == 0, result.output
    return slot_teacher, student


def test_eval_reports_entity_scores_per_language(cli, two_models, tmp_path: Path):
    seqeval = pytest.importorskip("seqeval.metrics")
    from seqeval.scheme import IOB2

    teacher, student = two_models
    files = {s: tmp_path / f"report.{s}" for s in ("json", "csv", "md", "png")}
    result = cli(
        "eval", teacher, student, "--data", MINI, "--split", "test", "--quiet",
        "--json", files["json"], "--csv", files["csv"], "--markdown", files["md"],
        "--plot", files["png"], "--predictions", tmp_path / "predictions.jsonl",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "entity F1" in result.output
    report = json.loads(files["json"].read_text())
    assert report["task"] == "token-classification"
    records = [json.loads(line) for line in (tmp_path / "predictions.jsonl").open()]
    for model in report["models"]:
        name = model["name"]
        for language, scores in model["languages"].items():
            mine = [r for r in records if r["language"] == language]
            gold = [r["gold_tags"] for r in mine]
            predicted = [r["predicted_tags"][name] for r in mine]
            kwargs = dict(mode="strict", scheme=IOB2, zero_division=0)
            assert scores["f1"] == pytest.approx(seqeval.f1_score(gold, predicted, **kwargs))
            assert scores["precision"] == pytest.approx(
                seqeval.precision_score(gold, predicted, **kwargs)
            )
            assert scores["accuracy"] == pytest.approx(seqeval.accuracy_score(gold, predicted))
            slots = {"date", "time", "place_name", "weather_descriptor", "food_type"}
            assert set(scores["type_f1"]) <= slots | {"artist_name", "music_genre"}
        every = [r["gold_tags"] for r in records]
        pooled = seqeval.f1_score(
            every, [r["predicted_tags"][name] for r in records], mode="strict", scheme=IOB2
        )
        assert model["pooled"]["f1"] == pytest.approx(pooled)
        average = sum(s["f1"] for s in model["languages"].values()) / 5
        assert model["average"]["f1"] == pytest.approx(average)
        worst = min(model["languages"].items(), key=lambda item: (item[1]["f1"], item[0]))
        assert model["worst"] == {"language": worst[0], "accuracy": worst[1]["accuracy"],
                                  "f1": worst[1]["f1"]}  # fmt: skip
    second = report["models"][1]["vs_first"]["average"]
    assert second["f1_delta"] == pytest.approx(
        report["models"][1]["average"]["f1"] - report["models"][0]["average"]["f1"]
    )
    # tagged text: the gold of a MASSIVE example reads like its annot_utt
    english = next(r for r in records if r["language"] == "en-US" and "[" in r["gold"])
    assert english["gold"].count("[") == sum(t.startswith("B-") for t in english["gold_tags"])
    rows = list(csv.DictReader(files["csv"].open()))
    assert {"f1", "precision", "recall", "f1_delta"} <= set(rows[0])
    assert "Entity F1 per type" in files["md"].read_text()
    assert files["png"].stat().st_size > 0


def test_eval_refuses_models_of_different_tasks(cli, slot_teacher, make_teacher):
    intents = make_teacher("xlm-roberta")
    result = cli("eval", slot_teacher, intents, "--data", MINI, "--quiet")
    assert result.exit_code == 2 and "do not share a task" in result.output
    result = cli("eval", slot_teacher, "--data", MINI, "--task", "sequence-classification")
    assert result.exit_code == 2 and "drop --task" in result.output


def test_eval_lists_the_tags_a_model_lacks(cli, slot_teacher, tmp_path):
    data = tmp_path / "test.conll"
    data.write_text("# language = en\nAda\tB-PER\nwakes\tO\n", encoding="utf-8")
    result = cli("eval", slot_teacher, "--data", data, "--quiet")
    assert result.exit_code == 2 and "missing B-PER" in result.output


def test_export_verifies_tags_per_word(cli, slot_teacher, tmp_path):
    out = tmp_path / "onnx"
    result = cli(
        "export", slot_teacher, "--onnx", "--out", out, "--verify-data", MINI, "--no-latency",
        "--quiet", "--json", tmp_path / "export.json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "export.json").read_text())
    assert summary["head"] == "token-classification"
    check = summary["verification"]["fp32"]
    assert check["agreement"] == 1.0 and set(check["per_language"]) == {
        "ar-SA", "de-DE", "en-US", "ja-JP", "ru-RU"
    }  # fmt: skip
    # the export predicts the same tags as the PyTorch model, word by word, in kdcli eval
    report = tmp_path / "both.json"
    both = cli("eval", slot_teacher, out, "--data", MINI, "--quiet", "--json", report)
    assert both.exit_code == 0, both.output
    models = json.loads(report.read_text())["models"]
    assert models[1]["vs_first"]["average"]["f1_delta"] == pytest.approx(0.0, abs=1e-9)


def test_export_of_a_token_model_verifies_on_its_training_data_else_the_built_in_sentences(
    cli, slot_teacher, tmp_path
):
    result = cli(
        "export", slot_teacher, "--onnx", "--out", tmp_path / "o", "--no-latency", "--quiet",
        "--json", tmp_path / "e.json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    verification = json.loads((tmp_path / "e.json").read_text())["verification"]
    assert verification["source"] == f"{MINI} (from kdcli.json)"  # its slots, read per word
    assert verification["fp32"]["passed"] and verification["fp32"]["agreement"] == 1.0
    # without a record of its data, the built-in sentences, split into words
    unrecorded = tmp_path / "unrecorded"
    shutil.copytree(slot_teacher, unrecorded)
    (unrecorded / "kdcli.json").unlink()
    result = cli(
        "export", unrecorded, "--onnx", "--out", tmp_path / "b", "--no-latency", "--quiet",
        "--json", tmp_path / "b.json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    verification = json.loads((tmp_path / "b.json").read_text())["verification"]
    assert verification["source"] == "built-in sentences" and verification["fp32"]["passed"]


def test_training_dev_f1_equals_eval_on_the_dev_split(cli, slot_teacher, tmp_path):
    """One scorer and one batching path: the dev entity F1 finetune recorded is what kdcli eval
    measures for the saved model."""
    recorded = json.loads((slot_teacher / "kdcli.json").read_text())["metrics"]["dev"]
    result = cli(
        "eval", slot_teacher, "--data", MINI, "--split", "dev", "-q", "--json", tmp_path / "d.json"
    )
    assert result.exit_code == 0, result.output
    model = json.loads((tmp_path / "d.json").read_text())["models"][0]
    assert model["pooled"]["f1"] == pytest.approx(recorded["f1"], abs=1e-6)
    assert model["pooled"]["accuracy"] == pytest.approx(recorded["accuracy"], abs=1e-6)
    for language, scores in recorded["per_language"].items():
        assert model["languages"][language]["f1"] == pytest.approx(scores["f1"], abs=1e-6)


SLOT_TAGS = ("O", "B-date", "I-date", "B-time", "I-time", "B-place_name", "I-place_name")
SLOW_FAMILIES = ("bert", "electra", "distilbert")  # the same graph shape: as in test_export.py


@pytest.mark.parametrize(
    "family",
    [pytest.param(f, marks=pytest.mark.slow) if f in SLOW_FAMILIES else f for f in FAMILIES],
)
def test_every_family_exports_a_token_classifier_that_agrees_per_word(
    family, make_teacher, tmp_path
):
    """Export agreement per word on every family: fp32 within atol and the same tag on every
    word of the sample's test split; int8 on at least 99% of the words."""
    from kdcli.steps.export import ExportConfig, export

    model = make_teacher(family, head="token-classification", labels=SLOT_TAGS)
    data = tmp_path / "test.conll"
    data.write_text(
        "# language = en-US\nwake\tO\nme\tO\nat\tO\nseven\tB-time\nam\tI-time\n\n"
        "# language = de-DE\nwetter\tO\nin\tO\nberlin\tB-place_name\nmorgen\tB-date\n",
        encoding="utf-8",
    )
    result = export(
        ExportConfig(str(model), out=tmp_path / "onnx", quantize="int8", latency=False,
                     verify_data=str(data))
    )  # fmt: skip
    assert result.passed and result.head == "token-classification"
    assert result.verification.fp32.agreement == 1.0
    assert result.verification.int8 is not None and result.verification.int8.agreement >= 0.99
    assert set(result.verification.fp32.per_language) == {"en-US", "de-DE"}
    # one sentence per language and no dev split: nothing to hold out, and the record says so
    assert result.verification.selection.endswith("the same texts (too few to halve)")


@pytest.mark.parametrize("family", FAMILIES)
def test_kd_on_token_logits_for_every_family(family, make_teacher):
    """Per-word KD on every family: the KD term is the MSE of the student's word logits
    (read at each word's token) against the teacher's logits of the same words."""
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    from kdcli.data.batching import encode_words
    from kdcli.training.loop import EvalSet
    from kdcli.training.objective import KdSettings, classification_task
    from kdcli.training.teacher_cache import TeacherOutputs

    path = make_teacher(family, head="token-classification", labels=SLOT_TAGS[:3])
    model = AutoModelForTokenClassification.from_pretrained(path).eval()
    words = [["wake", "me", "up"], ["明", "日", "の", "朝"]]
    encoded = encode_words(AutoTokenizer.from_pretrained(path), words, 32)
    assert encoded.word_tokens is not None
    teacher = TeacherOutputs(torch.randn(7, 3), {}, None, torch.tensor([0, 3, 7]))
    dev = EvalSet(encoded, [], ["en", "ja"], [[0] * 3, [0] * 4], list(SLOT_TAGS[:3]))
    task = classification_task(
        model, encoded, [], dev, teacher=teacher, kd=KdSettings("mse", 1.0, 1.0, 0.0),
        word_labels=[[0, 1, 2], [1, 2, 2, 0]],
    )  # fmt: skip
    batch = task.make_batch([0, 1])
    _, parts = task.loss(model, batch)
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    pairs = [(row, w) for row in (0, 1) for w in range(len(words[row]))]
    pairs = [(row, w) for row, w in pairs if encoded.word_tokens[row][w] >= 0]
    student = torch.stack([logits[row, encoded.word_tokens[row][w]] for row, w in pairs])
    target = teacher.logits[[(0 if row == 0 else 3) + w for row, w in pairs]]
    expected = torch.nn.functional.mse_loss(student, target)
    assert float(parts["kd"]) == pytest.approx(float(expected), rel=1e-4)


def _token_report():
    """Two token classifiers on 60 sentences of two languages: in de-DE the second finds the
    date the first misses in 30 sentences; in fr-FR it differs in one sentence only."""
    from kdcli.data.splits import Examples
    from kdcli.evaluation.report import ModelRun, build_report

    words, tags, languages, first, second = [], [], [], [], []
    gold = ["B-time", "I-time", "O", "B-date"]
    missed = ["B-time", "I-time", "O", "O"]
    for language in ("de-DE", "fr-FR"):
        for i in range(60):
            words.append(["sieben", "uhr", "am", "montag"])
            tags.append(gold)
            languages.append(language)
            first.append(missed if i < 30 else gold)
            if language == "de-DE":
                second.append(gold)
            else:
                second.append(gold if i == 0 else first[-1])
    n = len(tags)
    examples = Examples(
        [str(i) for i in range(n)], [" ".join(w) for w in words], [""] * n, languages, "test",
        "x", words=words, tags=tags,
    )  # fmt: skip
    runs = [
        ModelRun("teacher", "t", "pytorch", first, 1, 1),
        ModelRun("student", "s", "pytorch", second, 1, 1),
    ]
    return build_report(examples, runs)


def test_token_reports_carry_the_f1_interval_and_the_paired_bootstrap_test(monkeypatch):
    from kdcli.cli import render
    from kdcli.evaluation.report_files import report_csv, report_json, report_markdown

    report = _token_report()
    teacher, student = report.models
    score = teacher.languages["de-DE"]  # 90 of 120 entities found, none wrong: F1 6/7
    assert score.first == pytest.approx(6 / 7)
    assert score.interval is not None and score.interval[0] < 6 / 7 < score.interval[1]
    assert student.changes is not None and student.average_change is not None
    assert student.changes["de-DE"].significant is True  # +14.3 points on 60 sentences
    assert student.changes["fr-FR"].significant is False  # one sentence
    assert student.average_change.p_value is not None
    assert report == _token_report()  # reproducible: the same seed, the same numbers

    data = json.loads(report_json(report))
    de = data["models"][0]["languages"]["de-DE"]
    assert de["f1_low"] < de["f1"] < de["f1_high"] and "accuracy_low" not in de
    vs_first = data["models"][1]["vs_first"]
    assert vs_first["languages"]["fr-FR"]["significant"] is False
    assert vs_first["languages"]["de-DE"]["p_value"] < 0.05
    assert vs_first["average"]["p_value"] == student.average_change.p_value

    rows = {(r["model"], r["language"]): r for r in csv.DictReader(io.StringIO(report_csv(report)))}
    assert float(rows[("teacher", "de-DE")]["f1_low"]) == pytest.approx(de["f1_low"])
    assert float(rows[("teacher", "de-DE")]["f1_high"]) == pytest.approx(de["f1_high"])
    assert rows[("teacher", "de-DE")]["accuracy_low"] == ""  # word accuracy has no interval
    assert rows[("student", "fr-FR")]["f1_delta_significant"] == "false"
    assert float(rows[("student", "de-DE")]["f1_delta_p"]) < 0.05
    assert rows[("student", "de-DE")]["accuracy_delta_p"] == ""
    assert rows[("student", "(average)")]["f1_delta_significant"] in ("true", "false")

    markdown = report_markdown(report)
    assert "Entity F1 with its 95% interval" in markdown and "paired bootstrap" in markdown
    low, high = (100 * bound for bound in score.interval)
    assert f"| de-DE | 60 | 85.7 [{low:.1f}–{high:.1f}] |" in markdown
    assert "(+0.5, 100.6%, n.s.)" in markdown  # fr-FR: one more date of 120

    monkeypatch.setattr(render.console, "width", 140)
    with render.console.capture() as captured:
        render.console.print(render.eval_table(report))
    text = " ".join(captured.get().split())
    assert "± the 95% interval" in text and "paired bootstrap over the same sentences" in text
    assert "+0.5~" in text and "+14.3~" not in text


def test_eval_of_token_models_shows_intervals_and_an_identical_model_is_no_change(
    cli, two_models, tmp_path: Path
):
    teacher, student = two_models
    report = tmp_path / "r.json"
    result = cli("eval", teacher, student, teacher, "--data", MINI, "--quiet", "--json", report)
    assert result.exit_code == 0, result.output
    assert "paired bootstrap" in " ".join(result.output.split())
    models = json.loads(report.read_text())["models"]
    for model in models:
        for scores in model["languages"].values():
            assert scores["f1_low"] <= scores["f1"] <= scores["f1_high"]
    for change in models[1]["vs_first"]["languages"].values():
        assert 0 < change["p_value"] <= 1 and isinstance(change["significant"], bool)
    same = models[2]["vs_first"]
    assert {c["p_value"] for c in same["languages"].values()} == {1.0}
    assert same["average"]["p_value"] == 1.0 and same["average"]["significant"] is False
