"""Trimmed tokenizers: a teacher's tokenizer.json cut down to a kept set of token ids.

In a multilingual encoder the embedding matrix is most of the model (XLM-R base: 192M of 278M
parameters). A student that serves some languages needs only the tokens its tokenizer produces on
text of those languages; `ranking.py` decides which ids to keep, this module writes the student's
tokenizer files (kept tokens renumbered in the teacher's order) and checks them.

Why a text keeps its segmentation when every token the teacher gives it is kept (`K` is the kept
set), per tokenizer model:

- **Unigram** (SentencePiece: XLM-R, mDeBERTa): Viterbi picks the best-scoring segmentation.
  The teacher's segmentation uses only tokens of `K`, and every segmentation over `K` is one over
  the full vocabulary, so it stays the best; ties are broken the same way because candidates are
  visited in the same order. One trap: the unknown-token score is `min(score) - 10`, and a
  character whose single-character piece was dropped gets an unknown node where it had none.
  kdcli keeps the lowest-scoring piece, so the unknown score does not move and every such new
  path scores strictly below the teacher's path.
- **WordPiece** (mBERT): greedy longest-match-first. Removing tokens never creates a longer
  match, and the teacher's matches are all kept, so every step matches the same piece; a word
  that was `[UNK]` (no match somewhere) still has no match.
- **BPE**: merges are applied lowest rank first. A kept token needs the merges that build it,
  so kdcli keeps the closure (both parts of every merge producing a kept token, recursively) and
  every merge whose parts and result are kept, in the teacher's order. The teacher's merges are
  then all present, and the lowest-ranked applicable merge is the same at every step.

Conversely a text one of whose tokens was dropped cannot keep its tokens, so "every token of the
text is kept" is exactly the condition, for data and unseen text alike. After writing, kdcli
reloads the student's tokenizer and measures the claim on real text (`changed_texts`).
"""

from __future__ import annotations

import functools
import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kdcli.core.errors import KdcliError, option_ref

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

TRIMMABLE = ("Unigram", "WordPiece", "BPE")
_CONFIG_FILES = ("tokenizer_config.json", "special_tokens_map.json")


@dataclass(frozen=True)
class TokenizerModel:
    """The parts of a tokenizer.json model that trimming reads."""

    family: str
    tokens: list[str]  # model vocabulary, index = id
    data: dict[str, Any]  # the whole tokenizer.json

    @property
    def spec(self) -> dict[str, Any]:
        return self.data["model"]

    @functools.cached_property
    def ids(self) -> dict[str, int]:
        return {token: i for i, token in enumerate(self.tokens)}

    @property
    def prefix(self) -> str:
        """The continuing-subword marker (WordPiece's `##`), if any."""
        return self.spec.get("continuing_subword_prefix") or ""

    @property
    def suffix(self) -> str:
        """The end-of-word marker (some BPEs' `</w>`), if any."""
        return self.spec.get("end_of_word_suffix") or ""

    @functools.cached_property
    def byte_level(self) -> bool:
        """Whether tokens are spelled in the byte-level alphabet (GPT-2 style BPE)."""
        return self.family == "BPE" and _has_byte_level(self.data.get("pre_tokenizer"))

    def text(self, token_id: int) -> str:
        """The characters a token stands for: word markers removed, byte-level spelling decoded
        (an incomplete UTF-8 sequence becomes U+FFFD, a symbol of no script)."""
        token = self.tokens[token_id]
        if self.prefix and token.startswith(self.prefix):
            token = token[len(self.prefix) :]
        if self.suffix and token.endswith(self.suffix):
            token = token[: -len(self.suffix)]
        if self.byte_level:
            decode = _byte_decoder()
            raw = bytes(decode[c] for c in token if c in decode)
            return raw.decode("utf-8", errors="replace")
        return token


def _has_byte_level(node: Any) -> bool:
    if isinstance(node, dict):
        return node.get("type") == "ByteLevel" or any(_has_byte_level(v) for v in node.values())
    if isinstance(node, list):
        return any(_has_byte_level(v) for v in node)
    return False


@functools.lru_cache(maxsize=1)
def _byte_decoder() -> dict[str, int]:
    """The byte-level alphabet (GPT-2's bytes_to_unicode), character -> byte."""
    printable = [*range(33, 127), *range(161, 173), *range(174, 256)]
    chars = list(printable)
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(printable, chars, strict=True)}


