"""`kdcli distill`: train a student to match a fine-tuned teacher (and the gold labels).

The loss is alpha * KD + (1 - alpha) * cross-entropy (+ w * hidden-state MSE): KD is the MSE
between logits (the study's choice, the default) or Hinton's temperature-scaled KL. `no_kd` trains
the student on the labels alone, the study's "no KD" baseline. The teacher's outputs on the
training set come from the teacher-output cache (`kdcli.training.teacher_cache`): computed once,
reused by every epoch and by later runs with the same teacher and data.

The student may be a copy-weight student from `kdcli shrink` (its kdcli.json names its teacher
and the teacher layer each student layer was copied from), any classifier with the teacher's label
names, or a bare encoder, which gets a head with the teacher's labels.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kdcli.core.errors import KdcliError, option_ref
from kdcli.core.progress import ProgressCallback
from kdcli.core.results import JsonResult
from kdcli.core.validation import check_choice, check_number
from kdcli.data.sources import SEQUENCE, TOKEN
from kdcli.data.splits import DataConfig, Examples
from kdcli.files.model_dirs import LoadOptions, ModelRef, model_labels
from kdcli.files.provenance import entry_field, find_stage, lineage_entries, recorded_path
from kdcli.training.job import TrainSummary, as_data_config, data_options, dev_fact
from kdcli.training.loop import TrainConfig

if TYPE_CHECKING:
    from accelerate import Accelerator
    from transformers import PreTrainedModel

    from kdcli.data.batching import Encoded
    from kdcli.training.checkpoints import CheckpointArea
    from kdcli.training.job import StartingClassifier
    from kdcli.training.loop import TrainOutcome
    from kdcli.training.teacher_cache import TeacherOutputs

KD_LOSSES = ("mse", "kl")
DEFAULT_ALPHA = 0.5
DEFAULT_TEMPERATURE = 2.0


@dataclass(frozen=True)
class DistillConfig:
    """Everything `kdcli distill` can be told. None means "the default" (or "not used")."""

    student: str
    data: DataConfig | str
    out: Path
    teacher: str | None = None  # default: the teacher named in the student's kdcli.json
    kd_loss: str = "mse"
    alpha: float | None = None  # weight of the KD term; 1 - alpha goes to cross-entropy
    temperature: float | None = None  # --kd-loss kl only
    no_kd: bool = False
    hidden_loss_weight: float = 0.0
    cache_dir: Path | None = None
    train: TrainConfig = field(default_factory=TrainConfig)
    teacher_revision: str | None = None
    student_revision: str | None = None
    allow_pickle: bool = False
    overwrite: bool = False
    resume: bool = False

    def data_config(self) -> DataConfig:
        return as_data_config(self.data, self.train.seed)

    def resolved_alpha(self) -> float:
        if self.no_kd:
            return 0.0
        return DEFAULT_ALPHA if self.alpha is None else float(self.alpha)

    def resolved_temperature(self) -> float | None:
        if self.kd_loss != "kl" or self.no_kd:
            return None
        return DEFAULT_TEMPERATURE if self.temperature is None else float(self.temperature)

    def options(self, teacher: str | None = None) -> dict[str, Any]:
        """The resolved options under their CLI names (kdcli-config.yaml, kdcli.json)."""
        return {
            "teacher": teacher if teacher is not None else self.teacher,
            "student": self.student,
            **data_options(self.data_config()),
            "kd_loss": self.kd_loss,
            "alpha": None if self.no_kd else self.resolved_alpha(),  # --no-kd takes no --alpha
            "temperature": self.resolved_temperature(),
            "no_kd": self.no_kd,
            "hidden_loss_weight": self.hidden_loss_weight,
            **self.train.settings(),
            "teacher_revision": self.teacher_revision,
            "student_revision": self.student_revision,
            "allow_pickle": self.allow_pickle,
        }

    def identity(self, teacher: str | None) -> dict[str, Any]:
        options = self.options(teacher)
        for key in ("save_steps", "log_steps", "report_to", "allow_pickle"):
            del options[key]
        return options


@dataclass(frozen=True)
class DistillResult(JsonResult):
    out: Path
    teacher: str | None
    student: str
    kd_loss: str | None
    alpha: float
    temperature: float | None
    hidden_loss_weight: float
    layer_map: list[list[int]] | None
    teacher_cache: str | None  # "hit", "miss" or None (no teacher)
    teacher_seconds: float
    labels: list[str]
    training: TrainSummary
    notes: list[str] = field(default_factory=list)


def distill(config: DistillConfig, progress: ProgressCallback | None = None) -> DistillResult:
    """Distil `config.teacher` into `config.student` on `config.data`; write it to `config.out`.

    Every input is resolved and checked first (cheap checks before hashing, hashing before
    training) into one frozen `_Inputs`; then the teacher's outputs, training and the output.
    """
    from kdcli.core.machine import torch_threads
    from kdcli.files.outputs import main_process, output_lock

    started = time.perf_counter()
    check_options(config)
    config.train.check()
    # the lock covers the output and its checkpoint area for the whole run
    with (
        output_lock(Path(config.out), enabled=main_process()) as stale,
        torch_threads(config.train.threads),
    ):
        result = _distill(config, progress, started)
    return replace(result, notes=[*stale, *result.notes])


def _distill(
    config: DistillConfig, progress: ProgressCallback | None, started: float
) -> DistillResult:
    from kdcli.data.batching import model_inputs
    from kdcli.files.model_dirs import classifier_class, load_tokenizer
    from kdcli.training.job import check_resume, check_start, encode_examples, load_classifier_for
    from kdcli.training.loop import make_accelerator

    given = [config.student, config.teacher or "", config.data_config().data]
    area = check_start(Path(config.out), config.overwrite, config.resume, given)
    accelerator = make_accelerator()
    inputs = _resolve(config, accelerator.num_processes)
    config = inputs.config  # the task resolved from the models' heads and the data
    check_resume(area, inputs.identity, config.resume)

    tokenizer = load_tokenizer(inputs.student, inputs.student_options)
    names = model_inputs(classifier_class(inputs.student).forward, tokenizer)
    train_s = encode_examples(tokenizer, inputs.train, inputs.max_length, names)
    dev_s = encode_examples(tokenizer, inputs.dev, inputs.max_length, names)
    pairs, pairs_note = _hidden_pairs(config, inputs)
    teacher = (
        _teacher_outputs(config, inputs, train_s, pairs, accelerator, progress)
        if inputs.uses_teacher
        else _TeacherRun(None, None, 0.0)
    )
    start = load_classifier_for(
        inputs.student, inputs.student_options, inputs.labels, config.train.seed, inputs.task
    )
    outcome = _fit(
        config,
        inputs,
        start.model,
        train_s,
        dev_s,
        teacher.outputs,
        pairs,
        area,
        accelerator,
        progress,
    )
    notes = [*inputs.train.notes, *inputs.notes, *_present(pairs_note), *start.notes]
    return _finish(
        config, inputs, start, tokenizer, outcome, teacher, pairs, notes, area, accelerator, started
    )


def check_options(config: DistillConfig) -> None:
    """The settings that can be checked without reading anything."""
    check_choice("kd_loss", config.kd_loss, KD_LOSSES)
    check_number("alpha", config.alpha, minimum=0, maximum=1, optional=True)
    if config.temperature is not None:
        if config.kd_loss != "kl":
            raise KdcliError(
                f"only applies to {option_ref('kd_loss')} kl",
                option="temperature",
                value=config.temperature,
                fix=f"drop it, or pass {option_ref('kd_loss')} kl",
            )
        check_number("temperature", config.temperature, above=0)
    check_number("hidden_loss_weight", config.hidden_loss_weight, minimum=0)
    if config.no_kd:
        given = [
            text
            for text, used in (
                (option_ref("alpha"), config.alpha is not None),
                (option_ref("temperature"), config.temperature is not None),
                (f"{option_ref('kd_loss')} kl", config.kd_loss == "kl"),
                (option_ref("hidden_loss_weight"), config.hidden_loss_weight > 0),
            )
            if used
        ]
        if given:
            raise KdcliError(
                f"trains without the teacher, so {', '.join(given)} would have no effect",
                option="no_kd",
                fix=f"drop them, or drop {option_ref('no_kd')}",
            )


def recorded_teacher(record: dict[str, Any] | None, student_dir: Path) -> str | None:
    """The teacher a student's kdcli.json names: the newest distill teacher or shrink source,
    found relative to the student's folder (or where it was when recorded)."""
    for entry in lineage_entries(record):
        if entry.get("stage") == "distill" and entry_field(entry, "teacher", "model"):
            return recorded_path(entry["teacher"], student_dir) or _missing(entry["teacher"])
        if entry.get("stage") == "shrink" and entry_field(entry, "source", "model"):
            return recorded_path(entry["source"], student_dir) or _missing(entry["source"])
    return None


