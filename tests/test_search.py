"""kdcli search on tiny models: an answer, resuming it, an unmeetable constraint, latency pruning
without training, and every bad constraint; the pure arithmetic of the search space."""

from __future__ import annotations

import json

import pytest
import transformers
from conftest import leftovers
from training_helpers import MINI, one_thread, shared_models

from kdcli.core.errors import KdcliError
from kdcli.jobs import search_space as space
from kdcli.jobs.search_report import pareto_front

FAST_FLAGS = ["--lr", "3e-3", "--weight-decay", "0", "--batch-size", "8", "-q"]


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    with one_thread():
        yield


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return shared_models(tmp_path_factory)


def _search(cli, models, out, *args):
    return cli(
        "search", models.teacher, "--data", MINI, "--out", out, "--layer-strategies", "uniform",
        "--formats", "fp32", "--cache-dir", out.parent / "cache", *FAST_FLAGS, *args,
    )  # fmt: skip


@pytest.mark.slow  # two ONNX exports and verifications: minutes on 2 cores
def test_search_answers_with_the_smallest_student_that_meets_the_constraints(models, cli, tmp_path):
    out = tmp_path / "search"
    args = ["--depths", "2,4", "--widths", "1,0.5", "--vocab", "full,trimmed",
            "--min-retention", "0.5", "--max-steps", "20", "--short-fraction", "0.5"]  # fmt: skip
    result = _search(cli, models, out, *args, "--json", tmp_path / "r.json")
    assert result.exit_code == 0, result.output
    found = json.loads((tmp_path / "r.json").read_text())
    assert found == json.loads((out / "search.json").read_text())
    chosen = found["chosen"]
    assert chosen["status"] == "chosen" and chosen["retention"] >= 0.5
    assert chosen["size_measured"] and chosen["size_bytes"] > 0
    assert found["answer"].startswith(f"kept {chosen['num_layers']} of 4 layers")
    assert " worst language " in found["answer"] and found["answer"] in result.stderr
    # every smaller candidate was ruled out, each with its reason
    names = {c["name"]: c for c in found["candidates"]}
    assert len(names) == 4 * 2  # shapes L2-w50, L2-w100, L4-full-w50, teacher x 2 vocabularies
    for candidate in found["candidates"]:
        assert candidate["reason"] or candidate["status"] == "chosen"
    assert found["trained_full"] <= found["trained_short"] + 1
    # the answer is copied out: a model that loads and its verified export
    model = transformers.AutoModelForSequenceClassification.from_pretrained(out / "model")
    assert model.config.num_hidden_layers == chosen["num_layers"]
    assert (out / "export" / "model.onnx").is_file()
    assert json.loads((out / "export" / "kdcli.json").read_text())["verification"]["passed"]
    assert (out / "pareto.png").read_bytes()[:4] == b"\x89PNG"
    # resumable: a rerun finds every unit done and gives the same answer without training
    again = _search(cli, models, out, *args, "--json", tmp_path / "r2.json")
    assert again.exit_code == 0, again.output
    assert json.loads((tmp_path / "r2.json").read_text())["answer"] == found["answer"]
    assert leftovers(tmp_path) == [] and leftovers(out) == []


def test_an_unmeetable_constraint_ends_with_a_clear_message_and_the_best_found(
    models, cli, tmp_path
):
    out = tmp_path / "search"
    result = _search(
        cli, models, out, "--depths", "1", "--widths", "1", "--vocab", "full",
        "--min-retention", "1.0", "--min-language-retention", "1.0", "--allowance", "0.9",
        "--max-steps", "4", "--json", tmp_path / "r.json",
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith(
        "Error: no candidate meets --min-retention 1, --min-language-retention 1: the closest: "
        "L1-uniform-w100-full-fp32 ("
    )
    assert "every candidate is in" in message
    found = json.loads((tmp_path / "r.json").read_text())
    assert found["chosen"] is None and found["answer"] == ""
    assert [c["name"] for c in found["best"]] == ["L1-uniform-w100-full-fp32"]
    assert found["best"][0]["status"] == "fails" and found["best"][0]["languages"]
    assert (out / "search.json").is_file() and (out / "pareto.png").is_file()
    assert not (out / "model").exists()


@pytest.mark.slow  # an ONNX export and its timing
def test_a_latency_limit_rules_out_slower_shapes_without_measuring_or_training_them(
    models, cli, tmp_path
):
    out = tmp_path / "search"
    result = _search(
        cli, models, out, "--depths", "1,2", "--widths", "1,0.5", "--vocab", "full",
        "--max-latency", "0.0001ms", "--json", tmp_path / "r.json",
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    assert "no candidate got as far as being trained" in result.stderr
    found = json.loads((tmp_path / "r.json").read_text())
    assert (found["probed"], found["trained_short"], found["trained_full"]) == (1, 0, 0)
    reasons = {c["shape"]: c["reason"] for c in found["candidates"]}
    assert reasons["L1-uniform-w50"].startswith("latency ")  # the cheapest shape, measured
    for shape in ("L1-uniform-w100", "L2-uniform-w50", "L2-uniform-w100"):
        assert reasons[shape] == "slower than L1-uniform-w50, which already misses --max-latency"
    assert not (out / "short").exists() and not (out / "full").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--max-size", "50XB"], "--max-size '50XB' is not a size: write e.g. 50MB"),
        (["--max-latency", "fast"], "--max-latency 'fast' is not a latency"),
        (["--budget", "soon"], "--budget 'soon' is not a duration"),
        (["--widths", "1,1.5"], "--widths '1,1.5': 1.5 is out of range"),
        (["--depths", "9"], "--depths '9': 9 is out of range: give at least 1 and at most 4"),
        (["--formats", "fp16"], "--formats 'fp16': fp16 is unknown: choose from fp32, int8"),
        (["--objective", "speed"], "--objective 'speed' is unknown"),
        (["--min-retention", "1.2"], "--min-retention 1.2 must be a fraction"),
        (["--short-fraction", "0"], "--short-fraction 0.0 must be a fraction"),
        (["--layer-strategies", "best"], "best is unknown"),
    ],
)
def test_bad_constraints_exit_2_with_one_line_and_nothing_written(
    models, cli, tmp_path, args, message
):
    out = tmp_path / "search"
    result = cli("search", models.teacher, "--data", MINI, "--out", out, *args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not out.exists() and leftovers(tmp_path) == []


# --- the search space's arithmetic ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "size"),
    [("50MB", 50_000_000), ("1.5 GB", 1_500_000_000), ("300MiB", 300 * 2**20), (1024, 1024)],
)
def test_sizes_parse_in_decimal_and_binary_units(text, size):
    assert space.parse_size("max_size", text) == size


