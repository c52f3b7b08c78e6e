"""Vocabulary trimming: same tokens on the data, same logits, every tokenizer family, bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
import transformers
from conftest import DATA, leftovers
from factories import CORPUS, FAMILIES, TOKENIZER_KIND, make_model_dir, make_tokenizer
from safetensors.torch import load_file
from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers

from kdcli.core.errors import CheckFailedError, KdcliError
from kdcli.data.splits import DataConfig, load_split
from kdcli.files.provenance import from_ranges
from kdcli.steps.shrink import ShrinkConfig, shrink
from kdcli.vocab.ranking import rank_vocab
from kdcli.vocab.scripts import ALPHABET, NEITHER, SCRIPT, alphabets, char_script, fit
from kdcli.vocab.tokenizer_trim import (
    changed_texts,
    encode,
    parse,
    trimmed_tokenizer_json,
    unk_rate,
    write_tokenizer,
)

transformers.utils.logging.disable_progress_bar()
transformers.utils.logging.set_verbosity_error()

MINI = str(DATA / "massive-mini")
LANGUAGES = ["en-US", "de-DE"]


def _split(split: str = "train", languages: list[str] | None = LANGUAGES) -> list[str]:
    return load_split(DataConfig(data=MINI, languages=languages), split).texts


@pytest.fixture(scope="module")
def corpus() -> list[str]:
    """Text of every split and locale: the teacher's tokenizer knows more than the data needs."""
    return [t for split in ("train", "dev", "test") for t in _split(split, None)] + CORPUS


def _bert_class(corpus: list[str]) -> Any:
    """mBERT's own tokenizer class (its __init__ rebuilds the backend from the vocabulary)."""
    trained = make_tokenizer("wordpiece", corpus, vocab_size=800)
    return transformers.BertTokenizer(vocab=trained.get_vocab(), do_lower_case=False)


def _deberta_class(corpus: list[str]) -> Any:
    """mDeBERTa's own tokenizer class, built from a trained Unigram vocabulary with scores."""
    trained = make_tokenizer("unigram-deberta", corpus, vocab_size=800)
    vocab = json.loads(trained.backend_tokenizer.to_str())["model"]["vocab"]
    return transformers.DebertaV2Tokenizer(vocab=[tuple(v) for v in vocab])


def _char_bpe(corpus: list[str]) -> Any:
    """A character-level BPE with a `##` continuation prefix (not byte-level)."""
    backend = Tokenizer(models.BPE(unk_token="[UNK]", continuing_subword_prefix="##"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    trainer = trainers.BpeTrainer(
        vocab_size=800, special_tokens=specials, continuing_subword_prefix="##"
    )
    backend.train_from_iterator(corpus, trainer)
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        special_tokens=[("[CLS]", backend.token_to_id("[CLS]")), ("[SEP]", 3)],
    )
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=backend,
        **dict(
            zip(
                ("pad_token", "unk_token", "cls_token", "sep_token", "mask_token"),
                specials,
                strict=True,
            )
        ),
    )


TOKENIZERS = {
    "unigram-xlmr": lambda c: make_tokenizer("unigram-roberta", c, vocab_size=800),
    "unigram": lambda c: make_tokenizer("unigram-deberta", c, vocab_size=800),
    "unigram-deberta-class": _deberta_class,
    "wordpiece": lambda c: make_tokenizer("wordpiece", c, vocab_size=800),
    "wordpiece-bert-class": _bert_class,
    "bpe-byte-level": lambda c: make_tokenizer("bpe", c, vocab_size=800),
    "bpe-chars": _char_bpe,
}


def _trim(
    tokenizer: Any,
    tmp_path: Path,
    texts: list[str],
    level: str = "data",
    vocab_size: int | None = None,
    **options: Any,
) -> tuple[Any, Any, Path]:
    """Save `tokenizer`, trim it on `texts` to `level` (or `vocab_size` tokens):
    (teacher as reloaded, selection, student dir)."""
    teacher_dir = tmp_path / "teacher"
    tokenizer.save_pretrained(teacher_dir)
    teacher = transformers.AutoTokenizer.from_pretrained(teacher_dir)
    ranking = rank_vocab(teacher, texts, "teacher", **options)
    selection = ranking.select(vocab_size or ranking.ends[level])
    student_dir = tmp_path / "student"
    student_dir.mkdir()
    write_tokenizer(teacher, selection.kept, teacher_dir, student_dir, "teacher")
    return teacher, selection, student_dir