def _missing(description: dict[str, Any]) -> str:
    """How to name a recorded model that is no longer where it was."""
    return str(description.get("resolved") or description.get("model"))


@dataclass(frozen=True)
class TeacherIdentity:
    """What identifies the teacher in a student's shrink records: its weights' sha256 (and the
    hashes of the models it was trained from without changing its layers), or its folder."""

    hashes: frozenset[str]
    path: Path | None


def layer_pairs(
    record: dict[str, Any] | None,
    student_layers: int,
    teacher_layers: int,
    student: str,
    teacher: TeacherIdentity | None = None,
    student_dir: Path | None = None,
) -> tuple[list[tuple[int, int]], str | None]:
    """(student layer, teacher layer) pairs for the hidden-state loss, and a note when the map
    is not the one the student was copied with.

    A student may have been shrunk several times (teacher -> 6 layers -> 3): each shrink record's
    kept layers index the layers of *its* source, so the map is composed through the records,
    newest first, until the shrink made from this teacher. A student whose records never reach
    the teacher gets the uniform map, with a note.
    """
    mapping = list(range(student_layers))
    shrinks = 0
    for entry in lineage_entries(record):
        if entry.get("stage") != "shrink":
            continue
        kept = entry_field(entry, "layers", "kept")
        if not _valid_kept(kept, mapping):
            break
        mapping = [kept[i] for i in mapping]
        shrinks += 1
        if not _made_from(entry, teacher, student_dir):
            continue
        if all(layer < teacher_layers for layer in mapping):
            note = (
                f"{student} was shrunk {shrinks} times: its layer map to the teacher is composed "
                "through its kdcli.json records"
                if shrinks > 1
                else None
            )
            return list(enumerate(mapping)), note
        break
    uniform = [
        (i, max(0, round((i + 1) * teacher_layers / student_layers) - 1))
        for i in range(student_layers)
    ]
    shown = ", ".join(f"{s}->{t}" for s, t in uniform)
    return uniform, (
        f"{student}'s kdcli.json has no layer map for this teacher: the hidden-state loss uses "
        f"the uniform map (student->teacher layer) {shown}"
    )


