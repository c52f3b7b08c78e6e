"""Vocabulary trimming: keep only the tokens a student's languages need.

In a multilingual encoder the embedding matrix is most of the model (XLM-R base: 192M of 278M
parameters). A student that serves ten languages needs only the tokens its tokenizer produces on
text of those languages. kdcli keeps those tokens (plus the special tokens and a small fallback
alphabet), slices the embedding rows in the teacher's order, and writes a tokenizer that
segments every text of the trimming data exactly as the teacher's tokenizer did.

Why the segmentation of the trimming data cannot change, per tokenizer model (`K` is the kept
set, which always contains every token the teacher produced on the data):

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

The same arguments hold for any superset of the produced tokens, which is why kdcli can add a
fallback alphabet (the single characters of the data, with their `##` / suffix forms, and the
256 byte symbols of byte-level BPE) so that new text of the same languages still tokenizes into
smaller pieces instead of unknown tokens. After writing, kdcli reloads the student's tokenizer
and re-checks the claim on every text of the data.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kdcli.core.errors import KdcliError, option_ref

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

TRIMMABLE = ("Unigram", "WordPiece", "BPE")
_CONFIG_FILES = ("tokenizer_config.json", "special_tokens_map.json")
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

    @property
    def new_ids(self) -> dict[int, int]:
        return {old: new for new, old in enumerate(self.kept)}


@dataclass(frozen=True)
class _Model:
    """The parts of a tokenizer.json model that trimming reads."""

    family: str
    tokens: list[str]  # model vocabulary, index = id
    data: dict[str, Any]  # the whole tokenizer.json

    @property
    def spec(self) -> dict[str, Any]:
        return self.data["model"]


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


def _parse(tokenizer: PreTrainedTokenizerBase, source: str) -> _Model:
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
    return _Model(family, tokens, data)


def encode(tokenizer: PreTrainedTokenizerBase, texts: Sequence[str]) -> list[list[int]]:
    """Token ids of every text, special tokens included, never truncated."""
    if not texts:
        return []
    return list(tokenizer(list(texts), add_special_tokens=True, truncation=False)["input_ids"])


def select_vocab(
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    source: str,
    vocab_size: int | None = None,
    min_frequency: int | None = None,
    protected: Iterable[int] = (),
    rows: int | None = None,
    encoded: list[list[int]] | None = None,
) -> VocabSelection:
    """The teacher ids to keep for `texts`, the most frequent first when capped.

    Always kept: special and added tokens, `protected` ids (e.g. the config's pad/bos/eos ids),
    and what the tokenizer model needs to stay consistent (see the module notes). Then the
    fallback alphabet of the data's characters, then the produced tokens by frequency.
    `vocab_size` caps the total; `min_frequency` drops produced tokens seen fewer times.
    """
    model = _parse(tokenizer, source)
    size = len(tokenizer)
    rows = size if rows is None else rows
    if size > rows:
        raise KdcliError(
            f"{source}: its tokenizer has {size} tokens but the model has only {rows} embedding "
            "rows: the tokenizer does not belong to this model"
        )
    encoded = encode(tokenizer, texts) if encoded is None else encoded
    counts = Counter(i for ids in encoded for i in ids)
    closure = _closure(model)
    forced = _forced(model, tokenizer, protected, rows)
    kept: set[int] = set()
    for token_id in sorted(forced):
        kept |= closure(token_id)
    if vocab_size is not None and vocab_size < len(kept):
        raise KdcliError(
            f"is smaller than the {len(kept)} tokens every student of {source} keeps (special "
            f"tokens and what its {model.family} model needs)",
            option="vocab_size",
            value=vocab_size,
            fix=f"choose at least {len(kept)}",
        )
    fallback = [i for i in _fallback(model, tokenizer, texts) if i not in kept]
    threshold = min_frequency or 1
    used = sorted(counts, key=lambda i: (-counts[i], i))
    wanted = [i for i in used if counts[i] >= threshold]
    for token_id in [*fallback, *wanted]:
        need = closure(token_id) - kept
        if vocab_size is None or len(kept) + len(need) <= vocab_size:
            kept |= need
    return VocabSelection(
        kept=sorted(kept),
        family=model.family,
        teacher_size=size,
        used=len(counts),
        dropped_used=sum(1 for i in counts if i not in kept),
        fallback=sum(1 for i in fallback if i in kept and i not in counts),
        texts=len(encoded),
        tokens=sum(counts.values()),
    )


def _forced(
    model: _Model, tokenizer: PreTrainedTokenizerBase, protected: Iterable[int], rows: int
) -> set[int]:
    size = len(tokenizer)
    forced = {int(t["id"]) for t in model.data.get("added_tokens") or []}
    forced |= {i for i in tokenizer.all_special_ids if i is not None and 0 <= i < size}
    forced |= {int(i) for i in protected if 0 <= int(i) < rows}
    spec = model.spec
    ids = {token: i for i, token in enumerate(model.tokens)}
    if model.family == "Unigram":
        if spec.get("unk_id") is not None:
            forced.add(int(spec["unk_id"]))
        # Keeps min(score), so the unknown-token score (min - 10) does not move: see module notes.
        forced.add(min(range(len(model.tokens)), key=lambda i: (spec["vocab"][i][1], i)))
    elif spec.get("unk_token") in ids:
        forced.add(ids[spec["unk_token"]])
    if spec.get("byte_fallback"):
        forced |= {ids[b] for b in _BYTE_FALLBACK if b in ids}
    if model.family == "BPE" and _is_byte_level(model.data):
        from tokenizers.pre_tokenizers import ByteLevel

        forced |= {ids[c] for c in ByteLevel.alphabet() if c in ids}
    return forced


def _is_byte_level(data: dict[str, Any]) -> bool:
    def walk(node: Any) -> bool:
        if isinstance(node, dict):
            if node.get("type") == "ByteLevel":
                return True
            return any(walk(v) for v in node.values())
        if isinstance(node, list):
            return any(walk(v) for v in node)
        return False

    return walk(data.get("pre_tokenizer"))


def _fallback(model: _Model, tokenizer: PreTrainedTokenizerBase, texts: Sequence[str]) -> list[int]:
    """Single-character tokens of the data's characters, most frequent first."""
    if model.family == "BPE" and _is_byte_level(model.data):
        return []  # the byte alphabet, kept whole, already covers every text
    normalizer = tokenizer.backend_tokenizer.normalizer
    chars: Counter[str] = Counter()
    for text in texts:
        chars.update(normalizer.normalize_str(text) if normalizer is not None else text)
    ids = {token: i for i, token in enumerate(model.tokens)}
    spec = model.spec
    prefix = spec.get("continuing_subword_prefix") or ""
    suffix = spec.get("end_of_word_suffix") or ""
    found: list[int] = []
    if model.family == "Unigram" and "▁" in ids:
        found.append(ids["▁"])  # the word-start marker of SentencePiece
    for char, _ in sorted(chars.items(), key=lambda item: (-item[1], item[0])):
        if char.isspace():
            continue
        for form in dict.fromkeys((char, prefix + char, char + suffix)):
            if form in ids:
                found.append(ids[form])
    return list(dict.fromkeys(found))


def _closure(model: _Model) -> Any:
    """token id -> the set of ids that must be kept with it (BPE: its merge parts)."""
    if model.family != "BPE":
        return lambda token_id: {token_id}
    ids = {token: i for i, token in enumerate(model.tokens)}
    producers: dict[int, list[tuple[int, int]]] = {}
    for a, b, result in _merges(model):
        if a in ids and b in ids and result in ids:
            producers.setdefault(ids[result], []).append((ids[a], ids[b]))

    def closure(token_id: int) -> set[int]:
        found = {token_id}
        stack = [token_id]
        while stack:
            for parts in producers.get(stack.pop(), ()):
                for part in parts:
                    if part not in found:
                        found.add(part)
                        stack.append(part)
        return found

    return closure


def _merges(model: _Model) -> list[tuple[str, str, str]]:
    """(left, right, result) for each merge, in rank order."""
    prefix = model.spec.get("continuing_subword_prefix") or ""
    merges = []
    for merge in model.spec.get("merges") or []:
        a, b = merge.split(" ", 1) if isinstance(merge, str) else merge
        right = b[len(prefix) :] if prefix and b.startswith(prefix) else b
        merges.append((a, b, a + right))
    return merges


def trimmed_tokenizer_json(
    tokenizer: PreTrainedTokenizerBase, selection: VocabSelection, source: str
) -> dict[str, Any]:
    """The tokenizer.json of the student: kept tokens renumbered in the teacher's order."""
    model = _parse(tokenizer, source)
    new_ids = selection.new_ids
    model_kept = [i for i in selection.kept if i < len(model.tokens)]
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
            for merge, (a, b, result) in zip(spec.get("merges") or [], _merges(model), strict=True)
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
    selection: VocabSelection,
    source_dir: Path,
    out_dir: Path,
    source: str,
) -> None:
    """The student's tokenizer files: tokenizer.json (trimmed) and its remapped config files.

    Vocabulary files of other formats (sentencepiece models, vocab.txt, merges.txt) are left
    out: they describe the teacher's full vocabulary, and tokenizer.json is what loads first.
    """
    from tokenizers import Tokenizer

    data = trimmed_tokenizer_json(tokenizer, selection, source)
    Tokenizer.from_str(json.dumps(data)).save(str(out_dir / "tokenizer.json"))
    new_ids = selection.new_ids
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
