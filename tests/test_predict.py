"""kdcli predict: every model kind, every file format, streaming, pseudo-labels, bad input."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import transformers
from conftest import DATA, leftovers
from factories import FAMILIES

import kdcli
import kdcli.steps.predict
from kdcli.core.errors import KdcliError
from kdcli.data.splits import DataConfig, load_split
from kdcli.runtime.predictor import open_predictor
from kdcli.steps.export import ExportConfig, export
from kdcli.steps.predict import PredictConfig, predict

transformers.utils.logging.disable_progress_bar()

MINI = DATA / "massive-mini"


def _rows(split: str = "test") -> list[dict[str, Any]]:
    """massive-mini as a user's file would hold it: text, label, language, and an extra column."""
    examples = load_split(DataConfig(data=str(MINI)), split)
    return [
        {"id": i, "text": t, "label": y, "language": lang, "source": "mini"}
        for i, t, y, lang in zip(
            examples.ids, examples.texts, examples.labels, examples.languages, strict=True
        )
    ]


def _write(path: Path, rows: list[dict[str, Any]]) -> Path:
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    elif path.suffix == ".csv":
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    else:
        pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def _read(path: Path) -> list[dict[str, Any]]:
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text().splitlines()]
    if path.suffix == ".csv":
        with path.open(newline="", encoding="utf-8") as handle:
            return list(csv.DictReader(handle))
    return pq.read_table(path).to_pylist()


@pytest.fixture(scope="module")
def exported(make_teacher, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("predict") / "export"
    export(ExportConfig(str(make_teacher("xlm-roberta")), out=out, quantize="int8", latency=False))
    return out


def _expected(model: str | Path, texts: list[str], variant: str = "auto") -> np.ndarray:
    """Softmax probabilities straight from the Predictor, the reference for predict's output."""
    logits = open_predictor(model, variant=variant).logits(texts)
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    return probs / probs.sum(axis=1, keepdims=True)


def _check(rows_in: list[dict], rows_out: list[dict], probs: np.ndarray, labels: list[str]):
    assert len(rows_out) == len(rows_in)
    for before, after, p in zip(rows_in, rows_out, probs, strict=True):
        assert after["text"] == before["text"] and after["language"] == before["language"]
        assert after["true_label"] == before["label"] and after["source"] == "mini"
        assert after["label"] == labels[int(p.argmax())]
        assert float(after["score"]) == pytest.approx(float(p.max()), abs=1e-5)


@pytest.mark.parametrize("family", FAMILIES)
def test_predict_with_a_pytorch_model_of_every_family(family, make_teacher, tmp_path):
    teacher = make_teacher(family)
    rows = _rows()
    out = tmp_path / "pred.jsonl"
    result = predict(PredictConfig(str(teacher), _write(tmp_path / "in.jsonl", rows), out))
    labels = [open_predictor(teacher).id2label[i] for i in range(3)]
    _check(rows, _read(out), _expected(teacher, [r["text"] for r in rows]), labels)
    assert result.kind == "pytorch" and result.rows == len(rows) == sum(result.predicted.values())
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("variant", ["fp32", "int8"])
def test_predict_with_an_onnx_export(variant, exported, tmp_path):
    rows = _rows()
    out = tmp_path / "pred.jsonl"
    data = _write(tmp_path / "in.jsonl", rows)
    result = predict(PredictConfig(str(exported), data, out, variant=variant))
    assert result.kind == ("onnx" if variant == "fp32" else "onnx-int8")
    labels = [open_predictor(exported).id2label[i] for i in range(3)]
    _check(rows, _read(out), _expected(exported, [r["text"] for r in rows], variant), labels)
    onnx_file = exported / ("model.onnx" if variant == "fp32" else "model_quantized.onnx")
    single = predict(PredictConfig(str(onnx_file), data, tmp_path / "file.jsonl"))
    assert _read(tmp_path / "file.jsonl") == _read(out) and single.kind == result.kind


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".parquet"])
def test_every_format_in_and_out_with_top_k(suffix, make_teacher, tmp_path):
    teacher = make_teacher("bert")
    rows = _rows()
    data = _write(tmp_path / f"in{suffix}", rows)
    out = tmp_path / f"pred{suffix}"
    result = predict(PredictConfig(str(teacher), data, out, top_k=3))
    written = _read(out)
    probs = _expected(teacher, [r["text"] for r in rows])
    for row, p in zip(written, probs, strict=True):
        top = json.loads(row["top_k"]) if suffix == ".csv" else row["top_k"]
        assert top[0]["label"] == row["label"] and len(top) == 3
        scores = [t["score"] for t in top]
        assert scores == sorted(scores, reverse=True)
        assert sum(scores) == pytest.approx(1.0, abs=1e-4)
        assert scores[0] == pytest.approx(p.max(), abs=1e-5)
    assert result.top_k == 3 and result.columns == {
        "text": "text",
        "label": "label",
        "language": "language",
    }


