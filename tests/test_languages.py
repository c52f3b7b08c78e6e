"""data/languages.py: the one per-language grouping, sampling, interleaving and averaging."""

from __future__ import annotations

from kdcli.data.languages import by_language, mean_per_language, round_robin, sample_per_language

LANGUAGES = ["de-DE", "en-US", "de-DE", "ar-SA", "en-US", "de-DE"]


def test_by_language_sorts_languages_and_keeps_example_order() -> None:
    groups = by_language(LANGUAGES)
    assert list(groups) == ["ar-SA", "de-DE", "en-US"]
    assert groups == {"ar-SA": [3], "de-DE": [0, 2, 5], "en-US": [1, 4]}


def test_sample_per_language_caps_each_language_and_is_seeded() -> None:
    keep = sample_per_language(LANGUAGES, 2, seed=3)
    assert keep == sorted(keep)
    chosen = [LANGUAGES[i] for i in keep]
    assert chosen.count("de-DE") == 2 and chosen.count("en-US") == 2 and chosen.count("ar-SA") == 1
    assert sample_per_language(LANGUAGES, 2, seed=3) == keep
    draws = {tuple(sample_per_language(LANGUAGES, 1, seed=s)) for s in range(20)}
    assert len(draws) > 1  # the seed decides which de-DE / en-US example is kept


def test_sample_per_language_keeps_small_languages_whole() -> None:
    assert sample_per_language(LANGUAGES, 10, seed=0) == list(range(len(LANGUAGES)))


def test_round_robin_gives_every_group_a_turn() -> None:
    groups = [["a1", "a2", "a3", "a4"], ["b1"], ["c1", "c2"]]
    assert round_robin(groups, 5) == ["a1", "b1", "c1", "a2", "c2"]
    assert round_robin(groups, 100) == ["a1", "b1", "c1", "a2", "c2", "a3", "a4"]
    assert round_robin([], 3) == []


def test_mean_per_language() -> None:
    hits = [1.0, 0.0, 0.0, 1.0, 1.0, 1.0]
    assert mean_per_language(hits, LANGUAGES) == {
        "ar-SA": 1.0,
        "de-DE": 2 / 3,
        "en-US": 0.5,
    }
