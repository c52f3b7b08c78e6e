"""`kdcli export`: ONNX (fp32, optionally int8) for CPU serving, verified on real text.

The model is traced with `torch.onnx.export(dynamo=True)` (dynamic batch and sequence axes),
optionally fused for ONNX Runtime, and optionally quantized to dynamic int8. Then the PyTorch model
and every exported file run on the same real text (`--verify-data`, else the data the model was
trained on as its kdcli.json records it, else the built-in multilingual sentences) through the same
batches, at batch 1 and at the verification batch size; `kdcli.evaluation.verification` judges
them. int8 keeps in float the fewest weight nodes that meet the gate: nodes ranked by their
simulated damage (`kdcli.runtime.int8_sensitivity`), the cut found with ONNX Runtime on the
selection texts (the dev split), the file then judged on other texts (the test split). A token
classifier is checked per word: its texts are split into words (the data's, or the built-in
sentences split as MASSIVE splits them), and agreement is the share of words whose tag (read from
the word's token) is the same. A failed check still writes the output (marked failed in
kdcli.json) and raises `CheckFailedError` so it can be inspected.

The output keeps the layout optimum's `ORTModelForSequenceClassification.from_pretrained` reads:
`model.onnx`, `model_quantized.onnx`, config.json and the tokenizer files.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

from kdcli.core.errors import CheckFailedError, KdcliError, one_line, option_ref
from kdcli.core.machine import MachineState, load_average, machine_state, speed_warning
from kdcli.core.progress import ProgressCallback, report
from kdcli.core.results import JsonResult
from kdcli.core.validation import (
    check_choice,
    check_int,
    check_max_length,
    check_names,
    check_number,
)
from kdcli.data.languages import sample_per_language
from kdcli.data.sources import SEQUENCE, TOKEN
from kdcli.evaluation.verification import Check, Gate, compare
from kdcli.files.model_dirs import (
    LoadOptions,
    ModelRef,
    content_hash,
    copy_tokenizer_files,
    read_config_dict,
    resolve_model,
    weight_files,
)
from kdcli.files.outputs import atomic_output_dir, check_output_dir, output_lock
from kdcli.files.provenance import (
    entry_field,
    lineage_entries,
    make_record,
    read_provenance,
    recorded_path,
    with_history,
    write_provenance,
)
from kdcli.runtime.onnx_graph import cpu_int8, require_export_stack
from kdcli.runtime.predictor import (
    EXACT_INT8_KERNELS,
    ONNX_FILE,
    ONNX_INT8_FILE,
    Latency,
    OnnxPredictor,
    OrtSettings,
    Predictor,
    TorchPredictor,
    measure_latency,
)
from kdcli.surgery.architectures import Architecture, family_of, supported_model_types

QUANTIZE = ("none", "int8", "auto")
BUILTIN_SENTENCES = "verify_sentences.jsonl"
# A language whose text the tokenizer mostly turns into <unk> was never in the model's vocabulary.
UNSEEN_UNK_RATE = 0.3


@dataclass(frozen=True)
class ExportConfig:
    """Everything `kdcli export` can be told."""

    source: str
    out: Path
    quantize: str = "none"
    optimize: bool = False
    verify_data: str | None = None
    languages: Sequence[str] | None = None
    verify_samples: int = 20
    atol: float = 1e-4
    min_agreement: float = 0.99
    max_accuracy_drop: float = 1.0
    per_channel: bool = True
    reduce_range: bool | None = None
    opset: int | None = None
    max_length: int = 128
    batch_size: int = 32
    threads: int | None = None
    latency: bool = True
    seed: int = 0
    overwrite: bool = False
    revision: str | None = None
    allow_pickle: bool = False
    task: str | None = None  # None: the model's head decides
    tag_scheme: str = "auto"  # token classification --verify-data

    def settings(self) -> dict[str, Any]:
        """What shaped the export, as kdcli.json stores it (not where it went)."""
        data = asdict(self)
        del data["out"], data["overwrite"], data["latency"], data["threads"]
        if self.task is None:
            del data["task"], data["tag_scheme"]
        data["languages"] = check_names("languages", self.languages)
        return data

    @property
    def gate(self) -> Gate:
        return Gate(self.atol, self.min_agreement, self.max_accuracy_drop)


@dataclass(frozen=True)
class Verification:
    source: str  # the --verify-data spec, the data kdcli.json records, or "built-in sentences"
    texts: int  # texts the files were judged on
    languages: list[str]
    unseen_languages: list[str]
    fp32: Check
    int8: Check | None
    passed: bool
    selection: str = ""  # the texts the int8 mix was chosen on (the judged ones only when too few)
    selection_texts: int = 0
    batch_sizes: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class KeptFloat:
    """A weight node int8 keeps in float, and the damage that earned it the place."""

    name: str
    module: str
    role: str
    layer: int | None
    flips: int  # selection texts whose label it flips when quantized alone (simulated)
    kl: float


@dataclass(frozen=True)
class Quantization:
    per_channel: bool
    reduce_range: bool
    reduce_range_reason: str
    float_nodes: int
    quantized_nodes: int
    kept_float: list[KeptFloat]  # beyond the head and small tables, most damaging first
    trials: dict[str, float]  # "N in float" -> top-1 agreement on the selection texts
    word_embeddings: str  # how the word-embedding table is stored
    serving: str  # on which CPUs the file computes as verified


@dataclass(frozen=True)
class ServedChoice:
    """What `--quantize auto` serves, and why: int8 where it passes verification on this CPU,
    else fp32 (docs/export.md, "Choosing per CPU": dynamic int8 was faster than fp32 on both CPUs
    measured, AVX2 and AVX-512 VNNI, and no other int8 mode or backend was both faster and as
    accurate, so there is no third choice to make)."""

    file: str  # model_quantized.onnx or model.onnx
    reason: str
    cpu: str  # the exporting machine, as `kdcli.core.machine.cpu_summary` names it


@dataclass(frozen=True)
class ExportResult(JsonResult):
    out: Path
    source: str
    model_type: str
    head: str
    inputs: list[str]
    pytorch_bytes: int
    fp32_bytes: int
    int8_bytes: int | None
    fusions: dict[str, int]  # fusions kept in model.onnx (empty: not optimized)
    quantization: Quantization | None
    verification: Verification
    latency: dict[str, Latency]  # "pytorch", "onnx", "onnx-int8"
    onnxruntime_version: str
    passed: bool
    seconds: float
    notes: list[str] = field(default_factory=list)
    machine: MachineState | None = None  # what the latencies were measured on
    # kept out of `notes`, which go to kdcli.json: timings must not make two exports differ
    speed_note: str | None = None
    served: ServedChoice | None = None  # --quantize auto


@dataclass(frozen=True)
class VerifyText:
    """Verification texts; for a token classifier also their words (`texts` are then the
    words joined by spaces, which is what the model reads)."""

    texts: list[str]
    languages: list[str]
    source: str
    labels: list[str] | None = None  # gold label names, when the text has them
    words: list[list[str]] | None = None


@dataclass(frozen=True)
class VerifyPlan:
    """The texts files are judged on, and other texts to choose the int8 mix on."""

    judge: VerifyText
    choose: VerifyText
    notes: list[str] = field(default_factory=list)


def export(config: ExportConfig, progress: ProgressCallback | None = None) -> ExportResult:
    """Export `config.source` to ONNX in `config.out`, verify it, and measure it."""
    _check_options(config)
    inputs = [str(v) for v in (config.source, config.verify_data) if v]
    check_output_dir(Path(config.out), config.overwrite, inputs)
    with output_lock(Path(config.out)) as stale:
        try:
            result = _export(config, progress)
        except CheckFailedError as err:
            if isinstance(err.result, ExportResult):
                err.result = replace(err.result, notes=[*stale, *err.result.notes])
            raise
    return replace(result, notes=[*stale, *result.notes])


def _export(config: ExportConfig, progress: ProgressCallback | None) -> ExportResult:
    started = time.perf_counter()
    require_export_stack()
    options = LoadOptions(config.revision, config.allow_pickle)
    ref = resolve_model(config.source, options)
    model_config = read_config_dict(ref)
    arch = _check_exportable(model_config, ref.name)
    task = _task(config, model_config, ref.name)
    plan = verify_plan(config, read_provenance(ref.path), task, ref.path)
    report(progress, "load model", 0, None)
    torch_model = TorchPredictor(ref.path, threads=config.threads, options=options)

    with atomic_output_dir(Path(config.out), config.overwrite) as tmp:
        result = _build(config, ref, model_config, arch, torch_model, plan, tmp, progress)
        record = _record(config, ref, result)
        parent = read_provenance(ref.path)
        record = with_history(record, parent, ref.path, Path(config.out))
        write_provenance(tmp, record)
        _model_card(tmp, result, record)
    result = replace(result, out=Path(config.out), seconds=time.perf_counter() - started)
    if not result.passed:
        raise CheckFailedError(_failure_message(config, result), result)
    return result


def _check_options(config: ExportConfig) -> None:
    check_choice("quantize", config.quantize, QUANTIZE)
    check_number("atol", config.atol, minimum=0)
    check_number("max_accuracy_drop", config.max_accuracy_drop, minimum=0)
    check_number("min_agreement", config.min_agreement, minimum=0, maximum=1)
    check_int("verify_samples", config.verify_samples)
    check_int("batch_size", config.batch_size)
    check_int("threads", config.threads, optional=True)
    check_max_length(config.max_length)
    if config.opset is not None and not 17 <= config.opset <= 23:
        raise KdcliError(
            "is unsupported",
            option="opset",
            value=config.opset,
            fix="choose 17 to 23 (or leave it)",
        )
    if check_names("languages", config.languages) and not config.verify_data:
        raise KdcliError(
            f"restricts {option_ref('verify_data')}",
            option="languages",
            fix=f"give {option_ref('verify_data')} DATA too",
        )


def _check_exportable(model_config: dict[str, Any], name: str) -> Architecture:
    """The layout of an exportable classifier (kdcli exports the families it shrinks, each
    tested in tests/test_export.py); a clear error for anything else."""
    from kdcli.files.model_dirs import head_kind

    model_type = model_config.get("model_type")
    arch = family_of(model_type)
    if arch is None:
        raise KdcliError(
            f"{name}: model type {model_type!r} is not supported for export; kdcli exports "
            f"{', '.join(supported_model_types())}"
        )
    head = head_kind(model_config, name)
    if head == "encoder":
        raise KdcliError(
            f"{name} has no classification head ({(model_config.get('architectures') or ['?'])[0]}"
            "): export a fine-tuned sequence- or token-classification model"
        )
    return arch


def _task(config: ExportConfig, model_config: dict[str, Any], name: str) -> str:
    from kdcli.files.model_dirs import head_kind

    head = head_kind(model_config, name)
    if config.task is not None and config.task != head:
        raise KdcliError(
            f", but {name} is a {head} model",
            option="task",
            value=config.task,
            fix=f"drop {option_ref('task')}",
        )
    return head


def verify_plan(
    config: ExportConfig,
    record: dict[str, Any] | None,
    task: str = SEQUENCE,
    model_dir: Path | None = None,
) -> VerifyPlan:
    """Judge on --verify-data's test split, else on the test split of the data the model was
    trained on (its kdcli.json), else on the built-in sentences; choose the int8 mix on the
    dev split (or, without one, on the other half of the texts)."""
    from kdcli.data.splits import DataConfig

    if config.verify_data is not None:
        data = DataConfig(
            data=config.verify_data,
            languages=check_names("languages", config.languages),
            task=task,
            tag_scheme=config.tag_scheme,
        )
        return _data_plan(config, data, config.verify_data, "verify_data")
    recorded = recorded_data(record, model_dir)
    if recorded is None or recorded.task not in (None, task):
        return _halves(_builtin_sentences(task))
    try:
        return _data_plan(
            config, replace(recorded, task=task), f"{recorded.data} (from kdcli.json)"
        )
    except KdcliError as err:
        plan = _halves(_builtin_sentences(task))
        note = (
            f"the data in kdcli.json ({recorded.data}) could not be read ({one_line(err)}): "
            "verified on the built-in sentences; pass --verify-data DATA to verify on yours"
        )
        return replace(plan, notes=[note])


def recorded_data(record: dict[str, Any] | None, model_dir: Path | None = None) -> Any:
    """The DataConfig of the newest training stage in a model's lineage, if kdcli trained it;
    local data found from the model's folder as kdcli.json records its path (else as typed)."""
    from kdcli.data.splits import DataConfig

    for entry in lineage_entries(record):
        settings = entry_field(entry, "settings") or {}
        if entry.get("stage") in ("finetune", "distill") and settings.get("data"):
            found = recorded_path(entry_field(entry, "data"), model_dir) if model_dir else None
            return DataConfig(
                data=found or str(settings["data"]),
                languages=settings.get("languages") or None,
                text_column=settings.get("text_column"),
                label_column=settings.get("label_column"),
                language_column=settings.get("language_column"),
                revision=settings.get("data_revision"),
                task=settings.get("task") or entry.get("task"),
                tag_scheme=settings.get("tag_scheme") or "auto",
            )
    return None


