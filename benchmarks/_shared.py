"""What several benchmarks build the same way (imported as `_shared`: benchmarks run as scripts)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def xlmr_tokenizer(texts: Sequence[str], vocab_size: int) -> Any:
    """A SentencePiece-style Unigram tokenizer (XLM-R's kind) trained on `texts`: no download."""
    from tokenizers import (
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
        trainers,
    )
    from transformers import XLMRobertaTokenizer

    backend = Tokenizer(models.Unigram())
    backend.normalizer = normalizers.NFKC()
    backend.pre_tokenizer = pre_tokenizers.Metaspace()
    backend.decoder = decoders.Metaspace()
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    trainer = trainers.UnigramTrainer(
        vocab_size=vocab_size, special_tokens=specials, unk_token="<unk>"
    )
    backend.train_from_iterator(list(texts), trainer)
    backend.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>",
        pair="<s> $A </s> </s> $B </s>",
        special_tokens=[(t, backend.token_to_id(t)) for t in ("<s>", "</s>")],
    )
    return XLMRobertaTokenizer(
        tokenizer_object=backend,
        bos_token="<s>",
        eos_token="</s>",
        cls_token="<s>",
        sep_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        mask_token="<mask>",
        model_max_length=512,
    )
