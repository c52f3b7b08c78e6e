"""The report of `kdcli study`: every cell against the teacher, and seeds folded into mean ± spread.

Rows are grouped as in the study: initialization (copy of the fine-tuned teacher, copy of the
pre-trained encoder, random) × objective (KD, no KD), then depth. A cell's accuracy is the
macro accuracy (the unweighted mean over languages, the study's headline number); its retention
is that accuracy as a share of the teacher's; the worst-language retention is the lowest, over
languages, of the cell's accuracy as a share of the teacher's on that language. The spread is the
sample standard deviation over seeds.

`build_cells` and `build_groups` are pure; `write_report` writes report.md, report.json,
report.csv and (with matplotlib) report.png, each atomically.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kdcli.core.formatting import duration_text
from kdcli.core.results import JsonResult
from kdcli.files.outputs import save_figure_atomic, write_text_atomic
from kdcli.files.provenance import dumps

INIT_NAMES = {
    "teacher": "copy of the fine-tuned teacher",
    "pretrained": "copy of the pre-trained encoder",
    "random": "random",
}
SHORT_INIT = {"teacher": "fine-tuned copy", "pretrained": "pre-trained copy", "random": "random"}


@dataclass(frozen=True)
class Spread:
    """A value over seeds: mean and sample standard deviation (None with one seed)."""

    mean: float
    std: float | None
    n: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        n = len(values)
        mean = sum(values) / n
        if n < 2:
            return cls(mean, None, n)
        return cls(mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)), n)


@dataclass(frozen=True)
class TeacherScores:
    name: str
    accuracy: float  # macro accuracy: the mean over languages
    worst_language: str
    worst_accuracy: float
    languages: dict[str, float]
    examples: dict[str, int]  # per language

    @classmethod
    def from_eval(cls, name: str, record: dict[str, Any] | None) -> TeacherScores:
        model = _first_model(record)
        languages = {lang: float(s["accuracy"]) for lang, s in model["languages"].items()}
        return cls(
            name=name,
            accuracy=float(model["average"]["accuracy"]),
            worst_language=str(model["worst"]["language"]),
            worst_accuracy=float(model["worst"]["accuracy"]),
            languages=languages,
            examples={lang: int(s["n"]) for lang, s in model["languages"].items()},
        )


@dataclass(frozen=True)
class CellResult:
    name: str
    init: str
    objective: str
    num_layers: int
    seed: int
    path: str
    accuracy: float
    worst_language: str
    worst_accuracy: float
    retention: float  # accuracy / the teacher's
    worst_retention: float  # the lowest per-language share of the teacher's accuracy
    worst_retention_language: str
    languages: dict[str, float]
    seconds: float


@dataclass(frozen=True)
class GroupResult:
    """The cells of one initialization × objective × depth, over seeds."""

    init: str
    objective: str
    num_layers: int
    seeds: list[int]
    cells: list[str]
    accuracy: Spread
    worst_accuracy: Spread
    worst_language: str  # the language most often worst over the seeds
    retention: Spread
    worst_retention: Spread
    seconds: Spread
    languages: dict[str, Spread]

    def label(self, with_depth: bool) -> str:
        objective = "KD" if self.objective == "kd" else "no KD"
        depth = f", {self.num_layers} layers" if with_depth else ""
        return f"{SHORT_INIT[self.init]}, {objective}{depth}"


@dataclass(frozen=True)
class StudyResult(JsonResult):
    out: Path
    teacher: str
    base: str | None
    data: str
    split: str
    kd_loss: str
    teacher_scores: TeacherScores
    groups: list[GroupResult]
    cells: list[CellResult]
    files: list[Path]
    ran: int  # cells trained by this call
    cached: int  # cells found finished
    seconds: float
    notes: list[str] = field(default_factory=list)


def _first_model(record: dict[str, Any] | None) -> dict[str, Any]:
    if not record or not record.get("models"):
        raise ValueError("an evaluation record without models")
    return dict(record["models"][0])


def build_cells(
    rows: Sequence[tuple[Any, str, dict[str, Any] | None, float]], teacher: TeacherScores
) -> list[CellResult]:
    """One result per (cell, path, its eval record, seconds of its training)."""
    cells = []
    for cell, path, record, seconds in rows:
        model = _first_model(record)
        languages = {lang: float(s["accuracy"]) for lang, s in model["languages"].items()}
        shares = {
            lang: (value / teacher.languages[lang] if teacher.languages.get(lang) else 1.0)
            for lang, value in languages.items()
        }
        worst_share = min(sorted(shares), key=lambda lang: shares[lang])
        accuracy = float(model["average"]["accuracy"])
        cells.append(
            CellResult(
                name=cell.name,
                init=cell.init,
                objective=cell.objective,
                num_layers=cell.num_layers,
                seed=cell.seed,
                path=path,
                accuracy=accuracy,
                worst_language=str(model["worst"]["language"]),
                worst_accuracy=float(model["worst"]["accuracy"]),
                retention=accuracy / teacher.accuracy if teacher.accuracy else 1.0,
                worst_retention=shares[worst_share],
                worst_retention_language=worst_share,
                languages=languages,
                seconds=seconds,
            )
        )
    return cells


def build_groups(cells: Sequence[CellResult]) -> list[GroupResult]:
    """Seeds folded together; groups in the study's order (init, then KD before no KD, depth)."""
    keys: dict[tuple[str, str, int], list[CellResult]] = {}
    for cell in cells:
        keys.setdefault((cell.init, cell.objective, cell.num_layers), []).append(cell)
    order = sorted(keys, key=lambda k: (list(INIT_NAMES).index(k[0]), k[1] != "kd", k[2]))
    groups = []
    for init, objective, depth in order:
        members = keys[(init, objective, depth)]
        worst = Counter(c.worst_language for c in members)
        languages = sorted(members[0].languages)
        groups.append(
            GroupResult(
                init=init,
                objective=objective,
                num_layers=depth,
                seeds=[c.seed for c in members],
                cells=[c.name for c in members],
                accuracy=Spread.of([c.accuracy for c in members]),
                worst_accuracy=Spread.of([c.worst_accuracy for c in members]),
                worst_language=min(worst, key=lambda lang: (-worst[lang], lang)),
                retention=Spread.of([c.retention for c in members]),
                worst_retention=Spread.of([c.worst_retention for c in members]),
                seconds=Spread.of([c.seconds for c in members]),
                languages={
                    lang: Spread.of([c.languages[lang] for c in members]) for lang in languages
                },
            )
        )
    return groups


