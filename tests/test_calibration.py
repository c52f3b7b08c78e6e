"""Data-driven selection: activation widths (Minitron) and layer importance (1 - cos)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
import transformers
from conftest import DATA
from factories import CORPUS, FAMILIES, make_config
from safetensors.torch import load_file, save_file

from kdcli.data.splits import DataConfig, load_split
from kdcli.files.model_dirs import resolve_model
from kdcli.files.provenance import from_ranges
from kdcli.steps.shrink import ShrinkConfig, shrink
from kdcli.surgery.architectures import TensorMatcher, architecture_for
from kdcli.surgery.calibration import calibrate, calibration_texts, hook_points
from kdcli.surgery.slicing import plan_tensors

transformers.utils.logging.disable_progress_bar()
transformers.utils.logging.set_verbosity_error()

MINI = str(DATA / "massive-mini")
SAMPLE = str(Path(__file__).parents[1] / "examples" / "data" / "massive-sample")


def _points(model_dir: Path) -> tuple[Any, dict[str, Any]]:
    config = json.loads((model_dir / "config.json").read_text())
    arch = architecture_for(config, str(model_dir))
    names = list(load_file(model_dir / "model.safetensors"))
    matcher = TensorMatcher(arch, names)
    layers = list(range(arch.teacher_dims(config)["layers"]))
    plans, _ = plan_tensors(matcher, sorted(names), layers)
    return hook_points(plans, matcher, arch.embedding_tied_to_hidden(config)), config


def _calibrate(model_dir: Path, texts: list[str], **kwargs: Any) -> Any:
    points, config = _points(model_dir)
    options = {"want_width": True, "want_layers": True, **kwargs}
    return calibrate(resolve_model(model_dir), config, points, texts, **options)


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_yields_a_score_per_channel_and_per_layer(family, make_teacher):
    teacher = make_teacher(family)
    config = json.loads((teacher / "config.json").read_text())
    dims = architecture_for(config, family).teacher_dims(config)
    result = _calibrate(teacher, CORPUS)
    assert result.samples == len(CORPUS) and result.tokens > len(CORPUS)
    assert len(result.layer_importance) == dims["layers"]
    assert all(score > -1e-9 for score in result.layer_importance)
    assert sorted(result.width.attn) == sorted(result.width.inter) == list(range(dims["layers"]))
    assert all(v.shape == (dims["hidden"],) for v in result.width.attn.values())
    assert all(v.shape == (dims["intermediate"],) for v in result.width.inter.values())
    assert result.width.hidden is not None and result.width.hidden.shape == (dims["hidden"],)


def test_padding_is_left_out_of_the_statistics(make_teacher):
    """Batched (padded) calibration equals one-text-at-a-time, weighted by token counts."""
    teacher = make_teacher("bert")
    texts = [CORPUS[0], CORPUS[8], CORPUS[12], CORPUS[17]]  # lengths differ: the batch pads
    batched = _calibrate(teacher, texts)
    singles = [_calibrate(teacher, [t]) for t in texts]
    total = sum(s.tokens for s in singles)
    assert batched.tokens == total
    for layer in batched.width.inter:
        expected = sum(s.width.inter[layer] * s.tokens for s in singles) / total
        assert torch.allclose(batched.width.inter[layer], expected, atol=1e-6)


def test_layer_importance_is_one_minus_cosine_between_layer_input_and_output(make_teacher):
    teacher = make_teacher("xlm-roberta")
    texts = CORPUS[:8]
    result = _calibrate(teacher, texts, want_width=False)
    model = transformers.AutoModelForSequenceClassification.from_pretrained(teacher).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(teacher)
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        states = model(**batch, output_hidden_states=True).hidden_states
    mask = batch["attention_mask"].bool()
    expected = [
        float(1 - torch.cosine_similarity(states[i][mask], states[i + 1][mask], dim=-1).mean())
        for i in range(len(states) - 1)
    ]
    assert result.layer_importance == pytest.approx(expected, abs=1e-6)


def _edit_teacher(teacher: Path, out: Path, edit: Any) -> Path:
    shutil.copytree(teacher, out)
    tensors = load_file(out / "model.safetensors")
    edit(tensors)
    save_file(tensors, out / "model.safetensors", metadata={"format": "pt"})
    return out


def test_importance_drops_the_layer_that_does_nothing(make_teacher, tmp_path):
    def silence_layer_2(tensors: dict[str, torch.Tensor]) -> None:
        # ModernBERT is pre-norm: with both output projections zero, layer 2 returns its input.
        tensors["model.layers.2.attn.Wo.weight"].zero_()
        tensors["model.layers.2.mlp.Wo.weight"].zero_()

    teacher = _edit_teacher(make_teacher("modernbert"), tmp_path / "t", silence_layer_2)
    result = shrink(
        ShrinkConfig(
            str(teacher),
            out=tmp_path / "s",
            num_layers=3,
            layer_strategy="importance",
            calib_data=MINI,
            calib_samples=50,
        )
    )
    assert result.layer_importance is not None and abs(result.layer_importance[2]) < 1e-12
    assert min(result.layer_importance[:2] + result.layer_importance[3:]) > 0
    assert result.kept_layers == [0, 1, 3]
    uniform = shrink(ShrinkConfig(str(teacher), out=tmp_path / "u", num_layers=3))
    assert uniform.kept_layers == [0, 2, 3]  # the fixed rule would have kept the dead layer
    record = json.loads((tmp_path / "s" / "kdcli.json").read_text())
    assert record["calibration"]["layer_importance"] == result.layer_importance
    assert record["calibration"]["data"] == MINI and record["calibration"]["samples"] == 50


def test_activation_drops_dead_neurons_that_magnitude_would_keep(make_teacher, tmp_path):
    dead = list(range(8))

    def kill_neurons(tensors: dict[str, torch.Tensor]) -> None:
        # Large weights (magnitude ranks them first) but a bias that keeps GELU at exactly 0.
        tensors["bert.encoder.layer.0.intermediate.dense.weight"][dead] *= 50
        tensors["bert.encoder.layer.0.intermediate.dense.bias"][dead] = -1e4
        # The live neurons' output 20x louder: losing some of them then moves the logits by about
        # 1.6e-3, 16x the 1e-4 checked below (at 1x it was about 1e-4, and the test failed now
        # and then).
        tensors["bert.encoder.layer.0.output.dense.weight"] *= 20

    teacher = _edit_teacher(make_teacher("bert"), tmp_path / "t", kill_neurons)
    kept = {}
    for strategy in ("magnitude", "activation"):
        shrink(
            ShrinkConfig(
                str(teacher),
                out=tmp_path / strategy,
                intermediate_size=56,
                width_strategy=strategy,
                calib_data=MINI if strategy == "activation" else None,
            )
        )
        record = json.loads((tmp_path / strategy / "kdcli.json").read_text())
        kept[strategy] = from_ranges(record["width"]["intermediate"]["kept"]["0"])
    assert set(dead) <= set(kept["magnitude"])
    assert not set(dead) & set(kept["activation"])
    # Dropping dead neurons costs nothing: the activation student equals the teacher with only
    # the other layers' dropped neurons silenced; the magnitude student lost live ones in layer 0.
    record = json.loads((tmp_path / "activation" / "kdcli.json").read_text())
    model = transformers.AutoModelForSequenceClassification.from_pretrained(teacher).eval()
    with torch.no_grad():
        for layer in (1, 2, 3):
            mask = torch.zeros(64)
            mask[from_ranges(record["width"]["intermediate"]["kept"][str(layer)])] = 1
            model.bert.encoder.layer[layer].output.dense.weight.mul_(mask)
        tokenizer = transformers.AutoTokenizer.from_pretrained(teacher)
        texts = load_split(DataConfig(data=MINI), "dev").texts
        expected = model(**tokenizer(texts, padding=True, return_tensors="pt")).logits
    assert torch.allclose(_logits(tmp_path / "activation", texts), expected, atol=1e-6)
    magnitude_gap = (_logits(tmp_path / "magnitude", texts) - expected).abs().max()
    assert magnitude_gap > 1e-4


def _logits(model_dir: Path, texts: list[str]) -> torch.Tensor:
    model = transformers.AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir)
    with torch.no_grad():
        return model(**tokenizer(texts, padding=True, return_tensors="pt")).logits


def _wordpiece(texts: list[str], size: int = 1000) -> Any:
    """A WordPiece vocabulary built by counting, not by a trainer: the tokenizers trainers break
    ties differently from process to process, and this test needs the same teacher every run."""
    from collections import Counter

    words = Counter(w for t in texts for w in t.split())
    chars = sorted({c for w in words for c in w})
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chars, *(f"##{c}" for c in chars)]
    ranked = sorted((w for w in words if w not in vocab), key=lambda w: (-words[w], w))
    vocab += ranked[: size - len(vocab)]
    return transformers.BertTokenizer(
        vocab={t: i for i, t in enumerate(vocab)}, do_lower_case=False
    )


def _train_teacher(out: Path, seed: int) -> tuple[Path, list[str]]:
    """A tiny BERT trained on the 10-locale sample; its narrow residual stream (16) makes the
    wide feed-forward layers (128 neurons) carry much of the decision."""
    train = load_split(DataConfig(data=SAMPLE), "train")
    labels = sorted(set(train.labels))
    tokenizer = _wordpiece(train.texts)
    torch.manual_seed(seed)
    config = make_config(
        "bert", tokenizer, labels=tuple(labels), layers=2, hidden=16, heads=2, intermediate=128
    )
    config.hidden_dropout_prob = config.attention_probs_dropout_prob = 0.0
    model = transformers.AutoModelForSequenceClassification.from_config(config)
    batch = tokenizer(train.texts, padding=True, return_tensors="pt")
    targets = torch.tensor([labels.index(label) for label in train.labels])
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: one thread is ~10x faster than two contending
    try:
        model.train()
        for _ in range(1000):
            rows = torch.randint(0, len(targets), (32,), generator=generator)
            loss = model(
                input_ids=batch["input_ids"][rows],
                attention_mask=batch["attention_mask"][rows],
                labels=targets[rows],
            ).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    finally:
        torch.set_num_threads(threads)
    model.eval().save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out, labels


def _accuracy(model_dir: Path, labels: list[str], split: str) -> float:
    examples = load_split(DataConfig(data=SAMPLE), split)
    predicted = _logits(model_dir, examples.texts).argmax(-1).tolist()
    gold = [labels.index(label) for label in examples.labels]
    return sum(p == g for p, g in zip(predicted, gold, strict=True)) / len(gold)


def _permute_neurons(teacher: Path, out: Path, seed: int) -> Path:
    """The same function with its feed-forward neurons in another order (a random permutation
    per layer): which neurons come "first" in a trained model is an accident of training."""
    generator = torch.Generator().manual_seed(seed)

    def permute(tensors: dict[str, torch.Tensor]) -> None:
        for layer in range(2):
            order = torch.randperm(128, generator=generator)
            stem = f"bert.encoder.layer.{layer}."
            for name in ("intermediate.dense.weight", "intermediate.dense.bias"):
                tensors[stem + name] = tensors[stem + name][order].contiguous()
            out_weight = stem + "output.dense.weight"
            tensors[out_weight] = tensors[out_weight][:, order].contiguous()

    return _edit_teacher(teacher, out, permute)


def _student_accuracy(teacher: Path, out: Path, strategy: str, labels: list[str]) -> float:
    shrink(
        ShrinkConfig(
            str(teacher),
            out=out,
            intermediate_size=16,  # 1/8 of the feed-forward neurons, in both layers
            width_strategy=strategy,
            calib_data=SAMPLE if strategy == "activation" else None,
        )
    )
    return _accuracy(out, labels, "train")


@pytest.mark.slow  # trains a model for 1,000 steps: ~15 s alone, much more on a busy machine
def test_activation_keeps_accuracy_better_than_first_k_on_a_trained_model(tmp_path):
    teacher, labels = _train_teacher(tmp_path / "teacher", seed=1)
    orders = [teacher] + [_permute_neurons(teacher, tmp_path / f"p{i}", i) for i in (1, 2)]
    teacher_accuracy = _accuracy(teacher, labels, "train")
    texts = CORPUS[:8]
    assert torch.allclose(_logits(orders[1], texts), _logits(teacher, texts), atol=1e-5)
    first = [
        _student_accuracy(t, tmp_path / f"first{i}", "first", labels) for i, t in enumerate(orders)
    ]
    activation = [
        _student_accuracy(t, tmp_path / f"act{i}", "activation", labels)
        for i, t in enumerate(orders[:2])
    ]
    print("accuracy", teacher_accuracy, first, activation)
    assert teacher_accuracy > 0.75 > 3 / len(labels)  # learned: far above chance (1 / labels)
    assert activation[0] == activation[1]  # the choice does not depend on the neurons' order
    assert activation[0] >= max(first)
    assert activation[0] >= sum(first) / len(first) + 0.05


def test_calibration_texts_give_every_language_the_same_share():
    texts = [f"en {i}" for i in range(10)] + ["de 0", "de 1", " "] + [f"ja {i}" for i in range(3)]
    languages = ["en"] * 10 + ["de"] * 3 + ["ja"] * 3
    chosen = calibration_texts(texts, languages, 6, seed=0)
    assert sorted(t.split()[0] for t in chosen) == ["de", "de", "en", "en", "ja", "ja"]
    assert chosen == calibration_texts(texts, languages, 6, seed=0)
    assert len(calibration_texts(texts, languages, 100, seed=0)) == 15  # the blank text is out


def test_progress_is_reported_and_outputs_are_reproducible(make_teacher, tmp_path):
    events = []
    teacher = make_teacher("xlm-roberta")
    for name in ("a", "b"):
        shrink(
            ShrinkConfig(
                str(teacher),
                out=tmp_path / name,
                num_layers=2,
                layer_strategy="importance",
                hidden_size=16,
                width_strategy="activation",
                calib_data=MINI,
                calib_samples=20,
            ),
            progress=events.append,
        )
    steps = [e for e in events if e.task == "calibrate"]
    assert steps and steps[-1].done == steps[-1].total == 20
    digests = [
        {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (tmp_path / n).iterdir()}
        for n in ("a", "b")
    ]
    assert digests[0] == digests[1]


def test_cli_data_driven_shrink_end_to_end(cli, make_teacher, tmp_path):
    out = tmp_path / "s"
    result = cli(
        "shrink", make_teacher("bert"), "--out", out, "--calib-data", MINI,
        "--languages", "en-US,ja-JP", "--calib-samples", "30", "--num-layers", "2",
        "--layer-strategy", "importance", "--width-strategy", "activation",
        "--intermediate-size", "32", "--json", tmp_path / "r.json",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert "layer importance" in result.stderr and "30 calibration texts" in result.stderr
    data = json.loads((tmp_path / "r.json").read_text())
    assert len(data["layer_importance"]) == 4 and data["calibration_samples"] == 30
    ranked = sorted(range(4), key=lambda i: (-data["layer_importance"][i], i))
    assert data["kept_layers"] == sorted(ranked[:2])
    record = json.loads((out / "kdcli.json").read_text())
    assert record["calibration"]["languages"] == ["en-US", "ja-JP"]
    assert record["settings"]["width_strategy"] == "activation"
    transformers.AutoModelForSequenceClassification.from_pretrained(out)
