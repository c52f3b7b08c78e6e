"""The one tokenize/pad/batch path: training, the dev evaluation inside training, the teacher
cache, `kdcli eval`, export verification and the benchmarks all make their batches here.

Texts are tokenized once, without padding (`encode`); every batch is padded only to its own
longest text (dynamic padding, `collate` for torch and `collate_arrays` for numpy/ONNX Runtime).
Training batches are *length-grouped* by default: a seeded shuffle, then examples of similar length
are put together, so little compute goes into padding while the order stays random; `random`
batches skip the grouping (as a plain training loop does) at about twice the compute. Inference
batches are sorted by length (longest first, so an out-of-memory error shows at once).

Because every path shares these functions, the dev accuracy training records for a model and what
`kdcli eval --split dev` measures for the saved model are computed from the same batches' inputs:
the same length limit, pad id, padding side and model inputs.

Padding is always on the right, whatever side a tokenizer asks for: the encoders kdcli runs
number positions from the first token (BERT, DistilBERT and ELECTRA ignore the attention mask when
they do), so only right padding leaves every text the positions it has when run alone, and a
text's logits the same in any batch.
"""

from __future__ import annotations

import inspect
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kdcli.core.errors import KdcliError

if TYPE_CHECKING:
    import numpy as np
    import torch

# How many batches' worth of examples are sorted together when grouping by length. Larger groups
# waste less padding but make batches less random: in multilingual data length goes with language
# and script, so with HF's factor of 50 a batch of a small data set is nearly one language, and a
# tiny model on the test fixture stopped learning. 8 keeps padding to ~18% of the real tokens on
# the sample data (random batches: ~110%, factor 50: ~3%) with batches mixed enough to train well.
MEGABATCH_FACTOR = 8
# How training batches are made (`TrainConfig.batching`); docs/training.md says what each measured.
BATCHING = ("length-grouped", "random")
# The model inputs a tokenizer makes for one text, in the order kdcli feeds them.
MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
DEFAULT_INPUTS = ("input_ids", "attention_mask")
# tokenizers without a real limit report one of ~1e30; anything this large means "no limit".
_NO_LIMIT = 1_000_000


@dataclass(frozen=True)
class Column:
    """One more per-token value of every text (unpadded), and what pads it."""

    rows: list[list[int]]
    pad: int


@dataclass(frozen=True)
class Encoded:
    """The token ids of some texts, unpadded, plus what is needed to pad them.

    `columns` holds the other per-token values a batch carries, aligned with `input_ids` token for
    token: `token_type_ids` when the model takes them, and whatever a task adds (`with_column`).

    For token classification `word_tokens[i][w]` is the position of the token that carries word
    w of text i (its first sub-token with content, `encode_words`), or -1 when the word has no
    token of its own (a character the tokenizer drops, or a word cut off by the length limit).
    """

    input_ids: list[list[int]]
    pad_id: int
    columns: Mapping[str, Column] = field(default_factory=dict)
    word_tokens: list[list[int]] | None = None

    def __len__(self) -> int:
        return len(self.input_ids)

    def lengths(self) -> list[int]:
        return [len(ids) for ids in self.input_ids]

    def with_column(self, name: str, rows: Sequence[Sequence[int]], pad: int) -> Encoded:
        """A copy that also carries `name` (one value per token of every text, padded with
        `pad`), e.g. per-token labels padded with -100."""
        if name in ("input_ids", "attention_mask"):
            raise ValueError(f"{name} is made by encode/collate, not added as a column")
        fitted = [list(map(int, row)) for row in rows]
        if [len(row) for row in fitted] != self.lengths():
            raise ValueError(f"column {name} does not have one value per token of every text")
        columns = {**self.columns, name: Column(fitted, pad)}
        return Encoded(self.input_ids, self.pad_id, columns, self.word_tokens)


def encode(
    tokenizer: Any,
    texts: Sequence[str],
    max_length: int,
    inputs: Iterable[str] = DEFAULT_INPUTS,
) -> Encoded:
    """Tokenize `texts`, truncated to `max_length` tokens (special tokens included) and never
    beyond what the tokenizer says its model takes (more positions than it has would fail).

    `inputs` are the model inputs to prepare (`model_inputs`); `token_type_ids` are kept only
    when the tokenizer makes them.
    """
    return _tokenize(tokenizer, texts, max_length, inputs, offsets=False)[0]


