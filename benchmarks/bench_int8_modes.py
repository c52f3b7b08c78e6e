"""The int8 alternatives side by side on one classifier, on this CPU: which to ship where.

Contenders, all from the same traced `model.onnx` that `kdcli export` writes:

- ONNX Runtime fp32 (`model.onnx`) and kdcli's dynamic int8 (`model_quantized.onnx`, with its
  float search);
- the word-embedding table alone quantized, every MatMul in float: as ONNX Runtime stores it
  (uint8, one scale for the table) and as kdcli does (int8, one scale per row);
- every MatMul int8 with no float search, in three weight formats: signed 7-bit (kdcli's choice on
  x86 without VNNI), signed 8-bit (which can saturate there) and unsigned 8-bit with a zero point
  (ONNX Runtime's u8*u8 kernels, which cannot): does the weight format decide agreement?
- every MatMul int8 after SmoothQuant's migration (`--alpha`): activation outliers moved into
  the weights first;
- ONNX Runtime static int8: QDQ, activations calibrated (MinMax) on the dev split, weights per
  channel, `reduce_range` as kdcli chooses it for this CPU;
- ONNX Runtime weight-only int8 and int4 (`MatMulNBits`, block 32, accuracy level 4: int8 compute
  where the CPU has it), activations in float;
- OpenVINO fp32 and OpenVINO + NNCF static int8 (`nncf.quantize`, `ModelType.TRANSFORMER`, the
  same calibration texts), with the `openvino` and `nncf` packages directly (optional:
  `pip install openvino nncf`; skipped with a message when absent).

For each: size, top-1 agreement with PyTorch (on every text, and on the texts where PyTorch's
top two logits are at least `verification.NEAR_TIE` apart) and accuracy on the test split
(sampled per language), and forward-pass latency at batch 1 x 32 tokens and batch 32 x 64
tokens, timed in interleaved rounds after the machine is quiet (`bench_export.wait_for_quiet`;
the state is printed with the figures, with the CPU's ISA).

    python benchmarks/bench_int8_modes.py --model DIR --data DATA [--workdir DIR] [--threads N]
                                          [--samples 20] [--rounds 5] [--max-wait 600]
                                          [--modes dynamic,table,formats,smooth,static,
                                                   weight-only,openvino] [--alpha 0.8]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
import bench_export

from kdcli.evaluation.verification import NEAR_TIE, clear_of_ties

MODES = ("dynamic", "table", "formats", "smooth", "static", "weight-only", "openvino")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="a PyTorch sequence classifier")
    parser.add_argument("--data", required=True, help="labelled data (test: judge, dev: calibrate)")
    parser.add_argument("--workdir", help="keep the exports here (default: a temp dir)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--samples", type=int, default=20, help="test texts per language")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--max-wait", type=float, default=600.0)
    parser.add_argument("--modes", default=",".join(MODES), help="which contenders besides fp32")
    parser.add_argument("--alpha", type=float, default=0.8, help="SmoothQuant's migration strength")
    args = parser.parse_args()
    unknown = set(args.modes.split(",")) - set(MODES)
    if unknown:
        parser.error(f"--modes: unknown {sorted(unknown)}; choose from {', '.join(MODES)}")
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="kdcli-bench-int8-"))
    workdir.mkdir(parents=True, exist_ok=True)
    run(args, workdir)


def run(args: argparse.Namespace, workdir: Path) -> None:
    import numpy as np
    import transformers

    from kdcli.data.splits import DataConfig, load_split, sample_per_language
    from kdcli.runtime.onnx_graph import cpu_int8
    from kdcli.runtime.predictor import ONNX_FILE, ONNX_INT8_FILE, open_predictor
    from kdcli.steps.export import ExportConfig, export

    transformers.utils.logging.disable_progress_bar()
    data = DataConfig(args.data)
    test = sample_per_language(load_split(data, "test"), args.samples, 0)
    dev = sample_per_language(load_split(data, "dev"), 8, 0)
    out = workdir / "export"
    if not (out / ONNX_INT8_FILE).is_file():
        started = time.perf_counter()
        config = ExportConfig(
            args.model, out=out, quantize="int8", verify_data=args.data, latency=False,
            overwrite=True, threads=args.threads,
        )  # fmt: skip
        try:
            export(config)
        except Exception as err:  # a failed verification still writes the files to compare
            print(f"kdcli export: {err}", flush=True)
        print(f"kdcli export in {time.perf_counter() - started:.0f} s", flush=True)
    torch_model = open_predictor(args.model, threads=args.threads)
    reduce_range = cpu_int8().reduce_range
    modes = args.modes.split(",")
    files = {"ORT fp32": out / ONNX_FILE}
    if "dynamic" in modes:
        files["ORT dynamic int8 (kdcli)"] = out / ONNX_INT8_FILE
    if "table" in modes:
        files["table only: uint8, one scale (ORT)"] = table_only(out, torch_model, False, workdir)
        files["table only: int8 per row (kdcli)"] = table_only(out, torch_model, True, workdir)
    if "formats" in modes:
        for label, rr, unsigned in (
            ("signed 7-bit", True, False),
            ("signed 8-bit", False, False),
            ("unsigned 8-bit", False, True),
        ):
            files[f"every MatMul int8, {label} weights"] = every_matmul(
                out, torch_model, rr, unsigned, workdir
            )
    if "smooth" in modes:
        files[f"every MatMul int8, SmoothQuant alpha {args.alpha}"] = smoothed(
            out, torch_model, dev.texts, args.alpha, reduce_range, workdir
        )
    if "static" in modes:
        files["ORT static int8 (QDQ)"] = static_qdq(
            out, torch_model, dev.texts, reduce_range, workdir
        )
    if "weight-only" in modes:
        files["ORT weight-only int8"] = weight_only(out / ONNX_FILE, 8, workdir)
        files["ORT weight-only int4"] = weight_only(out / ONNX_FILE, 4, workdir)
    backends: dict[str, Any] = {"PyTorch fp32": torch_model}
    backends |= {name: open_predictor(path, threads=args.threads) for name, path in files.items()}
    if "openvino" in modes:
        backends |= openvino_backends(out, torch_model, dev.texts, args.threads, workdir)

    reference = torch_model.logits(test.texts)
    clear = clear_of_ties(reference)
    gold = np.array([torch_model.model.config.label2id[label] for label in test.labels])
    quality = {}
    for name, backend in backends.items():
        logits = backend.logits(test.texts)
        predicted = np.argmax(np.nan_to_num(logits, nan=-np.inf), -1)
        agree = predicted == reference.argmax(-1)
        quality[name] = (
            float(agree.mean()),
            float(agree[clear].mean()),
            float((predicted == gold).mean()),
            _worst_language(predicted, reference.argmax(-1), test.languages),
        )
    quiet = bench_export.wait_for_quiet(args.max_wait)
    timings = bench_export.time_backends(backends, args.rounds, len(torch_model.tokenizer))
    _report(args, backends, quality, timings, quiet, float(clear.mean()))


def _worst_language(predicted: Any, reference: Any, languages: list[str]) -> str:
    scores = {
        lang: float((predicted[rows] == reference[rows]).mean())
        for lang in sorted(set(languages))
        if (rows := [i for i, x in enumerate(languages) if x == lang])
    }
    language = min(scores, key=scores.get)
    return f"{language} {scores[language]:.1%}"


def static_qdq(
    out: Path, torch_model: Any, texts: list[str], reduce_range: bool, workdir: Path
) -> Path:
    """ONNX Runtime static QDQ int8 calibrated on `texts` (MinMax)."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from kdcli.runtime.predictor import ONNX_FILE

    target = workdir / "static" / "model_static.onnx"
    if _made_before(target, out):
        return target
    prepared = workdir / "static-pre.onnx"
    quant_pre_process(str(out / ONNX_FILE), str(prepared), skip_symbolic_shape=True)
    batches = [b.inputs for b in torch_model.encode(texts, 8, 128)]

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter(batches)

        def get_next(self) -> dict | None:
            return next(self.items, None)

    quantize_static(
        str(prepared),
        str(target),
        Reader(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        reduce_range=reduce_range,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        op_types_to_quantize=["MatMul", "Gather"],
    )
    return target


def table_only(out: Path, torch_model: Any, per_row: bool, workdir: Path) -> Path:
    """The word-embedding table quantized, every other weight in float: by kdcli's per-row
    rewrite, or by ONNX Runtime's Gather quantization (one scale for the table)."""
    from kdcli.runtime.onnx_graph import quantize
    from kdcli.runtime.predictor import ONNX_FILE

    target = workdir / f"table-{'rows' if per_row else 'ort'}" / ONNX_FILE
    if _made_before(target, out):
        return target
    nodes = _weight_nodes(out / ONNX_FILE, torch_model)
    table = [n.name for n in nodes if n.role == "word-embeddings"]
    others = [n.name for n in nodes if n.role != "word-embeddings"]
    quantize(out / ONNX_FILE, target, others, True, False, row_tables=table if per_row else ())
    return target


def every_matmul(
    out: Path, torch_model: Any, reduce_range: bool, unsigned: bool, workdir: Path
) -> Path:
    """Every MatMul int8 (per output channel) and the table int8 per row, nothing searched: only
    the head and the small tables stay float, so the weight format alone makes the difference."""
    from kdcli.runtime.onnx_graph import always_float, quantize
    from kdcli.runtime.predictor import ONNX_FILE

    name = f"every-{'u8' if unsigned else 's8'}{'-7bit' if reduce_range else ''}"
    target = workdir / name / ONNX_FILE
    if _made_before(target, out):
        return target
    nodes = _weight_nodes(out / ONNX_FILE, torch_model)
    tables = [n.name for n in nodes if n.role == "word-embeddings"]
    quantize(out / ONNX_FILE, target, always_float(nodes), True, reduce_range, tables, unsigned)
    return target


def smoothed(
    out: Path, torch_model: Any, texts: list[str], alpha: float, reduce_range: bool, workdir: Path
) -> Path:
    """SmoothQuant's migration (Xiao et al., 2023) before `every_matmul`: each quantized MatMul's
    input channel j is divided by s_j = max|x_j|^alpha / max|w_j|^(1 - alpha), measured on
    `texts`, and the weight's row j multiplied by s_j, so the fp32 function is unchanged and
    outlier channels move into the weights. In a post-LayerNorm encoder the LayerNorm's output
    is also the residual stream, so the division is a Mul node before the MatMuls that share an
    input rather than folded into the LayerNorm."""
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    from kdcli.runtime.onnx_graph import always_float, quantize
    from kdcli.runtime.predictor import ONNX_FILE

    target = workdir / f"smooth-{alpha}" / ONNX_FILE
    if _made_before(target, out):
        return target
    nodes = _weight_nodes(out / ONNX_FILE, torch_model)
    model = onnx.load(str(out / ONNX_FILE))
    graph = model.graph
    weights = {init.name: init for init in graph.initializer}
    names = {n.name for n in nodes if n.quantizable and n.op_type == "MatMul"}
    groups: dict[str, list[Any]] = {}
    for node in graph.node:
        if node.name in names:
            groups.setdefault(node.input[0], []).append(node)
    peaks = _input_peaks(out / ONNX_FILE, list(groups), torch_model, texts)
    for stem, consumers in groups.items():
        arrays = [numpy_helper.to_array(weights[node.input[1]]) for node in consumers]
        w_peak = np.max([np.abs(w).max(axis=1) for w in arrays], axis=0)
        scale = peaks[stem] ** alpha / np.maximum(w_peak, 1e-5) ** (1 - alpha)
        scale = np.clip(scale, 1e-5, None).astype(np.float32)
        for node, array in zip(consumers, arrays, strict=True):
            weights[node.input[1]].CopyFrom(
                numpy_helper.from_array(array * scale[:, None], node.input[1])
            )
            node.input[0] = f"{stem}.smoothed"
        graph.initializer.append(numpy_helper.from_array(1 / scale, f"{stem}.inverse_scale"))
        first = min(i for i, node in enumerate(graph.node) if node in consumers)
        divide = helper.make_node(
            "Mul", [stem, f"{stem}.inverse_scale"], [f"{stem}.smoothed"], f"{stem}.smooth"
        )
        graph.node.insert(first, divide)
    source = workdir / f"smooth-{alpha}-fp32.onnx"
    onnx.save(model, str(source))
    tables = [n.name for n in nodes if n.role == "word-embeddings"]
    quantize(source, target, always_float(nodes), True, reduce_range, tables)
    return target


def _input_peaks(
    source: Path, tensors: list[str], torch_model: Any, texts: list[str]
) -> dict[str, Any]:
    """Each tensor's largest |value| per channel over `texts`, run one at a time (no padding)."""
    import numpy as np
    import onnx
    import onnxruntime as ort
    from onnx import helper

    model = onnx.load(str(source))
    for name in tensors:
        model.graph.output.append(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(model.SerializeToString(), options)
    peaks = dict.fromkeys(tensors, 0.0)
    for batch in torch_model.encode(texts, 1, 128):
        for name, value in zip(tensors, session.run(tensors, batch.inputs), strict=True):
            peaks[name] = np.maximum(peaks[name], np.abs(value).reshape(-1, value.shape[-1]).max(0))
    return peaks


def _weight_nodes(onnx_file: Path, torch_model: Any) -> list[Any]:
    from kdcli.runtime.onnx_graph import weight_nodes

    config = torch_model.model.config
    return weight_nodes(
        onnx_file,
        torch_model.model.base_model_prefix,
        int(getattr(config, "intermediate_size", 0) or 0),
        int(config.vocab_size),
    )


def weight_only(source: Path, bits: int, workdir: Path) -> Path:
    """ONNX Runtime MatMulNBits: MatMul weights in `bits` bits (block 32), activations float."""
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import (
        DefaultWeightOnlyQuantConfig,
        MatMulNBitsQuantizer,
    )

    target = workdir / f"nbits{bits}" / "model_nbits.onnx"
    if _made_before(target, source.parent):
        return target
    config = DefaultWeightOnlyQuantConfig(
        block_size=32, is_symmetric=True, accuracy_level=4, bits=bits
    )
    quantizer = MatMulNBitsQuantizer(onnx.load(str(source)), algo_config=config)
    quantizer.process()
    quantizer.model.save_model_to_file(str(target), use_external_data_format=False)
    return target


def _made_before(target: Path, source: Path) -> bool:
    """Whether an earlier run left `target`; if not, its folder is made, holding `source`'s
    config and tokenizer files (so a predictor can open the file there)."""
    if target.is_file():
        return True
    target.parent.mkdir(parents=True, exist_ok=True)
    _copy_model_files(source, target.parent)
    return False


def _copy_model_files(source: Path, target: Path) -> None:
    import shutil

    for path in source.iterdir():
        if path.suffix in (".json", ".txt", ".model") and path.name != "kdcli.json":
            shutil.copy(path, target / path.name)


class OpenVinoPredictor:
    """An OpenVINO compiled model behind kdcli's Predictor interface (forward and logits)."""

    def __init__(self, model: Any, like: Any, threads: int) -> None:
        import openvino as ov

        core = ov.Core()
        self.compiled = core.compile_model(
            model, "CPU", {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY"}
        )
        self.names = [i.get_any_name() for i in self.compiled.inputs]
        self.like = like

    def forward(self, inputs: dict) -> Any:
        return self.compiled({n: inputs[n] for n in self.names if n in inputs})[0]

    def logits(self, texts: list[str]) -> Any:
        import numpy as np

        batches = self.like.encode(texts, 32, 128)
        result = np.zeros((len(texts), len(self.like.id2label)), dtype=np.float32)
        for batch in batches:
            result[batch.index] = self.forward(batch.inputs)
        return result


def openvino_backends(
    out: Path, torch_model: Any, texts: list[str], threads: int, workdir: Path
) -> dict[str, Any]:
    from kdcli.runtime.predictor import ONNX_FILE

    try:
        import nncf
        import openvino as ov
    except ImportError:
        print("openvino/nncf not installed (pip install openvino nncf): skipped", flush=True)
        return {}
    model = ov.convert_model(str(out / ONNX_FILE))
    batches = [b.inputs for b in torch_model.encode(texts, 8, 128)]
    names = [i.get_any_name() for i in model.inputs]
    dataset = nncf.Dataset(batches, lambda b: {n: b[n] for n in names if n in b})
    quantized = nncf.quantize(model, dataset, model_type=nncf.ModelType.TRANSFORMER)
    ov.save_model(quantized, str(workdir / "openvino-int8.xml"))
    backends = {
        "OpenVINO fp32": OpenVinoPredictor(model, torch_model, threads),
        "OpenVINO + NNCF static int8": OpenVinoPredictor(quantized, torch_model, threads),
    }
    for name, path in (("OpenVINO fp32", None), ("OpenVINO + NNCF static int8", "openvino-int8")):
        backends[name].size_bytes = (
            _size(workdir / f"{path}.bin") if path else (out / ONNX_FILE).stat().st_size
        )
    return backends


def _size(path: Path) -> int:
    return path.stat().st_size if path.is_file() else 0


def _report(
    args: Any, backends: Any, quality: Any, timings: Any, quiet: Any, clear_share: float
) -> None:
    import onnxruntime
    import torch

    from kdcli.core.machine import cpu_summary
    from kdcli.runtime.onnx_graph import cpu_int8

    print()
    print(f"CPU: {cpu_summary()} ({cpu_int8().reason})")
    print(
        f"onnxruntime {onnxruntime.__version__}, torch {torch.__version__}, {args.threads} threads"
    )
    print(
        f"machine state: load {quiet.load:.2f}, steal {quiet.steal_percent:.1f}%, calibration "
        f"spread {quiet.calibration_spread:.2f} ({'quiet' if quiet.quiet else 'BUSY'}; waited "
        f"{quiet.waited_s:.0f} s)"
    )
    base = timings["PyTorch fp32"]
    print(
        f"| backend | size | agreement | agreement, margin >= {NEAR_TIE} "
        f"({clear_share:.0%} of texts) | worst language | accuracy | batch 1 x 32 | batch 32 x 64 |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name, backend in backends.items():
        agreement, clear, accuracy, worst = quality[name]
        size = getattr(backend, "size_bytes", 0)
        t1, t32 = timings[name][1], timings[name][32]
        print(
            f"| {name} | {size / 1e6:.1f} MB | {agreement:.1%} | {clear:.1%} | {worst} | "
            f"{accuracy:.1%} | "
            f"{t1:.2f} ms ({base[1] / t1:.1f}x) | {t32:.1f} ms ({base[32] / t32:.1f}x) |"
        )
    print(f"median of {args.rounds} interleaved rounds; x = speed-up over PyTorch fp32")


if __name__ == "__main__":
    main()
