"""Vocabulary trimming on an XLM-R-base-shaped classifier: size before/after, and time.

The teacher has XLM-R base's shape (12 layers, hidden 768, 250,002 token rows, ~278M parameters,
~1.1 GB of float32 safetensors; random weights, see bench_shrink.py) and a 250,002-piece
SentencePiece-style Unigram tokenizer (XLMRobertaTokenizer, specials <s> <pad> </s> <unk> at
0-3 and <mask> last, as in XLM-R). No real XLM-R vocabulary can be downloaded here, so it is
built in two parts:

1. real Unigram pieces and scores, trained with the `tokenizers` UnigramTrainer (EM, like
   SentencePiece) on every text of the 10-locale sample (examples/data/massive-sample: en, de,
   fr, es, ru, ar, hi, ja, zh, sw), up to --trained-pieces pieces;
2. the long tail of the other ~90 languages a multilingual vocabulary covers: distinct
   pseudo-words in 16 scripts (Latin, Cyrillic, Greek, Arabic, Hebrew, Devanagari, Bengali,
   Tamil, Thai, Georgian, Armenian, Hangul, CJK, kana, Ethiopic, extended Latin), half of them
   word-initial ("▁"), scored below the trained pieces, to 250,002 entries in all.

`kdcli shrink --vocab-from` then trims on the sample's train split (1,600 utterances) and
measures unknown tokens on its dev split. How much trimming saves depends on how many distinct
pieces the data needs: more text (all of MASSIVE's 11.5k train utterances per locale) or a real
vocabulary with more pieces per language keeps more rows than this sample does.

    python benchmarks/bench_vocab.py [--workdir DIR] [--trained-pieces 16000]
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "examples" / "data" / "massive-sample"
VOCAB_SIZE = 250_002
SPECIALS = ["<s>", "<pad>", "</s>", "<unk>"]
SCRIPTS: dict[str, list[tuple[int, int]]] = {
    "latin": [(0x61, 0x7A)],
    "latin-extended": [(0xE0, 0xFF), (0x101, 0x17F)],
    "cyrillic": [(0x430, 0x44F)],
    "greek": [(0x3B1, 0x3C9)],
    "arabic": [(0x627, 0x64A)],
    "hebrew": [(0x5D0, 0x5EA)],
    "devanagari": [(0x905, 0x939)],
    "bengali": [(0x985, 0x9B9)],
    "tamil": [(0xB85, 0xBB9)],
    "thai": [(0xE01, 0xE2E)],
    "georgian": [(0x10D0, 0x10F0)],
    "armenian": [(0x561, 0x586)],
    "hangul": [(0xAC00, 0xD7A3)],
    "cjk": [(0x4E00, 0x9FFF)],
    "kana": [(0x3041, 0x3096), (0x30A1, 0x30FA)],
    "ethiopic": [(0x1200, 0x135A)],
}
KDCLI = """
import json, sys, time
start = time.perf_counter()
from kdcli import ShrinkConfig, shrink
teacher, out, data, layers = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
result = shrink(ShrinkConfig(teacher, out=out, vocab_from=data, layers=layers, overwrite=True))
print(json.dumps({"seconds": time.perf_counter() - start, **result.to_dict()}))
"""


def sample_texts() -> list[str]:
    return [
        json.loads(line)["utt"]
        for path in sorted((SAMPLE / "data").glob("*.jsonl"))
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]


def trained_pieces(texts: list[str], size: int) -> list[tuple[str, float]]:
    """Unigram pieces and log-probability scores learned from the sample (specials excluded)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    backend = Tokenizer(models.Unigram())
    backend.pre_tokenizer = pre_tokenizers.Metaspace()
    trainer = trainers.UnigramTrainer(
        vocab_size=size, special_tokens=SPECIALS, unk_token="<unk>", max_piece_length=16
    )
    backend.train_from_iterator(texts, trainer)
    vocab = json.loads(backend.to_str())["model"]["vocab"]
    return [(piece, score) for piece, score in vocab if piece not in SPECIALS]


