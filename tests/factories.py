"""Tiny, offline stand-ins for real models: random weights from configs, tokenizers trained here.

Every test model is built from a config (no hub), with a tokenizer trained in a few milliseconds on
a small multilingual corpus with the `tokenizers` library, in the tokenizer family its architecture
really uses (SentencePiece-style Unigram for XLM-R and mDeBERTa, WordPiece for (m)BERT, DistilBERT
and ELECTRA, byte-level BPE for ModernBERT).

The Unigram and WordPiece trainers are not deterministic across processes (they break ties in
hash-map order, which Rust seeds per process): the same call gave a different vocabulary in each
run, so every model built on it computed a different function, and tests of int8 numerics passed
or failed by the draw. Each trained tokenizer is therefore kept in `tests/data/tokenizers/`, named
by a hash of its family, texts and size, and loaded from there; a call with no stored tokenizer
trains one, and `KDCLI_STORE_TOKENIZERS=1 pytest` stores it.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
import transformers
from tokenizers import (
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
    trainers,
)

FAMILIES = ("xlm-roberta", "bert", "distilbert", "deberta-v2", "electra", "modernbert")

CORPUS = [
    "wake me up at seven am tomorrow",
    "what is the weather like in paris today",
    "play some jazz music by miles davis",
    "weck mich morgen um sieben uhr",
    "wie ist das wetter heute in berlin",
    "spiel etwas musik von den beatles",
    "réveille-moi à sept heures demain",
    "quel temps fait-il à lyon aujourd'hui",
    "明日の朝七時に起こして",
    "今日の東京の天気はどう",
    "音楽をかけて",
    "разбуди меня завтра в семь утра",
    "какая погода в москве сегодня",
    "включи музыку",
    "أيقظني غدا في السابعة صباحا",
    "كيف الطقس في القاهرة اليوم",
    "شغل بعض الموسيقى",
    "मुझे कल सुबह सात बजे जगा दो",
    "आज दिल्ली में मौसम कैसा है",
    "明天早上七点叫醒我",
    "今天北京天气怎么样",
]

_SPECIALS = {
    "unigram-roberta": ["<s>", "<pad>", "</s>", "<unk>"],
    "unigram-deberta": ["[PAD]", "[CLS]", "[SEP]", "[UNK]"],
    "wordpiece": ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"],
    "bpe": ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"],
}
TOKENIZER_KIND = {
    "xlm-roberta": "unigram-roberta",
    "deberta-v2": "unigram-deberta",
    "bert": "wordpiece",
    "distilbert": "wordpiece",
    "electra": "wordpiece",
    "modernbert": "bpe",
}


TOKENIZERS = Path(__file__).parent / "data" / "tokenizers"


def make_tokenizer(kind: str, texts: list[str] | None = None, vocab_size: int = 300) -> Any:
    """A fast tokenizer of the given family, trained on `texts` (the stored one: see above)."""
    texts = list(texts or CORPUS)
    key = json.dumps([kind, texts, vocab_size], ensure_ascii=False).encode()
    stored = TOKENIZERS / f"{kind}-{hashlib.sha256(key).hexdigest()[:16]}.json"
    if stored.is_file():
        return _wrap(kind, Tokenizer.from_file(str(stored)))
    backend = _train(kind, texts, vocab_size)
    if os.environ.get("KDCLI_STORE_TOKENIZERS") == "1":
        stored.parent.mkdir(parents=True, exist_ok=True)
        backend.save(str(stored))
    return _wrap(kind, backend)


def _train(kind: str, texts: list[str], vocab_size: int) -> Tokenizer:
    specials = _SPECIALS[kind]
    if kind.startswith("unigram"):
        backend = Tokenizer(models.Unigram())
        backend.normalizer = normalizers.NFKC()
        backend.pre_tokenizer = pre_tokenizers.Metaspace()
        backend.decoder = decoders.Metaspace()
        mask = "<mask>" if kind == "unigram-roberta" else "[MASK]"
        trainer = trainers.UnigramTrainer(
            vocab_size=vocab_size, special_tokens=[*specials, mask], unk_token=specials[3]
        )
    elif kind == "wordpiece":
        backend = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        backend.normalizer = normalizers.BertNormalizer(lowercase=False)
        backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        backend.decoder = decoders.WordPiece()
        trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=specials)
    else:
        backend = Tokenizer(models.BPE(unk_token="[UNK]"))
        backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        backend.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            special_tokens=specials,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        )
    backend.train_from_iterator(texts, trainer)
    return backend


def _wrap(kind: str, backend: Tokenizer) -> Any:
    if kind == "unigram-roberta":
        cls_tok, sep_tok, pad, unk, mask = "<s>", "</s>", "<pad>", "<unk>", "<mask>"
        pair = f"{cls_tok} $A {sep_tok} {sep_tok} $B {sep_tok}"
        wrapper = transformers.XLMRobertaTokenizer
    else:
        cls_tok, sep_tok, pad, unk, mask = "[CLS]", "[SEP]", "[PAD]", "[UNK]", "[MASK]"
        pair = f"{cls_tok} $A {sep_tok} $B {sep_tok}"
        wrapper = transformers.PreTrainedTokenizerFast
    backend.post_processor = processors.TemplateProcessing(
        single=f"{cls_tok} $A {sep_tok}",
        pair=pair,
        special_tokens=[(t, backend.token_to_id(t)) for t in (cls_tok, sep_tok)],
    )
    return wrapper(
        tokenizer_object=backend,
        bos_token=cls_tok,
        eos_token=sep_tok,
        cls_token=cls_tok,
        sep_token=sep_tok,
        pad_token=pad,
        unk_token=unk,
        mask_token=mask,
        model_max_length=64,
    )


def make_config(
    family: str,
    tokenizer: Any,
    labels: tuple[str, ...] = ("alarm_set", "play_music", "weather_query"),
    layers: int = 4,
    hidden: int = 32,
    heads: int = 4,
    intermediate: int = 64,
    **overrides: Any,
) -> Any:
    vocab = len(tokenizer)
    ids = {
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": tokenizer.cls_token_id,
        "eos_token_id": tokenizer.sep_token_id,
    }
    common = dict(
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
        vocab_size=vocab,
        **ids,
    )
    if family == "distilbert":
        config = transformers.DistilBertConfig(
            dim=hidden,
            n_layers=layers,
            n_heads=heads,
            hidden_dim=intermediate,
            max_position_embeddings=64,
            **common,
        )
    elif family == "modernbert":
        config = transformers.ModernBertConfig(
            hidden_size=hidden,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            intermediate_size=intermediate,
            max_position_embeddings=64,
            global_attn_every_n_layers=2,
            local_attention=8,
            cls_token_id=tokenizer.cls_token_id,
            sep_token_id=tokenizer.sep_token_id,
            **common,
        )
    else:
        extra: dict[str, Any] = {}
        if family == "deberta-v2":
            extra = dict(
                relative_attention=True,
                pos_att_type=["p2c", "c2p"],
                position_buckets=16,
                max_relative_positions=32,
                norm_rel_ebd="layer_norm",
                share_att_key=True,
                position_biased_input=False,
                type_vocab_size=0,
            )
        if family == "electra":
            extra = dict(embedding_size=hidden // 2)
        config_class = transformers.AutoConfig.for_model(family).__class__
        config = config_class(
            hidden_size=hidden,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            intermediate_size=intermediate,
            max_position_embeddings=64,
            **extra,
            **common,
        )
    for key, value in overrides.items():
        setattr(config, key, value)
    return config


HEADS = {
    "sequence-classification": transformers.AutoModelForSequenceClassification,
    "token-classification": transformers.AutoModelForTokenClassification,
    "encoder": transformers.AutoModel,
    "masked-lm": transformers.AutoModelForMaskedLM,
}


def make_model_dir(
    path: Path,
    family: str,
    head: str = "sequence-classification",
    seed: int = 0,
    tokenizer: Any = None,
    dtype: torch.dtype = torch.float32,
    **config_kwargs: Any,
) -> Path:
    """Save a tiny random model of `family` with a trained tokenizer as an HF model directory."""
    tokenizer = tokenizer or make_tokenizer(TOKENIZER_KIND[family])
    config = make_config(family, tokenizer, **config_kwargs)
    torch.manual_seed(seed)
    model = HEADS[head].from_config(config)
    _randomize_norms(model, seed)
    model.to(dtype).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return Path(path)


def _randomize_norms(model: torch.nn.Module, seed: int) -> None:
    """LayerNorms start at 1/0; perturb them so tests notice a norm copied from the wrong place."""
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "norm" in name.lower() or name.endswith(".bias"):
                param.add_(0.1 * torch.randn(param.shape, generator=generator))


def encode(tokenizer: Any, texts: list[str] | None = None) -> dict[str, torch.Tensor]:
    return tokenizer(texts or CORPUS[:6], padding=True, return_tensors="pt")
