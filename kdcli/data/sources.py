"""Readers for every kind of `--data`: each returns plain rows {id, text, label, language}, or
for token classification {id, text, words, tags, language} (see `slots.py` and `conll.py`).

- `massive`: Amazon MASSIVE from the Hub. The official repo holds only a loading script, which
  `datasets` >= 4 refuses, so kdcli reads the Hub's own parquet conversion of it (branch
  `refs/convert/parquet`, one folder per locale) and maps intents by *name* from the ClassLabel
  metadata stored in the parquet schema.
- a local MASSIVE release: the `amazon-massive-dataset-1.x.tar.gz` tarball (read without
  extracting), its extracted folder, or its `data/` folder of `<locale>.jsonl` files.
- local `.jsonl` / `.csv` / `.parquet` files: one file, or a folder with `train.*`, `dev.*`
  (or `validation.*`) and `test.*`.
- any other Hub dataset id, optionally `ID:CONFIG`, through `datasets.load_dataset`.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import tarfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Any, Literal

from kdcli.core.errors import KdcliError, one_line, option_ref
from kdcli.data.conll import CONLL_SUFFIXES, read_conll
from kdcli.data.slots import AnnotationError, parse_annot_utt
from kdcli.files.model_dirs import hub_offline, quiet_hub

MASSIVE_REPO = "AmazonScience/massive"
MASSIVE_REVISION = "refs/convert/parquet"
MASSIVE_SPLITS = {"train": "train", "dev": "validation", "test": "test"}
FILE_SUFFIXES = (".jsonl", ".csv", ".parquet")
SPLIT_FILE_NAMES = {"train": ("train",), "dev": ("dev", "validation", "valid"), "test": ("test",)}
_LOCALE_FILE = re.compile(r"^[a-z]{2,3}-[A-Z]{2}\.jsonl$")


@dataclass(frozen=True)
class Columns:
    """Which columns hold the text, the label and the language (None: use the defaults)."""

    text: str | None = None
    label: str | None = None
    language: str | None = None


SEQUENCE = "sequence-classification"
TOKEN = "token-classification"
TASKS = (SEQUENCE, TOKEN)
DEFAULT_COLUMNS: dict[str, tuple[str, ...]] = {
    "text": ("text", "utt", "sentence"),
    "label": ("label", "intent", "labels"),
    "language": ("language", "lang", "locale"),
}
# Token classification: a list of words and a list of tags per row (WikiANN / PAN-X: tokens,
# ner_tags, langs).
TOKEN_COLUMNS: dict[str, tuple[str, ...]] = {
    "text": ("tokens", "words"),
    "label": ("tags", "ner_tags", "slot_tags", "labels"),
    "language": ("language", "lang", "locale", "langs"),
}

Row = dict[str, Any]


SourceKind = Literal["massive-hub", "massive-release", "files", "hub"]


@dataclass(frozen=True)
class Source:
    """What a DATA spec resolved to, for error messages and provenance. `option` is the setting
    it was given as (`data`, or e.g. `vocab_from`), which errors about the data name."""

    kind: SourceKind
    location: str
    revision: str | None = None
    option: str = "data"


def resolve(spec: str, option: str = "data") -> Source:
    """Decide what kind of data `spec` (given as setting `option`) names, without reading it."""
    try:
        return replace(_resolve(spec), option=option)
    except KdcliError as err:
        raise (err.about(option) if err.option == "data" else err) from None


def read_rows(
    source: Source,
    split: str,
    columns: Columns,
    revision: str | None,
    locales: Sequence[str] | None = None,
    task: str | None = None,
    locales_option: str = "languages",
) -> list[Row]:
    """All rows of one split (train | dev | test); `locales` (the setting `locales_option`) lets
    MASSIVE skip other downloads.

    `task` None lets the data decide: MASSIVE and text/label columns are sequence classification,
    CoNLL files and word/tag list columns token classification (rows then hold words and tags).
    Errors about the data name the setting it was given as (`source.option`).
    """
    try:
        return _read_rows(source, split, columns, revision, locales, task)
    except KdcliError as err:
        if err.option == "data":
            raise err.about(source.option) from None
        if err.option == "languages":
            raise err.about(locales_option) from None
        raise


def _resolve(spec: str) -> Source:
    path = Path(spec).expanduser()
    if spec.lower() == "massive":
        return Source("massive-hub", MASSIVE_REPO, MASSIVE_REVISION)
    if path.exists():
        if _is_release(path):
            return Source("massive-release", str(path))
        return Source("files", str(path))
    if _looks_like_a_path(spec, path):
        raise KdcliError(
            ": no such file or folder",
            option="data",
            value=spec,
            fix=f"check the path{_near(path)}",
        )
    if not re.fullmatch(r"[\w.-]+/[\w.-]+(:[\w.-]+)?", spec):
        raise KdcliError(
            "is not a known dataset",
            option="data",
            value=spec,
            fix="use massive, a local MASSIVE release, a .jsonl/.csv/.parquet file or folder, or "
            "a Hub dataset id like owner/name",
        )
    return Source("hub", spec)


def _looks_like_a_path(spec: str, path: Path) -> bool:
    """A spec that cannot be a Hub id (`owner/name`), or whose folder exists here, names a
    local path that is missing (a typo), not a dataset on the Hub."""
    suffixes = (*FILE_SUFFIXES, *CONLL_SUFFIXES, ".gz", ".tar")
    if spec.startswith((".", "/", "~")) or path.suffix in suffixes:
        return True
    if os.sep in spec.rstrip(os.sep) or "/" in spec:
        parts = spec.split(":")[0].strip("/").split("/")
        return len(parts) > 2 or spec.endswith("/") or path.parent.is_dir()
    return False


def _near(path: Path) -> str:
    """`; did you mean X?` when the folder holds a name close to the one given."""
    import difflib

    folder = path.parent
    if not folder.is_dir():
        return f" ({folder} does not exist either)"
    names = [p.name for p in folder.iterdir()]
    close = difflib.get_close_matches(path.name, names, n=1, cutoff=0.6)
    return f"; did you mean {folder / close[0]}?" if close else ""


def _read_rows(
    source: Source,
    split: str,
    columns: Columns,
    revision: str | None,
    locales: Sequence[str] | None,
    task: str | None,
) -> list[Row]:
    if source.kind == "massive-hub":
        return list(_massive_hub(split, revision or MASSIVE_REVISION, locales, task == TOKEN))
    if source.kind == "massive-release":
        return list(_massive_release(Path(source.location), split, task == TOKEN))
    if source.kind == "files":
        return _files(Path(source.location), split, columns, task)
    return _hub_dataset(source.location, split, columns, revision, task)


# --- MASSIVE release (tarball, extracted folder, data/ folder) ---------------------------------


def _is_release(path: Path) -> bool:
    if path.is_file():
        return path.name.endswith((".tar.gz", ".tgz", ".tar"))
    return _release_data_dir(path) is not None


def _release_data_dir(path: Path) -> Path | None:
    for candidate in (path, path / "data", *sorted(path.glob("*/data"))):
        if candidate.is_dir() and any(_LOCALE_FILE.match(p.name) for p in candidate.iterdir()):
            return candidate
    return None


def _massive_release(path: Path, split: str, slots: bool) -> Iterator[Row]:
    partition = split  # MASSIVE's own partition names are train | dev | test
    needed = ("id", "locale", "partition", "annot_utt" if slots else "intent", "utt")
    for name, handle in _release_files(path):
        for line_no, record in jsonl_records(handle, name):
            _require(record, needed, name, line_no)
            if record["partition"] == partition:
                yield _massive_row(record, slots, f"{name}, line {line_no}")


def _massive_row(record: dict[str, Any], slots: bool, where: str) -> Row:
    """A MASSIVE record as a row: its intent, or with `slots` the words and tags of annot_utt."""
    row: Row = {
        "id": str(record["id"]),
        "text": str(record["utt"]),
        "language": str(record["locale"]),
    }
    if not slots:
        return {**row, "label": str(record["intent"])}
    try:
        words, tags = parse_annot_utt(str(record["annot_utt"]), row["language"])
    except AnnotationError as err:
        raise KdcliError(f"{where}: annot_utt does not parse: {err}") from None
    return {**row, "words": words, "tags": tags}


def _release_files(path: Path) -> Iterator[tuple[str, IO[bytes]]]:
    if path.is_file():
        yield from _tar_members(path)
        return
    data_dir = _release_data_dir(path)
    assert data_dir is not None
    for file in sorted(p for p in data_dir.iterdir() if _LOCALE_FILE.match(p.name)):
        with file.open("rb") as handle:
            yield str(file), handle


def _tar_members(path: Path) -> Iterator[tuple[str, IO[bytes]]]:
    try:
        with tarfile.open(path) as archive:
            members = sorted(
                (
                    m
                    for m in archive.getmembers()
                    if m.isfile() and _LOCALE_FILE.match(Path(m.name).name)
                ),
                key=lambda m: m.name,
            )
            if not members:
                raise KdcliError(
                    ": the archive holds no <locale>.jsonl files; is it a MASSIVE release "
                    "(amazon-massive-dataset-1.x.tar.gz)?",
                    option="data",
                    value=path,
                )
            for member in members:
                handle = archive.extractfile(member)
                assert handle is not None
                yield f"{path}:{member.name}", handle
    except (tarfile.TarError, EOFError, OSError) as err:
        raise KdcliError(
            f"is not a readable tar archive: {one_line(err)}", option="data", value=path
        ) from err


# --- MASSIVE from the Hub ----------------------------------------------------------------------


def _massive_hub(
    split: str, revision: str, locales: Sequence[str] | None, slots: bool
) -> Iterator[Row]:
    from huggingface_hub import HfApi, hf_hub_download

    try:
        with quiet_hub():
            files = HfApi().list_repo_files(MASSIVE_REPO, repo_type="dataset", revision=revision)
    except Exception as err:  # hub errors come in many types; all mean "could not list it"
        raise KdcliError(
            f": cannot reach {MASSIVE_REPO} on the Hugging Face Hub ({one_line(err)[:120]}); "
            "check your network, or pass a local MASSIVE release "
            "(amazon-massive-dataset-1.1.tar.gz or its data/ folder)",
            option="data",
            value="massive",
        ) from err
    wanted = f"/{MASSIVE_SPLITS[split]}/"
    parquet = sorted(
        f for f in files if wanted in f and f.endswith(".parquet") and not f.startswith("all")
    )
    if not parquet:
        raise KdcliError(
            f": no {split} files at revision {revision}", option="data", value="massive"
        )
    if locales:  # one folder per locale: download only the ones asked for
        available = sorted({name.split("/")[0] for name in parquet})
        missing = [locale for locale in locales if locale not in available]
        if missing:
            raise KdcliError(
                f": {', '.join(missing)} not in MASSIVE; available: {', '.join(available)}",
                option="languages",
            )
        parquet = [name for name in parquet if name.split("/")[0] in locales]
    for name in parquet:
        with quiet_hub():
            local = hf_hub_download(MASSIVE_REPO, name, repo_type="dataset", revision=revision)
        yield from _massive_parquet(Path(local), slots, name)


def _massive_parquet(path: Path, slots: bool = False, name: str | None = None) -> Iterator[Row]:
    """Rows of one converted MASSIVE parquet file, with intents mapped back to their names."""
    table = _read_parquet(path)
    names = class_label_names(table.schema, "intent")
    for row_no, record in enumerate(table.to_pylist(), start=1):
        intent = record["intent"]
        if isinstance(intent, int) and names:
            record["intent"] = names[intent]
        yield _massive_row(record, slots, f"{name or path}, row {row_no}")


def class_label_names(schema: Any, column: str) -> list[str] | None:
    """The names of a ClassLabel column (or a list of ClassLabels, like WikiANN's ner_tags),
    from the features `datasets` stores in parquet."""
    raw = (schema.metadata or {}).get(b"huggingface")
    if not raw:
        return None
    features = json.loads(raw).get("info", {}).get("features", {})
    feature = features.get(column, {})
    if feature.get("_type") in ("Sequence", "List", "LargeList"):
        feature = feature.get("feature", {})
    return feature.get("names") if feature.get("_type") == "ClassLabel" else None


def label_name(value: Any, names: list[str]) -> Any:
    """A ClassLabel index (or a list of them) as its name(s); other values unchanged."""
    if isinstance(value, list):
        return [label_name(item, names) for item in value]
    return names[value] if isinstance(value, int) and 0 <= value < len(names) else value


# --- local files -------------------------------------------------------------------------------


def _files(path: Path, split: str, columns: Columns, task: str | None) -> list[Row]:
    if path.is_dir():
        file = _split_file(path, split)
        if file.suffix in CONLL_SUFFIXES:
            return _conll(file, columns, task)
        return _rows_from_records(
            _records(file), file, columns, split_column=False, split=split, task=task
        )
    if path.suffix in CONLL_SUFFIXES:  # CoNLL has no split column: split like any other file
        return _derived_split(_conll(path, columns, task), split, path)
    rows = _rows_from_records(
        _records(path), path, columns, split_column=True, split=split, task=task
    )
    if rows and all(row["split"] == "" for row in rows):
        return _derived_split(rows, split, path)
    return [row for row in rows if _row_in_split(row["split"], split)]


def _derived_split(rows: list[Row], split: str, path: Path) -> list[Row]:
    derived = derive_split(rows, split)
    if not derived:
        suffix = path.suffix.lower()
        raise KdcliError(
            f"has no split column and too few rows for kdcli to split it (none of its "
            f"{len(rows)} rows falls in {split})",
            option="data",
            value=path,
            fix="use a folder of train/dev/test files"
            if suffix in CONLL_SUFFIXES
            else "add a 'split' column (train/dev/test)",
        )
    return derived


def _conll(file: Path, columns: Columns, task: str | None) -> list[Row]:
    """A CoNLL file's sentences, all of them (the caller picks or derives the split)."""
    if task == SEQUENCE:
        raise KdcliError(
            "is a CoNLL token file: it trains and scores token classification, not sequence "
            "classification",
            option="data",
            value=file,
        )
    return list(read_conll(file, columns.language))


# One file without a split column: kdcli splits it itself, the same way for every command (so
# `kdcli eval --split test` sees exactly the rows that training held out): per language, rows are
# ordered by label, then by a hash of their text, and every tenth goes to test, every tenth
# (shifted by five) to dev. That is stratified by label within each language, independent of
# the file's row order and of --seed. Token rows have no single label: ordered by text alone.
DERIVED_SPLIT = "derived: per language and label, 80% train / 10% dev / 10% test (kdcli rule 1)"


def derive_split(rows: list[Row], split: str) -> list[Row]:
    """The rows of `split` in the split kdcli derives for a file that has none (data order)."""
    import hashlib

    def key(index: int) -> tuple[str, str, int]:
        row = rows[index]
        label = row.get("label", "")
        text = f"kdcli-split-1\x1f{row['language']}\x1f{label}\x1f{row['text']}"
        return label, hashlib.sha256(text.encode("utf-8")).hexdigest(), index

    by_language: dict[str, list[int]] = {}
    for index, row in enumerate(rows):
        by_language.setdefault(row["language"], []).append(index)
    chosen: list[int] = []
    for indices in by_language.values():
        for position, index in enumerate(sorted(indices, key=key)):
            part = "test" if position % 10 == 0 else "dev" if position % 10 == 5 else "train"
            if part == split:
                chosen.append(index)
    marker = f"{len(chosen)}/{len(rows)}"
    return [{**rows[i], "split": split, "derived_split": marker} for i in sorted(chosen)]


def _split_file(folder: Path, split: str) -> Path:
    suffixes = (*FILE_SUFFIXES, *CONLL_SUFFIXES)
    for stem in SPLIT_FILE_NAMES[split]:
        for suffix in suffixes:
            if (folder / f"{stem}{suffix}").is_file():
                return folder / f"{stem}{suffix}"
    found = sorted(p.name for p in folder.iterdir() if p.suffix in suffixes)
    raise KdcliError(
        f"has no {split} file (looked for "
        f"{', '.join(s + '.jsonl|csv|parquet|conll' for s in SPLIT_FILE_NAMES[split])}; found "
        f"{', '.join(found) or 'no data files'})",
        option="data",
        value=folder,
        fix="name the files train/dev/test",
    )


def _records(path: Path) -> Iterable[tuple[int, dict[str, Any]]]:
    if path.suffix == ".jsonl":
        with path.open("rb") as handle:
            yield from jsonl_records(handle, str(path))
    elif path.suffix == ".csv":
        yield from _csv_records(path)
    elif path.suffix == ".parquet":
        table = _read_parquet(path)
        label_names = {c: class_label_names(table.schema, c) for c in table.column_names}
        for index, record in enumerate(table.to_pylist(), start=1):
            for column, names in label_names.items():
                if names:
                    record[column] = label_name(record.get(column), names)
            yield index, record
    else:
        raise KdcliError(
            f": unsupported file type {path.suffix!r}; use .jsonl, .csv or .parquet",
            option="data",
            value=path,
        )


def jsonl_records(handle: IO[bytes], name: str) -> Iterator[tuple[int, dict[str, Any]]]:
    for line_no, raw in enumerate(handle, start=1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            raise KdcliError(
                f"{name}, line {line_no}: not valid UTF-8 (byte {err.start}); re-save the file "
                "as UTF-8"
            ) from err
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise KdcliError(f"{name}, line {line_no}: not valid JSON ({err.msg})") from err
        if not isinstance(record, dict):
            raise KdcliError(f"{name}, line {line_no}: expected a JSON object per line")
        yield line_no, record


def _csv_records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line_no = path.read_bytes()[: err.start].count(b"\n") + 1
        raise KdcliError(
            f"{path}, line {line_no}: not valid UTF-8; re-save the file as UTF-8"
        ) from err
    reader = csv.DictReader(io.StringIO(text))
    for record in reader:
        yield reader.line_num, record


def _read_parquet(path: Path) -> Any:
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path)
    except Exception as err:  # pyarrow raises ArrowInvalid / OSError for broken files
        raise KdcliError(f"{path} is not a readable parquet file: {one_line(err)}") from err


def _rows_from_records(
    records: Iterable[tuple[int, dict[str, Any]]],
    path: Path,
    columns: Columns,
    split_column: bool,
    split: str,
    task: str | None = None,
) -> list[Row]:
    rows: list[Row] = []
    names: _Found | None = None
    for line_no, record in records:
        if names is None:
            task = task or _infer_task(record, columns)
            defaults = TOKEN_COLUMNS if task == TOKEN else DEFAULT_COLUMNS
            names = _split_columns(record, columns, path, defaults)
        _require(record, names.required(), str(path), line_no)
        language = record[names.language] if names.language else "und"
        if isinstance(language, list) and task == TOKEN:  # WikiANN's langs: one per word
            language = language[0] if language else "und"
        values = {"language": (names.language, language)}
        if task != TOKEN:  # token rows hold lists of words and tags on purpose
            values.update(
                text=(names.text, record[names.text]), label=(names.label, record[names.label])
            )
        for role, (column, value) in values.items():
            if isinstance(value, list | dict | tuple):
                raise KdcliError(_not_a_single_value(path, line_no, role, str(column), value))
        row: Row = {
            "id": str(record.get("id", f"{path.stem}-{line_no}")),
            "language": str(language),
            "split": _split_value(record) if split_column else split,
        }
        if task == TOKEN:
            row.update(_word_columns(record, names, f"{path}, line {line_no}"))
        else:
            row.update(text=str(record[names.text]), label=str(record[names.label]))
        rows.append(row)
    return rows


def _infer_task(record: dict[str, Any], columns: Columns) -> str:
    """Token classification when the words and tags columns hold lists and no text column is
    there (or the column options name list columns); sequence classification otherwise."""
    text = columns.text or next((c for c in DEFAULT_COLUMNS["text"] if c in record), None)
    if text is not None and not isinstance(record.get(text), list):
        return SEQUENCE
    words = columns.text or next((c for c in TOKEN_COLUMNS["text"] if c in record), None)
    return TOKEN if words is not None and isinstance(record.get(words), list) else SEQUENCE


def _word_columns(record: dict[str, Any], names: _Found, where: str) -> Row:
    words, tags = record[names.text], record[names.label]
    if not isinstance(words, list) or not isinstance(tags, list):
        raise KdcliError(
            f"{where}: token classification needs lists of words and tags in columns "
            f"{names.text!r} and {names.label!r}"
        )
    if len(words) != len(tags):
        raise KdcliError(
            f"{where}: {len(tags)} tags for {len(words)} words: give every word exactly one tag"
        )
    words = [str(word) for word in words]
    return {"text": " ".join(words), "words": words, "tags": [str(tag) for tag in tags]}


def _not_a_single_value(path: Path, line_no: int, role: str, column: str, value: Any) -> str:
    kind = "a list" if isinstance(value, list | tuple) else "an object"
    shown = json.dumps(value, ensure_ascii=False, default=str)
    shown = shown if len(shown) <= 40 else shown[:37] + "..."
    fix = {
        "text": f"give one string per row (join the pieces, or pick another "
        f"{option_ref('text_column')})",
        "label": "kdcli trains single-label classifiers: give one label name per row",
        "language": "give one language code per row",
    }[role]
    return f"{path}, line {line_no}: {role} column {column!r} holds {kind} ({shown}); {fix}"


def _split_value(record: dict[str, Any]) -> str:
    """The row's split/partition column, lower-cased ("" when the file has none)."""
    for key in ("split", "partition"):
        if key in record:
            return str(record[key]).lower()
    return ""


def _row_in_split(value: str, split: str) -> bool:
    """A row without a split value (in a file whose other rows have one) serves every split."""
    return value in ("", split) or (split == "dev" and value in ("validation", "valid"))


@dataclass(frozen=True)
class _Found:
    """The columns a split's rows are read from: text and label always, language if any."""

    text: str
    label: str
    language: str | None

    def required(self) -> list[str]:
        return [c for c in (self.text, self.label, self.language) if c]


def _split_columns(
    record: dict[str, Any], columns: Columns, path: Path, defaults: dict[str, tuple[str, ...]]
) -> _Found:
    chosen = pick_columns(record, columns, path, defaults)
    text, label = chosen["text"], chosen["label"]
    assert text is not None and label is not None  # pick_columns raised for a missing one
    return _Found(text, label, chosen["language"])


def pick_columns(
    record: dict[str, Any],
    columns: Columns,
    path: Path,
    defaults: dict[str, tuple[str, ...]] = DEFAULT_COLUMNS,
    optional: Sequence[str] = ("language",),
) -> dict[str, str | None]:
    """The column of each role (text, label, language): the one asked for, else the first default
    name the record has; a role in `optional` may have none."""
    chosen: dict[str, str | None] = {}
    for role, option in (
        ("text", columns.text),
        ("label", columns.label),
        ("language", columns.language),
    ):
        if option is not None:
            if option not in record:
                raise KdcliError(
                    f"{path}: no column {option!r} for {option_ref(role + '_column')}; columns "
                    f"are {', '.join(map(str, record))}"
                )
            chosen[role] = option
            continue
        found = next((c for c in defaults[role] if c in record), None)
        if found is None and role not in optional:
            raise KdcliError(
                f"{path}: no {role} column (looked for {', '.join(defaults[role])}); "
                f"columns are {', '.join(map(str, record))}: pass {option_ref(role + '_column')}"
            )
        chosen[role] = found
    return chosen


def _require(record: dict[str, Any], fields: Iterable[str], name: str, line_no: int) -> None:
    missing = [f for f in fields if f not in record or record[f] is None]
    if missing:
        raise KdcliError(f"{name}, line {line_no}: missing field(s) {', '.join(missing)}")


# --- other Hub datasets ------------------------------------------------------------------------


def _hub_dataset(
    spec: str, split: str, columns: Columns, revision: str | None, task: str | None
) -> list[Row]:
    import datasets

    repo, _, config = spec.partition(":")
    errors = []
    candidates = ("validation", "dev", "valid") if split == "dev" else (split,)
    for hub_split in candidates:
        try:
            with quiet_hub():
                dataset = datasets.load_dataset(
                    repo, config or None, split=hub_split, revision=revision
                )
            break
        except ValueError as err:  # unknown split name: try the next alias
            errors.append(one_line(err))
        except Exception as err:
            hint = "HF_HUB_OFFLINE is set" if hub_offline() else "check the id and your network"
            raise KdcliError(
                f": cannot load this dataset from the Hub ({hint}): {one_line(err)[:160]}",
                option="data",
                value=spec,
            ) from err
    else:
        raise KdcliError(f"has no {split} split: {errors[-1][:160]}", option="data", value=spec)
    names = {column: _feature_names(feature) for column, feature in dataset.features.items()}
    records = []
    for index, record in enumerate(dataset, start=1):
        for column, labels in names.items():
            if labels:
                record[column] = label_name(record.get(column), labels)
        records.append((index, record))
    return _rows_from_records(
        records, Path(spec), columns, split_column=False, split=split, task=task
    )


def _feature_names(feature: Any) -> list[str] | None:
    """The names of a ClassLabel feature, or of a list of them (WikiANN's ner_tags)."""
    inner = getattr(feature, "feature", feature)  # Sequence(ClassLabel) / List(ClassLabel)
    names = getattr(inner, "names", None)
    return list(names) if names and hasattr(inner, "int2str") else None
