"""kdcli shrink: copy-weight students on every supported architecture (tiny random models)."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest
import torch
import transformers
from factories import FAMILIES, encode
from safetensors.torch import load_file

from kdcli.core.errors import KdcliError
from kdcli.files.provenance import from_ranges
from kdcli.steps.shrink import ShrinkConfig, shrink

transformers.utils.logging.disable_progress_bar()


def _logits(model_dir: Path) -> torch.Tensor:
    model = transformers.AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir)
    with torch.no_grad():
        return model(**encode(tokenizer)).logits


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.mark.parametrize("family", FAMILIES)
def test_identity_shrink_gives_exactly_the_teachers_logits(family, make_teacher, tmp_path):
    teacher = make_teacher(family)
    result = shrink(ShrinkConfig(str(teacher), out=tmp_path / "student"))
    assert result.student_params == result.teacher_params
    assert torch.equal(_logits(teacher), _logits(tmp_path / "student"))


@pytest.mark.parametrize("family", FAMILIES)
def test_half_depth_student_loads_and_runs(family, make_teacher, tmp_path):
    teacher = make_teacher(family)
    result = shrink(ShrinkConfig(str(teacher), out=tmp_path / "s", num_layers=2))
    assert result.kept_layers == [0, 3]
    model = transformers.AutoModelForSequenceClassification.from_pretrained(tmp_path / "s")
    tokenizer = transformers.AutoTokenizer.from_pretrained(tmp_path / "s")
    assert model.config.id2label == {0: "alarm_set", 1: "play_music", 2: "weather_query"}
    assert model(**encode(tokenizer)).logits.shape == (6, 3)
    assert result.student_params < result.teacher_params
    record = json.loads((tmp_path / "s" / "kdcli.json").read_text())
    assert record["stage"] == "shrink"
    assert record["layers"] == {"teacher": 4, "kept": [0, 3]}
    assert (
        record["source"]["sha256"]
        == hashlib.sha256((teacher / "model.safetensors").read_bytes()).hexdigest()
    )
    assert (tmp_path / "s" / "README.md").read_text().startswith("---")


def _expected_slice(teacher: torch.Tensor, name: str, record: dict) -> torch.Tensor:
    """What the student's tensor must be, recomputed from the recorded kept indices."""
    width = record["width"]
    hidden = width["hidden"]["kept"]
    layer_match = re.search(r"\.(\d+)\.", name)
    layer = None
    if layer_match:
        layer = str(record["layers"]["kept"][int(layer_match.group(1))])
    result = teacher
    for dim, size in enumerate(teacher.shape):
        kept = _kept_for(name, dim, size, width, hidden, layer)
        if kept is not None:
            result = result.index_select(dim, torch.tensor(kept))
    return result


def _kept_for(name, dim, size, width, hidden, layer):
    if dim == 0 and re.search(r"(word|position|token_type|tok|rel)_embeddings\.weight", name):
        return None  # rows of embedding tables are tokens, positions or buckets
    teacher_hidden = width["hidden"]["teacher"]
    inter = width["intermediate"]["kept"]
    attn = width["heads"]["kept_channels"]
    teacher_inter = width["intermediate"]["teacher"]
    if layer is not None and inter and size in (teacher_inter, 2 * teacher_inter):
        kept = from_ranges(inter[layer])
        return kept + [i + teacher_inter for i in kept] if size == 2 * teacher_inter else kept
    if layer is not None and attn and size == 3 * teacher_hidden:
        kept = from_ranges(attn[layer])
        return [i + part * teacher_hidden for part in range(3) for i in kept]
    is_attention_out = dim == 0 and re.search(r"(query|key|value|q_lin|k_lin|v_lin)", name)
    is_attention_in = dim == 1 and re.search(r"(attention\.output\.dense|out_lin|attn\.Wo)", name)
    if (
        layer is not None
        and attn
        and size == teacher_hidden
        and (is_attention_out or is_attention_in)
    ):
        return from_ranges(attn[layer])
    if hidden and size == teacher_hidden:
        return from_ranges(hidden)
    return None


@pytest.mark.parametrize(
    "family", ["xlm-roberta", "bert", "distilbert", "deberta-v2", "modernbert"]
)
@pytest.mark.parametrize("strategy", ["first", "magnitude"])
def test_every_kept_tensor_is_the_teachers_slice_bit_for_bit(
    family, strategy, make_teacher, tmp_path
):
    teacher = make_teacher(family)
    shrink(
        ShrinkConfig(
            str(teacher),
            out=tmp_path / "s",
            layers=[1, 3],
            hidden_size=16,
            intermediate_size=40,
            width_strategy=strategy,
        )
    )
    record = json.loads((tmp_path / "s" / "kdcli.json").read_text())
    teacher_tensors = load_file(teacher / "model.safetensors")
    student_tensors = load_file(tmp_path / "s" / "model.safetensors")
    kept_layers = record["layers"]["kept"]
    for name, tensor in student_tensors.items():
        source = re.sub(r"\.(\d+)\.", lambda m: f".{kept_layers[int(m.group(1))]}.", name, count=1)
        expected = _expected_slice(teacher_tensors[source], name, record)
        assert torch.equal(tensor, expected), name
    assert len(student_tensors) < len(teacher_tensors)


