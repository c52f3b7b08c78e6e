"""Per-language metrics: hand-computed values, aggregates and comparisons."""

from __future__ import annotations

import pytest

from kdcli.evaluation.metrics import (
    LanguageScore,
    accuracy,
    aggregate,
    compare_average,
    compare_languages,
    macro_f1,
    retention,
    score_languages,
)


def test_accuracy_counts_exact_label_matches():
    assert accuracy(["a", "b", "c", "a"], ["a", "b", "a", "b"]) == 0.5


def test_macro_f1_by_hand():
    gold = ["a", "a", "a", "b"]
    pred = ["a", "a", "b", "b"]
    # a: P=2/2, R=2/3 -> F1=0.8;  b: P=1/2, R=1/1 -> F1=2/3
    assert macro_f1(gold, pred) == pytest.approx((0.8 + 2 / 3) / 2)


def test_macro_f1_counts_a_label_predicted_but_never_gold_as_zero():
    # "c" is never gold: its F1 is 0 and it lowers the mean, as in scikit-learn's default.
    assert macro_f1(["a", "b"], ["a", "c"]) == pytest.approx((1 + 0 + 0) / 3)


def test_perfect_and_empty_inputs():
    assert macro_f1(["x", "y"], ["x", "y"]) == 1.0
    with pytest.raises(ValueError, match="no examples"):
        accuracy([], [])
    with pytest.raises(ValueError, match="3 predictions for 2"):
        macro_f1(["a", "b"], ["a", "b", "c"])


def test_scores_per_language_are_sorted_and_independent():
    gold = ["a", "b", "a", "b", "a"]
    pred = ["a", "b", "b", "b", "a"]
    langs = ["fr", "fr", "de", "de", "de"]
    scores = score_languages(gold, pred, langs)
    assert list(scores) == ["de", "fr"]
    low = pytest.approx(0.3424, abs=1e-4)
    assert scores["fr"] == LanguageScore(2, 1.0, 1.0, accuracy_low=low, accuracy_high=1.0)
    assert scores["de"].n == 3
    assert scores["de"].accuracy == pytest.approx(2 / 3)
    # de: a: P=1/1 R=1/2 -> 2/3; b: P=1/2 R=1/1 -> 2/3
    assert scores["de"].macro_f1 == pytest.approx(2 / 3)


def test_average_weighs_languages_equally_and_pooled_weighs_examples():
    scores = {
        "en": LanguageScore(90, 1.0, 1.0),
        "sw": LanguageScore(10, 0.5, 0.4),
    }
    agg = aggregate(scores)
    assert agg.average_accuracy == pytest.approx(0.75)
    assert agg.average_macro_f1 == pytest.approx(0.7)
    assert agg.pooled_accuracy == pytest.approx(0.95)
    assert (agg.worst_language, agg.worst_accuracy, agg.n) == ("sw", 0.5, 100)


def test_worst_language_ties_go_to_the_first_sorted():
    scores = {"zh": LanguageScore(5, 0.2, 0.1), "ar": LanguageScore(5, 0.2, 0.3)}
    assert aggregate(scores).worst_language == "ar"


def test_deltas_and_retention_against_the_reference():
    teacher = {"en": LanguageScore(10, 0.9, 0.8), "sw": LanguageScore(10, 0.5, 0.0)}
    student = {"en": LanguageScore(10, 0.81, 0.6), "sw": LanguageScore(10, 0.6, 0.2)}
    changes = compare_languages(teacher, student)
    assert changes["en"].accuracy_delta == pytest.approx(-0.09)
    assert changes["en"].accuracy_retention == pytest.approx(90.0)
    assert changes["en"].macro_f1_retention == pytest.approx(75.0)
    assert changes["sw"].accuracy_delta == pytest.approx(0.1)
    assert changes["sw"].accuracy_retention == pytest.approx(120.0)
    assert changes["sw"].macro_f1_retention is None  # the reference scored 0
    average = compare_average(aggregate(teacher), aggregate(student))
    assert average.accuracy_delta == pytest.approx(0.705 - 0.7)
    assert average.accuracy_retention == pytest.approx(100 * 0.705 / 0.7)


def test_comparing_different_languages_is_refused():
    with pytest.raises(ValueError, match="different languages"):
        compare_languages({"en": LanguageScore(1, 1, 1)}, {"de": LanguageScore(1, 1, 1)})


def test_retention_of_zero_reference():
    assert retention(0.0, 0.5) is None
    assert retention(0.5, 0.25) == 50.0


def test_wilson_interval_matches_the_textbook_values():
    from kdcli.evaluation.metrics import wilson_interval

    assert wilson_interval(34, 40) == pytest.approx((0.7093, 0.9294), abs=1e-4)
    assert wilson_interval(40, 40)[1] == 1.0 and wilson_interval(40, 40)[0] > 0.9
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(0, 0) == (0.0, 1.0)


def test_exact_mcnemar_only_counts_disagreements():
    from kdcli.evaluation.metrics import mcnemar_p, paired_average_p, paired_language_p

    assert mcnemar_p(1, 7) == pytest.approx(2 * 9 / 256)
    assert mcnemar_p(0, 6) == pytest.approx(2 / 64)
    assert mcnemar_p(0, 0) == 1.0 and mcnemar_p(3, 3) == 1.0
    first = [True, True, False, False]
    assert paired_language_p(first, first, ["a"] * 4) == {"a": 1.0}
    assert paired_average_p(first, first, ["a", "a", "b", "b"]) == 1.0
    better = [True] * 40
    assert paired_average_p([False] * 40, better, ["a"] * 20 + ["b"] * 20) == 0.0
