"""Architecture adapters: where each encoder keeps its layers and what each tensor dimension means.

Each supported family is described as data: a rule per tensor name pattern that gives the *role* of
each of its dimensions. Slicing a student out of a teacher is then one generic operation: for each
tensor, select the kept indices of every dimension's role. Roles:

- `vocab`:  token rows of the embedding matrix
- `hidden`: the residual stream (shared by every layer)
- `emb`:    the embedding width; the same as `hidden` unless the model projects embeddings up
- `attn`:   one layer's attention width (heads x head size)
- `qkv`:    a fused query/key/value projection (3 x `attn`)
- `inter`:  one layer's feed-forward width
- `glu`:    a fused gated feed-forward input (2 x `inter`)
- `None`:   kept whole (positions, token types, labels, relative-position buckets)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from kdcli.core.errors import KdcliError

Role = Literal["vocab", "hidden", "emb", "attn", "qkv", "inter", "glu"]
Roles = tuple[Role | None, ...]  # one per tensor dimension
_LN = r"(?:weight|bias|gamma|beta)"


@dataclass(frozen=True)
class Rule:
    pattern: str  # regex; "{p}" is the base-model prefix, "{L}" a layer number
    roles: Roles


@dataclass(frozen=True)
class ConfigKeys:
    layers: str = "num_hidden_layers"
    hidden: str = "hidden_size"
    intermediate: str = "intermediate_size"
    heads: str = "num_attention_heads"


@dataclass(frozen=True)
class Architecture:
    family: str
    model_types: tuple[str, ...]
    prefix: str  # attribute holding the base model in task models ("roberta", "bert", ...)
    rules: tuple[Rule, ...]
    keys: ConfigKeys = ConfigKeys()
    dropped: tuple[str, ...] = ()  # pre-training heads that students do not keep
    embedding_size_key: str | None = None  # config key of an embedding width that may differ
    absent: tuple[str, ...] = ()  # student tensor names the model class does not have

    def teacher_dims(self, config: dict[str, Any]) -> dict[str, int]:
        keys = self.keys
        return {
            "layers": int(config[keys.layers]),
            "hidden": int(config[keys.hidden]),
            "intermediate": int(config[keys.intermediate]),
            "heads": int(config[keys.heads]),
        }

    def embedding_tied_to_hidden(self, config: dict[str, Any]) -> bool:
        """True when the embedding width is the hidden size (so it shrinks with it)."""
        if self.embedding_size_key is None:
            return True
        size = config.get(self.embedding_size_key)
        return size is None or int(size) == int(config[self.keys.hidden])


def _bias_pair(stem: str, out_role: Role | None, in_role: Role | None) -> tuple[Rule, Rule]:
    return Rule(stem + r"\.weight", (out_role, in_role)), Rule(stem + r"\.bias", (out_role,))


def _ln(stem: str, role: Role) -> Rule:
    return Rule(stem + r"\." + _LN, (role,))


_CLASSIFIER_HEADS = (
    # RoBERTa / XLM-R / ELECTRA sequence classification: dense + out_proj
    *_bias_pair(r"classifier\.dense", "hidden", "hidden"),
    *_bias_pair(r"classifier\.out_proj", None, "hidden"),
    # BERT / DeBERTa / DistilBERT / ModernBERT / any token classification: a single linear
    *_bias_pair(r"classifier", None, "hidden"),
)
_COMMON_DROPPED = (r".*position_ids$", r".*\.masked_bias$")

_BERT_LAYER = r"{p}encoder\.layer\.{L}\."
_BERT_RULES = (
    Rule(r"{p}embeddings\.word_embeddings\.weight", ("vocab", "emb")),
    Rule(r"{p}embeddings\.position_embeddings\.weight", (None, "emb")),
    Rule(r"{p}embeddings\.token_type_embeddings\.weight", (None, "emb")),
    _ln(r"{p}embeddings\.LayerNorm", "emb"),
    *_bias_pair(r"{p}embeddings_project", "hidden", "emb"),  # ELECTRA
    *_bias_pair(_BERT_LAYER + r"attention\.self\.(?:query|key|value)", "attn", "hidden"),
    *_bias_pair(_BERT_LAYER + r"attention\.output\.dense", "hidden", "attn"),
    _ln(_BERT_LAYER + r"attention\.output\.LayerNorm", "hidden"),
    *_bias_pair(_BERT_LAYER + r"intermediate\.dense", "inter", "hidden"),
    *_bias_pair(_BERT_LAYER + r"output\.dense", "hidden", "inter"),
    _ln(_BERT_LAYER + r"output\.LayerNorm", "hidden"),
    *_bias_pair(r"{p}pooler\.dense", "hidden", "hidden"),
    *_CLASSIFIER_HEADS,
)

_DISTIL_LAYER = r"{p}transformer\.layer\.{L}\."
_DISTILBERT_RULES = (
    Rule(r"{p}embeddings\.word_embeddings\.weight", ("vocab", "hidden")),
    Rule(r"{p}embeddings\.position_embeddings\.weight", (None, "hidden")),
    _ln(r"{p}embeddings\.LayerNorm", "hidden"),
    *_bias_pair(_DISTIL_LAYER + r"attention\.(?:q_lin|k_lin|v_lin)", "attn", "hidden"),
    *_bias_pair(_DISTIL_LAYER + r"attention\.out_lin", "hidden", "attn"),
    _ln(_DISTIL_LAYER + r"sa_layer_norm", "hidden"),
    *_bias_pair(_DISTIL_LAYER + r"ffn\.lin1", "inter", "hidden"),
    *_bias_pair(_DISTIL_LAYER + r"ffn\.lin2", "hidden", "inter"),
    _ln(_DISTIL_LAYER + r"output_layer_norm", "hidden"),
    *_bias_pair(r"pre_classifier", "hidden", "hidden"),
    *_CLASSIFIER_HEADS,
)

_DEBERTA_LAYER = r"{p}encoder\.layer\.{L}\."
_DEBERTA_RULES = (
    Rule(r"{p}embeddings\.word_embeddings\.weight", ("vocab", "emb")),
    Rule(r"{p}embeddings\.position_embeddings\.weight", (None, "emb")),
    Rule(r"{p}embeddings\.token_type_embeddings\.weight", (None, "emb")),
    _ln(r"{p}embeddings\.LayerNorm", "emb"),
    Rule(r"{p}embeddings\.embed_proj\.weight", ("hidden", "emb")),
    *_bias_pair(
        _DEBERTA_LAYER
        + r"attention\.self\.(?:query_proj|key_proj|value_proj|pos_key_proj|pos_query_proj)",
        "attn",
        "hidden",
    ),
    *_bias_pair(_DEBERTA_LAYER + r"attention\.output\.dense", "hidden", "attn"),
    _ln(_DEBERTA_LAYER + r"attention\.output\.LayerNorm", "hidden"),
    *_bias_pair(_DEBERTA_LAYER + r"intermediate\.dense", "inter", "hidden"),
    *_bias_pair(_DEBERTA_LAYER + r"output\.dense", "hidden", "inter"),
    _ln(_DEBERTA_LAYER + r"output\.LayerNorm", "hidden"),
    Rule(r"{p}encoder\.rel_embeddings\.weight", (None, "hidden")),
    _ln(r"{p}encoder\.LayerNorm", "hidden"),
    *_bias_pair(r"pooler\.dense", "hidden", "hidden"),
    *_CLASSIFIER_HEADS,
)

_MODERN_LAYER = r"{p}layers\.{L}\."
_MODERNBERT_RULES = (
    Rule(r"{p}embeddings\.tok_embeddings\.weight", ("vocab", "hidden")),
    _ln(r"{p}embeddings\.norm", "hidden"),
    _ln(_MODERN_LAYER + r"attn_norm", "hidden"),
    *_bias_pair(_MODERN_LAYER + r"attn\.Wqkv", "qkv", "hidden"),
    *_bias_pair(_MODERN_LAYER + r"attn\.Wo", "hidden", "attn"),
    _ln(_MODERN_LAYER + r"mlp_norm", "hidden"),
    *_bias_pair(_MODERN_LAYER + r"mlp\.Wi", "glu", "hidden"),
    *_bias_pair(_MODERN_LAYER + r"mlp\.Wo", "hidden", "inter"),
    _ln(r"{p}final_norm", "hidden"),
    *_bias_pair(r"head\.dense", "hidden", "hidden"),
    _ln(r"head\.norm", "hidden"),
    *_CLASSIFIER_HEADS,
)

ARCHITECTURES: tuple[Architecture, ...] = (
    Architecture(
        "XLM-RoBERTa / RoBERTa",
        ("xlm-roberta", "roberta", "camembert"),
        "roberta",
        _BERT_RULES,
        dropped=(r"lm_head\..*",),
    ),
    Architecture(
        "BERT (mBERT)",
        ("bert",),
        "bert",
        _BERT_RULES,
        dropped=(r"cls\..*",),
    ),
    Architecture(
        "ELECTRA",
        ("electra",),
        "electra",
        _BERT_RULES,
        dropped=(r"generator_.*", r"discriminator_predictions\..*"),
        embedding_size_key="embedding_size",
    ),
    Architecture(
        "DistilBERT",
        ("distilbert",),
        "distilbert",
        _DISTILBERT_RULES,
        keys=ConfigKeys(
            layers="n_layers", hidden="dim", intermediate="hidden_dim", heads="n_heads"
        ),
        dropped=(r"vocab_transform\..*", r"vocab_layer_norm\..*", r"vocab_projector\..*"),
    ),
    Architecture(
        "DeBERTa-v2 (mDeBERTa-v3)",
        ("deberta-v2",),
        "deberta",
        _DEBERTA_RULES,
        dropped=(r"lm_predictions\..*", r"mask_predictions\..*", r"cls\..*"),
        embedding_size_key="embedding_size",
    ),
    Architecture(
        "ModernBERT (mmBERT)",
        ("modernbert",),
        "model",
        _MODERNBERT_RULES,
        dropped=(r"decoder\..*",),
        # ModernBERT's first layer has no attention norm (the embeddings are already normed), so
        # a later teacher layer that becomes the student's first loses its norm.
        absent=(r"{p}layers\.0\.attn_norm\..*",),
    ),
)


def supported_model_types() -> list[str]:
    return sorted(t for arch in ARCHITECTURES for t in arch.model_types)


def family_of(model_type: object) -> Architecture | None:
    """The layout of a model type (None: not one kdcli knows), before any variant check."""
    return next((arch for arch in ARCHITECTURES if model_type in arch.model_types), None)


def architecture_for(config: dict[str, Any], source: str) -> Architecture:
    model_type = config.get("model_type")
    arch = family_of(model_type)
    if arch is not None:
        _check_variant(arch, config, source)
        return arch
    raise KdcliError(
        f"{source}: model type {model_type!r} is not supported; kdcli shrinks "
        f"{', '.join(supported_model_types())}"
    )


def _check_variant(arch: Architecture, config: dict[str, Any], source: str) -> None:
    if arch.family.startswith("DeBERTa") and int(config.get("conv_kernel_size", 0) or 0) > 0:
        raise KdcliError(f"{source}: DeBERTa-v2 with a convolution layer is not supported")
    if arch.family.startswith("DeBERTa"):
        head_size = config.get("attention_head_size")
        if head_size and int(head_size) * int(config["num_attention_heads"]) != int(
            config["hidden_size"]
        ):
            raise KdcliError(f"{source}: DeBERTa-v2 with attention_head_size != hidden/heads")


@dataclass(frozen=True)
class TensorPlan:
    """Where one student tensor comes from: the teacher tensor and each dimension's role."""

    teacher_name: str
    student_name: str
    layer: int | None  # teacher layer index, for per-layer roles
    roles: Roles


