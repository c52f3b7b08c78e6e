"""Data sources: MASSIVE (hub parquet, release tarball/folder), local files, hub datasets."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest

from kdcli.core.errors import KdcliError
from kdcli.data import sources as datasources
from kdcli.data.splits import DataConfig, Examples, label_ids, load_split, normalize_split

ROWS = [
    # id, locale, partition, intent, utt
    ("1", "en-US", "train", "alarm_set", "wake me up at seven"),
    ("2", "en-US", "train", "weather_query", "is it raining"),
    ("3", "en-US", "dev", "alarm_set", "alarm at nine please"),
    ("4", "en-US", "test", "weather_query", "weather in paris"),
    ("1", "ja-JP", "train", "alarm_set", "七時に起こして"),
    ("2", "ja-JP", "train", "weather_query", "雨が降っていますか"),
    ("3", "ja-JP", "dev", "alarm_set", "九時にアラーム"),
    ("4", "ja-JP", "test", "weather_query", "パリの天気"),
    ("1", "ar-SA", "train", "alarm_set", "أيقظني في السابعة"),
    ("2", "ar-SA", "train", "weather_query", "هل تمطر"),
    ("3", "ar-SA", "dev", "alarm_set", "منبه في التاسعة"),
    ("4", "ar-SA", "test", "weather_query", "الطقس في باريس"),
]


def write_release(root: Path, rows=ROWS) -> Path:
    """A MASSIVE 1.1 release layout: <root>/1.1/data/<locale>.jsonl."""
    data = root / "1.1" / "data"
    data.mkdir(parents=True)
    for locale in sorted({r[1] for r in rows}):
        with (data / f"{locale}.jsonl").open("w", encoding="utf-8") as handle:
            for id_, loc, part, intent, utt in rows:
                if loc == locale:
                    record = {
                        "id": id_,
                        "locale": loc,
                        "partition": part,
                        "scenario": intent.split("_")[0],
                        "intent": intent,
                        "utt": utt,
                        "annot_utt": utt,
                    }
                    handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    return root


@pytest.fixture
def release(tmp_path: Path) -> Path:
    return write_release(tmp_path / "amazon-massive-dataset-1.1")


@pytest.mark.parametrize("which", ["root", "version", "data"])
def test_release_folder_at_any_level(release: Path, which: str):
    path = {"root": release, "version": release / "1.1", "data": release / "1.1" / "data"}[which]
    examples = load_split(DataConfig(str(path)), "train")
    assert len(examples) == 6
    assert examples.language_names() == ["ar-SA", "en-US", "ja-JP"]
    assert examples.label_names() == ["alarm_set", "weather_query"]
    assert examples.source.startswith("massive-release:")


def test_release_tarball_is_read_without_extracting(release: Path, tmp_path: Path):
    tarball = tmp_path / "amazon-massive-dataset-1.1.tar.gz"
    with tarfile.open(tarball, "w:gz") as archive:
        archive.add(release / "1.1", arcname="1.1")
    from_tar = load_split(DataConfig(str(tarball)), "test")
    from_dir = load_split(DataConfig(str(release)), "test")
    assert from_tar.texts == from_dir.texts
    assert from_tar.fingerprint() == from_dir.fingerprint()


def test_splits_languages_and_aliases(release: Path):
    dev = load_split(DataConfig(str(release), languages=["ja-JP"]), "validation")
    assert dev.split == "dev"
    assert dev.texts == ["九時にアラーム"]
    assert normalize_split("val") == "dev"
    with pytest.raises(KdcliError, match="split 'training' is unknown"):
        normalize_split("training")


def test_train_languages_and_samples_apply_to_train_only(release: Path):
    config = DataConfig(str(release), train_languages=["en-US"], samples_per_language=1, seed=3)
    train = load_split(config, "train")
    assert train.language_names() == ["en-US"] and len(train) == 1
    test = load_split(config, "test")
    assert test.language_names() == ["ar-SA", "en-US", "ja-JP"]


def test_sampling_is_seeded(release: Path):
    picks = {
        seed: load_split(DataConfig(str(release), samples_per_language=1, seed=seed), "train").ids
        for seed in range(6)
    }
    assert picks[0] == load_split(DataConfig(str(release), samples_per_language=1), "train").ids
    assert len({tuple(p) for p in picks.values()}) > 1


def test_unknown_language_lists_the_available_ones(release: Path):
    with pytest.raises(KdcliError, match=r"de-DE not in .* available: ar-SA, en-US, ja-JP"):
        load_split(DataConfig(str(release), languages=["de-DE"]), "test")


def test_broken_jsonl_lines_name_the_file_and_line(release: Path):
    path = release / "1.1" / "data" / "en-US.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines()
    path.write_text("\n".join([lines[0], "{not json", *lines[1:]]) + "\n", encoding="utf-8")
    with pytest.raises(KdcliError, match=r"en-US\.jsonl, line 2: not valid JSON"):
        load_split(DataConfig(str(release)), "train")
    record = json.loads(lines[0])
    del record["intent"]
    path.write_text(json.dumps(record) + "\n", encoding="utf-8")
    with pytest.raises(KdcliError, match=r"en-US\.jsonl, line 1: missing field\(s\) intent"):
        load_split(DataConfig(str(release)), "train")


def test_non_utf8_text_is_reported(release: Path):
    path = release / "1.1" / "data" / "en-US.jsonl"
    path.write_bytes(path.read_bytes() + b'{"utt": "caf\xe9"}\n')
    with pytest.raises(KdcliError, match=r"line 5: not valid UTF-8"):
        load_split(DataConfig(str(release)), "train")


def test_jsonl_file_with_split_column_and_default_columns(tmp_path: Path):
    path = tmp_path / "data.jsonl"
    rows = [
        {"text": "hello", "label": "greet", "lang": "en", "split": "train"},
        {"text": "hallo", "label": "greet", "lang": "de", "split": "validation"},
        {"text": "bye", "label": "leave", "lang": "en", "split": "test"},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    assert load_split(DataConfig(str(path)), "dev").texts == ["hallo"]
    assert load_split(DataConfig(str(path)), "test").languages == ["en"]


def test_csv_file_with_explicit_columns_and_no_language(tmp_path: Path):
    path = tmp_path / "tickets.csv"
    path.write_text("body,category\nmy card was charged twice,billing\nreset password,account\n")
    config = DataConfig(str(path), text_column="body", label_column="category")
    examples = load_split(config, "test")  # no split column: kdcli splits the file itself
    assert examples.labels == ["account"] and load_split(config, "train").labels == ["billing"]
    assert examples.languages == ["und"]
    assert any("no language column" in note for note in examples.notes)
    with pytest.raises(KdcliError, match=r"no column 'missing' for text_column; columns are body"):
        load_split(DataConfig(str(path), text_column="missing"), "test")
    with pytest.raises(KdcliError, match=r"no text column \(looked for text, utt, sentence\)"):
        load_split(DataConfig(str(path)), "test")


def test_folder_of_split_files_including_parquet(tmp_path: Path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    from datasets import ClassLabel, Features, Value

    features = Features(
        {"utt": Value("string"), "intent": ClassLabel(names=["a", "b"]), "locale": Value("string")}
    )
    table = pa.table(
        {"utt": ["x", "y"], "intent": [1, 0], "locale": ["en-US", "de-DE"]},
        schema=features.arrow_schema,
    )
    pq.write_table(table, tmp_path / "validation.parquet")
    (tmp_path / "train.jsonl").write_text('{"utt": "z", "intent": "a", "locale": "en-US"}\n')
    dev = load_split(DataConfig(str(tmp_path)), "dev")
    assert dev.labels == ["b", "a"]  # class ids mapped back to names
    with pytest.raises(KdcliError, match="has no test file"):
        load_split(DataConfig(str(tmp_path)), "test")


def test_massive_from_the_hub_parquet_conversion(monkeypatch, tmp_path: Path):
    """The hub path, with the hub replaced by local parquet files of the converted layout."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from datasets import ClassLabel, Features, Value

    intents = ["alarm_set", "weather_query"]
    features = Features(
        {
            "id": Value("string"),
            "locale": Value("string"),
            "partition": Value("string"),
            "intent": ClassLabel(names=intents),
            "utt": Value("string"),
        }
    )
    files = {}
    for locale in ("en-US", "ja-JP"):
        for split in ("train", "validation", "test"):
            subset = [
                r for r in ROWS if r[1] == locale and {"dev": "validation"}.get(r[2], r[2]) == split
            ]
            table = pa.table(
                {
                    "id": [r[0] for r in subset],
                    "locale": [r[1] for r in subset],
                    "partition": [r[2] for r in subset],
                    "intent": [intents.index(r[3]) for r in subset],
                    "utt": [r[4] for r in subset],
                },
                schema=features.arrow_schema,
            )
            name = f"{locale}/{split}/0000.parquet"
            (tmp_path / locale / split).mkdir(parents=True, exist_ok=True)
            pq.write_table(table, tmp_path / name)
            files[name] = tmp_path / name
    calls = []

    class FakeApi:
        def list_repo_files(self, repo, repo_type, revision):
            calls.append((repo, repo_type, revision))
            return ["README.md", "all/train/0000.parquet", *files]

    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    downloads = []

    def download(repo, name, repo_type, revision):
        downloads.append(name)
        return files[name]

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", download)
    dev = load_split(DataConfig("massive", languages=["ja-JP"]), "dev")
    assert dev.texts == ["九時にアラーム"] and dev.labels == ["alarm_set"]
    assert calls == [("AmazonScience/massive", "dataset", "refs/convert/parquet")]
    assert downloads == ["ja-JP/validation/0000.parquet"]  # only the locale asked for
    train = load_split(DataConfig("massive", train_languages=["en-US"]), "train")
    assert train.language_names() == ["en-US"]
    assert len(load_split(DataConfig("massive"), "test").language_names()) == 2
    with pytest.raises(KdcliError, match="fr-FR not in MASSIVE; available: en-US, ja-JP"):
        load_split(DataConfig("massive", languages=["fr-FR"]), "test")