# --- text ----------------------------------------------------------------------------------------


def spread_text(value: Spread, scale: float = 100.0, suffix: str = "") -> str:
    """`80.1 ± 0.4` (in %), or `80.1` for one seed."""
    text = f"{scale * value.mean:.1f}"
    if value.std is not None:
        text += f" ± {scale * value.std:.1f}"
    return text + suffix


def summary_rows(result: StudyResult) -> tuple[list[str], list[list[str]]]:
    """The report's main table (shared by report.md and the terminal): header and rows."""
    header = [
        "initialization",
        "objective",
        "layers",
        "seeds",
        "accuracy",
        "worst language",
        "retention",
        "worst-language retention",
        "time",
    ]
    rows = []
    for group in result.groups:
        objective = f"KD ({result.kd_loss})" if group.objective == "kd" else "no KD"
        rows.append(
            [
                INIT_NAMES[group.init],
                objective,
                str(group.num_layers),
                str(len(group.seeds)),
                spread_text(group.accuracy),
                f"{group.worst_language} {spread_text(group.worst_accuracy)}",
                spread_text(group.retention, suffix="%"),
                spread_text(group.worst_retention, suffix="%"),
                duration_text(group.seconds.mean),
            ]
        )
    return header, rows


def language_rows(result: StudyResult) -> tuple[list[str], list[list[str]]]:
    """Per-language accuracy (mean over seeds): languages as rows, teacher then groups."""
    with_depth = len({g.num_layers for g in result.groups}) > 1
    teacher = result.teacher_scores
    header = ["language", "n", "teacher", *(g.label(with_depth) for g in result.groups)]
    rows = []
    for lang in sorted(teacher.languages):
        rows.append(
            [
                lang,
                f"{teacher.examples[lang]:,}",
                f"{100 * teacher.languages[lang]:.1f}",
                *(spread_text(g.languages[lang]) for g in result.groups),
            ]
        )
    rows.append(
        [
            "**average**",
            f"{sum(teacher.examples.values()):,}",
            f"**{100 * teacher.accuracy:.1f}**",
            *(f"**{spread_text(g.accuracy)}**" for g in result.groups),
        ]
    )
    return header, rows


def report_markdown(result: StudyResult) -> str:
    teacher = result.teacher_scores
    depths = sorted({g.num_layers for g in result.groups})
    seeds = sorted({s for g in result.groups for s in g.seeds})
    header, rows = summary_rows(result)
    lang_header, lang_rows = language_rows(result)
    lines = [
        "# kdcli study: initialization × distillation",
        "",
        f"Teacher `{teacher.name}` on the `{result.split}` split of `{result.data}`: macro "
        f"accuracy {100 * teacher.accuracy:.1f}%, worst language {teacher.worst_language} "
        f"{100 * teacher.worst_accuracy:.1f}% ({len(teacher.languages)} languages, "
        f"{sum(teacher.examples.values()):,} examples).",
        "",
        f"Students of {', '.join(map(str, depths))} layers, seeds {', '.join(map(str, seeds))}. "
        "Accuracy is the mean over languages, in %; ± is the standard deviation over seeds; "
        "retention is a share of the teacher's accuracy (worst-language retention: the language "
        "that kept the least); time is the training time of one cell.",
        "",
        *_table(header, rows, right=(2, 3, 4, 6, 7, 8)),
        "",
        "## Per language",
        "",
        "Accuracy in %, mean ± standard deviation over seeds.",
        "",
        *_table(lang_header, lang_rows, right=tuple(range(1, len(lang_header)))),
        "",
        "## Cells",
        "",
        "Every cell is an ordinary kdcli output directory (shrink + distill, with kdcli.json).",
        "",
        *_table(
            ["cell", "accuracy", "worst language", "retention", "time", "directory"],
            [
                [
                    c.name,
                    f"{100 * c.accuracy:.1f}",
                    f"{c.worst_language} {100 * c.worst_accuracy:.1f}",
                    f"{100 * c.retention:.1f}%",
                    duration_text(c.seconds),
                    f"`cells/{c.name}`",
                ]
                for c in result.cells
            ],
            right=(1, 3, 4),
        ),
    ]
    for note in result.notes:
        lines += ["", f"Note: {note}"]
    return "\n".join(lines) + "\n"


