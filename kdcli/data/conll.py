"""CoNLL-style token files: one word and its tag per line, a blank line between sentences.

    # language = de
    Angela  B-PER
    Merkel  I-PER
    besucht O
    Paris   B-LOC

The word is the first column and the tag the last (so CoNLL-2003's four columns work too);
columns are separated by tabs, or by spaces when a line has no tab. The language of a sentence
comes from the last `# language = xx` comment before it (`# lang` and `# locale` work too), or
from a column given by number (`--language-column 2`); otherwise it is `und`. `-DOCSTART-`
lines and other comments are skipped; `# id = ...` names the next sentence.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kdcli.core.errors import KdcliError

CONLL_SUFFIXES = (".conll", ".iob", ".bio", ".txt")
_LANGUAGE_COMMENT = re.compile(r"^#\s*(?:language|lang|locale)\s*[=:]\s*(\S+)\s*$", re.IGNORECASE)
_ID_COMMENT = re.compile(r"^#\s*(?:sent_)?id\s*[=:]\s*(\S+)\s*$", re.IGNORECASE)


def language_column_number(value: str | None, path: Path) -> int | None:
    """`--language-column` for a CoNLL file: a 1-based column number, or None."""
    if value is None:
        return None
    if not value.isdigit() or int(value) < 1:
        raise KdcliError(
            f": in a CoNLL file ({path}) columns have no names",
            option="language_column",
            value=value,
            fix="give the language column's number (1 is the word), or use # language = xx "
            "comments",
        )
    return int(value)


def read_conll(path: Path, language_column: str | None = None) -> Iterator[dict[str, Any]]:
    """Sentences of a CoNLL file as rows {id, text, words, tags, language}."""
    column = language_column_number(language_column, path)
    try:
        lines = path.read_bytes().decode("utf-8-sig").splitlines()
    except UnicodeDecodeError as err:
        line_no = path.read_bytes()[: err.start].count(b"\n") + 1
        raise KdcliError(
            f"{path}, line {line_no}: not valid UTF-8; re-save the file as UTF-8"
        ) from err
    state = _Sentence(path)
    for line_no, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line:
            yield from state.finish()
            continue
        if line.startswith("#"):
            state.comment(line)
            continue
        if line.startswith("-DOCSTART-"):
            continue
        state.add(raw, line_no, column)
    yield from state.finish()


class _Sentence:
    """The sentence being read, and the language and id that comments set for it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.language = "und"
        self.next_id: str | None = None
        self.words: list[str] = []
        self.tags: list[str] = []
        self.languages: list[str] = []
        self.count = 0

    def comment(self, line: str) -> None:
        if match := _LANGUAGE_COMMENT.match(line):
            self.language = match.group(1)
        elif match := _ID_COMMENT.match(line):
            self.next_id = match.group(1)

    def add(self, raw: str, line_no: int, column: int | None) -> None:
        cells = raw.strip().split("\t") if "\t" in raw else raw.split()
        cells = [cell.strip() for cell in cells]
        minimum = max(2, column or 0)
        if len(cells) < minimum:
            need = (
                f"{column} columns (--language-column {column})" if column else "a word and a tag"
            )
            raise KdcliError(
                f"{self.path}, line {line_no}: expected {need} separated by a tab, found "
                f"{raw.strip()!r}; a sentence ends at a blank line"
            )
        self.words.append(cells[0])
        self.tags.append(cells[-1])
        if column:
            self.languages.append(cells[column - 1])

    def finish(self) -> Iterator[dict[str, Any]]:
        if not self.words:
            return
        self.count += 1
        language = self.languages[0] if self.languages else self.language
        yield {
            "id": self.next_id or f"{self.path.stem}-{self.count}",
            "text": " ".join(self.words),
            "words": self.words,
            "tags": self.tags,
            "language": language,
        }
        self.words, self.tags, self.languages, self.next_id = [], [], [], None
