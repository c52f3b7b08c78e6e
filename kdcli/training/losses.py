"""Distillation losses as plain functions of tensors (no models, no state).

The study behind kdcli distils with the mean squared error between student and teacher logits
(`logit_mse`); `logit_kl` is Hinton's temperature-softened KL divergence. `combine` mixes the
distillation term with cross-entropy on the gold labels and an optional hidden-state term.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


def cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of `logits` [batch, classes] against gold label ids [batch], or for
    token classification of [batch, tokens, classes] against [batch, tokens], where tokens
    labelled -100 (not a word's first sub-token, special tokens, padding) are left out."""
    if logits.ndim == 3:
        return F.cross_entropy(logits.float().flatten(0, 1), labels.flatten(), ignore_index=-100)
    return F.cross_entropy(logits.float(), labels)


def logit_mse(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Mean squared error between logits, averaged over examples and classes."""
    return F.mse_loss(student.float(), teacher.float())


def logit_kl(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(teacher || student) of the softened distributions, times T².

    The T² factor keeps the gradient scale independent of the temperature (Hinton et al. 2015),
    so `--alpha` means the same thing at every temperature.
    """
    log_p_student = F.log_softmax(student.float() / temperature, dim=-1)
    log_p_teacher = F.log_softmax(teacher.float() / temperature, dim=-1)
    kl = F.kl_div(log_p_student, log_p_teacher, reduction="batchmean", log_target=True)
    return kl * temperature**2


def kd_loss(
    kind: str, student: torch.Tensor, teacher: torch.Tensor, temperature: float
) -> torch.Tensor:
    """The logit distillation loss chosen by `--kd-loss`."""
    if kind == "mse":
        return logit_mse(student, teacher)
    if kind == "kl":
        return logit_kl(student, teacher, temperature)
    raise ValueError(f"unknown distillation loss {kind!r}: choose mse or kl")


def hidden_mse(
    student: Sequence[torch.Tensor], teacher: Sequence[torch.Tensor], mask: torch.Tensor
) -> torch.Tensor:
    """Mean squared error between paired hidden states, over real tokens only.

    `student[i]` and `teacher[i]` are [batch, tokens, width] (the student's already projected to
    the teacher's width); `mask` is the attention mask [batch, tokens]. Padding positions carry no
    meaning, so they are left out of the mean; the result is averaged over the layer pairs.
    """
    if not student:
        raise ValueError("hidden_mse needs at least one pair of hidden states")
    weights = mask.unsqueeze(-1).float()
    count = weights.sum() * student[0].shape[-1]
    losses = [
        (((s.float() - t.float()) ** 2) * weights).sum() / count
        for s, t in zip(student, teacher, strict=True)
    ]
    return torch.stack(losses).mean()


def combine(
    kd: torch.Tensor | None,
    ce: torch.Tensor,
    alpha: float,
    hidden: torch.Tensor | None = None,
    hidden_weight: float = 0.0,
) -> torch.Tensor:
    """alpha * kd + (1 - alpha) * ce (+ hidden_weight * hidden); no kd term means plain ce."""
    total = ce if kd is None else alpha * kd + (1.0 - alpha) * ce
    if hidden is not None and hidden_weight:
        total = total + hidden_weight * hidden
    return total