def test_first_strategy_keeps_leading_heads_channels_and_neurons(make_teacher, tmp_path):
    teacher = make_teacher("bert")
    shrink(
        ShrinkConfig(
            str(teacher), out=tmp_path / "s", layers=[2], hidden_size=16, intermediate_size=40
        )
    )
    t = load_file(teacher / "model.safetensors")
    s = load_file(tmp_path / "s" / "model.safetensors")
    query = "bert.encoder.layer.{}.attention.self.query.weight"
    assert torch.equal(s[query.format(0)], t[query.format(2)][:16, :16])
    ffn = "bert.encoder.layer.{}.intermediate.dense.weight"
    assert torch.equal(s[ffn.format(0)], t[ffn.format(2)][:40, :16])
    emb = "bert.embeddings.word_embeddings.weight"
    assert torch.equal(s[emb], t[emb][:, :16])
    config = json.loads((tmp_path / "s" / "config.json").read_text())
    assert (config["num_hidden_layers"], config["hidden_size"], config["num_attention_heads"]) == (
        1,
        16,
        2,
    )


def test_modernbert_fused_projections_are_sliced_per_part(make_teacher, tmp_path):
    teacher = make_teacher("modernbert")
    shrink(ShrinkConfig(str(teacher), out=tmp_path / "s", hidden_size=16, intermediate_size=40))
    t = load_file(teacher / "model.safetensors")
    s = load_file(tmp_path / "s" / "model.safetensors")
    qkv = t["model.layers.1.attn.Wqkv.weight"]
    expected = torch.cat([qkv[0:16], qkv[32:48], qkv[64:80]])[:, :16]
    assert torch.equal(s["model.layers.1.attn.Wqkv.weight"], expected)
    wi = t["model.layers.1.mlp.Wi.weight"]
    assert torch.equal(s["model.layers.1.mlp.Wi.weight"], torch.cat([wi[:40], wi[64:104]])[:, :16])


def test_modernbert_student_starting_at_a_later_layer_drops_that_layers_attention_norm(
    make_teacher, tmp_path
):
    result = shrink(
        ShrinkConfig(str(make_teacher("modernbert")), out=tmp_path / "s", layers=[1, 2])
    )
    names = load_file(tmp_path / "s" / "model.safetensors")
    assert "model.layers.0.attn_norm.weight" not in names
    assert "model.layers.1.attn_norm.weight" in names
    assert any("attention norm" in note for note in result.notes)
    config = json.loads((tmp_path / "s" / "config.json").read_text())
    teacher_config = json.loads((make_teacher("modernbert") / "config.json").read_text())
    assert config["layer_types"] == teacher_config["layer_types"][1:3]
    _logits(tmp_path / "s")  # loads and runs


def test_intermediate_pruning_equals_the_teacher_with_those_neurons_zeroed(make_teacher, tmp_path):
    teacher = make_teacher("xlm-roberta")
    shrink(
        ShrinkConfig(
            str(teacher), out=tmp_path / "s", intermediate_size=40, width_strategy="magnitude"
        )
    )
    kept = json.loads((tmp_path / "s" / "kdcli.json").read_text())["width"]["intermediate"]["kept"]
    model = transformers.AutoModelForSequenceClassification.from_pretrained(teacher).eval()
    with torch.no_grad():
        for layer, module in enumerate(model.roberta.encoder.layer):
            mask = torch.zeros(64)
            mask[from_ranges(kept[str(layer)])] = 1
            module.output.dense.weight.mul_(mask)
        tokenizer = transformers.AutoTokenizer.from_pretrained(teacher)
        expected = model(**encode(tokenizer)).logits
    assert torch.equal(_logits(tmp_path / "s"), expected)


def test_magnitude_keeps_the_head_with_the_largest_weights(make_teacher, tmp_path):
    teacher = make_teacher("bert")
    tensors = load_file(teacher / "model.safetensors")
    for part in ("query", "key", "value"):
        tensors[f"bert.encoder.layer.0.attention.self.{part}.weight"][24:32] *= 50
    boosted = tmp_path / "boosted"
    boosted.mkdir()
    for f in teacher.iterdir():
        (boosted / f.name).write_bytes(f.read_bytes())
    from safetensors.torch import save_file

    save_file(tensors, boosted / "model.safetensors", metadata={"format": "pt"})
    shrink(
        ShrinkConfig(str(boosted), out=tmp_path / "s", hidden_size=16, width_strategy="magnitude")
    )
    heads = json.loads((tmp_path / "s" / "kdcli.json").read_text())["width"]["heads"]["kept"]
    assert 3 in heads["0"]
    shrink(ShrinkConfig(str(boosted), out=tmp_path / "f", hidden_size=16, width_strategy="first"))
    assert json.loads((tmp_path / "f" / "kdcli.json").read_text())["width"]["heads"]["kept"][
        "0"
    ] == [0, 1]


