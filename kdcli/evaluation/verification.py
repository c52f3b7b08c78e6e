"""How an exported file is judged against its PyTorch model (pure numpy: no model runs here).

`compare` turns logits of the export and of PyTorch on the same texts, at the batch sizes a server
uses, into a `Check`. The rules, and why:

- Any non-finite output (NaN, inf) where PyTorch's is finite fails, named as such: NaN compares
  false with everything, so a max-difference check that skips NaN, or an argmax that reads a NaN
  row as label 0, would pass a broken file.
- fp32 must match PyTorch within `atol` at every batch size verified (1 and 32: padding and
  kernels differ between them).
- int8 passes when its top-1 label agrees with PyTorch's on at least `min_agreement` of the texts
  at every batch size; or, when the texts have gold labels, when it is as accurate as PyTorch
  (no more than `max_accuracy_drop` points lost overall or in any language, where a language may
  also lose one example net, the smallest change its sample can show) and agrees on the texts
  PyTorch is confident about, and still agrees on at least 90% of them. Raw agreement alone
  fails good int8 files whose few flips are all near-ties, as often right as wrong afterwards.
- Agreement off near-ties (texts whose top two PyTorch logits are `NEAR_TIE` or more apart) is
  reported beside raw agreement and decides nothing: it tells a file that flips only close calls
  from one that damages clear predictions, where no text reaches `CONFIDENT`.
- A token classifier is judged per word: agreement is the share of words whose tag (read at the
  word's token, as training labels it) is the same; the logit difference and the finite check
  cover every real token.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kdcli.data.languages import mean_per_language

if TYPE_CHECKING:
    import numpy as np

# A prediction PyTorch makes with at least this softmax probability is "confident": int8 must not
# flip those, whatever it does to near-ties.
CONFIDENT = 0.9
# Texts whose top two PyTorch logits are closer than this are near-ties (the runner-up has at
# least 0.82x the top label's probability): any rounding may flip them, either way. Agreement
# on the other texts is reported beside raw agreement (it does not decide), because a weakly
# trained classifier has many near-ties and none above CONFIDENT: on a real e5-small student
# without VNNI, int8 agreed on 95.6% of texts and on 99.9% of those off near-ties.
NEAR_TIE = 0.2
# Judged by accuracy, int8 must still agree with PyTorch on this share of the texts: a file that
# changes most predictions is broken even when its changed predictions happen to score as well
# (a model at chance level scores the same with any constant label).
AGREEMENT_FLOOR = 0.9


@dataclass(frozen=True)
class Gate:
    """The thresholds a file is held to."""

    atol: float = 1e-4
    min_agreement: float = 0.99
    max_accuracy_drop: float = 1.0  # points


@dataclass(frozen=True)
class Accuracy:
    """Accuracy on gold labels of PyTorch and of the export, on the same texts."""

    pytorch: float
    export: float
    per_language: dict[str, tuple[float, float]]  # language -> (pytorch, export)
    texts: dict[str, int]  # language -> texts scored

    @property
    def change(self) -> float:
        return self.export - self.pytorch


@dataclass(frozen=True)
class Check:
    """One exported file against PyTorch on the verification text."""

    file: str
    kind: str
    max_abs_diff: float
    mean_abs_diff: float
    agreement: float  # the lowest over the batch sizes verified
    per_language: dict[str, float]  # top-1 agreement per language (at the batch size above)
    criterion: str  # what decided `passed`, in words
    passed: bool
    texts: int = 0
    nonfinite: int = 0  # texts whose outputs hold NaN or inf where PyTorch's do not
    batch_sizes: dict[str, dict[str, float]] = field(default_factory=dict)  # size -> numbers
    confident_texts: int = 0
    confident_agreement: float | None = None
    clear_texts: int = 0  # texts that are not near-ties for PyTorch (top two >= NEAR_TIE apart)
    clear_agreement: float | None = None
    accuracy: Accuracy | None = None
    failure: str | None = None  # why it failed, in words (None when it passed)

    def agreement_text(self) -> str:
        """The top-1 agreement in words, with the agreement off near-ties when there are any."""
        text = f"top-1 agreement {self.agreement:.1%}"
        flipped = self.agreement < 1.0
        if flipped and self.clear_agreement is not None and self.clear_texts < self.texts:
            text += f" ({self.clear_agreement:.1%} off near-ties)"
        return text


def compare(
    name: str,
    kind: str,
    outputs: dict[int, np.ndarray],
    references: dict[int, np.ndarray],
    languages: Sequence[str],
    gate: Gate,
    labels: Sequence[int] | None = None,
    words: Sequence[Sequence[int]] | None = None,
) -> Check:
    """Judge `outputs` (logits per batch size) against PyTorch's `references` (same keys).

    Logits are (texts, labels), or (texts, tokens, labels) with NaN after each text's last token
    (token classification: the reference's NaN marks padding, and only real tokens count).
    `labels` are gold label ids per text (sequence classification), when the text has them.
    `words` (token classification): each word's token position per text (-1: the word has no
    token of its own); agreement is then counted per word.
    """
    import numpy as np

    sizes = sorted(outputs)
    per_size: dict[str, dict[str, float]] = {}
    worst: tuple[float, dict[str, float]] | None = None
    max_diff, mean_diff, nonfinite = 0.0, 0.0, 0
    for size in sizes:
        out, ref = outputs[size], references[size]
        real = _real_positions(ref)
        bad = _nonfinite_texts(out, real)
        nonfinite = max(nonfinite, int(bad.sum()))
        diff = np.where(real[..., None] & np.isfinite(out), np.abs(out - ref), 0.0)
        size_max = float(diff.max()) if diff.size else 0.0
        size_mean = float(diff[real].mean()) if real.any() else 0.0
        if words is not None:
            out, ref = at_words(out, words), at_words(ref, words)
            real = _real_positions(ref)
        agree = _top1_agreement(out, ref, real)
        agreement = _share(agree, real)
        per_size[str(size)] = {"max_abs_diff": size_max, "agreement": agreement}
        max_diff, mean_diff = max(max_diff, size_max), max(mean_diff, size_mean)
        per_text = _per_text(agree, real)
        if worst is None or agreement < worst[0]:
            worst = (agreement, mean_per_language(per_text, languages))
    assert worst is not None, "no batch size to compare"
    agreement, per_language = worst
    largest = sizes[-1]
    confident_texts, confident_agreement = _agreement_where(
        outputs[largest], references[largest], _confident
    )
    clear_texts, clear_agreement = _agreement_where(
        outputs[largest], references[largest], clear_of_ties
    )
    accuracy = (
        _accuracy(outputs[largest], references[largest], labels, languages)
        if labels is not None and references[largest].ndim == 2
        else None
    )
    criterion, failure = _judge(
        kind, gate, max_diff, agreement, nonfinite, confident_agreement, accuracy, len(languages)
    )
    return Check(
        file=name,
        kind=kind,
        max_abs_diff=max_diff,
        mean_abs_diff=mean_diff,
        agreement=agreement,
        per_language=per_language,
        criterion=criterion,
        passed=failure is None,
        texts=len(languages),
        nonfinite=nonfinite,
        batch_sizes=per_size,
        confident_texts=confident_texts,
        confident_agreement=confident_agreement,
        clear_texts=clear_texts,
        clear_agreement=clear_agreement,
        accuracy=accuracy,
        failure=failure,
    )


def _judge(
    kind: str,
    gate: Gate,
    max_diff: float,
    agreement: float,
    nonfinite: int,
    confident_agreement: float | None,
    accuracy: Accuracy | None,
    texts: int,
) -> tuple[str, str | None]:
    """(the criterion that decided, why it failed or None)."""
    if nonfinite:
        return "finite outputs", f"{nonfinite} of {texts} texts give non-finite logits (NaN/inf)"
    if kind == "onnx":
        if max_diff <= gate.atol:
            return "max_abs_diff <= atol", None
        return "max_abs_diff <= atol", f"max |Δlogit| {max_diff:.3g} > atol {gate.atol:g}"
    if agreement >= gate.min_agreement:
        return "agreement >= min_agreement", None
    failure = f"top-1 agreement {agreement:.2%} < min_agreement {gate.min_agreement:.2%}"
    if accuracy is None:
        return "agreement >= min_agreement", failure
    held = accuracy_held(accuracy, gate.max_accuracy_drop)
    confident_ok = confident_agreement is None or confident_agreement >= gate.min_agreement
    floor_ok = agreement >= min(AGREEMENT_FLOOR, gate.min_agreement)
    criterion = "accuracy held and confident predictions kept"
    if held is None and confident_ok and floor_ok:
        return criterion, None
    reasons = [failure]
    if not floor_ok:
        reasons.append(
            f"below {AGREEMENT_FLOOR:.0%} agreement, equal accuracy does not excuse the changes"
        )
    if held is not None:
        reasons.append(held)
    if not confident_ok:
        reasons.append(
            f"agreement on confident predictions {confident_agreement:.2%} < "
            f"{gate.min_agreement:.2%}"
        )
    return criterion, "; ".join(reasons)


def accuracy_held(accuracy: Accuracy, max_drop: float) -> str | None:
    """None when the export is as accurate as PyTorch within `max_drop` points overall and in
    every language (one example per language allowed); else what was lost, in words."""
    lost = []
    if (accuracy.pytorch - accuracy.export) * 100 > max_drop + 1e-9:
        lost.append(f"accuracy {accuracy.pytorch:.1%} → {accuracy.export:.1%}")
    for language, (before, after) in accuracy.per_language.items():
        drop = (before - after) * 100
        if drop > max_drop + 1e-9 and drop > _one_example(accuracy, language) + 1e-9:
            lost.append(f"{language} {before:.1%} → {after:.1%}")
    if not lost:
        return None
    return f"accuracy fell by more than max_accuracy_drop {max_drop:g} points: {', '.join(lost)}"


def _one_example(accuracy: Accuracy, language: str) -> float:
    count = accuracy.texts.get(language, 0)
    return 100.0 / count if count else 0.0


def at_words(logits: np.ndarray, words: Sequence[Sequence[int]]) -> np.ndarray:
    """(texts, tokens, labels) -> (texts, words, labels): each word's row at its token, NaN
    for a word without a token and after each text's last word."""
    import numpy as np

    width = max((len(row) for row in words), default=0)
    result = np.full((len(words), width, logits.shape[-1]), np.nan, dtype=logits.dtype)
    for i, row in enumerate(words):
        for w, position in enumerate(row):
            if 0 <= position < logits.shape[1]:
                result[i, w] = logits[i, position]
    return result


