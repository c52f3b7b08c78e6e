"""`kdcli run`: RECIPE.yaml -> RecipeConfig -> `kdcli.jobs.recipe.run_recipe` -> the report."""

from __future__ import annotations

from pathlib import Path

import typer

from kdcli.cli import job_views, render
from kdcli.cli.app import app
from kdcli.cli.options import CONFIG_OPTION, JOBS_OPTION, JSON_OPTION, QUIET_OPTION, check_json
from kdcli.cli.options import write_json as write_result
from kdcli.cli.training import is_main_process


@app.command()
def run(
    recipe: Path = typer.Argument(
        ..., metavar="RECIPE", help="A recipe: YAML file of stages (see examples/recipes/)."
    ),
    out: Path = typer.Option(
        ..., "--out", "-o", help="Directory of the job: one folder per stage, report.md/json/csv."
    ),
    sets: list[str] = typer.Option(
        [],
        "--set",
        metavar="STAGE.OPTION=VALUE",
        help="Override an option of a stage, e.g. --set teacher.epochs=1 (repeatable; also "
        "defaults.OPTION and report.OPTION).",
    ),
    jobs: int = JOBS_OPTION,
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Start over: empty --out first instead of reusing its stages."
    ),
    json_path: Path | None = JSON_OPTION,
    quiet: bool = QUIET_OPTION,
    config: Path | None = CONFIG_OPTION,
) -> None:
    """Run a recipe (finetune -> shrink -> distill -> export -> eval ...) as one resumable job."""
    from kdcli.jobs.recipe import RecipeConfig, run_recipe

    # a rerun continues the job and rewrites its --json result (--overwrite would start over)
    check_json(json_path, True, (recipe, config))
    recipe_config = RecipeConfig(recipe=recipe, out=out, sets=sets, jobs=jobs, overwrite=overwrite)
    try:
        with job_views.job_progress(not quiet and is_main_process()) as progress:
            result = run_recipe(recipe_config, progress)
    except KeyboardInterrupt:
        render.note(f"rerun the same command to continue: finished stages in {out} are kept")
        raise
    if not is_main_process():
        return
    job_views.recipe_summary(result)
    write_result(json_path, result)
    for text in result.notes:
        render.note(text)
    done = f"{len(result.stages)} stages in {out}"
    if result.files:
        done += f"; report: {', '.join(str(p) for p in result.files)}"
    again = " ".join(["kdcli run", str(recipe), "--out", str(out), *(f"--set {s}" for s in sets)])
    render.next_step(done, f"{again}    # again: only what changed reruns")