def _table(header: list[str], rows: list[list[str]], right: tuple[int, ...]) -> list[str]:
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"

    align = ["---:" if i in right else "---" for i in range(len(header))]
    return [line(header), line(align), *(line(row) for row in rows)]


def report_csv(result: StudyResult) -> str:
    """Tidy: one row per cell and language (and an `(average)` row per cell), the teacher first."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(
        ["cell", "init", "objective", "num_layers", "seed", "language", "n", "accuracy",
         "teacher_accuracy", "retention", "seconds"]
    )  # fmt: skip
    teacher = result.teacher_scores
    for lang, value in sorted(teacher.languages.items()):
        writer.writerow(
            ["teacher", "", "", "", "", lang, teacher.examples[lang], value, value, 1.0, ""]
        )
    total = sum(teacher.examples.values())
    writer.writerow(
        ["teacher", "", "", "", "", "(average)", total, teacher.accuracy, teacher.accuracy, 1.0, ""]
    )
    for c in result.cells:
        base = [c.name, c.init, c.objective, c.num_layers, c.seed]
        for lang, value in sorted(c.languages.items()):
            reference = teacher.languages[lang]
            share = value / reference if reference else ""
            writer.writerow(
                [*base, lang, teacher.examples[lang], value, reference, share, c.seconds]
            )
        writer.writerow(
            [*base, "(average)", total, c.accuracy, teacher.accuracy, c.retention, c.seconds]
        )
    return buffer.getvalue()


# --- files -----------------------------------------------------------------------------------


def report_files(root: Path) -> list[Path]:
    """The report's files: report.png only when matplotlib is installed."""
    names = ["report.md", "report.json", "report.csv"]
    if importlib.util.find_spec("matplotlib") is not None:
        names.append("report.png")
    return [root / name for name in names]


def write_report(result: StudyResult, root: Path) -> None:
    """Every file of `report_files` (the JSON is what `--json` writes too)."""
    texts = {
        "report.md": report_markdown(result),
        "report.json": dumps(result.to_dict()) + "\n",
        "report.csv": report_csv(result),
    }
    for path in report_files(root):
        if path.name in texts:
            write_text_atomic(path, texts[path.name])
        else:
            write_plot(result, path)


def write_plot(result: StudyResult, path: Path) -> None:
    """Macro accuracy per group (bars, ± over seeds), its worst language (dots), the teacher's
    accuracy and worst language (lines)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    groups = result.groups
    with_depth = len({g.num_layers for g in groups}) > 1
    teacher = result.teacher_scores
    figure, axes = plt.subplots(figsize=(max(6.0, 1.3 * len(groups) + 2.5), 4.8))
    colours = {"kd": "tab:blue", "no-kd": "tab:orange"}
    positions = list(range(len(groups)))
    axes.bar(
        positions,
        [100 * g.accuracy.mean for g in groups],
        yerr=[100 * (g.accuracy.std or 0.0) for g in groups],
        color=[colours[g.objective] for g in groups],
        capsize=4,
        zorder=2,
    )
    axes.scatter(
        positions,
        [100 * g.worst_accuracy.mean for g in groups],
        color="black",
        marker="v",
        zorder=3,
        label="worst language (mean over seeds)",
    )
    axes.axhline(100 * teacher.accuracy, color="tab:green", ls="--", label="teacher")
    axes.axhline(
        100 * teacher.worst_accuracy, color="tab:green", ls=":", label="teacher, worst language"
    )
    axes.set_xticks(positions)
    axes.set_xticklabels([g.label(with_depth).replace(", ", "\n") for g in groups], fontsize=8)
    axes.set_ylabel(f"accuracy on {result.split} (%), mean over languages")
    axes.set_ylim(0, 100)
    axes.grid(axis="y", alpha=0.4, zorder=1)
    handles, labels = axes.get_legend_handles_labels()
    from matplotlib.patches import Patch

    handles += [Patch(color=colours["kd"]), Patch(color=colours["no-kd"])]
    labels += ["KD", "no KD"]
    axes.legend(handles, labels, fontsize=8, loc="lower left")
    axes.set_title("kdcli study: initialization × distillation (bars: ± over seeds)", fontsize=10)
    figure.tight_layout()
    save_figure_atomic(figure, path)
    plt.close(figure)
