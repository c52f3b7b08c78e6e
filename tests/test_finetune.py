"""kdcli finetune: a classifier head sized from the data's label names, trained by the one loop."""

from __future__ import annotations

import json

import pytest
import transformers
from conftest import leftovers
from training_helpers import MINI, digest, one_thread, shared_models, train_config, write_jsonl

from kdcli.core.errors import KdcliError
from kdcli.data.splits import DataConfig
from kdcli.steps.finetune import FinetuneConfig, finetune

LABELS = ["alarm_set", "datetime_query", "play_music", "takeaway_order", "weather_query"]
FAST_FLAGS = ["--lr", "3e-3", "--weight-decay", "0", "--batch-size", "16", "-q"]


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    with one_thread():
        yield


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return shared_models(tmp_path_factory)


def test_the_teacher_learns_well_above_chance(models):
    # 5 balanced labels: chance is 0.2; the tiny encoder is random, so this is all fine-tuning
    assert models.teacher_accuracy >= 0.5


def test_cli_writes_a_standard_classifier_with_provenance_and_logs(models, cli, tmp_path):
    out = tmp_path / "ft"
    result = cli(
        "finetune", models.encoder, "--data", MINI, "--out", out, "--max-steps", "4",
        *FAST_FLAGS, "--json", tmp_path / "r.json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"next: kdcli shrink {out} --num-layers 2" in result.output
    names = {p.name for p in out.iterdir()}
    assert {
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "kdcli.json",
        "README.md",
    } <= names
    assert {"metrics.jsonl", "kdcli-config.yaml"} <= names
    model = transformers.AutoModelForSequenceClassification.from_pretrained(out)
    tokenizer = transformers.AutoTokenizer.from_pretrained(out)
    assert model.config.id2label == dict(enumerate(LABELS))  # sorted names -> ids
    assert model(**tokenizer(["wake me up"], return_tensors="pt")).logits.shape == (1, 5)
    record = json.loads((out / "kdcli.json").read_text())
    assert record["stage"] == "finetune"
    assert record["labels"] == LABELS
    assert record["settings"]["lr"] == 0.003 and record["settings"]["max_steps"] == 4
    assert record["data"]["train_examples"] == 200 and record["data"]["dev_examples"] == 50
    assert len(record["data"]["train_fingerprint"]) == 64
    assert set(record["metrics"]["dev"]["per_language"]) == {
        "ar-SA", "de-DE", "en-US", "ja-JP", "ru-RU",
    }  # fmt: skip
    assert record["training"]["steps"] == 4
    assert len(record["source"]["sha256"]) == 64
    summary = json.loads((tmp_path / "r.json").read_text())
    assert summary["training"]["dev_accuracy"] == record["metrics"]["dev"]["accuracy"]
    assert (out / "README.md").read_text().startswith("---")
    assert leftovers(tmp_path) == []


def test_same_seed_same_bytes_and_the_saved_config_reruns_the_run(models, cli, tmp_path):
    first = tmp_path / "a"
    common = ["--max-steps", "3", *FAST_FLAGS]
    assert cli("finetune", models.encoder, "--data", MINI, "--out", first, *common).exit_code == 0
    again = cli("finetune", "--config", first / "kdcli-config.yaml", "--out", tmp_path / "b")
    assert again.exit_code == 0, again.output
    assert digest(first) == digest(tmp_path / "b")
    other = cli(
        "finetune", models.encoder, "--data", MINI, "--out", tmp_path / "c", *common, "--seed", "1"
    )
    assert other.exit_code == 0
    assert digest(first)["model.safetensors"] != digest(tmp_path / "c")["model.safetensors"]
    mixed = cli(
        "finetune", models.encoder, "--data", MINI, "--out", tmp_path / "d", *common,
        "--batching", "random",
    )  # fmt: skip
    assert mixed.exit_code == 0, mixed.output
    assert json.loads((tmp_path / "d" / "kdcli.json").read_text())["settings"]["batching"] == (
        "random"
    )
    assert digest(first)["model.safetensors"] != digest(tmp_path / "d")["model.safetensors"]


def test_zero_shot_and_low_resource_selection(models, tmp_path):
    data = DataConfig(str(MINI), train_languages=["en-US"], samples_per_language=5)
    result = finetune(
        FinetuneConfig(str(models.encoder), data, tmp_path / "o", train_config(max_steps=1))
    )
    assert result.training.train_examples == 5
    assert result.training.dev_examples == 50  # evaluated on every language
    record = json.loads((tmp_path / "o" / "kdcli.json").read_text())
    assert record["data"]["train_languages"] == ["en-US"]
    assert record["settings"]["train_languages"] == ["en-US"]


def test_a_classifier_for_other_labels_gets_a_fresh_head(models, tmp_path):
    rows = [
        {"text": t, "label": lab, "language": "en-US"}
        for t, lab in [("yes please", "yes"), ("no thanks", "no"), ("sure", "yes"), ("never", "no")]
    ]
    folder = tmp_path / "yesno"
    folder.mkdir()
    write_jsonl(folder / "train.jsonl", rows)
    write_jsonl(folder / "dev.jsonl", rows[:2])
    result = finetune(
        FinetuneConfig(str(models.teacher), str(folder), tmp_path / "o", train_config(max_steps=1))
    )
    assert result.labels == ["no", "yes"]
    assert any("classification head" in note and "replaced" in note for note in result.notes)
    config = json.loads((tmp_path / "o" / "config.json").read_text())
    assert config["id2label"] == {"0": "no", "1": "yes"}
    # a classifier that already knows the data's labels keeps its head: no note
    same = finetune(
        FinetuneConfig(str(models.teacher), str(MINI), tmp_path / "s", train_config(max_steps=1))
    )
    assert not any("head" in note for note in same.notes) and same.labels == LABELS


def test_the_python_api_accepts_a_data_name(models, tmp_path):
    import kdcli

    result = kdcli.finetune(
        kdcli.FinetuneConfig(
            str(models.encoder), str(MINI), tmp_path / "o", kdcli.TrainConfig(max_steps=1)
        )
    )
    assert result.out == tmp_path / "o" and result.training.steps == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--data", "nosuchdata"], "'nosuchdata' is not a known dataset"),
        (["--data", "./missing-folder"], "no such file or folder"),
        (["--data", str(MINI), "--languages", "xx-XX"], "xx-XX not in --data"),
        (["--data", str(MINI), "--train-languages", "fr-FR"], "fr-FR not in --data"),
        (["--data", str(MINI), "--samples-per-language", "0"], "--samples-per-language 0"),
        (["--data", str(MINI), "--lr", "0"], "--lr 0.0 must be greater than zero"),
        (["--data", str(MINI), "--epochs", "0"], "--epochs 0 must be at least 1"),
        (["--data", str(MINI), "--batch-size", "-2"], "--batch-size -2"),
        (["--data", str(MINI), "--warmup-ratio", "1.5"], "--warmup-ratio 1.5"),
        (["--data", str(MINI), "--report-to", "wandb"], "--report-to 'wandb' is unknown"),
        (["--data", str(MINI), "--batching", "sorted"], "--batching 'sorted' is unknown"),
        (["--data", str(MINI), "--resume"], "--resume: no checkpoint"),
        (["--data", str(MINI), "--epochs", "two"], "--epochs': Input should be a valid integer"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_nothing_written(models, cli, tmp_path, args, message):
    result = cli("finetune", models.encoder, "--out", tmp_path / "o", *args, "-q")
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_missing_model_and_token_classifiers_as_sequence_classifiers_are_refused(
    make_teacher, cli, tmp_path
):
    result = cli("finetune", tmp_path / "nope", "--data", MINI, "--out", tmp_path / "o")
    assert result.exit_code == 2 and "does not exist" in result.output
    tagger = make_teacher("bert", head="token-classification")
    data = DataConfig(str(MINI), task="sequence-classification")
    with pytest.raises(KdcliError, match="token-classification model but task"):
        finetune(FinetuneConfig(str(tagger), data, tmp_path / "o", train_config(max_steps=1)))
    assert not (tmp_path / "o").exists() and not (tmp_path / "o.checkpoints").exists()


def test_labels_are_ids_by_name_whatever_the_order_of_the_data(models, tmp_path):
    """Two files with the same examples in a different order give the same label ids."""
    rows = [json.loads(x) for x in (MINI / "data" / "en-US.jsonl").read_text().splitlines()]
    for name, ordered in (("fwd", rows), ("rev", rows[::-1])):
        folder = tmp_path / name
        folder.mkdir()
        write_jsonl(folder / "data.jsonl", ordered)
    results = [
        finetune(FinetuneConfig(str(models.encoder), str(tmp_path / n / "data.jsonl"),
                                tmp_path / f"o-{n}", train_config(max_steps=1)))
        for n in ("fwd", "rev")
    ]  # fmt: skip
    assert results[0].labels == results[1].labels == LABELS


@pytest.mark.parametrize("family", ["bert", "distilbert", "deberta-v2", "electra", "modernbert"])
def test_every_family_fine_tunes_from_a_bare_encoder(family, make_teacher, tmp_path):
    encoder = make_teacher(family, head="encoder")
    result = finetune(
        FinetuneConfig(str(encoder), str(MINI), tmp_path / "o", train_config(max_steps=2))
    )
    assert result.labels == LABELS and result.training.steps == 2
    model = transformers.AutoModelForSequenceClassification.from_pretrained(tmp_path / "o")
    assert model.config.num_labels == 5


def test_a_broken_data_line_names_the_file_and_line(models, cli, tmp_path):
    data = tmp_path / "data" / "data"
    data.mkdir(parents=True)
    good = (MINI / "data" / "en-US.jsonl").read_text("utf-8").splitlines()
    (data / "en-US.jsonl").write_text(good[0] + "\n{not json\n", encoding="utf-8")
    result = cli("finetune", models.encoder, "--data", tmp_path / "data", "--out", tmp_path / "o")
    assert result.exit_code == 2
    assert "en-US.jsonl, line 2: not valid JSON" in " ".join(result.output.split())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]