@pytest.mark.parametrize("name", sorted(TOKENIZERS))
def test_trimmed_tokenizer_gives_the_same_tokens_on_every_data_text(name, corpus, tmp_path):
    texts = _split()
    teacher, selection, student_dir = _trim(TOKENIZERS[name](corpus), tmp_path, texts)
    student = transformers.AutoTokenizer.from_pretrained(student_dir)
    assert type(student) is type(teacher)
    assert len(student) == len(selection.kept) < len(teacher)
    new_ids = selection.new_ids
    for text, before, after in zip(
        texts, encode(teacher, texts), encode(student, texts), strict=True
    ):
        assert student.convert_ids_to_tokens(after) == teacher.convert_ids_to_tokens(before), text
        assert after == [new_ids[i] for i in before], text
    assert changed_texts(student_dir, texts, encode(teacher, texts), new_ids) == []
    for special in ("pad_token", "unk_token", "cls_token", "sep_token", "mask_token"):
        assert getattr(student, special) == getattr(teacher, special)
        assert getattr(student, special + "_id") == new_ids[getattr(teacher, special + "_id")]
    # Text outside the data still tokenizes, into kept pieces or the unknown token.
    unseen = student(_split("test", ["ja-JP", "ru-RU"]))["input_ids"]
    assert all(0 <= i < len(student) for ids in unseen for i in ids)


@pytest.mark.parametrize("name", ["unigram", "wordpiece", "bpe-chars"])
def test_fallback_alphabet_keeps_unseen_words_of_the_same_script_known(name, corpus, tmp_path):
    teacher, selection, student_dir = _trim(TOKENIZERS[name](corpus), tmp_path, _split())
    held_out = [t for t in _split("dev") if t not in set(_split())]
    student = transformers.AutoTokenizer.from_pretrained(student_dir)
    assert selection.fallback > 0
    assert unk_rate(teacher, held_out) == 0.0
    assert unk_rate(student, held_out) == 0.0


def _hand_made_unigram(pieces: list[tuple[str, float]]) -> Any:
    backend = Tokenizer(models.Unigram(pieces, unk_id=0))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return transformers.PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>")


def _naive(tokenizer: Any, texts: list[str]) -> Tokenizer:
    """What trimming to exactly the produced tokens would give: the baseline that breaks."""
    added = json.loads(tokenizer.backend_tokenizer.to_str())["added_tokens"]
    used = {i for ids in encode(tokenizer, texts) for i in ids}
    used = sorted(used | {0} | {int(t["id"]) for t in added})
    return Tokenizer.from_str(json.dumps(trimmed_tokenizer_json(tokenizer, used, "t")))


def test_unigram_trap_dropping_a_single_character_piece_changes_viterbi(tmp_path):
    # "xyzw" is segmented xy+zw (score -24); x+yzw costs -31. Keeping only the produced pieces
    # drops "x", so x becomes <unk> scored min(-12, ...) - 10 = -22, and <unk>+yzw (-23) wins.
    pieces = [("<unk>", 0.0), ("x", -30.0), ("xy", -12.0), ("zw", -12.0), ("yzw", -1.0)]
    tokenizer = _hand_made_unigram(pieces)
    texts = ["xyzw", "yzw"]
    assert tokenizer.tokenize("xyzw") == ["xy", "zw"]
    assert _naive(tokenizer, texts).encode("xyzw").tokens == ["x", "yzw"]  # x is now <unk>
    _, selection, student_dir = _trim(tokenizer, tmp_path, texts)
    student = transformers.AutoTokenizer.from_pretrained(student_dir)
    assert student.tokenize("xyzw") == ["xy", "zw"]
    assert selection.kept == [0, 1, 2, 3, 4]


def test_unigram_keeps_the_lowest_scoring_piece_so_the_unknown_score_stays(tmp_path):
    pieces = [("<unk>", 0.0), ("a", -2.0), ("b", -3.0), ("ab", -1.0), ("q", -40.0)]
    _, selection, _ = _trim(_hand_made_unigram(pieces), tmp_path, ["ab ab"])
    assert 4 in selection.kept  # "q" never occurs in the data, but it holds min(score)


