"""Per-language classification metrics and model-to-model comparisons, as pure functions.

Everything here works on label *names* (strings), so predictions of a PyTorch model and of its
ONNX export compare directly. No numpy: the sums are simple and `kdcli --help` stays light.

Conventions (the same as scikit-learn's defaults, so numbers can be checked against it):
- macro-F1 averages the F1 of every label that occurs in the gold labels *or* the predictions of
  the examples scored; a label predicted but never gold counts with F1 0 (it cost precision).
- the "average" of a model is the unweighted mean over languages (every language counts the same,
  the study's headline number); "pooled" accuracy counts every example the same.
- the worst language is the one with the lowest accuracy; ties go to the first in sorted order.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class LanguageScore:
    """The scores of one model on one language."""

    n: int
    accuracy: float
    macro_f1: float


@dataclass(frozen=True)
class Aggregate:
    """One model's summary over all languages."""

    average_accuracy: float
    average_macro_f1: float
    pooled_accuracy: float
    worst_language: str
    worst_accuracy: float
    n: int


@dataclass(frozen=True)
class Change:
    """How a model compares with the first (reference) model on one language or on average.

    Deltas are differences of fractions (0.01 = one point); retention is the percentage of the
    reference's score kept, None when the reference scored 0 (no meaningful ratio).
    """

    accuracy_delta: float
    macro_f1_delta: float
    accuracy_retention: float | None
    macro_f1_retention: float | None


def accuracy(gold: Sequence[str], predicted: Sequence[str]) -> float:
    _check_lengths(gold, predicted)
    return sum(g == p for g, p in zip(gold, predicted, strict=True)) / len(gold)


def macro_f1(gold: Sequence[str], predicted: Sequence[str]) -> float:
    """Unweighted mean F1 over the labels seen in `gold` or `predicted`."""
    _check_lengths(gold, predicted)
    true_pos: Counter[str] = Counter()
    for g, p in zip(gold, predicted, strict=True):
        if g == p:
            true_pos[g] += 1
    gold_counts = Counter(gold)
    pred_counts = Counter(predicted)
    labels = set(gold_counts) | set(pred_counts)
    # F1 = 2TP / (gold + predicted): the same as 2PR/(P+R), without dividing by zero.
    total = sum(2 * true_pos[label] / (gold_counts[label] + pred_counts[label]) for label in labels)
    return total / len(labels)


def score_languages(
    gold: Sequence[str], predicted: Sequence[str], languages: Sequence[str]
) -> dict[str, LanguageScore]:
    """Scores per language, languages sorted."""
    _check_lengths(gold, predicted)
    if len(languages) != len(gold):
        raise ValueError(f"{len(languages)} languages for {len(gold)} examples")
    groups: dict[str, list[int]] = {}
    for index, language in enumerate(languages):
        groups.setdefault(language, []).append(index)
    scores = {}
    for language in sorted(groups):
        g = [gold[i] for i in groups[language]]
        p = [predicted[i] for i in groups[language]]
        scores[language] = LanguageScore(len(g), accuracy(g, p), macro_f1(g, p))
    return scores


def aggregate(scores: Mapping[str, LanguageScore]) -> Aggregate:
    """Macro-average over languages, pooled accuracy and the worst language."""
    if not scores:
        raise ValueError("no languages to aggregate")
    count = len(scores)
    n = sum(s.n for s in scores.values())
    worst = min(sorted(scores), key=lambda language: scores[language].accuracy)
    return Aggregate(
        average_accuracy=sum(s.accuracy for s in scores.values()) / count,
        average_macro_f1=sum(s.macro_f1 for s in scores.values()) / count,
        pooled_accuracy=sum(s.accuracy * s.n for s in scores.values()) / n,
        worst_language=worst,
        worst_accuracy=scores[worst].accuracy,
        n=n,
    )


def change(
    reference_accuracy: float,
    reference_f1: float,
    accuracy_value: float,
    f1_value: float,
) -> Change:
    """The delta and retention of one score pair against the reference model's."""
    return Change(
        accuracy_delta=accuracy_value - reference_accuracy,
        macro_f1_delta=f1_value - reference_f1,
        accuracy_retention=retention(reference_accuracy, accuracy_value),
        macro_f1_retention=retention(reference_f1, f1_value),
    )


def retention(reference: float, value: float) -> float | None:
    """`value` as a percentage of `reference` (None when the reference is 0)."""
    return 100.0 * value / reference if reference > 0 else None


def compare_languages(
    reference: Mapping[str, LanguageScore], scores: Mapping[str, LanguageScore]
) -> dict[str, Change]:
    """Per-language change of `scores` against `reference` (both over the same languages)."""
    if set(reference) != set(scores):
        raise ValueError("models were scored on different languages")
    return {
        language: change(
            reference[language].accuracy,
            reference[language].macro_f1,
            scores[language].accuracy,
            scores[language].macro_f1,
        )
        for language in sorted(scores)
    }


def compare_average(reference: Aggregate, other: Aggregate) -> Change:
    return change(
        reference.average_accuracy,
        reference.average_macro_f1,
        other.average_accuracy,
        other.average_macro_f1,
    )


def _check_lengths(gold: Sequence[str], predicted: Sequence[str]) -> None:
    if len(gold) != len(predicted):
        raise ValueError(f"{len(predicted)} predictions for {len(gold)} gold labels")
    if not gold:
        raise ValueError("no examples to score")
