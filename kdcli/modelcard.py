"""The short README.md (model card) kdcli writes into every model directory it makes."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path


def write_model_card(
    out_dir: Path,
    title: str,
    summary: str,
    facts: Iterable[tuple[str, object]],
    source: str | None = None,
) -> None:
    """A model card with a front matter Hugging Face understands and a table of facts."""
    lines = ["---", "library_name: transformers", "tags:", "- kdcli", "- text-classification"]
    if source and not Path(source).exists():
        lines.append(f"base_model: {source}")
    lines += ["---", "", f"# {title}", "", summary, "", "| | |", "|---|---|"]
    lines += [f"| {key} | {value} |" for key, value in facts]
    lines += [
        "",
        "## Use",
        "",
        "```python",
        "from transformers import AutoModelForSequenceClassification, AutoTokenizer",
        "",
        'model = AutoModelForSequenceClassification.from_pretrained("path/to/this/folder")',
        'tokenizer = AutoTokenizer.from_pretrained("path/to/this/folder")',
        "```",
        "",
        "How it was made (source, settings, kept layers and channels) is recorded in `kdcli.json`.",
        "",
    ]
    (Path(out_dir) / "README.md").write_text("\n".join(lines), encoding="utf-8")