def _valid_kept(kept: Any, mapping: list[int]) -> bool:
    return (
        isinstance(kept, list)
        and all(isinstance(k, int) and not isinstance(k, bool) and k >= 0 for k in kept)
        and len(kept) > max(mapping, default=-1)
    )


def _made_from(
    entry: dict[str, Any], teacher: TeacherIdentity | None, student_dir: Path | None
) -> bool:
    """Whether this shrink record's source is the teacher (no identity given: trust it, as a
    record without a source can only be matched on faith)."""
    if teacher is None:
        return True
    source = entry_field(entry, "source")
    if entry_field(source, "sha256") in teacher.hashes:
        return True
    found = recorded_path(source, student_dir) if student_dir is not None else None
    return (
        teacher.path is not None
        and found is not None
        and Path(found).resolve() == teacher.path.resolve()
    )


def teacher_identity(teacher_dir: Path, teacher_hash: str) -> TeacherIdentity:
    """The teacher's hash, and those of the models it was fine-tuned or distilled from without a
    shrink in between (their layers are the teacher's layers)."""
    from kdcli.files.provenance import read_provenance

    hashes = {teacher_hash}
    try:
        record = read_provenance(teacher_dir)
    except KdcliError:
        record = None
    for entry in lineage_entries(record):
        if entry.get("stage") == "shrink":
            break
        for key in ("source", "student"):  # finetune's start, distill's student
            value = entry_field(entry, key, "sha256")
            if isinstance(value, str):
                hashes.add(value)
    return TeacherIdentity(frozenset(hashes), Path(teacher_dir))


