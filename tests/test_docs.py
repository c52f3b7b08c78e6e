"""Docs are part of a feature: docs/cli.md documents every option of every command."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer

from kdcli.cli import app

ROOT = Path(__file__).parent.parent
COMMANDS = typer.main.get_command(app).commands  # type: ignore[attr-defined]


def _section(command: str) -> str:
    text = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    found = re.search(rf"^## kdcli {command}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert found, f"docs/cli.md has no '## kdcli {command}' section"
    return found.group(1)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_option_is_documented(command: str):
    section = _section(command)
    for param in COMMANDS[command].params:
        names = [o for o in param.opts if o.startswith("--")] or [param.name.upper()]
        if names == ["--help"]:
            continue
        assert any(f"`{name}" in section or f" {name}" in section for name in names), (
            f"docs/cli.md, kdcli {command}: {names[0]} is not documented"
        )


def test_readme_names_the_setup_and_test_commands():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "make demo" in readme and "make test" in readme
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_uniform_layer_rounding_is_documented_as_the_code_does_it():
    from kdcli.surgery.selection import uniform_layers

    assert uniform_layers(3, 6) == [0, 3, 5]  # half up: numpy's round would give 0, 2, 5
    assert uniform_layers(6, 12) == [0, 2, 4, 7, 9, 11]
    method = (ROOT / "docs" / "method.md").read_text(encoding="utf-8")
    cli = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    example = (ROOT / "examples" / "minilm_pipeline.sh").read_text(encoding="utf-8")
    assert "6 → 3 keeps 0, 3, 5" in method and "for 6 → 3 `0,3,5`" in cli
    assert "3 of the teacher's 6 layers (0, 3, 5)" in example
    for text in (method, cli, example):
        assert "0, 2, 5" not in text and "round(linspace" not in text


def test_the_package_metadata_needs_no_deprecated_license_table():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert project["project"]["license"] == "Apache-2.0"  # SPDX: setuptools warns on a table
    assert "setuptools>=77" in project["build-system"]["requires"]


def test_every_example_can_run_twice():
    """A second run replaces its outputs: every kdcli command of an example that writes an
    output folder or a result file passes --overwrite (kdcli refuses existing ones without it)."""
    for script in sorted((ROOT / "examples").glob("*.sh")):
        text = script.read_text(encoding="utf-8").replace("\\\n", " ")
        for command in re.findall(r"^\s*(?:run )?kdcli \w+.*$", text, flags=re.MULTILINE):
            if re.search(r"--(out|json|csv|markdown|plot|predictions)\b", command):
                assert "--overwrite" in command, f"{script.name}: {command.strip()}"
