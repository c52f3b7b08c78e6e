"""Tags of token classification (slots, named entities): schemes, normalisation, entity spans.

kdcli reads IOB1, IOB2 and BIOES (also written BILOU) tags and keeps IOB2 inside: `B-TYPE` starts
an entity, `I-TYPE` continues it, `O` is outside. One scheme everywhere means a model's labels and
the data's tags are matched by name, and an entity is the same span whatever file it came from.

Entities are read with seqeval's *strict* definition (exact span and type): an entity is a `B-X`
followed by any `I-X`; an `I-X` that does not continue an `X` entity belongs to no entity.
`TagCounts` holds what precision, recall and F1 need, so training's dev evaluation and `kdcli eval`
score with this one implementation (tests check it against the seqeval package).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from kdcli.core.errors import KdcliError, option_ref

SCHEMES = ("auto", "iob1", "iob2", "bioes")
OUTSIDE = "O"
# Prefixes of each scheme as written in data; BILOU's L and U are BIOES's E and S.
_PREFIXES = {"iob1": "BI", "iob2": "BI", "bioes": "BIESLU"}
_SEPARATORS = ("-", "_")


@dataclass(frozen=True)
class Entity:
    type: str
    start: int  # first word
    end: int  # one past the last word


def split_tag(tag: str) -> tuple[str, str]:
    """("B", "PER") for "B-PER"; ("O", "") for "O". Raises ValueError for anything else."""
    if tag == OUTSIDE:
        return OUTSIDE, ""
    for separator in _SEPARATORS:
        prefix, sep, kind = tag.partition(separator)
        if sep and len(prefix) == 1 and prefix.upper() in "BIESLU" and kind:
            return prefix.upper(), kind
    raise ValueError(tag)


def detect_scheme(sequences: Iterable[Sequence[str]]) -> str:
    """The scheme of `sequences` (valid tags assumed): bioes when any E/S/L/U prefix occurs,
    iob1 when an entity starts with I- (which IOB2 forbids), else iob2."""
    seen_iob1 = False
    for tags in sequences:
        previous = OUTSIDE
        for tag in tags:
            prefix, kind = split_tag(tag)
            if prefix in "ESLU":
                return "bioes"
            if prefix == "I" and previous not in (f"B-{kind}", f"I-{kind}"):
                seen_iob1 = True
            previous = OUTSIDE if prefix == OUTSIDE else f"{prefix}-{kind}"
    return "iob1" if seen_iob1 else "iob2"


def check_scheme(scheme: str) -> str:
    name = scheme.lower()
    if name not in SCHEMES:
        raise KdcliError(
            "is unknown",
            option="tag_scheme",
            value=scheme,
            fix=f"choose {', '.join(SCHEMES)} (auto detects it)",
        )
    return name


def to_iob2(tags: Sequence[str], scheme: str, where: str) -> list[str]:
    """`tags` of `scheme` (iob1 | iob2 | bioes) as IOB2; `where` names the example in errors.

    An I-X that does not continue an X entity starts one (IOB1's rule, and how seqeval reads a
    stray I- by default), so IOB1 and slightly broken IOB2 both come out as valid IOB2.
    """
    out: list[str] = []
    allowed = _PREFIXES[scheme]
    for tag in tags:
        try:
            prefix, kind = split_tag(str(tag))
        except ValueError:
            raise KdcliError(
                f"{where}: tag {tag!r} is not in a known scheme: use O, B-TYPE, I-TYPE (IOB1, "
                "IOB2) or also E-TYPE, S-TYPE (BIOES)"
            ) from None
        if prefix != OUTSIDE and prefix not in allowed:
            raise KdcliError(
                f"{where}: tag {tag!r} is not a {scheme.upper()} tag: pass "
                f"{option_ref('tag_scheme')} bioes, or {option_ref('tag_scheme')} auto to detect "
                "the scheme"
            )
        if prefix == OUTSIDE:
            out.append(OUTSIDE)
        elif prefix in "BSU":
            out.append(f"B-{kind}")
        else:  # I, E, L continue an entity of their type, or start one
            previous = out[-1] if out else OUTSIDE
            continues = previous in (f"B-{kind}", f"I-{kind}")
            out.append(f"I-{kind}" if continues else f"B-{kind}")
    return out


def entities(tags: Sequence[str]) -> list[Entity]:
    """The entities of one IOB2 sequence, strictly: B-X starts one, I-X continues it."""
    found: list[Entity] = []
    kind: str | None = None
    start = 0
    for index, tag in enumerate([*tags, OUTSIDE]):
        try:
            prefix, tag_kind = split_tag(tag)
        except ValueError:
            prefix, tag_kind = OUTSIDE, ""
        if kind is not None and not (prefix == "I" and tag_kind == kind):
            found.append(Entity(kind, start, index))
            kind = None
        if prefix == "B":
            kind, start = tag_kind, index
    return found


def entity_types(tags: Iterable[str]) -> list[str]:
    """The entity types that IOB2 tag names mention, sorted."""
    types = set()
    for tag in tags:
        try:
            prefix, kind = split_tag(tag)
        except ValueError:
            continue
        if prefix != OUTSIDE:
            types.add(kind)
    return sorted(types)


@dataclass
class TagCounts:
    """Counts for entity precision/recall/F1 (overall and per type) and word accuracy."""

    true_positives: int = 0
    predicted: int = 0
    gold: int = 0
    words: int = 0
    correct_words: int = 0
    by_type: dict[str, list[int]] = field(default_factory=dict)  # type -> [tp, predicted, gold]

    def add(self, gold: Sequence[str], predicted: Sequence[str]) -> tuple[int, int, int]:
        """Count one sequence (gold and predicted tags per word); returns its own entity counts
        (true positives, predicted, gold), which a bootstrap over sentences resamples."""
        if len(gold) != len(predicted):
            raise ValueError(f"{len(predicted)} predicted tags for {len(gold)} words")
        gold_entities = set(entities(gold))
        predicted_entities = set(entities(predicted))
        hits = gold_entities & predicted_entities
        self.true_positives += len(hits)
        self.predicted += len(predicted_entities)
        self.gold += len(gold_entities)
        self.words += len(gold)
        self.correct_words += sum(g == p for g, p in zip(gold, predicted, strict=True))
        for column, group in enumerate((hits, predicted_entities, gold_entities)):
            for entity in group:
                self.by_type.setdefault(entity.type, [0, 0, 0])[column] += 1
        return len(hits), len(predicted_entities), len(gold_entities)

    def merge(self, other: TagCounts) -> None:
        self.true_positives += other.true_positives
        self.predicted += other.predicted
        self.gold += other.gold
        self.words += other.words
        self.correct_words += other.correct_words
        for kind, counts in other.by_type.items():
            mine = self.by_type.setdefault(kind, [0, 0, 0])
            for i in range(3):
                mine[i] += counts[i]

    @property
    def precision(self) -> float:
        return self.true_positives / self.predicted if self.predicted else 0.0

    @property
    def recall(self) -> float:
        return self.true_positives / self.gold if self.gold else 0.0

    @property
    def f1(self) -> float:
        return f1_score(self.true_positives, self.predicted, self.gold)

    @property
    def accuracy(self) -> float:
        return self.correct_words / self.words if self.words else 0.0

    def type_f1(self) -> dict[str, float]:
        """F1 of every entity type seen in the gold tags or the predictions, types sorted."""
        return {kind: f1_score(*self.by_type[kind]) for kind in sorted(self.by_type)}

    def macro_f1(self) -> float:
        """The unweighted mean of the per-type F1 (seqeval's macro average)."""
        scores = self.type_f1()
        return sum(scores.values()) / len(scores) if scores else 0.0


def f1_score(true_positives: int, predicted: int, gold: int) -> float:
    """2TP / (predicted + gold): the F1 of precision and recall, 0 when nothing was there."""
    return 2 * true_positives / (predicted + gold) if predicted + gold else 0.0


def count_tags(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]) -> TagCounts:
    counts = TagCounts()
    for g, p in zip(gold, predicted, strict=True):
        counts.add(g, p)
    return counts


def tag_names(sequences: Iterable[Sequence[str]]) -> list[str]:
    """The tags of IOB2 data as a model's labels: O first, then B-/I- of every type, sorted by
    type, so every source of the same data gives the same ids (and both prefixes exist even
    when one never occurs in the data)."""
    types = entity_types(tag for tags in sequences for tag in tags)
    return [OUTSIDE, *(f"{p}-{kind}" for kind in types for p in "BI")]
