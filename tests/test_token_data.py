"""Token classification data: MASSIVE slots (annot_utt), CoNLL files, word/tag list columns,
Hub datasets in the WikiANN layout; tag schemes; entity metrics checked against seqeval."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from kdcli.core.errors import KdcliError
from kdcli.data.slots import AnnotationError, parse_annot_utt
from kdcli.data.splits import DataConfig, load_split, tag_ids
from kdcli.data.tags import TagCounts, count_tags, detect_scheme, entities, tag_names, to_iob2

SAMPLE = Path(__file__).parents[1] / "examples" / "data" / "massive-sample"
TOKEN = "token-classification"


# --- MASSIVE annot_utt -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("annot", "locale", "words", "tags"),
    [
        (
            "wake me up at [time : five am] [date : this week]",
            "en-US",
            "wake me up at five am this week",
            "O O O O B-time I-time B-date I-date",
        ),
        (  # a bracket ends a word: d' stays outside the slot
            "mets une chanson d'[artist_name : adele]",
            "fr-FR",
            "mets une chanson d' adele",
            "O O O O B-artist_name",
        ),
        (  # ja-JP: characters, with or without spaces around the brackets; ASCII runs whole
            "[date : 今週末] は[weather_descriptor : 雨]が降る iphone",
            "ja-JP",
            "今 週 末 は 雨 が 降 る iphone",
            "B-date I-date I-date O B-weather_descriptor O O O O",
        ),
        ("[date : 明天]北京", "zh-CN", "明 天 北 京", "B-date I-date O O"),
        (  # th-TH: MASSIVE splits Thai at its spaces, like every other locale
            "ปลุก ฉัน [time : ตี ห้า]",
            "th-TH",
            "ปลุก ฉัน ตี ห้า",
            "O O B-time I-time",
        ),
    ],
)
def test_annot_utt_becomes_words_and_iob2_tags(annot, locale, words, tags):
    assert parse_annot_utt(annot, locale) == (words.split(), tags.split())


@pytest.mark.parametrize(
    ("annot", "message"),
    [
        ("wake me at [time : five am", "unmatched '\\['"),
        ("wake me at time : five am]", "unmatched '\\]'"),
        ("wake me at [time five am]", "unmatched"),
        ("wake me at [time : ]", "slot 'time' has no words"),
    ],
)
def test_unparseable_annot_utt(annot, message):
    with pytest.raises(AnnotationError, match=message):
        parse_annot_utt(annot, "en-US")


def test_every_locale_of_the_shipped_sample_has_slots():
    for split in ("train", "dev", "test"):
        examples = load_split(DataConfig(str(SAMPLE), task=TOKEN), split)
        assert examples.task == TOKEN and len(examples.language_names()) == 10
        assert examples.words is not None and examples.tags is not None
        for words, tags in zip(examples.words, examples.tags, strict=True):
            assert len(words) == len(tags) > 0
    ja = load_split(DataConfig(str(SAMPLE), languages=["ja-JP"], task=TOKEN), "dev")
    assert ja.words is not None and all(len(w) == 1 or w.isascii() for w in ja.words[0])
    assert "B-date" in ja.label_names() and ja.label_names()[0] == "O"
    # the same data read as intents is unchanged
    intents = load_split(DataConfig(str(SAMPLE)), "dev")
    assert intents.task == "sequence-classification" and intents.texts == list(
        load_split(DataConfig(str(SAMPLE), task=TOKEN), "dev").texts
    )


def test_bad_annot_utt_in_a_release_names_file_and_line(tmp_path: Path):
    data = tmp_path / "release" / "data"
    data.mkdir(parents=True)
    good = {"id": "1", "locale": "en-US", "partition": "dev", "intent": "alarm_set"}
    lines = [
        {**good, "utt": "wake me at five", "annot_utt": "wake me at [time : five]"},
        {**good, "id": "2", "utt": "wake me at five", "annot_utt": "wake me at [time : five"},
    ]
    (data / "en-US.jsonl").write_text("\n".join(json.dumps(r) for r in lines) + "\n")
    with pytest.raises(KdcliError, match=r"en-US.jsonl, line 2: annot_utt does not parse"):
        load_split(DataConfig(str(tmp_path / "release"), task=TOKEN), "dev")


# --- CoNLL, list columns, Hub datasets ---------------------------------------------------------

CONLL = """-DOCSTART- -X- O O

