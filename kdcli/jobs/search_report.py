"""The result of `kdcli search` (`SearchResult`, its `Candidate`s) and how it is told: the
one-line answer, search.json, the Pareto plot, the table rows, and the message when nothing
meets the constraints."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kdcli.core.formatting import size_text
from kdcli.core.results import JsonResult
from kdcli.files.outputs import save_figure_atomic, write_text_atomic
from kdcli.files.provenance import dumps

JUDGED = ("chosen", "meets", "fails", "unverified")


@dataclass(frozen=True)
class Candidate:
    """One variant of the space and what the search learned about it."""

    name: str
    shape: str
    num_layers: int
    teacher_layers: int
    layer_strategy: str
    kept_layers: list[int] | None
    width: float
    hidden: int
    intermediate: int
    heads: int
    vocab: str
    vocab_size: int
    format: str
    status: str  # chosen, meets, fails, unverified, pruned, unpromising, not reached, over budget
    reason: str
    size_bytes: int | None
    size_measured: bool
    latency_ms: float | None
    short_retention: float | None
    short_worst_retention: float | None
    retention: float | None
    worst_retention: float | None
    worst_language: str | None
    languages: dict[str, float] | None
    seconds: float
    path: str | None


@dataclass(frozen=True)
class SearchResult(JsonResult):
    out: Path
    teacher: str
    data: str
    split: str
    objective: str
    constraints: dict[str, Any]
    constraints_text: str
    teacher_accuracy: float
    teacher_languages: dict[str, float]
    chosen: Candidate | None
    answer: str
    best: list[Candidate]  # with no answer: the candidates that came closest
    candidates: list[Candidate]
    trained_full: int
    trained_short: int
    probed: int
    model: Path | None  # the chosen model (PyTorch) and its export, copied out
    export: Path | None
    files: list[Path]
    budget_reached: bool
    exhaustive: bool
    seconds: float
    notes: list[str] = field(default_factory=list)


def constraints_text(constraints: dict[str, Any]) -> str:
    parts = []
    if constraints.get("min_retention") is not None:
        parts.append(f"--min-retention {constraints['min_retention']:g}")
    if constraints.get("min_language_retention") is not None:
        parts.append(f"--min-language-retention {constraints['min_language_retention']:g}")
    if constraints.get("max_size") is not None:
        parts.append(f"--max-size {size_text(constraints['max_size'])}")
    if constraints.get("max_latency_ms") is not None:
        parts.append(f"--max-latency {constraints['max_latency_ms']:g}ms")
    if constraints.get("budget_s") is not None:
        parts.append(f"--budget {constraints['budget_s']:g}s")
    return ", ".join(parts)


def answer_line(result: SearchResult) -> str:
    """ "kept X of 12 layers, width Y, vocab Z: N MB, M ms, worst language L at R%"."""
    c = result.chosen
    assert c is not None
    return _describe(c)


def _describe(c: Candidate) -> str:
    layers = f"kept {c.num_layers} of {c.teacher_layers} layers"
    if c.kept_layers and c.num_layers < c.teacher_layers:
        layers += f" ({','.join(map(str, c.kept_layers))})"
    width = f"width {c.hidden}" + (f" ({round(100 * c.width)}%)" if c.width < 1 else "")
    vocab = f"vocab {c.vocab_size:,}" + (" (trimmed)" if c.vocab == "trimmed" else "")
    size = size_text(c.size_bytes) if c.size_bytes is not None else "size unknown"
    latency = f"{c.latency_ms:.2f} ms" if c.latency_ms is not None else "latency not measured"
    worst = (
        f"worst language {c.worst_language} at {100 * c.worst_retention:.1f}%"
        if c.worst_retention is not None
        else "not scored"
    )
    return f"{layers}, {width}, {vocab}, {c.format}: {size}, {latency}, {worst}"


def best_candidates(result: SearchResult, count: int) -> list[Candidate]:
    """The judged candidates that came closest: fewest constraints missed, then the best
    worst-language retention, then the smallest."""
    judged = [c for c in result.candidates if c.status in JUDGED and c.retention is not None]

    def missed(c: Candidate) -> int:
        return c.reason.count(";") + 1 if c.status in ("fails", "unverified") else 0

    judged.sort(key=lambda c: (missed(c), -(c.worst_retention or 0), c.size_bytes or 0, c.name))
    return judged[:count]


def failure_message(result: SearchResult) -> str:
    constraints = result.constraints_text or "the constraints"
    if result.best:
        shown = "; ".join(f"{c.name} ({c.reason})" for c in result.best)
        best = f"the closest: {shown}"
    else:
        best = "no candidate got as far as being trained (see the reasons in search.json)"
    stopped = " before the budget ran out" if result.budget_reached else ""
    return (
        f"no candidate meets {constraints}{stopped}: {best}. Relax a constraint or widen the "
        f"space (--depths, --widths); every candidate is in {result.out}/search.json"
    )


def candidate_rows(result: SearchResult, limit: int | None) -> tuple[list[str], list[list[str]]]:
    """The terminal table: the judged candidates, then the best pruned ones, by objective."""
    header = ["candidate", "status", "size", "latency", "retention", "worst language", "why"]
    order = {"chosen": 0, "meets": 1, "fails": 2, "unverified": 2}
    key = "latency_ms" if result.objective == "latency" else "size_bytes"
    rows = sorted(
        result.candidates,
        key=lambda c: (order.get(c.status, 3), getattr(c, key) or float("inf"), c.name),
    )
    if limit is not None:
        rows = rows[:limit]
    table = []
    for c in rows:
        size = size_text(c.size_bytes) if c.size_bytes is not None else "-"
        if c.size_bytes is not None and not c.size_measured:
            size = f"~{size}"
        table.append(
            [
                c.name,
                c.status,
                size,
                f"{c.latency_ms:.2f} ms" if c.latency_ms is not None else "-",
                f"{100 * c.retention:.1f}%" if c.retention is not None else "-",
                f"{c.worst_language} {100 * c.worst_retention:.1f}%"
                if c.worst_retention is not None
                else "-",
                c.reason,
            ]
        )
    return header, table


def report_files(result: SearchResult, root: Path) -> list[Path]:
    """search.json, and pareto.png when a candidate was scored and matplotlib is installed."""
    files = [root / "search.json"]
    judged = [c for c in result.candidates if c.status in JUDGED and c.retention is not None]
    if judged and importlib.util.find_spec("matplotlib") is not None:
        files.append(root / "pareto.png")
    return files


def write_files(result: SearchResult, root: Path) -> None:
    """Every file of `result.files` (search.json is what `--json` writes too)."""
    for path in result.files:
        if path.name == "search.json":
            write_text_atomic(path, dumps(result.to_dict()) + "\n")
        else:
            write_pareto(result, path)


def pareto_front(points: list[tuple[float, float, str]]) -> list[tuple[float, float, str]]:
    """The points no other point beats on both axes (smaller x, larger y), by x."""
    front: list[tuple[float, float, str]] = []
    for point in sorted(points, key=lambda p: (p[0], -p[1])):
        if not front or point[1] > front[-1][1]:
            front.append(point)
    return front


def write_pareto(result: SearchResult, path: Path) -> None:
    """Size (or latency) against worst-language retention, every scored candidate, the front,
    the limits and the answer."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    by_latency = result.objective == "latency"
    judged = [c for c in result.candidates if c.status in JUDGED and c.retention is not None]

    def x(c: Candidate) -> float:
        return float(c.latency_ms or 0.0) if by_latency else (c.size_bytes or 0) / 1e6

    figure, axes = plt.subplots(figsize=(7, 4.8))
    colours = {"chosen": "tab:green", "meets": "tab:green", "fails": "tab:red", "unverified": "0.6"}
    for status in ("fails", "unverified", "meets", "chosen"):
        group = [c for c in judged if c.status == status]
        if group:
            axes.scatter(
                [x(c) for c in group],
                [100 * (c.worst_retention or 0) for c in group],
                color=colours[status],
                marker="*" if status == "chosen" else "o",
                s=160 if status == "chosen" else 36,
                label=status,
                zorder=3,
            )
    front = pareto_front([(x(c), 100 * (c.worst_retention or 0), c.name) for c in judged])
    axes.plot([p[0] for p in front], [p[1] for p in front], color="0.3", lw=1, ls="--",
              label="Pareto front", zorder=2)  # fmt: skip
    for point in front:
        axes.annotate(point[2], (point[0], point[1]), fontsize=7, xytext=(4, 4),
                      textcoords="offset points")  # fmt: skip
    limits = result.constraints
    limit = limits.get("max_latency_ms") if by_latency else limits.get("max_size")
    if limit:
        axes.axvline(limit if by_latency else limit / 1e6, color="tab:red", ls=":", label="limit")
    if limits.get("min_language_retention"):
        axes.axhline(100 * limits["min_language_retention"], color="tab:red", ls=":")
    axes.set_xlabel("batch-1 latency (ms)" if by_latency else "size of the ONNX file (MB)")
    axes.set_ylabel(f"worst-language retention on {result.split} (%)")
    axes.grid(alpha=0.4, zorder=1)
    axes.legend(fontsize=8, loc="lower right")
    axes.set_title("kdcli search: every scored candidate", fontsize=10)
    figure.tight_layout()
    save_figure_atomic(figure, path)
    plt.close(figure)
