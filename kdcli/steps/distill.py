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
import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kdcli.core.errors import KdcliError
from kdcli.core.progress import ProgressCallback
from kdcli.core.results import JsonResult
from kdcli.core.validation import check_choice
from kdcli.data.sources import SEQUENCE, TOKEN
from kdcli.data.splits import DataConfig
from kdcli.files.provenance import find_stage
from kdcli.training.job import TrainSummary, as_data_config, data_options, dev_fact
from kdcli.training.loop import TrainConfig

if TYPE_CHECKING:
    from kdcli.data.batching import Encoded
    from kdcli.files.model_dirs import ModelRef
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
    """Distil `config.teacher` into `config.student` on `config.data`; write it to `config.out`."""
    started = time.perf_counter()
    _check_options(config)
    config.train.check()
    return _Job(config, progress).run(started)


def _check_options(config: DistillConfig) -> None:
    check_choice("--kd-loss", config.kd_loss, KD_LOSSES)
    if config.alpha is not None and not (
        isinstance(config.alpha, int | float) and 0.0 <= config.alpha <= 1.0
    ):
        raise KdcliError(f"--alpha {config.alpha} must be between 0 and 1 (the weight of KD)")
    if config.temperature is not None:
        if config.kd_loss != "kl":
            raise KdcliError(
                f"--temperature {config.temperature} only applies to --kd-loss kl: drop it, or "
                "pass --kd-loss kl"
            )
        if not (math.isfinite(config.temperature) and config.temperature > 0):
            raise KdcliError(f"--temperature {config.temperature} must be greater than zero")
    weight = config.hidden_loss_weight
    if not (math.isfinite(weight) and weight >= 0):
        raise KdcliError(f"--hidden-loss-weight {weight} must be zero or more")
    if config.no_kd:
        given = [
            option
            for option, used in (
                ("--alpha", config.alpha is not None),
                ("--temperature", config.temperature is not None),
                ("--kd-loss kl", config.kd_loss == "kl"),
                ("--hidden-loss-weight", weight > 0),
            )
            if used
        ]
        if given:
            raise KdcliError(
                f"--no-kd trains without the teacher, so {', '.join(given)} would have no "
                "effect: drop them, or drop --no-kd"
            )


def recorded_teacher(record: dict[str, Any] | None) -> str | None:
    """The teacher a student's kdcli.json names: the newest distill teacher or shrink source."""
    for entry in [record, *(record or {}).get("history", [])] if record else []:
        if entry.get("stage") == "distill" and (entry.get("teacher") or {}).get("model"):
            return str(entry["teacher"]["model"])
        if entry.get("stage") == "shrink" and (entry.get("source") or {}).get("model"):
            return str(entry["source"]["model"])
    return None


def layer_pairs(
    record: dict[str, Any] | None, student_layers: int, teacher_layers: int, student: str
) -> tuple[list[tuple[int, int]], str | None]:
    """(student layer, teacher layer) pairs for the hidden-state loss, and a note when the map
    is not the one the student was copied with."""
    shrink = find_stage(record, "shrink")
    kept = (shrink or {}).get("layers", {}).get("kept")
    if (
        isinstance(kept, list)
        and len(kept) == student_layers
        and all(isinstance(k, int) and 0 <= k < teacher_layers for k in kept)
    ):
        return list(enumerate(kept)), None
    uniform = [
        (i, max(0, round((i + 1) * teacher_layers / student_layers) - 1))
        for i in range(student_layers)
    ]
    shown = ", ".join(f"{s}->{t}" for s, t in uniform)
    return uniform, (
        f"{student}'s kdcli.json has no layer map for this teacher: the hidden-state loss uses "
        f"the uniform map (student->teacher layer) {shown}"
    )