# --- resolving and checking the inputs ----------------------------------------------------------


@dataclass(frozen=True)
class _Inputs:
    """Everything a distillation run reads, resolved and checked before any training."""

    config: DistillConfig  # as given, with the task the heads and the data decide
    task: str  # sequence- or token-classification
    student: ModelRef
    student_options: LoadOptions
    student_record: dict[str, Any] | None
    student_hash: str
    teacher: ModelRef | None
    teacher_options: LoadOptions
    teacher_config: dict[str, Any] | None
    teacher_hash: str | None
    uses_teacher: bool  # a teacher is given and KD is on
    cache_dir: Path | None
    labels: list[str]  # the label names the student learns (teacher's, student's or the data's)
    train: Examples
    dev: Examples
    identity: dict[str, Any]  # what --resume checks
    notes: tuple[str, ...]
    max_length: int  # the setting, cut to what both models' position embeddings take


def _resolve(config: DistillConfig, processes: int) -> _Inputs:
    from kdcli.files.model_dirs import (
        LoadOptions,
        clamp_max_length,
        content_hash,
        read_config_dict,
        resolve_model,
        weight_files,
    )
    from kdcli.files.provenance import read_provenance
    from kdcli.training.job import load_splits

    student_options = LoadOptions(config.student_revision, config.allow_pickle)
    teacher_options = LoadOptions(config.teacher_revision, config.allow_pickle)
    student = resolve_model(config.student, student_options)
    record = read_provenance(student.path)
    teacher_name, teacher_note = _teacher_name(config, record, student.path)
    teacher = resolve_model(teacher_name, teacher_options) if teacher_name else None
    uses_teacher = teacher is not None and not config.no_kd
    cache_dir = _cache_dir(config) if uses_teacher else None
    teacher_config = read_config_dict(teacher) if teacher is not None else None
    data = config.data_config()
    student_config = read_config_dict(student)
    head_labels, task = _head_labels(student, student_config, teacher, teacher_config, data.task)
    configs = {student.name: student_config}
    if teacher is not None and teacher_config is not None:
        configs[teacher.name] = teacher_config
    max_length, cut = clamp_max_length(config.train.max_length, configs)
    train, dev = load_splits(replace(data, task=task))
    if train.task == TOKEN and task == SEQUENCE:
        raise KdcliError(
            "holds words and tags, but the models classify sequences",
            option="data",
            value=data.data,
            fix="distil a token-classification teacher",
        )
    config = replace(config, data=replace(data, task=train.task))
    labels = _check_data_labels(head_labels, train, dev, (teacher or student).name)

    student_hash = content_hash(weight_files(student, config.allow_pickle))
    teacher_hash = (
        content_hash(weight_files(teacher, config.allow_pickle)) if teacher is not None else None
    )
    identity = {
        "command": "distill",
        "options": config.identity(teacher.name if teacher else None),
        "student_sha256": student_hash,
        "teacher_sha256": teacher_hash,
        "train": train.fingerprint(),
        "dev": dev.fingerprint(),
        "processes": processes,
    }
    changed = _changed_teacher_note(record, student.path, teacher, teacher_hash)
    notes = _present(teacher_note, changed, cut)
    return _Inputs(
        config=config,
        task=train.task,
        student=student,
        student_options=student_options,
        student_record=record,
        student_hash=student_hash,
        teacher=teacher,
        teacher_options=teacher_options,
        teacher_config=teacher_config,
        teacher_hash=teacher_hash,
        uses_teacher=uses_teacher,
        cache_dir=cache_dir,
        labels=labels,
        train=train,
        dev=dev,
        identity=identity,
        notes=tuple(notes),
        max_length=max_length,
    )