def _merged(a: str, b: str, prefix: str) -> str:
    return a + (b[len(prefix) :] if prefix and b.startswith(prefix) else b)


@pytest.mark.parametrize("name", ["bpe-byte-level", "bpe-chars"])
def test_bpe_keeps_the_merge_closure_of_every_kept_token(name, corpus, tmp_path):
    tokenizer = TOKENIZERS[name](corpus)
    texts = _split()
    naive = _naive(tokenizer, texts)
    assert any(naive.encode(t).tokens != tokenizer.tokenize(t) for t in texts), (
        "without the merge closure some words fall apart: the intermediate merges are missing"
    )
    _, _, student_dir = _trim(tokenizer, tmp_path, texts)
    spec = json.loads((student_dir / "tokenizer.json").read_text())["model"]
    vocab = spec["vocab"]
    prefix = spec.get("continuing_subword_prefix") or ""
    produced = {_merged(a, b, prefix) for a, b in spec["merges"]}
    for a, b in spec["merges"]:
        assert a in vocab and b in vocab
    teacher_merges = json.loads(tokenizer.backend_tokenizer.to_str())["model"]["merges"]
    teacher_made = {_merged(a, b, prefix) for a, b in teacher_merges}
    for token in vocab:
        if token in teacher_made:
            assert token in produced, f"{token!r} is kept but no kept merge builds it"
    ranks = {tuple(m): r for r, m in enumerate(teacher_merges)}
    kept_ranks = [ranks[tuple(m)] for m in spec["merges"]]
    assert kept_ranks == sorted(kept_ranks)


def test_vocab_size_keeps_the_most_frequent_tokens(corpus, tmp_path):
    tokenizer = TOKENIZERS["unigram"](corpus)
    texts = _split()
    teacher, uncapped, _ = _trim(tokenizer, tmp_path / "a", texts)
    _, capped, _ = _trim(tokenizer, tmp_path / "b", texts, vocab_size=120)
    assert len(capped.kept) == 120 < len(uncapped.kept)
    assert capped.dropped_used > 0
    counts: dict[int, int] = {}
    for ids in encode(teacher, texts):
        for i in ids:
            counts[i] = counts.get(i, 0) + 1
    specials = set(teacher.all_special_ids)
    tokens = teacher.convert_ids_to_tokens(list(range(len(teacher))))
    # Beyond the special tokens and the single-character fallback, the cap keeps a prefix of
    # the tokens ranked by frequency: nothing dropped was seen more often than anything kept.
    ordinary = [i for i in capped.kept if i in counts and i not in specials and len(tokens[i]) > 1]
    dropped = [i for i in counts if i not in capped.kept]
    assert ordinary and dropped
    assert max(counts[i] for i in dropped) <= min(counts[i] for i in ordinary)


def test_min_frequency_drops_only_rare_tokens(corpus, tmp_path):
    tokenizer = TOKENIZERS["wordpiece"](corpus)
    texts = _split()
    teacher, selection, _ = _trim(tokenizer, tmp_path, texts, min_frequency=3)
    counts: dict[int, int] = {}
    for ids in encode(teacher, texts):
        for i in ids:
            counts[i] = counts.get(i, 0) + 1
    dropped = [i for i in counts if i not in selection.kept]
    assert dropped and all(counts[i] < 3 for i in dropped)
    assert selection.dropped_used == len(dropped)


# --- unseen text: the levels and the held-out check -------------------------------------------


def _held_out(languages: list[str] | None = LANGUAGES) -> list[str]:
    seen = set(_split("train", languages))
    texts = _split("dev", languages) + _split("test", languages)
    return list(dict.fromkeys(t for t in texts if t not in seen))


def _languages(split: str) -> list[str]:
    return load_split(DataConfig(data=MINI, languages=LANGUAGES), split).languages