def _data_plan(config: ExportConfig, data: Any, source: str, option: str = "data") -> VerifyPlan:
    from kdcli.data.splits import load_split

    judge = _sampled(load_split(data, "test", option), config, source)
    try:
        choose = _sampled(load_split(data, "dev", option), config, f"{source}, dev split")
    except KdcliError:  # no dev split: choose on half of the test texts, judge on the other
        return _halves(judge)
    return VerifyPlan(judge, choose)


def _sampled(examples: Any, config: ExportConfig, source: str) -> VerifyText:
    keep = sample_per_language(examples.languages, config.verify_samples, config.seed)
    if examples.words is not None:  # token classification: judged per word, no text labels
        text = VerifyText(
            [examples.texts[i] for i in keep], [examples.languages[i] for i in keep], source
        )
        return _with_words(text, [examples.words[i] for i in keep])
    return VerifyText(
        [examples.texts[i] for i in keep],
        [examples.languages[i] for i in keep],
        source,
        [examples.labels[i] for i in keep],
    )


def _with_words(text: VerifyText, words: list[list[str]]) -> VerifyText:
    from kdcli.data.batching import words_text

    keep = [i for i, row in enumerate(words) if row]
    rows = [words[i] for i in keep]
    return VerifyText(
        [words_text(row)[0] for row in rows],
        [text.languages[i] for i in keep],
        text.source,
        words=rows,
    )


