"""A starting head that cannot learn (a pooler stored as zeros, as in multilingual-e5) is
re-initialised and reported; a pooler missing from the checkpoint is reported (issue 9)."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file
from training_helpers import MINI, one_thread, train_config

from kdcli.files.model_dirs import LoadOptions, resolve_model
from kdcli.steps.finetune import FinetuneConfig, finetune
from kdcli.training.head_check import fix_degenerate_head
from kdcli.training.job import load_classifier_for

LABELS = ["alarm_set", "datetime_query", "play_music", "takeaway_order", "weather_query"]


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    with one_thread():
        yield


def _bert_encoder(path, pooler: str):
    """A tiny BERT encoder whose checkpoint's pooler is `pooler`: "zeros", "missing" or "ok"."""
    from factories import make_model_dir, make_tokenizer
    from training_helpers import fixture_texts

    tokenizer = make_tokenizer("wordpiece", fixture_texts(), vocab_size=400)
    make_model_dir(path, "bert", head="encoder", tokenizer=tokenizer, layers=2, hidden=64, heads=4)
    weights = load_file(path / "model.safetensors")
    keys = [k for k in weights if "pooler" in k]
    assert keys, "the tiny BERT encoder should have a pooler"
    for key in keys:
        if pooler == "zeros":
            weights[key] = torch.zeros_like(weights[key])
        elif pooler == "missing":
            del weights[key]
    save_file(weights, path / "model.safetensors", metadata={"format": "pt"})
    return path


def _start(path, labels=LABELS):
    ref = resolve_model(str(path))
    return load_classifier_for(ref, LoadOptions(), labels, seed=0)


def test_a_zero_pooler_is_reinitialised_with_a_note_and_a_record(tmp_path):
    start = _start(_bert_encoder(tmp_path / "enc", "zeros"))
    pooler = start.model.bert.pooler.dense
    assert pooler.weight.abs().max() > 0
    # drawn like a new layer (initializer_range 0.02)
    assert 0.01 < float(pooler.weight.detach().std()) < 0.03
    assert start.head_record() == [
        {"layer": "bert.pooler.dense", "problem": "all zeros", "action": "re-initialised"}
    ]
    assert len(start.notes) == 1 and "bert.pooler.dense weights are all zeros" in start.notes[0]


def test_a_missing_pooler_is_reported_not_changed(tmp_path):
    start = _start(_bert_encoder(tmp_path / "enc", "missing"))
    assert start.head_record() == [
        {
            "layer": "bert.pooler.dense",
            "problem": "missing",
            "action": "initialised at random by transformers",
        }
    ]
    assert "has no weights for bert.pooler.dense" in start.notes[0]


def test_a_trained_pooler_and_a_new_task_head_are_left_alone(tmp_path):
    start = _start(_bert_encoder(tmp_path / "enc", "ok"))
    assert start.head_fixes == [] and start.notes == []


def test_a_kept_classifier_with_a_constant_layer_is_repaired():
    from transformers import BertConfig, BertForSequenceClassification

    config = BertConfig(
        vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, num_labels=3,
    )  # fmt: skip
    model = BertForSequenceClassification(config)
    with torch.no_grad():
        model.classifier.weight.fill_(0.5)
    fixes = fix_degenerate_head(model, missing_keys=set(), new_head=False, seed=0)
    assert [(f.layer, f.problem) for f in fixes] == [("classifier", "constant")]
    assert model.classifier.weight.std() > 0
    # a new head is random by construction: nothing to repair or report
    with torch.no_grad():
        model.classifier.weight.zero_()
    assert fix_degenerate_head(model, {"classifier.weight"}, new_head=True, seed=0) == []


def test_the_head_gets_a_learning_signal_from_the_first_step(tmp_path, monkeypatch):
    """The regression behind issue 9. From a zero pooler every input reaches the classifier as
    the same (zero) feature, so the classifier's weight gradient is exactly zero: a saddle point
    that a real encoder at lr 5e-5 takes most of a run to leave. Repaired, it learns at once."""
    import kdcli.training.job as job

    encoder = _bert_encoder(tmp_path / "enc", "zeros")

    def first_gradient() -> float:
        model = _start(encoder).model
        batch = {"input_ids": torch.tensor([[2, 5, 6, 7, 3], [2, 9, 8, 3, 0]])}
        batch["attention_mask"] = (batch["input_ids"] > 0).long()
        logits = model(**batch).logits
        torch.nn.functional.cross_entropy(logits, torch.tensor([0, 3])).backward()
        return float(model.classifier.weight.grad.abs().max())

    assert first_gradient() > 1e-3
    monkeypatch.setattr(job, "fix_degenerate_head", lambda *args, **kwargs: [])
    assert first_gradient() == 0.0  # the saddle the check exists for


def test_finetune_records_and_reports_the_repair(tmp_path):
    encoder = _bert_encoder(tmp_path / "enc", "zeros")
    config = train_config(max_steps=2, batch_size=16)
    result = finetune(FinetuneConfig(str(encoder), str(MINI), tmp_path / "ft", config))
    record = json.loads((tmp_path / "ft" / "kdcli.json").read_text())
    assert record["head_fixes"] == [
        {"layer": "bert.pooler.dense", "problem": "all zeros", "action": "re-initialised"}
    ]
    assert any("all zeros" in note for note in result.notes)
    assert any("all zeros" in note for note in record["notes"])
