"""kdcli distill: logit MSE/KL with cross-entropy, hidden states through the recorded layer map,
the teacher-output cache, bare-encoder and other-tokenizer students, and every bad input."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import transformers
from conftest import leftovers
from safetensors.torch import load_file
from training_helpers import (
    MINI,
    digest,
    make_encoder,
    one_thread,
    shared_models,
    train_config,
    write_jsonl,
)

from kdcli.core.errors import KdcliError
from kdcli.data.batching import Encoded, encode
from kdcli.data.splits import DataConfig, load_split
from kdcli.steps.distill import DistillConfig, distill, layer_pairs, recorded_teacher
from kdcli.steps.finetune import FinetuneConfig, finetune
from kdcli.steps.shrink import ShrinkConfig, shrink
from kdcli.training.teacher_cache import TeacherOutputs

FAST_FLAGS = ["--lr", "3e-3", "--weight-decay", "0", "--batch-size", "16", "-q"]


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    with one_thread():
        yield


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return shared_models(tmp_path_factory)


def _config(student: Path, out: Path, cache: Path, **options) -> DistillConfig:
    train = options.pop("train", None) or train_config(max_steps=3)
    return DistillConfig(str(student), str(MINI), out, cache_dir=cache, train=train, **options)


def test_cli_uses_the_teacher_named_in_the_students_kdcli_json(models, cli, tmp_path):
    out = tmp_path / "kd"
    result = cli(
        "distill", "--student", models.student, "--data", MINI, "--out", out, "--epochs", "1",
        "--cache-dir", tmp_path / "cache", *FAST_FLAGS, "--json", tmp_path / "r.json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"teacher {models.teacher} taken from" in result.output
    assert f"next: kdcli eval {models.teacher} {out} --data {MINI} --split test" in result.output
    record = json.loads((out / "kdcli.json").read_text())
    assert record["stage"] == "distill"
    teacher = models.teacher.resolve()  # recorded by name, relative to the output, absolute
    assert record["teacher"]["model"] == teacher.name
    assert record["teacher"]["path"] == os.path.relpath(teacher, out.resolve())
    assert record["teacher"]["resolved"] == str(teacher)
    assert record["distillation"] == {
        "kd_loss": "mse", "alpha": 0.5, "temperature": None, "hidden_loss_weight": 0.0,
        "layer_map": None,
    }  # fmt: skip
    assert [h["stage"] for h in record["history"]] == ["shrink", "finetune"]
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert {"kd", "ce", "loss"} <= set(lines[0])
    summary = json.loads((tmp_path / "r.json").read_text())
    assert summary["teacher_cache"] == "miss"
    model = transformers.AutoModelForSequenceClassification.from_pretrained(out)
    assert model.config.num_hidden_layers == 2
    assert not any("projection" in k for k in load_file(out / "model.safetensors"))
    assert leftovers(tmp_path) == []


def test_the_teacher_cache_is_reused_across_runs_and_is_exact(models, tmp_path):
    cache = tmp_path / "cache"
    first = distill(_config(models.student, tmp_path / "a", cache))
    files = list((cache / "teacher-outputs").glob("*.safetensors"))
    assert first.teacher_cache == "miss" and len(files) == 1
    second = distill(_config(models.student, tmp_path / "b", cache))
    assert second.teacher_cache == "hit"
    assert digest(tmp_path / "a") == digest(tmp_path / "b")  # same result from the cache
    # the cached logits are the teacher's own, example by example, in eval mode
    cached = load_file(files[0])["logits"]
    teacher = transformers.AutoModelForSequenceClassification.from_pretrained(models.teacher)
    tokenizer = transformers.AutoTokenizer.from_pretrained(models.teacher)
    train = load_split(DataConfig(str(MINI)), "train")
    teacher.train()  # dropout on: a cache computed like this would not match
    with torch.no_grad():
        noisy = teacher(**tokenizer(train.texts[:4], return_tensors="pt", padding=True)).logits
    teacher.eval()
    with torch.no_grad():
        for i in (0, 7, 199):
            exact = teacher(**tokenizer([train.texts[i]], return_tensors="pt")).logits[0]
            torch.testing.assert_close(cached[i], exact, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(noisy, cached[:4], atol=1e-5)
    # a different --max-length means different teacher inputs: a new cache entry
    third = distill(
        _config(
            models.student, tmp_path / "c", cache, train=train_config(max_steps=3, max_length=8)
        )
    )
    assert third.teacher_cache == "miss"
    assert len(list((cache / "teacher-outputs").glob("*.safetensors"))) == 2


def test_kdcli_cache_environment_variable_is_the_default_cache(models, tmp_path, monkeypatch):
    monkeypatch.setenv("KDCLI_CACHE", str(tmp_path / "env-cache"))
    result = distill(
        DistillConfig(
            str(models.student), str(MINI), tmp_path / "o", train=train_config(max_steps=1)
        )
    )
    assert result.teacher_cache == "miss"
    assert list((tmp_path / "env-cache" / "teacher-outputs").glob("*.safetensors"))


def test_no_kd_is_exactly_finetuning_the_student(models, tmp_path):
    """One loop: distill --no-kd and finetune of the same student give the same weights."""
    train = train_config(max_steps=4)
    distill(
        DistillConfig(str(models.student), str(MINI), tmp_path / "nokd", no_kd=True, train=train)
    )
    finetune(FinetuneConfig(str(models.student), str(MINI), tmp_path / "ft", train))
    a = load_file(tmp_path / "nokd" / "model.safetensors")
    b = load_file(tmp_path / "ft" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    record = json.loads((tmp_path / "nokd" / "kdcli.json").read_text())
    assert record["distillation"]["kd_loss"] is None and record["teacher"] is None
    assert not (tmp_path / "nokd" / "cache").exists()


def test_kl_with_temperature_and_alpha(models, tmp_path):
    result = distill(
        _config(models.student, tmp_path / "o", tmp_path / "c", kd_loss="kl", alpha=1.0)
    )
    assert (result.kd_loss, result.temperature, result.alpha) == ("kl", 2.0, 1.0)
    mse = distill(_config(models.student, tmp_path / "m", tmp_path / "c", alpha=1.0))
    a = load_file(tmp_path / "o" / "model.safetensors")
    b = load_file(tmp_path / "m" / "model.safetensors")
    assert not all(torch.equal(a[k], b[k]) for k in a)  # a different loss trains differently
    assert mse.teacher_cache == "hit"  # the same teacher outputs serve both losses


def test_hidden_state_loss_follows_the_copied_layers_with_a_projection(models, tmp_path):
    narrow = tmp_path / "narrow"
    shrink(ShrinkConfig(str(models.teacher), out=narrow, layers=[1, 3], hidden_size=32))
    result = distill(_config(narrow, tmp_path / "o", tmp_path / "c", hidden_loss_weight=1.0))
    assert result.layer_map == [[0, 1], [1, 3]]  # student layer i -> teacher layer kept[i]
    lines = [json.loads(x) for x in (tmp_path / "o" / "metrics.jsonl").read_text().splitlines()]
    assert lines[0]["hidden"] > 0
    saved = load_file(tmp_path / "o" / "model.safetensors")
    assert not any(k.startswith(("projection", "classifier.classifier")) for k in saved)
    assert transformers.AutoModelForSequenceClassification.from_pretrained(tmp_path / "o")


def test_layer_maps_fall_back_to_uniform_with_a_note():
    record = {"stage": "shrink", "layers": {"teacher": 6, "kept": [0, 2, 5]}}
    assert layer_pairs(record, 3, 6, "s") == ([(0, 0), (1, 2), (2, 5)], None)
    pairs, note = layer_pairs(None, 3, 6, "s")
    assert pairs == [(0, 1), (1, 3), (2, 5)] and "uniform map" in note
    assert layer_pairs(record, 3, 4, "s")[0] == [(0, 0), (1, 2), (2, 3)]  # kept 5 > teacher's


def test_layer_maps_compose_through_several_shrinks():
    from kdcli.steps.distill import TeacherIdentity

    record = {
        "stage": "shrink",
        "layers": {"kept": [0, 2]},
        "source": {"sha256": "s1"},
        "history": [
            {"stage": "shrink", "layers": {"kept": [0, 3, 6, 9]}, "source": {"sha256": "t"}},
            {"stage": "finetune", "source": {"sha256": "encoder"}},
        ],
    }
    pairs, note = layer_pairs(record, 2, 12, "s", TeacherIdentity(frozenset({"t"}), None))
    assert pairs == [(0, 0), (1, 6)] and "shrunk 2 times" in note  # not [(0, 0), (1, 2)]
    assert layer_pairs(record, 2, 4, "s", TeacherIdentity(frozenset({"s1"}), None)) == (
        [(0, 0), (1, 2)],
        None,
    )
    pairs, note = layer_pairs(record, 2, 12, "s", TeacherIdentity(frozenset({"other"}), None))
    assert pairs == [(0, 5), (1, 11)] and "no layer map for this teacher" in note


def test_a_student_shrunk_twice_is_distilled_with_composed_layers(models, tmp_path):
    once, twice = tmp_path / "once", tmp_path / "twice"
    shrink(ShrinkConfig(str(models.teacher), out=once, layers=[1, 3]))
    shrink(ShrinkConfig(str(once), out=twice, layers=[1]))
    with one_thread():
        config = _config(twice, tmp_path / "o", tmp_path / "c", hidden_loss_weight=1.0)
        result = distill(replace(config, teacher=str(models.teacher)))
    assert result.layer_map == [[0, 3]]  # student layer 0 = once's layer 1 = teacher's layer 3
    assert any("shrunk 2 times" in note for note in result.notes)


def test_recorded_teacher_prefers_the_newest_stage():
    record = {
        "stage": "distill",
        "teacher": {"model": "t2"},
        "history": [{"stage": "shrink", "source": {"model": "t1"}}],
    }
    assert recorded_teacher(record, Path()) == "t2"
    assert recorded_teacher(record["history"][0], Path()) == "t1"
    assert recorded_teacher(None, Path()) is None


def test_a_bare_encoder_student_gets_the_teachers_labels(models, tmp_path):
    encoder = make_encoder(tmp_path / "enc", layers=1)
    result = distill(
        DistillConfig(str(encoder), str(MINI), tmp_path / "o", teacher=str(models.teacher),
                      cache_dir=tmp_path / "c", train=train_config(max_steps=2))
    )  # fmt: skip
    teacher_config = json.loads((models.teacher / "config.json").read_text())
    config = json.loads((tmp_path / "o" / "config.json").read_text())
    assert config["id2label"] == teacher_config["id2label"]
    assert config["architectures"] == ["XLMRobertaForSequenceClassification"]
    assert result.labels == [teacher_config["id2label"][str(i)] for i in range(5)]


def test_a_student_with_another_tokenizer_reads_its_own_tokens(models, make_teacher, tmp_path):
    bert = make_teacher("bert", head="encoder")  # WordPiece, another vocabulary
    result = distill(
        DistillConfig(str(bert), str(MINI), tmp_path / "o", teacher=str(models.teacher),
                      cache_dir=tmp_path / "c", train=train_config(max_steps=2))
    )  # fmt: skip
    assert result.training.steps == 2
    assert (tmp_path / "o" / "tokenizer.json").read_bytes() == (
        bert / "tokenizer.json"
    ).read_bytes()
    with pytest.raises(KdcliError, match="hidden_loss_weight needs the teacher and student"):
        distill(
            DistillConfig(str(bert), str(MINI), tmp_path / "h", teacher=str(models.teacher),
                          cache_dir=tmp_path / "c", hidden_loss_weight=1.0,
                          train=train_config(max_steps=2))
        )  # fmt: skip
    assert not (tmp_path / "h").exists() and not (tmp_path / "h.checkpoints").exists()


def test_teacher_logits_follow_the_students_label_order():
    from kdcli.training.loop import EvalSet
    from kdcli.training.objective import classification_task

    encoded = Encoded([[0, 5, 2], [0, 6, 7, 2]], pad_id=1)
    teacher = TeacherOutputs(torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]), {}, None)
    student = torch.nn.Linear(1, 1)  # never called: only the batch is checked
    dev = EvalSet(encoded, [0, 1], ["en-US", "en-US"])
    task = classification_task(student, encoded, [0, 1], dev, teacher, teacher_order=[2, 0, 1])
    batch = task.make_batch([1, 0])
    assert batch["teacher_logits"].tolist() == [[6.0, 4.0, 5.0], [3.0, 1.0, 2.0]]
    assert batch["labels"].tolist() == [1, 0]
    assert batch["input_ids"].tolist() == [[0, 6, 7, 2], [0, 5, 2, 1]]


def test_cached_hidden_states_are_real_tokens_only(models):
    from kdcli.training import teacher_cache

    teacher = transformers.AutoModelForSequenceClassification.from_pretrained(models.teacher)
    tokenizer = transformers.AutoTokenizer.from_pretrained(models.teacher)
    encoded = encode(tokenizer, ["wake me up", "what is the weather like in paris today"], 32)
    outputs = teacher_cache.compute(teacher, encoded, [1], 8, torch.device("cpu"), False)
    assert outputs.offsets.tolist() == [0, encoded.lengths()[0], sum(encoded.lengths())]
    padded = outputs.hidden_batch(1, [0, 1], encoded.lengths()[1])
    assert padded.shape == (2, encoded.lengths()[1], 64)
    assert padded[0, encoded.lengths()[0] :].abs().sum() == 0  # padding stays zero
    with torch.no_grad():
        alone = teacher(**tokenizer(["wake me up"], return_tensors="pt"), output_hidden_states=True)
    torch.testing.assert_close(
        padded[0, : encoded.lengths()[0]], alone.hidden_states[2][0], atol=2e-3, rtol=2e-3
    )  # float16 storage


# --- bad input ---------------------------------------------------------------------------------


def _labelled(tmp_path: Path, labels: list[str]) -> Path:
    folder = tmp_path / "data"
    folder.mkdir(exist_ok=True)
    rows = [
        {"text": f"text {i}", "label": label, "language": "en-US"} for i, label in enumerate(labels)
    ]
    write_jsonl(folder / "train.jsonl", rows)
    write_jsonl(folder / "dev.jsonl", rows)
    return folder


def test_label_sets_must_agree_by_name(models, make_teacher, tmp_path):
    other = make_teacher("xlm-roberta")  # a classifier for alarm_set, play_music, weather_query
    with pytest.raises(KdcliError, match=r"labels of teacher .* differ \(only the teacher has "
                       r"datetime_query, takeaway_order\)"):  # fmt: skip
        distill(_config(other, tmp_path / "o", tmp_path / "c", teacher=str(models.teacher)))
    assert list(tmp_path.iterdir()) == []


def test_labels_the_teacher_does_not_know(models, tmp_path):
    data = _labelled(tmp_path, ["alarm_set", "book_flight", "play_music"])
    with pytest.raises(KdcliError, match=r"does not know the label\(s\) book_flight"):
        config = DistillConfig(
            str(models.student), str(data), tmp_path / "o", cache_dir=tmp_path / "c"
        )
        distill(config)
    assert not (tmp_path / "o").exists() and not (tmp_path / "o.checkpoints").exists()


def test_a_teacher_without_a_classification_head_is_refused(models, tmp_path):
    with pytest.raises(KdcliError, match="has no classification head"):
        distill(
            _config(models.student, tmp_path / "o", tmp_path / "c", teacher=str(models.encoder))
        )


def test_missing_and_vanished_teachers(models, tmp_path):
    encoder = make_encoder(tmp_path / "enc", layers=1)
    with pytest.raises(KdcliError, match="teacher is missing"):
        distill(_config(encoder, tmp_path / "o", tmp_path / "c"))
    moved = tmp_path / "moved-student"
    shutil.copytree(models.student, moved)
    record = json.loads((moved / "kdcli.json").read_text())
    record["source"]["path"] = "../deleted-teacher"
    record["source"]["resolved"] = str(tmp_path / "deleted-teacher")
    (moved / "kdcli.json").write_text(json.dumps(record))
    with pytest.raises(KdcliError, match="deleted-teacher, does not exist: pass teacher"):
        distill(_config(moved, tmp_path / "o", tmp_path / "c"))
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--no-kd", "--alpha", "0.3"], "--no-kd trains without the teacher, so --alpha"),
        (["--temperature", "3"], "--temperature 3.0 only applies to --kd-loss kl"),
        (["--kd-loss", "kl", "--temperature", "0"], "--temperature 0.0 must be greater than zero"),
        (["--alpha", "1.5"], "--alpha 1.5 must be between 0 and 1"),
        (["--kd-loss", "cosine"], "--kd-loss 'cosine' is unknown: choose one of mse, kl"),
        (["--hidden-loss-weight", "-1"], "--hidden-loss-weight -1.0 must be zero or more"),
        (["--batch-size", "0"], "--batch-size 0"),
        (["--resume"], "--resume: no checkpoint"),
    ],
)
def test_bad_options_are_one_line_exit_2_and_nothing_written(models, cli, tmp_path, args, message):
    result = cli(
        "distill", "--student", models.student, "--data", MINI, "--out", tmp_path / "o", *args,
        "--cache-dir", tmp_path / "c", "-q",
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_an_unwritable_cache_dir_is_refused(models, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(KdcliError, match=r"cache_dir .* cannot be created"):
        distill(_config(models.student, tmp_path / "o", blocker / "cache"))
    assert not (tmp_path / "o").exists()


def test_resume_with_another_teacher_configuration_is_refused(models, tmp_path):
    out = tmp_path / "o"

    def crash(event):
        if event.task == "train" and event.done == 3:
            raise RuntimeError("crash")

    train = train_config(epochs=1, save_steps=2)
    with pytest.raises(RuntimeError):
        distill(_config(models.student, out, tmp_path / "c", train=train), progress=crash)
    with pytest.raises(KdcliError, match=r"different configuration \(options\.alpha 0\.5 -> 0\.9"):
        distill(_config(models.student, out, tmp_path / "c", train=train, alpha=0.9, resume=True))
    resumed = distill(_config(models.student, out, tmp_path / "c", train=train, resume=True))
    assert resumed.training.resumed_from == 2 and resumed.teacher_cache == "hit"


@pytest.fixture(scope="module")
def three_intents(tmp_path_factory) -> Path:
    """The fixture's rows of the three intents the factory classifiers know."""
    folder = tmp_path_factory.mktemp("three-intents")
    keep = {"alarm_set", "play_music", "weather_query"}
    rows = [
        json.loads(line)
        for f in sorted((MINI / "data").glob("*.jsonl"))
        for line in f.read_text("utf-8").splitlines()
    ]
    write_jsonl(folder / "data.jsonl", [r for r in rows if r["intent"] in keep])
    return folder / "data.jsonl"


