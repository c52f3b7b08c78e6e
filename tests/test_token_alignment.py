"""Word–subword alignment for token classification, for every tokenizer family kdcli supports:
each word's token is its first sub-token with content, and labels placed there read back."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from factories import _SPECIALS, CORPUS, make_tokenizer

from kdcli.data.batching import IGNORE_INDEX, encode_words, token_labels, word_index, words_text
from kdcli.data.slots import split_words

ZERO_WIDTH = "\u200b"  # a word every tokenizer turns into no token at all


def _word_lists() -> list[list[str]]:
    rows = []
    for index, text in enumerate(CORPUS):
        cjk = any("\u3040" <= ch <= "\u9fff" for ch in text)
        words = split_words(text, "ja-JP") if cjk else text.split()
        if index % 4 == 0:
            words = [*words[:1], ZERO_WIDTH, *words[1:]]
        rows.append(words)
    return rows


def _roberta_bpe():
    """A RoBERTa-style tokenizer: byte-level BPE with trimmed offsets and <s> </s> specials."""
    import transformers
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    backend.train_from_iterator(
        CORPUS,
        trainers.BpeTrainer(
            vocab_size=300,
            special_tokens=specials,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        ),
    )
    backend.post_processor = processors.RobertaProcessing(
        ("</s>", backend.token_to_id("</s>")),
        ("<s>", backend.token_to_id("<s>")),
        trim_offsets=True,
    )
    return transformers.RobertaTokenizerFast(
        tokenizer_object=backend, bos_token="<s>", eos_token="</s>", pad_token="<pad>"
    )


def _tokenizers():
    made = {kind: make_tokenizer(kind) for kind in _SPECIALS}
    made["roberta-bpe"] = _roberta_bpe()
    real = Path(
        os.environ.get("KDCLI_E5_SMALL", "/root/.cache/kdcli-assets/multilingual-e5-small-dq")
    )
    if (real / "tokenizer.json").is_file():  # the real XLM-R vocabulary, where it is installed
        from transformers import AutoTokenizer

        made["xlm-r (real)"] = AutoTokenizer.from_pretrained(real)
    return made


TOKENIZERS = _tokenizers()


@pytest.mark.parametrize("kind", sorted(TOKENIZERS))
def test_each_word_gets_its_first_content_token(kind: str):
    tokenizer = TOKENIZERS[kind]
    rows = _word_lists()
    encoded = encode_words(tokenizer, rows, max_length=64)
    assert encoded.word_tokens is not None
    for words, ids, positions in zip(rows, encoded.input_ids, encoded.word_tokens, strict=True):
        text, spans = words_text(words)
        offsets = tokenizer(text, return_offsets_mapping=True)["offset_mapping"]
        pieces = tokenizer.convert_ids_to_tokens(ids)
        real = [p for p in positions if p >= 0]
        assert real == sorted(set(real)), "two words share a token, or tokens go backwards"
        for word, (start, end), position in zip(words, spans, positions, strict=True):
            content = [
                i
                for i, (s, e) in enumerate(offsets)
                if s < end and e > start and e > s and pieces[i].lstrip("▁Ġ") not in ("", "##")
            ]
            if word == ZERO_WIDTH and not content:  # dropped by the normalizer: no token
                assert position == -1
                continue
            assert position == content[0], f"{word!r}: not its first content token"
            token_start, token_end = offsets[position]
            assert token_start < end and token_end > start  # the token is inside the word

    if kind in ("wordpiece", "xlm-r (real)"):  # normalizers that drop U+200B: -1 happens
        assert any(-1 in positions for positions in encoded.word_tokens)


@pytest.mark.parametrize("kind", sorted(TOKENIZERS))
def test_labels_on_word_tokens_read_back_per_word(kind: str):
    rows = _word_lists()
    encoded = encode_words(TOKENIZERS[kind], rows, max_length=64)
    assert encoded.word_tokens is not None
    tags = [[(i + w) % 5 for w in range(len(words))] for i, words in enumerate(rows)]
    indices = list(range(len(rows)))
    width = max(len(ids) for ids in encoded.input_ids)
    labels = token_labels(encoded, indices, tags, width)
    # a "model" that predicts exactly the labels: one-hot logits at the labelled tokens
    logits = torch.zeros((len(rows), width, 5))
    mask = labels != IGNORE_INDEX
    logits[mask] = torch.nn.functional.one_hot(labels[mask], 5).float()
    batch_rows, positions = word_index(encoded, indices)
    read = logits[batch_rows, positions].argmax(-1).tolist()
    expected = [
        tag
        for index, row in enumerate(tags)
        for tag, position in zip(row, encoded.word_tokens[index], strict=True)
        if position >= 0
    ]
    assert read == expected
    assert int(mask.sum()) == len(expected)  # one labelled token per word, nothing else


def test_truncation_leaves_the_cut_words_without_a_token():
    tokenizer = TOKENIZERS["wordpiece"]
    words = ["wake", "me", "up", "at", "seven", "am", "tomorrow"]
    encoded = encode_words(tokenizer, [words], max_length=5)  # [CLS] + 3 tokens + [SEP]
    assert encoded.word_tokens is not None
    positions = encoded.word_tokens[0]
    cut = positions.index(-1)  # the first word past the limit; all after it are cut too
    assert 0 < cut < len(words) and all(p == -1 for p in positions[cut:])
    assert len(encoded.input_ids[0]) == 5