def test_narrower_heads_when_the_head_count_is_kept(make_teacher, tmp_path):
    teacher = make_teacher("xlm-roberta")
    result = shrink(ShrinkConfig(str(teacher), out=tmp_path / "s", hidden_size=16, num_heads=4))
    assert (result.student.heads, result.student.hidden) == (4, 16)
    record = json.loads((tmp_path / "s" / "kdcli.json").read_text())
    assert record["width"]["heads"]["head_size"] == 4
    assert from_ranges(record["width"]["heads"]["kept_channels"]["0"]) == [
        0,
        1,
        2,
        3,
        8,
        9,
        10,
        11,
        16,
        17,
        18,
        19,
        24,
        25,
        26,
        27,
    ]
    _logits(tmp_path / "s")


def test_same_inputs_and_seed_give_byte_identical_outputs(make_teacher, tmp_path):
    teacher = make_teacher("xlm-roberta")
    for name in ("a", "b"):
        shrink(
            ShrinkConfig(
                str(teacher),
                out=tmp_path / name / "s",
                num_layers=2,
                hidden_size=16,
                width_strategy="magnitude",
            )
        )
    assert _digest(tmp_path / "a" / "s") == _digest(tmp_path / "b" / "s")


def test_random_init_is_the_same_shape_with_fresh_seeded_weights(make_teacher, tmp_path):
    teacher = make_teacher("xlm-roberta")
    copy = shrink(ShrinkConfig(str(teacher), out=tmp_path / "copy", num_layers=2))
    for name, seed in (("r1", 1), ("r1b", 1), ("r2", 2)):
        shrink(
            ShrinkConfig(
                str(teacher), out=tmp_path / name, num_layers=2, random_init=True, seed=seed
            )
        )
    random = load_file(tmp_path / "r1" / "model.safetensors")
    copied = load_file(tmp_path / "copy" / "model.safetensors")
    assert {k: v.shape for k, v in random.items()} == {k: v.shape for k, v in copied.items()}
    emb = "roberta.embeddings.word_embeddings.weight"
    assert not torch.equal(random[emb], copied[emb])
    assert _digest(tmp_path / "r1") == _digest(tmp_path / "r1b")
    assert not torch.equal(random[emb], load_file(tmp_path / "r2" / "model.safetensors")[emb])
    assert json.loads((tmp_path / "r1" / "kdcli.json").read_text())["init"] == "random"
    assert copy.init == "copy"


def test_token_classification_head_is_copied_with_its_labels(make_teacher, tmp_path):
    teacher = make_teacher("bert", head="token-classification")
    result = shrink(ShrinkConfig(str(teacher), out=tmp_path / "s", num_layers=2))
    assert result.head == "token-classification"
    model = transformers.AutoModelForTokenClassification.from_pretrained(tmp_path / "s")
    assert model.config.id2label[1] == "play_music"
    t = load_file(teacher / "model.safetensors")
    s = load_file(tmp_path / "s" / "model.safetensors")
    assert torch.equal(s["classifier.weight"], t["classifier.weight"])


def test_pretrained_encoder_gives_a_bare_student_without_the_mlm_head(make_teacher, tmp_path):
    teacher = make_teacher("xlm-roberta", head="masked-lm")
    result = shrink(ShrinkConfig(str(teacher), out=tmp_path / "s", num_layers=2))
    assert result.head == "encoder"
    names = load_file(tmp_path / "s" / "model.safetensors")
    assert not any(n.startswith("lm_head") for n in names)
    config = json.loads((tmp_path / "s" / "config.json").read_text())
    assert config["architectures"] == ["XLMRobertaModel"]
    record = json.loads((tmp_path / "s" / "kdcli.json").read_text())
    assert any(n.startswith("lm_head") for n in record["dropped_tensors"])
    model = transformers.AutoModelForSequenceClassification.from_pretrained(
        tmp_path / "s", num_labels=5
    )
    teacher_model = transformers.AutoModelForMaskedLM.from_pretrained(teacher)
    assert torch.equal(
        model.roberta.encoder.layer[1].output.dense.weight,
        teacher_model.roberta.encoder.layer[3].output.dense.weight,
    )