def _tokenize(
    tokenizer: Any, texts: Sequence[str], max_length: int, inputs: Iterable[str], offsets: bool
) -> tuple[Encoded, Any]:
    """`encode`, and the tokenizer's own output (with character offsets when asked)."""
    limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(limit, int) and 0 < limit < _NO_LIMIT:
        max_length = min(max_length, limit)
    wanted = set(inputs)
    made = tokenizer(
        list(texts),
        truncation=True,
        max_length=max_length,
        return_attention_mask=False,
        return_token_type_ids="token_type_ids" in wanted,
        return_offsets_mapping=offsets,
    )
    columns = {}
    if "token_type_ids" in wanted and "token_type_ids" in made:
        pad_type = int(getattr(tokenizer, "pad_token_type_id", 0) or 0)
        columns["token_type_ids"] = Column(_int_rows(made["token_type_ids"]), pad_type)
    return Encoded(_int_rows(made["input_ids"]), pad_id(tokenizer), columns), made


def words_text(words: Sequence[str]) -> tuple[str, list[tuple[int, int]]]:
    """The words joined by single spaces, and each word's character span in that text."""
    spans = []
    position = 0
    for word in words:
        spans.append((position, position + len(word)))
        position += len(word) + 1
    return " ".join(words), spans


def encode_words(
    tokenizer: Any,
    words: Sequence[Sequence[str]],
    max_length: int,
    inputs: Iterable[str] = DEFAULT_INPUTS,
) -> Encoded:
    """Tokenize word-split texts for token classification, and find each word's token.

    The words are joined by spaces and tokenized as one text, exactly as `encode` tokenizes
    text, so a token classifier reads what a sequence classifier would. A word's token is the
    first token with content whose characters overlap the word's. Special tokens overlap no
    word; a lone word-start marker (SentencePiece's `▁` before a character it has no `▁X`
    piece for, byte-level BPE's `Ġ`) has no content, although tokenizers give it the span of
    the character after it, so the character's own token is chosen. Every supported tokenizer
    splits at spaces, so no token spans two words; a word the tokenizer turns into nothing
    (a lone zero-width character) gets -1.
    """
    if not getattr(tokenizer, "is_fast", False):
        raise KdcliError(
            f"token classification needs a fast tokenizer (character offsets); "
            f"{type(tokenizer).__name__} is not one: save the model with its tokenizer.json"
        )
    joined = [words_text(row) for row in words]
    encoded, made = _tokenize(tokenizer, [text for text, _ in joined], max_length, inputs, True)
    word_tokens = []
    for (_, spans), offsets, row in zip(
        joined, made["offset_mapping"], encoded.input_ids, strict=True
    ):
        content = [_has_content(piece) for piece in tokenizer.convert_ids_to_tokens(row)]
        word_tokens.append(word_positions(spans, [tuple(o) for o in offsets], content))
    return Encoded(encoded.input_ids, encoded.pad_id, encoded.columns, word_tokens)


def _has_content(piece: str) -> bool:
    """False for a token that is only a word-start marker (`▁`, `Ġ`) or a bare `##`."""
    return piece.lstrip("▁Ġ") not in ("", "##")


def word_positions(
    spans: Sequence[tuple[int, int]],
    offsets: Sequence[tuple[int, int]],
    content: Sequence[bool] | None = None,
) -> list[int]:
    """For each word span, the first token with content whose offsets overlap it (-1: none)."""
    positions = [-1] * len(spans)
    word = 0
    for token, (start, end) in enumerate(offsets):
        if end <= start or (content is not None and not content[token]):
            continue
        while word < len(spans) and spans[word][1] <= start:
            word += 1
        if word == len(spans):
            break
        if start < spans[word][1] and end > spans[word][0] and positions[word] < 0:
            positions[word] = token
    return positions


def pad_id(tokenizer: Any) -> int:
    """The id padding uses; some tokenizers have no pad token, and then any id works (the
    attention mask hides it): their end-of-text token, else 0."""
    for candidate in (tokenizer.pad_token_id, getattr(tokenizer, "eos_token_id", None)):
        if candidate is not None:
            return int(candidate)
    return 0