class _Job:
    """One distillation run, step by step: validate and resolve everything first (cheap checks
    before hashing, hashing before training), train, then write the output."""

    def __init__(self, config: DistillConfig, progress: ProgressCallback | None) -> None:
        from kdcli.files.model_dirs import LoadOptions

        self.config = config
        self.progress = progress
        self.notes: list[str] = []
        self.data = config.data_config()
        self.student_opts = LoadOptions(config.student_revision, config.allow_pickle)
        self.teacher_opts = LoadOptions(config.teacher_revision, config.allow_pickle)
        self.teacher: ModelRef | None = None
        self.teacher_hash: str | None = None
        self.pairs: list[tuple[int, int]] = []
        self.cache_state: str | None = None
        self.teacher_seconds = 0.0

    def run(self, started: float) -> DistillResult:
        from kdcli.data.batching import model_inputs
        from kdcli.files.model_dirs import (
            classifier_class,
            content_hash,
            load_tokenizer,
            read_config_dict,
            resolve_model,
            weight_files,
        )
        from kdcli.files.provenance import read_provenance
        from kdcli.training.job import check_resume, check_start, encode_examples, load_splits
        from kdcli.training.loop import make_accelerator

        config = self.config
        self.area = check_start(Path(config.out), config.overwrite, config.resume)
        self.accelerator = make_accelerator()
        self.student = resolve_model(config.student, self.student_opts)
        self.student_record = read_provenance(self.student.path)
        teacher_name = self._teacher_name()
        if teacher_name is not None:
            self.teacher = resolve_model(teacher_name, self.teacher_opts)
        self.cache_dir = self._cache_dir()
        self.labels = self._check_heads(read_config_dict(self.student))
        self.train, self.dev = load_splits(self.data)
        self._check_task()
        self._check_data_labels()

        self.student_hash = content_hash(weight_files(self.student, config.allow_pickle))
        if self.teacher is not None:
            self.teacher_hash = content_hash(weight_files(self.teacher, config.allow_pickle))
            self._check_recorded_hash()
        self.identity = {
            "command": "distill",
            "options": config.identity(self.teacher.name if self.teacher else None),
            "student_sha256": self.student_hash,
            "teacher_sha256": self.teacher_hash,
            "train": self.train.fingerprint(),
            "dev": self.dev.fingerprint(),
            "processes": self.accelerator.num_processes,
        }
        check_resume(self.area, self.identity, config.resume)

        self.student_tok = load_tokenizer(self.student, self.student_opts)
        max_length = config.train.max_length
        inputs = model_inputs(classifier_class(self.student).forward, self.student_tok)
        self.train_s = encode_examples(self.student_tok, self.train, max_length, inputs)
        self.dev_s = encode_examples(self.student_tok, self.dev, max_length, inputs)
        outputs = self._teacher_outputs() if self.uses_teacher else None
        outcome = self._fit(outputs)
        return self._finish(outcome, started)

    @property
    def uses_teacher(self) -> bool:
        return self.teacher is not None and not self.config.no_kd

    # --- resolving and checking the inputs ------------------------------------------------------

    def _teacher_name(self) -> str | None:
        config = self.config
        if config.teacher is not None:
            return config.teacher
        if config.no_kd:
            return None
        recorded = recorded_teacher(self.student_record)
        if recorded is None:
            raise KdcliError(
                f"--teacher is missing and {config.student} has no kdcli.json naming its teacher: "
                "pass --teacher (the fine-tuned model to distil from)"
            )
        if not Path(recorded).expanduser().exists() and (
            recorded.startswith((".", "/", "~")) or "/" not in recorded
        ):
            raise KdcliError(
                f"the teacher named in {config.student}'s kdcli.json, {recorded}, does not exist: "
                "pass --teacher"
            )
        self.notes.append(f"teacher {recorded} taken from {config.student}'s kdcli.json")
        return recorded

    def _cache_dir(self) -> Path | None:
        if not self.uses_teacher:
            return None
        from kdcli.training.teacher_cache import check_cache_dir, default_cache_dir

        cache_dir = Path(self.config.cache_dir or default_cache_dir()).expanduser()
        check_cache_dir(cache_dir)
        return cache_dir

    def _check_heads(self, student_config: dict[str, Any]) -> list[str]:
        """The label names the student is trained on (teacher's, student's or the data's), and
        the task: the teacher's head decides it (without a teacher: the student's, or --task)."""
        from kdcli.files.model_dirs import head_kind, read_config_dict
        from kdcli.training.job import check_same_labels, model_labels, resolve_task

        student = self.student
        self.student_kind = head_kind(student_config, student.name)
        student_labels = model_labels(student_config)
        if self.teacher is None:
            task = resolve_task(self.data.task, self.student_kind, student.name)
            self._set_task(task)
            same = self.student_kind == (task or SEQUENCE)
            return student_labels if same else []
        self.teacher_config = read_config_dict(self.teacher)
        teacher_kind = head_kind(self.teacher_config, self.teacher.name)
        if teacher_kind not in (SEQUENCE, TOKEN):
            raise KdcliError(
                f"teacher {self.teacher.name} has no classification head: distil from a "
                "fine-tuned classifier (make one with kdcli finetune)"
            )
        if self.data.task not in (None, teacher_kind):
            raise KdcliError(
                f"--task {self.data.task}, but teacher {self.teacher.name} is a {teacher_kind} "
                "model: drop --task (the teacher's head decides it)"
            )
        if self.student_kind == TOKEN and teacher_kind == SEQUENCE:
            raise KdcliError(
                f"student {student.name} is a token-classification model but teacher "
                f"{self.teacher.name} classifies sequences: use a student made from the teacher "
                "(kdcli shrink) or an encoder"
            )
        self._set_task(teacher_kind)
        teacher_labels = model_labels(self.teacher_config)
        if self.student_kind == teacher_kind:
            check_same_labels(teacher_labels, student_labels, self.teacher.name, student.name)
        return teacher_labels

    def _set_task(self, task: str | None) -> None:
        self.data = replace(self.data, task=task)
        self.config = replace(self.config, data=self.data)

    def _check_task(self) -> None:
        """The data turned out to hold what the models do (MASSIVE holds both)."""
        if self.train.task == TOKEN and self.data.task == SEQUENCE:
            raise KdcliError(
                f"--data {self.data.data} holds words and tags, but the models classify "
                "sequences: distil a token-classification teacher"
            )
        self._set_task(self.train.task)

    def _check_data_labels(self) -> None:
        """Every label of the data must be one the teacher (or the student's head) knows."""
        from kdcli.data.splits import label_ids, tag_ids
        from kdcli.training.job import data_labels

        if not self.labels:
            self.labels = data_labels(self.train, self.dev)
            return
        known = {name: i for i, name in enumerate(self.labels)}
        owner = self.teacher.name if self.teacher else self.student.name
        check = tag_ids if self.train.task == TOKEN else label_ids
        check(self.train, known, owner)
        check(self.dev, known, owner)

    def _check_recorded_hash(self) -> None:
        shrink = find_stage(self.student_record, "shrink")
        source = (shrink or {}).get("source") or {}
        teacher = self.teacher
        if teacher is None or not source.get("sha256") or source.get("model") != teacher.name:
            return
        if source["sha256"] != self.teacher_hash:
            self.notes.append(
                f"teacher {teacher.name} has changed since the student was copied from it "
                "(its weights' sha256 differs from the one in the student's kdcli.json)"
            )

    # --- the teacher's outputs ---------------------------------------------------------------

    def _teacher_outputs(self) -> TeacherOutputs:
        """The cached teacher outputs; on a miss the first process of each machine computes
        and stores them while the others wait, then read them."""
        from kdcli.data.batching import model_inputs
        from kdcli.files.model_dirs import classifier_class, load_tokenizer
        from kdcli.training import teacher_cache as tc
        from kdcli.training.job import encode_examples

        assert self.teacher is not None and self.cache_dir is not None
        clock = time.perf_counter()
        if self.config.hidden_loss_weight > 0:
            self.pairs = self._layer_pairs()
        teacher_tok = load_tokenizer(self.teacher, self.teacher_opts)
        inputs = model_inputs(classifier_class(self.teacher).forward, teacher_tok)
        train_t = encode_examples(teacher_tok, self.train, self.config.train.max_length, inputs)
        self._check_token_alignment(train_t)
        key = tc.CacheKey(
            teacher_sha256=str(self.teacher_hash),
            teacher_config_sha256=hashlib.sha256(
                (self.teacher.path / "config.json").read_bytes()
            ).hexdigest(),
            input_ids_sha256=tc.ids_hash(train_t),
            layers=tuple(sorted({t for _, t in self.pairs})),
            bf16=self.config.train.bf16,
            words_sha256=tc.words_hash(self.train.words) if self.train.words else None,
        )
        path = tc.cache_path(self.cache_dir, key)
        with self.accelerator.local_main_process_first():
            outputs = tc.load(path)
            self.cache_state = "hit"
            rows = sum(map(len, train_t.word_tokens)) if train_t.word_tokens else len(train_t)
            if outputs is None or outputs.logits.shape[0] != rows:
                self.cache_state = "miss"
                tc.check_space(
                    self.cache_dir,
                    rows,
                    int(self.teacher_config.get("num_labels") or len(self.labels)),
                    sum(train_t.lengths()),
                    len(key.layers) * int(self.teacher_config.get("hidden_size") or 0),
                )
                outputs = self._run_teacher(train_t, key.layers)
                tc.save(outputs, path, key)
        self.teacher_seconds = time.perf_counter() - clock
        return outputs

    def _layer_pairs(self) -> list[tuple[int, int]]:
        from transformers import AutoConfig

        assert self.teacher is not None
        s_layers = int(AutoConfig.from_pretrained(self.student.path).num_hidden_layers)
        t_layers = int(AutoConfig.from_pretrained(self.teacher.path).num_hidden_layers)
        pairs, note = layer_pairs(self.student_record, s_layers, t_layers, self.student.name)
        self.notes += [note] if note else []
        return pairs

    def _check_token_alignment(self, train_t: Encoded) -> None:
        """The hidden-state loss compares token by token: both must see the same tokens."""
        if not self.pairs or train_t.lengths() == self.train_s.lengths():
            return
        t_lengths, s_lengths = train_t.lengths(), self.train_s.lengths()
        first = next(i for i, (a, b) in enumerate(zip(t_lengths, s_lengths, strict=True)) if a != b)
        raise KdcliError(
            "--hidden-loss-weight needs the teacher and student to split texts into the same "
            f"tokens, but their tokenizers differ (training example {first}: "
            f"{t_lengths[first]} vs {s_lengths[first]} tokens): use --hidden-loss-weight 0"
        )

    def _run_teacher(self, encoded: Encoded, layers: tuple[int, ...]) -> TeacherOutputs:
        from kdcli.files.model_dirs import load_classifier
        from kdcli.training import teacher_cache as tc
        from kdcli.training.job import quiet_transformers

        assert self.teacher is not None
        with quiet_transformers():
            model = load_classifier(self.teacher, self.teacher_opts, token=self.data.task == TOKEN)
        model.to(self.accelerator.device)
        return tc.compute(
            model,
            encoded,
            list(layers),
            self.config.train.eval_batch_size,
            self.accelerator.device,
            self.config.train.bf16,
            self.progress if self.accelerator.is_main_process else None,
        )

    # --- training and the output -------------------------------------------------------------

    def _fit(self, outputs: TeacherOutputs | None) -> TrainOutcome:
        from kdcli.training.job import eval_set, load_classifier_for, run_fit, train_labels
        from kdcli.training.objective import KdSettings, classification_task

        config = self.config
        start = load_classifier_for(
            self.student, self.student_opts, self.labels, config.train.seed, self.train.task
        )
        self.notes += start.notes
        self.head_fixes = start.head_record()
        self.model = model = start.model
        label2id = {str(k): int(v) for k, v in model.config.label2id.items()}
        self.student_labels = [str(model.config.id2label[i]) for i in range(len(label2id))]
        # the student's head may order the same label names differently from the teacher's
        order = [self.labels.index(name) for name in self.student_labels]
        task = classification_task(
            model,
            self.train_s,
            dev=eval_set(self.dev_s, self.dev, label2id, self.student.name),
            teacher=outputs,
            teacher_order=None if order == sorted(order) else order,
            kd=KdSettings(
                config.kd_loss,
                config.resolved_alpha(),
                config.resolved_temperature() or 1.0,
                config.hidden_loss_weight,
            ),
            layer_pairs=self.pairs,
            **train_labels(self.train, label2id, self.student.name),
        )
        return run_fit(
            task,
            config.train,
            self.area,
            self.identity,
            config.resume,
            self.accelerator,
            self.progress,
        )

    def _finish(self, outcome: TrainOutcome, started: float) -> DistillResult:
        from kdcli.files.provenance import make_record
        from kdcli.training.job import FinishedModel, summarize, training_record, write_output

        config, teacher = self.config, self.teacher
        notes = [*self.train.notes, *self.notes]
        kd = config.kd_loss if self.uses_teacher else None
        layer_map = [list(p) for p in self.pairs] or None
        teacher_name = teacher.name if teacher else None
        record = make_record(
            "distill",
            config.options(teacher_name),
            teacher={**teacher.describe(), "sha256": self.teacher_hash} if teacher else None,
            student={**self.student.describe(), "sha256": self.student_hash},
            distillation={
                "kd_loss": kd,
                "alpha": config.resolved_alpha(),
                "temperature": config.resolved_temperature(),
                "hidden_loss_weight": config.hidden_loss_weight,
                "layer_map": layer_map,
            },
            labels=self.student_labels,
            head_fixes=self.head_fixes,
            **training_record(outcome, self.train, self.dev, self.accelerator.num_processes),
            notes=notes,
        )
        summary = summarize(
            outcome, self.train, self.dev, len(self.labels), time.perf_counter() - started
        )
        write_output(
            FinishedModel(
                classifier=self.model,
                weights=outcome.best_weights,
                tokenizer_ref=self.student,
                tokenizer=self.student_tok,
                record=record,
                parent=self.student.path,
                card_title=f"{self.student.name} distilled by kdcli",
                card_summary=self._card_summary(kd),
                card_facts=_facts(self.student.name, teacher if kd else None, config, summary),
                card_source=self.student.name,
                options=config.options(teacher_name),
                command="distill",
            ),
            Path(config.out),
            config.overwrite,
            self.area,
            self.accelerator,
        )
        return DistillResult(
            out=Path(config.out),
            teacher=teacher_name,
            student=self.student.name,
            kd_loss=kd,
            alpha=config.resolved_alpha(),
            temperature=config.resolved_temperature(),
            hidden_loss_weight=config.hidden_loss_weight,
            layer_map=layer_map,
            teacher_cache=self.cache_state,
            teacher_seconds=self.teacher_seconds,
            labels=self.student_labels,
            training=replace(summary, seconds=time.perf_counter() - started),
            notes=notes,
        )

    def _card_summary(self, kd: str | None) -> str:
        data = self.data.data
        if kd is None:
            return f"`{self.student.name}` trained by `kdcli distill --no-kd` on `{data}`."
        assert self.teacher is not None
        return (
            f"`{self.student.name}` trained by `kdcli distill` with {kd} distillation from "
            f"teacher `{self.teacher.name}` on `{data}`."
        )


def _facts(
    student: str, teacher: ModelRef | None, config: DistillConfig, summary: TrainSummary
) -> list[tuple[str, object]]:
    facts: list[tuple[str, object]] = [("student", f"`{student}`")]
    if teacher is not None and not config.no_kd:
        facts.append(("teacher", f"`{teacher.name}`"))
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