def tail_pieces(count: int, taken: set[str], floor: float) -> list[tuple[str, float]]:
    """Pseudo-words of 16 scripts, scored from `floor` down, like a vocabulary's rare pieces."""
    rng = random.Random(0)
    alphabets = {
        name: [chr(c) for lo, hi in ranges for c in range(lo, hi + 1)]
        for name, ranges in SCRIPTS.items()
    }
    names = sorted(alphabets)
    pieces: list[str] = []
    seen = set(taken)
    while len(pieces) < count:
        script = names[rng.randrange(len(names))]
        longest = 3 if script in ("cjk", "hangul") else 8
        word = "".join(rng.choice(alphabets[script]) for _ in range(rng.randint(1, longest)))
        piece = ("▁" + word) if rng.random() < 0.5 else word
        if piece not in seen:
            seen.add(piece)
            pieces.append(piece)
    step = 8.0 / count  # scores fall by 8 nats over the tail, as a Zipfian tail does
    return [(piece, floor - 0.1 - i * step) for i, piece in enumerate(pieces)]


def build_tokenizer(folder: Path, trained: int) -> dict[str, int]:
    from tokenizers import Tokenizer
    from transformers import XLMRobertaTokenizer

    pieces = trained_pieces(sample_texts(), trained)
    floor = min(score for _, score in pieces)
    tail = tail_pieces(VOCAB_SIZE - len(SPECIALS) - 1 - len(pieces), {p for p, _ in pieces}, floor)
    vocab = [(s, 0.0) for s in SPECIALS] + pieces + tail + [("<mask>", 0.0)]
    assert len(vocab) == VOCAB_SIZE
    tokenizer = XLMRobertaTokenizer(vocab=vocab)
    Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())  # a valid tokenizer.json
    tokenizer.save_pretrained(folder)
    return {"trained": len(pieces), "tail": len(tail)}


def run(teacher: Path, out: Path, layers: list[int] | None) -> dict:
    from _shared import run_script

    return run_script(KDCLI, teacher, out, SAMPLE, json.dumps(layers))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--trained-pieces", type=int, default=16_000)
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="kdcli-bench-vocab-"))
    teacher = workdir / "teacher"
    started = time.perf_counter()
    if not (teacher / "model.safetensors").exists():
        subprocess.run(
            [sys.executable, str(ROOT / "benchmarks" / "bench_shrink.py"), "--build-teacher",
             str(teacher)],
            check=True,
        )  # fmt: skip
    parts = build_tokenizer(teacher, args.trained_pieces)
    print(
        f"teacher built in {time.perf_counter() - started:.0f} s: {teacher} "
        f"(vocabulary: {parts['trained']:,} trained pieces + {parts['tail']:,} tail pieces + "
        "5 specials)"
    )
    trim = run(teacher, workdir / "trimmed", None)
    both = run(teacher, workdir / "trimmed-6-layers", [0, 2, 4, 7, 9, 11])
    report(trim, both)


def report(trim: dict, both: dict) -> None:
    vocab = trim["vocab"]
    print(f"data: {SAMPLE.relative_to(ROOT)} train split, {vocab['texts']:,} texts, 10 locales")
    print(
        f"vocabulary: {vocab['teacher']:,} -> {vocab['student']:,} tokens "
        f"({vocab['used']:,} seen in the data, {vocab['fallback']:,} fallback characters); "
        f"same tokens on {vocab['texts'] - vocab['changed_texts']:,}/{vocab['texts']:,} texts"
    )
    print(
        f"unknown tokens on {vocab['held_out_texts']:,} held-out dev texts: "
        f"{vocab['unk_rate_teacher']:.2%} -> {vocab['unk_rate_student']:.2%}"
    )
    print(f"{'':24}{'parameters':>14}{'file (MB)':>12}{'in embeddings':>16}{'time (s)':>10}")
    rows = [
        (name, result[f"{who}_params"], result[f"{who}_bytes"], result[f"{who}_embedding_params"])
        for name, result, who in (
            ("teacher", trim, "teacher"),
            ("trimmed", trim, "student"),
            ("trimmed + 6 layers", both, "student"),
        )
    ]
    seconds = {"trimmed": trim["seconds"], "trimmed + 6 layers": both["seconds"]}
    for name, params, size, embeddings in rows:
        took = f"{seconds[name]:.1f}" if name in seconds else ""
        print(
            f"{name:24}{params / 1e6:>13.1f}M{size / 1e6:>12.1f}{embeddings / params:>16.0%}"
            f"{took:>10}"
        )
    print(
        f"size ratio from trimming alone: {trim['teacher_bytes'] / trim['student_bytes']:.2f}x "
        f"smaller (target >= 3x); with 6 of 12 layers: "
        f"{trim['teacher_bytes'] / both['student_bytes']:.2f}x"
    )


if __name__ == "__main__":
    main()
