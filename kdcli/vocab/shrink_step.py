"""Vocabulary trimming as one step of `kdcli shrink`: data in, kept rows and tokenizer files out.

`ranking.py` orders the teacher's tokens by level (forced, data, alphabet, script);
`tokenizer_trim.py` writes the trimmed tokenizer. This module runs them on the `--vocab-from`
data, picks where to cut the ranking, and checks the result twice: every text of the data must
keep its tokens (unless `--vocab-size` / `--min-frequency` dropped some of them), and the share of
*held-out* texts (the data's dev and test splits, or `--vocab-check DATA`) that tokenize
differently must stay within `--max-changed`, else the student is written, marked failed, and
the step raises `CheckFailedError` (exit 1), as export verification does.

Where to cut: `--vocab-keep data|alphabet|script` names a level; `auto` (the default) takes the
smallest level whose held-out change is within `--max-changed`. Because a text keeps its tokens
exactly when all of them are kept, that share is known for every cut before anything is written
(`VocabRanking.needed`); the reloaded tokenizer then confirms it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kdcli.core.errors import CheckFailedError, KdcliError, option_ref
from kdcli.core.progress import ProgressCallback, report
from kdcli.data.splits import load_for_option, nonempty_texts
from kdcli.files.model_dirs import ModelRef, load_tokenizer
from kdcli.files.provenance import to_ranges
from kdcli.vocab.ranking import LEVELS

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from kdcli.vocab.ranking import VocabRanking, VocabSelection

OPTION = "vocab_from"  # the setting whose data trimming reads
CHECK_OPTION = "vocab_check"  # the setting whose dev/test texts check it
KEEP_CHOICES = ("auto", *LEVELS)
MAX_CHANGED = 0.005  # the default --max-changed: 0.5% of held-out texts may tokenize differently
HELD_OUT_SPLITS = ("dev", "test")


@dataclass(frozen=True)
class TrimSettings:
    """What `--vocab-from DATA [--languages] [--vocab-keep] [--vocab-size N | --min-frequency K]
    [--max-changed] [--vocab-check DATA]` asked for."""

    data: str
    languages: list[str] | None = None
    vocab_size: int | None = None
    min_frequency: int | None = None
    keep: str = "auto"
    max_changed: float = MAX_CHANGED
    check: str | None = None


@dataclass(frozen=True)
class Texts:
    """Texts with their languages, and where they came from."""

    texts: list[str]
    languages: list[str]
    source: str

    def by_language(self, indices: set[int]) -> dict[str, list[int]]:
        """language -> [texts among `indices`, texts]."""
        total = Counter(self.languages)
        hits = Counter(self.languages[i] for i in indices)
        return {language: [hits[language], total[language]] for language in sorted(total)}


@dataclass(frozen=True)
class VocabReport:
    """What vocabulary trimming kept, and how the trimmed tokenizer does on the data."""

    tokenizer: str  # the tokenizer model: Unigram, WordPiece or BPE
    teacher: int  # tokens before
    student: int  # tokens after
    level: str  # the largest level kept whole: forced, data, alphabet or script
    levels: dict[str, int]  # tokens each level keeps
    used: int  # distinct tokens the teacher's tokenizer produced on the data
    dropped_used: int  # of those, left out by --vocab-size / --min-frequency
    fallback: int  # single-character tokens kept (unseen in the data) so new text tokenizes
    texts: int  # texts of the data
    changed_texts: int  # texts the student's tokenizer segments differently (0 unless capped)
    held_out_texts: int  # held-out texts (dev/test or --vocab-check, minus texts of the data)
    held_out_source: str  # where they came from
    held_out_changed: int  # held-out texts the student's tokenizer segments differently
    held_out_share: float  # held_out_changed / held_out_texts
    changed_by_language: dict[str, list[int]]  # language -> [changed, held-out texts]
    max_changed: float  # the share allowed (--max-changed)
    passed: bool  # held_out_changed / held_out_texts <= max_changed
    unk_rate_teacher: float  # unknown-token rate on the held-out texts, before
    unk_rate_student: float  # and after trimming
    notes: list[str] = field(default_factory=list)

    def worst_language(self) -> tuple[str, float] | None:
        shares = {k: c / n for k, (c, n) in self.changed_by_language.items() if n}
        if not shares:
            return None
        language = max(shares, key=lambda k: (shares[k], k))
        return language, shares[language]

    def failure(self, out: Path) -> str:
        """One line: what the check found, and the ways out."""
        worst = self.worst_language()
        most = f" (most: {worst[0]} {worst[1]:.0%})" if worst else ""
        max_changed = option_ref("max_changed")
        return (
            f"vocabulary check failed: {self.held_out_changed:,} of {self.held_out_texts:,} "
            f"held-out texts ({self.held_out_share:.2%}) tokenize differently with the "
            f"{self.student:,} kept tokens{most}, over {max_changed} {self.max_changed:.2%}. "
            f"{out} was written and marked failed in kdcli.json; keep more tokens "
            f"({option_ref('vocab_keep')} script, a larger {option_ref('vocab_size')}) or allow "
            f"more change ({max_changed} {_percent_above(self.held_out_share)})"
        )


def _percent_above(share: float) -> str:
    """The smallest whole-tenth percentage at or above `share`, as --max-changed takes it."""
    tenths = -int(-share * 1000 // 1)
    return f"{tenths / 10:g}%"


@dataclass(frozen=True)
class VocabTrim:
    """Vocabulary trimming inside one shrink: the data and the held-out texts with the teacher's
    tokens of each, read before any weights are touched; `select` decides, `write` writes."""

    settings: TrimSettings
    tokenizer: PreTrainedTokenizerBase
    data: Texts
    held_out: Texts
    encoded: list[list[int]]  # the teacher's token ids of every text of the data
    held_out_encoded: list[list[int]]  # and of every held-out text
    fingerprint: str

    @classmethod
    def load(cls, settings: TrimSettings, ref: ModelRef) -> VocabTrim:
        """Read the teacher's tokenizer, the data and the held-out texts, and tokenize them."""
        from kdcli.vocab.tokenizer_trim import backend_json, encode

        tokenizer = load_tokenizer(ref)
        backend_json(tokenizer, ref.name)  # a tokenizer without a fast backend fails here, early
        examples = load_for_option(settings.data, OPTION, "train", settings.languages)
        nonempty_texts(examples, OPTION, settings.data, settings.languages)  # none: an error
        data = _nonempty(examples.texts, examples.languages, f"{settings.data} (train)")
        held_out = _held_out(settings, set(data.texts))
        return cls(
            settings,
            tokenizer,
            data,
            held_out,
            encode(tokenizer, data.texts),
            encode(tokenizer, held_out.texts),
            examples.fingerprint(),
        )

    def select(self, source: str, teacher_config: dict[str, Any], rows: int) -> VocabSelection:
        """The tokens the student keeps: the ranking cut where the settings say (pure: writes
        nothing)."""
        ranking = self.rank(source, teacher_config, rows)
        return ranking.select(self.cut(ranking))

    def rank(self, source: str, teacher_config: dict[str, Any], rows: int) -> VocabRanking:
        """The teacher's tokens in the order trimming keeps them (see `ranking`)."""
        from kdcli.vocab.ranking import rank_vocab

        return rank_vocab(
            self.tokenizer,
            self.data.texts,
            source,
            languages=self.data.languages,
            min_frequency=self.settings.min_frequency,
            protected=token_ids(teacher_config).values(),
            rows=rows,
            encoded=self.encoded,
        )

    def cut(self, ranking: VocabRanking) -> int:
        """How many ranked tokens to keep: the level `keep` names, or with `auto` the smallest
        level within `max_changed` on the held-out texts; `vocab_size` caps it."""
        settings = self.settings
        ends = ranking.ends
        if settings.keep != "auto":
            size = ends[settings.keep]
        else:
            needed = ranking.needed(self.held_out_encoded)
            within = [
                ends[level]
                for level in LEVELS
                if _share_beyond(needed, ends[level]) <= settings.max_changed
            ]
            size = within[0] if within and settings.vocab_size is None else ends["script"]
        return size if settings.vocab_size is None else min(settings.vocab_size, size)

    def write(
        self,
        selection: VocabSelection,
        ref: ModelRef,
        out_dir: Path,
        progress: ProgressCallback | None,
    ) -> VocabReport:
        """Write the student's tokenizer, then check it on the data and the held-out texts."""
        from transformers import AutoTokenizer

        from kdcli.vocab.tokenizer_trim import changed_texts, unk_rate, write_tokenizer

        write_tokenizer(self.tokenizer, selection.kept, ref.path, out_dir, ref.name)
        report(progress, "check tokenizer", 0, None)
        changed = changed_texts(out_dir, self.data.texts, self.encoded, selection.new_ids)
        if changed and not selection.dropped_used:
            raise CheckFailedError(
                f"{ref.name}: the trimmed {selection.family} tokenizer "
                f"({type(self.tokenizer).__name__}) segments {len(changed)} of "
                f"{len(self.data.texts)} {option_ref(OPTION)} texts differently from the "
                f"teacher's (first: {self.data.texts[changed[0]]!r}): this tokenizer cannot be "
                f"trimmed safely; drop {option_ref(OPTION)}"
            )
        held = self.held_out
        held_changed = changed_texts(out_dir, held.texts, self.held_out_encoded, selection.new_ids)
        share = len(held_changed) / len(held.texts)
        result = VocabReport(
            tokenizer=selection.family,
            teacher=selection.teacher_size,
            student=len(selection.kept),
            level=selection.level,
            levels=dict(selection.levels),
            used=selection.used,
            dropped_used=selection.dropped_used,
            fallback=selection.fallback,
            texts=len(self.data.texts),
            changed_texts=len(changed),
            held_out_texts=len(held.texts),
            held_out_source=held.source,
            held_out_changed=len(held_changed),
            held_out_share=share,
            changed_by_language=held.by_language(set(held_changed)),
            max_changed=self.settings.max_changed,
            passed=share <= self.settings.max_changed,
            unk_rate_teacher=unk_rate(self.tokenizer, held.texts),
            unk_rate_student=unk_rate(AutoTokenizer.from_pretrained(out_dir), held.texts),
        )
        return _with_notes(result)

    def provenance(self, selection: VocabSelection, result: VocabReport) -> dict[str, Any]:
        """The vocabulary map (kept teacher ids, as ranges), the data and the check."""
        data = asdict(result)
        data["kept"] = to_ranges(selection.kept)
        data["data"] = {
            "spec": self.settings.data,
            "split": "train",
            "languages": self.settings.languages,
            "sha256": self.fingerprint,
        }
        data["keep"] = self.settings.keep
        data["vocab_size"] = self.settings.vocab_size
        data["min_frequency"] = self.settings.min_frequency
        return data


