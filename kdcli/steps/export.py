"""`kdcli export`: ONNX (fp32, optionally int8) for CPU serving, verified on real text.

The model is traced with `torch.onnx.export(dynamo=True)` (dynamic batch and sequence axes),
optionally fused for ONNX Runtime, and optionally quantized to dynamic int8. Then the PyTorch model
and every exported file run on the same real multilingual sentences (`--verify-data`, or the
built-in sample) through the same batches: fp32 must match within `atol`, int8 must agree on the
top-1 label for at least `min_agreement` of them. A token classifier is checked per word: its
texts are split into words (the data's, or the built-in sentences split as MASSIVE splits
them), and agreement is the share of words whose tag (read from the word's token) is the same.
A failed check still writes the output (marked failed in kdcli.json) and raises
`CheckFailedError` so it can be inspected.

The output keeps the layout optimum's `ORTModelForSequenceClassification.from_pretrained` reads:
`model.onnx`, `model_quantized.onnx`, config.json and the tokenizer files.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
from kdcli.data.languages import mean_per_language, sample_per_language
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
    lineage_entries,
    make_record,
    read_provenance,
    with_history,
    write_provenance,
)
from kdcli.runtime.onnx_graph import FLOAT_TIERS, cpu_int8, require_export_stack
from kdcli.runtime.predictor import (
    ONNX_FILE,
    ONNX_INT8_FILE,
    Latency,
    OnnxPredictor,
    Predictor,
    TorchPredictor,
    measure_latency,
)
from kdcli.surgery.architectures import Architecture, family_of, supported_model_types

if TYPE_CHECKING:
    import numpy as np

QUANTIZE = ("none", "int8")
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


@dataclass(frozen=True)
class Check:
    """One exported file against PyTorch on the verification text."""

    file: str
    kind: str
    max_abs_diff: float
    mean_abs_diff: float
    agreement: float
    per_language: dict[str, float]  # top-1 agreement per language
    criterion: str  # "max_abs_diff <= atol" or "agreement >= min_agreement"
    passed: bool


@dataclass(frozen=True)
class Verification:
    source: str  # "built-in sentences" or the --verify-data spec
    texts: int
    languages: list[str]
    unseen_languages: list[str]
    fp32: Check
    int8: Check | None
    passed: bool


@dataclass(frozen=True)
class Quantization:
    per_channel: bool
    reduce_range: bool
    reduce_range_reason: str
    float_tier: str  # which FLOAT_TIERS entry was kept
    float_nodes: int
    quantized_nodes: int
    tiers_tried: dict[str, float]  # tier -> top-1 agreement


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


@dataclass(frozen=True)
class VerifyText:
    """Verification texts; for a token classifier also their words (`texts` are then the
    words joined by spaces, which is what the model reads)."""

    texts: list[str]
    languages: list[str]
    source: str
    words: list[list[str]] | None = None


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
    text = _verify_text(config, _task(config, model_config, ref.name))
    report(progress, "load model", 0, None)
    torch_model = TorchPredictor(ref.path, threads=config.threads, options=options)

    with atomic_output_dir(Path(config.out), config.overwrite) as tmp:
        result = _build(config, ref, model_config, arch, torch_model, text, tmp, progress)
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


def _verify_text(config: ExportConfig, task: str) -> VerifyText:
    token = task == "token-classification"
    if config.verify_data is None:
        text = _builtin_sentences()
        if not token:
            return text
        from kdcli.data.slots import split_words

        words = [split_words(t, lang) for t, lang in zip(text.texts, text.languages, strict=True)]
        return _with_words(text, words)
    from kdcli.data.splits import DataConfig, load_split

    data = DataConfig(
        data=config.verify_data,
        languages=check_names("languages", config.languages),
        task=task,
        tag_scheme=config.tag_scheme,
    )
    examples = load_split(data, split="test", option="verify_data")
    keep = sample_per_language(examples.languages, config.verify_samples, config.seed)
    text = VerifyText(
        [examples.texts[i] for i in keep],
        [examples.languages[i] for i in keep],
        config.verify_data,
    )
    if examples.words is None:
        return text
    return _with_words(text, [examples.words[i] for i in keep])


def _with_words(text: VerifyText, words: list[list[str]]) -> VerifyText:
    from kdcli.data.batching import words_text

    keep = [i for i, row in enumerate(words) if row]
    rows = [words[i] for i in keep]
    return VerifyText(
        [words_text(row)[0] for row in rows],
        [text.languages[i] for i in keep],
        text.source,
        rows,
    )


def _builtin_sentences() -> VerifyText:
    path = resources.files("kdcli") / "resources" / BUILTIN_SENTENCES
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    return VerifyText(
        [row["text"] for row in rows], [row["language"] for row in rows], "built-in sentences"
    )


def _build(
    config: ExportConfig,
    ref: ModelRef,
    model_config: dict[str, Any],
    arch: Architecture,
    torch_model: TorchPredictor,
    text: VerifyText,
    tmp: Path,
    progress: ProgressCallback | None,
) -> ExportResult:
    import onnxruntime

    from kdcli.runtime.onnx_graph import export_graph

    report(progress, "export ONNX", 0, None)
    sample = _sample_inputs(torch_model, text.texts, config.max_length)
    plain = tmp / "model.plain.onnx"
    export_graph(torch_model.model, sample, plain, config.opset, str(model_config["model_type"]))
    shutil.copyfile(ref.path / "config.json", tmp / "config.json")
    copy_tokenizer_files(ref, tmp)

    report(progress, "verify", 0, None)
    reference = Reference(
        torch_model.logits(text.texts, config.batch_size, config.max_length),
        torch_model.word_tags(text.words, config.batch_size, config.max_length)
        if text.words is not None
        else None,
    )
    fp32, fusions, notes = _fp32(config, plain, tmp, reference, text)
    traced = plain if plain.exists() else tmp / ONNX_FILE
    int8, quantization = None, None
    if config.quantize == "int8":
        report(progress, "quantize int8", 0, None)
        int8, quantization = _int8(config, traced, tmp, reference, text, model_config, arch)
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
        fp32.passed and (int8 is None or int8.passed),
    )
    latency, machine, warning = {}, None, None
    if config.latency:
        load = load_average()
        latency = _latency(config, torch_model, tmp, text, progress)
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
        int8_bytes=(tmp / ONNX_INT8_FILE).stat().st_size if int8 else None,
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
    )


@dataclass(frozen=True)
class Reference:
    """What the PyTorch model said on the verification text: logits, and for a token
    classifier the tag of every word."""

    logits: np.ndarray
    tags: list[list[str]] | None = None


def _sample_inputs(torch_model: TorchPredictor, texts: list[str], max_length: int) -> dict:
    """A batch of real text to trace with: two or more rows, so no axis is fixed to 1."""
    import torch

    batch = torch_model.encode((texts * 2)[:4], batch_size=4, max_length=max_length)[0]
    return {name: torch.from_numpy(batch.inputs[name]) for name in torch_model.input_names}


def _fp32(
    config: ExportConfig,
    plain: Path,
    tmp: Path,
    reference: Reference,
    text: VerifyText,
) -> tuple[Check, dict[str, int], list[str]]:
    """model.onnx: the fused graph when asked for and it keeps parity, else the traced one.

    Without --optimize the traced graph is moved to model.onnx (large models: no second copy).
    """
    from kdcli.runtime.onnx_graph import fuse

    target = tmp / ONNX_FILE
    plain_check = _compare(plain, ONNX_FILE, reference, text, config, "fp32")
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
    fused_check = _compare(fused, ONNX_FILE, reference, text, config, "fp32")
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


def _int8(
    config: ExportConfig,
    plain: Path,
    tmp: Path,
    reference: Reference,
    text: VerifyText,
    model_config: dict[str, Any],
    arch: Architecture,
) -> tuple[Check, Quantization]:
    """Quantize, keeping more nodes in float only while int8 disagrees with PyTorch."""
    from kdcli.runtime.onnx_graph import float_nodes, quantize, weight_nodes

    cpu = cpu_int8()
    reduce_range = cpu.reduce_range if config.reduce_range is None else config.reduce_range
    reason = cpu.reason if config.reduce_range is None else "set by --reduce-range"
    nodes = weight_nodes(
        plain,
        arch.prefix,
        int(model_config.get(arch.keys.intermediate, 0)),
        int(model_config.get("vocab_size", 0)),
    )
    target = tmp / ONNX_INT8_FILE
    tried: dict[str, float] = {}
    best: tuple[Check, str, list[str]] | None = None
    for tier in FLOAT_TIERS:
        keep = float_nodes(nodes, tier)
        candidate = tmp / f"model.{tier}.onnx"
        quantize(plain, candidate, keep, config.per_channel, reduce_range)
        check = _compare(candidate, ONNX_INT8_FILE, reference, text, config, "int8")
        tried[tier] = check.agreement
        if best is None or check.agreement > best[0].agreement:
            candidate.replace(target)
            best = (check, tier, keep)
        else:
            candidate.unlink()
        if check.passed:
            break
    assert best is not None  # FLOAT_TIERS is not empty
    check, tier, keep = best
    # ONNX Runtime has no integer Gemm: the nodes it leaves in float count as float here.
    quantized = sum(1 for n in nodes if n.name not in keep and n.op_type != "Gemm")
    quantization = Quantization(
        config.per_channel, reduce_range, reason, tier, len(nodes) - quantized, quantized, tried
    )
    return check, quantization


def _compare(
    onnx_file: Path,
    name: str,
    expected: Reference,
    text: VerifyText,
    config: ExportConfig,
    precision: str,
) -> Check:
    import numpy as np

    predictor = OnnxPredictor(onnx_file, threads=config.threads)
    logits = predictor.logits(text.texts, config.batch_size, config.max_length)
    reference = expected.logits
    diff = np.abs(logits - reference)
    agree = np.argmax(np.nan_to_num(logits, nan=-np.inf), -1) == np.argmax(
        np.nan_to_num(reference, nan=-np.inf), -1
    )
    valid = ~np.isnan(reference).any(-1)  # token classification: real tokens only
    if expected.tags is not None and text.words is not None:  # token classification: per word
        tags = predictor.word_tags(text.words, config.batch_size, config.max_length)
        same = [
            [a == b for a, b in zip(mine, theirs, strict=True)]
            for mine, theirs in zip(tags, expected.tags, strict=True)
        ]
        per_text = [sum(row) / len(row) for row in same]
        agreement = sum(map(sum, same)) / max(1, sum(map(len, same)))
    elif agree.ndim == 1:
        per_text = [float(a) for a in agree]
        agreement = float(agree[valid].mean())
    else:
        per_text = [float(agree[i][valid[i]].mean()) for i in range(len(agree))]
        agreement = float(agree[valid].mean())
    per_language = mean_per_language(per_text, text.languages)
    max_diff = float(np.nanmax(diff))
    if precision == "fp32":
        criterion, passed = "max_abs_diff <= atol", bool(max_diff <= config.atol)
    else:
        criterion = "agreement >= min_agreement"
        passed = agreement >= config.min_agreement
    return Check(
        name,
        "onnx" if precision == "fp32" else "onnx-int8",
        max_diff,
        float(np.nanmean(diff)),
        agreement,
        per_language,
        criterion,
        passed,
    )


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
) -> dict[str, Latency]:
    """Batch 1 and batch 32 on the verification text, PyTorch and every exported file."""
    report(progress, "measure latency", 0, None)
    predictors: list[tuple[str, Predictor]] = [
        ("pytorch", torch_model),
        ("onnx", OnnxPredictor(tmp / ONNX_FILE, config.threads)),
    ]
    if (tmp / ONNX_INT8_FILE).is_file():
        predictors.append(("onnx-int8", OnnxPredictor(tmp / ONNX_INT8_FILE, config.threads)))
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
    )


def _failure_message(config: ExportConfig, result: ExportResult) -> str:
    verification = result.verification
    parts = []
    if not verification.fp32.passed:
        parts.append(
            f"fp32 max |Δlogit| {verification.fp32.max_abs_diff:.3g} > "
            f"{option_ref('atol')} {config.atol:g}"
        )
    if verification.int8 is not None and not verification.int8.passed:
        parts.append(
            f"int8 top-1 agreement {verification.int8.agreement:.2%} < "
            f"{option_ref('min_agreement')} {config.min_agreement:.2%}"
        )
    return (
        f"export verification failed: {'; '.join(parts)} on {verification.texts} texts. "
        f"{result.out} was written and marked failed in kdcli.json"
    )


def _ort_class(head: str) -> str:
    if head == "token-classification":
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
            f"max abs Δlogit {check.max_abs_diff:.2g}, top-1 agreement {check.agreement:.1%} "
            f"({'passed' if check.passed else 'FAILED'})",
        )
        for check in checks
        if check is not None
    ]
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
