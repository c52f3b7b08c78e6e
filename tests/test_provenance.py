"""kdcli.json: records, history, and the lineage eval shows."""

from __future__ import annotations

import json

import pytest

from kdcli.core.errors import KdcliError
from kdcli.files.provenance import find_stage, lineage, make_record, read_provenance, with_history


def test_history_keeps_the_parents_records_newest_first(tmp_path):
    finetune = make_record("finetune", {"lr": 5e-5})
    shrink = with_history(make_record("shrink", {}, init="copy", layers={"kept": [0, 2]}), finetune)
    distill = with_history(
        make_record("distill", {}, distillation={"kd_loss": "mse", "alpha": 0.5}), shrink
    )
    assert [h["stage"] for h in distill["history"]] == ["shrink", "finetune"]
    assert "history" not in distill["history"][0]
    assert find_stage(distill, "shrink")["layers"]["kept"] == [0, 2]
    assert find_stage(distill, "export") is None
    exported = with_history(make_record("export", {"quantize": "int8"}), distill)
    assert lineage(exported) == [
        "finetune",
        "shrink (copy, layers 0,2)",
        "distill (mse, α 0.5)",
        "export (int8)",
    ]
    no_kd = make_record("distill", {}, distillation={"kd_loss": None})
    assert lineage(no_kd) == ["distill (no KD)"] and lineage(None) == []


def test_reading_a_broken_record_is_a_clear_error(tmp_path):
    assert read_provenance(tmp_path) is None
    (tmp_path / "kdcli.json").write_text("{broken")
    with pytest.raises(KdcliError, match="is not valid JSON"):
        read_provenance(tmp_path)
    (tmp_path / "kdcli.json").write_text(json.dumps([1, 2]))
    with pytest.raises(KdcliError, match="does not hold a JSON object"):
        read_provenance(tmp_path)