def _halves(text: VerifyText) -> VerifyPlan:
    """Every other text of each language to choose on, the rest to judge on."""
    seen: dict[str, int] = {}
    choose: list[int] = []
    judge: list[int] = []
    for index, language in enumerate(text.languages):
        (choose if seen.get(language, 0) % 2 else judge).append(index)
        seen[language] = seen.get(language, 0) + 1

    def part(indices: list[int], suffix: str) -> VerifyText:
        return VerifyText(
            [text.texts[i] for i in indices],
            [text.languages[i] for i in indices],
            f"{text.source}{suffix}",
            [text.labels[i] for i in indices] if text.labels is not None else None,
            [text.words[i] for i in indices] if text.words is not None else None,
        )

    if not choose:  # one text per language: nothing to hold out, so choose on what is judged
        return VerifyPlan(part(judge, ""), part(judge, ", the same texts (too few to halve)"))
    return VerifyPlan(part(judge, ""), part(choose, ", other half"))


def _builtin_sentences(task: str = SEQUENCE) -> VerifyText:
    """The built-in sentences; for a token classifier split into words as MASSIVE splits them."""
    path = resources.files("kdcli") / "resources" / BUILTIN_SENTENCES
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    text = VerifyText(
        [row["text"] for row in rows], [row["language"] for row in rows], "built-in sentences"
    )
    if task != TOKEN:
        return text
    from kdcli.data.slots import split_words

    words = [split_words(t, lang) for t, lang in zip(text.texts, text.languages, strict=True)]
    return _with_words(text, words)