@pytest.mark.parametrize("name", sorted(TOKENIZERS))
def test_a_text_keeps_its_tokens_exactly_when_all_of_them_are_kept(name, corpus, tmp_path):
    """The claim the held-out share rests on, for every family and at every kind of cut: the
    texts the reloaded student tokenizer changes are exactly those `needed` predicts."""
    texts, languages = _split(), _languages("train")
    held = _held_out(None)  # every locale: some texts need tokens of scripts the data lacks
    tokenizer = TOKENIZERS[name](corpus)
    teacher_dir = tmp_path / "teacher"
    tokenizer.save_pretrained(teacher_dir)
    teacher = transformers.AutoTokenizer.from_pretrained(teacher_dir)
    ranking = rank_vocab(teacher, texts, "teacher", languages=languages)
    ends = ranking.ends
    assert ends["forced"] < ends["data"] < ends["alphabet"] <= ends["script"] < len(teacher)
    before = encode(teacher, held)
    needed = ranking.needed(before)
    cuts = {ends["data"], (ends["data"] + ends["alphabet"]) // 2, ends["alphabet"], ends["script"]}
    changed_at = {}
    for size in sorted(cuts):
        selection = ranking.select(size)
        student_dir = tmp_path / f"student-{size}"
        student_dir.mkdir()
        write_tokenizer(teacher, selection.kept, teacher_dir, student_dir, "teacher")
        changed = changed_texts(student_dir, held, before, selection.new_ids)
        assert changed == [i for i, n in enumerate(needed) if n > size], size
        changed_at[size] = len(changed)
    assert changed_at[ends["data"]] >= changed_at[ends["script"]]
    # What the script level still changes is text written in other scripts (ja, ru, ar here).
    latin = [i for i, t in enumerate(held) if t.isascii() or t in set(_held_out())]
    assert all(needed[i] <= ends["script"] for i in latin)


@pytest.mark.parametrize("name", ["unigram-xlmr", "wordpiece", "bpe-byte-level", "bpe-chars"])
def test_levels_keep_held_out_text_of_the_data_languages(name, corpus, tmp_path):
    held, languages = _held_out(), _languages("train")
    tokenizer = TOKENIZERS[name](corpus)  # trained once: training is not deterministic
    teacher, data, data_dir = _trim(tokenizer, tmp_path / "a", _split(), languages=languages)
    _, script, script_dir = _trim(
        tokenizer, tmp_path / "b", _split(), "script", languages=languages
    )
    before = encode(teacher, held)
    assert changed_texts(script_dir, held, before, script.new_ids) == []
    assert len(data.kept) < len(script.kept) < len(teacher)  # ja, ru and ar tokens are gone
    if not name.startswith("bpe"):  # BPE's merge closure happens to cover these few texts
        assert changed_texts(data_dir, held, before, data.new_ids), "the data alone covers all"


def test_the_data_languages_decide_the_alphabet_and_scripts():
    found = alphabets(
        ["Grüße aus Köln", "weck mich", "今日は晴れ、ホテル", "Привет"],
        ["de", "de", "ja", "ru"],
        str,
    )
    de, ja, _ru = found
    assert de.scripts == {"LATIN"} and {"ü", "Ü", "K", "k"} <= de.letters and "é" not in de.letters
    assert ja.scripts == {"HAN", "KANA"} and ja.whole == {"HAN", "KANA"}
    assert fit("grüß", found) == ALPHABET
    assert fit("café", found) == SCRIPT  # Latin, but "é" is no letter of the German data
    assert fit("電車", found) == ALPHABET  # any ideograph: Han is kept whole
    assert fit("Привет", found) == ALPHABET and fit("Жї", found) == SCRIPT
    assert fit("Ω", found) == NEITHER
    assert fit("12:30 %s ▁ ##", found) == ALPHABET  # no letters: fits every language
    assert fit("kö Привет", found) == NEITHER  # no one language writes both


def test_one_greek_letter_does_not_make_german_greek():
    (de,) = alphabets(["Der Wert ist " + "sehr klein " * 40 + "in μs"], ["de"], str)
    assert de.scripts == {"LATIN"} and "μ" not in de.letters
    assert char_script("ー") == "KANA" and char_script("Ａ") == "LATIN"
    assert char_script("\u0301") is None and char_script("7") is None


def test_byte_level_tokens_are_read_as_the_text_they_stand_for(corpus):
    teacher = TOKENIZERS["bpe-byte-level"](corpus)
    model = parse(teacher, "t")
    assert model.byte_level
    ids = model.ids
    assert model.text(ids["Ġw"]) == " w"
    # "ä" spells byte 0xE4, the first of the three bytes of 今: alone it is no character
    assert model.text(ids["ä"]) == "\ufffd"
    assert char_script("\ufffd") is None


# --- the student model -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def big_vocab_teacher(tmp_path_factory, corpus):
    """make(family) -> a tiny model whose tokenizer (800 pieces) knows every split and locale."""
    cache: dict[str, Path] = {}

    def make(family: str) -> Path:
        if family not in cache:
            tokenizer = make_tokenizer(TOKENIZER_KIND[family], corpus, vocab_size=800)
            folder = tmp_path_factory.mktemp(f"vocab-{family}") / "model"
            cache[family] = make_model_dir(folder, family, tokenizer=tokenizer)
        return cache[family]

    return make


def _logits(model_dir: Path, texts: list[str]) -> torch.Tensor:
    model = transformers.AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir)
    with torch.no_grad():
        return model(**tokenizer(texts, padding=True, return_tensors="pt")).logits


