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


def run_script(script: str, *args: object) -> dict[str, Any]:
    """Run `python -c script args...` in a fresh process; its last stdout line is JSON.

    A fresh process per measurement keeps imports, caches and peak memory of one contender
    out of the other's figures.
    """
    import json
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", script, *map(str, args)], capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])