def test_the_output_is_data_for_finetune_and_distill(cli, make_teacher, tmp_path):
    """Pseudo-labels: unlabelled text in, a --data file with the teacher's labels out."""
    teacher = make_teacher("xlm-roberta")
    unlabelled = [{"text": r["text"], "language": r["language"]} for r in _rows("train")]
    out = tmp_path / "pseudo.jsonl"
    result = predict(PredictConfig(str(teacher), _write(tmp_path / "in.jsonl", unlabelled), out))
    assert result.accuracy is None and "true_label" not in _read(out)[0]
    # one file without a split column: kdcli splits it for training, every row in one split
    parts = [load_split(DataConfig(data=str(out)), split) for split in ("train", "dev", "test")]
    assert sorted(t for part in parts for t in part.texts) == sorted(r["text"] for r in unlabelled)
    predicted = {r["text"]: (r["label"], r["language"]) for r in _read(out)}
    for part in parts:
        assert list(zip(part.labels, part.languages, strict=True)) == [
            predicted[text] for text in part.texts
        ]
    done = cli(
        "finetune", teacher, "--data", out, "--out", tmp_path / "student", "--max-steps", "2",
        "--batch-size", "8", "--quiet",
    )  # fmt: skip
    assert done.exit_code == 0, done.stderr


def test_large_files_stream_in_chunks_with_progress(monkeypatch, make_teacher, tmp_path):
    teacher = make_teacher("distilbert")
    rows = _rows() + _rows("dev")
    data = _write(tmp_path / "in.jsonl", rows)
    whole = predict(PredictConfig(str(teacher), data, tmp_path / "whole.jsonl"))
    monkeypatch.setattr(kdcli.steps.predict, "CHUNK", 7)
    events = []
    chunked = predict(
        PredictConfig(str(teacher), data, tmp_path / "chunked.jsonl", batch_size=4), events.append
    )
    # other batches pad differently, which moves a score in its last printed digit
    chunked_rows, whole_rows = _read(tmp_path / "chunked.jsonl"), _read(tmp_path / "whole.jsonl")
    for row in chunked_rows:
        row["score"] = pytest.approx(row["score"], abs=2e-6)
    assert chunked_rows == whole_rows
    done = [e.done for e in events if e.task == "predict"]
    assert done == sorted(done) and done[-1] == len(rows) == chunked.rows
    assert {e.total for e in events if e.task == "predict"} == {len(rows)}
    assert chunked.predicted == whole.predicted


def test_accuracy_per_language_when_the_file_has_labels(make_teacher, tmp_path):
    teacher = make_teacher("bert")
    rows = _rows()
    rows[0]["label"] = "no_such_label"
    result = predict(
        PredictConfig(str(teacher), _write(tmp_path / "in.jsonl", rows), tmp_path / "o.jsonl")
    )
    written = _read(tmp_path / "o.jsonl")
    right = [w["label"] == r["label"] for w, r in zip(written, rows, strict=True)]
    assert result.accuracy == pytest.approx(sum(right) / len(rows))
    by_language = {
        lang: np.mean([ok for ok, r in zip(right, rows, strict=True) if r["language"] == lang])
        for lang in sorted({r["language"] for r in rows})
    }
    assert result.accuracy_by_language == pytest.approx(by_language)
    assert any("no_such_label" in note for note in result.notes)


def test_cli_writes_json_and_refuses_to_overwrite(cli, make_teacher, tmp_path):
    teacher, data = make_teacher("bert"), _write(tmp_path / "in.csv", _rows())
    out, report = tmp_path / "o.parquet", tmp_path / "r.json"
    args = ["predict", teacher, "--data", data, "--out", out, "--json", report, "--top-k", "2"]
    done = cli(*args)
    assert done.exit_code == 0, done.stderr
    assert "predicted label" in done.stderr and "accuracy against --label-column" in done.stderr
    result = json.loads(report.read_text())
    assert result["rows"] == len(_rows()) and result["kind"] == "pytorch"
    before = out.read_bytes()
    again = cli(*args)
    assert again.exit_code == 2 and "--overwrite" in again.stderr and out.read_bytes() == before
    assert cli(*args, "--overwrite").exit_code == 0
    assert "predict" in kdcli.__all__ and kdcli.predict is predict


# --- bad input ---------------------------------------------------------------------------------


