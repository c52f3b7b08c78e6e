"""kdcli eval vs the transformers pipeline loop a user would write, side by side: examples/s.

The model is an XLM-R-shaped classifier with random weights (default: 6 layers, hidden 384, 12
heads, a multilingual-MiniLM-sized student; `--hidden 768` is the study's student shape) and a
Unigram tokenizer trained on the sample data; the texts are a split of
`examples/data/massive-sample` (10 languages) repeated `--copies` times. Three ways predict the
same texts with the same model and the same number of CPU threads (default 1: on a shared
machine, more threads than free cores make OpenMP threads wait for each other and the timings
meaningless):

- pipeline, loop: `clf(text)` for each text, the loop most users write first;
- pipeline, batched: `clf(texts, batch_size=B)`, the pipeline's own batching (same B as kdcli);
- kdcli eval: `kdcli.evaluate(EvalConfig([model], data, batch_size=B, threads=T))`, which
  tokenizes once, sorts by length and pads each batch only to its own longest text, and scores
  per language.

Each run is a fresh subprocess. The clock starts once torch is imported (the same cost for all)
and stops when predictions and accuracy are ready, so importing transformers' model and pipeline
code, reading the data and loading the model count for every way ("end to end"); "predicting
only" starts once the model is loaded. Runs alternate; medians are compared, and the predictions
of every way are checked to agree. Target: kdcli eval >= 1.5x the batched pipeline, end to end.

    python benchmarks/bench_eval.py [--split train --copies 4] [--threads 1] [--repeats 3]
                                    [--layers 6 --hidden 384]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "examples" / "data" / "massive-sample"

PIPELINE = """
import json, sys, time
import torch
start = time.perf_counter()
import transformers
from transformers import pipeline
from kdcli.data.splits import DataConfig, load_split
model_dir, data, threads, batch_size, mode = sys.argv[1:6]
torch.set_num_threads(int(threads))
transformers.logging.set_verbosity_error()
examples = load_split(DataConfig(data), "test")
clf = pipeline("text-classification", model=model_dir, device=-1)
loaded = time.perf_counter()
if mode == "loop":
    predicted = [clf(text, truncation=True)[0]["label"] for text in examples.texts]
else:
    outputs = clf(examples.texts, batch_size=int(batch_size), truncation=True)
    predicted = [output["label"] for output in outputs]
predicted_at = time.perf_counter()
accuracy = sum(p == g for p, g in zip(predicted, examples.labels)) / len(predicted)
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "predict_seconds": predicted_at - loaded,
                  "n": len(predicted), "accuracy": accuracy, "predicted": predicted}))
"""

KDCLI = """
import json, sys, time
import torch
start = time.perf_counter()
import kdcli.runtime.predictor
from kdcli.steps.evaluate import EvalConfig, evaluate
model_dir, data, threads, batch_size, mode = sys.argv[1:6]
# Benchmark-only instrumentation: note when the model is loaded, to time prediction alone.
loaded = []
open_predictor = kdcli.runtime.predictor.open_predictor
def timed_open(*args, **kwargs):
    predictor = open_predictor(*args, **kwargs)
    loaded.append(time.perf_counter())
    return predictor
kdcli.runtime.predictor.open_predictor = timed_open
progress_at = []
report = evaluate(EvalConfig([model_dir], data, split="test", threads=int(threads),
                             batch_size=int(batch_size)),
                  lambda event: progress_at.append(time.perf_counter()))
seconds = time.perf_counter() - start
result = report.models[0]
print(json.dumps({"seconds": seconds, "predict_seconds": progress_at[-1] - loaded[0],
                  "n": len(result.predictions), "accuracy": result.summary.pooled_accuracy,
                  "predicted": result.predictions}))