class _Reference:
    """PyTorch's logits on the judged texts at every verified batch size, and the gold label
    ids the model knows (None where the text has no label, or one the model lacks)."""

    def __init__(self, config: ExportConfig, torch_model: TorchPredictor, text: VerifyText):
        self.text = text
        self.sizes = sorted({1, config.batch_size})
        self.logits = {
            size: torch_model.logits(text.texts, size, config.max_length) for size in self.sizes
        }
        sequence = torch_model.head != TOKEN
        self.labels = _label_ids(text, torch_model) if sequence else None
        self.words = _word_positions(text, torch_model, config.max_length)


def _word_positions(
    text: VerifyText, torch_model: TorchPredictor, max_length: int
) -> list[list[int]] | None:
    """Token classification: each word's token (-1 where it has none) in `text.texts`."""
    if text.words is None:
        return None
    from kdcli.data.batching import encode_words

    positions = encode_words(torch_model.tokenizer, text.words, max_length).word_tokens
    assert positions is not None
    return [list(row) for row in positions]


def _label_ids(text: VerifyText, torch_model: TorchPredictor) -> list[int] | None:
    if text.labels is None:
        return None
    label2id = {name: i for i, name in torch_model.id2label.items()}
    if any(label not in label2id for label in text.labels):
        return None  # accuracy would count labels the model cannot predict
    return [label2id[label] for label in text.labels]


def _build(
    config: ExportConfig,
    ref: ModelRef,
    model_config: dict[str, Any],
    arch: Architecture,
    torch_model: TorchPredictor,
    plan: VerifyPlan,
    tmp: Path,
    progress: ProgressCallback | None,
) -> ExportResult:
    import onnxruntime

    from kdcli.runtime.onnx_graph import export_graph

    text = plan.judge
    report(progress, "export ONNX", 0, None)
    sample = _sample_inputs(torch_model, text.texts, config.max_length)
    plain = tmp / "model.plain.onnx"
    export_graph(torch_model.model, sample, plain, config.opset, str(model_config["model_type"]))
    shutil.copyfile(ref.path / "config.json", tmp / "config.json")
    copy_tokenizer_files(ref, tmp)

    report(progress, "verify", 0, None)
    reference = _Reference(config, torch_model, text)
    fp32, fusions, notes = _fp32(config, plain, tmp, reference)
    notes = [*plan.notes, *notes]
    traced = plain if plain.exists() else tmp / ONNX_FILE
    int8, quantization, served = None, None, None
    if config.quantize in ("int8", "auto"):
        int8, quantization = _int8(
            config, traced, tmp, reference, plan.choose, torch_model, model_config, arch, progress,
        )  # fmt: skip
        notes += _serving_notes(quantization, config)
    if config.quantize == "auto" and int8 is not None:
        served = _auto_choice(int8, tmp)
        notes.append(f"--quantize auto: serving {served.file}: {served.reason}")
    plain.unlink(missing_ok=True)
    reasons = _unseen_reasons(torch_model, text, read_provenance(ref.path), config.max_length)
    unseen = sorted(reasons)
    notes += _unseen_note(reasons)
    verification = Verification(
        text.source,
        len(text.texts),
        sorted(set(text.languages)),
        unseen,
        fp32,
        int8,
        fp32.passed and (int8 is None or int8.passed or served is not None),
        selection=plan.choose.source if int8 else "",
        selection_texts=len(plan.choose.texts) if int8 else 0,
        batch_sizes=reference.sizes,
    )
    latency, machine, warning = {}, None, None
    if config.latency:
        load = load_average()
        seven_bit = quantization is not None and quantization.reduce_range
        latency = _latency(config, torch_model, tmp, text, progress, seven_bit)
        machine = machine_state(load)
        warning = speed_warning(machine, max(t.spread for t in latency.values()))
    return ExportResult(
        out=tmp,
        source=ref.name,
        model_type=str(model_config["model_type"]),
        head=torch_model.head,
        inputs=list(sample),
        pytorch_bytes=torch_model.size_bytes,
        fp32_bytes=(tmp / ONNX_FILE).stat().st_size,
        int8_bytes=(tmp / ONNX_INT8_FILE).stat().st_size
        if (tmp / ONNX_INT8_FILE).is_file()
        else None,
        fusions=fusions,
        quantization=quantization,
        verification=verification,
        latency=latency,
        onnxruntime_version=onnxruntime.__version__,
        passed=verification.passed,
        seconds=0.0,
        notes=notes,
        machine=machine,
        speed_note=warning,
        served=served,
    )