def backend_json(tokenizer: PreTrainedTokenizerBase, source: str) -> dict[str, Any]:
    """The tokenizer as the `tokenizers` library serialises it (what the model really sees)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise KdcliError(
            f"{source}: the {type(tokenizer).__name__} tokenizer has no fast (tokenizers) backend "
            f"and cannot be trimmed: kdcli trims {', '.join(TRIMMABLE)} fast tokenizers; "
            f"drop {option_ref('vocab_from')}"
        )
    return json.loads(backend.to_str())


def parse(tokenizer: PreTrainedTokenizerBase, source: str) -> TokenizerModel:
    data = backend_json(tokenizer, source)
    spec = data.get("model") or {}
    family = spec.get("type")
    if family not in TRIMMABLE:
        raise KdcliError(
            f"{source}: its tokenizer ({type(tokenizer).__name__}, model {family or 'unknown'}) "
            f"cannot be trimmed: kdcli trims {', '.join(TRIMMABLE)} tokenizers; "
            f"drop {option_ref('vocab_from')}"
        )
    if family == "Unigram":
        tokens = [str(piece) for piece, _ in spec["vocab"]]
    else:
        by_id = {int(i): str(t) for t, i in spec["vocab"].items()}
        if sorted(by_id) != list(range(len(by_id))):
            raise KdcliError(
                f"{source}: the {family} vocabulary in its tokenizer.json has gaps in its ids "
                f"and cannot be trimmed safely; drop {option_ref('vocab_from')}"
            )
        tokens = [by_id[i] for i in range(len(by_id))]
    return TokenizerModel(family, tokens, data)


def encode(tokenizer: PreTrainedTokenizerBase, texts: Sequence[str]) -> list[list[int]]:
    """Token ids of every text, special tokens included, never truncated."""
    if not texts:
        return []
    return list(tokenizer(list(texts), add_special_tokens=True, truncation=False)["input_ids"])


def merges(model: TokenizerModel) -> list[tuple[str, str, str]]:
    """(left, right, result) for each merge, in rank order."""
    prefix = model.prefix
    found = []
    for merge in model.spec.get("merges") or []:
        a, b = merge.split(" ", 1) if isinstance(merge, str) else merge
        right = b[len(prefix) :] if prefix and b.startswith(prefix) else b
        found.append((a, b, a + right))
    return found


def trimmed_tokenizer_json(
    tokenizer: PreTrainedTokenizerBase, kept: Sequence[int], source: str
) -> dict[str, Any]:
    """The tokenizer.json of the student: the `kept` teacher ids (sorted), renumbered in order."""
    model = parse(tokenizer, source)
    new_ids = {old: new for new, old in enumerate(kept)}
    model_kept = [i for i in kept if i < len(model.tokens)]
    data = model.data
    spec = data["model"]
    if model.family == "Unigram":
        spec["vocab"] = [spec["vocab"][i] for i in model_kept]
        if spec.get("unk_id") is not None:
            spec["unk_id"] = new_ids[int(spec["unk_id"])]
    else:
        spec["vocab"] = {model.tokens[i]: new_ids[i] for i in model_kept}
    if model.family == "BPE":
        kept_tokens = set(spec["vocab"])
        spec["merges"] = [
            merge
            for merge, (a, b, result) in zip(spec.get("merges") or [], merges(model), strict=True)
            if a in kept_tokens and b in kept_tokens and result in kept_tokens
        ]
    for token in data.get("added_tokens") or []:
        token["id"] = new_ids[int(token["id"])]
    data["post_processor"] = _remap_processor(data.get("post_processor"), new_ids)
    if isinstance(data.get("padding"), dict) and data["padding"].get("pad_id") in new_ids:
        data["padding"]["pad_id"] = new_ids[data["padding"]["pad_id"]]
    return data


def _remap_processor(node: Any, new_ids: dict[int, int]) -> Any:
    """Special-token ids inside a post-processor (template, BERT/RoBERTa style, sequences)."""
    if not isinstance(node, dict):
        return node
    kind = node.get("type")
    if kind == "TemplateProcessing":
        for special in (node.get("special_tokens") or {}).values():
            special["ids"] = [new_ids[int(i)] for i in special["ids"]]
    elif kind in ("BertProcessing", "RobertaProcessing"):
        for key in ("sep", "cls"):
            token, token_id = node[key]
            node[key] = [token, new_ids[int(token_id)]]
    elif kind == "Sequence":
        node["processors"] = [_remap_processor(p, new_ids) for p in node.get("processors", [])]
    return node


def write_tokenizer(
    tokenizer: PreTrainedTokenizerBase,
    kept: Sequence[int],
    source_dir: Path,
    out_dir: Path,
    source: str,
) -> None:
    """The student's tokenizer files: tokenizer.json (trimmed) and its remapped config files.

    Vocabulary files of other formats (sentencepiece models, vocab.txt, merges.txt) are left
    out: they describe the teacher's full vocabulary, and tokenizer.json is what loads first.
    """
    from tokenizers import Tokenizer

    data = trimmed_tokenizer_json(tokenizer, kept, source)
    Tokenizer.from_str(json.dumps(data)).save(str(out_dir / "tokenizer.json"))
    new_ids = {old: new for new, old in enumerate(kept)}
    for name in _CONFIG_FILES:
        if not (source_dir / name).is_file():
            continue
        if name != "tokenizer_config.json":
            shutil.copyfile(source_dir / name, out_dir / name)
            continue
        config = json.loads((source_dir / name).read_text(encoding="utf-8"))
        decoder = config.get("added_tokens_decoder")
        if isinstance(decoder, dict):
            config["added_tokens_decoder"] = {
                str(new_ids[int(i)]): token for i, token in decoder.items() if int(i) in new_ids
            }
        (out_dir / name).write_text(
            json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )


def changed_texts(
    student_dir: Path,
    texts: Sequence[str],
    teacher_encoded: list[list[int]],
    new_ids: dict[int, int],
) -> list[int]:
    """Indices of the texts the student's saved tokenizer segments differently from the teacher."""
    from transformers import AutoTokenizer

    student = AutoTokenizer.from_pretrained(student_dir)
    changed = []
    for index, (before, after) in enumerate(
        zip(teacher_encoded, encode(student, texts), strict=True)
    ):
        if [new_ids.get(i, -1) for i in before] != after:
            changed.append(index)
    return changed


def unk_rate(tokenizer: PreTrainedTokenizerBase, texts: Sequence[str]) -> float:
    """Share of the tokens (special tokens excluded) that are the unknown token."""
    unk = tokenizer.unk_token_id
    ids = tokenizer(list(texts), add_special_tokens=False, truncation=False)["input_ids"]
    total = sum(len(i) for i in ids)
    if unk is None or total == 0:
        return 0.0
    return sum(row.count(unk) for row in ids) / total