def _share_beyond(needed: list[int], size: int) -> float:
    """Share of texts that need more than the first `size` ranked tokens."""
    return sum(1 for n in needed if n > size) / len(needed)


def _with_notes(result: VocabReport) -> VocabReport:
    notes = []
    if result.dropped_used:
        notes.append(
            f"{result.dropped_used} of the {result.used} tokens seen in the {option_ref(OPTION)} "
            f"data were left out ({option_ref('vocab_size')} / {option_ref('min_frequency')}): "
            f"{result.changed_texts} of its {result.texts} texts now tokenize differently"
        )
    return replace(result, notes=notes)


def _nonempty(texts: list[str], languages: list[str], source: str) -> Texts:
    keep = [i for i, text in enumerate(texts) if text and text.strip()]
    return Texts([texts[i] for i in keep], [languages[i] for i in keep], source)


def _held_out(settings: TrimSettings, seen: set[str]) -> Texts:
    """The dev and test texts of `--vocab-check DATA` (else of the data) that are not in the
    data's train split: text the trimmed tokenizer has not been fitted to. A `--vocab-check`
    file without a split column counts with all its rows: it was given to check, not to train."""
    spec, option = (settings.check, CHECK_OPTION) if settings.check else (settings.data, OPTION)
    seen = set(seen)
    texts: list[str] = []
    languages: list[str] = []
    found: list[str] = []
    splits = ("train", *HELD_OUT_SPLITS) if _unsplit_check(settings) else HELD_OUT_SPLITS
    for split in splits:
        try:
            examples = load_for_option(spec, option, split, settings.languages)
        except KdcliError:
            if settings.check and split == splits[-1] and not found:
                raise
            continue
        found.append(split)
        for text, language in zip(examples.texts, examples.languages, strict=True):
            if text and text.strip() and text not in seen:
                seen.add(text)
                texts.append(text)
                languages.append(language)
    if not texts:
        check, data = option_ref(CHECK_OPTION), option_ref(OPTION)
        fix = (
            f"give {check} held-out texts that are not in the {data} train split"
            if settings.check
            else f"add {check} DATA (texts of the same languages, not in its train split)"
        )
        raise KdcliError(
            f"has no dev or test texts outside the {data} train split to check the trimmed "
            "vocabulary on unseen text",
            option=option,
            value=spec,
            fix=fix,
        )
    parts = "all rows" if "train" in found else "+".join(found)  # train: an unsplit check file
    return Texts(texts, languages, f"{spec} ({parts})")


def _unsplit_check(settings: TrimSettings) -> bool:
    """True when `--vocab-check` is one file without a split column (which the data layer splits
    80/10/10 for training; as check data every row of it counts)."""
    if settings.check is None:
        return False
    try:
        train = load_for_option(settings.check, CHECK_OPTION, "train", settings.languages)
    except KdcliError:
        return False
    return train.split_rule is not None


def token_ids(config: dict[str, Any]) -> dict[str, int]:
    """The config's special token ids (pad_token_id, bos_token_id, ...)."""
    return {
        key: value
        for key, value in config.items()
        if key.endswith("_token_id") and isinstance(value, int) and not isinstance(value, bool)
    }


def remap_token_ids(config: dict[str, Any], new_ids: dict[int, int]) -> None:
    """Point the config's special token ids at their rows in the trimmed vocabulary."""
    for key, value in token_ids(config).items():
        if value in new_ids:
            config[key] = new_ids[value]