def _auto_choice(int8: Check, tmp: Path) -> ServedChoice:
    """int8 when it passed verification here; else fp32, and the int8 file is not kept (a user
    serving the folder gets the verified file)."""
    from kdcli.core.machine import cpu_summary

    if int8.passed:
        ratio = (tmp / ONNX_FILE).stat().st_size / (tmp / ONNX_INT8_FILE).stat().st_size
        reason = f"int8 passed verification on this CPU ({ratio:.1f}x smaller than fp32)"
        return ServedChoice(ONNX_INT8_FILE, reason, cpu_summary())
    (tmp / ONNX_INT8_FILE).unlink()
    reason = f"int8 missed the gate ({int8.failure}), so fp32 is served and no int8 file kept"
    return ServedChoice(ONNX_FILE, reason, cpu_summary())


def _sample_inputs(torch_model: TorchPredictor, texts: list[str], max_length: int) -> dict:
    """A batch of real text to trace with: two or more rows, so no axis is fixed to 1."""
    import torch

    batch = torch_model.encode((texts * 2)[:4], batch_size=4, max_length=max_length)[0]
    return {name: torch.from_numpy(batch.inputs[name]) for name in torch_model.input_names}


def _fp32(
    config: ExportConfig, plain: Path, tmp: Path, reference: _Reference
) -> tuple[Check, dict[str, int], list[str]]:
    """model.onnx: the fused graph when asked for and it keeps parity, else the traced one.

    Without --optimize the traced graph is moved to model.onnx (large models: no second copy).
    """
    from kdcli.runtime.onnx_graph import fuse

    target = tmp / ONNX_FILE
    plain_check = _judge(plain, ONNX_FILE, "onnx", reference, config)
    if not config.optimize:
        plain.replace(target)
        return plain_check, {}, []
    fused = tmp / "model.fused.onnx"
    try:
        fusions = fuse(plain, fused)
    except Exception as err:  # a rewrite the fuser cannot apply: the traced graph still serves
        plain.replace(target)
        return (
            plain_check,
            {},
            [f"--optimize: fusing failed ({one_line(err)}); model.onnx is the traced graph"],
        )
    fused_check = _judge(fused, ONNX_FILE, "onnx", reference, config)
    if fused_check.passed or not plain_check.passed:
        fused.replace(target)
        return fused_check, fusions, []
    fused.unlink()
    shutil.copyfile(plain, target)
    note = (
        f"--optimize: the fused graph moved logits by {fused_check.max_abs_diff:.2e} "
        f"(> --atol {config.atol:g}) where the traced graph stays within it; model.onnx is "
        "the traced graph"
    )
    return plain_check, {}, [note]


def _judge(
    onnx_file: Path,
    name: str,
    kind: str,
    reference: _Reference,
    config: ExportConfig,
    settings: OrtSettings | None = None,
) -> Check:
    """One file against PyTorch on the judged texts, at every verified batch size."""
    predictor = OnnxPredictor(onnx_file, threads=config.threads, settings=settings)
    outputs = {
        size: predictor.logits(reference.text.texts, size, config.max_length)
        for size in reference.sizes
    }
    return compare(
        name,
        kind,
        outputs,
        reference.logits,
        reference.text.languages,
        config.gate,
        reference.labels,
        reference.words,
    )


def _int8(
    config: ExportConfig,
    plain: Path,
    tmp: Path,
    reference: _Reference,
    choose: VerifyText,
    torch_model: TorchPredictor,
    model_config: dict[str, Any],
    arch: Architecture,
    progress: ProgressCallback | None,
) -> tuple[Check, Quantization]:
    """Dynamic int8 with the fewest nodes in float that meet the gate on the selection texts,
    judged afterwards on the other texts."""
    from kdcli.runtime.onnx_graph import always_float, weight_nodes

    cpu = cpu_int8()
    reduce_range = cpu.reduce_range if config.reduce_range is None else config.reduce_range
    reason = cpu.reason if config.reduce_range is None else "set by --reduce-range"
    nodes = weight_nodes(
        plain,
        arch.prefix,
        int(model_config.get(arch.keys.intermediate, 0)),
        int(model_config.get("vocab_size", 0)),
    )
    tables = [n.name for n in nodes if n.role == "word-embeddings"]
    search = _FloatSearch(config, plain, tmp, choose, torch_model, reduce_range, tables, progress)
    kept = search.run(nodes, always_float(nodes))
    (tmp / search.file(len(kept))).replace(tmp / ONNX_INT8_FILE)
    search.clean()
    report(progress, "verify int8", 0, None)
    check = _judge(
        tmp / ONNX_INT8_FILE, ONNX_INT8_FILE, "onnx-int8", reference, config,
        _int8_settings(reduce_range),
    )  # fmt: skip
    kept_names = set(always_float(nodes)) | {k.name for k in kept}
    quantized = sum(1 for n in nodes if n.quantizable and n.name not in kept_names)
    embeddings = [n for n in nodes if n.role == "word-embeddings"]
    quantization = Quantization(
        per_channel=config.per_channel,
        reduce_range=reduce_range,
        reduce_range_reason=reason,
        float_nodes=len(nodes) - quantized,
        quantized_nodes=quantized,
        kept_float=kept,
        trials={f"{k} in float": agreement for k, agreement in sorted(search.trials.items())},
        word_embeddings=(
            "float"
            if not embeddings or any(n.name in kept_names for n in embeddings)
            else "int8, one scale per row"
        ),
        serving=_serving_cpus(reduce_range),
    )
    return check, quantization