# language = de
# id = s1
Angela\tB-PER
Merkel\tI-PER
besucht\tO
Paris\tB-LOC

# language = en
EU NNP B-NP I-ORG
rejects VBZ B-VP O
German JJ B-NP I-MISC
"""


def test_conll_files_with_language_comments(tmp_path: Path):
    for split in ("train", "dev", "test"):  # a folder: each file is its split
        (tmp_path / f"{split}.conll").write_text(CONLL, encoding="utf-8")
    examples = load_split(DataConfig(str(tmp_path)), "train")
    assert examples.task == TOKEN
    assert examples.ids == ["s1", "train-2"] and examples.languages == ["de", "en"]
    assert examples.words == [["Angela", "Merkel", "besucht", "Paris"], ["EU", "rejects", "German"]]
    # CoNLL-2003 is IOB1: an entity may start with I-; kdcli keeps IOB2
    assert examples.tags == [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O", "B-MISC"]]
    assert examples.label_names() == [
        "O",
        "B-LOC",
        "I-LOC",
        "B-MISC",
        "I-MISC",
        "B-ORG",
        "I-ORG",
        "B-PER",
        "I-PER",
    ]


def test_conll_language_column_and_bioes(tmp_path: Path):
    folder = tmp_path / "data"
    folder.mkdir()
    text = "Nairobi\tsw\tS-LOC\nni\tsw\tO\nNew\tsw\tB-LOC\nYork\tsw\tE-LOC\n"
    for split in ("train", "dev", "test"):
        (folder / f"{split}.conll").write_text(text, encoding="utf-8")
    dev = load_split(DataConfig(str(folder), language_column="2"), "dev")
    assert dev.languages == ["sw"] and dev.tags == [["B-LOC", "O", "B-LOC", "I-LOC"]]
    with pytest.raises(KdcliError, match="not a IOB2 tag: pass tag_scheme bioes"):
        load_split(DataConfig(str(folder), tag_scheme="iob2"), "dev")
    with pytest.raises(KdcliError, match="give the language column's number"):
        load_split(DataConfig(str(folder), language_column="lang"), "dev")


def test_a_single_conll_file_is_split_by_kdcli_not_served_to_every_split(tmp_path: Path):
    sentences = [f"# language = {lang}\nword{i}\tO\nParis{i}\tB-LOC\n" for i in range(30)
                 for lang in ("en", "de")]  # fmt: skip
    path = tmp_path / "ner.conll"
    path.write_text("\n".join(sentences), encoding="utf-8")
    parts = {split: load_split(DataConfig(str(path)), split) for split in ("train", "dev", "test")}
    ids = {split: set(examples.ids) for split, examples in parts.items()}
    assert not ids["train"] & ids["dev"] and not ids["train"] & ids["test"]
    assert not ids["dev"] & ids["test"]
    assert sum(map(len, ids.values())) == 60
    assert [len(ids[s]) for s in ("train", "dev", "test")] == [48, 6, 6]  # 80/10/10
    assert parts["dev"].languages.count("en") == parts["dev"].languages.count("de") == 3
    assert parts["train"].split_rule is not None and parts["train"].task == TOKEN
    tiny = tmp_path / "one.conll"
    tiny.write_text("Ada\tB-PER\n", encoding="utf-8")
    with pytest.raises(KdcliError, match=r"too few rows .* use a folder of train/dev/test files"):
        load_split(DataConfig(str(tiny)), "train")


def test_conll_errors(tmp_path: Path):
    path = tmp_path / "bad.conll"
    path.write_text("Paris\tB-LOC\nalone\n", encoding="utf-8")
    with pytest.raises(KdcliError, match=r"bad.conll, line 2: expected a word and a tag"):
        load_split(DataConfig(str(path)), "test")
    path.write_text("Paris\tLOCATION\n", encoding="utf-8")
    with pytest.raises(KdcliError, match="tag 'LOCATION' is not in a known scheme"):
        load_split(DataConfig(str(path)), "test")
    with pytest.raises(KdcliError, match="tag_scheme 'bilou2' is unknown"):
        load_split(DataConfig(str(path), tag_scheme="bilou2"), "test")
    with pytest.raises(KdcliError, match="CoNLL token file"):
        load_split(DataConfig(str(path), task="sequence-classification"), "test")


def test_jsonl_with_word_and_tag_lists(tmp_path: Path):
    path = tmp_path / "ner.jsonl"
    rows = [
        {"tokens": ["Paris", "est", "belle"], "tags": ["B-LOC", "O", "O"], "lang": "fr"},
        {"tokens": ["Rom", "ist", "alt"], "tags": ["B-LOC", "O", "O"], "lang": "de"},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    examples = load_split(DataConfig(str(path)), "test")
    assert examples.task == TOKEN and examples.languages == ["fr", "de"]
    assert examples.texts == ["Paris est belle", "Rom ist alt"]
    rows[1]["tags"] = ["B-LOC", "O"]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    with pytest.raises(KdcliError, match=r"ner.jsonl, line 2: 2 tags for 3 words"):
        load_split(DataConfig(str(path)), "test")


def test_one_token_file_without_a_split_column_is_split_like_any_other(tmp_path: Path):
    path = tmp_path / "ner.jsonl"
    rows = [
        {"tokens": [f"city{i}", "is", "old"], "tags": ["B-LOC", "O", "O"], "lang": lang}
        for lang in ("fr", "de")
        for i in range(20)
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    parts = {split: load_split(DataConfig(str(path)), split) for split in ("train", "dev", "test")}
    assert [len(parts[s]) for s in ("train", "dev", "test")] == [32, 4, 4]
    ids = [set(parts[s].ids) for s in ("train", "dev", "test")]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    assert parts["test"].task == TOKEN and parts["test"].split_rule
    assert "no split column, so kdcli splits it per language (80% train" in parts["test"].notes[0]


def _wikiann(rows: list[tuple[list[str], list[int], str]]):
    import datasets

    features = datasets.Features(
        {
            "tokens": datasets.Sequence(datasets.Value("string")),
            "ner_tags": datasets.Sequence(
                datasets.ClassLabel(names=["O", "B-PER", "I-PER", "B-ORG", "I-ORG"])
            ),
            "langs": datasets.Sequence(datasets.Value("string")),
        }
    )
    return datasets.Dataset.from_dict(
        {
            "tokens": [r[0] for r in rows],
            "ner_tags": [r[1] for r in rows],
            "langs": [[r[2]] * len(r[0]) for r in rows],
        },
        features=features,
    )


WIKIANN = [(["Ada", "Lovelace"], [1, 2], "en"), (["bei", "Siemens", "AG"], [0, 3, 4], "de")]


def test_parquet_and_hub_datasets_in_the_wikiann_layout(tmp_path: Path, monkeypatch):
    import datasets

    _wikiann(WIKIANN).to_parquet(tmp_path / "test.parquet")
    examples = load_split(DataConfig(str(tmp_path / "test.parquet")), "test")
    assert examples.tags == [["B-PER", "I-PER"], ["O", "B-ORG", "I-ORG"]]
    assert examples.languages == ["en", "de"]

    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: _wikiann(WIKIANN))
    hub = load_split(DataConfig("someone/wikiann-mini:de"), "test")
    assert hub.task == TOKEN and hub.words == examples.words and hub.tags == examples.tags


def test_model_tags_must_cover_the_data(tmp_path: Path):
    path = tmp_path / "test.conll"
    path.write_text("Ada\tB-PER\nin\tO\nParis\tB-LOC\n", encoding="utf-8")
    examples = load_split(DataConfig(str(path)), "test")
    assert tag_ids(examples, {"O": 0, "B-PER": 1, "B-LOC": 2}, "m") == [[1, 0, 2]]
    with pytest.raises(KdcliError, match="m's tags do not cover the data's: missing B-LOC"):
        tag_ids(examples, {"O": 0, "B-PER": 1, "I-PER": 2}, "m")


# --- schemes and metrics -----------------------------------------------------------------------


def test_scheme_detection_and_normalisation():
    assert detect_scheme([["B-X", "I-X", "O"]]) == "iob2"
    assert detect_scheme([["I-X", "I-X", "B-X"]]) == "iob1"
    assert detect_scheme([["S-X", "O", "B-Y", "E-Y"]]) == "bioes"
    assert to_iob2(["I-X", "I-X", "B-X", "O", "I-Y"], "iob1", "e") == [
        "B-X",
        "I-X",
        "B-X",
        "O",
        "B-Y",
    ]
    assert to_iob2(["U-X", "B-Y", "I-Y", "L-Y"], "bioes", "e") == ["B-X", "B-Y", "I-Y", "I-Y"]
    assert tag_names([["B-b", "O"], ["I-a"]]) == ["O", "B-a", "I-a", "B-b", "I-b"]


def _random_tags(rng: random.Random, length: int) -> list[str]:
    return [
        rng.choice(["O", "O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG"]) for _ in range(length)
    ]


def test_entity_scores_match_seqeval_strict():
    seqeval = pytest.importorskip("seqeval.metrics")
    from seqeval.scheme import IOB2

    rng = random.Random(7)
    for _ in range(40):
        gold = [to_iob2(_random_tags(rng, rng.randint(1, 9)), "iob2", "g") for _ in range(12)]
        # predictions may be invalid IOB2 (a stray I-): strict mode drops such entities
        predicted = [_random_tags(rng, len(g)) for g in gold]
        counts = count_tags(gold, predicted)
        kwargs = dict(mode="strict", scheme=IOB2, zero_division=0)
        assert counts.f1 == pytest.approx(seqeval.f1_score(gold, predicted, **kwargs))
        assert counts.precision == pytest.approx(seqeval.precision_score(gold, predicted, **kwargs))
        assert counts.recall == pytest.approx(seqeval.recall_score(gold, predicted, **kwargs))
        assert counts.accuracy == pytest.approx(seqeval.accuracy_score(gold, predicted))
        macro = seqeval.f1_score(gold, predicted, average="macro", **kwargs)
        assert counts.macro_f1() == pytest.approx(macro)
        per_type = seqeval.f1_score(gold, predicted, average=None, **kwargs)
        types = sorted({e.type for seq in [*gold, *predicted] for e in entities(seq)})
        assert list(counts.type_f1()) == types
        assert list(counts.type_f1().values()) == pytest.approx(list(per_type))


def test_tag_counts_merge_equals_counting_everything():
    rng = random.Random(3)
    gold = [to_iob2(_random_tags(rng, 6), "iob2", "g") for _ in range(10)]
    predicted = [_random_tags(rng, 6) for _ in gold]
    merged = TagCounts()
    merged.merge(count_tags(gold[:4], predicted[:4]))
    merged.merge(count_tags(gold[4:], predicted[4:]))
    assert merged == count_tags(gold, predicted)


def test_massive_slots_from_the_hub_parquet_conversion(monkeypatch, tmp_path: Path):
    """The Hub path (its parquet conversion) gives the same words and tags as a release."""
    import huggingface_hub
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = {
        "id": ["1", "2"],
        "locale": ["zh-CN", "zh-CN"],
        "partition": ["test", "test"],
        "intent": [0, 0],
        "utt": ["明天北京天气", "下雨吗"],
        "annot_utt": ["[date : 明天][place_name : 北京]天气", "[weather_descriptor : 下雨]吗"],
    }
    name = "zh-CN/test/0000.parquet"
    (tmp_path / "zh-CN" / "test").mkdir(parents=True)
    pq.write_table(pa.table(rows), tmp_path / name)

    class FakeApi:
        def list_repo_files(self, repo, repo_type, revision):
            return [name]

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", lambda *a, **k: tmp_path / name)
    examples = load_split(DataConfig("massive", task=TOKEN), "test")
    assert examples.words == [list("明天北京天气"), list("下雨吗")]
    assert examples.tags == [
        ["B-date", "I-date", "B-place_name", "I-place_name", "O", "O"],
        ["B-weather_descriptor", "I-weather_descriptor", "O"],
    ]
    assert examples.texts == rows["utt"]
