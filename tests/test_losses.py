"""Distillation losses against values computed by hand."""

from __future__ import annotations

import math

import pytest
import torch

from kdcli.training import losses


def test_cross_entropy_of_uniform_logits_is_log_of_the_class_count():
    logits = torch.zeros((2, 4))
    assert losses.cross_entropy(logits, torch.tensor([0, 3])).item() == pytest.approx(math.log(4))


def test_logit_mse_averages_over_examples_and_classes():
    student = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    teacher = torch.tensor([[1.0, 0.0], [0.0, 4.0]])
    # squared differences 0, 4, 9, 0 -> mean 13 / 4
    assert losses.logit_mse(student, teacher).item() == pytest.approx(3.25)


@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_logit_kl_is_the_softened_kl_times_t_squared(temperature):
    student = torch.tensor([[0.0, 0.0]])
    teacher = torch.tensor([[math.log(3.0), 0.0]])
    # by hand: p_teacher = softmax(teacher / T), p_student = (1/2, 1/2)
    a = math.exp(math.log(3.0) / temperature)
    p = [a / (a + 1), 1 / (a + 1)]
    kl = sum(pi * math.log(pi / 0.5) for pi in p)
    expected = kl * temperature**2
    assert losses.logit_kl(student, teacher, temperature).item() == pytest.approx(expected)
    if temperature == 1.0:
        assert expected == pytest.approx(0.75 * math.log(1.5) + 0.25 * math.log(0.5))


def test_logit_kl_is_zero_for_identical_logits_and_averages_over_the_batch():
    logits = torch.tensor([[1.0, -2.0, 0.5], [0.0, 3.0, 1.0]])
    assert losses.logit_kl(logits, logits, 2.0).item() == pytest.approx(0.0, abs=1e-7)
    one = losses.logit_kl(logits[:1], torch.zeros((1, 3)), 1.0)
    two = losses.logit_kl(torch.cat([logits[:1], logits[:1]]), torch.zeros((2, 3)), 1.0)
    assert two.item() == pytest.approx(one.item())  # batchmean, not sum


def test_kd_loss_dispatches_and_rejects_unknown_kinds():
    s, t = torch.tensor([[1.0, 2.0]]), torch.tensor([[0.0, 2.0]])
    assert losses.kd_loss("mse", s, t, 1.0).item() == pytest.approx(0.5)
    assert losses.kd_loss("kl", s, t, 3.0).item() == pytest.approx(
        losses.logit_kl(s, t, 3.0).item()
    )
    with pytest.raises(ValueError, match="cosine"):
        losses.kd_loss("cosine", s, t, 1.0)


def test_hidden_mse_ignores_padding_and_averages_layers():
    student = torch.tensor([[[1.0, 1.0], [5.0, 5.0]]])  # [batch 1, 2 tokens, width 2]
    teacher = torch.tensor([[[0.0, 3.0], [0.0, 0.0]]])
    mask = torch.tensor([[1, 0]])  # the second token is padding
    # real token: differences (1, -2) -> squares 1 + 4 over 1 token x 2 channels = 2.5
    assert losses.hidden_mse([student], [teacher], mask).item() == pytest.approx(2.5)
    same = losses.hidden_mse([student, teacher], [teacher, teacher], mask)
    assert same.item() == pytest.approx(1.25)  # mean of 2.5 and 0
    with pytest.raises(ValueError):
        losses.hidden_mse([], [], mask)


def test_combine_weights_kd_against_cross_entropy():
    kd, ce, hidden = torch.tensor(4.0), torch.tensor(2.0), torch.tensor(2.0)
    assert losses.combine(kd, ce, 0.25).item() == pytest.approx(0.25 * 4 + 0.75 * 2)
    assert losses.combine(kd, ce, 0.25, hidden, 0.5).item() == pytest.approx(2.5 + 1.0)
    assert losses.combine(None, ce, 0.9).item() == pytest.approx(2.0)  # no teacher: plain CE
    assert losses.combine(kd, ce, 1.0).item() == pytest.approx(4.0)


def test_losses_have_gradients_toward_the_teacher():
    student = torch.tensor([[0.0, 0.0]], requires_grad=True)
    teacher = torch.tensor([[2.0, 0.0]])
    losses.logit_mse(student, teacher).backward()
    assert student.grad is not None
    assert student.grad[0, 0] < 0  # raise the logit the teacher rates higher
    assert student.grad[0, 1] == 0  # and leave the one that already matches
