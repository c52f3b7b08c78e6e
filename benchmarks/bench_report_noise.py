"""The cost of a token report's noise figures: entity F1 intervals and paired bootstrap tests.

`kdcli eval` of a token classifier resamples each language's sentences 1,000 times to give every
entity F1 a 95% interval and every change against the first model a p-value
(`kdcli.evaluation.metrics.f1_noise`). This times that step next to the whole report it is part
of (`build_report`: scoring and bootstrap), on synthetic predictions so that no model runs:
`--languages` languages of `--sentences` sentences with 0-3 entities each, `--models` models.
By default a later model agrees with the first on most sentences (as a student agrees with its
teacher), which keeps few distinct per-sentence count rows; `--independent` draws every model's
errors on its own, the worst case for the bootstrap's cost. Target, 20 languages x 4 models: the
bootstrap under 0.5 s at 300 sentences a language, and a small part of `build_report` (whose
scoring is pure Python) at any size.

    python benchmarks/bench_report_noise.py [--languages 20 --models 4] [--sentences 40 300 3000]
                                            [--independent] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from kdcli.core.machine import cpu_summary, load_average
from kdcli.data.splits import Examples
from kdcli.evaluation.metrics import f1_noise, score_token_languages
from kdcli.evaluation.report import ModelRun, build_report

TYPES = ("date", "time", "place_name")


def synthetic(languages: int, models: int, sentences: int, independent: bool, seed: int = 0):
    """Examples with gold tags, and per model its predicted tags."""
    rng = np.random.default_rng(seed)
    gold, names, predicted = [], [], [[] for _ in range(models)]
    for language in range(languages):
        for _ in range(sentences):
            tags = ["O"] * 8
            for slot in rng.choice(4, rng.integers(0, 4), replace=False):
                tags[2 * slot] = f"B-{TYPES[rng.integers(len(TYPES))]}"
            gold.append(tags)
            names.append(f"l{language:02d}")
            reference = _errors(tags, 0.85, rng)
            for model in range(models):
                keep = model == 0 or (not independent and rng.random() < 0.9)
                predicted[model].append(reference if keep else _errors(tags, 0.85, rng))
    n = len(gold)
    examples = Examples(
        [str(i) for i in range(n)], [""] * n, [""] * n, names, "test", "synthetic",
        words=[["w"] * 8 for _ in gold], tags=gold,
    )  # fmt: skip
    return examples, predicted


def _errors(tags: list[str], found: float, rng: np.random.Generator) -> list[str]:
    """Miss some entities, add a spurious one now and then."""
    out = [tag if tag == "O" or rng.random() < found else "O" for tag in tags]
    if rng.random() < 0.1:
        out[1] = "B-date"
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--languages", type=int, default=20)
    parser.add_argument("--models", type=int, default=4)
    parser.add_argument("--sentences", type=int, nargs="+", default=[40, 300, 3000])
    parser.add_argument("--independent", action="store_true")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(cpu_summary())
    print(f"load average before: {load_average()}")
    for sentences in args.sentences:
        examples, predicted = synthetic(args.languages, args.models, sentences, args.independent)
        per_sentence = [
            score_token_languages(examples.tags or [], p, examples.languages)[2] for p in predicted
        ]
        runs = [ModelRun(f"m{i}", "x", "pytorch", p, 1, 1) for i, p in enumerate(predicted)]
        noise, report = [], []
        for _ in range(args.repeats):  # interleaved: a load change hits both alike
            start = time.perf_counter()
            f1_noise(per_sentence)
            noise.append(time.perf_counter() - start)
            start = time.perf_counter()
            build_report(examples, runs)
            report.append(time.perf_counter() - start)
        print(
            f"{args.languages} languages x {args.models} models x {sentences} sentences"
            f"{' (independent errors)' if args.independent else ''}: bootstrap "
            f"{1000 * statistics.median(noise):.0f} ms (range {1000 * min(noise):.0f}-"
            f"{1000 * max(noise):.0f}), whole build_report "
            f"{1000 * statistics.median(report):.0f} ms"
        )
    print(f"load average after: {load_average()}")


if __name__ == "__main__":
    main()
