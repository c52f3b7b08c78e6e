"""Per-language classification metrics and model-to-model comparisons, as pure functions.

Everything here works on label *names* (strings), so predictions of a PyTorch model and of its
ONNX export compare directly. No numpy: the sums are simple and `kdcli --help` stays light.

Conventions (the same as scikit-learn's defaults, so numbers can be checked against it):
- macro-F1 averages the F1 of every label that occurs in the gold labels *or* the predictions of
  the examples scored; a label predicted but never gold counts with F1 0 (it cost precision).
- the "average" of a model is the unweighted mean over languages (every language counts the same,
  the study's headline number); "pooled" accuracy counts every example the same.
- the worst language is the one with the lowest accuracy; ties go to the first in sorted order.

Token classification (slots, named entities) is scored per word: entity precision, recall and F1
with seqeval's strict definition (exact span and type, `kdcli.data.tags`), word accuracy, and F1
per entity type; `macro_f1` is then the mean of the per-type F1 (seqeval's macro average). Its
headline is the entity F1: the average, pooled and worst language, deltas and retention are
taken on it, as they are on accuracy for sequence classification (`first`/`second` name the
two numbers a report shows for either task).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence, Sized
from dataclasses import asdict, dataclass

from kdcli.data.languages import by_language
from kdcli.data.tags import TagCounts


@dataclass(frozen=True)
class LanguageScore:
    """The scores of one model on one language. Token classification adds the entity-level
    scores (strict), the words scored and the F1 per entity type; `accuracy` is then word
    accuracy and `macro_f1` the mean per-type F1."""

    n: int
    accuracy: float
    macro_f1: float
    precision: float | None = None
    recall: float | None = None
    f1: float | None = None
    words: int | None = None
    type_f1: dict[str, float] | None = None

    @property
    def first(self) -> float:
        """The headline score: entity F1 for token classification, else accuracy."""
        return self.f1 if self.f1 is not None else self.accuracy

    @property
    def second(self) -> float:
        return self.accuracy if self.f1 is not None else self.macro_f1

    def to_dict(self) -> dict[str, object]:
        return {key: value for key, value in asdict(self).items() if value is not None}


@dataclass(frozen=True)
class Aggregate:
    """One model's summary over all languages (token classification: the worst language is
    the one with the lowest entity F1, and the F1 fields are set)."""

    average_accuracy: float
    average_macro_f1: float
    pooled_accuracy: float
    worst_language: str
    worst_accuracy: float
    n: int
    average_f1: float | None = None
    pooled_f1: float | None = None
    pooled_precision: float | None = None
    pooled_recall: float | None = None
    worst_f1: float | None = None

    @property
    def average_first(self) -> float:
        return self.average_f1 if self.average_f1 is not None else self.average_accuracy

    @property
    def average_second(self) -> float:
        return self.average_accuracy if self.average_f1 is not None else self.average_macro_f1

    @property
    def pooled_first(self) -> float:
        return self.pooled_f1 if self.pooled_f1 is not None else self.pooled_accuracy

    @property
    def worst_first(self) -> float:
        return self.worst_f1 if self.worst_f1 is not None else self.worst_accuracy


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
    f1_delta: float | None = None  # token classification: entity F1
    f1_retention: float | None = None

    @property
    def first_delta(self) -> float:
        return self.f1_delta if self.f1_delta is not None else self.accuracy_delta

    @property
    def first_retention(self) -> float | None:
        return self.f1_retention if self.f1_delta is not None else self.accuracy_retention

    @property
    def second_delta(self) -> float:
        return self.accuracy_delta if self.f1_delta is not None else self.macro_f1_delta

    def to_dict(self) -> dict[str, object]:
        data = asdict(self)
        if self.f1_delta is None:
            del data["f1_delta"], data["f1_retention"]
        return data


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
    scores = {}
    for language, indices in by_language(languages).items():
        g = [gold[i] for i in indices]
        p = [predicted[i] for i in indices]
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


def token_score(counts: TagCounts, examples: int) -> LanguageScore:
    """The token-classification scores of one language from its tag counts."""
    return LanguageScore(
        n=examples,
        accuracy=counts.accuracy,
        macro_f1=counts.macro_f1(),
        precision=counts.precision,
        recall=counts.recall,
        f1=counts.f1,
        words=counts.words,
        type_f1=counts.type_f1(),
    )


def score_token_languages(
    gold: Sequence[Sequence[str]],
    predicted: Sequence[Sequence[str]],
    languages: Sequence[str],
) -> tuple[dict[str, LanguageScore], dict[str, TagCounts]]:
    """Token-classification scores per language (languages sorted), and the counts behind
    them (pooled scores need the counts, not the per-language ratios)."""
    _check_lengths(gold, predicted)
    if len(languages) != len(gold):
        raise ValueError(f"{len(languages)} languages for {len(gold)} examples")
    counts: dict[str, TagCounts] = {}
    examples: Counter[str] = Counter()
    for g, p, language in zip(gold, predicted, languages, strict=True):
        counts.setdefault(language, TagCounts()).add(g, p)
        examples[language] += 1
    ordered = dict(sorted(counts.items()))
    return {lang: token_score(c, examples[lang]) for lang, c in ordered.items()}, ordered


def aggregate_tokens(
    scores: Mapping[str, LanguageScore], counts: Mapping[str, TagCounts]
) -> Aggregate:
    """Token classification: averages over languages, pooled scores from all the counts, and
    the worst language by entity F1."""
    if not scores:
        raise ValueError("no languages to aggregate")
    pooled = TagCounts()
    for language_counts in counts.values():
        pooled.merge(language_counts)
    count = len(scores)
    worst = min(sorted(scores), key=lambda language: scores[language].first)
    return Aggregate(
        average_accuracy=sum(s.accuracy for s in scores.values()) / count,
        average_macro_f1=sum(s.macro_f1 for s in scores.values()) / count,
        pooled_accuracy=pooled.accuracy,
        worst_language=worst,
        worst_accuracy=scores[worst].accuracy,
        n=sum(s.n for s in scores.values()),
        average_f1=sum(s.first for s in scores.values()) / count,
        pooled_f1=pooled.f1,
        pooled_precision=pooled.precision,
        pooled_recall=pooled.recall,
        worst_f1=scores[worst].first,
    )


def change(
    reference_accuracy: float,
    reference_f1: float,
    accuracy_value: float,
    f1_value: float,
    entity_f1: tuple[float, float] | None = None,
) -> Change:
    """The delta and retention of one score pair against the reference model's;
    `entity_f1` is (reference, value) of a token classifier's entity F1."""
    return Change(
        accuracy_delta=accuracy_value - reference_accuracy,
        macro_f1_delta=f1_value - reference_f1,
        accuracy_retention=retention(reference_accuracy, accuracy_value),
        macro_f1_retention=retention(reference_f1, f1_value),
        f1_delta=entity_f1[1] - entity_f1[0] if entity_f1 else None,
        f1_retention=retention(*entity_f1) if entity_f1 else None,
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
            _pair(reference[language].f1, scores[language].f1),
        )
        for language in sorted(scores)
    }


def compare_average(reference: Aggregate, other: Aggregate) -> Change:
    return change(
        reference.average_accuracy,
        reference.average_macro_f1,
        other.average_accuracy,
        other.average_macro_f1,
        _pair(reference.average_f1, other.average_f1),
    )


def _pair(reference: float | None, value: float | None) -> tuple[float, float] | None:
    return (reference, value) if reference is not None and value is not None else None


def _check_lengths(gold: Sized, predicted: Sized) -> None:
    if len(gold) != len(predicted):
        raise ValueError(f"{len(predicted)} predictions for {len(gold)} gold labels")
    if not gold:
        raise ValueError("no examples to score")