def _teacher_name(
    config: DistillConfig, record: dict[str, Any] | None, student_dir: Path
) -> tuple[str | None, str | None]:
    """The teacher to use (None: none needed), and a note when it came from kdcli.json."""
    if config.teacher is not None:
        return config.teacher, None
    if config.no_kd:
        return None, None
    recorded = recorded_teacher(record, student_dir)
    if recorded is None:
        raise KdcliError(
            f"is missing and {config.student} has no kdcli.json naming its teacher",
            option="teacher",
            fix=f"pass {option_ref('teacher')} (the fine-tuned model to distil from)",
        )
    if not Path(recorded).expanduser().exists() and (
        recorded.startswith((".", "/", "~")) or "/" not in recorded
    ):
        raise KdcliError(
            f"the teacher named in {config.student}'s kdcli.json, {recorded}, does not exist",
            fix=f"pass {option_ref('teacher')}",
        )
    return recorded, f"teacher {recorded} taken from {config.student}'s kdcli.json"


def _cache_dir(config: DistillConfig) -> Path:
    from kdcli.training.teacher_cache import check_cache_dir, default_cache_dir

    cache_dir = Path(config.cache_dir or default_cache_dir()).expanduser()
    check_cache_dir(cache_dir)
    return cache_dir


def _head_labels(
    student: ModelRef,
    student_config: dict[str, Any],
    teacher: ModelRef | None,
    teacher_config: dict[str, Any] | None,
    requested: str | None,
) -> tuple[list[str], str | None]:
    """The label names the heads fix (teacher's, else the student's; none for a bare encoder
    student without a teacher) and the task: the teacher's head decides it (without a teacher:
    the student's, or `task`; None lets the data decide), after checking that both heads can
    be distilled."""
    from kdcli.files.model_dirs import head_kind, label_names
    from kdcli.training.job import check_same_labels, resolve_task

    student_kind = head_kind(student_config, student.name)
    student_labels = label_names(student_config)
    if teacher is None or teacher_config is None:
        task = resolve_task(requested, student_kind, student.name)
        return (student_labels if student_kind == (task or SEQUENCE) else []), task
    teacher_kind = head_kind(teacher_config, teacher.name)
    if teacher_kind not in (SEQUENCE, TOKEN):
        raise KdcliError(
            f"teacher {teacher.name} has no classification head",
            fix="distil from a fine-tuned classifier (make one with kdcli finetune)",
        )
    if requested not in (None, teacher_kind):
        raise KdcliError(
            f", but teacher {teacher.name} is a {teacher_kind} model",
            option="task",
            value=requested,
            fix=f"drop {option_ref('task')} (the teacher's head decides it)",
        )
    if student_kind == TOKEN and teacher_kind == SEQUENCE:
        raise KdcliError(
            f"student {student.name} is a token-classification model but teacher "
            f"{teacher.name} classifies sequences",
            fix="use a student made from the teacher (kdcli shrink) or an encoder",
        )
    teacher_labels = label_names(teacher_config)
    if student_kind == teacher_kind:
        check_same_labels(teacher_labels, student_labels, teacher.name, student.name)
    return teacher_labels, teacher_kind


