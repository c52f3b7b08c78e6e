"""What the training loop minimises for a classifier: cross-entropy on the gold labels, plus,
when there is a teacher, logit distillation and an optional hidden-state loss.

Token classification is the same objective per word: cross-entropy on each word's token (its
first sub-token with content, `kdcli.data.batching.encode_words`), and distillation between the
student's and the teacher's logits *of the same word*, so the two may tokenize differently.

Fine-tuning is this objective without a teacher; `kdcli finetune` and `kdcli distill` build the
same kind of `TrainTask` here and hand it to the one loop in `kdcli.training.loop`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from kdcli.data.batching import MODEL_INPUTS, Encoded, collate, token_labels
from kdcli.training import losses
from kdcli.training.loop import EvalSet, TrainTask
from kdcli.training.teacher_cache import TeacherOutputs

if TYPE_CHECKING:
    from transformers import PreTrainedModel


@dataclass(frozen=True)
class KdSettings:
    """How the distillation terms are weighted (resolved: no None left)."""

    kd_loss: str = "mse"
    alpha: float = 0.5
    temperature: float = 1.0
    hidden_weight: float = 0.0


class StudentWithProjection(torch.nn.Module):
    """The student classifier plus what only training needs: its hidden states for the
    hidden-state loss, projected to the teacher's width by a learned linear map (TinyBERT's W_h)
    when the widths differ. Only `classifier` is saved at the end."""

    def __init__(
        self, classifier: PreTrainedModel, student_layers: Sequence[int], teacher_width: int
    ) -> None:
        super().__init__()
        self.classifier = classifier
        self.student_layers = list(student_layers)
        width = int(classifier.config.hidden_size)
        self.projection = (
            torch.nn.Linear(width, teacher_width) if width != teacher_width else torch.nn.Identity()
        )

    def forward(self, **inputs: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        out = self.classifier(**inputs, output_hidden_states=True)
        # hidden_states[0] is the embedding output; layer i's output is hidden_states[i + 1]
        hidden = [self.projection(out.hidden_states[i + 1]) for i in self.student_layers]
        return out.logits, hidden


def classification_task(
    classifier: PreTrainedModel,
    train: Encoded,
    train_labels: Sequence[int],
    dev: EvalSet,
    teacher: TeacherOutputs | None = None,
    teacher_order: Sequence[int] | None = None,
    kd: KdSettings | None = None,
    layer_pairs: Sequence[tuple[int, int]] = (),
    word_labels: Sequence[Sequence[int]] | None = None,
) -> TrainTask:
    """The loop's task: cross-entropy, and distillation from `teacher` when one is given.

    `teacher_order[j]` is the teacher's logit column for the student's label j (labels are
    matched by name, so the two heads may order them differently); `layer_pairs` lists
    (student layer, teacher layer) for the hidden-state loss. `word_labels` (token
    classification) are each example's tag ids per word; `train_labels` is then unused.
    """
    kd = kd or KdSettings()
    use_hidden = teacher is not None and kd.hidden_weight > 0 and bool(layer_pairs)
    module: torch.nn.Module = classifier
    if use_hidden:
        assert teacher is not None
        teacher_width = next(iter(teacher.hidden.values())).shape[-1]
        module = StudentWithProjection(classifier, [s for s, _ in layer_pairs], teacher_width)
    labels = torch.tensor(list(train_labels) if word_labels is None else [], dtype=torch.long)
    order = torch.tensor(list(teacher_order), dtype=torch.long) if teacher_order else None
    teacher_layers = [t for _, t in layer_pairs] if use_hidden else []

    def make_batch(indices: Sequence[int]) -> dict[str, torch.Tensor]:
        batch = collate(train, indices)
        index = torch.tensor(list(indices), dtype=torch.long)
        width = batch["input_ids"].shape[1]
        if word_labels is not None:
            batch["labels"] = token_labels(train, indices, word_labels, width)
        else:
            batch["labels"] = labels[index]
        if teacher is not None and word_labels is not None:
            rows, positions, logits = teacher.word_batch(indices, train)
            batch["word_rows"], batch["word_positions"] = rows, positions
            batch["teacher_logits"] = logits[:, order] if order is not None else logits
        elif teacher is not None:
            logits = teacher.logits[index]
            batch["teacher_logits"] = logits[:, order] if order is not None else logits
        if teacher is not None:
            for position, layer in enumerate(teacher_layers):
                batch[f"teacher_hidden_{position}"] = teacher.hidden_batch(layer, indices, width)
        return batch

    def loss(
        model: torch.nn.Module, batch: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        inputs = {name: batch[name] for name in MODEL_INPUTS if name in batch}
        if use_hidden:
            logits, hidden = model(**inputs)
        else:
            logits, hidden = model(**inputs).logits, []
        ce = losses.cross_entropy(logits, batch["labels"])
        parts: dict[str, Any] = {"ce": ce.detach()}
        kd_term = hidden_term = None
        if teacher is not None:
            student = logits
            if "word_rows" in batch:  # token classification: the same words, side by side
                student = logits[batch["word_rows"], batch["word_positions"]]
            if student.shape[0]:
                kd_term = losses.kd_loss(
                    kd.kd_loss, student, batch["teacher_logits"], kd.temperature
                )
            else:  # no word of this batch has a token in both models
                kd_term = logits.sum() * 0.0
            parts["kd"] = kd_term.detach()
        if use_hidden:
            targets = [batch[f"teacher_hidden_{i}"] for i in range(len(teacher_layers))]
            hidden_term = losses.hidden_mse(hidden, targets, batch["attention_mask"])
            parts["hidden"] = hidden_term.detach()
        total = losses.combine(kd_term, ce, kd.alpha, hidden_term, kd.hidden_weight)
        return total, parts

    return TrainTask(
        module=module,
        classifier=classifier,
        train_lengths=train.lengths(),
        make_batch=make_batch,
        loss=loss,
        dev=dev,
    )
