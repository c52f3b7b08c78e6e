"""Terminal views of whole jobs (`kdcli run`, `study`, `search`): the grid's progress and the
tables at the end. Only the CLI uses it; the numbers come from the library's result objects."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from kdcli.cli.render import console
from kdcli.core.formatting import size_text
from kdcli.core.progress import ProgressCallback, ProgressEvent

if TYPE_CHECKING:
    from kdcli.jobs.recipe import RecipeResult
    from kdcli.jobs.search import SearchResult
    from kdcli.jobs.study import StudyResult

DAY = 24 * 3600.0


@contextlib.contextmanager
def job_progress(enabled: bool) -> Iterator[ProgressCallback | None]:
    """One bar per phase of the job (cells done of those to run, running, found done, ETA) and
    one line per running unit showing its current step; a unit's line goes when it ends."""
    if not enabled:
        yield None
        return
    from kdcli.jobs.runner import FINISHED, SUBTASK

    bars = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[info]}"),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        speed_estimate_period=DAY,  # cells take minutes: estimate from the whole run so far
    )
    phases: dict[str, TaskID] = {}
    units: dict[str, TaskID] = {}

    def update(event: ProgressEvent) -> None:
        if not bars.live.is_started:
            bars.start()
        unit, _, task = event.task.partition(SUBTASK)
        if not task:  # the job's own event: a phase's count of cells
            text = _phase_info(event.info)
            if unit not in phases:
                phases[unit] = bars.add_task(
                    f"[bold]{escape(unit)}[/]", total=event.total, info=text
                )
            bars.update(phases[unit], completed=event.done, total=event.total, info=text)
            return
        if task == FINISHED:
            if unit in units:
                bars.remove_task(units.pop(unit))
            return
        description = f"  {escape(unit)}: {escape(task)}"
        if unit not in units:
            units[unit] = bars.add_task(description, total=event.total, info="")
        bars.update(units[unit], description=description, completed=event.done, total=event.total)

    try:
        yield update
    finally:
        if bars.live.is_started:
            bars.stop()


def _phase_info(info: dict[str, float]) -> str:
    parts = [f"running {int(info.get('running', 0))}"]
    if info.get("cached"):
        parts.append(f"{int(info['cached'])} done before")
    if info.get("failed"):
        parts.append(f"[red]{int(info['failed'])} failed[/]")
    return ", ".join(parts)


def study_summary(result: StudyResult) -> None:
    """The study's table (all columns in a wide terminal, the essential ones in 80), then the
    per-language table when it fits."""
    from kdcli.core.formatting import duration_text
    from kdcli.jobs.study_report import SHORT_INIT, language_rows, spread_text

    teacher = result.teacher_scores
    wide = console.width >= 120
    table = Table(
        title=f"kdcli study: {result.teacher} on the {result.split} split of {result.data}",
        title_justify="left",
        caption=f"teacher: accuracy {100 * teacher.accuracy:.1f}%, worst language "
        f"{teacher.worst_language} {100 * teacher.worst_accuracy:.1f}%. Accuracy in %, mean over "
        "languages; ± = standard deviation over seeds; retention = share of the teacher's",
        caption_justify="left",
    )
    columns = ["initialization", "objective", "layers", "accuracy", "worst language", "retention"]
    if wide:
        columns += ["worst-language retention", "seeds", "time"]
    for index, name in enumerate(columns):
        table.add_column(name, justify="left" if index in (0, 1, 4) else "right")
    previous = None
    for group in result.groups:
        if previous is not None and group.init != previous:
            table.add_section()
        previous = group.init
        objective = f"KD ({result.kd_loss})" if group.objective == "kd" else "no KD"
        row = [
            SHORT_INIT[group.init] if wide else SHORT_INIT[group.init].removesuffix(" copy"),
            objective if wide else objective.split(" (")[0],
            str(group.num_layers),
            spread_text(group.accuracy),
            f"{group.worst_language} {spread_text(group.worst_accuracy)}",
            spread_text(group.retention, suffix="%"),
        ]
        if wide:
            row += [
                spread_text(group.worst_retention, suffix="%"),
                str(len(group.seeds)),
                duration_text(group.seconds.mean),
            ]
        table.add_row(*(escape(cell) for cell in row))
    lang_header, lang_rows = language_rows(result)
    if console.width >= 24 + 14 * len(lang_header):
        languages = Table(title="accuracy per language (%), mean over seeds", title_justify="left")
        for index, name in enumerate(lang_header):
            languages.add_column(name, justify="left" if index == 0 else "right")
        for row in lang_rows:
            languages.add_row(*(cell.replace("**", "") for cell in row))
        console.print(languages)
    console.print(table)
    console.print(
        f"{result.ran} cells trained now, {result.cached} found finished; {result.seconds:.0f} s",
        highlight=False,
    )
    for text in result.notes:
        console.print(f"[yellow]Note:[/] {escape(text)}", highlight=False, soft_wrap=True)


