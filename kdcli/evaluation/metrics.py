"""Per-language classification metrics and model-to-model comparisons, as pure functions.

Everything here works on label *names* (strings), so predictions of a PyTorch model and of its
ONNX export compare directly. Only the bootstrap imports numpy, when it runs, so `kdcli --help`
stays light.

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

Noise: a language's test set is often small (40 examples give a 95% interval of about +-14 points),
so every accuracy carries its 95% Wilson score interval, and every change against the first model
a p-value from a paired test on the same examples: exact McNemar for a language (only the examples
the two models disagree on count), and a paired z-test on the per-language differences for the
macro-average. A change with p >= 0.05 is "not significant": it may be noise.

A token classifier's entity F1 is no proportion of independent examples (a sentence holds zero,
one or several entities, and its words hang together), so it has no closed-form interval: its
95% interval is a seeded bootstrap over sentences (resample the sentences of a language, recompute
micro F1 from their entity counts; percentiles of 1,000 resamples), and its changes are tested
with a paired bootstrap (the same resamples for both models; for the macro-average each language
is resampled on its own). The seed is fixed per language, so a report is reproducible.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence, Sized
from dataclasses import asdict, dataclass
from itertools import chain
from typing import TYPE_CHECKING

from kdcli.data.languages import by_language
from kdcli.data.tags import TagCounts

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import ArrayLike

SIGNIFICANCE = 0.05  # a change with a larger p-value may be noise
Z95 = 1.959963984540054  # the standard normal's 97.5% quantile
BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_SEED = 0  # fixed: the same predictions give the same report

SentenceCounts = tuple[int, int, int]  # one sentence's entities: true positives, predicted, gold


@dataclass(frozen=True)
class LanguageScore:
    """The scores of one model on one language. Token classification adds the entity-level
    scores (strict), the words scored, the F1 per entity type and the entity F1's 95% bootstrap
    interval; `accuracy` is then word accuracy and `macro_f1` the mean per-type F1. Sequence
    classification adds the accuracy's 95% Wilson interval."""

    n: int
    accuracy: float
    macro_f1: float
    precision: float | None = None
    recall: float | None = None
    f1: float | None = None
    words: int | None = None
    type_f1: dict[str, float] | None = None
    accuracy_low: float | None = None
    accuracy_high: float | None = None
    f1_low: float | None = None
    f1_high: float | None = None

    @property
    def first(self) -> float:
        """The headline score: entity F1 for token classification, else accuracy."""
        return self.f1 if self.f1 is not None else self.accuracy

    @property
    def second(self) -> float:
        return self.accuracy if self.f1 is not None else self.macro_f1

    @property
    def interval(self) -> tuple[float, float] | None:
        """The headline score's 95% interval, when there is one."""
        low, high = (
            (self.f1_low, self.f1_high)
            if self.f1 is not None
            else (self.accuracy_low, self.accuracy_high)
        )
        return None if low is None or high is None else (low, high)

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
    reference's score kept, None when the reference scored 0 (no meaningful ratio). `p_value`
    is the paired test's for the headline change (`first_delta`: accuracy, or a token
    classifier's entity F1; None when not tested), and `significant` says whether it is below
    SIGNIFICANCE.
    """

    accuracy_delta: float
    macro_f1_delta: float
    accuracy_retention: float | None
    macro_f1_retention: float | None
    f1_delta: float | None = None  # token classification: entity F1
    f1_retention: float | None = None
    p_value: float | None = None

    @property
    def significant(self) -> bool | None:
        return None if self.p_value is None else self.p_value < SIGNIFICANCE

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
        if self.p_value is None:
            del data["p_value"]
        else:
            data["significant"] = self.significant
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
        correct = sum(a == b for a, b in zip(g, p, strict=True))
        low, high = wilson_interval(correct, len(g))
        scores[language] = LanguageScore(
            len(g), accuracy(g, p), macro_f1(g, p), accuracy_low=low, accuracy_high=high
        )
    return scores


def wilson_interval(correct: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a proportion (95% by default): sound for small n and for
    accuracies near 0 or 1, where the normal approximation gives bounds outside [0, 1]."""
    if n <= 0:
        return 0.0, 1.0
    share = correct / n
    middle = share + z * z / (2 * n)
    spread = z * math.sqrt(share * (1 - share) / n + z * z / (4 * n * n))
    scale = 1 + z * z / n
    return max(0.0, (middle - spread) / scale), min(1.0, (middle + spread) / scale)


def mcnemar_p(only_first: int, only_second: int) -> float:
    """Two-sided exact McNemar test: of the examples exactly one model got right, is the split
    between the two models more uneven than a fair coin would make it?"""
    n = only_first + only_second
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(only_first, only_second) + 1)) / 2**n
    return min(1.0, 2 * tail)


