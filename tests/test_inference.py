"""kdcli.runtime.predictor: one way to run a PyTorch model dir or a kdcli export on texts."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import transformers
from factories import CORPUS

from kdcli.core.errors import KdcliError
from kdcli.runtime.predictor import (
    ONNX_FILE,
    ONNX_INT8_FILE,
    import_onnxruntime,
    onnx_parameters,
    onnx_size,
    open_predictor,
)
from kdcli.steps.export import ExportConfig, export

transformers.utils.logging.disable_progress_bar()

TEXTS = [
    "wake me up at seven",
    "明日の朝七時に起こして",
    "what is the weather like in paris today and tomorrow and the day after",
    "play jazz",
    "какая погода в москве сегодня",
]


def _one_by_one(model_dir: Path, texts: list[str]) -> list[np.ndarray]:
    """Reference: each text alone through transformers, no padding at all."""
    model = transformers.AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    if model.config.architectures[0].endswith("TokenClassification"):
        model = transformers.AutoModelForTokenClassification.from_pretrained(model_dir).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir)
    with torch.no_grad():
        return [model(**tokenizer(text, return_tensors="pt")).logits[0].numpy() for text in texts]


@pytest.fixture(scope="module")
def exported(make_teacher, tmp_path_factory) -> Path:
    """An fp32 + int8 export of the tiny XLM-R classifier."""
    out = tmp_path_factory.mktemp("inference") / "export"
    export(ExportConfig(str(make_teacher("xlm-roberta")), out=out, quantize="int8", latency=False))
    return out


def test_pytorch_predictor_matches_transformers_text_by_text_in_the_callers_order(make_teacher):
    teacher = make_teacher("xlm-roberta")
    predictor = open_predictor(teacher)
    assert predictor.kind == "pytorch"
    assert predictor.id2label == {0: "alarm_set", 1: "play_music", 2: "weather_query"}
    assert predictor.size_bytes == (teacher / "model.safetensors").stat().st_size
    model = transformers.AutoModelForSequenceClassification.from_pretrained(teacher)
    assert predictor.num_parameters == sum(p.numel() for p in model.parameters())
    logits = predictor.logits(TEXTS, batch_size=2)
    expected = np.stack(_one_by_one(teacher, TEXTS))
    np.testing.assert_allclose(logits, expected, atol=1e-5)


def test_batches_are_sorted_by_length_and_padded_only_to_their_own_longest(make_teacher):
    predictor = open_predictor(make_teacher("bert"))
    tokenizer = predictor.tokenizer
    batches = predictor.encode(TEXTS, batch_size=2)
    lengths = [len(tokenizer(t)["input_ids"]) for t in TEXTS]
    assert sorted(i for b in batches for i in b.index) == list(range(len(TEXTS)))
    order = [i for b in batches for i in b.index]
    assert [lengths[i] for i in order] == sorted(lengths, reverse=True)
    for batch in batches:
        assert batch.inputs["input_ids"].shape[1] == max(lengths[i] for i in batch.index)
        assert batch.inputs["input_ids"].dtype == np.int64
        assert batch.inputs["attention_mask"].sum(1).tolist() == [lengths[i] for i in batch.index]


def test_left_padding_tokenizers_still_get_each_texts_own_logits(make_teacher):
    # BERT numbers positions from the first token: left padding would shift a short text's
    # positions and change its logits with the batch it is in, so kdcli always pads right
    teacher = make_teacher("bert")
    predictor = open_predictor(teacher)
    predictor.tokenizer.padding_side = "left"
    batch = predictor.encode(["a", "play some jazz music"], batch_size=2)[0]
    assert batch.inputs["input_ids"][1, -1] == predictor.tokenizer.pad_token_id
    assert batch.inputs["input_ids"][1, 0] == predictor.tokenizer.cls_token_id
    logits = predictor.logits(TEXTS, batch_size=5)
    np.testing.assert_allclose(logits, np.stack(_one_by_one(teacher, TEXTS)), atol=1e-5)


def test_texts_are_cut_to_what_the_model_has_positions_for(make_teacher):
    predictor = open_predictor(make_teacher("bert"))  # tokenizer.model_max_length is 64
    batch = predictor.encode([" ".join(CORPUS)], max_length=512)[0]
    assert batch.inputs["input_ids"].shape[1] == 64
    assert np.isfinite(predictor.logits([" ".join(CORPUS)], max_length=512)).all()


def test_export_dir_opens_as_int8_by_default_and_fp32_on_request(exported):
    auto = open_predictor(exported)
    assert (auto.kind, auto.onnx_file.name) == ("onnx-int8", ONNX_INT8_FILE)
    fp32 = open_predictor(exported, variant="fp32")
    assert (fp32.kind, fp32.onnx_file.name) == ("onnx", ONNX_FILE)
    assert open_predictor(exported / ONNX_FILE).kind == "onnx"
    assert fp32.size_bytes == (exported / ONNX_FILE).stat().st_size
    assert fp32.id2label == {0: "alarm_set", 1: "play_music", 2: "weather_query"}


def test_onnx_fp32_matches_pytorch_and_int8_is_close(exported, make_teacher):
    reference = open_predictor(make_teacher("xlm-roberta")).logits(TEXTS)
    fp32 = open_predictor(exported, variant="fp32").logits(TEXTS)
    int8 = open_predictor(exported).logits(TEXTS, batch_size=1)
    np.testing.assert_allclose(fp32, reference, atol=1e-5)
    assert np.abs(int8 - reference).max() < 0.05
    assert not np.allclose(int8, reference, atol=1e-7)  # it really is a different model


def test_onnx_parameter_count_matches_the_pytorch_model(exported, make_teacher):
    torch_count = open_predictor(make_teacher("xlm-roberta")).num_parameters
    assert open_predictor(exported, variant="fp32").num_parameters == onnx_parameters(
        exported / ONNX_FILE
    )
    # the traced graph stores every weight once; buffers (position ids) are integers, not weights
    assert onnx_parameters(exported / ONNX_FILE) == torch_count
    # int8 weights count once each; the quantizer's scales and zero points are not weights
    assert open_predictor(exported).num_parameters == torch_count


def test_token_classification_logits_are_per_token_with_nan_after_each_text(make_teacher):
    teacher = make_teacher("bert", head="token-classification")
    predictor = open_predictor(teacher)
    assert predictor.head == "token-classification"
    logits = predictor.logits(TEXTS, batch_size=2)
    expected = _one_by_one(teacher, TEXTS)
    assert logits.shape == (len(TEXTS), max(len(e) for e in expected), 3)
    for row, reference in zip(logits, expected, strict=True):
        np.testing.assert_allclose(row[: len(reference)], reference, atol=1e-5)
        assert np.isnan(row[len(reference) :]).all()


def test_latency_reports_batch_1_and_batch_throughput(exported):
    latency = open_predictor(exported, threads=1).latency(TEXTS, batch_size=4, repeats=2)
    assert latency.batch_size == 4
    assert latency.batch1_ms > 0 and latency.batch_ms > 0
    assert latency.texts_per_s == pytest.approx(4 * 1000 / latency.batch_ms)


def test_threads_cap_torch_for_the_call_only(make_teacher):
    before = torch.get_num_threads()
    open_predictor(make_teacher("bert"), threads=1).logits(TEXTS)
    assert torch.get_num_threads() == before


def test_empty_input_gives_an_empty_array(make_teacher):
    assert open_predictor(make_teacher("bert")).logits([]).shape == (0, 3)


def test_external_weight_files_count_in_the_size(tmp_path):
    (tmp_path / "model.onnx").write_bytes(b"x" * 10)
    (tmp_path / "model.onnx.data").write_bytes(b"x" * 90)
    assert onnx_size(tmp_path / "model.onnx") == 100


def test_export_without_tokenizer_files_is_a_clear_error(exported, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(exported, broken)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (broken / name).unlink()
    with pytest.raises(KdcliError, match="no tokenizer files"):
        open_predictor(broken)


def test_export_without_config_is_a_clear_error(exported, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(exported, broken)
    (broken / "config.json").unlink()
    with pytest.raises(KdcliError, match=r"no config\.json"):
        open_predictor(broken)


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda p: p.mkdir(), "neither a model directory"),
        (lambda p: p.write_text("x"), "not an .onnx model"),
    ],
)
def test_a_path_that_is_neither_model_nor_export_is_a_clear_error(tmp_path, setup, message):
    target = tmp_path / "thing"
    setup(target)
    with pytest.raises(KdcliError, match=message):
        open_predictor(target)


def test_bad_arguments_name_the_value(exported, make_teacher):
    with pytest.raises(KdcliError, match="variant 'int4'"):
        open_predictor(exported, variant="int4")
    with pytest.raises(KdcliError, match="threads 0"):
        open_predictor(exported, threads=0)
    with pytest.raises(KdcliError, match="variant 'fp32' applies to export"):
        open_predictor(make_teacher("bert"), variant="fp32")
    with pytest.raises(KdcliError, match="batch_size 0"):
        open_predictor(make_teacher("bert")).logits(TEXTS, batch_size=0)


def test_int8_variant_of_an_fp32_only_export_is_a_clear_error(exported, tmp_path):
    fp32_only = tmp_path / "fp32"
    shutil.copytree(exported, fp32_only)
    (fp32_only / ONNX_INT8_FILE).unlink()
    with pytest.raises(KdcliError, match="quantize int8"):
        open_predictor(fp32_only, variant="int8")


def test_encoder_without_a_head_cannot_predict(make_teacher):
    with pytest.raises(KdcliError, match="no classification head"):
        open_predictor(make_teacher("bert", head="encoder"))


def test_missing_onnxruntime_names_the_extra(monkeypatch, exported):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(KdcliError, match=r"pip install 'kdcli\[export\]'"):
        import_onnxruntime()
    with pytest.raises(KdcliError, match=r"kdcli\[export\]"):
        open_predictor(exported)


class _Clock:
    """A predictor that only records when it runs (no model): the order of interleaved rounds."""

    def __init__(self, name: str, calls: list[str], ms: float) -> None:
        self.name, self.calls, self.ms = name, calls, ms

    def encode(self, texts, batch_size=32, max_length=128):
        from kdcli.runtime.predictor import EncodedBatch

        return [EncodedBatch(list(range(len(texts))), {"input_ids": None})]

    def forward(self, inputs):
        import time

        self.calls.append(self.name)
        time.sleep(self.ms / 1000)


def test_models_are_timed_in_interleaved_rounds_with_their_spread():
    from kdcli.runtime.predictor import measure_latency

    calls: list[str] = []
    predictors = {"a": _Clock("a", calls, 1.0), "b": _Clock("b", calls, 3.0)}
    timed = measure_latency(predictors, ["x"], batch_size=2, rounds=4, single_texts=1)
    timed_calls = calls[2:]  # after one warm-up pass each
    rounds = [timed_calls[i : i + 4] for i in range(0, 16, 4)]  # per model: 1 text + 1 batch
    assert rounds == [["a", "a", "b", "b"], ["b", "b", "a", "a"]] * 2  # order flips each round
    for latency in timed.values():
        assert latency.rounds == 4
        assert latency.batch1_low_ms <= latency.batch1_ms <= latency.batch1_high_ms
        assert latency.batch_low_ms <= latency.batch_ms <= latency.batch_high_ms
    assert timed["b"].batch1_ms > timed["a"].batch1_ms


def test_the_machine_is_named_and_a_busy_one_is_warned_about():
    from kdcli.core.machine import MachineState, machine_state, speed_warning

    here = machine_state()
    assert here.cpus >= 1 and f"ISA {here.isa}" in here.describe()
    quiet = MachineState("cpu", "avx2", 2, 0.4, False)
    assert speed_warning(quiet, 0.05) is None
    busy = MachineState("cpu", "avx2", 2, 9.8, True)
    warning = speed_warning(busy, 0.4)
    assert "the machine was busy (load 9.8 on 2 cores)" in warning
    assert "timing rounds differed by up to 40%" in warning
    assert "ISA avx2" in busy.describe() and "busy" in busy.describe()
