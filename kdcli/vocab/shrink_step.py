"""Vocabulary trimming as one step of `kdcli shrink`: data in, kept rows and tokenizer files out.

`tokenizer_trim.py` holds the tokenizer mechanics (which ids to keep, how to rewrite
tokenizer.json); this module runs them on the `--vocab-from` data, checks the result on every text
of it, and reports what was kept for the summary and for `kdcli.json`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kdcli.core.errors import CheckFailedError, KdcliError, option_ref
from kdcli.core.progress import ProgressCallback, report
from kdcli.data.splits import load_for_option, nonempty_texts
from kdcli.files.model_dirs import ModelRef, load_tokenizer
from kdcli.files.provenance import to_ranges

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from kdcli.vocab.tokenizer_trim import VocabSelection

OPTION = "vocab_from"  # the setting whose data trimming reads


@dataclass(frozen=True)
class TrimSettings:
    """What `--vocab-from DATA [--languages] [--vocab-size N | --min-frequency K]` asked for."""

    data: str
    languages: list[str] | None = None
    vocab_size: int | None = None
    min_frequency: int | None = None


@dataclass(frozen=True)
class VocabReport:
    """What vocabulary trimming kept, and how the trimmed tokenizer does on the data."""

    tokenizer: str  # the tokenizer model: Unigram, WordPiece or BPE
    teacher: int  # tokens before
    student: int  # tokens after
    used: int  # distinct tokens the teacher's tokenizer produced on the data
    dropped_used: int  # of those, left out by --vocab-size / --min-frequency
    fallback: int  # single-character tokens kept (unseen in the data) so new text tokenizes
    texts: int  # texts of the data
    changed_texts: int  # texts the student's tokenizer segments differently (0 unless capped)
    held_out_texts: int  # held-out texts (dev split, minus texts also in the data)
    unk_rate_teacher: float | None  # unknown-token rate on the held-out texts, before
    unk_rate_student: float | None  # and after trimming

    def notes(self) -> list[str]:
        notes = []
        if self.dropped_used:
            notes.append(
                f"{self.dropped_used} of the {self.used} tokens seen in the --vocab-from data "
                f"were left out (--vocab-size / --min-frequency): {self.changed_texts} of its "
                f"{self.texts} texts now tokenize differently"
            )
        if not self.held_out_texts:
            notes.append(
                "the --vocab-from data has no held-out dev split: the unknown-token rate of the "
                "trimmed tokenizer on unseen text was not measured"
            )
        return notes


@dataclass(frozen=True)
class VocabTrim:
    """Vocabulary trimming inside one shrink: the data and the teacher's tokens of every text
    of it, read before any weights are touched; `select` decides, `write` writes."""

    settings: TrimSettings
    tokenizer: PreTrainedTokenizerBase
    texts: list[str]
    encoded: list[list[int]]  # the teacher's token ids of every text
    held_out: list[str] | None
    fingerprint: str

    @classmethod
    def load(cls, settings: TrimSettings, ref: ModelRef) -> VocabTrim:
        """Read the teacher's tokenizer and the data, and tokenize the data."""
        from kdcli.vocab.tokenizer_trim import backend_json, encode

        tokenizer = load_tokenizer(ref)
        backend_json(tokenizer, ref.name)  # a tokenizer without a fast backend fails here, early
        examples = load_for_option(settings.data, OPTION, "train", settings.languages)
        texts = nonempty_texts(examples, OPTION, settings.data, settings.languages)
        held_out = _held_out(settings, set(texts))
        encoded = encode(tokenizer, texts)
        return cls(settings, tokenizer, texts, encoded, held_out, examples.fingerprint())

    def select(self, source: str, teacher_config: dict[str, Any], rows: int) -> VocabSelection:
        """The teacher token ids the student keeps (pure: writes nothing)."""
        from kdcli.vocab.tokenizer_trim import select_vocab

        return select_vocab(
            self.tokenizer,
            self.texts,
            source,
            vocab_size=self.settings.vocab_size,
            min_frequency=self.settings.min_frequency,
            protected=token_ids(teacher_config).values(),
            rows=rows,
            encoded=self.encoded,
        )

    def write(
        self,
        selection: VocabSelection,
        ref: ModelRef,
        out_dir: Path,
        progress: ProgressCallback | None,
    ) -> VocabReport:
        """Write the student's tokenizer, then check it on every text of the data."""
        from kdcli.vocab.tokenizer_trim import changed_texts, unk_rate, write_tokenizer

        write_tokenizer(self.tokenizer, selection, ref.path, out_dir, ref.name)
        report(progress, "check tokenizer", 0, None)
        changed = changed_texts(out_dir, self.texts, self.encoded, selection.new_ids)
        if changed and not selection.dropped_used:
            raise CheckFailedError(
                f"{ref.name}: the trimmed {selection.family} tokenizer "
                f"({type(self.tokenizer).__name__}) segments {len(changed)} of "
                f"{len(self.texts)} {option_ref(OPTION)} texts differently from the teacher's "
                f"(first: {self.texts[changed[0]]!r}): this tokenizer cannot be trimmed safely; "
                f"drop {option_ref(OPTION)}"
            )
        held = self.held_out or []
        student_rate = None
        teacher_rate = None
        if held:
            from transformers import AutoTokenizer

            teacher_rate = unk_rate(self.tokenizer, held)
            student_rate = unk_rate(AutoTokenizer.from_pretrained(out_dir), held)
        return VocabReport(
            tokenizer=selection.family,
            teacher=selection.teacher_size,
            student=len(selection.kept),
            used=selection.used,
            dropped_used=selection.dropped_used,
            fallback=selection.fallback,
            texts=len(self.texts),
            changed_texts=len(changed),
            held_out_texts=len(held),
            unk_rate_teacher=teacher_rate,
            unk_rate_student=student_rate,
        )

    def provenance(self, selection: VocabSelection, result: VocabReport) -> dict[str, Any]:
        """The vocabulary map (kept teacher ids, as ranges) and the data it came from."""
        data = asdict(result)
        data["kept"] = to_ranges(selection.kept)
        data["data"] = {
            "spec": self.settings.data,
            "split": "train",
            "languages": self.settings.languages,
            "sha256": self.fingerprint,
        }
        data["held_out_split"] = "dev" if result.held_out_texts else None
        data["vocab_size"] = self.settings.vocab_size
        data["min_frequency"] = self.settings.min_frequency
        return data


def _held_out(settings: TrimSettings, seen: set[str]) -> list[str] | None:
    """The dev split's texts that are not in the trimming data; None when there is no dev split."""
    try:
        examples = load_for_option(settings.data, OPTION, "dev", settings.languages)
    except KdcliError:
        return None
    return [t for t in examples.texts if t and t.strip() and t not in seen] or None


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
