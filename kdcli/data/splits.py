"""Datasets as kdcli sees them: one split of (id, text, label name, language) examples, or for
token classification (id, text, words, IOB2 tags, language).

`load_split(DataConfig(data="massive", languages=[...]), "test")` works the same for MASSIVE from
the Hub, a local MASSIVE release, local files and other Hub datasets (see `sources.py`). Labels
stay *names* here; models map them to ids by name, so every source gives the same label ids.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from kdcli.core.errors import KdcliError, option_ref
from kdcli.core.validation import check_choice, check_int, check_names
from kdcli.data.languages import by_language
from kdcli.data.languages import sample_per_language as sample_indices
from kdcli.data.sources import (
    DERIVED_SPLIT,
    SEQUENCE,
    TASKS,
    TOKEN,
    Columns,
    Row,
    Source,
    read_rows,
    resolve,
)
from kdcli.data.tags import check_scheme, tag_names, to_iob2

SPLITS = ("train", "dev", "test")
_SPLIT_ALIASES = {"validation": "dev", "valid": "dev", "val": "dev"}


@dataclass(frozen=True)
class DataConfig:
    """Which data, which languages, how much of it.

    `languages` restricts every split; `train_languages` and `samples_per_language` apply to the
    train split only (zero-shot transfer: train on en-US, evaluate on all; the low-resource setting:
    N training examples per language).
    """

    data: str
    languages: Sequence[str] | None = None
    train_languages: Sequence[str] | None = None
    samples_per_language: int | None = None
    text_column: str | None = None
    label_column: str | None = None
    language_column: str | None = None
    revision: str | None = None
    seed: int = 0
    task: str | None = None  # None: what the data holds (MASSIVE: intents); see sources.TASKS
    tag_scheme: str = "auto"  # token classification: the tags' scheme (tags.SCHEMES)

    def settings(self) -> dict[str, Any]:
        extra = {"tag_scheme": self.tag_scheme} if self.task == TOKEN else {}
        return {
            "task": self.task,
            "data": self.data,
            "languages": list(self.languages) if self.languages else None,
            "train_languages": list(self.train_languages) if self.train_languages else None,
            "samples_per_language": self.samples_per_language,
            "text_column": self.text_column,
            "label_column": self.label_column,
            "language_column": self.language_column,
            "revision": self.revision,
            "seed": self.seed,
            **extra,
        }


@dataclass(frozen=True)
class Examples:
    """One split, as parallel lists. Token classification examples also hold their `words` and
    one IOB2 tag per word (`tags`); their `labels` are empty strings."""

    ids: list[str]
    texts: list[str]
    labels: list[str]
    languages: list[str]
    split: str
    source: str
    notes: list[str] = field(default_factory=list)
    words: list[list[str]] | None = None
    tags: list[list[str]] | None = None
    split_rule: str | None = None  # how the split was derived when the data had none

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def task(self) -> str:
        return TOKEN if self.tags is not None else SEQUENCE

    def language_names(self) -> list[str]:
        return sorted(set(self.languages))

    def label_names(self) -> list[str]:
        """Label names (sorted), or for token classification the model labels of the tags:
        O, then B-/I- of every entity type (`tags.tag_names`)."""
        if self.tags is not None:
            return tag_names(self.tags)
        return sorted(set(self.labels))

    def by_language(self) -> dict[str, list[int]]:
        """Example indices per language, languages sorted."""
        return by_language(self.languages)

    def subset(self, indices: Sequence[int]) -> Examples:
        return Examples(
            ids=[self.ids[i] for i in indices],
            texts=[self.texts[i] for i in indices],
            labels=[self.labels[i] for i in indices],
            languages=[self.languages[i] for i in indices],
            split=self.split,
            source=self.source,
            notes=list(self.notes),
            words=[self.words[i] for i in indices] if self.words is not None else None,
            tags=[self.tags[i] for i in indices] if self.tags is not None else None,
            split_rule=self.split_rule,
        )

    def fingerprint(self) -> str:
        """sha256 of the examples themselves: identifies the data for caches and provenance."""
        digest = hashlib.sha256()
        for index, row in enumerate(
            zip(self.ids, self.texts, self.labels, self.languages, strict=True)
        ):
            fields = list(row)
            if self.words is not None and self.tags is not None:
                fields += ["\x1d".join(self.words[index]), "\x1d".join(self.tags[index])]
            digest.update("\x1f".join(fields).encode("utf-8") + b"\x1e")
        return digest.hexdigest()


def normalize_split(split: str) -> str:
    name = _SPLIT_ALIASES.get(split.lower(), split.lower())
    if name not in SPLITS:
        raise KdcliError(
            "is unknown", option="split", value=split, fix="choose train, dev (validation) or test"
        )
    return name


def load_split(config: DataConfig, split: str, option: str = "data") -> Examples:
    """The examples of one split, filtered by language and sampled as configured.

    `option` is the setting `config.data` was given as (`data`, or e.g. `vocab_from` when other
    data feeds a step): errors about the data name it.
    """
    split = normalize_split(split)
    check_config(config)
    source = resolve(config.data, option)
    columns = Columns(config.text_column, config.label_column, config.language_column)
    wanted = config.train_languages if split == "train" and config.train_languages else None
    locales = wanted or config.languages
    locales_option = "train_languages" if wanted else "languages"
    rows = read_rows(source, split, columns, config.revision, locales, config.task, locales_option)
    if not rows:
        raise KdcliError(f": the {split} split is empty", option=option, value=config.data)
    if config.task == SEQUENCE and "tags" in rows[0]:
        raise KdcliError(
            "holds words and tags (token classification), but the model is a sequence classifier",
            option=option,
            value=config.data,
            fix=f"use a token-classification model or {option_ref('task')} token-classification",
        )
    examples = _to_examples(rows, split, source, check_scheme(config.tag_scheme))
    examples = _filter_languages(examples, config.languages, "languages", source)
    if split == "train":
        examples = _filter_languages(examples, config.train_languages, "train_languages", source)
        if config.samples_per_language:
            examples = sample_per_language(examples, config.samples_per_language, config.seed)
    if not examples.texts:
        raise KdcliError(
            f": no {split} examples left after filtering", option=option, value=config.data
        )
    return examples


def check_config(config: DataConfig) -> None:
    """The data settings that can be checked without reading the data."""
    check_names("languages", config.languages)
    check_names("train_languages", config.train_languages)
    check_int("samples_per_language", config.samples_per_language, optional=True)
    check_choice("task", config.task, TASKS)
    check_scheme(config.tag_scheme)


def _to_examples(rows: list[Row], split: str, source: Source, scheme: str) -> Examples:
    notes = []
    rule = None
    if rows[0].get("derived_split"):
        rule = DERIVED_SPLIT
        kept, total = rows[0]["derived_split"].split("/")
        notes.append(
            f"{source.location} has no split column, so kdcli splits it per language"
            f"{'' if 'tags' in rows[0] else ' and label'} "
            f"(80% train / 10% dev / 10% test, the same in every command): its {split} part is "
            f"{kept} of {total} rows; add a 'split' column to choose yourself"
        )
    if all(row["language"] == "und" for row in rows):
        notes.append("the data has no language column: all examples count as language 'und'")
    notes += _odd_rows(rows, split)
    token = "tags" in rows[0]
    tags = None
    if token:
        allowed = "bioes" if scheme == "auto" else scheme  # auto: any of the schemes' prefixes
        tags = [to_iob2(row["tags"], allowed, f"example {row['id']}") for row in rows]
    return Examples(
        ids=[row["id"] for row in rows],
        texts=[row["text"] for row in rows],
        labels=["" if token else row["label"] for row in rows],
        languages=[row["language"] for row in rows],
        split=split,
        source=f"{source.kind}:{source.location}",
        notes=notes,
        words=[row["words"] for row in rows] if token else None,
        tags=tags,
        split_rule=rule,
    )


# Characters that show nothing: controls, format characters (zero-width space, joiners, BOM, soft
# hyphen), separators and unassigned code points.
_INVISIBLE = {"Cc", "Cf", "Cs", "Co", "Cn", "Zs", "Zl", "Zp"}


def has_visible_text(text: str) -> bool:
    import unicodedata

    return any(unicodedata.category(ch) not in _INVISIBLE for ch in text)


def _odd_rows(rows: list[Row], split: str) -> list[str]:
    """Notes on rows that are kept but probably mistakes: texts that show nothing, and ids that
    occur twice in one language (per-example predictions could not be told apart)."""
    notes = []
    blank = [row["id"] for row in rows if not has_visible_text(row["text"])]
    if blank:
        notes.append(
            f"{_count(len(blank), f'{split} example')} with no visible text (empty, spaces or "
            f"invisible characters only; ids {_first(blank)}) are kept as they are: fix or "
            "drop them if they are mistakes"
        )
    seen: set[tuple[str, str]] = set()
    repeated: list[str] = []
    for row in rows:
        key = (row["language"], row["id"])
        if key in seen:
            repeated.append(f"{row['id']} ({row['language']})")
        seen.add(key)
    if repeated:
        notes.append(
            f"{_count(len(repeated), 'id')} of the {split} split occur more than once in the "
            f"same language ({_first(repeated)}): rows of --predictions cannot be told apart "
            "by id; give every row its own id"
        )
    return notes


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'s' if number != 1 else ''}"


def _first(items: list[str], shown: int = 3) -> str:
    return ", ".join(items[:shown]) + (
        f" (+{len(items) - shown} more)" if len(items) > shown else ""
    )


def _filter_languages(
    examples: Examples, languages: Sequence[str] | None, option: str, source: Source
) -> Examples:
    if not languages:
        return examples
    available = examples.language_names()
    missing = [lang for lang in languages if lang not in available]
    if missing:
        raise KdcliError(
            f": {', '.join(missing)} not in {option_ref(source.option)} {source.location} "
            f"({examples.split} split); available: {', '.join(available)}",
            option=option,
        )
    wanted = set(languages)
    return examples.subset([i for i, lang in enumerate(examples.languages) if lang in wanted])


def sample_per_language(examples: Examples, count: int, seed: int) -> Examples:
    """At most `count` examples per language, drawn with `seed`, in their original order."""
    return examples.subset(sample_indices(examples.languages, count, seed))


def label_ids(examples: Examples, label2id: dict[str, int], model: str) -> list[int]:
    """The examples' labels as the model's ids, matched by name."""
    if examples.tags is not None:
        raise ValueError("token classification examples have tags, not labels: use tag_ids")
    unknown = sorted(set(examples.labels) - set(label2id))
    if unknown:
        shown = ", ".join(unknown[:8]) + (
            f" (+{len(unknown) - 8} more)" if len(unknown) > 8 else ""
        )
        raise KdcliError(
            f"{model} does not know the label(s) {shown} of the data; its labels are "
            f"{', '.join(sorted(label2id)[:8])}...: use data with the model's labels"
        )
    return [label2id[label] for label in examples.labels]


def check_tags_known(examples: Examples, label2id: dict[str, int], model: str) -> None:
    """Every tag of token classification data must be one of the model's labels (by name)."""
    assert examples.tags is not None
    used = {tag for tags in examples.tags for tag in tags}
    missing = sorted(used - set(label2id))
    if missing:
        shown = ", ".join(missing[:12]) + (
            f" (+{len(missing) - 12} more)" if len(missing) > 12 else ""
        )
        raise KdcliError(
            f"{model}'s tags do not cover the data's: missing {shown}; use a model trained on "
            "these tags (kdcli finetune --task token-classification makes one)"
        )


def tag_ids(examples: Examples, label2id: dict[str, int], model: str) -> list[list[int]]:
    """The examples' tags as the model's ids, matched by name, one list per example."""
    check_tags_known(examples, label2id, model)
    assert examples.tags is not None
    return [[label2id[tag] for tag in tags] for tags in examples.tags]


def load_for_option(
    spec: str, option: str, split: str = "train", languages: Sequence[str] | None = None
) -> Examples:
    """One split of a DATA spec given as another setting (`vocab_from`, `calib_data`, ...),
    whose errors name that setting."""
    return load_split(DataConfig(data=spec, languages=languages), split, option)


def nonempty_texts(
    examples: Examples, option: str, spec: str, languages: Sequence[str] | None = None
) -> list[str]:
    """The examples' texts that hold something; data with none is an error naming `option`."""
    texts = [text for text in examples.texts if text and text.strip()]
    if not texts:
        where = f" for {option_ref('languages')} {','.join(languages)}" if languages else ""
        raise KdcliError(
            f"holds no text{where}",
            option=option,
            value=spec,
            fix="give data whose text column has utterances",
        )
    return texts