"""

WAYS = {
    "pipeline, loop": (PIPELINE, "loop"),
    "pipeline, batched": (PIPELINE, "batched"),
    "kdcli eval": (KDCLI, "-"),
}


def build_model(folder: Path, layers: int, hidden: int, heads: int) -> Path:
    """A random XLM-R classifier with the sample data's 10 intents and a trained tokenizer."""
    import torch
    import transformers
    from _shared import xlmr_tokenizer

    from kdcli.data.splits import DataConfig, load_split

    texts = load_split(DataConfig(str(DATA)), "train").texts
    labels = load_split(DataConfig(str(DATA)), "test").label_names()
    tokenizer = xlmr_tokenizer(texts, vocab_size=8000)
    config = transformers.XLMRobertaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=4 * hidden,
        max_position_embeddings=514,
        type_vocab_size=1,
        pad_token_id=tokenizer.pad_token_id,
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
    )
    torch.manual_seed(0)
    model = transformers.XLMRobertaForSequenceClassification(config)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def prepare_data(workdir: Path, split: str, copies: int) -> tuple[Path, int]:
    """The split's examples `copies` times over as one .jsonl file (ids made unique), so that a
    run takes long enough for the model's loading time not to dominate, as on real test sets
    (MASSIVE's test split has 2,974 examples per locale)."""
    from kdcli.data.splits import DataConfig, load_split

    examples = load_split(DataConfig(str(DATA)), split)
    path = workdir / f"{split}-x{copies}.jsonl"
    with path.open("w", encoding="utf-8") as handle:
        for copy in range(copies):
            for id_, text, label, language in zip(
                examples.ids, examples.texts, examples.labels, examples.languages, strict=True
            ):
                record = {"id": f"{id_}-{copy}", "text": text, "label": label, "language": language}
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    return path, copies * len(examples)


def run(script: str, model: Path, data: Path, args: argparse.Namespace, mode: str) -> dict:
    command = [
        sys.executable,
        "-c",
        script,
        str(model),
        str(data),
        str(args.threads),
        str(args.batch_size),
        mode,
    ]
    # One tokenizer thread for every way too: the pipeline tokenizes one text at a time.
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    result = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    if result.returncode != 0:
        raise SystemExit(f"benchmark run failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--split", default="train", help="train (1,600 texts), dev or test")
    parser.add_argument("--copies", type=int, default=4, help="repeat the split's texts N times")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--hidden", type=int, default=384)
    parser.add_argument("--heads", type=int, default=12)
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="kdcli-bench-eval-"))
    workdir.mkdir(parents=True, exist_ok=True)
    model = workdir / f"xlmr-{args.layers}x{args.hidden}"
    if not (model / "config.json").exists():
        started = time.perf_counter()
        build_model(model, args.layers, args.hidden, args.heads)
        print(f"built model in {time.perf_counter() - started:.0f} s: {model}")
    data, count = prepare_data(workdir, args.split, args.copies)
    results: dict[str, list[dict]] = {name: [] for name in WAYS}
    for _ in range(args.repeats):
        for name, (script, mode) in WAYS.items():
            results[name].append(run(script, model, data, args, mode))
    report(results, args, count)


def report(results: dict[str, list[dict]], args: argparse.Namespace, count: int) -> None:
    def median(name: str, key: str) -> float:
        return statistics.median(r[key] for r in results[name])

    reference = results["kdcli eval"][0]["predicted"]
    print(
        f"model: XLM-R shape, {args.layers} layers x {args.hidden} hidden, random weights; "
        f"{count} texts ({args.split} split of massive-sample x {args.copies}, 10 languages); "
        f"{args.threads} thread(s); batch {args.batch_size}; median of {args.repeats} runs"
    )
    print(
        f"{'':19}{'end to end':>22}{'predicting only':>24}{'same labels':>13}\n"
        f"{'':19}{'s':>8}{'ex/s':>7}{'kdcli':>7}{'s':>10}{'ex/s':>7}{'kdcli':>7}"
    )
    for name, runs in results.items():
        agree = sum(a == b for a, b in zip(runs[0]["predicted"], reference, strict=True)) / count
        total, predict = median(name, "seconds"), median(name, "predict_seconds")
        print(
            f"{name:19}{total:>8.1f}{count / total:>7.0f}"
            f"{total / median('kdcli eval', 'seconds'):>6.2f}x"
            f"{predict:>10.1f}{count / predict:>7.0f}"
            f"{predict / median('kdcli eval', 'predict_seconds'):>6.2f}x{100 * agree:>12.1f}%"
        )
    ratio = median("pipeline, batched", "seconds") / median("kdcli eval", "seconds")
    verdict = "met" if ratio >= 1.5 else "NOT met"
    print(f"kdcli eval vs batched pipeline, end to end: {ratio:.2f}x (target >= 1.5x: {verdict})")


if __name__ == "__main__":
    main()
