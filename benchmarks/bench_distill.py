#!/usr/bin/env python3
"""Training speed of `kdcli distill` against the distillation loop a user would write with
`transformers.Trainer`, side by side in one run, on the same models, data and settings.

    python benchmarks/bench_distill.py [--epochs 3] [--threads N] [--teacher DIR --student DIR]

The baseline is a `Trainer` subclass whose `compute_loss` runs the teacher (no gradients) and the
student on every batch and mixes logit MSE with cross-entropy (alpha 0.5), with random batches
padded per batch by `DataCollatorWithPadding`: the straightforward recipe. kdcli computes the
teacher's outputs once (the teacher-output cache), then trains on length-grouped batches.

Both train with AdamW, lr 5e-5, linear decay, batch 32, gradient clipping 1.0, no weight decay,
for the same number of epochs. Reported: training samples per second per epoch (dev evaluation
and checkpointing excluded from both); kdcli's epoch 1 includes computing and caching the
teacher's outputs, on an empty cache. Targets: epoch 1 >= 1.0x the baseline, later epochs >= 1.5x.

By default the models are built here: a random 6-layer, 384-wide XLM-R-style teacher with a
classification head for the sample's 10 intents (the size of MiniLM-L12's layers), and a 3-layer
copy-weight student made from it by `kdcli shrink`; the data is the shipped 10-locale sample.
Speed does not depend on what the weights have learned, so the teacher is not fine-tuned.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "examples" / "data" / "massive-sample"
BATCH = 32
LR = 5e-5
ALPHA = 0.5


def build_models(work: Path, layers: int, hidden: int) -> tuple[Path, Path]:
    """A random teacher classifier for the sample's labels and its half-depth student."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from kdcli.data.splits import DataConfig, load_split
    from kdcli.steps.shrink import ShrinkConfig, shrink

    spec = importlib.util.spec_from_file_location("tiny", ROOT / "examples" / "make_tiny_model.py")
    tiny = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(tiny)
    encoder = tiny.build(work / "encoder", layers, hidden, hidden // 64, 2000, seed=0)
    labels = load_split(DataConfig(str(SAMPLE)), "train").label_names()
    model = AutoModelForSequenceClassification.from_pretrained(
        encoder, id2label=dict(enumerate(labels)), label2id={n: i for i, n in enumerate(labels)}
    )
    teacher = work / "teacher"
    model.save_pretrained(teacher)
    AutoTokenizer.from_pretrained(encoder).save_pretrained(teacher)
    student = work / "student"
    shrink(ShrinkConfig(str(teacher), out=student, num_layers=layers // 2))
    return teacher, student


def run_trainer(teacher_dir: Path, student_dir: Path, epochs: int, work: Path) -> list[float]:
    """The baseline: samples/s of each epoch of a Trainer-based distillation."""
    import datasets
    import torch
    import torch.nn.functional as F
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainerCallback,
        TrainingArguments,
    )

    from kdcli.data.splits import DataConfig, load_split

    class DistillationTrainer(Trainer):
        def __init__(self, *args, teacher, **kwargs):
            super().__init__(*args, **kwargs)
            self.teacher = teacher.to(self.args.device).eval()

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            labels = inputs.pop("labels")
            with torch.no_grad():
                teacher_logits = self.teacher(**inputs).logits
            outputs = model(**inputs)
            kd = F.mse_loss(outputs.logits, teacher_logits)
            ce = F.cross_entropy(outputs.logits, labels)
            loss = ALPHA * kd + (1 - ALPHA) * ce
            return (loss, outputs) if return_outputs else loss

    class EpochClock(TrainerCallback):
        def __init__(self) -> None:
            self.seconds: list[float] = []

        def on_epoch_begin(self, args, state, control, **kwargs):
            self.started = time.perf_counter()

        def on_epoch_end(self, args, state, control, **kwargs):
            self.seconds.append(time.perf_counter() - self.started)

    tokenizer = AutoTokenizer.from_pretrained(student_dir)
    student = AutoModelForSequenceClassification.from_pretrained(student_dir)
    teacher = AutoModelForSequenceClassification.from_pretrained(teacher_dir)
    train = load_split(DataConfig(str(SAMPLE)), "train")
    label2id = student.config.label2id
    dataset = datasets.Dataset.from_dict(
        {"text": train.texts, "labels": [label2id[x] for x in train.labels]}
    ).map(lambda rows: tokenizer(rows["text"], truncation=True, max_length=128), batched=True)
    dataset = dataset.remove_columns(["text"])
    clock = EpochClock()
    args = TrainingArguments(
        output_dir=str(work / "trainer"),
        per_device_train_batch_size=BATCH,
        num_train_epochs=epochs,
        learning_rate=LR,
        lr_scheduler_type="linear",
        weight_decay=0.0,
        max_grad_norm=1.0,
        save_strategy="no",
        eval_strategy="no",
        logging_strategy="no",
        report_to="none",
        dataloader_num_workers=0,
        seed=0,
        disable_tqdm=True,
    )
    trainer = DistillationTrainer(
        model=student,
        args=args,
        train_dataset=dataset,
        data_collator=DataCollatorWithPadding(tokenizer),
        callbacks=[clock],
        teacher=teacher,
    )
    trainer.train()
    return [len(train) / s for s in clock.seconds]


def run_kdcli(teacher: Path, student: Path, epochs: int, work: Path) -> tuple[list[float], float]:
    """kdcli distill: samples/s of each epoch, epoch 1 charged with building the teacher cache."""
    from kdcli.steps.distill import DistillConfig, distill
    from kdcli.training.loop import TrainConfig

    result = distill(
        DistillConfig(
            str(student),
            str(SAMPLE),
            work / "kdcli-out",
            teacher=str(teacher),
            kd_loss="mse",
            alpha=ALPHA,
            cache_dir=work / "cache",  # empty: epoch 1 pays for the teacher's outputs
            train=TrainConfig(
                epochs=epochs, lr=LR, batch_size=BATCH, weight_decay=0.0, save_steps=0
            ),
        )
    )
    assert result.teacher_cache == "miss"
    seconds = list(result.training.epoch_seconds)
    seconds[0] += result.teacher_seconds
    examples = result.training.train_examples
    return [examples / s for s in seconds], result.teacher_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (default: torch's); on a machine shared with other work, "
        "--threads 1 gives steady figures (threads otherwise wait on each other)",
    )
    parser.add_argument("--layers", type=int, default=6, help="teacher layers (built models)")
    parser.add_argument("--hidden", type=int, default=384, help="teacher width (built models)")
    parser.add_argument("--teacher", type=Path, help="use this fine-tuned teacher instead")
    parser.add_argument("--student", type=Path, help="and this student (e.g. kdcli shrink's)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    if (args.teacher is None) != (args.student is None):
        raise SystemExit("--teacher and --student go together")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    import torch
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="bench-distill-") as tmp:
        work = Path(tmp)
        if args.teacher:
            teacher, student = args.teacher, args.student
        else:
            teacher, student = build_models(work, args.layers, args.hidden)
        shapes = _shapes(teacher, student)
        baseline = run_trainer(teacher, student, args.epochs, work)
        print(f"Trainer: {', '.join(f'{x:.1f}' for x in baseline)} samples/s", flush=True)
        ours, teacher_seconds = run_kdcli(teacher, student, args.epochs, work)
    report(args, shapes, baseline, ours, teacher_seconds, torch.get_num_threads())


def _shapes(teacher: Path, student: Path) -> str:
    from transformers import AutoConfig

    t, s = AutoConfig.from_pretrained(teacher), AutoConfig.from_pretrained(student)
    return (
        f"teacher {t.num_hidden_layers} layers x {t.hidden_size}, student "
        f"{s.num_hidden_layers} layers x {s.hidden_size}"
    )


def report(args, shapes, baseline, ours, teacher_seconds, threads) -> None:
    print(
        f"bench_distill: {shapes}; {SAMPLE.name} train split; batch {BATCH}; "
        f"{args.epochs} epochs; torch threads {threads}"
    )
    print(f"{'epoch':>5}  {'Trainer':>12}  {'kdcli':>12}  {'ratio':>6}  target")
    rows = []
    for epoch, (base, mine) in enumerate(zip(baseline, ours, strict=True), start=1):
        target = 1.0 if epoch == 1 else 1.5
        ratio = mine / base
        mark = "ok" if ratio >= target else "MISSED"
        print(
            f"{epoch:>5}  {base:>8.1f} s/s  {mine:>8.1f} s/s  {ratio:>5.2f}x  "
            f">= {target:.1f}x {mark}"
        )
        rows.append({"epoch": epoch, "trainer": base, "kdcli": mine, "ratio": ratio})
    print(f"(samples/s; kdcli's epoch 1 includes {teacher_seconds:.1f} s of teacher outputs)")
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"load average at the end (1, 5, 15 min): {load} on {os.cpu_count()} CPUs")
    if args.json:
        args.json.write_text(json.dumps({"epochs": rows, "threads": threads}, indent=2) + "\n")


if __name__ == "__main__":
    sys.exit(main())