def test_massive_without_network_says_what_to_do(monkeypatch):
    import huggingface_hub

    class Offline:
        def list_repo_files(self, *args, **kwargs):
            raise OSError("Name or service not known")

    monkeypatch.setattr(huggingface_hub, "HfApi", Offline)
    with pytest.raises(
        KdcliError, match=r"cannot reach AmazonScience/massive.*local MASSIVE release"
    ):
        load_split(DataConfig("massive"), "test")


def test_hub_dataset_ids_go_through_datasets(monkeypatch):
    import datasets

    seen = {}

    def fake_load(repo, config, split, revision):
        seen.update(repo=repo, config=config, split=split, revision=revision)
        if split == "dev":
            raise ValueError("Unknown split")
        return datasets.Dataset.from_dict(
            {"text": ["hola"], "label": [0], "language": ["es"]},
            features=datasets.Features(
                {
                    "text": datasets.Value("string"),
                    "label": datasets.ClassLabel(names=["greet"]),
                    "language": datasets.Value("string"),
                }
            ),
        )

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    examples = load_split(DataConfig("someone/greetings:es", revision="v1"), "dev")
    assert examples.labels == ["greet"]
    assert seen == {
        "repo": "someone/greetings",
        "config": "es",
        "split": "validation",
        "revision": "v1",
    }


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("nonsense", "is not a known dataset"),
        ("./missing.jsonl", "no such file or folder"),
        ("missing.csv", "no such file or folder"),
    ],
)
def test_bad_data_specs(spec: str, message: str):
    with pytest.raises(KdcliError, match=message):
        datasources.resolve(spec)


def test_empty_split_and_bad_samples(tmp_path: Path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "a", "label": "x", "split": "train"}\n')
    with pytest.raises(KdcliError, match="the test split is empty"):
        load_split(DataConfig(str(path)), "test")
    with pytest.raises(KdcliError, match="samples_per_language 0 must be at least 1"):
        load_split(DataConfig(str(path), samples_per_language=0), "train")


def test_label_ids_by_name():
    examples = Examples(["1", "2"], ["a", "b"], ["y", "x"], ["en", "en"], "test", "t")
    assert label_ids(examples, {"x": 0, "y": 1}, "model") == [1, 0]
    with pytest.raises(KdcliError, match="does not know the label"):
        label_ids(examples, {"x": 0}, "model")