@pytest.mark.parametrize("family", FAMILIES)
def test_identity_shrink_with_a_trimmed_vocabulary_gives_the_teachers_logits(
    family, big_vocab_teacher, tmp_path
):
    teacher = big_vocab_teacher(family)
    result = shrink(
        ShrinkConfig(str(teacher), out=tmp_path / "s", vocab_from=MINI, languages=LANGUAGES)
    )
    texts = _split()
    assert torch.equal(_logits(teacher, texts), _logits(tmp_path / "s", texts))
    vocab = result.vocab
    assert vocab is not None and vocab.changed_texts == 0 and vocab.texts == len(texts)
    assert vocab.student < vocab.teacher
    assert result.student_embedding_params < result.teacher_embedding_params
    assert result.student_params < result.teacher_params
    config = json.loads((tmp_path / "s" / "config.json").read_text())
    assert config["vocab_size"] == vocab.student


def test_kept_rows_are_the_teachers_rows_and_provenance_records_the_map(
    big_vocab_teacher, tmp_path
):
    teacher = big_vocab_teacher("xlm-roberta")
    result = shrink(
        ShrinkConfig(
            str(teacher), out=tmp_path / "s", vocab_from=MINI, languages=["en-US", "de-DE"]
        )
    )
    record = json.loads((tmp_path / "s" / "kdcli.json").read_text())["vocab"]
    kept = from_ranges(record["kept"])
    assert len(kept) == record["student"] == result.vocab.student
    assert record["data"]["spec"] == MINI and record["data"]["languages"] == LANGUAGES
    assert record["tokenizer"] == "Unigram" and record["changed_texts"] == 0
    assert record["held_out_source"] == f"{MINI} (dev+test)" and record["held_out_texts"] > 0
    assert record["passed"] is True and record["held_out_changed"] == 0
    name = "roberta.embeddings.word_embeddings.weight"
    t = load_file(teacher / "model.safetensors")[name]
    s = load_file(tmp_path / "s" / "model.safetensors")[name]
    assert torch.equal(s, t[kept])
    assert not (tmp_path / "s" / "sentencepiece.bpe.model").exists()


def _tokenizer_with_specials_at_the_end(corpus: list[str]) -> Any:
    """Like XLM-R's <mask> (250001): [MASK] and [PAD] are added after training, at the end."""
    backend = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(vocab_size=600, special_tokens=["[UNK]", "[CLS]", "[SEP]"])
    backend.train_from_iterator(corpus, trainer)
    backend.add_special_tokens(["[MASK]", "[PAD]"])
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 1), ("[SEP]", 2)]
    )
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=backend,
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        pad_token="[PAD]",
        bos_token="[CLS]",
        eos_token="[SEP]",
    )


