"""kdcli shrink vs the naive way, side by side: wall time and peak memory.

The teacher is an XLM-R-base-shaped classifier (12 layers, hidden 768, 250,002-token vocabulary,
~278M parameters, ~1.1 GB of float32 safetensors) with random weights, written tensor by tensor.
Both ways build the same 6-layer student (layers 0,2,4,7,9,11):

- naive: AutoModelForSequenceClassification.from_pretrained(teacher), a student model from its
  config, load_state_dict with renumbered layers, save_pretrained;
- kdcli: `kdcli.steps.shrink`, which streams tensors from the teacher's file into the student's.

Each run is a fresh subprocess (peak RSS = its own ru_maxrss; Linux carries the parent's RSS at
fork into a child's ru_maxrss, so this parent stays small and builds the teacher in a subprocess
too); runs alternate, the file is read once beforehand so both see a warm page cache, and the
medians are compared. Target: kdcli peak memory <= 0.5x naive, and not slower.

    python benchmarks/bench_shrink.py [--workdir DIR] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LAYERS = [0, 2, 4, 7, 9, 11]

NAIVE = """
import json, re, resource, sys, time
start = time.perf_counter()
import torch
from transformers import AutoModelForSequenceClassification
teacher_dir, out, layers = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
teacher = AutoModelForSequenceClassification.from_pretrained(teacher_dir)
config = teacher.config
config.num_hidden_layers = len(layers)
student = AutoModelForSequenceClassification.from_config(config)
position = {t: s for s, t in enumerate(layers)}
state = {}
for name, tensor in teacher.state_dict().items():
    found = re.match(r"(.*\\.layer\\.)(\\d+)(\\..*)", name)
    if found:
        if int(found.group(2)) not in position:
            continue
        name = f"{found.group(1)}{position[int(found.group(2))]}{found.group(3)}"
    state[name] = tensor
student.load_state_dict(state)
student.save_pretrained(out)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"seconds": time.perf_counter() - start, "peak_bytes": peak}))
"""

KDCLI = """
import json, resource, sys, time
start = time.perf_counter()
from kdcli import ShrinkConfig, shrink
teacher_dir, out, layers = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
shrink(ShrinkConfig(teacher_dir, out=out, layers=layers, overwrite=True))
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"seconds": time.perf_counter() - start, "peak_bytes": peak}))
"""


def build_teacher(folder: Path) -> Path:
    """An XLM-R-base-shaped classifier with random weights, without ever holding it in memory."""
    import torch
    from transformers import XLMRobertaConfig, XLMRobertaForSequenceClassification

    from kdcli.files.tensor_stream import SafetensorsWriter, TensorInfo

    config = XLMRobertaConfig(
        vocab_size=250_002,
        hidden_size=768,
        num_hidden_layers=12,
        num_attention_heads=12,
        intermediate_size=3072,
        max_position_embeddings=514,
        type_vocab_size=1,
        num_labels=60,
        pad_token_id=1,
    )
    config.architectures = ["XLMRobertaForSequenceClassification"]
    with torch.device("meta"):
        shapes = {
            k: tuple(v.shape)
            for k, v in XLMRobertaForSequenceClassification(config).state_dict().items()
        }
    folder.mkdir(parents=True, exist_ok=True)
    config.save_pretrained(folder)
    writer = SafetensorsWriter(
        folder / "model.safetensors",
        [TensorInfo(name, "float32", shape) for name, shape in shapes.items()],
    )
    generator = torch.Generator().manual_seed(0)
    for name in writer.order:
        shape = shapes[name]
        rows = shape[0] if shape else 1
        step = max(1, 8_000_000 // max(1, (torch.Size(shape).numel() // rows)))
        for start in range(0, rows, step):
            band = (min(rows, start + step) - start, *shape[1:]) if shape else ()
            writer.write(name, torch.randn(band, generator=generator) * 0.02)
    writer.close()
    return folder


def run(script: str, teacher: Path, out: Path) -> dict[str, float]:
    from _shared import run_script

    return run_script(script, teacher, out, json.dumps(LAYERS))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--build-teacher", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.build_teacher:
        build_teacher(args.build_teacher)
        return
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="kdcli-bench-shrink-"))
    teacher = workdir / "teacher"
    if not (teacher / "model.safetensors").exists():
        started = time.perf_counter()
        subprocess.run([sys.executable, __file__, "--build-teacher", str(teacher)], check=True)
        print(f"built teacher in {time.perf_counter() - started:.0f} s: {teacher}")
    size = (teacher / "model.safetensors").stat().st_size
    with (teacher / "model.safetensors").open("rb") as handle:  # warm the page cache for both
        while handle.read(64 * 1024 * 1024):
            pass
    results: dict[str, list[dict[str, float]]] = {"naive": [], "kdcli": []}
    for _ in range(args.repeats):
        for name, script in (("naive", NAIVE), ("kdcli", KDCLI)):
            out = workdir / f"student-{name}"
            results[name].append(run(script, teacher, out))
            shutil.rmtree(out)
    report(results, size)


def report(results: dict[str, list[dict[str, float]]], teacher_bytes: int) -> None:
    median = {
        name: {key: statistics.median(r[key] for r in runs) for key in ("seconds", "peak_bytes")}
        for name, runs in results.items()
    }
    naive, kdcli = median["naive"], median["kdcli"]
    print(
        f"teacher: XLM-R-base shape, {teacher_bytes / 1e9:.2f} GB float32; student: layers {LAYERS}"
    )
    print(f"{'':10}{'wall time (s)':>15}{'peak RSS (GB)':>15}")
    for name, values in median.items():
        print(f"{name:10}{values['seconds']:>15.1f}{values['peak_bytes'] / 1e9:>15.2f}")
    print(
        f"kdcli / naive: time {kdcli['seconds'] / naive['seconds']:.2f}x, "
        f"peak memory {kdcli['peak_bytes'] / naive['peak_bytes']:.2f}x "
        "(targets: time <= 1.0x, memory <= 0.5x)"
    )


if __name__ == "__main__":
    main()
