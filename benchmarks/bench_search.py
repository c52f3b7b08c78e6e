#!/usr/bin/env python3
"""How many full trainings `kdcli search` needs, against an exhaustive grid over the same space,
and whether both find the same answer; side by side in one run.

    python benchmarks/bench_search.py [--teacher DIR] [--data DATA] [--out DIR]
        [--depths 1,2,3] [--widths 1,0.5] [--min-retention 0.95] [--epochs 4] [--threads 1]

The search ranks shapes with short runs and trains in full only the promising ones, smallest
first, stopping at the first that meets the constraints (docs/search.md); the exhaustive grid
(`kdcli search --exhaustive`) trains every shape that fits in full and scores every variant.
Both use the same teacher, data, space, constraints, training settings and teacher-output cache.
Reported: full trainings, short runs, wall time, and the answers.

By default the teacher is built here: the tiny random 4-layer XLM-R-style encoder of
examples/make_tiny_model.py, fine-tuned on the shipped 10-locale sample. Pass `--teacher` for a
real one (e.g. all-MiniLM-L6-v2 fine-tuned by examples/recipes/study.yaml).
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "examples" / "data" / "massive-sample"
TINY_TRAINING = {"lr": 1e-3, "batch_size": 16, "weight_decay": 0.0, "max_length": 64}


def build_teacher(work: Path, epochs: int) -> Path:
    """The tiny encoder of make_tiny_model.py, fine-tuned on the sample."""
    from kdcli import FinetuneConfig, TrainConfig, finetune

    spec = importlib.util.spec_from_file_location("tiny", ROOT / "examples" / "make_tiny_model.py")
    tiny = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(tiny)
    encoder = tiny.build(work / "encoder", layers=4, hidden=128, heads=4, vocab_size=2000, seed=0)
    teacher = work / "teacher"
    finetune(
        FinetuneConfig(
            str(encoder), str(SAMPLE), teacher, TrainConfig(epochs=epochs, **TINY_TRAINING)
        )
    )
    return teacher


def run(config, label: str) -> dict:
    from kdcli import CheckFailedError, search

    started = time.perf_counter()
    try:
        result = search(config)
    except CheckFailedError as err:
        result = err.result
    seconds = time.perf_counter() - started
    chosen = result.chosen.name if result.chosen else None
    print(
        f"{label:<11} full trainings {result.trained_full:>2}, short runs "
        f"{result.trained_short:>2}, probes {result.probed:>2}, {seconds / 60:6.1f} min; "
        f"answer: {chosen or 'none'}",
        flush=True,
    )
    if result.answer:
        print(f"{'':<11} {result.answer}", flush=True)
    return {"chosen": chosen, "full": result.trained_full, "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", type=Path, help="a fine-tuned teacher (default: built here)")
    parser.add_argument("--data", default=str(SAMPLE))
    parser.add_argument("--out", type=Path, help="keep the searches here (default: a temp dir)")
    parser.add_argument("--depths", default="1,2,3")
    parser.add_argument("--layer-strategies", default="uniform")
    parser.add_argument("--widths", default="1,0.5")
    parser.add_argument("--formats", default="fp32,int8")
    parser.add_argument("--min-retention", type=float, default=0.95)
    parser.add_argument("--min-language-retention", type=float)
    parser.add_argument("--epochs", type=int, default=4, help="full training of every student")
    parser.add_argument(
        "--lr", type=float, help="students' learning rate (default 1e-3 tiny, 1e-4 --teacher)"
    )
    parser.add_argument("--teacher-epochs", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import torch

    from kdcli import SearchConfig, TrainConfig
    from kdcli.core.machine import cpu_summary

    torch.set_num_threads(args.threads)
    print(f"CPU: {cpu_summary()}; torch threads {args.threads}", flush=True)
    work = args.out or Path(tempfile.mkdtemp(prefix="bench-search-"))
    work.mkdir(parents=True, exist_ok=True)
    teacher = args.teacher
    tiny = {**TINY_TRAINING, "lr": args.lr or TINY_TRAINING["lr"]}
    training = TrainConfig(epochs=args.epochs, seed=0, **tiny)
    if teacher is None:
        teacher = work / "teacher"
        if not (teacher / "config.json").is_file():
            print("building the tiny teacher ...", flush=True)
            build_teacher(work, args.teacher_epochs)
    else:
        training = TrainConfig(epochs=args.epochs, seed=0, lr=args.lr or 1e-4, max_length=64)
    print(
        f"teacher {teacher}; data {args.data}; depths {args.depths} x strategies "
        f"{args.layer_strategies} x widths {args.widths} x vocab full,trimmed x formats "
        f"{args.formats}; --min-retention {args.min_retention}"
        + (f" --min-language-retention {args.min_language_retention}"
           if args.min_language_retention else ""),
        flush=True,
    )  # fmt: skip
    common = dict(
        teacher=str(teacher),
        data=args.data,
        min_retention=args.min_retention,
        min_language_retention=args.min_language_retention,
        depths=args.depths,
        layer_strategies=args.layer_strategies,
        widths=args.widths,
        formats=args.formats,
        train=training,
        cache_dir=work / "cache",
    )
    searched = run(SearchConfig(out=work / "search", **common), "search")
    exhaustive = run(SearchConfig(out=work / "exhaustive", exhaustive=True, **common), "exhaustive")
    same = searched["chosen"] == exhaustive["chosen"]
    print(
        f"full trainings: search {searched['full']} vs exhaustive {exhaustive['full']}; "
        f"same answer: {'yes' if same else 'no'}",
        flush=True,
    )
    if not same:
        sys.exit(1)


if __name__ == "__main__":
    main()
