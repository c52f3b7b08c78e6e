"""Writing systems and alphabets of text, for choosing which tokens unseen text will need.

A token can only appear in the segmentation of a text that contains its characters, so the
characters of a language bound the tokens its text can ever need. This module classifies
characters by writing system (Unicode script) and gathers, per language of the trimming data,
the scripts it is written in and the letters it uses.

Python's `unicodedata` has no script property, so the script is read from the character's name
("LATIN SMALL LETTER A", "CYRILLIC ...", "CJK UNIFIED IDEOGRAPH-4E00"): good enough to tell
writing systems apart, which is all trimming needs. Digits, punctuation, symbols, spaces and
generic combining marks belong to no script: every language may use them.
"""

from __future__ import annotations

import functools
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

# Scripts with thousands of characters: a data set shows only some of them, and a new text soon
# uses others (held-out zh-CN text of the gettext set: 43% used an ideograph the train split had
# not), so their whole script counts as the language's alphabet.
WHOLE_SCRIPTS = frozenset({"HAN", "HANGUL", "KANA", "YI"})
# A script is a language's own when it writes at least this share of the language's letters:
# ja-JP data is 18% Latin (product names), but one "μ" in German text does not make it Greek.
MIN_SCRIPT_SHARE = 0.005
_NAME_TO_SCRIPT = {
    "CJK": "HAN",
    "IDEOGRAPHIC": "HAN",
    "HIRAGANA": "KANA",
    "KATAKANA": "KANA",
    "KATAKANA-HIRAGANA": "KANA",
}
_WIDTH_PREFIXES = ("HALFWIDTH", "FULLWIDTH")
_NO_SCRIPT_NAMES = ("COMBINING", "MODIFIER")


@functools.lru_cache(maxsize=65536)
def char_script(char: str) -> str | None:
    """The writing system of a letter (LATIN, CYRILLIC, HAN, KANA, ...), None for the rest."""
    if unicodedata.category(char)[0] in "NPSZC":
        return None
    words = unicodedata.name(char, "UNNAMED").split()
    if words[0] in _WIDTH_PREFIXES and len(words) > 1:
        words = words[1:]
    if words[0] in _NO_SCRIPT_NAMES:
        return None
    return _NAME_TO_SCRIPT.get(words[0], words[0])


@dataclass(frozen=True)
class Alphabet:
    """What one language of the data is written with."""

    scripts: frozenset[str]  # its scripts (those of >= MIN_SCRIPT_SHARE of its letters)
    letters: frozenset[str]  # the letters seen, in both cases

    @property
    def whole(self) -> frozenset[str]:
        """Its scripts whose every character counts as its letter (see WHOLE_SCRIPTS)."""
        return self.scripts & WHOLE_SCRIPTS


def alphabets(
    texts: Sequence[str], languages: Sequence[str], normalize: Callable[[str], str]
) -> list[Alphabet]:
    """Each language's `Alphabet`, from its texts as the tokenizer normalizes them."""
    letters: dict[str, Counter[str]] = defaultdict(Counter)
    for text, language in zip(texts, languages, strict=True):
        letters[language].update(c for c in normalize(text) if char_script(c) is not None)
    return [_alphabet(counts) for _, counts in sorted(letters.items())]


def _alphabet(letters: Counter[str]) -> Alphabet:
    by_script: Counter[str] = Counter()
    for char, count in letters.items():
        by_script[char_script(char)] += count  # type: ignore[index]
    total = sum(by_script.values())
    scripts = frozenset(s for s, n in by_script.items() if n >= MIN_SCRIPT_SHARE * total)
    cased = set(letters) | {c.upper() for c in letters} | {c.lower() for c in letters}
    # Letters of scripts that are not the language's own stay out, so that every text that fits
    # a language's alphabet also fits its scripts.
    kept = {c for c in cased if len(c) == 1 and char_script(c) in scripts}
    return Alphabet(scripts, frozenset(kept))


ALPHABET, SCRIPT, NEITHER = 0, 1, 2


def fit(text: str, found: Iterable[Alphabet]) -> int:
    """ALPHABET when every letter of `text` is a letter of one language, else SCRIPT when every
    letter is of one language's scripts, else NEITHER. Text without letters fits every language."""
    letters = {c for c in text if char_script(c) is not None}
    if not letters:
        return ALPHABET
    scripts = {char_script(c) for c in letters}
    best = NEITHER
    for alphabet in found:
        if scripts <= alphabet.scripts:
            rest = letters - alphabet.letters
            if all(char_script(c) in alphabet.whole for c in rest):
                return ALPHABET
            best = SCRIPT
    return best