class TensorMatcher:
    """Matches a checkpoint's tensor names against an architecture's rules."""

    def __init__(self, arch: Architecture, names: list[str]) -> None:
        self.arch = arch
        base = arch.prefix + "."
        self.prefix = base if any(n.startswith(base) for n in names) else ""
        self._rules = [
            (re.compile(_expand(rule.pattern, self.prefix)), rule.roles) for rule in arch.rules
        ]
        self._dropped = [re.compile(p) for p in (*_COMMON_DROPPED, *arch.dropped)]
        self._absent = [re.compile(_expand(p, self.prefix)) for p in arch.absent]

    def absent_in_student(self, student_name: str) -> bool:
        return any(regex.fullmatch(student_name) for regex in self._absent)

    def match(self, name: str) -> tuple[int | None, Roles] | None:
        """(layer, roles) for a kept tensor, None for a dropped one; unknown names are errors."""
        for regex, roles in self._rules:
            found = regex.fullmatch(name)
            if found:
                layer = found.groupdict().get("layer")
                return (int(layer) if layer is not None else None), roles
        if any(regex.fullmatch(name) for regex in self._dropped):
            return None
        raise KdcliError(
            f"tensor {name!r} is not part of any {self.arch.family} layout kdcli knows: "
            "this model variant is not supported"
        )

    def layer_prefix_regex(self) -> re.Pattern[str]:
        """Matches the layer number inside a tensor name, for renumbering."""
        for rule in self.arch.rules:
            if "{L}" in rule.pattern:
                head = rule.pattern.split("{L}")[0]
                return re.compile("^(" + _expand(head, self.prefix) + r")(\d+)(\..*)$")
        raise AssertionError("architecture without layers")


def _expand(pattern: str, prefix: str) -> str:
    return pattern.replace("{p}", re.escape(prefix)).replace("{L}", r"(?P<layer>\d+)")
