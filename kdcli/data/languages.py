"""Per-language selection and averages: the one home of every "for each language" kdcli does.

Examples carry a language each; sampling a data set, picking texts for calibration or timing,
and scoring per language all group by it the same way: languages in sorted order, examples in
their original order within a language.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import TypeVar

Item = TypeVar("Item")


def by_language(languages: Sequence[str]) -> dict[str, list[int]]:
    """The indices of each language's examples, languages sorted."""
    groups: dict[str, list[int]] = {}
    for index, language in enumerate(languages):
        groups.setdefault(language, []).append(index)
    return dict(sorted(groups.items()))


def sample_per_language(languages: Sequence[str], count: int, seed: int) -> list[int]:
    """At most `count` indices per language, drawn with `seed`, in their original order."""
    rng = random.Random(seed)
    keep: list[int] = []
    for indices in by_language(languages).values():
        keep.extend(indices if len(indices) <= count else rng.sample(indices, count))
    return sorted(keep)


def round_robin(groups: Sequence[Sequence[Item]], count: int) -> list[Item]:
    """Up to `count` items taken from every group in turn (the first of each group, then the
    second, ...): every language gets the same share however unbalanced the data is."""
    chosen: list[Item] = []
    depth = 0
    while len(chosen) < count and any(depth < len(group) for group in groups):
        chosen.extend(group[depth] for group in groups if depth < len(group))
        depth += 1
    return chosen[:count]


def mean_per_language(values: Sequence[float], languages: Sequence[str]) -> dict[str, float]:
    """The mean of `values` (one per example) for each language, languages sorted: accuracy
    from 0/1 hits, agreement from per-text agreement, ..."""
    return {
        language: sum(values[i] for i in indices) / len(indices)
        for language, indices in by_language(languages).items()
    }