def _bad_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    bad_json = tmp_path / "bad.jsonl"
    bad_json.write_text('{"text": "ok"}\n{"text": oops}\n')
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes("text\ncaf\xe9\n".encode("latin-1"))
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    no_text = _write(tmp_path / "no_text.jsonl", [{"utterance": "hi", "label": "x"}])
    folder = tmp_path / "folder"
    folder.mkdir()
    txt = tmp_path / "texts.txt"
    txt.write_text("hello\n")
    return {
        "invalid json": (bad_json, "line 2: not valid JSON"),
        "not utf-8": (latin1, "not valid UTF-8"),
        "empty": (empty, "holds no rows"),
        "no text column": (no_text, "no text column"),
        "folder": (folder, "is a folder"),
        "txt": (txt, "unsupported file type '.txt'"),
        "missing": (tmp_path / "nope.jsonl", "no such file"),
    }


@pytest.mark.parametrize(
    "case", ["invalid json", "not utf-8", "empty", "no text column", "folder", "txt", "missing"]
)
def test_bad_data_exits_2_with_one_line(case, cli, make_teacher, tmp_path):
    data, expected = _bad_files(tmp_path)[case]
    out = tmp_path / "out.jsonl"
    result = cli("predict", make_teacher("bert"), "--data", data, "--out", out)
    assert result.exit_code == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert expected in result.stderr and str(data.name) in result.stderr
    assert not out.exists() and leftovers(tmp_path) == []


BAD_OPTIONS = {
    "top-k zero": (["--top-k", "0"], "--top-k 0"),
    "top-k above the labels": (["--top-k", "4"], "--top-k 4 is more than the 3 labels"),
    "batch size zero": (["--batch-size", "0"], "--batch-size 0"),
    "max length one": (["--max-length", "1"], "--max-length 1"),
    "unknown variant": (["--variant", "int4"], "--variant 'int4'"),
    "unknown text column": (["--text-column", "body"], "no column 'body' for --text-column"),
    "unknown label column": (["--label-column", "gold"], "no column 'gold' for --label-column"),
    "bad out suffix": (["--out", "preds.txt"], "name it .jsonl, .csv or .parquet"),
    "out is the data": (["--out", "in.jsonl"], "is the --data file"),
    "out in a missing folder": (["--out", "no/such/dir/o.jsonl"], "does not exist"),
}


@pytest.mark.parametrize("case", sorted(BAD_OPTIONS))
def test_bad_options_exit_2_with_one_line(case, cli, make_teacher, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _write(tmp_path / "in.jsonl", _rows())
    args, expected = BAD_OPTIONS[case]
    defaults = {"--out": "o.jsonl"}
    given = dict(zip(args[::2], args[1::2], strict=True))
    out = given.get("--out", defaults["--out"])
    rest = [a for pair in given.items() if pair[0] != "--out" for a in pair]
    result = cli("predict", make_teacher("bert"), "--data", "in.jsonl", "--out", out, *rest)
    assert result.exit_code == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert expected in result.stderr
    assert not (tmp_path / "o.jsonl").exists() and leftovers(tmp_path) == []
    assert (tmp_path / "in.jsonl").read_text() == "".join(
        json.dumps(r, ensure_ascii=False) + "\n" for r in _rows()
    )


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        ("encoder", "no classification head"),
        ("token", "is a token-classification model"),
        ("missing", "no/such/model"),
    ],
)
def test_models_that_cannot_label_texts_exit_2(setup, expected, cli, make_teacher, tmp_path):
    model = {
        "encoder": lambda: make_teacher("bert", head="encoder"),
        "token": lambda: make_teacher("bert", head="token-classification"),
        "missing": lambda: "./no/such/model",
    }[setup]()
    data = _write(tmp_path / "in.jsonl", _rows())
    result = cli("predict", model, "--data", data, "--out", tmp_path / "o.jsonl")
    assert result.exit_code == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert expected in result.stderr
    assert not (tmp_path / "o.jsonl").exists() and leftovers(tmp_path) == []


def test_a_failure_mid_file_leaves_no_output_and_keeps_the_old_one(
    monkeypatch, make_teacher, tmp_path
):
    data = tmp_path / "in.jsonl"
    _write(data, _rows())
    with data.open("a") as handle:
        handle.write("{broken\n")
    out = tmp_path / "o.jsonl"
    out.write_text("previous\n")
    monkeypatch.setattr(kdcli.steps.predict, "CHUNK", 5)
    with pytest.raises(KdcliError, match="not valid JSON"):
        predict(PredictConfig(str(make_teacher("bert")), data, out, overwrite=True))
    assert out.read_text() == "previous\n" and leftovers(tmp_path) == []