def _check_data_labels(labels: list[str], train: Examples, dev: Examples, owner: str) -> list[str]:
    """Every label of the data must be one the heads know; without heads, the data's labels."""
    from kdcli.data.splits import label_ids, tag_ids
    from kdcli.training.job import data_labels

    if not labels:
        return data_labels(train, dev)
    known = {name: i for i, name in enumerate(labels)}
    check = tag_ids if train.task == TOKEN else label_ids
    check(train, known, owner)
    check(dev, known, owner)
    return labels


def _changed_teacher_note(
    record: dict[str, Any] | None,
    student_dir: Path,
    teacher: ModelRef | None,
    teacher_hash: str | None,
) -> str | None:
    """A note when the teacher's weights are not the ones the student was copied from."""
    source = entry_field(find_stage(record, "shrink"), "source")
    recorded = recorded_path(source, student_dir)
    if teacher is None or not entry_field(source, "sha256") or recorded is None:
        return None
    if Path(recorded).resolve() != teacher.path.resolve() or source["sha256"] == teacher_hash:
        return None
    return (
        f"teacher {teacher.name} has changed since the student was copied from it "
        "(its weights' sha256 differs from the one in the student's kdcli.json)"
    )


def _present(*notes: str | None) -> list[str]:
    return [note for note in notes if note]


# --- the teacher's outputs ---------------------------------------------------------------------


@dataclass(frozen=True)
class _TeacherRun:
    outputs: TeacherOutputs | None
    cache_state: str | None  # "hit", "miss" or None (no teacher)
    seconds: float


def _hidden_pairs(
    config: DistillConfig, inputs: _Inputs
) -> tuple[list[tuple[int, int]], str | None]:
    """(student layer, teacher layer) pairs of the hidden-state loss (none when it is off)."""
    if not (inputs.uses_teacher and config.hidden_loss_weight > 0):
        return [], None
    from transformers import AutoConfig

    assert inputs.teacher is not None
    s_layers = int(AutoConfig.from_pretrained(inputs.student.path).num_hidden_layers)
    t_layers = int(AutoConfig.from_pretrained(inputs.teacher.path).num_hidden_layers)
    identity = teacher_identity(inputs.teacher.path, str(inputs.teacher_hash))
    student = inputs.student
    return layer_pairs(
        inputs.student_record, s_layers, t_layers, student.name, identity, student.path
    )


def _teacher_outputs(
    config: DistillConfig,
    inputs: _Inputs,
    train_s: Encoded,
    pairs: list[tuple[int, int]],
    accelerator: Accelerator,
    progress: ProgressCallback | None,
) -> _TeacherRun:
    """The cached teacher outputs; on a miss the first process of each machine computes
    and stores them while the others wait, then read them."""
    from kdcli.data.batching import model_inputs
    from kdcli.files.model_dirs import classifier_class, load_tokenizer
    from kdcli.training import teacher_cache as tc
    from kdcli.training.job import encode_examples

    teacher, cache_dir, teacher_config = inputs.teacher, inputs.cache_dir, inputs.teacher_config
    assert teacher is not None and cache_dir is not None and teacher_config is not None
    clock = time.perf_counter()
    tokenizer = load_tokenizer(teacher, inputs.teacher_options)
    names = model_inputs(classifier_class(teacher).forward, tokenizer)
    train_t = encode_examples(tokenizer, inputs.train, inputs.max_length, names)
    if pairs:
        _check_token_alignment(train_t, train_s)
    key = tc.CacheKey(
        teacher_sha256=str(inputs.teacher_hash),
        teacher_config_sha256=hashlib.sha256(
            (teacher.path / "config.json").read_bytes()
        ).hexdigest(),
        input_ids_sha256=tc.ids_hash(train_t),
        layers=tuple(sorted({t for _, t in pairs})),
        bf16=config.train.bf16,
        words_sha256=tc.words_hash(inputs.train.words) if inputs.train.words else None,
    )
    path = tc.cache_path(cache_dir, key)
    rows = sum(map(len, train_t.word_tokens)) if train_t.word_tokens else len(train_t)
    with accelerator.local_main_process_first():
        outputs = tc.load(path)
        state = "hit"
        if outputs is None or outputs.logits.shape[0] != rows:
            state = "miss"
            tc.check_space(
                cache_dir,
                rows,
                int(teacher_config.get("num_labels") or len(inputs.labels)),
                sum(train_t.lengths()),
                len(key.layers) * int(teacher_config.get("hidden_size") or 0),
            )
            outputs = _run_teacher(config, inputs, train_t, key.layers, accelerator, progress)
            tc.save(outputs, path, key)
    return _TeacherRun(outputs, state, time.perf_counter() - clock)