def _real_positions(ref: np.ndarray) -> np.ndarray:
    """(texts,) or (texts, tokens): where the reference has a real output (not padding)."""
    import numpy as np

    return ~np.isnan(ref).all(-1)


def _nonfinite_texts(out: np.ndarray, real: np.ndarray) -> np.ndarray:
    import numpy as np

    bad = ~np.isfinite(out).all(-1) & real
    return bad if bad.ndim == 1 else bad.any(-1)


def _top1_agreement(out: np.ndarray, ref: np.ndarray, real: np.ndarray) -> np.ndarray:
    """Top-1 agreement per output row; a non-finite row never agrees."""
    import numpy as np

    finite = np.isfinite(out).all(-1)
    same = np.argmax(np.nan_to_num(out, nan=-np.inf), -1) == np.argmax(
        np.nan_to_num(ref, nan=-np.inf), -1
    )
    return same & finite & real


def _share(agree: np.ndarray, real: np.ndarray) -> float:
    return float(agree[real].mean()) if real.any() else 1.0


def _per_text(agree: np.ndarray, real: np.ndarray) -> list[float]:
    if agree.ndim == 1:
        return [float(a) for a in agree]
    return [float(agree[i][real[i]].mean()) if real[i].any() else 1.0 for i in range(len(agree))]


