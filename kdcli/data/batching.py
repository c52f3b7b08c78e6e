"""Tokenized examples and the batches made from them, for training and for inference.

Texts are tokenized once, without padding; every batch is padded only to its own longest example
(dynamic padding). Training batches are *length-grouped*: a seeded shuffle, then examples of
similar length are put together, so little compute goes into padding while the order stays
random. Inference batches are sorted by length (longest first, so an out-of-memory error shows at
once), which is what `eval` and the teacher-output cache want.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

# How many batches' worth of examples are sorted together when grouping by length. Larger groups
# waste less padding but make batches less random: in multilingual data length goes with language
# and script, so with HF's factor of 50 a batch of a small data set is nearly one language, and a
# tiny model on the test fixture stopped learning. 8 keeps padding to ~18% of the real tokens on
# the sample data (random batches: ~110%, factor 50: ~3%) with batches mixed enough to train well.
MEGABATCH_FACTOR = 8


@dataclass(frozen=True)
class Encoded:
    """Token ids of one split, unpadded, plus what is needed to pad them."""

    input_ids: list[list[int]]
    pad_id: int

    def __len__(self) -> int:
        return len(self.input_ids)

    def lengths(self) -> list[int]:
        return [len(ids) for ids in self.input_ids]


def encode(tokenizer: Any, texts: Sequence[str], max_length: int) -> Encoded:
    """Tokenize `texts`, truncated to `max_length` tokens (special tokens included), and never
    beyond what the tokenizer says its model takes (more positions than it has would fail)."""
    limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(limit, int) and 0 < limit < 1_000_000:  # "no limit" is a huge sentinel
        max_length = min(max_length, limit)
    ids = tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]
    pad_id = tokenizer.pad_token_id
    if pad_id is None:  # some tokenizers have no pad token; any id works, the mask hides it
        pad_id = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0
    return Encoded([list(map(int, row)) for row in ids], int(pad_id))


def sorted_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Inference batches: indices sorted by length, longest first, cut into `batch_size` pieces."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


def length_grouped_batches(
    lengths: Sequence[int], batch_size: int, seed: int, epoch: int
) -> list[list[int]]:
    """Training batches for one epoch: shuffled, grouped by length, in a shuffled order.

    The order depends only on (seed, epoch), never on the global random state, so a resumed run
    rebuilds exactly the batches an uninterrupted run would have seen.
    """
    rng = random.Random(f"kdcli-batches-{seed}-{epoch}")
    order = list(range(len(lengths)))
    rng.shuffle(order)
    group = batch_size * MEGABATCH_FACTOR
    batches: list[list[int]] = []
    for start in range(0, len(order), group):
        chunk = sorted(order[start : start + group], key=lambda i: -lengths[i])
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def collate(encoded: Encoded, indices: Sequence[int]) -> dict[str, torch.Tensor]:
    """`input_ids` and `attention_mask` for `indices`, right-padded to the longest of them."""
    import torch

    rows = [encoded.input_ids[i] for i in indices]
    width = max(len(row) for row in rows)
    input_ids = torch.full((len(rows), width), encoded.pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    for row_index, row in enumerate(rows):
        input_ids[row_index, : len(row)] = torch.tensor(row, dtype=torch.long)
        attention_mask[row_index, : len(row)] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask}


def padded_tokens(lengths: Sequence[int], batches: Sequence[Sequence[int]]) -> int:
    """How many token positions `batches` compute, padding included (for measuring waste)."""
    return sum(len(batch) * max(lengths[i] for i in batch) for batch in batches)
