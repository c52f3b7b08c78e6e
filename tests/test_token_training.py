"""finetune and distill for token classification: tiny models, MASSIVE-layout slots, one thread."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from kdcli.data.batching import encode_words
from kdcli.training.objective import KdSettings, classification_task
from kdcli.training.teacher_cache import TeacherOutputs

MINI = Path(__file__).parent / "data" / "massive-mini"


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_finetune_makes_a_token_classifier(slot_teacher: Path):
    config = json.loads((slot_teacher / "config.json").read_text())
    assert config["architectures"] == ["XLMRobertaForTokenClassification"]
    labels = [config["id2label"][str(i)] for i in range(len(config["id2label"]))]
    assert labels[0] == "O" and "B-time" in labels and "I-time" in labels
    record = json.loads((slot_teacher / "kdcli.json").read_text())
    assert record["task"] == "token-classification"
    dev = record["metrics"]["dev"]
    assert 0.0 <= dev["f1"] <= 1.0 and set(dev["per_language"]) == {
        "ar-SA",
        "de-DE",
        "en-US",
        "ja-JP",
        "ru-RU",
    }
    rerun = (slot_teacher / "kdcli-config.yaml").read_text()
    assert "task: token-classification" in rerun
    card = (slot_teacher / "README.md").read_text()  # publishable: the task's tag and its score
    assert "- token-classification" in card and "- text-classification" not in card
    assert "Entity F1 per language on the dev split" in card and "| language | entity F1 |" in card
    f1 = dev["per_language"]["en-US"]["f1"]
    assert f"| en-US | {100 * f1:.1f} |" in card


def test_the_task_follows_a_token_model_head(cli, slot_teacher: Path, tmp_path: Path):
    out = tmp_path / "again"
    result = cli(
        "finetune", slot_teacher, "--data", MINI, "--out", out, "--max-steps", "1", "--quiet"
    )
    assert result.exit_code == 0, result.output
    assert json.loads((out / "kdcli.json").read_text())["task"] == "token-classification"
    wrong = cli(
        "finetune", slot_teacher, "--data", MINI, "--out", tmp_path / "x",
        "--task", "sequence-classification",
    )  # fmt: skip
    assert wrong.exit_code == 2 and "token-classification model but --task" in wrong.output


def test_distill_to_a_student_with_another_tokenizer(cli, slot_teacher, make_teacher, tmp_path):
    """Word-level KD: a BERT (WordPiece) student learns from an XLM-R (Unigram) teacher."""
    student = make_teacher("bert", head="encoder")
    out = tmp_path / "student-kd"
    args = ["distill", "--teacher", slot_teacher, "--student", student, "--data", MINI]
    args += ["--out", out, "--cache-dir", tmp_path / "cache", "--epochs", "1", "--quiet"]
    result = cli(*args, "--json", tmp_path / "kd.json")
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "kd.json").read_text())
    assert summary["teacher_cache"] == "miss" and summary["training"]["dev_f1"] is not None
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == ["BertForTokenClassification"]
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    kd = [m["kd"] for m in metrics if m["event"] == "train"]
    assert kd and all(v == v and v > 0 for v in kd)  # finite and not empty


def test_hidden_state_loss_and_teacher_cache(cli, slot_teacher, tmp_path):
    student = tmp_path / "student"
    shrunk = cli("shrink", slot_teacher, "--num-layers", "2", "--out", student, "--quiet")
    assert shrunk.exit_code == 0, shrunk.output
    runs = []
    for name in ("a", "b"):
        args = ["distill", "--student", student, "--data", MINI, "--out", tmp_path / name]
        args += ["--cache-dir", tmp_path / "cache", "--max-steps", "2", "--quiet"]
        args += ["--hidden-loss-weight", "1.0", "--json", tmp_path / f"{name}.json"]
        result = cli(*args)
        assert result.exit_code == 0, result.output
        runs.append(json.loads((tmp_path / f"{name}.json").read_text()))
    assert [r["teacher_cache"] for r in runs] == ["miss", "hit"]
    assert runs[0]["layer_map"] == [[0, 0], [1, 1]] or runs[0]["layer_map"]


def test_distill_refuses_tags_the_teacher_does_not_know(cli, slot_teacher, tmp_path):
    data = tmp_path / "ner"
    data.mkdir()
    for split in ("train", "dev", "test"):
        (data / f"{split}.conll").write_text("Ada\tB-PER\nwakes\tO\n", encoding="utf-8")
    result = cli(
        "distill", "--teacher", slot_teacher, "--student", slot_teacher, "--data", data,
        "--out", tmp_path / "out", "--quiet",
    )  # fmt: skip
    assert result.exit_code == 2
    assert "tags do not cover the data's: missing B-PER" in result.output
    assert not (tmp_path / "out").exists()


def test_kd_on_token_logits_compares_the_same_words(make_teacher):
    """The KD term is the MSE between the student's and the teacher's logits of each word."""
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    path = make_teacher("bert", head="token-classification", labels=("O", "B-x", "I-x"))
    model = AutoModelForTokenClassification.from_pretrained(path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    words = [["wake", "me", "up"], ["play", "some", "jazz", "music"]]
    encoded = encode_words(tokenizer, words, 32)
    teacher_logits = torch.randn(7, 3)
    teacher_logits[4] = float("nan")  # a word the teacher had no token for: left out
    teacher = TeacherOutputs(teacher_logits, {}, None, torch.tensor([0, 3, 7]))
    from kdcli.training.loop import EvalSet

    dev = EvalSet(encoded, [], ["en", "en"], [[0, 0, 0], [0, 0, 0, 0]], ["O", "B-x", "I-x"])
    task = classification_task(
        model,
        encoded,
        [],
        dev,
        teacher=teacher,
        kd=KdSettings("mse", 1.0, 1.0, 0.0),
        word_labels=[[0, 1, 2], [0, 0, 1, 2]],
    )
    batch = task.make_batch([0, 1])
    model.eval()
    total, parts = task.loss(model, batch)
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    student = torch.stack(
        [logits[row, encoded.word_tokens[row][w]] for row, w in [(0, 0), (0, 1), (0, 2),
                                                                   (1, 0), (1, 2), (1, 3)]]
    )  # fmt: skip
    expected = torch.nn.functional.mse_loss(student, teacher_logits[[0, 1, 2, 3, 5, 6]]).detach()
    assert float(parts["kd"]) == pytest.approx(float(expected), rel=1e-5)
    assert float(total.detach()) == pytest.approx(float(expected), rel=1e-5)  # alpha 1: KD only


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        (
            "en-US.jsonl",
            {"annot_utt": "wake me at [time : five", "utt": "wake me at five"},
            r"en-US.jsonl, line 1: annot_utt does not parse: unmatched '\['",
        ),
        ("train.jsonl", {"tokens": ["a", "b"], "tags": ["O"]}, "1 tags for 2 words"),
        ("train.jsonl", {"tokens": ["a"], "tags": ["PER"]}, "tag 'PER' is not in a known scheme"),
    ],
)
def test_bad_token_data_is_one_line_and_exit_2(cli, make_teacher, tmp_path, name, content, message):
    folder = tmp_path / "data"
    folder.mkdir()
    record = {"id": "1", "locale": "en-US", "partition": "train", "intent": "alarm_set", **content}
    for split in ("train", "dev", "test") if name == "train.jsonl" else ("x",):
        target = folder / (name if split == "x" else f"{split}.jsonl")
        target.write_text(json.dumps(record) + "\n", encoding="utf-8")
    encoder = make_teacher("bert", head="encoder")
    out = tmp_path / "out"
    args = ["finetune", encoder, "--data", folder, "--out", out, "--task", "token-classification"]
    result = cli(*args)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and re.search(message, lines[0]), result.output
    assert not out.exists() and not (tmp_path / "out.checkpoints").exists()