def test_sharded_teacher_gives_the_same_student(make_teacher, tmp_path):
    teacher = make_teacher("bert")
    model = transformers.AutoModelForSequenceClassification.from_pretrained(teacher)
    sharded = tmp_path / "sharded"
    model.save_pretrained(sharded, max_shard_size="20KB")
    transformers.AutoTokenizer.from_pretrained(teacher).save_pretrained(sharded)
    assert (sharded / "model.safetensors.index.json").exists()
    shrink(ShrinkConfig(str(sharded), out=tmp_path / "a", num_layers=2))
    shrink(ShrinkConfig(str(teacher), out=tmp_path / "b", num_layers=2))
    a, b = (
        load_file(tmp_path / "a" / "model.safetensors"),
        load_file(tmp_path / "b" / "model.safetensors"),
    )
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_dtype_conversion_and_bf16_teachers(make_teacher, tmp_path):
    teacher = make_teacher("bert", dtype=torch.bfloat16)
    shrink(ShrinkConfig(str(teacher), out=tmp_path / "keep", num_layers=2))
    assert {t.dtype for t in load_file(tmp_path / "keep" / "model.safetensors").values()} == {
        torch.bfloat16
    }
    shrink(ShrinkConfig(str(teacher), out=tmp_path / "f16", num_layers=2, dtype="float16"))
    tensors = load_file(tmp_path / "f16" / "model.safetensors")
    assert {t.dtype for t in tensors.values()} == {torch.float16}
    assert json.loads((tmp_path / "f16" / "config.json").read_text())["dtype"] == "float16"


def test_pickle_checkpoints_need_the_explicit_flag(make_teacher, tmp_path):
    teacher = make_teacher("bert")
    model = transformers.AutoModelForSequenceClassification.from_pretrained(teacher)
    pickled = tmp_path / "pickled"
    state = model.state_dict()
    pickled.mkdir()
    torch.save(state, pickled / "pytorch_model.bin")
    (pickled / "config.json").write_text((teacher / "config.json").read_text())
    with pytest.raises(KdcliError, match="allow_pickle"):
        shrink(ShrinkConfig(str(pickled), out=tmp_path / "s", num_layers=2))
    assert not (tmp_path / "s").exists()
    shrink(ShrinkConfig(str(pickled), out=tmp_path / "s", num_layers=2, allow_pickle=True))
    reference = tmp_path / "ref"
    shrink(ShrinkConfig(str(teacher), out=reference, num_layers=2))
    a, b = (
        load_file(tmp_path / "s" / "model.safetensors"),
        load_file(reference / "model.safetensors"),
    )
    assert all(torch.equal(a[k], b[k]) for k in b)


def test_electra_with_its_embedding_projection(make_teacher, tmp_path):
    teacher = make_teacher("electra")
    shrink(
        ShrinkConfig(str(teacher), out=tmp_path / "s", num_layers=2, hidden_size=24, num_heads=4)
    )
    config = json.loads((tmp_path / "s" / "config.json").read_text())
    assert (config["embedding_size"], config["hidden_size"]) == (16, 24)
    s = load_file(tmp_path / "s" / "model.safetensors")
    assert s["electra.embeddings.word_embeddings.weight"].shape[1] == 16
    assert s["electra.embeddings_project.weight"].shape == (24, 16)
    with pytest.raises(KdcliError, match="embedding_size"):
        shrink(ShrinkConfig(str(teacher), out=tmp_path / "bad", hidden_size=16))


def test_unsupported_architecture_lists_the_supported_ones(tmp_path):
    config = transformers.GPT2Config(n_layer=2, n_embd=16, n_head=2, vocab_size=50)
    transformers.GPT2Model(config).save_pretrained(tmp_path / "gpt2")
    with pytest.raises(KdcliError, match=r"'gpt2' is not supported.*bert.*xlm-roberta"):
        shrink(ShrinkConfig(str(tmp_path / "gpt2"), out=tmp_path / "s"))


def test_python_api_accepts_a_list_of_layers(make_teacher, tmp_path):
    import kdcli

    result = kdcli.shrink(
        kdcli.ShrinkConfig(str(make_teacher("bert")), out=tmp_path / "s", layers=[0, 2])
    )
    assert result.kept_layers == [0, 2]


def test_a_plan_that_does_not_match_the_model_fails_before_anything_is_written(
    make_teacher, tmp_path, monkeypatch
):
    import kdcli.steps.shrink as shrink_module

    planned = shrink_module._student_config

    def wrong_config(*args, **kwargs):
        config = planned(*args, **kwargs)
        config["intermediate_size"] += 1  # transformers would build other shapes than planned
        return config

    monkeypatch.setattr(shrink_module, "_student_config", wrong_config)
    out = tmp_path / "s"
    with pytest.raises(KdcliError, match=r"intermediate\.dense\.weight is \(64, 32\)"):
        shrink(ShrinkConfig(str(make_teacher("bert")), out=out, num_layers=2))
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]