class _FloatSearch:
    """Find the fewest weight nodes to keep in float, in order of simulated damage, for which
    ONNX Runtime's int8 file meets the gate on the selection texts (at the batch sizes the file
    is judged at): first all quantized, then
    1, 2, 4, ... of the most damaging nodes in float until one passes, then the smallest
    passing count by bisection."""

    def __init__(
        self,
        config: ExportConfig,
        plain: Path,
        tmp: Path,
        choose: VerifyText,
        torch_model: TorchPredictor,
        reduce_range: bool,
        tables: list[str],
        progress: ProgressCallback | None,
    ) -> None:
        self.config, self.plain, self.tmp, self.choose = config, plain, tmp, choose
        self.torch_model, self.reduce_range, self.progress = torch_model, reduce_range, progress
        self.tables = tables  # word-embedding lookups: int8 per row unless kept in float
        # the batch sizes the chosen file will be judged at: batch 1 rounds each text's
        # activations with its own scale, and flips texts that batch 32 does not
        self.sizes = sorted({1, config.batch_size})
        self.reference = {
            size: torch_model.logits(choose.texts, size, config.max_length) for size in self.sizes
        }
        self.labels = _label_ids(choose, torch_model) if torch_model.head != TOKEN else None
        self.words = _word_positions(choose, torch_model, config.max_length)
        self.trials: dict[int, float] = {}
        self.passed: dict[int, bool] = {}

    def file(self, count: int) -> str:
        return f"model.int8-{count}.onnx"

    def run(self, nodes: Sequence[Any], base: list[str]) -> list[KeptFloat]:
        report(self.progress, "quantize int8", 0, None)
        if self._trial(0, base):
            return []
        report(self.progress, "rank nodes for int8", 0, None)
        from kdcli.runtime.int8_sensitivity import rank_nodes

        ranked = rank_nodes(
            self.torch_model,
            [n for n in nodes if n.quantizable],
            self.choose.texts,
            self.config.batch_size,
            self.config.max_length,
            self.reduce_range,
            self.config.per_channel,
        )

        def keep(count: int) -> list[str]:
            return base + [s.name for s in ranked[:count]]

        failing, passing, count = 0, None, 1
        while count <= len(ranked):
            if self._trial(count, keep(count)):
                passing = count
                break
            failing = count
            count = len(ranked) if count * 2 > len(ranked) and count < len(ranked) else count * 2
        if passing is None:  # nothing passes: keep the best file tried, to be judged and failed
            best = max(self.trials, key=lambda k: (self.trials[k], -k))
            return [_kept(s) for s in ranked[:best]]
        while passing - failing > 1:
            middle = (passing + failing) // 2
            if self._trial(middle, keep(middle)):
                passing = middle
            else:
                failing = middle
        return [_kept(s) for s in ranked[:passing]]

    def _trial(self, count: int, keep_float: list[str]) -> bool:
        from kdcli.runtime.onnx_graph import quantize

        if count in self.passed:
            return self.passed[count]
        target = self.tmp / self.file(count)
        quantize(
            self.plain,
            target,
            keep_float,
            self.config.per_channel,
            self.reduce_range,
            row_tables=[name for name in self.tables if name not in keep_float],
        )
        predictor = OnnxPredictor(
            target, threads=self.config.threads, settings=_int8_settings(self.reduce_range)
        )
        outputs = {
            size: predictor.logits(self.choose.texts, size, self.config.max_length)
            for size in self.sizes
        }
        check = compare(
            target.name,
            "onnx-int8",
            outputs,
            self.reference,
            self.choose.languages,
            self.config.gate,
            self.labels,
            self.words,
        )
        self.trials[count] = check.agreement
        self.passed[count] = check.passed
        self._drop_unneeded()
        report(self.progress, "quantize int8", len(self.trials), None)
        return check.passed

    def _drop_unneeded(self) -> None:
        """Keep on disk only the file the search may still choose: the smallest passing count,
        or while none passes, the best agreement (a large model's files are hundreds of MB)."""
        passing = [k for k, ok in self.passed.items() if ok]
        best = min(passing) if passing else max(self.trials, key=lambda k: (self.trials[k], -k))
        for count in self.trials:
            if count != best:
                (self.tmp / self.file(count)).unlink(missing_ok=True)

    def clean(self) -> None:
        for path in self.tmp.glob("model.int8-*.onnx"):
            path.unlink()


