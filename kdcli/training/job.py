"""What `finetune` and `distill` share around the training loop: the data splits, the classifier
to train (a head sized from label *names*), the run's identity for --resume, and the finished
output directory (model, tokenizer, kdcli.json, model card, metrics, resolved config).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kdcli.core.errors import KdcliError, option_ref
from kdcli.core.progress import ProgressCallback
from kdcli.data.batching import DEFAULT_INPUTS, Encoded, encode, encode_words
from kdcli.data.sources import SEQUENCE, TOKEN
from kdcli.data.splits import DataConfig, Examples, label_ids, load_split, tag_ids
from kdcli.data.tags import tag_names
from kdcli.files.model_card import dev_results, write_model_card
from kdcli.files.model_dirs import (
    LoadOptions,
    ModelRef,
    copy_tokenizer_files,
    head_kind,
    label_names,
    load_classifier_reporting,
    quiet_transformers,
    read_config_dict,
)
from kdcli.files.outputs import atomic_output_dir, check_output_dir
from kdcli.files.provenance import read_provenance, with_history, write_provenance
from kdcli.training.checkpoints import CheckpointArea
from kdcli.training.head_check import HeadFix, fix_degenerate_head

if TYPE_CHECKING:
    from accelerate import Accelerator
    from transformers import PreTrainedModel

    from kdcli.training.loop import EvalSet, TrainConfig, TrainOutcome, TrainTask

LOG = logging.getLogger(__name__)
CONFIG_FILE = "kdcli-config.yaml"


@dataclass(frozen=True)
class TrainSummary:
    """How a training run went: sizes, steps, the best dev evaluation, speed."""

    train_examples: int
    dev_examples: int
    languages: list[str]
    labels: int
    steps: int
    total_steps: int
    epochs: int
    best_epoch: int
    stopped_early: bool
    resumed_from: int | None
    dev_accuracy: float
    dev_loss: float
    dev_per_language: dict[str, float]
    evaluations: list[dict[str, Any]]
    seconds: float
    samples_per_s: float
    epoch_seconds: list[float] = field(default_factory=list)
    task: str = SEQUENCE
    dev_f1: float | None = None  # token classification: entity F1 (strict), the kept epoch's
    dev_per_language_f1: dict[str, float] | None = None


def as_data_config(data: DataConfig | str, seed: int) -> DataConfig:
    """The Python API accepts `data="massive"` as well as a full DataConfig."""
    return data if isinstance(data, DataConfig) else DataConfig(str(data), seed=seed)


def data_options(data: DataConfig) -> dict[str, Any]:
    """The data settings under their CLI option names (for kdcli-config.yaml and kdcli.json)."""
    settings = data.settings()
    settings["data_revision"] = settings.pop("revision")
    del settings["seed"]  # one --seed drives sampling and training
    return settings


def check_start(
    out: Path, overwrite: bool, resume: bool, inputs: Sequence[str] = ()
) -> CheckpointArea:
    """Before any work: the output can be written (and is none of the inputs) and the
    checkpoint area fits --resume."""
    check_output_dir(Path(out), overwrite, inputs)
    area = CheckpointArea(Path(out))
    area.check_start(resume, overwrite)
    return area


def load_splits(data: DataConfig) -> tuple[Examples, Examples]:
    """The train split (language/sample selection applied) and the dev split."""
    return load_split(data, "train"), load_split(data, "dev")


def data_labels(train: Examples, dev: Examples) -> list[str]:
    """Label names of the data, sorted: a head made from them has the same ids for every source.
    Token classification: O, then B-/I- of every entity type (`tags.tag_names`)."""
    if train.tags is not None and dev.tags is not None:
        return tag_names([*train.tags, *dev.tags])
    return sorted(set(train.labels) | set(dev.labels))


def resolve_task(requested: str | None, head: str, name: str) -> str | None:
    """The task to read the data for: `--task` when given, else the model's head when it is a
    token classifier; None lets the data decide (MASSIVE: intents)."""
    if requested == SEQUENCE and head == TOKEN:
        raise KdcliError(
            f"{name} is a token-classification model but {option_ref('task')} is "
            "sequence-classification",
            fix=f"drop {option_ref('task')}, or start from its encoder or a "
            "sequence-classification model",
        )
    if requested is not None:
        return requested
    return TOKEN if head == TOKEN else None


def check_same_labels(teacher: list[str], student: list[str], t_name: str, s_name: str) -> None:
    """Distillation compares logits label by label: both heads must know the same names."""
    only_teacher = sorted(set(teacher) - set(student))
    only_student = sorted(set(student) - set(teacher))
    if only_teacher or only_student:
        parts = []
        if only_teacher:
            parts.append(f"only the teacher has {_names(only_teacher)}")
        if only_student:
            parts.append(f"only the student has {_names(only_student)}")
        raise KdcliError(
            f"the labels of teacher {t_name} and student {s_name} differ ({'; '.join(parts)}): "
            "use a student made from this teacher (kdcli shrink) or a bare encoder"
        )


def _names(names: list[str]) -> str:
    return ", ".join(names[:8]) + (f" (+{len(names) - 8} more)" if len(names) > 8 else "")


@dataclass
class StartingClassifier:
    """The classifier a training run starts from, and what kdcli did to its head on the way."""

    model: PreTrainedModel
    notes: list[str]
    head_fixes: list[HeadFix]

    def head_record(self) -> list[dict[str, str]]:
        """What kdcli.json records: every head layer that was missing or re-initialised."""
        return [fix.record() for fix in self.head_fixes]


def load_classifier_for(
    ref: ModelRef, options: LoadOptions, labels: list[str], seed: int, task: str = SEQUENCE
) -> StartingClassifier:
    """`ref` as a classifier of `task` for `labels` (by name), with notes on what happened to
    its head.

    A classifier of the task that already knows exactly these labels keeps its head (and its
    label order); a bare encoder gets a new head; a classifier for other labels (or of the other
    task) gets its head re-initialised, even when the label count happens to match, so no stale
    head weights survive. A pooler or kept head layer stored as zeros is re-initialised
    (`head_check`).
    """
    import torch

    config = read_config_dict(ref)
    kind = head_kind(config, ref.name)
    if kind == TOKEN and task != TOKEN:
        raise KdcliError(
            f"{ref.name} is a token-classification model",
            fix=f"train it on words and tags ({option_ref('task')} token-classification), or "
            "start from its encoder for sequence classification",
        )
    token = task == TOKEN
    torch.manual_seed(seed)  # the new head's initial weights
    keep_head = kind == task and set(label_names(config)) == set(labels)
    relabel = (
        {}
        if keep_head
        else {
            "id2label": dict(enumerate(labels)),
            "label2id": {name: i for i, name in enumerate(labels)},
            "ignore_mismatched_sizes": True,
        }
    )
    with quiet_transformers():
        model, info = load_classifier_reporting(ref, options, token=token, **relabel)
    notes = []
    if kind != "encoder" and not keep_head:
        _reset_head(model, seed)
        what = "labels" if task == SEQUENCE else "tags"
        notes.append(
            f"{ref.name}'s {kind} head (labels {_names(label_names(config))}) was replaced "
            f"by a new {task} head for the {len(labels)} {what} of the data"
        )
    fixes = fix_degenerate_head(model, set(info["missing_keys"]), not keep_head, seed)
    return StartingClassifier(model, notes + [fix.note(ref.name) for fix in fixes], fixes)


def _reset_head(model: PreTrainedModel, seed: int) -> None:
    """Re-initialise every module outside the base encoder (the task head)."""
    import torch

    torch.manual_seed(seed)
    for name, child in model.named_children():
        if name != model.base_model_prefix:
            for module in child.modules():
                if isinstance(module, torch.nn.Linear):
                    std = float(getattr(model.config, "initializer_range", 0.02))
                    torch.nn.init.normal_(module.weight, std=std)
                    if module.bias is not None:
                        torch.nn.init.zeros_(module.bias)


def encode_examples(
    tokenizer: Any, examples: Examples, max_length: int, inputs: Iterable[str] = DEFAULT_INPUTS
) -> Encoded:
    """Texts for sequence classification; words (and where each word's token is) for token
    classification. `inputs`: the model inputs to prepare (`batching.model_inputs`)."""
    if examples.words is not None:
        return encode_words(tokenizer, examples.words, max_length, inputs)
    return encode(tokenizer, examples.texts, max_length, inputs)


def train_labels(examples: Examples, label2id: dict[str, int], model: str) -> dict[str, Any]:
    """The gold labels as `classification_task` takes them: label ids, or tag ids per word."""
    if examples.tags is not None:
        return {"train_labels": [], "word_labels": tag_ids(examples, label2id, model)}
    return {"train_labels": label_ids(examples, label2id, model)}


def eval_set(encoded: Encoded, examples: Examples, label2id: dict[str, int], model: str) -> EvalSet:
    from kdcli.training.loop import EvalSet

    languages = list(examples.languages)
    if examples.tags is not None:
        names = [name for name, _ in sorted(label2id.items(), key=lambda item: item[1])]
        return EvalSet(encoded, [], languages, tag_ids(examples, label2id, model), names)
    return EvalSet(encoded, label_ids(examples, label2id, model), languages)


def check_resume(area: CheckpointArea, identity: dict[str, Any], resume: bool) -> None:
    if resume:
        area.check_identity(identity)


def run_fit(
    task: TrainTask,
    config: TrainConfig,
    area: CheckpointArea,
    identity: dict[str, Any],
    resume: bool,
    accelerator: Accelerator,
    progress: ProgressCallback | None,
) -> TrainOutcome:
    """Start the checkpoint area and train; a run that fails before its first checkpoint
    leaves nothing behind (there is nothing to resume)."""
    from kdcli.training.loop import fit

    if accelerator.is_main_process:
        area.start(identity, resume)
    accelerator.wait_for_everyone()
    try:
        return fit(task, config, area, accelerator, resume, progress)
    except BaseException:
        if accelerator.is_main_process and not area.has_checkpoint():
            area.remove()
        raise


def summarize(
    outcome: TrainOutcome, train: Examples, dev: Examples, labels: int, seconds: float
) -> TrainSummary:
    best = outcome.best
    return TrainSummary(
        train_examples=len(train),
        dev_examples=len(dev),
        languages=sorted(set(train.languages) | set(dev.languages)),
        labels=labels,
        steps=outcome.state.step,
        total_steps=outcome.total_steps,
        epochs=len(outcome.state.history),
        best_epoch=int(best["epoch"]),
        stopped_early=outcome.state.stopped_early,
        resumed_from=outcome.resumed_from,
        dev_accuracy=float(best["accuracy"]),
        dev_loss=float(best["loss"]),
        dev_per_language={k: v["accuracy"] for k, v in best["per_language"].items()},
        evaluations=list(outcome.state.history),
        seconds=seconds,
        samples_per_s=outcome.samples_per_s(),
        epoch_seconds=[t.train_seconds for t in outcome.timings],
        task=train.task,
        dev_f1=float(best["f1"]) if "f1" in best else None,
        dev_per_language_f1=(
            {k: v["f1"] for k, v in best["per_language"].items()} if "f1" in best else None
        ),
    )


def dev_fact(summary: TrainSummary) -> tuple[str, object]:
    """The model card's dev score: entity F1 for token classification, else accuracy."""
    if summary.dev_f1 is not None:
        return "dev entity F1", f"{summary.dev_f1:.4f} (epoch {summary.best_epoch})"
    return "dev accuracy", f"{summary.dev_accuracy:.4f} (epoch {summary.best_epoch})"


def training_record(
    outcome: TrainOutcome, train: Examples, dev: Examples, processes: int, out: Path
) -> dict[str, Any]:
    """The kdcli.json fields every training stage writes (no timings: outputs stay identical)."""
    best = outcome.best
    scores = ("accuracy", "f1", "loss") if "f1" in best else ("accuracy", "loss")
    return {
        "task": train.task,
        "data": {
            "source": train.source,
            **data_location(train.source, out),
            "languages": sorted(set(train.languages) | set(dev.languages)),
            "train_languages": train.language_names(),
            "train_examples": len(train),
            "dev_examples": len(dev),
            "train_fingerprint": train.fingerprint(),
            "dev_fingerprint": dev.fingerprint(),
            "split_rule": train.split_rule,  # set when kdcli split a file that had no split
        },
        "training": {
            "steps": outcome.state.step,
            "epochs": len(outcome.state.history),
            "best_epoch": best["epoch"],
            "stopped_early": outcome.state.stopped_early,
            "processes": processes,
        },
        "metrics": {"dev": {k: best[k] for k in (*scores, "examples", "per_language")}},
        "evaluations": [
            {k: h[k] for k in ("epoch", "step", *scores)} for h in outcome.state.history
        ],
    }


def data_location(source: str, out: Path) -> dict[str, str]:
    """Where local data is, as kdcli.json records paths (relative to the output, and absolute),
    so a later step can find it from any directory; nothing for Hub data."""
    from kdcli.files.provenance import describe_local

    kind, _, location = source.partition(":")
    if kind not in ("files", "massive-release") or not Path(location).exists():
        return {}
    described = describe_local(Path(location), out)
    return {"path": described["path"], "resolved": described["resolved"]}


@dataclass
class FinishedModel:
    """Everything that goes into the output directory of a training stage."""

    classifier: PreTrainedModel
    weights: dict[str, Any]
    tokenizer_ref: ModelRef
    tokenizer: Any
    record: dict[str, Any]
    parent: Path  # whose kdcli.json history the output continues
    card_title: str
    card_summary: str
    card_facts: Sequence[tuple[str, object]]
    card_source: str | None
    options: dict[str, Any]
    command: str


def write_output(
    model: FinishedModel,
    out: Path,
    overwrite: bool,
    area: CheckpointArea,
    accelerator: Accelerator,
) -> None:
    """The main process builds the output atomically, then drops the checkpoint area."""
    if accelerator.is_main_process:
        with atomic_output_dir(Path(out), overwrite) as tmp:
            classifier = model.classifier
            classifier.load_state_dict(model.weights)
            with quiet_transformers():
                classifier.save_pretrained(tmp)
            if not copy_tokenizer_files(model.tokenizer_ref, tmp):
                model.tokenizer.save_pretrained(tmp)
            parent = read_provenance(model.parent)
            record = with_history(model.record, parent, model.parent, Path(out))
            write_provenance(tmp, record)
            write_model_card(
                tmp,
                model.card_title,
                model.card_summary,
                model.card_facts,
                model.card_source,
                record=record,
                results=dev_results(record),
            )
            area.copy_logs(tmp)
            _write_options(tmp, model.options, model.command)
        area.remove()
    accelerator.wait_for_everyone()


def _write_options(out_dir: Path, options: dict[str, Any], command: str) -> None:
    """The resolved options, as a --config file that reruns the same training."""
    import yaml

    clean = {k.replace("_", "-"): _plain(v) for k, v in options.items()}
    header = (
        f"# The resolved options of this run. Rerun it with:\n"
        f"#   kdcli {command} --config {CONFIG_FILE} --out NEW_DIR\n"
    )
    body = yaml.safe_dump(clean, sort_keys=False, allow_unicode=True)
    (out_dir / CONFIG_FILE).write_text(header + body, encoding="utf-8")


def _plain(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    return value