def paired_average_p(
    reference: Sequence[bool], other: Sequence[bool], languages: Sequence[str]
) -> float:
    """Two-sided p-value of the change in macro-averaged accuracy (each language weighs the
    same): a z-test on the sum of per-language paired differences, whose variance is estimated
    from the examples the two models disagree on."""
    delta = variance = 0.0
    for indices in by_language(languages).values():
        n = len(indices)
        gain = sum(1 for i in indices if other[i] and not reference[i]) / n
        loss = sum(1 for i in indices if reference[i] and not other[i]) / n
        delta += gain - loss
        variance += (gain + loss - (gain - loss) ** 2) / n
    if variance <= 0:
        return 1.0 if delta == 0 else 0.0
    z = abs(delta) / math.sqrt(variance)
    return math.erfc(z / math.sqrt(2))


def paired_language_p(
    reference: Sequence[bool], other: Sequence[bool], languages: Sequence[str]
) -> dict[str, float]:
    """Per language, the exact McNemar p-value of `other` against `reference` (right/wrong per
    example, on the same examples)."""
    counts: dict[str, list[int]] = {}
    for ref, oth, language in zip(reference, other, languages, strict=True):
        pair = counts.setdefault(language, [0, 0])
        pair[0] += int(ref and not oth)
        pair[1] += int(oth and not ref)
    return {language: mcnemar_p(*pair) for language, pair in sorted(counts.items())}


def bootstrap_f1(
    true_positives: ArrayLike,
    predicted: ArrayLike,
    gold: ArrayLike,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int | Sequence[int] = BOOTSTRAP_SEED,
) -> np.ndarray:
    """Micro entity F1 of every model on `resamples` bootstrap resamples of the sentences, as
    an array (models, resamples). `true_positives` and `predicted` hold one row per model and a
    count per sentence, `gold` a count per sentence. Every resample weighs the sentences alike
    for all models, so the rows are paired.

    Drawing n sentences with replacement gives each distinct row of a sentence's counts (its
    gold and every model's true positives and predicted) a multinomial number of copies;
    drawing those numbers directly is the same distribution at a cost per resample of the
    distinct rows (a few dozen), not of the sentences (thousands)."""
    import numpy as np

    columns = [np.atleast_2d(true_positives), np.atleast_2d(predicted), np.atleast_2d(gold)]
    table = np.vstack(columns).T.astype(np.int64)  # (sentences, 2 * models + 1)
    sentences, models = table.shape[0], table.shape[1] // 2
    if sentences == 0:
        raise ValueError("no sentences to resample")
    rows, copies = _distinct_rows(table)
    weights = np.random.default_rng(seed).multinomial(sentences, copies / sentences, resamples)
    sums = (weights @ rows).T  # (2 * models + 1, resamples): the resampled counts
    hits, found, total = sums[:models], sums[models:-1], sums[-1]
    both = found + total
    return np.divide(2 * hits, both, out=np.zeros(both.shape), where=both > 0)


