"""kdcli eval vs the transformers pipeline loop a user would write, side by side: examples/s.

The model is an XLM-R-shaped classifier with random weights (default: 6 layers, hidden 384, 12
heads, a multilingual-MiniLM-sized student; `--hidden 768` is the study's student shape) and a
Unigram tokenizer trained on the sample data; the texts are a split of
`examples/data/massive-sample` (10 languages). Three ways predict the same texts with the same
model and the same number of CPU threads (default 1: on a shared machine, more threads than free
cores make OpenMP threads wait for each other and the timings meaningless):

- pipeline, loop: `clf(text)` for each text, the loop most users write first;
- pipeline, batched: `clf(texts, batch_size=B)`, the pipeline's own batching (same B as kdcli);
- kdcli eval: `kdcli.evaluate(EvalConfig([model], data, batch_size=B, threads=T))`, which
  tokenizes once, sorts by length and pads each batch only to its own longest text, and scores
  per language.

Each run is a fresh subprocess. The clock starts after torch and transformers are imported (the
same cost for all) and stops when predictions and accuracy are ready, so reading the data and
loading the model count for every way. Runs alternate; medians are compared, and the predictions
of every way are checked to agree. Target: kdcli eval >= 1.5x the batched pipeline.

    python benchmarks/bench_eval.py [--split train] [--threads 1] [--repeats 3] [--hidden 384]
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
import torch, transformers
from transformers import pipeline
from kdcli.data import DataConfig, load_split
model_dir, data, split, threads, batch_size, mode = sys.argv[1:7]
torch.set_num_threads(int(threads))
transformers.logging.set_verbosity_error()
start = time.perf_counter()
examples = load_split(DataConfig(data), split)
clf = pipeline("text-classification", model=model_dir, device=-1)
if mode == "loop":
    predicted = [clf(text, truncation=True)[0]["label"] for text in examples.texts]
else:
    outputs = clf(examples.texts, batch_size=int(batch_size), truncation=True)
    predicted = [output["label"] for output in outputs]
accuracy = sum(p == g for p, g in zip(predicted, examples.labels)) / len(predicted)
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "n": len(predicted), "accuracy": accuracy,
                  "predicted": predicted}))
"""

KDCLI = """
import json, sys, time
import torch, transformers
model_dir, data, split, threads, batch_size, mode = sys.argv[1:7]
from kdcli.evaluate import EvalConfig, evaluate
start = time.perf_counter()
report = evaluate(EvalConfig([model_dir], data, split=split, threads=int(threads),
                             batch_size=int(batch_size)))
seconds = time.perf_counter() - start
result = report.models[0]
print(json.dumps({"seconds": seconds, "n": len(result.predictions),
                  "accuracy": result.summary.pooled_accuracy, "predicted": result.predictions}))
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
    from tokenizers import (
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
        trainers,
    )

    from kdcli.data import DataConfig, load_split

    texts = load_split(DataConfig(str(DATA)), "train").texts
    labels = load_split(DataConfig(str(DATA)), "test").label_names()
    backend = Tokenizer(models.Unigram())
    backend.normalizer = normalizers.NFKC()
    backend.pre_tokenizer = pre_tokenizers.Metaspace()
    backend.decoder = decoders.Metaspace()
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    trainer = trainers.UnigramTrainer(vocab_size=8000, special_tokens=specials, unk_token="<unk>")
    backend.train_from_iterator(texts, trainer)
    backend.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>",
        pair="<s> $A </s> </s> $B </s>",
        special_tokens=[(t, backend.token_to_id(t)) for t in ("<s>", "</s>")],
    )
    tokenizer = transformers.XLMRobertaTokenizer(
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


def run(script: str, model: Path, args: argparse.Namespace, mode: str) -> dict:
    command = [
        sys.executable,
        "-c",
        script,
        str(model),
        str(DATA),
        args.split,
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
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--hidden", type=int, default=384)
    parser.add_argument("--heads", type=int, default=12)
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="kdcli-bench-eval-"))
    model = workdir / f"xlmr-{args.layers}x{args.hidden}"
    if not (model / "config.json").exists():
        started = time.perf_counter()
        build_model(model, args.layers, args.hidden, args.heads)
        print(f"built model in {time.perf_counter() - started:.0f} s: {model}")
    results: dict[str, list[dict]] = {name: [] for name in WAYS}
    for _ in range(args.repeats):
        for name, (script, mode) in WAYS.items():
            results[name].append(run(script, model, args, mode))
    report(results, args)


def report(results: dict[str, list[dict]], args: argparse.Namespace) -> None:
    n = results["kdcli eval"][0]["n"]
    seconds = {name: statistics.median(r["seconds"] for r in rs) for name, rs in results.items()}
    reference = results["kdcli eval"][0]["predicted"]
    print(
        f"model: XLM-R shape {args.layers} layers x {args.hidden} hidden, random weights; "
        f"{n} texts ({args.split} split of massive-sample, 10 languages); "
        f"{args.threads} threads; batch {args.batch_size}; median of {args.repeats} runs"
    )
    print(f"{'':20}{'seconds':>10}{'examples/s':>12}{'kdcli speed-up':>16}{'same labels':>13}")
    for name, runs in results.items():
        agree = sum(a == b for a, b in zip(runs[0]["predicted"], reference, strict=True)) / n
        speedup = seconds[name] / seconds["kdcli eval"]
        print(
            f"{name:20}{seconds[name]:>10.2f}{n / seconds[name]:>12.0f}"
            f"{speedup:>15.2f}x{100 * agree:>12.1f}%"
        )
    ratio = seconds["pipeline, batched"] / seconds["kdcli eval"]
    verdict = "met" if ratio >= 1.5 else "NOT met"
    print(f"kdcli eval vs batched pipeline: {ratio:.2f}x (target >= 1.5x: {verdict})")


if __name__ == "__main__":
    main()