def _agreement_where(
    out: np.ndarray, ref: np.ndarray, select: Callable[[np.ndarray], np.ndarray]
) -> tuple[int, float | None]:
    """How many texts `select(ref)` picks, and the export's top-1 agreement on them
    (sequence classification only; None when no text is picked)."""
    import numpy as np

    if ref.ndim != 2 or not len(ref):
        return 0, None
    chosen = select(ref)
    if not chosen.any():
        return 0, None
    agree = _top1_agreement(out, ref, np.ones(len(ref), dtype=bool))
    return int(chosen.sum()), float(agree[chosen].mean())


def _confident(logits: np.ndarray) -> np.ndarray:
    """The texts whose top softmax probability is at least CONFIDENT."""
    import numpy as np

    shifted = logits - logits.max(-1, keepdims=True)
    probability = (np.exp(shifted) / np.exp(shifted).sum(-1, keepdims=True)).max(-1)
    return probability >= CONFIDENT


def clear_of_ties(logits: np.ndarray) -> np.ndarray:
    """The texts (rows of `logits`) whose top two logits are at least NEAR_TIE apart."""
    import numpy as np

    top2 = np.sort(logits, -1)[:, -2:]
    return top2[:, 1] - top2[:, 0] >= NEAR_TIE


def _accuracy(
    out: np.ndarray, ref: np.ndarray, labels: Sequence[int], languages: Sequence[str]
) -> Accuracy:
    import numpy as np

    gold = np.asarray(labels)
    finite = np.isfinite(out).all(-1)
    right_export = (np.argmax(np.nan_to_num(out, nan=-np.inf), -1) == gold) & finite
    right_torch = np.argmax(ref, -1) == gold
    per_language: dict[str, tuple[float, float]] = {}
    counts: dict[str, int] = {}
    for language in sorted(set(languages)):
        rows = np.asarray([lang == language for lang in languages])
        per_language[language] = (
            float(right_torch[rows].mean()),
            float(right_export[rows].mean()),
        )
        counts[language] = int(rows.sum())
    return Accuracy(float(right_torch.mean()), float(right_export.mean()), per_language, counts)
