"""Which tokens a trimmed vocabulary keeps: every candidate in the order it is needed.

A text keeps its tokenization under trimming exactly when every token the teacher's tokenizer
gives it is kept (with, for BPE, the merge parts that build it: see `tokenizer_trim`). So the
question is which tokens *unseen* text will need, and kdcli ranks the teacher's tokens in levels,
each one a superset of the one before:

1. **forced**: special and added tokens, the ids config.json names, and what the tokenizer model
   needs to stay consistent (Unigram's lowest-scoring piece, byte fallback, the byte alphabet);
2. **data**: the single characters of the data (most frequent first), then every token the
   teacher produces on it (most frequent first; `min_frequency` leaves rare ones to later levels);
3. **alphabet**: every token written only with the letters of one of the data's languages (as
   seen in the data, in either case; any character of Han, kana, Hangul and Yi, whose thousands
   of characters no data set shows in full), digits, punctuation and symbols;
4. **script**: every token written only in the scripts of one of the data's languages.

Within levels 3 and 4 tokens go by the tokenizer's own priority: a Unigram piece's score (its
log-probability in the tokenizer's training corpus), else the vocabulary order (BPE: merge rank).

What the levels promise (provable, per language L of the data): at *alphabet*, every text of L
whose letters all occur in L's data keeps its tokens; at *script*, every text written in L's
scripts does. What they cost is measured: on the real 250,002-piece XLM-R vocabulary and 17
languages, *data* keeps 14k tokens and changes 71% of held-out texts, *alphabet* 168k and none,
*script* 178k and none; for four Latin-script languages *alphabet* keeps 98k and changes 0.46%
(docs/method.md). Cutting the ranking anywhere else (`--vocab-size`) trades size for changed
texts roughly linearly: the pieces held-out text needs are spread over the whole score range, so
no shorter list of "likely" pieces covers it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kdcli.core.errors import KdcliError
from kdcli.vocab.scripts import ALPHABET, SCRIPT, alphabets, fit
from kdcli.vocab.tokenizer_trim import TokenizerModel, encode, merges, parse

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

LEVELS = ("data", "alphabet", "script")
_BYTE_FALLBACK = [f"<0x{b:02X}>" for b in range(256)]


@dataclass(frozen=True)
class VocabSelection:
    """Which teacher token ids the student keeps (sorted: the teacher's order) and why."""

    kept: list[int]
    family: str
    teacher_size: int
    used: int  # distinct tokens the teacher's tokenizer produced on the data
    dropped_used: int  # of those, how many --vocab-size / --min-frequency left out
    fallback: int  # single-character tokens kept, unseen in the data, so new text still tokenizes
    texts: int
    tokens: int  # tokens produced on the data (special tokens included)
    level: str  # the largest level kept whole: forced, data, alphabet or script
    levels: dict[str, int]  # tokens each level keeps ("forced" and each of LEVELS)

    @property
    def new_ids(self) -> dict[int, int]:
        return {old: new for new, old in enumerate(self.kept)}


@dataclass(frozen=True)
class VocabRanking:
    """The teacher's tokens in the order trimming keeps them, and where each level ends."""

    ranked: list[int]  # teacher ids, most needed first; a BPE token's merge parts come before it
    ends: dict[str, int]  # "forced" and each of LEVELS -> how many of `ranked` that level keeps
    family: str
    teacher_size: int
    counts: Counter[int]  # token -> how often the teacher produced it on the data
    fallback: frozenset[int]  # the data's single-character tokens
    texts: int
    positions: dict[int, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "positions", {t: i for i, t in enumerate(self.ranked)})

    def level(self, size: int) -> str:
        """The largest level a cut at `size` tokens keeps whole ("forced" below the data's)."""
        return [level for level in ("forced", *LEVELS) if self.ends[level] <= size][-1]

    def needed(self, encoded: Iterable[Sequence[int]]) -> list[int]:
        """For each encoded text, how many ranked tokens must be kept for it to keep its tokens
        (len(ranked) + 1 when it needs a token no level keeps)."""
        never = len(self.ranked) + 1
        return [
            max((self.positions.get(i, never - 1) + 1 for i in ids), default=0) for ids in encoded
        ]

    def select(self, size: int) -> VocabSelection:
        """The first `size` ranked tokens: a set closed under BPE merges at every cut."""
        if size < self.ends["forced"]:
            raise KdcliError(
                f"is smaller than the {self.ends['forced']} tokens every student of this teacher "
                f"keeps (special tokens and what its {self.family} model needs)",
                option="vocab_size",
                value=size,
                fix=f"choose at least {self.ends['forced']}",
            )
        kept = sorted(self.ranked[:size])
        kept_set = set(kept)
        return VocabSelection(
            kept=kept,
            family=self.family,
            teacher_size=self.teacher_size,
            used=len(self.counts),
            dropped_used=sum(1 for i in self.counts if i not in kept_set),
            fallback=sum(1 for i in self.fallback if i in kept_set and i not in self.counts),
            texts=self.texts,
            tokens=sum(self.counts.values()),
            level=self.level(size),
            levels=dict(self.ends),
        )


def rank_vocab(
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    source: str,
    languages: Sequence[str] | None = None,
    min_frequency: int | None = None,
    protected: Iterable[int] = (),
    rows: int | None = None,
    encoded: list[list[int]] | None = None,
) -> VocabRanking:
    """Every token trimming may keep, ranked by level (see the module notes).

    `languages` (one per text) gives each language its own alphabet and scripts; without it the
    data is one language. `protected` ids (the config's pad/bos/eos ids) are always kept.
    """
    model = parse(tokenizer, source)
    size = len(tokenizer)
    rows = size if rows is None else rows
    if size > rows:
        raise KdcliError(
            f"{source}: its tokenizer has {size} tokens but the model has only {rows} embedding "
            "rows: the tokenizer does not belong to this model"
        )
    encoded = encode(tokenizer, texts) if encoded is None else encoded
    counts = Counter(i for ids in encoded for i in ids)
    order = _Order(_closure(model))
    order.extend(sorted(_forced(model, tokenizer, protected, rows)))
    ends = {"forced": len(order.ranked)}
    fallback = _fallback(model, tokenizer, texts)
    threshold = min_frequency or 1
    order.extend(fallback)
    order.extend(i for i in sorted(counts, key=lambda i: (-counts[i], i)) if counts[i] >= threshold)
    ends["data"] = len(order.ranked)
    normalizer = tokenizer.backend_tokenizer.normalizer
    found = alphabets(
        texts,
        languages if languages is not None else ["und"] * len(texts),
        normalizer.normalize_str if normalizer is not None else str,
    )
    candidates = _by_priority(model)
    fits = {i: fit(model.text(i), found) for i in candidates}
    for level, allowed in (("alphabet", ALPHABET), ("script", SCRIPT)):
        order.extend(i for i in candidates if fits[i] <= allowed)
        ends[level] = len(order.ranked)
    return VocabRanking(
        ranked=order.ranked,
        ends=ends,
        family=model.family,
        teacher_size=size,
        counts=counts,
        fallback=frozenset(fallback),
        texts=len(encoded),
    )


class _Order:
    """The ranking being built: each token once, after the BPE merge parts it needs."""

    def __init__(self, closure: Callable[[int], list[int]]) -> None:
        self.closure = closure
        self.ranked: list[int] = []
        self.seen: set[int] = set()

    def extend(self, token_ids: Iterable[int]) -> None:
        for token_id in token_ids:
            if token_id in self.seen:
                continue
            for part in self.closure(token_id):
                if part not in self.seen:
                    self.seen.add(part)
                    self.ranked.append(part)


def _by_priority(model: TokenizerModel) -> list[int]:
    """Model token ids, the tokenizer's most probable first (Unigram scores, else vocab order)."""
    ids = range(len(model.tokens))
    if model.family == "Unigram":
        scores = [float(score) for _, score in model.spec["vocab"]]
        return sorted(ids, key=lambda i: (-scores[i], i))
    return list(ids)


def _forced(
    model: TokenizerModel, tokenizer: PreTrainedTokenizerBase, protected: Iterable[int], rows: int
) -> set[int]:
    size = len(tokenizer)
    forced = {int(t["id"]) for t in model.data.get("added_tokens") or []}
    forced |= {i for i in tokenizer.all_special_ids if i is not None and 0 <= i < size}
    forced |= {int(i) for i in protected if 0 <= int(i) < rows}
    spec = model.spec
    ids = model.ids
    if model.family == "Unigram":
        if spec.get("unk_id") is not None:
            forced.add(int(spec["unk_id"]))
        # Keeps min(score), so the unknown-token score (min - 10) does not move: see
        # tokenizer_trim's notes.
        forced.add(min(range(len(model.tokens)), key=lambda i: (spec["vocab"][i][1], i)))
    elif spec.get("unk_token") in ids:
        forced.add(ids[spec["unk_token"]])
    if spec.get("byte_fallback"):
        forced |= {ids[b] for b in _BYTE_FALLBACK if b in ids}
    if model.byte_level:
        from tokenizers.pre_tokenizers import ByteLevel

        forced |= {ids[c] for c in ByteLevel.alphabet() if c in ids}
    return forced


def _fallback(
    model: TokenizerModel, tokenizer: PreTrainedTokenizerBase, texts: Sequence[str]
) -> list[int]:
    """Single-character tokens of the data's characters, most frequent first."""
    if model.byte_level:
        return []  # the byte alphabet, kept whole, already covers every text
    normalizer = tokenizer.backend_tokenizer.normalizer
    chars: Counter[str] = Counter()
    for text in texts:
        chars.update(normalizer.normalize_str(text) if normalizer is not None else text)
    ids = model.ids
    found: list[int] = []
    if model.family == "Unigram" and "▁" in ids:
        found.append(ids["▁"])  # the word-start marker of SentencePiece
    for char, _ in sorted(chars.items(), key=lambda item: (-item[1], item[0])):
        if char.isspace():
            continue
        for form in dict.fromkeys((char, model.prefix + char, char + model.suffix)):
            if form in ids:
                found.append(ids[form])
    return list(dict.fromkeys(found))


def _closure(model: TokenizerModel) -> Callable[[int], list[int]]:
    """token id -> the ids that must be kept with it, parts first (BPE: its merge parts)."""
    if model.family != "BPE":
        return lambda token_id: [token_id]
    ids = model.ids
    producers: dict[int, list[tuple[int, int]]] = {}
    for a, b, result in merges(model):
        if a in ids and b in ids and result in ids:
            producers.setdefault(ids[result], []).append((ids[a], ids[b]))

    def closure(token_id: int) -> list[int]:
        order: list[int] = []
        done: set[int] = set()
        stack = [(token_id, False)]
        while stack:  # depth first, each token after all of its parts (post-order)
            node, expanded = stack.pop()
            if node in done:
                continue
            if expanded:
                done.add(node)
                order.append(node)
                continue
            stack.append((node, True))
            stack += [(part, False) for parts in producers.get(node, ()) for part in parts]
        return order

    return closure