def _kept(sensitivity: Any) -> KeptFloat:
    return KeptFloat(
        sensitivity.name,
        sensitivity.module,
        sensitivity.role,
        sensitivity.layer,
        sensitivity.flips,
        sensitivity.kl,
    )


def _int8_settings(reduce_range: bool) -> OrtSettings:
    """Sessions for an int8 file being made: 7-bit weights cannot saturate, so they keep the fast
    u8*s8 kernels (the files hold no kdcli.json yet to say so); 8-bit ones run as kdcli serves
    them, on exact kernels where the CPU could saturate (`OrtSettings.exact_int8`)."""
    return OrtSettings(exact_int8=not reduce_range)


def _serving_cpus(reduce_range: bool) -> str:
    if reduce_range:
        return "any CPU: 7-bit weights never saturate int8 products"
    return (
        "x86 with VNNI (AVX512-VNNI, AVX-VNNI, AMX) and ARM; on x86 without VNNI (AVX2 only) "
        "8-bit weight products can saturate"
    )


def _serving_notes(quantization: Quantization, config: ExportConfig) -> list[str]:
    """A file with full 8-bit weights is exact only where int8 products do not saturate."""
    if quantization.reduce_range:
        return []
    return [
        "int8 weights use the full 8 bits (reduce_range off: "
        f"{quantization.reduce_range_reason}): exact on x86 with VNNI and on ARM, while x86 "
        "CPUs without VNNI (AVX2 only) can saturate their int8 products; kdcli runs the file "
        f"there on {EXACT_INT8_KERNELS}: serve it there with that option, or export with "
        "--reduce-range"
    ]


def _unseen_languages(
    torch_model: TorchPredictor,
    text: VerifyText,
    record: dict[str, Any] | None,
    max_length: int,
) -> list[str]:
    """Languages outside the model's training data (kdcli.json) or its vocabulary (<unk> text)."""
    return sorted(_unseen_reasons(torch_model, text, record, max_length))


def _unseen_reasons(
    torch_model: TorchPredictor,
    text: VerifyText,
    record: dict[str, Any] | None,
    max_length: int,
) -> dict[str, str]:
    """Why each unseen language is unseen: not in the training data, or mostly unknown tokens
    (a language it was trained on can still be one its tokenizer cannot read: zh-CN with an
    English WordPiece vocabulary)."""
    trained = _trained_languages(record)
    reasons = {
        lang: "not in its training data"
        for lang in text.languages
        if trained is not None and lang not in trained
    }
    tokenizer = torch_model.tokenizer
    unk = tokenizer.unk_token_id
    if unk is not None:
        encoded = tokenizer(
            text.texts, add_special_tokens=False, truncation=True, max_length=max_length
        )["input_ids"]
        totals: dict[str, list[int]] = {}
        for ids, language in zip(encoded, text.languages, strict=True):
            counts = totals.setdefault(language, [0, 0])
            counts[0] += sum(1 for i in ids if i == unk)
            counts[1] += len(ids)
        for lang, (unks, n) in totals.items():
            if n and unks / n > UNSEEN_UNK_RATE:
                reasons[lang] = f"{unks / n:.0%} {tokenizer.unk_token} tokens"
    return dict(sorted(reasons.items()))


def _unseen_note(reasons: dict[str, str]) -> list[str]:
    if not reasons:
        return []
    shown = "; ".join(f"{lang}: {why}" for lang, why in reasons.items())
    count = len(reasons)
    return [
        f"the verification text includes {count} language{'s' if count > 1 else ''} this model "
        f"has not seen ({shown}): they are verified all the same, but agreement there says "
        "nothing about accuracy"
    ]


def _trained_languages(record: dict[str, Any] | None) -> set[str] | None:
    """The languages of the newest training stage in the model's lineage, if kdcli made it."""
    from kdcli.files.provenance import entry_field

    for entry in lineage_entries(record):
        languages = entry_field(entry, "data", "train_languages")
        if isinstance(languages, list) and languages:
            return {str(lang) for lang in languages}
    return None


def _latency(
    config: ExportConfig,
    torch_model: TorchPredictor,
    tmp: Path,
    text: VerifyText,
    progress: ProgressCallback | None,
    seven_bit: bool,
) -> dict[str, Latency]:
    """Batch 1 and batch 32 on the verification text, PyTorch and every exported file."""
    report(progress, "measure latency", 0, None)
    predictors: list[tuple[str, Predictor]] = [
        ("pytorch", torch_model),
        ("onnx", OnnxPredictor(tmp / ONNX_FILE, config.threads)),
    ]
    if (tmp / ONNX_INT8_FILE).is_file():
        int8 = OnnxPredictor(tmp / ONNX_INT8_FILE, config.threads, _int8_settings(seven_bit))
        predictors.append(("onnx-int8", int8))
    # interleaved rounds: a machine that gets busier slows all three alike
    return measure_latency(dict(predictors), text.texts, 32, config.max_length)


