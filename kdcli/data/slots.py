"""MASSIVE's slot annotations (`annot_utt`) as words and IOB2 tags.

`wake me up at [time : five am]` becomes the words `wake me up at five am` tagged
`O O O O B-time I-time`. Words are what MASSIVE's own preprocessing (`create_hf_dataset.py` in
the MASSIVE repository) calls tokens, so slot F1 is computed over the same units as MASSIVE's
published numbers:

- ja-JP, zh-CN and zh-TW, written without spaces, are split into characters; a run of ASCII
  (a code-switched `iphone`, a number) written between spaces stays one word.
- every other locale is split at whitespace, th-TH included: MASSIVE's Thai utterances were
  written with spaces between phrases, and MASSIVE splits them there too.
- a slot's brackets also end a word, so `d'[artist_name : adele]` is the words `d'` and `adele`.
"""

from __future__ import annotations

import re

CHAR_SPLIT_LOCALES = frozenset({"ja-JP", "zh-CN", "zh-TW"})
_SLOT = re.compile(r"\[\s*([^\[\]:\s]+)\s*:\s*([^\[\]]*?)\s*\]")


class AnnotationError(ValueError):
    """An `annot_utt` that does not parse; the message says what is wrong with it."""


def parse_annot_utt(annot_utt: str, locale: str) -> tuple[list[str], list[str]]:
    """The words and IOB2 tags of one annotated utterance of `locale`."""
    words: list[str] = []
    tags: list[str] = []
    position = 0
    for match in _SLOT.finditer(annot_utt):
        _outside(annot_utt[position : match.start()], locale, words, tags)
        slot, value = match.group(1), match.group(2)
        value_words = split_words(value, locale)
        if not value_words:
            raise AnnotationError(f"slot {slot!r} has no words in {annot_utt!r}")
        words += value_words
        tags += [f"B-{slot}"] + [f"I-{slot}"] * (len(value_words) - 1)
        position = match.end()
    _outside(annot_utt[position:], locale, words, tags)
    return words, tags


def _outside(text: str, locale: str, words: list[str], tags: list[str]) -> None:
    if "[" in text or "]" in text:
        bracket = "[" if "[" in text else "]"
        raise AnnotationError(
            f"unmatched {bracket!r} near {text.strip()[:40]!r}: slots are written "
            "[slot_name : words]"
        )
    found = split_words(text, locale)
    words += found
    tags += ["O"] * len(found)


def split_words(text: str, locale: str) -> list[str]:
    """`text` as MASSIVE's words for `locale` (characters for ja-JP/zh-CN/zh-TW)."""
    chunks = text.split()
    if locale not in CHAR_SPLIT_LOCALES:
        return chunks
    words: list[str] = []
    for chunk in chunks:
        words += [chunk] if chunk.isascii() else list(chunk)
    return words