def test_special_token_ids_move_in_the_config_and_tokenizer_and_padding_still_works(
    corpus, tmp_path
):
    tokenizer = _tokenizer_with_specials_at_the_end(corpus)
    teacher = make_model_dir(tmp_path / "teacher", "bert", tokenizer=tokenizer)
    assert tokenizer.pad_token_id == len(tokenizer) - 1
    result = shrink(
        ShrinkConfig(str(teacher), out=tmp_path / "s", vocab_from=MINI, languages=LANGUAGES)
    )
    student = transformers.AutoTokenizer.from_pretrained(tmp_path / "s")
    config = json.loads((tmp_path / "s" / "config.json").read_text())
    assert student.pad_token_id == len(student) - 1 == config["pad_token_id"]
    assert student.mask_token_id == len(student) - 2
    teacher_config = json.loads((teacher / "config.json").read_text())
    assert config["pad_token_id"] < teacher_config["pad_token_id"]
    assert result.vocab.student == len(student)
    texts = _split()  # of many lengths, so the batch is padded
    assert torch.equal(_logits(teacher, texts), _logits(tmp_path / "s", texts))


def test_vocab_trimming_composes_with_layers_and_width_in_one_command(
    cli, big_vocab_teacher, tmp_path
):
    teacher = big_vocab_teacher("bert")
    out = tmp_path / "s"
    result = cli(
        "shrink", teacher, "--out", out, "--vocab-from", MINI, "--languages", "en-US,de-DE",
        "--num-layers", "2", "--hidden-size", "16", "--intermediate-size", "40",
        "--width-strategy", "magnitude", "--json", tmp_path / "r.json",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert "vocabulary" in result.stderr and "in token embeddings" in result.stderr
    assert "unknown tokens on" in result.stderr
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["kept_layers"] == [0, 3] and data["student"]["hidden"] == 16
    assert data["vocab"]["student"] < data["vocab"]["teacher"]
    assert data["vocab"]["unk_rate_student"] is not None
    model = transformers.AutoModelForSequenceClassification.from_pretrained(out)
    assert model.config.vocab_size == data["vocab"]["student"]
    assert model.bert.embeddings.word_embeddings.weight.shape == (data["vocab"]["student"], 16)
    _logits(out, _split())


def test_vocab_size_cap_reports_what_changed(big_vocab_teacher, tmp_path):
    teacher = big_vocab_teacher("xlm-roberta")
    result = shrink(
        ShrinkConfig(
            str(teacher), out=tmp_path / "s", vocab_from=MINI, vocab_size=100, max_changed=1.0
        )
    )
    assert result.vocab.student <= 100 and result.vocab.dropped_used > 0
    assert result.vocab.changed_texts > 0
    assert any("tokenize differently" in note for note in result.notes)


def test_default_trimming_keeps_held_out_text_and_records_the_check(
    cli, big_vocab_teacher, tmp_path
):
    out, report = tmp_path / "s", tmp_path / "r.json"
    result = cli(
        "shrink", big_vocab_teacher("bert"), "--out", out, "--vocab-from", MINI,
        "--languages", "en-US,de-DE", "--json", report,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert "held-out texts tokenize differently (0.00%, within --max-changed 0.50%" in result.stderr
    vocab = json.loads(report.read_text())["vocab"]
    assert vocab["held_out_changed"] == 0 and vocab["held_out_texts"] == len(_held_out())
    assert vocab["level"] in ("alphabet", "script") and vocab["passed"] is True
    assert vocab["changed_by_language"] == {
        "de-DE": [0, vocab["changed_by_language"]["de-DE"][1]],
        "en-US": [0, vocab["changed_by_language"]["en-US"][1]],
    }
    record = json.loads((out / "kdcli.json").read_text())
    assert record["passed"] is True and record["vocab"]["max_changed"] == 0.005


def test_too_many_changed_held_out_texts_fail_and_mark_the_student(
    cli, big_vocab_teacher, tmp_path
):
    out, report = tmp_path / "s", tmp_path / "r.json"
    result = cli(
        "shrink", big_vocab_teacher("xlm-roberta"), "--out", out, "--vocab-from", MINI,
        "--languages", "en-US,de-DE", "--vocab-keep", "data", "--json", report,
    )  # fmt: skip
    assert result.exit_code == 1, result.stderr
    error = result.stderr.strip().splitlines()[-1]
    assert "vocabulary check failed" in error and "over --max-changed 0.50%" in error
    assert "marked failed" in error and "--vocab-keep script" in error
    data = json.loads(report.read_text())
    assert data["passed"] is False and data["vocab"]["passed"] is False
    assert data["vocab"]["held_out_changed"] > 0
    record = json.loads((out / "kdcli.json").read_text())
    assert record["passed"] is False and record["vocab"]["passed"] is False
    assert (out / "model.safetensors").is_file() and leftovers(tmp_path) == []
    with pytest.raises(CheckFailedError, match="vocabulary check failed") as failed:
        shrink(
            ShrinkConfig(
                str(big_vocab_teacher("xlm-roberta")),
                out=tmp_path / "lib",
                vocab_from=MINI,
                languages=LANGUAGES,
                vocab_keep="data",
            )
        )
    assert failed.value.result.vocab.held_out_changed == data["vocab"]["held_out_changed"]


def test_max_changed_lets_the_user_accept_more_change(cli, big_vocab_teacher, tmp_path):
    result = cli(
        "shrink", big_vocab_teacher("xlm-roberta"), "--out", tmp_path / "s", "--vocab-from", MINI,
        "--languages", "en-US,de-DE", "--vocab-keep", "data", "--max-changed", "100%",
        "--json", tmp_path / "r.json",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    vocab = json.loads((tmp_path / "r.json").read_text())["vocab"]
    assert vocab["held_out_changed"] > 0 and vocab["max_changed"] == 1.0 and vocab["passed"]


def test_auto_takes_the_smallest_level_within_max_changed(big_vocab_teacher, tmp_path):
    teacher = str(big_vocab_teacher("xlm-roberta"))
    runs = {
        allowed: shrink(
            ShrinkConfig(
                teacher,
                out=tmp_path / str(allowed),
                vocab_from=MINI,
                languages=LANGUAGES,
                max_changed=allowed,
            )
        ).vocab
        for allowed in (1.0, 0.0)
    }
    loose, strict = runs[1.0], runs[0.0]
    assert loose.level == "data" and loose.student == loose.levels["data"]
    assert strict.level in ("alphabet", "script") and strict.held_out_changed == 0
    assert strict.student == strict.levels[strict.level] > loose.student
    assert loose.held_out_changed > 0 and loose.passed


def test_vocab_check_gives_the_held_out_texts(big_vocab_teacher, tmp_path):
    check = tmp_path / "check.jsonl"
    texts = ["wie wird das wetter morgen in hamburg", "what time is it in sydney right now"]
    check.write_text(
        "".join(json.dumps({"text": t, "label": "x", "language": "en-US"}) + "\n" for t in texts)
    )
    vocab = shrink(
        ShrinkConfig(
            str(big_vocab_teacher("bert")),
            out=tmp_path / "s",
            vocab_from=MINI,
            languages=["en-US"],
            vocab_check=str(check),
        )
    ).vocab
    # a check file without a split column counts whole (for training kdcli would split it)
    assert vocab.held_out_texts == 2 and vocab.held_out_source == f"{check} (all rows)"


def _train_rows(path: Path) -> Path:
    """The mini sample's en-US train texts as one jsonl file without a split column."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [{"text": t, "label": "x", "language": "en-US"} for t in _split("train", ["en-US"])]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_data_without_held_out_text_asks_for_vocab_check(cli, big_vocab_teacher, tmp_path):
    data = _train_rows(tmp_path / "train-only" / "train.jsonl").parent  # no dev or test file
    same = _train_rows(tmp_path / "same.jsonl")  # held-out texts that are all training texts
    for args, expected in (
        (["--vocab-from", data], "add --vocab-check DATA"),
        (["--vocab-from", data, "--vocab-check", same], "not in the --vocab-from train split"),
    ):
        result = cli("shrink", big_vocab_teacher("bert"), "--out", tmp_path / "s", *args)
        assert result.exit_code == 2, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert expected in result.stderr and "no dev or test texts" in result.stderr
        assert not (tmp_path / "s").exists() and leftovers(tmp_path) == []


def test_max_changed_out_of_range_is_refused_by_the_library(big_vocab_teacher, tmp_path):
    with pytest.raises(KdcliError, match=r"max_changed 1\.5 is a share"):
        shrink(
            ShrinkConfig(
                str(big_vocab_teacher("bert")), out=tmp_path / "s", vocab_from=MINI, max_changed=1.5
            )
        )


# --- bad input ---------------------------------------------------------------------------------


def _word_level_model(tmp_path: Path) -> Path:
    words = sorted({w for t in CORPUS for w in t.split()})
    vocab = {w: i for i, w in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words])}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="[PAD]",
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )
    return make_model_dir(tmp_path / "wordlevel", "bert", tokenizer=tokenizer)


def _empty_texts(tmp_path: Path) -> Path:
    path = tmp_path / "empty.jsonl"
    rows = [{"text": " ", "label": "a", "language": "en-US"}, {"text": "", "label": "b"}]
    rows[1]["language"] = "en-US"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


BAD = {
    "vocab size below the specials": (
        ["--vocab-from", MINI, "--vocab-size", "3"],
        "--vocab-size 3",
    ),
    "vocab size without data": (["--vocab-size", "100"], "--vocab-from"),
    "both caps": (["--vocab-from", MINI, "--vocab-size", "9", "--min-frequency", "2"], "one of"),
    "zero min frequency": (["--vocab-from", MINI, "--min-frequency", "0"], "--min-frequency 0"),
    "missing data": (["--vocab-from", "no/such/data.jsonl"], "no/such/data.jsonl"),
    "unknown language": (["--vocab-from", MINI, "--languages", "xx-XX"], "--languages"),
    "languages without data": (["--languages", "en-US"], "--vocab-from or --calib-data"),
    "activation without calibration": (["--width-strategy", "activation"], "--calib-data"),
    "importance without calibration": (
        ["--num-layers", "2", "--layer-strategy", "importance"],
        "--calib-data",
    ),
    "calibration data unused": (["--calib-data", MINI], "--width-strategy activation"),
    "calibration samples without data": (["--calib-samples", "10"], "--calib-data"),
    "importance without a count": (
        ["--layer-strategy", "importance", "--calib-data", MINI],
        "--num-layers",
    ),
    "unknown width strategy": (["--width-strategy", "loudest"], "activation"),
    "max changed not a number": (["--vocab-from", MINI, "--max-changed", "lots"], "'lots'"),
    "max changed above 100%": (["--vocab-from", MINI, "--max-changed", "150%"], "150%"),
    "negative max changed": (["--vocab-from", MINI, "--max-changed", "-1"], "between 0% and"),
    "max changed without data": (["--max-changed", "1%"], "needs --vocab-from"),
    "keep without data": (["--vocab-keep", "script"], "needs --vocab-from"),
    "unknown keep": (["--vocab-from", MINI, "--vocab-keep", "most"], "--vocab-keep 'most'"),
    "check without data": (["--vocab-check", MINI], "needs --vocab-from"),
    "missing check data": (
        ["--vocab-from", MINI, "--vocab-check", "no/such/check.jsonl"],
        "--vocab-check 'no/such/check.jsonl'",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_vocab_and_calibration_options_exit_2_with_one_line(
    case, cli, big_vocab_teacher, tmp_path
):
    args, expected = BAD[case]
    result = cli("shrink", big_vocab_teacher("xlm-roberta"), "--out", tmp_path / "s", *args)
    assert result.exit_code == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert expected in result.stderr
    assert not (tmp_path / "s").exists() and leftovers(tmp_path) == []


def test_data_with_no_text_is_refused(cli, big_vocab_teacher, tmp_path):
    data = _empty_texts(tmp_path)
    result = cli("shrink", big_vocab_teacher("bert"), "--out", tmp_path / "s", "--vocab-from", data)
    assert result.exit_code == 2
    assert "holds no text" in result.stderr and str(data) in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "s").exists() and leftovers(tmp_path) == []


def test_a_tokenizer_that_cannot_be_trimmed_is_named(cli, tmp_path):
    teacher = _word_level_model(tmp_path)
    result = cli("shrink", teacher, "--out", tmp_path / "s", "--vocab-from", MINI)
    assert result.exit_code == 2
    assert "WordLevel" in result.stderr and "cannot be trimmed" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "s").exists() and leftovers(tmp_path) == []
    with pytest.raises(KdcliError, match="WordLevel"):
        shrink(ShrinkConfig(str(teacher), out=tmp_path / "s", vocab_from=MINI))