def recipe_summary(result: RecipeResult) -> None:
    table = Table(title=f"kdcli run: {result.recipe} → {result.out}", title_justify="left")
    for name in ("stage", "step", "status", "time"):
        table.add_column(name, justify="right" if name == "time" else "left")
    for stage in result.stages:
        status = "done before" if stage.cached else "ran"
        table.add_row(stage.name, stage.step, status, f"{stage.seconds:.1f} s")
    console.print(table)
    for stage in result.stages:  # a study or a search writes its own report
        reports = [f for f in stage.result.get("files", []) if str(f).endswith(".md")]
        if reports:
            console.print(f"{stage.name}: {stage.step} report in {reports[0]}", highlight=False)
    if result.report is not None:
        console.print(report_table(result.report))


def report_table(report: dict[str, Any]) -> Table:
    """The final report of a recipe: accuracy per language, model by model, then the facts."""
    models = report["models"]
    table = Table(
        title=f"{report['split']} split of {report['data']}: accuracy (%)",
        title_justify="left",
        caption="details (macro-F1, lineage, throughput) in report.md",
        caption_justify="left",
    )
    table.add_column("language", no_wrap=True)
    for model in models:
        table.add_column(escape(model["name"]), justify="right", overflow="fold")
    for language in models[0]["languages"]:
        table.add_row(
            language, *(f"{100 * m['languages'][language]['accuracy']:.1f}" for m in models)
        )
    table.add_section()
    table.add_row(
        "[bold]average[/]", *(f"[bold]{100 * m['average']['accuracy']:.1f}[/]" for m in models)
    )
    table.add_row("kind", *(m["kind"] for m in models))
    table.add_row("size", *(size_text(m["size_bytes"]) for m in models))
    if any(m.get("speed") for m in models):
        table.add_row(
            "latency (batch 1)",
            *(f"{m['speed']['latency_ms']:.2f} ms" if m.get("speed") else "-" for m in models),
        )
    return table


def search_summary(result: SearchResult) -> None:
    from kdcli.jobs.search_report import candidate_rows

    header, rows = candidate_rows(result, limit=None if result.chosen is None else 12)
    table = Table(
        title=f"kdcli search: {result.teacher} ({result.objective} first)",
        title_justify="left",
        caption=result.constraints_text,
        caption_justify="left",
    )
    for index, name in enumerate(header):
        table.add_column(name, justify="left" if index in (0, 1, len(header) - 1) else "right")
    for row in rows:
        table.add_row(*(escape(cell) for cell in row))
    console.print(table)
    console.print(
        f"{result.trained_full} full trainings, {result.trained_short} short runs, "
        f"{result.probed} shapes measured, {len(result.candidates)} candidates; "
        f"{result.seconds:.0f} s",
        highlight=False,
    )
    for text in result.notes:
        console.print(f"[yellow]Note:[/] {escape(text)}", highlight=False, soft_wrap=True)
