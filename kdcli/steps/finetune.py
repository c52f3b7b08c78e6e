"""`kdcli finetune`: train a classifier (a teacher, usually) with cross-entropy on the data.

A classification head sized from the data's label *names* (sorted, so every data source gives the
same ids) is put on a pretrained encoder and the whole model is trained by the one loop in
`kdcli.training.loop`: fine-tuning is distillation without a teacher.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from kdcli.core.progress import ProgressCallback
from kdcli.core.results import JsonResult
from kdcli.data.splits import DataConfig
from kdcli.training.job import TrainSummary, as_data_config, data_options, dev_fact
from kdcli.training.loop import TrainConfig


@dataclass(frozen=True)
class FinetuneConfig:
    """Everything `kdcli finetune` can be told. `data` is a DataConfig or just its `--data`."""

    model: str
    data: DataConfig | str
    out: Path
    train: TrainConfig = field(default_factory=TrainConfig)
    revision: str | None = None
    allow_pickle: bool = False
    overwrite: bool = False
    resume: bool = False

    def data_config(self) -> DataConfig:
        """The data as configured; `data.task` None means "as the model's head or the data say"
        (finetune() resolves it before recording the options)."""
        return as_data_config(self.data, self.train.seed)

    def options(self) -> dict[str, Any]:
        """The resolved options under their CLI names (kdcli-config.yaml, kdcli.json)."""
        return {
            "model": self.model,
            **data_options(self.data_config()),
            **self.train.settings(),
            "revision": self.revision,
            "allow_pickle": self.allow_pickle,
        }

    def identity(self) -> dict[str, Any]:
        """The options that change what the run computes (checked by --resume)."""
        return {
            "model": self.model,
            **data_options(self.data_config()),
            **self.train.identity(),
            "revision": self.revision,
        }


@dataclass(frozen=True)
class FinetuneResult(JsonResult):
    out: Path
    model: str
    labels: list[str]
    num_layers: int
    training: TrainSummary
    notes: list[str] = field(default_factory=list)


def finetune(config: FinetuneConfig, progress: ProgressCallback | None = None) -> FinetuneResult:
    """Fine-tune `config.model` on `config.data` and write the classifier to `config.out`."""
    from kdcli.core.machine import torch_threads
    from kdcli.files.outputs import main_process, output_lock

    config.train.check()
    # the lock covers the output and its checkpoint area for the whole run
    with (
        output_lock(Path(config.out), enabled=main_process()) as stale,
        torch_threads(config.train.threads),
    ):
        result = _finetune(config, progress)
    return replace(result, notes=[*stale, *result.notes])


def _finetune(config: FinetuneConfig, progress: ProgressCallback | None) -> FinetuneResult:
    from kdcli.data.batching import model_inputs
    from kdcli.files.model_card import public_name
    from kdcli.files.model_dirs import (
        LoadOptions,
        clamp_max_length,
        content_hash,
        head_kind,
        label_names,
        load_tokenizer,
        model_labels,
        read_config_dict,
        resolve_model,
        weight_files,
    )
    from kdcli.files.provenance import make_record
    from kdcli.training.job import (
        FinishedModel,
        check_resume,
        check_start,
        data_labels,
        encode_examples,
        eval_set,
        load_classifier_for,
        load_splits,
        resolve_task,
        run_fit,
        summarize,
        train_labels,
        training_record,
        write_output,
    )
    from kdcli.training.loop import make_accelerator
    from kdcli.training.objective import classification_task

    started = time.perf_counter()
    data = config.data_config()
    area = check_start(Path(config.out), config.overwrite, config.resume, [config.model, data.data])
    accelerator = make_accelerator()
    options = LoadOptions(config.revision, config.allow_pickle)
    ref = resolve_model(config.model, options)
    files = weight_files(ref, config.allow_pickle)
    head = head_kind(read_config_dict(ref), ref.name)
    data = replace(data, task=resolve_task(data.task, head, ref.name))
    train, dev = load_splits(data)  # data errors are common: report them before hashing
    data = replace(data, task=train.task)  # what the data turned out to hold
    config = replace(config, data=data)
    model_hash = content_hash(files)
    identity = {
        "command": "finetune",
        "options": config.identity(),
        "model_sha256": model_hash,
        "train": train.fingerprint(),
        "dev": dev.fingerprint(),
        "processes": accelerator.num_processes,
    }
    check_resume(area, identity, config.resume)

    tokenizer = load_tokenizer(ref, options)
    start = load_classifier_for(
        ref, options, data_labels(train, dev), config.train.seed, train.task
    )
    model = start.model
    label2id = {name: i for i, name in enumerate(model_labels(model))}
    max_length, cut = clamp_max_length(config.train.max_length, {ref.name: model.config.to_dict()})
    inputs = model_inputs(model.forward, tokenizer)
    train_encoded = encode_examples(tokenizer, train, max_length, inputs)
    dev_encoded = encode_examples(tokenizer, dev, max_length, inputs)
    dev_set = eval_set(dev_encoded, dev, label2id, ref.name)
    task = classification_task(
        model, train_encoded, dev=dev_set, **train_labels(train, label2id, ref.name)
    )
    outcome = run_fit(task, config.train, area, identity, config.resume, accelerator, progress)

    labels = label_names(model.config.to_dict())
    notes = [*train.notes, *start.notes, *([cut] if cut else [])]
    record = make_record(
        "finetune",
        config.options(),
        source={**ref.describe(Path(config.out)), "sha256": model_hash},
        labels=labels,
        head_fixes=start.head_record(),
        **training_record(outcome, train, dev, accelerator.num_processes, Path(config.out)),
        notes=notes,
    )
    summary = summarize(outcome, train, dev, len(labels), time.perf_counter() - started)
    write_output(
        FinishedModel(
            classifier=model,
            weights=outcome.best_weights,
            tokenizer_ref=ref,
            tokenizer=tokenizer,
            record=record,
            parent=ref.path,
            card_title=f"{public_name(ref.name)} fine-tuned by kdcli",
            card_summary=(
                f"`{public_name(ref.name)}` fine-tuned for {train.task} with cross-entropy by "
                f"`kdcli finetune` on `{public_name(data.data)}` "
                f"({len(summary.languages)} languages, {len(labels)} labels)."
            ),
            card_facts=_facts(public_name(ref.name), public_name(data.data), summary, config.train),
            card_source=ref.name,
            options=config.options(),
            command="finetune",
        ),
        Path(config.out),
        config.overwrite,
        area,
        accelerator,
    )
    layers = int(getattr(model.config, "num_hidden_layers", 0) or 0)
    result = FinetuneResult(Path(config.out), ref.name, labels, layers, summary, notes)
    return replace(result, training=replace(summary, seconds=time.perf_counter() - started))


def _facts(
    model: str, data: str, summary: TrainSummary, train: TrainConfig
) -> list[tuple[str, object]]:
    return [
        ("started from", f"`{model}`"),
        ("data", f"`{data}`: {summary.train_examples:,} train / {summary.dev_examples:,} dev"),
        ("languages", ", ".join(summary.languages)),
        ("labels", summary.labels),
        dev_fact(summary),
        ("training", f"{summary.steps} steps, lr {train.lr}, batch {train.batch_size}"),
    ]