def _record(config: ExportConfig, ref: ModelRef, result: ExportResult) -> dict[str, Any]:
    files = weight_files(ref, config.allow_pickle)
    verification = asdict(result.verification)
    return make_record(
        "export",
        config.settings(),
        source={**ref.describe(Path(config.out)), "sha256": content_hash(files)},
        model_type=result.model_type,
        head=result.head,
        files={ONNX_FILE: result.fp32_bytes}
        | ({ONNX_INT8_FILE: result.int8_bytes} if result.int8_bytes else {}),
        inputs=result.inputs,
        exporter="torch.onnx.export(dynamo=True)",
        fusions=result.fusions,
        quantization=asdict(result.quantization) if result.quantization else None,
        verification=verification,
        onnxruntime_version=result.onnxruntime_version,
        passed=result.passed,
        notes=result.notes,
        served=asdict(result.served) if result.served else None,
    )


def _failure_message(config: ExportConfig, result: ExportResult) -> str:
    """What failed, both files' accuracy where the text has labels, and what the user can do."""
    verification = result.verification
    failed = [c for c in (verification.fp32, verification.int8) if c is not None and not c.passed]
    parts = [f"{_FILE_WORDS[c.kind]} {_mark_settings(c.failure or '')}" for c in failed]
    lines = [
        f"export verification failed: {'; '.join(parts)} on {verification.texts} texts "
        f"({verification.source})."
    ]
    int8 = verification.int8
    if int8 is not None and not int8.passed and int8.nonfinite == 0:
        if int8.accuracy is not None:
            lines.append(
                f"Accuracy on these texts' labels: PyTorch {int8.accuracy.pytorch:.1%}, "
                f"int8 {int8.accuracy.export:.1%}."
            )
        else:
            lines.append(
                f"These texts have no labels, so accuracy was not compared: "
                f"{option_ref('verify_data')} DATA with labels judges int8 by accuracy too."
            )
        lines.append(
            "Options: serve model.onnx (fp32, verified); verify on the data you serve with "
            f"{option_ref('verify_data')} DATA; accept this agreement with "
            f"{option_ref('min_agreement')} {max(int8.agreement - 0.005, 0.0):.3f}; train "
            "longer (int8 flips predictions whose top two labels are nearly tied)."
        )
    lines.append(f"{result.out} was written and marked failed in kdcli.json")
    return " ".join(lines)


_FILE_WORDS = {"onnx": "fp32", "onnx-int8": "int8"}
_SETTINGS = re.compile(r"\b(atol|min_agreement|max_accuracy_drop)\b")


def _mark_settings(failure: str) -> str:
    """A check's failure names its thresholds as the library does (kdcli.json keeps it so);
    marked here, the CLI shows them as its options."""
    return _SETTINGS.sub(lambda found: option_ref(found.group(1)), failure)


def _ort_class(head: str) -> str:
    if head == TOKEN:
        return "ORTModelForTokenClassification"
    return "ORTModelForSequenceClassification"


def _model_card(out_dir: Path, result: ExportResult, record: dict[str, Any]) -> None:
    """How to serve the export with onnxruntime, and what verification found."""
    from kdcli.core.formatting import size_text
    from kdcli.files.model_card import ONNX_USAGE, dev_results, public_name, write_model_card
    from kdcli.runtime.predictor import ONNX_FILE, ONNX_INT8_FILE

    served = ONNX_INT8_FILE if result.int8_bytes else ONNX_FILE
    checks = [result.verification.fp32, result.verification.int8]
    source = public_name(result.source)
    facts: list[tuple[str, object]] = [("source", f"`{source}`")]
    facts += [(f"`{ONNX_FILE}` (fp32)", size_text(result.fp32_bytes))]
    if result.int8_bytes:
        facts += [(f"`{ONNX_INT8_FILE}` (dynamic int8)", size_text(result.int8_bytes))]
    facts += [
        (
            f"verified: `{check.file}`",
            f"max abs Δlogit {check.max_abs_diff:.2g}, {check.agreement_text()} "
            f"({'passed' if check.passed else 'FAILED'})",
        )
        for check in checks
        if check is not None
    ]
    if result.served is not None:
        facts += [("`--quantize auto`", f"serves `{result.served.file}`: {result.served.reason}")]
    facts += [
        (
            "verification text",
            f"{public_name(result.verification.source)}, "
            f"{result.verification.texts} texts, {len(result.verification.languages)} languages",
        )
    ]
    summary = (
        f"An ONNX export of `{source}` made by `kdcli export`, checked against the PyTorch "
        "model on real multilingual text. It loads with onnxruntime directly (below), with "
        f"optimum's `{_ort_class(result.head)}`, and with `kdcli eval`."
    )
    usage = [line.replace(ONNX_INT8_FILE, served) for line in ONNX_USAGE]
    write_model_card(
        out_dir,
        f"kdcli ONNX export of {source}",
        summary,
        facts,
        result.source,
        usage=usage,
        library="onnx",
        record=record,
        results=dev_results(record),
        results_caption="per language on the dev split, of the PyTorch model exported",
    )