def _distinct_rows(table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct rows of a table of small counts, and how often each occurs. One integer
    key per row makes this a 1-D unique, 20x faster than comparing whole rows."""
    import numpy as np

    try:
        keys = np.ravel_multi_index(tuple(table.T), tuple(table.max(axis=0) + 1))
    except ValueError:  # too many combinations for one integer: compare whole rows
        rows, copies = np.unique(table, axis=0, return_counts=True)
        return rows, copies
    _, first, copies = np.unique(keys, return_index=True, return_counts=True)
    return table[first], copies


def percentile_interval(samples: ArrayLike) -> tuple[float, float]:
    """The 95% percentile interval of bootstrap samples."""
    import numpy as np

    low, high = np.quantile(np.asarray(samples), [0.025, 0.975])
    return float(low), float(high)


def bootstrap_p(reference: ArrayLike, other: ArrayLike) -> float:
    """Two-sided p-value of a change from paired bootstrap samples: twice the share of
    resamples on the rarer side of zero (a tie counts on both sides), the smallest level at
    which the change's percentile interval leaves out zero. One is added to both counts, so
    1,000 resamples never claim a p below 0.002; an unchanged model always gets 1."""
    import numpy as np

    delta = np.asarray(other) - np.asarray(reference)
    rarer = min(int(np.sum(delta <= 0)), int(np.sum(delta >= 0)))
    return min(1.0, 2 * (rarer + 1) / (len(delta) + 1))


@dataclass(frozen=True)
class F1Noise:
    """A token classifier's noise figures: per language its entity F1's 95% bootstrap interval;
    after the first model, the paired bootstrap p-value of its F1 change per language and of
    the change of its average over languages."""

    intervals: dict[str, tuple[float, float]]
    p_values: dict[str, float] | None = None
    average_p: float | None = None


def f1_noise(
    sentences: Sequence[Mapping[str, Sequence[SentenceCounts]]],
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> list[F1Noise]:
    """Intervals and paired tests of every model's entity F1, the first model the reference.
    `sentences` holds per model, per language, each sentence's entity counts, the sentences in
    the same order for every model. Each language is resampled with its own seed (`seed` and
    its name): its numbers do not depend on which other languages are scored, and languages
    with parallel sentences (MASSIVE) are not resampled in lockstep."""
    import numpy as np

    languages = sorted(sentences[0])
    samples = {}
    for language in languages:
        counts = [_count_table(model[language]) for model in sentences]
        if any(not np.array_equal(c[:, 2], counts[0][:, 2]) for c in counts):
            raise ValueError(f"models were scored on different sentences of {language}")
        samples[language] = bootstrap_f1(
            [c[:, 0] for c in counts],
            [c[:, 1] for c in counts],
            counts[0][:, 2],
            resamples,
            [seed, *language.encode()],
        )
    average = np.mean([samples[language] for language in languages], axis=0)
    noise = []
    for index in range(len(sentences)):
        intervals = {lang: percentile_interval(samples[lang][index]) for lang in languages}
        if index == 0:
            noise.append(F1Noise(intervals))
            continue
        p_values = {lang: bootstrap_p(samples[lang][0], samples[lang][index]) for lang in languages}
        noise.append(F1Noise(intervals, p_values, bootstrap_p(average[0], average[index])))
    return noise


def _count_table(sentences: Sequence[SentenceCounts]) -> np.ndarray:
    import numpy as np

    flat = np.fromiter(chain.from_iterable(sentences), dtype=np.int64, count=3 * len(sentences))
    return flat.reshape(-1, 3)


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
) -> tuple[dict[str, LanguageScore], dict[str, TagCounts], dict[str, list[SentenceCounts]]]:
    """Token-classification scores per language (languages sorted), the counts behind them
    (pooled scores need the counts, not the per-language ratios), and every sentence's entity
    counts per language, in data order (what `f1_noise` resamples)."""
    _check_lengths(gold, predicted)
    if len(languages) != len(gold):
        raise ValueError(f"{len(languages)} languages for {len(gold)} examples")
    counts: dict[str, TagCounts] = {}
    sentences: dict[str, list[SentenceCounts]] = {}
    for g, p, language in zip(gold, predicted, languages, strict=True):
        sentence = counts.setdefault(language, TagCounts()).add(g, p)
        sentences.setdefault(language, []).append(sentence)
    ordered = dict(sorted(counts.items()))
    scores = {lang: token_score(c, len(sentences[lang])) for lang, c in ordered.items()}
    return scores, ordered, dict(sorted(sentences.items()))


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
    p_value: float | None = None,
) -> Change:
    """The delta and retention of one score pair against the reference model's;
    `entity_f1` is (reference, value) of a token classifier's entity F1, `p_value` the paired
    test's for the headline change (entity F1 when given, else accuracy)."""
    return Change(
        accuracy_delta=accuracy_value - reference_accuracy,
        macro_f1_delta=f1_value - reference_f1,
        accuracy_retention=retention(reference_accuracy, accuracy_value),
        macro_f1_retention=retention(reference_f1, f1_value),
        f1_delta=entity_f1[1] - entity_f1[0] if entity_f1 else None,
        f1_retention=retention(*entity_f1) if entity_f1 else None,
        p_value=p_value,
    )


def retention(reference: float, value: float) -> float | None:
    """`value` as a percentage of `reference` (None when the reference is 0)."""
    return 100.0 * value / reference if reference > 0 else None


def compare_languages(
    reference: Mapping[str, LanguageScore],
    scores: Mapping[str, LanguageScore],
    p_values: Mapping[str, float] | None = None,
) -> dict[str, Change]:
    """Per-language change of `scores` against `reference` (both over the same languages),
    with the paired test's p-value of each when given."""
    if set(reference) != set(scores):
        raise ValueError("models were scored on different languages")
    return {
        language: change(
            reference[language].accuracy,
            reference[language].macro_f1,
            scores[language].accuracy,
            scores[language].macro_f1,
            _pair(reference[language].f1, scores[language].f1),
            (p_values or {}).get(language),
        )
        for language in sorted(scores)
    }


def compare_average(reference: Aggregate, other: Aggregate, p_value: float | None = None) -> Change:
    return change(
        reference.average_accuracy,
        reference.average_macro_f1,
        other.average_accuracy,
        other.average_macro_f1,
        _pair(reference.average_f1, other.average_f1),
        p_value,
    )


def _pair(reference: float | None, value: float | None) -> tuple[float, float] | None:
    return (reference, value) if reference is not None and value is not None else None


def _check_lengths(gold: Sized, predicted: Sized) -> None:
    if len(gold) != len(predicted):
        raise ValueError(f"{len(predicted)} predictions for {len(gold)} gold labels")
    if not gold:
        raise ValueError("no examples to score")