def _check_token_alignment(train_t: Encoded, train_s: Encoded) -> None:
    """The hidden-state loss compares token by token: both must see the same tokens."""
    t_lengths, s_lengths = train_t.lengths(), train_s.lengths()
    if t_lengths == s_lengths:
        return
    first = next(i for i, (a, b) in enumerate(zip(t_lengths, s_lengths, strict=True)) if a != b)
    raise KdcliError(
        "needs the teacher and student to split texts into the same tokens, but their "
        f"tokenizers differ (training example {first}: {t_lengths[first]} vs {s_lengths[first]} "
        "tokens)",
        option="hidden_loss_weight",
        fix=f"use {option_ref('hidden_loss_weight')} 0",
    )


def _run_teacher(
    config: DistillConfig,
    inputs: _Inputs,
    encoded: Encoded,
    layers: tuple[int, ...],
    accelerator: Accelerator,
    progress: ProgressCallback | None,
) -> TeacherOutputs:
    from kdcli.files.model_dirs import load_classifier
    from kdcli.training import teacher_cache as tc
    from kdcli.training.job import quiet_transformers

    assert inputs.teacher is not None
    with quiet_transformers():
        model = load_classifier(inputs.teacher, inputs.teacher_options, token=inputs.task == TOKEN)
    model.to(accelerator.device)
    return tc.compute(
        model,
        encoded,
        list(layers),
        config.train.eval_batch_size,
        accelerator.device,
        config.train.bf16,
        progress if accelerator.is_main_process else None,
    )


# --- training and the output --------------------------------------------------------------------


def _fit(
    config: DistillConfig,
    inputs: _Inputs,
    model: PreTrainedModel,
    train_s: Encoded,
    dev_s: Encoded,
    outputs: TeacherOutputs | None,
    pairs: list[tuple[int, int]],
    area: CheckpointArea,
    accelerator: Accelerator,
    progress: ProgressCallback | None,
) -> TrainOutcome:
    from kdcli.training.job import eval_set, run_fit, train_labels
    from kdcli.training.objective import KdSettings, classification_task

    label2id = {name: i for i, name in enumerate(model_labels(model))}
    student = inputs.student.name
    task = classification_task(
        model,
        train_s,
        dev=eval_set(dev_s, inputs.dev, label2id, student),
        teacher=outputs,
        teacher_order=_teacher_order(inputs.labels, model_labels(model)),
        kd=KdSettings(
            config.kd_loss,
            config.resolved_alpha(),
            config.resolved_temperature() or 1.0,
            config.hidden_loss_weight,
        ),
        layer_pairs=pairs,
        **train_labels(inputs.train, label2id, student),
    )
    return run_fit(task, config.train, area, inputs.identity, config.resume, accelerator, progress)


def _teacher_order(teacher_labels: list[str], student_labels: list[str]) -> list[int] | None:
    """The teacher's logit column of each student label (heads may order the same names
    differently); None when they agree."""
    order = [teacher_labels.index(name) for name in student_labels]
    return None if order == sorted(order) else order