@pytest.mark.parametrize("family", ["bert", "distilbert", "deberta-v2", "electra", "modernbert"])
def test_every_family_distils_with_hidden_states(family, make_teacher, three_intents, tmp_path):
    teacher = make_teacher(family)
    student = tmp_path / "student"
    shrink(ShrinkConfig(str(teacher), out=student, layers=[1, 3]))
    result = distill(
        DistillConfig(str(student), str(three_intents), tmp_path / "o", cache_dir=tmp_path / "c",
                      hidden_loss_weight=1.0, train=train_config(max_steps=2))
    )  # fmt: skip
    assert result.layer_map == [[0, 1], [1, 3]]
    lines = [json.loads(x) for x in (tmp_path / "o" / "metrics.jsonl").read_text().splitlines()]
    assert lines[0]["hidden"] > 0 and lines[0]["kd"] >= 0
    assert transformers.AutoModelForSequenceClassification.from_pretrained(tmp_path / "o")


@pytest.mark.parametrize("extra", [[], ["--no-kd"], ["--kd-loss", "kl"]])
def test_the_saved_config_reruns_the_same_distillation(models, cli, tmp_path, extra):
    common = ["--max-steps", "2", "--cache-dir", tmp_path / "c", *FAST_FLAGS, *extra]
    first = cli(
        "distill", "--student", models.student, "--data", MINI, "--out", tmp_path / "a", *common
    )
    assert first.exit_code == 0, first.output
    saved = tmp_path / "a" / "kdcli-config.yaml"
    again = cli(
        "distill", "--config", saved, "--out", tmp_path / "b", "--cache-dir", tmp_path / "c"
    )
    assert again.exit_code == 0, again.output
    a, b = digest(tmp_path / "a"), digest(tmp_path / "b")
    del a["kdcli.json"], b["kdcli.json"]
    assert a == b  # the same weights, logs and config
    records = [json.loads((tmp_path / n / "kdcli.json").read_text()) for n in ("a", "b")]
    for record in records:  # the first run's notes say where its teacher came from
        record["notes"] = [n for n in record["notes"] if "taken from" not in n]
    assert records[0] == records[1]
