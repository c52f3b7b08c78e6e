"""Export verification that tells the truth: what is judged, on which texts, at which batch sizes,
and what a user sees when a file fails (issue 14)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest

import kdcli.runtime.predictor
import kdcli.steps.export
from kdcli.core.errors import CheckFailedError
from kdcli.evaluation.verification import Gate, compare
from kdcli.runtime.onnx_graph import CpuInt8
from kdcli.runtime.predictor import ONNX_INT8_FILE
from kdcli.steps.export import ExportConfig, _builtin_sentences, export, verify_plan

ROOT = Path(__file__).parent.parent
LABELS = ("alarm_set", "play_music", "weather_query")
WORDS = {
    "alarm_set": "wake me up at",
    "play_music": "play some jazz",
    "weather_query": "weather in",
}


def _data(folder: Path) -> Path:
    """A labelled jsonl with train, dev and test texts in three languages."""
    rows = [
        {"text": f"{WORDS[label]} {i} {lang}", "label": label, "language": lang, "split": split}
        for lang in ("en-US", "de-DE", "fr-FR")
        for label in LABELS
        for i in range(3)
        for split in ("train", "dev", "test")
    ]
    path = folder / "data.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    return path


def _trained_on(model_dir: Path, data: Path, folder: Path) -> Path:
    """A copy of `model_dir` whose kdcli.json says it was fine-tuned on `data`."""
    copy = folder / "trained"
    shutil.copytree(model_dir, copy)
    record = {
        "stage": "finetune",
        "settings": {"data": str(data), "languages": None, "text_column": None},
        "data": {"source": f"files:{data}", "train_languages": ["de-DE", "en-US", "fr-FR"]},
    }
    (copy / "kdcli.json").write_text(json.dumps(record))
    return copy


# --- the judgement itself -------------------------------------------------------------------


def test_non_finite_outputs_fail_by_name_and_never_count_as_agreement():
    reference = np.array([[2.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 2.0]], dtype=np.float32)
    broken = reference.copy()
    broken[1] = np.nan  # argmax of a NaN row is 0; it must not count as "label 0"
    fp32 = compare("f", "onnx", {32: broken}, {32: reference}, ["en", "en", "en"], Gate())
    assert not fp32.passed and fp32.nonfinite == 1
    assert "non-finite" in fp32.failure
    int8 = compare("f", "onnx-int8", {32: broken}, {32: reference}, ["en"] * 3, Gate())
    assert not int8.passed and int8.agreement == pytest.approx(2 / 3)
    infinite = reference.copy()
    infinite[0, 0] = np.inf
    assert not compare("f", "onnx", {32: infinite}, {32: reference}, ["en"] * 3, Gate()).passed


def test_token_padding_is_not_a_non_finite_output():
    reference = np.full((2, 3, 2), np.nan, dtype=np.float32)
    reference[0, :3] = [[1, 0], [0, 1], [1, 0]]
    reference[1, :1] = [[0, 1]]
    check = compare("f", "onnx", {32: reference.copy()}, {32: reference}, ["en", "de"], Gate())
    assert check.passed and check.nonfinite == 0 and check.agreement == 1.0


def _near_ties_and_confident(flip_confident: bool, lose_accuracy: bool):
    """100 texts: 90 confident, 10 near-ties of which int8 flips 4 (2 become right, 2 wrong)."""
    rng = np.random.default_rng(0)
    gold = rng.integers(0, 3, 100)
    reference = np.zeros((100, 3), dtype=np.float32)
    reference[np.arange(100), gold] = 6.0  # confident and right
    int8 = reference.copy()
    for i in range(90, 100):  # near-ties between the gold label and the next one
        other = (gold[i] + 1) % 3
        reference[i] = 0.0
        reference[i, gold[i]], reference[i, other] = (1.0, 1.01) if i < 95 else (1.01, 1.0)
        int8[i] = reference[i]
        if i in (90, 91, 95, 96):  # flipped: 90, 91 become right, 95, 96 become wrong
            int8[i, gold[i]], int8[i, other] = reference[i, other], reference[i, gold[i]]
    if lose_accuracy:
        int8[90, gold[90]], int8[91, gold[91]] = 0.0, 0.0  # the two gains are lost again
    if flip_confident:
        int8[0] = np.roll(int8[0], 1)
    return int8, reference, list(gold)


def test_int8_with_labels_passes_when_only_near_ties_flip_and_accuracy_holds():
    int8, reference, gold = _near_ties_and_confident(flip_confident=False, lose_accuracy=False)
    languages = ["en"] * 50 + ["de"] * 50
    without_labels = compare("q", "onnx-int8", {32: int8}, {32: reference}, languages, Gate())
    assert not without_labels.passed and without_labels.agreement == pytest.approx(0.96)
    check = compare("q", "onnx-int8", {32: int8}, {32: reference}, languages, Gate(), gold)
    assert check.passed, check.failure
    assert check.criterion == "accuracy held and confident predictions kept"
    assert check.accuracy.pytorch == check.accuracy.export
    assert check.confident_texts == 90 and check.confident_agreement == 1.0
    # the 10 near-ties (top two 0.01 apart) are left out of the agreement reported beside
    assert check.clear_texts == 90 and check.clear_agreement == 1.0
    assert check.agreement_text() == "top-1 agreement 96.0% (100.0% off near-ties)"


def test_agreement_off_near_ties_counts_flips_of_clear_texts():
    """A text whose top two logits are NEAR_TIE or more apart is not a near-tie: flipping it
    lowers the agreement reported off near-ties; flips of closer texts do not."""
    from kdcli.evaluation.verification import NEAR_TIE

    reference = np.array([[NEAR_TIE, 0.0], [NEAR_TIE * 0.9, 0.0], [1.0, 0.0], [2.0, 0.0]])
    out = reference[:, ::-1].copy()  # every text flipped
    out[3] = reference[3]  # but the last
    check = compare("q", "onnx-int8", {32: out}, {32: reference}, ["en"] * 4, Gate())
    assert check.agreement == 0.25
    assert (check.clear_texts, check.clear_agreement) == (3, pytest.approx(1 / 3))
    same = compare("q", "onnx-int8", {32: reference}, {32: reference}, ["en"] * 4, Gate())
    assert same.agreement_text() == "top-1 agreement 100.0%"


@pytest.mark.parametrize(
    ("flip_confident", "lose_accuracy", "reason"),
    [(True, False, "confident predictions"), (False, True, "accuracy fell")],
)
def test_int8_with_labels_fails_when_it_flips_confident_texts_or_loses_accuracy(
    flip_confident, lose_accuracy, reason
):
    int8, reference, gold = _near_ties_and_confident(flip_confident, lose_accuracy)
    languages = ["en"] * 100
    gate = Gate(max_accuracy_drop=1.0)
    check = compare("q", "onnx-int8", {32: int8}, {32: reference}, languages, gate, gold)
    assert not check.passed and reason in check.failure


def test_int8_that_changes_most_predictions_fails_even_at_equal_accuracy():
    """A model at chance level: near-uniform logits, one label always wins. An int8 file that
    always picks the next label scores exactly as well, and must still fail."""
    reference = np.tile(np.array([0.02, 0.01, 0.0], dtype=np.float32), (30, 1))
    int8 = np.roll(reference, 1, -1)
    gold = [i % 3 for i in range(30)]
    check = compare("q", "onnx-int8", {32: int8}, {32: reference}, ["en"] * 30, Gate(), gold)
    assert check.accuracy.pytorch == check.accuracy.export and check.agreement == 0.0
    assert not check.passed and "below 90% agreement" in check.failure


def test_token_classifiers_agree_per_word_and_words_without_a_token_do_not_count():
    reference = np.full((2, 4, 2), np.nan, dtype=np.float32)
    reference[0, :4] = [[1, 0], [0, 1], [1, 0], [0, 1]]  # 4 tokens: <s> w1 w1' w2
    reference[1, :3] = [[1, 0], [0, 1], [1, 0]]
    out = reference.copy()
    out[0, 2] = [0, 1]  # a word's second sub-token differs: not a word's token
    out[1, 1] = [1, 0]  # the one word of the second text differs
    words = [[1, 3], [1, -1]]  # the second text's second word has no token of its own
    check = compare("q", "onnx-int8", {32: out}, {32: reference}, ["en", "de"], Gate(), None, words)
    assert check.agreement == pytest.approx(2 / 3)
    assert check.per_language == {"de": 0.0, "en": 1.0}


def test_every_batch_size_is_judged_and_the_worst_counts():
    reference = np.eye(3, dtype=np.float32)
    off = reference + 1e-3
    check = compare(
        "f", "onnx", {1: off, 32: reference}, {1: reference, 32: reference}, ["e"] * 3, Gate()
    )
    assert not check.passed
    assert check.batch_sizes["1"]["max_abs_diff"] == pytest.approx(1e-3, rel=1e-3)
    assert check.batch_sizes["32"]["max_abs_diff"] == 0.0


# --- which texts ----------------------------------------------------------------------------


def test_without_data_the_mix_is_chosen_on_other_builtin_sentences_than_it_is_judged_on():
    plan = verify_plan(ExportConfig("m", out=Path("o")), None)
    assert plan.judge.source == "built-in sentences"
    assert not set(plan.judge.texts) & set(plan.choose.texts)
    assert len(plan.judge.texts) + len(plan.choose.texts) == len(_builtin_sentences().texts)
    assert (
        set(plan.judge.languages)
        == set(plan.choose.languages)
        == set(_builtin_sentences().languages)
    )


def test_the_data_recorded_in_kdcli_json_is_verified_by_default(make_teacher, tmp_path):
    data = _data(tmp_path)
    model = _trained_on(make_teacher("xlm-roberta"), data, tmp_path)
    result = export(ExportConfig(str(model), out=tmp_path / "o", quantize="int8", latency=False))
    verification = result.verification
    assert verification.source == f"{data} (from kdcli.json)"
    assert verification.selection == f"{data} (from kdcli.json), dev split"
    assert verification.texts == 27 and verification.selection_texts == 27  # 3 x 3 x 3 each
    assert verification.int8.accuracy is not None  # the data has labels the model knows
    assert sorted(verification.languages) == ["de-DE", "en-US", "fr-FR"]


def test_unreadable_recorded_data_falls_back_to_builtin_sentences_with_a_note(
    make_teacher, tmp_path
):
    model = _trained_on(make_teacher("xlm-roberta"), tmp_path / "gone.jsonl", tmp_path)
    result = export(ExportConfig(str(model), out=tmp_path / "o", latency=False))
    assert result.verification.source == "built-in sentences"
    assert any("could not be read" in note and "--verify-data" in note for note in result.notes)


# --- export end to end ----------------------------------------------------------------------


def _patch_forward(monkeypatch, change) -> None:
    """ONNX outputs pass through `change(kind, batch_size, logits)`."""
    forward = kdcli.runtime.predictor.OnnxPredictor.forward

    def patched(self, inputs):
        logits = forward(self, inputs)
        return change(self.kind, len(inputs["input_ids"]), logits)

    monkeypatch.setattr(kdcli.runtime.predictor.OnnxPredictor, "forward", patched)


def test_an_export_that_outputs_nan_fails_and_says_so(make_teacher, tmp_path, monkeypatch):
    def nan_first_row(kind, size, logits):
        logits = logits.copy()
        logits[0] = np.nan
        return logits

    _patch_forward(monkeypatch, nan_first_row)
    with pytest.raises(CheckFailedError, match="non-finite"):
        export(ExportConfig(str(make_teacher("bert")), out=tmp_path / "o", latency=False))
    record = json.loads((tmp_path / "o" / "kdcli.json").read_text())
    assert record["verification"]["fp32"]["passed"] is False
    assert record["verification"]["fp32"]["nonfinite"] > 0


def test_an_export_that_drifts_only_at_batch_1_fails(make_teacher, tmp_path, monkeypatch):
    _patch_forward(monkeypatch, lambda kind, size, logits: logits + (1e-3 if size == 1 else 0))
    with pytest.raises(CheckFailedError, match=r"fp32 max \|Δlogit\|"):
        export(ExportConfig(str(make_teacher("bert")), out=tmp_path / "o", latency=False))
    record = json.loads((tmp_path / "o" / "kdcli.json").read_text())
    sizes = record["verification"]["fp32"]["batch_sizes"]
    assert sizes["32"]["max_abs_diff"] <= 1e-4 < sizes["1"]["max_abs_diff"]


@pytest.fixture
def failed_export(make_teacher, tmp_path, monkeypatch) -> tuple[Path, Path, str]:
    """An int8 export that gets every label wrong (its logits rolled by one label), verified on
    labelled data: (export dir, data, the failure message)."""
    _patch_forward(
        monkeypatch,
        lambda kind, size, logits: np.roll(logits, 1, -1) if kind == "onnx-int8" else logits,
    )
    data = _data(tmp_path)
    config = ExportConfig(
        str(make_teacher("xlm-roberta")),
        out=tmp_path / "o",
        quantize="int8",
        verify_data=str(data),
        latency=False,
    )
    with pytest.raises(CheckFailedError) as failure:
        export(config)
    monkeypatch.undo()
    return tmp_path / "o", data, str(failure.value)


def test_a_failed_int8_export_prints_both_accuracies_and_the_options(failed_export):
    _, _, message = failed_export
    assert "int8 top-1 agreement" in message
    assert "Accuracy on these texts' labels: PyTorch" in message and ", int8 " in message
    for option in ("model.onnx (fp32", "verify_data DATA", "min_agreement", "train longer"):
        assert option in message
    assert "marked failed in kdcli.json" in message


def test_eval_shows_and_warns_about_an_export_marked_failed(cli, failed_export, tmp_path):
    out, data, _ = failed_export
    result = cli(
        "eval", out, "--data", data, "--json", tmp_path / "r.json",
        "--markdown", tmp_path / "r.md", "-q",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "FAILED" in result.stderr and "warning" in result.stderr
    model = json.loads((tmp_path / "r.json").read_text())["models"][0]
    assert "kdcli export marked it FAILED" in model["warning"]
    assert "int8" in model["warning"]
    markdown = (tmp_path / "r.md").read_text()
    assert "**Warning**" in markdown and "marked it FAILED" in markdown


def test_full_8_bit_weights_are_recorded_with_a_warning_for_cpus_without_vnni(
    cli, make_teacher, tmp_path, monkeypatch
):
    vnni = CpuInt8("x86_64", True, False, "x86 with VNNI: full 8-bit weights are exact")
    monkeypatch.setattr(kdcli.steps.export, "cpu_int8", lambda: vnni)
    data = _data(tmp_path)
    result = export(
        ExportConfig(
            str(make_teacher("xlm-roberta")),
            out=tmp_path / "o",
            quantize="int8",
            verify_data=str(data),
            latency=False,
        )
    )
    assert result.quantization.reduce_range is False
    assert "without VNNI" in result.quantization.serving
    serving = [note for note in result.notes if "without VNNI" in note]
    assert serving and "--reduce-range" in serving[0]
    assert "session.x64quantprecision=1" in serving[0]  # how to serve it on AVX2 as kdcli does
    record = json.loads((tmp_path / "o" / "kdcli.json").read_text())
    assert record["quantization"]["reduce_range"] is False

    avx2 = CpuInt8("x86_64", False, True, "x86 without VNNI: 7-bit weights avoid saturation")
    monkeypatch.setattr(kdcli.runtime.onnx_graph, "cpu_int8", lambda: avx2)
    run = cli("eval", tmp_path / "o", "--data", data, "--json", tmp_path / "r.json", "-q")
    assert run.exit_code == 0, run.output
    warning = json.loads((tmp_path / "r.json").read_text())["models"][0]["warning"]
    assert "re-export with --reduce-range" in warning
    assert "session.x64quantprecision" in warning  # what kdcli ran it with, and how to serve it


def test_int8_runs_on_exact_kernels_only_where_its_products_can_saturate(
    make_teacher, tmp_path, monkeypatch
):
    """x86 without VNNI and a file not recorded as 7-bit: ONNX Runtime's u8*u8 kernels
    (session.x64quantprecision); a 7-bit file, a VNNI CPU and the fp32 file keep the fast ones."""
    from kdcli.runtime.predictor import open_predictor

    export(ExportConfig(str(make_teacher("xlm-roberta")), out=tmp_path / "o", quantize="int8"))
    record_path = tmp_path / "o" / "kdcli.json"
    record = json.loads(record_path.read_text())
    avx2 = CpuInt8("x86_64", False, True, "x86 without VNNI")
    vnni = CpuInt8("x86_64", True, False, "x86 with VNNI")
    cases = [  # (cpu, reduce_range in kdcli.json, variant, exact)
        (avx2, False, "int8", True),
        (avx2, None, "int8", True),  # not recorded: it may use all 8 bits
        (avx2, True, "int8", False),
        (avx2, False, "fp32", False),
        (vnni, False, "int8", False),
    ]
    for cpu, recorded, variant, exact in cases:
        monkeypatch.setattr(kdcli.runtime.onnx_graph, "cpu_int8", lambda cpu=cpu: cpu)
        record["quantization"]["reduce_range"] = recorded
        record_path.write_text(json.dumps(record))
        predictor = open_predictor(tmp_path / "o", variant=variant)
        assert predictor.exact_int8 is exact, (cpu.reason, recorded, variant)
        if exact:
            options = predictor.session.get_session_options()
            assert options.get_session_config_entry("session.x64quantprecision") == "1"
            assert np.isfinite(predictor.logits(["wake me up at seven"])).all()


def test_the_word_embedding_storage_is_what_the_docs_say(make_teacher, tmp_path):
    teacher = make_teacher("xlm-roberta")
    result = export(ExportConfig(str(teacher), out=tmp_path / "o", quantize="int8", latency=False))
    graph = onnx.load(str(tmp_path / "o" / ONNX_INT8_FILE)).graph
    initializers = {i.name: i for i in graph.initializer}
    vocab = json.loads((teacher / "config.json").read_text())["vocab_size"]
    tables = [i for i in graph.initializer if i.dims and i.dims[0] == vocab]
    assert sorted(t.data_type for t in tables) == sorted(
        [onnx.TensorProto.INT8, onnx.TensorProto.FLOAT]
    )
    rows = next(t for t in tables if t.data_type == onnx.TensorProto.INT8)
    scales = initializers[rows.name.replace(".int8_rows", ".row_scales")]
    assert list(scales.dims) == [vocab, 1]  # one scale per row
    assert result.quantization.word_embeddings == "int8, one scale per row"
    docs = (ROOT / "docs" / "export.md").read_text(encoding="utf-8")
    assert result.quantization.word_embeddings in docs
    assert "per output channel (`--per-tensor`" in docs  # the MatMul weights, not the table


def test_max_accuracy_drop_must_not_be_negative(cli, make_teacher, tmp_path):
    result = cli(
        "export", make_teacher("bert"), "--out", tmp_path / "o", "--max-accuracy-drop", "-1"
    )
    assert result.exit_code == 2
    assert "--max-accuracy-drop -1.0 must be zero or more" in result.stderr


# --- --quantize auto ------------------------------------------------------------------------


def test_quantize_auto_serves_fp32_when_int8_misses_the_gate(make_teacher, tmp_path, monkeypatch):
    _patch_forward(
        monkeypatch,
        lambda kind, size, logits: np.roll(logits, 1, -1) if kind == "onnx-int8" else logits,
    )
    out = tmp_path / "o"
    config = ExportConfig(
        str(make_teacher("xlm-roberta")),
        out=out,
        quantize="auto",
        verify_data=str(_data(tmp_path)),
        latency=False,
    )
    result = export(config)  # no CheckFailedError: fp32 is verified and served
    assert result.passed and not result.verification.int8.passed
    assert result.served.file == "model.onnx" and "missed the gate" in result.served.reason
    assert not (out / ONNX_INT8_FILE).exists() and result.int8_bytes is None
    assert any(note.startswith("--quantize auto: serving model.onnx") for note in result.notes)
    record = json.loads((out / "kdcli.json").read_text())
    assert record["passed"] is True and record["served"]["file"] == "model.onnx"
    assert "ISA" in record["served"]["cpu"] and ONNX_INT8_FILE not in record["files"]
    assert "serves `model.onnx`" in (out / "README.md").read_text()


def test_quantize_auto_serves_int8_when_it_passes(cli, make_teacher, tmp_path):
    out = tmp_path / "o"
    result = cli(
        "export", make_teacher("bert"), "--quantize", "auto", "--out", out, "--no-latency", "-q"
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    record = json.loads((out / "kdcli.json").read_text())
    assert record["served"]["file"] == ONNX_INT8_FILE and (out / ONNX_INT8_FILE).is_file()
    assert record["verification"]["int8"]["passed"] is True
    assert "--quantize auto: serving model_quantized.onnx" in result.stderr