def test_latencies_and_durations_parse():
    assert space.parse_latency("max_latency", "5ms") == 5.0
    assert space.parse_latency("max_latency", "0.5s") == 500.0
    assert space.parse_latency("max_latency", 2) == 2.0
    assert space.parse_duration("budget", "2h") == 7200
    assert space.parse_duration("budget", "1h30m") == 5400
    assert space.parse_duration("budget", "45") == 45
    with pytest.raises(KdcliError, match="is not a duration"):
        space.parse_duration("budget", "1h30")


def test_default_depths_and_shapes_cheapest_first():
    assert space.default_depths(12) == [3, 4, 6, 8, 12]
    assert space.default_depths(6) == [2, 3, 4, 6]
    dims = {"layers": 12, "hidden": 768, "intermediate": 3072, "heads": 12}
    shapes = space.build_shapes([6, 12], ["uniform", "importance"], [1.0, 0.5], dims)
    names = [s.name for s in shapes]
    assert names == [
        "L6-importance-w50", "L6-uniform-w50", "L12-full-w50", "L6-importance-w100",
        "L6-uniform-w100", "teacher",
    ]  # fmt: skip
    half = shapes[0]
    assert (half.hidden, half.heads, half.intermediate) == (384, 6, 1536)  # whole heads dropped
    assert shapes[-1].is_teacher and shapes[-1].dominates(half) and not half.dominates(shapes[-1])


def test_size_estimates_match_the_students_shrink_builds(make_teacher, tmp_path):
    from kdcli.files.model_dirs import open_checkpoint, read_config_dict, resolve_model
    from kdcli.steps.shrink import ShrinkConfig, shrink

    teacher = make_teacher("xlm-roberta")
    ref = resolve_model(str(teacher))
    config = read_config_dict(ref)
    with open_checkpoint(ref) as checkpoint:
        shapes = {name: info.shape for name, info in checkpoint.infos().items()}
    dims = {
        "layers": config["num_hidden_layers"],
        "hidden": config["hidden_size"],
        "intermediate": config["intermediate_size"],
        "heads": config["num_attention_heads"],
    }
    sizes = space.TeacherSizes.from_tensors(
        shapes, config["vocab_size"], dims["hidden"], dims["layers"]
    )
    for layers, width in ((dims["layers"], 1.0), (2, 1.0), (2, 0.5)):
        shape = space.shape_for(layers, "uniform", width, dims)
        built = shrink(
            ShrinkConfig(
                str(teacher), out=tmp_path / shape.name, num_layers=layers,
                hidden_size=shape.hidden if width < 1 else None,
                intermediate_size=shape.intermediate if width < 1 else None,
            )
        )  # fmt: skip
        assert sizes.params(shape) == pytest.approx(built.student_params, rel=0.02)


def test_promising_and_the_pareto_front():
    assert space.promising(0.90, 0.80, 0.93, None, allowance=0.05)
    assert not space.promising(0.85, 0.80, 0.93, None, allowance=0.05)
    assert not space.promising(0.99, 0.80, None, 0.90, allowance=0.05)
    # 78.8% after a short run; a full run that closes 58% of the gap reaches 91.1%
    assert not space.promising(0.788, 0.60, 0.90, None, allowance=0.07)
    assert space.promising(0.788, 0.60, 0.90, None, allowance=0.07, closes=0.58)
    assert not space.promising(0.788, 0.60, 0.90, None, allowance=0.07, closes=0.45)
    assert space.promising(1.02, 0.60, 0.90, None, allowance=0.0, closes=0.5)  # above the teacher
    # measured on MiniLM: 3 layers went from 88.0% (worst 76.3%) to 95.0% (worst 81.8%)
    allowance, closes = space.full_run_gain((0.880, 0.763), (0.950, 0.818), 0.05, 0.0)
    assert allowance == pytest.approx(0.07) and closes == pytest.approx(0.07 / 0.12)
    assert space.full_run_gain((0.95, 0.9), (0.90, 0.8), allowance, closes) == (allowance, closes)
    assert space.full_run_gain((1.01, 0.9), (1.03, 0.9), 0.0, 0.0) == pytest.approx((0.02, 0.0))
    points = [(10, 90, "a"), (5, 80, "b"), (20, 95, "c"), (15, 85, "d"), (5, 70, "e")]
    assert [p[2] for p in pareto_front(points)] == ["b", "a", "c"]