def model_inputs(forward: Callable[..., Any], tokenizer: Any) -> tuple[str, ...]:
    """The tokenizer outputs a model's `forward` accepts, in kdcli's fixed order."""
    accepted = set(inspect.signature(forward).parameters)
    made = set(getattr(tokenizer, "model_input_names", ())) | set(DEFAULT_INPUTS)
    return tuple(name for name in MODEL_INPUTS if name in accepted and name in made)


def _int_rows(rows: Sequence[Sequence[int]]) -> list[list[int]]:
    return [list(map(int, row)) for row in rows]


def sorted_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Inference batches: indices sorted by length, longest first, cut into `batch_size` pieces."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


def training_batches(
    lengths: Sequence[int], batch_size: int, seed: int, epoch: int, batching: str = "length-grouped"
) -> list[list[int]]:
    """Training batches for one epoch: shuffled, grouped by length unless `batching` is
    "random", in a shuffled order.

    The order depends only on (seed, epoch), never on the global random state, so a resumed run
    rebuilds exactly the batches an uninterrupted run would have seen. Random batches take the
    same shuffle with groups of one batch, so sorting only reorders texts inside a batch.
    """
    rng = random.Random(f"kdcli-batches-{seed}-{epoch}")
    order = list(range(len(lengths)))
    rng.shuffle(order)
    group = batch_size * (MEGABATCH_FACTOR if batching == "length-grouped" else 1)
    batches: list[list[int]] = []
    for start in range(0, len(order), group):
        chunk = sorted(order[start : start + group], key=lambda i: -lengths[i])
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def collate_arrays(encoded: Encoded, indices: Sequence[int]) -> dict[str, np.ndarray]:
    """`input_ids`, `attention_mask` and every column for `indices`, as int64 numpy arrays
    right-padded to the longest of them."""
    import numpy as np

    rows = [encoded.input_ids[i] for i in indices]
    width = max(len(row) for row in rows)
    batch = {"input_ids": np.full((len(rows), width), encoded.pad_id, dtype=np.int64)}
    batch["attention_mask"] = np.zeros((len(rows), width), dtype=np.int64)
    for name, column in encoded.columns.items():
        batch[name] = np.full((len(rows), width), column.pad, dtype=np.int64)
    for row, index in enumerate(indices):
        length = len(rows[row])
        batch["input_ids"][row, :length] = rows[row]
        batch["attention_mask"][row, :length] = 1
        for name, column in encoded.columns.items():
            batch[name][row, :length] = column.rows[index]
    return batch


def collate(encoded: Encoded, indices: Sequence[int]) -> dict[str, torch.Tensor]:
    """`collate_arrays` as torch tensors (int64), for PyTorch models."""
    import torch

    return {name: torch.from_numpy(a) for name, a in collate_arrays(encoded, indices).items()}


IGNORE_INDEX = -100  # what torch's cross-entropy skips: tokens that carry no word


def token_labels(
    encoded: Encoded, indices: Sequence[int], word_labels: Sequence[Sequence[int]], width: int
) -> torch.Tensor:
    """[batch, width] label ids on each word's token, IGNORE_INDEX everywhere else (the other
    sub-tokens of a word, special tokens, padding)."""
    import torch

    assert encoded.word_tokens is not None
    labels = torch.full((len(indices), width), IGNORE_INDEX, dtype=torch.long)
    for row, index in enumerate(indices):
        for word, position in enumerate(encoded.word_tokens[index]):
            if position >= 0:
                labels[row, position] = word_labels[index][word]
    return labels


def word_index(encoded: Encoded, indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """(batch rows, token positions) of every word that has a token, example by example and
    word by word: `logits[rows, positions]` are the batch's word logits [words, labels]."""
    import torch

    assert encoded.word_tokens is not None
    rows, positions = [], []
    for row, index in enumerate(indices):
        for position in encoded.word_tokens[index]:
            if position >= 0:
                rows.append(row)
                positions.append(position)
    return torch.tensor(rows, dtype=torch.long), torch.tensor(positions, dtype=torch.long)


def padded_tokens(lengths: Sequence[int], batches: Sequence[Sequence[int]]) -> int:
    """How many token positions `batches` compute, padding included (for measuring waste)."""
    return sum(len(batch) * max(lengths[i] for i in batch) for batch in batches)
