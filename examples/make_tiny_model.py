#!/usr/bin/env python3
"""Build a tiny random XLM-R-style encoder for trying kdcli offline in minutes.

    python examples/make_tiny_model.py OUT [--layers 4] [--hidden 128] [--vocab-size 2000]

OUT becomes a standard Hugging Face model directory (config.json, model.safetensors, tokenizer
files) holding a bare encoder (no task head) with random weights, and a SentencePiece-style
Unigram tokenizer trained with the `tokenizers` library on the texts of the shipped sample data
(`examples/data/massive-sample`, 10 locales in 8 scripts). The same arguments give byte-identical
files. It stands in for a pretrained multilingual encoder such as xlm-roberta-base: `kdcli
finetune` turns it into a teacher, `kdcli shrink` copies a student out of that teacher.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

SAMPLE = Path(__file__).resolve().parent / "data" / "massive-sample"
SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]


def sample_texts(data: Path) -> list[str]:
    """Every utterance of the sample, all splits, in a fixed order."""
    files = sorted((data / "data").glob("*.jsonl"))
    if not files:
        raise SystemExit(f"no <locale>.jsonl files under {data / 'data'}")
    return [json.loads(line)["utt"] for f in files for line in f.read_text("utf-8").splitlines()]


def train_tokenizer(texts: list[str], vocab_size: int, max_length: int):
    """An XLM-R-style tokenizer: Unigram over Metaspace pieces, <s> ... </s> around a text.

    The vocabulary is counted here rather than by `tokenizers`' Unigram trainer, whose choice
    among equally scored pieces changes from run to run: every character of the sample (so no
    text is unknown), then the most frequent whole words and word pieces, scored by their log
    frequency. The same sample gives the same tokenizer, byte for byte.
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import XLMRobertaTokenizer

    normalizer = normalizers.NFKC()
    pre_tokenizer = pre_tokenizers.Metaspace()
    vocab = _count_vocab(texts, vocab_size, normalizer, pre_tokenizer)
    backend = Tokenizer(models.Unigram(vocab, unk_id=SPECIALS.index("<unk>"), byte_fallback=False))
    backend.normalizer = normalizer
    backend.pre_tokenizer = pre_tokenizer
    backend.decoder = decoders.Metaspace()
    backend.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>",
        pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", 0), ("</s>", 2)],
    )
    backend.add_special_tokens(SPECIALS)
    return XLMRobertaTokenizer(
        tokenizer_object=backend,
        bos_token="<s>",
        eos_token="</s>",
        cls_token="<s>",
        sep_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        mask_token="<mask>",
        model_max_length=max_length,
    )


def _count_vocab(texts, vocab_size, normalizer, pre_tokenizer) -> list[tuple[str, float]]:
    """Specials, every character, then frequent words and word prefixes/suffixes (2-6 chars)."""
    import math
    from collections import Counter

    words: Counter[str] = Counter()
    for text in texts:
        for word, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text)):
            words[word] += 1
    chars: Counter[str] = Counter()
    pieces: Counter[str] = Counter()
    for word, count in words.items():
        for char in word:
            chars[char] += count
        pieces[word] += count
        for size in range(2, min(6, len(word) - 1) + 1):
            pieces[word[:size]] += count
            pieces[word[-size:]] += count
    ranked = sorted(
        ((p, c) for p, c in pieces.items() if c >= 2 and p not in chars),
        key=lambda item: (-item[1] * len(item[0]), item[0]),
    )
    room = max(0, vocab_size - len(SPECIALS) - len(chars))
    chosen = sorted(chars.items(), key=lambda item: (-item[1], item[0])) + ranked[:room]
    total = sum(c for _, c in chosen)
    # longer pieces score higher than the characters they cover, so whole words win
    scored = [(p, round(math.log(c / total) + 2.0 * (len(p) - 1), 6)) for p, c in chosen]
    return [(s, 0.0) for s in SPECIALS] + scored


def build(out: Path, layers: int, hidden: int, heads: int, vocab_size: int, seed: int) -> Path:
    import torch
    from transformers import XLMRobertaConfig, XLMRobertaModel

    max_length = 128
    tokenizer = train_tokenizer(sample_texts(SAMPLE), vocab_size, max_length)
    config = XLMRobertaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=4 * hidden,
        max_position_embeddings=max_length + 2,  # XLM-R counts positions from pad_token_id + 1
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(seed)
    XLMRobertaModel(config, add_pooling_layer=False).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="directory to write the encoder to")
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--vocab-size", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.out.exists() and any(args.out.iterdir()):
        raise SystemExit(f"{args.out} exists and is not empty: choose another directory")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    build(args.out, args.layers, args.hidden, args.heads, args.vocab_size, args.seed)
    print(f"tiny encoder written to {args.out}")


if __name__ == "__main__":
    main()