def _finish(
    config: DistillConfig,
    inputs: _Inputs,
    start: StartingClassifier,
    tokenizer: Any,
    outcome: TrainOutcome,
    teacher: _TeacherRun,
    pairs: list[tuple[int, int]],
    notes: list[str],
    area: CheckpointArea,
    accelerator: Accelerator,
    started: float,
) -> DistillResult:
    from kdcli.files.model_card import public_name
    from kdcli.files.provenance import make_record
    from kdcli.training.job import FinishedModel, summarize, training_record, write_output

    student, teacher_ref, model = inputs.student, inputs.teacher, start.model
    out = Path(config.out)
    kd = config.kd_loss if inputs.uses_teacher else None
    layer_map = [list(p) for p in pairs] or None
    teacher_name = teacher_ref.name if teacher_ref else None
    labels = model_labels(model)
    record = make_record(
        "distill",
        config.options(teacher_name),
        teacher=(
            {**teacher_ref.describe(out), "sha256": inputs.teacher_hash} if teacher_ref else None
        ),
        student={**student.describe(out), "sha256": inputs.student_hash},
        distillation={
            "kd_loss": kd,
            "alpha": config.resolved_alpha(),
            "temperature": config.resolved_temperature(),
            "hidden_loss_weight": config.hidden_loss_weight,
            "layer_map": layer_map,
        },
        labels=labels,
        head_fixes=start.head_record(),
        **training_record(outcome, inputs.train, inputs.dev, accelerator.num_processes, out),
        notes=notes,
    )
    summary = summarize(
        outcome, inputs.train, inputs.dev, len(inputs.labels), time.perf_counter() - started
    )
    write_output(
        FinishedModel(
            classifier=model,
            weights=outcome.best_weights,
            tokenizer_ref=student,
            tokenizer=tokenizer,
            record=record,
            parent=student.path,
            card_title=f"{public_name(student.name)} distilled by kdcli",
            card_summary=_card_summary(student.name, teacher_ref if kd else None, kd, config),
            card_facts=_facts(
                public_name(student.name), teacher_ref if kd else None, config, summary
            ),
            card_source=student.name,
            options=config.options(teacher_name),
            command="distill",
        ),
        Path(config.out),
        config.overwrite,
        area,
        accelerator,
    )
    return DistillResult(
        out=Path(config.out),
        teacher=teacher_name,
        student=student.name,
        kd_loss=kd,
        alpha=config.resolved_alpha(),
        temperature=config.resolved_temperature(),
        hidden_loss_weight=config.hidden_loss_weight,
        layer_map=layer_map,
        teacher_cache=teacher.cache_state,
        teacher_seconds=teacher.seconds,
        labels=labels,
        training=replace(summary, seconds=time.perf_counter() - started),
        notes=notes,
    )


def _card_summary(
    student: str, teacher: ModelRef | None, kd: str | None, config: DistillConfig
) -> str:
    from kdcli.files.model_card import public_name

    data, student = public_name(config.data_config().data), public_name(student)
    if kd is None or teacher is None:
        return f"`{student}` trained by `kdcli distill --no-kd` on `{data}`."
    return (
        f"`{student}` trained by `kdcli distill` with {kd} distillation from "
        f"teacher `{public_name(teacher.name)}` on `{data}`."
    )


def _facts(
    student: str, teacher: ModelRef | None, config: DistillConfig, summary: TrainSummary
) -> list[tuple[str, object]]:
    from kdcli.files.model_card import public_name

    facts: list[tuple[str, object]] = [("student", f"`{student}`")]
    if teacher is not None and not config.no_kd:
        facts.append(("teacher", f"`{public_name(teacher.name)}`"))
        loss = f"{config.kd_loss}, alpha {config.resolved_alpha()}"
        if config.resolved_temperature():
            loss += f", temperature {config.resolved_temperature()}"
        if config.hidden_loss_weight:
            loss += f", hidden-state weight {config.hidden_loss_weight}"
        facts.append(("distillation", loss))
    else:
        facts.append(("distillation", "none (cross-entropy on the labels only)"))
    facts += [
        ("languages", ", ".join(summary.languages)),
        dev_fact(summary),
        ("training", f"{summary.steps} steps, lr {config.train.lr}"),
    ]
    return facts
