"""What a smaller embedding table costs: fewer bits per row, or fewer dimensions, on a real student.

A multilingual student keeps a large vocabulary so that held-out text keeps its tokens (`kdcli
shrink --vocab-keep auto`), and that table is most of its int8 file. This benchmark asks whether
storing the table in fewer bytes would pay: it replaces the PyTorch student's word-embedding table
by a simulated lower-precision or low-rank copy (everything else stays float) and measures, on the
test split, accuracy and top-1 agreement with the unchanged student, overall and in the worst
language, next to each table's size:

- int8 with one scale per row (what `kdcli export --quantize int8` stores);
- int4 with one scale per row, and with one scale per block of 32 values (fp16 scales);
- the data's pieces (those the tokenizer produces on the train split) in int8 and every other row
  in int4: the rows held-out text needs beyond the training data, at half the bytes;
- the data's pieces only, the other rows zeroed: how much held-out text leans on those rows;
- a rank-r factorisation (truncated SVD: rows x r and r x dim in float16).

With `--export DIR` (the student's `kdcli export --quantize int8` folder) it also prints what
each table would make of the whole int8 file, and with `--teacher DIR` how many times smaller than
the teacher's weights that file would be.

    python benchmarks/bench_table_bits.py --model STUDENT --data DATA [--export DIR]
        [--teacher DIR] [--ranks 96,192,288] [--threads 1]

No timings: nothing here waits for a quiet machine.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench_deploy import _gold, _per_language

MB = 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="a kdcli student (PyTorch folder)")
    parser.add_argument("--data", required=True, help="data with train and test splits")
    parser.add_argument("--export", help="the student's int8 export folder, for file sizes")
    parser.add_argument("--teacher", help="the teacher's folder, for the size ratio")
    parser.add_argument("--ranks", default="96,192,288", help="ranks of the factorised tables")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import torch

    from kdcli.core.machine import cpu_summary
    from kdcli.data.splits import DataConfig, load_split
    from kdcli.runtime.predictor import TorchPredictor, open_predictor

    student = open_predictor(args.model, threads=args.threads)
    if not isinstance(student, TorchPredictor):
        raise SystemExit(f"--model {args.model}: give the student's PyTorch folder, not an export")
    data = DataConfig(args.data)
    test = load_split(data, "test")
    embeddings = student.model.get_input_embeddings()
    table = embeddings.weight.detach().clone().numpy()
    data_rows = _data_rows(student.tokenizer, load_split(data, "train").texts)
    print(f"# {args.model}: word-embedding table {table.shape[0]:,} x {table.shape[1]}")
    print(f"CPU: {cpu_summary()}; torch {torch.__version__}, {args.threads} threads")
    outside = _outside(student.tokenizer, test.texts, data_rows)
    print(
        f"test split: {len(test.texts)} texts; the data's pieces: {int(data_rows.sum()):,} rows; "
        f"test texts using a piece outside them: {outside}"
    )

    def predict(rows: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            embeddings.weight.copy_(torch.from_numpy(rows))
        return student.logits(test.texts).argmax(-1)

    reference = predict(table)
    gold = _gold(student, test.labels)
    everywhere = np.ones(len(test.texts), dtype=bool)
    rest = _rest_of_file(args.export, table)
    teacher = _weights_size(args.teacher) if args.teacher else None
    print(
        "\n| table | table size | int8 file | vs teacher | accuracy | agreement | worst language |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, (rows, size) in _contenders(table, data_rows, args.ranks).items():
        predicted = predict(rows)
        per_language = _per_language(predicted, gold, reference, everywhere, test.languages)
        worst = min(per_language, key=lambda lang: per_language[lang][1])
        accuracy = statistics.fmean(a for a, _, _ in per_language.values())
        agreement = float((predicted == reference).mean())
        whole = f"{(rest + size) / MB:.1f} MB" if rest is not None else "-"
        ratio = f"{teacher / (rest + size):.1f}x" if teacher and rest is not None else "-"
        print(
            f"| {name} | {size / MB:.1f} MB | {whole} | {ratio} | {100 * accuracy:.1f}% | "
            f"{100 * agreement:.1f}% | {worst} {100 * per_language[worst][1]:.1f}% |"
        )


def _contenders(
    table: np.ndarray, data_rows: np.ndarray, ranks: str
) -> dict[str, tuple[np.ndarray, float]]:
    """Each simulated table and its stored size in bytes."""
    from kdcli.runtime.onnx_graph import int8_rows

    rows, dim = table.shape
    int8, scales = int8_rows(table)
    eight = (int8 * scales, rows * dim + 4 * rows)
    mixed = eight[0].copy()
    mixed[~data_rows] = _int4(table[~data_rows], 32)
    cold = int((~data_rows).sum())
    zeroed = eight[0].copy()
    zeroed[~data_rows] = 0
    out: dict[str, tuple[np.ndarray, float]] = {
        "float32 (the student)": (table, 4 * rows * dim),
        "int8, scale per row (kdcli's file)": eight,
        "int4, scale per row": (_int4(table, dim), rows * dim / 2 + 2 * rows),
        "int4, scale per 32 values": (_int4(table, 32), rows * dim / 2 + 2 * rows * dim / 32),
        "data's pieces int8, the rest int4 per 32": (
            mixed,
            eight[1] - cold * (dim + 4) + cold * (dim / 2 + 2 * dim / 32),
        ),
        "data's pieces int8, the rest zero (not stored)": (
            zeroed,
            eight[1] * float(data_rows.mean()),
        ),
    }
    for rank in (int(r) for r in ranks.split(",") if r):
        out[f"rank {rank} of {dim} (SVD, float16)"] = (
            _low_rank(table, rank),
            2 * rank * (rows + dim),
        )
    return out


def _int4(table: np.ndarray, block: int) -> np.ndarray:
    """Symmetric round-to-nearest 4-bit values, one scale per `block` values of a row."""
    blocks = table.reshape(table.shape[0], -1, block)
    scales = np.abs(blocks).max(axis=2, keepdims=True) / 7.0
    scales = np.where(scales > 0, scales, 1.0).astype(np.float16).astype(np.float32)
    return (np.clip(np.round(blocks / scales), -8, 7) * scales).reshape(table.shape)


def _low_rank(table: np.ndarray, rank: int) -> np.ndarray:
    u, s, vt = np.linalg.svd(table, full_matrices=False)
    left = (u[:, :rank] * s[:rank]).astype(np.float16)
    return (left.astype(np.float32) @ vt[:rank].astype(np.float16).astype(np.float32)).astype(
        np.float32
    )


def _data_rows(tokenizer: Any, texts: list[str]) -> np.ndarray:
    """Which rows the tokenizer uses on `texts` (the special tokens included)."""
    used = np.zeros(len(tokenizer), dtype=bool)
    for ids in tokenizer(texts, truncation=True, max_length=128)["input_ids"]:
        used[ids] = True
    used[tokenizer.all_special_ids] = True
    return used


def _outside(tokenizer: Any, texts: list[str], data_rows: np.ndarray) -> str:
    encoded = tokenizer(texts, truncation=True, max_length=128)["input_ids"]
    return f"{sum(1 for ids in encoded if not data_rows[ids].all())} of {len(texts)}"


def _rest_of_file(export: str | None, table: np.ndarray) -> float | None:
    """The int8 file's bytes other than its int8 table and row scales."""
    if export is None:
        return None
    size = (Path(export) / "model_quantized.onnx").stat().st_size
    return size - (table.shape[0] * table.shape[1] + 4 * table.shape[0])


def _weights_size(folder: str) -> float:
    from kdcli.files.model_dirs import resolve_model, weight_files

    return float(sum(p.stat().st_size for p in weight_files(resolve_model(folder))))


if __name__ == "__main__":
    main()
