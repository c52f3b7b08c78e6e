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


# --- the bootstrap of a token classifier's entity F1 -------------------------------------------


def _sentences(count: int, found: float, seed: int = 0) -> list[tuple[int, int, int]]:
    """Per-sentence entity counts (true positives, predicted, gold) of a model that finds
    about `found` of 0-3 gold entities a sentence and adds a wrong one now and then."""
    import numpy as np

    rng = np.random.default_rng(seed)
    gold = rng.integers(0, 4, count)
    hits = rng.binomial(gold, found)
    wrong = rng.binomial(1, 0.2, count)
    return list(zip(hits.tolist(), (hits + wrong).tolist(), gold.tolist(), strict=True))


def _f1(sentences: list[tuple[int, int, int]]) -> float:
    from kdcli.data.tags import f1_score

    return f1_score(*(sum(column) for column in zip(*sentences, strict=True)))


def test_the_f1_interval_holds_the_estimate_and_narrows_with_more_sentences():
    from kdcli.evaluation.metrics import f1_noise

    for seed in range(5):
        few = _sentences(40, 0.7, seed)
        (noise,) = f1_noise([{"de": few, "fr": few * 16}])
        low, high = noise.intervals["de"]
        assert low < _f1(few) < high
        assert low >= 0.0 and high <= 1.0
        # 16x the sentences (the same F1): about a quarter of the width
        narrow_low, narrow_high = noise.intervals["fr"]
        assert narrow_low < _f1(few) < narrow_high
        assert 0.15 < (narrow_high - narrow_low) / (high - low) < 0.4


def test_the_bootstrap_resamples_sentences():
    """Drawing copies of distinct count rows is the same distribution as drawing sentences
    with replacement: same mean and spread as a plain index bootstrap."""
    import numpy as np

    from kdcli.evaluation.metrics import bootstrap_f1

    counts = np.array(_sentences(60, 0.6, seed=3))
    samples = bootstrap_f1([counts[:, 0]], [counts[:, 1]], counts[:, 2], resamples=4000)[0]
    rng = np.random.default_rng(9)
    plain = []
    for _ in range(4000):
        drawn = counts[rng.integers(0, len(counts), len(counts))].sum(axis=0)
        plain.append(2 * drawn[0] / (drawn[1] + drawn[2]))
    assert samples.mean() == pytest.approx(np.mean(plain), abs=0.005)
    assert samples.std() == pytest.approx(np.std(plain), rel=0.08)
    # one sentence pattern only: every resample has the same F1
    same = bootstrap_f1([[1, 1, 1]], [[2, 2, 2]], [1, 1, 1], resamples=50)
    assert np.allclose(same, 2 / 3)


def test_a_model_identical_to_the_first_is_never_significant():
    from kdcli.evaluation.metrics import f1_noise

    for seed in range(5):
        model = {"de": _sentences(30, 0.5, seed), "fr": _sentences(300, 0.9, seed + 10)}
        first, second = f1_noise([model, {k: list(v) for k, v in model.items()}])
        assert first.p_values is None and first.average_p is None
        assert second.p_values == {"de": 1.0, "fr": 1.0} and second.average_p == 1.0
        assert second.intervals == first.intervals


def test_a_clearly_better_model_is_significant_on_enough_sentences():
    from kdcli.data.tags import TagCounts
    from kdcli.evaluation.metrics import compare_languages, f1_noise, token_score

    def better(sentences: list[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
        return [(gold, gold, gold) for _, _, gold in sentences]  # every entity, nothing else

    weak = {"de": _sentences(200, 0.6, 1), "fr": _sentences(4, 0.6, 2)}
    strong = {language: better(sentences) for language, sentences in weak.items()}
    _, noise = f1_noise([weak, strong])
    assert noise.p_values is not None
    assert noise.p_values["de"] < 0.01  # 200 sentences: far beyond noise
    assert noise.p_values["fr"] >= 0.05  # 4 sentences: it may be luck
    assert noise.average_p is not None and noise.average_p < 0.05
    scores = {"de": token_score(TagCounts(), 200), "fr": token_score(TagCounts(), 4)}
    changes = compare_languages(scores, scores, noise.p_values)
    assert changes["de"].significant is True and changes["fr"].significant is False
    assert changes["de"].to_dict()["significant"] is True


def test_the_bootstrap_is_reproducible_and_each_language_has_its_own_draws():
    from kdcli.evaluation.metrics import f1_noise

    weak = {"de": _sentences(50, 0.6, 1), "fr": _sentences(50, 0.6, 1)}  # parallel sentences
    strong = {  # one more entity found where one was missed
        language: [(min(hit + 1, gold), found + (hit < gold), gold) for hit, found, gold in rows]
        for language, rows in weak.items()
    }
    once, again = f1_noise([weak, strong]), f1_noise([weak, strong])
    assert once == again
    assert f1_noise([weak, strong], seed=1) != once
    # the same sentences under another name are resampled differently...
    assert once[0].intervals["de"] != once[0].intervals["fr"]
    # ...and a language's numbers do not depend on the other languages scored
    alone = f1_noise([{"de": weak["de"]}, {"de": strong["de"]}])
    assert alone[1].intervals["de"] == once[1].intervals["de"]
    assert alone[1].p_values == {"de": once[1].p_values["de"]}


def test_the_bootstrap_refuses_models_scored_on_different_sentences():
    from kdcli.evaluation.metrics import bootstrap_f1, f1_noise

    with pytest.raises(ValueError, match="different sentences of de"):
        f1_noise([{"de": [(1, 1, 1)]}, {"de": [(1, 1, 2)]}])
    with pytest.raises(ValueError, match="no sentences"):
        bootstrap_f1([[]], [[]], [])
